package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server/keyring"
	"github.com/flowstudio/mcp/tools"
	"go.uber.org/zap"
)

type fakeUsers struct {
	users map[string]*cosmos.User
	err   error
	reads int
}

func (f *fakeUsers) ViewUser(_ context.Context, id string) (*cosmos.User, error) {
	f.reads++
	if f.err != nil {
		return nil, f.err
	}
	u, ok := f.users[id]
	if !ok {
		return nil, cosmos.ErrNotFound
	}
	c := *u
	return &c, nil
}

type harness struct {
	srv   *Server
	keys  *keyring.Keyring
	users *fakeUsers
	h     http.Handler
}

func newHarness(t *testing.T, mutate func(*Settings)) *harness {
	t.Helper()
	keys, err := keyring.New(strings.Repeat("s", 40))
	if err != nil {
		t.Fatal(err)
	}
	settings, err := LoadSettings(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	settings.PublicURL = "http://127.0.0.1:8080"
	if mutate != nil {
		mutate(&settings)
	}
	users := &fakeUsers{users: map[string]*cosmos.User{
		"t.alice": {ID: "t.alice", TenantID: "t", ObjectID: "alice", Tier: cosmos.TierPro, KeyGeneration: 2, Consent: cosmos.ConsentGranted},
		"t.gone":  {ID: "t.gone", TenantID: "t", ObjectID: "gone", Tier: cosmos.TierFree, KeyGeneration: 1, Consent: cosmos.ConsentRevoked},
	}}
	catalog, err := tools.NewCatalog(&tools.Env{}, nil, 0, tools.All())
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Deps{Settings: settings, Logger: zap.NewNop(), Keys: keys, Users: users, Catalog: catalog,
		Ready: func(context.Context) error { return users.err }})
	return &harness{srv: srv, keys: keys, users: users, h: srv.Handler()}
}

