package powerautomate

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
)

// TestCreateConnectionAndConsentLinkRequests: the requests Microsoft's scripts and
// the maker portal send, with the Power Apps audience; a missing link is an error.
func TestCreateConnectionAndConsentLinkRequests(t *testing.T) {
	const conns = "/powerapps/providers/Microsoft.PowerApps/apis/shared_teams/connections/"
	mux := http.NewServeMux()
	var bodies []string
	mux.HandleFunc("PUT "+conns+"{name}", func(w http.ResponseWriter, r *http.Request) {
		requireAuth(t, r, AudiencePowerApps)
		if q := r.URL.Query(); q.Get("api-version") != "2016-11-01" || q.Get("$filter") != "environment eq '"+testEnv+"'" {
			t.Errorf("query %v", q)
		}
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		writeJSON(w, 201, `{"name":"`+r.PathValue("name")+`","properties":{"apiId":"/providers/Microsoft.PowerApps/apis/shared_teams",
			"statuses":[{"status":"Error","target":"token","error":{"code":"Unauthenticated"}}]}}`)
	})
	mux.HandleFunc("POST "+conns+"{name}/getConsentLink", func(w http.ResponseWriter, r *http.Request) {
		requireAuth(t, r, AudiencePowerApps)
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		if r.PathValue("name") == "nolink" {
			writeJSON(w, 200, `{"consentLink":"javascript:alert(1)"}`)
			return
		}
		writeJSON(w, 200, `{"consentLink":"https://consent.example/login?data=x"}`)
	})
	srv := newUpstream(t, mux)
	c := newTestClient(t, testConfig(srv.URL))
	ctx := context.Background()
	conn, err := c.CreateConnection(ctx, CreateConnectionRequest{Environment: testEnv, Connector: "shared_teams", Name: "abc123", DisplayName: "Teams"})
	if err != nil || conn.Name != "abc123" || conn.Connected() {
		t.Fatalf("create: %+v, %v", conn, err)
	}
	if _, err := c.CreateConnection(ctx, CreateConnectionRequest{Environment: testEnv, Connector: "shared_teams", Name: "abc124", ParameterSet: "firstParty"}); err != nil {
		t.Fatal(err)
	}
	link, err := c.GetConsentLink(ctx, testEnv, "shared_teams", "abc123", "https://fs.example/connections/signed-in")
	if err != nil || link != "https://consent.example/login?data=x" {
		t.Fatalf("link %q, %v", link, err)
	}
	if _, err := c.GetConsentLink(ctx, testEnv, "shared_teams", "nolink", "https://fs.example/"); !errors.Is(err, ErrNoConsentLink) {
		t.Fatalf("a javascript: link: %v", err)
	}
	want := []string{
		`{"properties":{"connectionParameters":{},"displayName":"Teams","environment":{"id":"/providers/Microsoft.PowerApps/environments/` + testEnv + `","name":"` + testEnv + `"}}}`,
		`{"properties":{"connectionParametersSet":{"name":"firstParty","values":{}},"environment":{"id":"/providers/Microsoft.PowerApps/environments/` + testEnv + `","name":"` + testEnv + `"}}}`,
		`{"redirectUrl":"https://fs.example/connections/signed-in"}`,
	}
	for i, w := range want {
		if bodies[i] != w {
			t.Errorf("body %d = %s\nwant %s", i, bodies[i], w)
		}
	}
	// Hostile identifiers never leave the client.
	n, _ := srv.seen()
	for _, bad := range []string{"../x", "a/b", "a?b", ""} {
		if _, err := c.CreateConnection(ctx, CreateConnectionRequest{Environment: testEnv, Connector: "shared_teams", Name: bad}); !errors.As(err, new(*InvalidIDError)) {
			t.Errorf("name %q: %v", bad, err)
		}
		if _, err := c.GetConsentLink(ctx, testEnv, "shared_"+bad, "abc", "https://x/"); !errors.As(err, new(*InvalidIDError)) {
			t.Errorf("connector %q: %v", bad, err)
		}
	}
	if _, err := c.CreateConnection(ctx, CreateConnectionRequest{Environment: testEnv, Connector: "shared_teams", Name: "ok", ParameterSet: "a/b"}); !errors.As(err, new(*InvalidIDError)) {
		t.Errorf("parameter set: %v", err)
	}
	if m, _ := srv.seen(); m != n {
		t.Errorf("%d requests for hostile identifiers", m-n)
	}
}