func (h *harness) key(t *testing.T, user string, gen int64, scope string) string {
	k, err := h.keys.Issue(user, gen, time.Now(), scope)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (h *harness) do(t *testing.T, method, target string, headers map[string]string, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Host = "127.0.0.1:8080"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	return rec
}

const ping = `{"jsonrpc":"2.0","id":1,"method":"ping"}`

// forged is a well-formed key for user signed with a secret that is not the server's.
func forged(t *testing.T, user string, gen int64) string {
	t.Helper()
	other, err := keyring.New(strings.Repeat("f", 40))
	if err != nil {
		t.Fatal(err)
	}
	k, err := other.Issue(user, gen, time.Now(), "full")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestUnauthorizedAnswersTheRequestID: a 401 carries the id of the request it refuses
// when there is exactly one valid one, and null otherwise; the body is read only so far.
func TestUnauthorizedAnswersTheRequestID(t *testing.T) {
	h := newHarness(t, nil)
	for body, want := range map[string]string{
		`{"jsonrpc":"2.0","id":"abc","method":"tools/list"}`:     `"abc"`,
		`{"jsonrpc":"2.0","id":-7,"method":"tools/list"}`:        `-7`,
		`{"jsonrpc":"2.0","id":{"x":1},"method":"tools/list"}`:   `null`,
		`{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}`:       `null`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`: `null`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`:             `null`,
		`not json`: `null`,
		`{"jsonrpc":"2.0","id":2,"method":"ping","params":{"pad":"` + strings.Repeat("x", maxRefusedBody) + `"}}`: `null`,
	} {
		rec := h.do(t, "POST", "/mcp", nil, body)
		var got struct{ ID json.RawMessage }
		if rec.Code != 401 || json.Unmarshal(rec.Body.Bytes(), &got) != nil || string(got.ID) != want {
			t.Errorf("body %.60s: %d %s, want id %s", body, rec.Code, rec.Body, want)
		}
	}
}

func TestAPIKeyIsRequiredOnEveryRequest(t *testing.T) {
	h := newHarness(t, nil)
	good := h.key(t, "t.alice", 2, "full")
	cases := []struct {
		name    string
		method  string
		target  string
		headers map[string]string
		status  int
		message string
	}{
		{"no key", "POST", "/mcp", nil, 401, "missing x-api-key"},
		{"no key on GET", "GET", "/mcp", nil, 401, "missing x-api-key"},
		{"no key on DELETE", "DELETE", "/mcp", nil, 401, "missing x-api-key"},
		{"bearer instead", "POST", "/mcp", map[string]string{"Authorization": "Bearer " + good}, 401, "x-api-key header"},
		{"query string instead", "POST", "/mcp?x-api-key=" + good, nil, 401, "x-api-key header"},
		{"garbage key", "POST", "/mcp", map[string]string{"X-Api-Key": "garbage"}, 401, "invalid x-api-key"},
		// A key signed with another secret says nothing about whether its user exists.
		{"forged key of a user", "POST", "/mcp", map[string]string{"X-Api-Key": forged(t, "t.alice", 2)}, 401, "invalid x-api-key"},
		{"forged key of nobody", "POST", "/mcp", map[string]string{"X-Api-Key": forged(t, "t.nobody", 1)}, 401, "invalid x-api-key"},
		{"unknown user", "POST", "/mcp", map[string]string{"X-Api-Key": h.key(t, "t.nobody", 1, "full")}, 401, "no longer exists"},
		{"revoked consent", "POST", "/mcp", map[string]string{"X-Api-Key": h.key(t, "t.gone", 1, "full")}, 401, "revoked"},
		{"stale generation", "POST", "/mcp", map[string]string{"X-Api-Key": h.key(t, "t.alice", 1, "full")}, 401, "replaced"},
		{"valid key", "POST", "/mcp", map[string]string{"X-Api-Key": good}, 200, ""},
		{"valid key GET is 405", "GET", "/mcp", map[string]string{"X-Api-Key": good}, 405, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := h.do(t, tc.method, tc.target, tc.headers, ping)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status != 401 {
				return
			}
			var body struct {
				ID    json.RawMessage
				Error struct {
					Code    int
					Message string
				}
			}
			wantID := "1" // the ping's own id, so that clients match the answer to it
			if tc.method != "POST" {
				wantID = "null"
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || string(body.ID) != wantID || body.Error.Code != -32001 {
				t.Fatalf("401 body must be a JSON-RPC error with id %s: %s", wantID, rec.Body)
			}
			if !strings.Contains(body.Error.Message, tc.message) {
				t.Fatalf("message %q lacks %q", body.Error.Message, tc.message)
			}
			// Not Bearer and no resource_metadata: nothing invites an OAuth flow. The
			// reason is in error_description too, for clients that show only the header.
			got := rec.Header().Get("WWW-Authenticate")
			if want := `ApiKey realm="mcp", header="x-api-key", error_description="` + strings.ReplaceAll(body.Error.Message, `"`, `\"`) + `"`; got != want {
				t.Fatalf("WWW-Authenticate %q, want %q", got, want)
			}
			if strings.Contains(rec.Body.String(), good) || strings.Contains(got, good) {
				t.Fatal("the key was echoed")
			}
		})
	}
}

func TestStoreDownIs503NotAPanic(t *testing.T) {
	h := newHarness(t, nil)
	h.users.err = errors.Join(cosmos.ErrUnavailable, errors.New("dial tcp: refused"))
	rec := h.do(t, "POST", "/mcp", map[string]string{"X-Api-Key": h.key(t, "t.alice", 2, "full")}, ping)
	if rec.Code != 503 || strings.Contains(rec.Body.String(), "dial tcp") {
		t.Fatalf("status %d body %s", rec.Code, rec.Body)
	}
	ready := h.do(t, "GET", "/readyz", nil, "")
	if ready.Code != 503 {
		t.Fatalf("/readyz %d", ready.Code)
	}
}

func TestOneStoreReadPerRequest(t *testing.T) {
	h := newHarness(t, nil)
	key := h.key(t, "t.alice", 2, "full")
	h.do(t, "POST", "/mcp", map[string]string{"X-Api-Key": key}, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	if h.users.reads != 1 {
		t.Fatalf("store reads per request = %d, want 1", h.users.reads)
	}
}

func TestOriginAndHost(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.AllowedOrigins = []string{"https://inspector.example"} })
	key := h.key(t, "t.alice", 2, "full")
	cases := []struct {
		name    string
		headers map[string]string
		status  int
	}{
		{"no origin (not a browser)", map[string]string{}, 200},
		{"same loopback origin", map[string]string{"Origin": "http://127.0.0.1:8080"}, 200},
		{"allowed origin", map[string]string{"Origin": "https://inspector.example"}, 200},
		{"foreign origin", map[string]string{"Origin": "https://evil.example"}, 403},
		{"null origin", map[string]string{"Origin": "null"}, 403},
		{"DNS rebinding: evil host and origin", map[string]string{"Host": "evil.example.com", "Origin": "http://evil.example.com"}, 403},
		{"DNS rebinding: evil host alone", map[string]string{"Host": "evil.example.com"}, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.headers["X-Api-Key"] = key
			if rec := h.do(t, "POST", "/mcp", tc.headers, ping); rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
		})
	}
	// The Origin check runs before auth: a foreign page learns nothing about keys.
	if rec := h.do(t, "POST", "/mcp", map[string]string{"Origin": "https://evil.example"}, ping); rec.Code != 403 {
		t.Fatalf("origin must be checked before the key: %d", rec.Code)
	}
}

func TestOAuthDiscoveryIsAbsent(t *testing.T) {
	h := newHarness(t, nil)
	for _, p := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp",
		"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/authorize", "/token", "/register"} {
		if rec := h.do(t, "GET", p, nil, ""); rec.Code != 404 {
			t.Errorf("%s: %d, want 404", p, rec.Code)
		}
	}
}

func TestHealthAndDrain(t *testing.T) {
	h := newHarness(t, nil)
	if rec := h.do(t, "GET", "/healthz", nil, ""); rec.Code != 200 {
		t.Fatalf("/healthz %d", rec.Code)
	}
	if rec := h.do(t, "GET", "/readyz", nil, ""); rec.Code != 200 {
		t.Fatalf("/readyz %d", rec.Code)
	}
	h.srv.Drain()
	if rec := h.do(t, "GET", "/readyz", nil, ""); rec.Code != 503 {
		t.Fatalf("/readyz while draining %d", rec.Code)
	}
}

func TestReadOnlyKeysSeeNoWriteTools(t *testing.T) {
	h := newHarness(t, nil)
	for scope, wantAll := range map[string]bool{"full": true, "read": false} {
		rec := h.do(t, "POST", "/mcp", map[string]string{"X-Api-Key": h.key(t, "t.alice", 2, scope)}, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
		var body struct {
			Result struct {
				Tools []struct {
					Name        string
					Annotations struct{ ReadOnlyHint bool }
				}
			}
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Result.Tools) == 0 {
			t.Fatalf("%s: %s", scope, rec.Body)
		}
		for _, tool := range body.Result.Tools {
			if !wantAll && !tool.Annotations.ReadOnlyHint {
				t.Fatalf("read key lists write tool %s", tool.Name)
			}
		}
	}
}

func TestProductionRefusesEmbeddedDefaults(t *testing.T) {
	_, err := LoadSettings(func(k string) string {
		if k == "FLOWSTUDIO_ENV" {
			return "production"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "TOKEN_SECRET") || !strings.Contains(err.Error(), "COSMOS_ENDPOINT") {
		t.Fatalf("err = %v", err)
	}
}

func TestPanicsBecomeA500WithoutDetail(t *testing.T) {
	h := newHarness(t, nil)
	h.srv.mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("secret-canary") })
	rec := h.do(t, "GET", "/boom", nil, "")
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "secret-canary") || strings.Contains(rec.Body.String(), "goroutine") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}
