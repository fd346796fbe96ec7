package tools

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
)

// signInAt plays the person: opens the consent page the link names and signs in
// (or cancels), and returns where the page sent them back.
func signInAt(t *testing.T, link, choice string) *url.URL {
	t.Helper()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	page, err := noRedirect.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != 200 || !strings.Contains(string(body), "<form") {
		t.Fatalf("consent page: %d %s", page.StatusCode, body)
	}
	u, _ := url.Parse(link)
	form := u.Query()
	form.Set("consent", choice)
	resp, err := noRedirect.PostForm(link, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("consent POST: %d %v", resp.StatusCode, err)
	}
	return back
}

// TestCreateLiveConnectionSignInByLink: a new OAuth connection is created
// unauthenticated, the person signs in at the link, and the follow-up call says
// connected with a paste-ready connection reference.
func TestCreateLiveConnectionSignInByLink(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	env := sim.ContosoDefaultEnv
	var out createConnectionOut
	h.mustCall(t, "create_live_connection", map[string]any{"environmentName": env, "connectorName": "shared_contosotasks",
		"displayName": "Tasks for the agent"}, &out)
	if !out.Created || out.Status != "signInRequired" || out.SignIn != "link" || !strings.Contains(out.SignInLink, "/consent/login?") ||
		len(out.ConnectionName) != 32 || !strings.Contains(out.Next, "never open or follow it yourself") || out.ConnectionReferences != nil {
		t.Fatalf("create: %+v", out)
	}
	// It exists, unauthenticated, under the display name given.
	var listed struct{ Connections []connectionRow }
	h.mustCall(t, "list_live_connections", map[string]any{"environmentName": env, "connectorName": "shared_contosotasks"}, &listed)
	found := false
	for _, c := range listed.Connections {
		if c.Name == out.ConnectionName {
			found = c.Status == "Error" && c.ErrorCode == "Unauthenticated" && c.DisplayName == "Tasks for the agent"
		}
	}
	if !found {
		t.Fatalf("the new connection is not listed as unauthenticated: %+v", listed.Connections)
	}

	// Not signed in yet: the follow-up says so, with a fresh link, and creates nothing.
	var again createConnectionOut
	h.mustCall(t, "create_live_connection", map[string]any{"environmentName": env, "connectorName": "shared_contosotasks",
		"connectionName": out.ConnectionName}, &again)
	if again.Created || again.Status != "signInRequired" || again.SignInLink == "" || again.ConnectionName != out.ConnectionName {
		t.Fatalf("before sign-in: %+v", again)
	}
	// A person who cancels is sent back with an error, and nothing changes.
	if back := signInAt(t, again.SignInLink, "cancel"); back.Query().Get("error") != "access_denied" {
		t.Fatalf("cancel sent them to %s", back)
	}
	h.mustCall(t, "create_live_connection", map[string]any{"environmentName": env, "connectorName": "shared_contosotasks",
		"connectionName": out.ConnectionName}, &again)
	if again.Status != "signInRequired" {
		t.Fatalf("after a cancelled sign-in: %+v", again)
	}
	// The person signs in; they land on the return URL (here the dashboard).
	back := signInAt(t, out.SignInLink, "accept")
	if back.Scheme+"://"+back.Host+back.Path != "https://flowstudio.test/dashboard" || back.Query().Get("code") == "" {
		t.Fatalf("sent back to %s", back)
	}
	var done createConnectionOut
	h.mustCall(t, "create_live_connection", map[string]any{"environmentName": env, "connectorName": "shared_contosotasks",
		"connectionName": out.ConnectionName}, &done)
	if done.Status != "connected" || done.SignIn != "notNeeded" || done.Created || done.SignInLink != "" || done.ConnectionReferences == nil ||
		*done.ConnectionReferences != (connectionReference{ConnectionName: out.ConnectionName, Source: "Embedded", ID: "/providers/Microsoft.PowerApps/apis/shared_contosotasks"}) {
		t.Fatalf("after sign-in: %+v", done)
	}
	// test_live_connection agrees.
	var tested testConnectionOut
	h.mustCall(t, "test_live_connection", map[string]any{"environmentName": env, "connectorName": "shared_contosotasks",
		"connectionName": out.ConnectionName}, &tested)
	if tested.Status != "Connected" {
		t.Fatalf("test_live_connection: %+v", tested)
	}
	// The calls used the Power Apps API with the default sign-in's audience only.
	for _, r := range h.Sim.Requests() {
		if r.Host != "powerapps" && r.Host != "consent" && r.Host != "apihub" {
			t.Errorf("request to %s %s", r.Host, r.Path)
		}
	}
}

// TestCreateLiveConnectionKinds: a connector that needs no sign-in is connected at
// once; one that needs keys is refused before anything is created; an expired
// connection is signed in again.
func TestCreateLiveConnectionKinds(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	env := sim.ContosoDefaultEnv

	var open createConnectionOut
	h.mustCall(t, "create_live_connection", map[string]any{"environmentName": env, "connectorName": "shared_contosoholidays"}, &open)
	if !open.Created || open.Status != "connected" || open.SignIn != "notNeeded" || open.ConnectionReferences == nil {
		t.Fatalf("no-sign-in connector: %+v", open)
	}

	h.Sim.ResetRequests()
	connError(t, h.call(t, "create_live_connection", map[string]any{"environmentName": env, "connectorName": "shared_contosoinventory"}),
		"needs keys or account details", "API Key, Server", "Power Automate (Data → Connections")
	for _, r := range h.Sim.Requests() {
		if r.Method != "GET" {
			t.Errorf("a key-based connector got %s %s", r.Method, r.Path)
		}
	}

	expired := connectionOf(t, h, env, "shared_twitter", false)
	var re createConnectionOut
	h.mustCall(t, "create_live_connection", map[string]any{"environmentName": env, "connectorName": "shared_twitter",
		"connectionName": expired.Name}, &re)
	if re.Created || re.Status != "signInRequired" || re.SignInLink == "" {
		t.Fatalf("re-sign-in: %+v", re)
	}
	signInAt(t, re.SignInLink, "accept")
	h.mustCall(t, "create_live_connection", map[string]any{"environmentName": env, "connectorName": "shared_twitter",
		"connectionName": expired.Name}, &re)
	if re.Status != "connected" {
		t.Fatalf("after signing the expired connection in: %+v", re)
	}

	// Unknown connectors and connections, another tenant's environment: mapped refusals.
	connError(t, h.call(t, "create_live_connection", map[string]any{"environmentName": env, "connectorName": "shared_nosuchthing"}),
		"connector not found", "status 404", "code ApiNotFound")
	connError(t, h.call(t, "create_live_connection", map[string]any{"environmentName": env, "connectorName": "shared_contosotasks",
		"connectionName": "0123456789abcdef0123456789abcdef"}), "connection not found", "list_live_connections")
	connError(t, h.call(t, "create_live_connection", map[string]any{"environmentName": sim.FabrikamDefaultEnv, "connectorName": "shared_contosotasks"}),
		"status 403", "EnvironmentAccessDenied")
}

// TestCreateLiveConnectionElicitsTheLink: over MCP, a client that declared URL-mode
// elicitation gets elicitation/create with the sign-in page on the call's stream,
// and the result carries no link for the agent.
func TestCreateLiveConnectionElicitsTheLink(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	s := rpc.NewServer(rpc.Options{Info: rpc.Implementation{Name: "t", Version: "1"}, SessionSecret: []byte("0123456789abcdef0123456789abcdef")})
	h.Catalog.Register(s)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), h.Principal)))
	}))
	t.Cleanup(srv.Close)
	post := func(sid, body string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if sid != "" {
			req.Header.Set(rpc.SessionHeader, sid)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	init, _ := post("", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"url":{}}},"clientInfo":{"name":"t","version":"1"}}}`)
	sid := init.Header.Get(rpc.SessionHeader)
	resp, body := post(sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"create_live_connection","arguments":{"environmentName":"`+
		sim.ContosoDefaultEnv+`","connectorName":"shared_contosotasks"}}}`)
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("not a stream: %s", body)
	}
	var events []string
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, "data: "); ok && v != "" {
			events = append(events, v)
		}
	}
	if len(events) != 2 {
		t.Fatalf("events %q", events)
	}
	var req struct {
		Method string `json:"method"`
		Params struct {
			Mode, Message, URL, ElicitationID string
		} `json:"params"`
	}
	json.Unmarshal([]byte(events[0]), &req)
	var res struct {
		Result struct {
			StructuredContent createConnectionOut `json:"structuredContent"`
		} `json:"result"`
	}
	json.Unmarshal([]byte(events[1]), &res)
	out := res.Result.StructuredContent
	if req.Method != "elicitation/create" || req.Params.Mode != "url" || !strings.Contains(req.Params.URL, "/consent/login?") ||
		req.Params.ElicitationID != out.ConnectionName || !strings.Contains(req.Params.Message, "Contoso Tasks") {
		t.Fatalf("elicitation request %s", events[0])
	}
	if out.SignIn != "elicited" || out.SignInLink != "" || out.Status != "signInRequired" {
		t.Fatalf("result %s", events[1])
	}
	// The person signs in at the elicited page; a follow-up call (no elicitation needed) confirms.
	signInAt(t, req.Params.URL, "accept")
	_, body = post(sid, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"create_live_connection","arguments":{"environmentName":"`+
		sim.ContosoDefaultEnv+`","connectorName":"shared_contosotasks","connectionName":"`+out.ConnectionName+`"}}}`)
	if !strings.Contains(body, `\"status\":\"connected\"`) && !strings.Contains(body, `"status":"connected"`) {
		t.Fatalf("follow-up: %s", body)
	}
}

// TestConnectorAuthOf: how connectors sign in, from their connection parameters.
func TestConnectorAuthOf(t *testing.T) {
	for name, c := range map[string]struct {
		params, sets string
		want         connectorAuth
	}{
		"oauth":    {`{"token":{"type":"oauthSetting","uiDefinition":{"constraints":{"required":"true"}}}}`, "", connectorAuth{oauth: true}},
		"nothing":  {`{}`, "", connectorAuth{}},
		"absent":   {``, "", connectorAuth{}},
		"api key":  {`{"api_key":{"type":"securestring","uiDefinition":{"displayName":"API Key","constraints":{"required":"true"}}}}`, "", connectorAuth{requires: []string{"API Key"}}},
		"optional": {`{"token":{"type":"oauthSetting"},"region":{"type":"string","uiDefinition":{"constraints":{"required":"false"}}}}`, "", connectorAuth{oauth: true}},
		"hidden":   {`{"token":{"type":"oauthSetting"},"x":{"type":"string","uiDefinition":{"constraints":{"required":"true","hidden":"true"}}}}`, "", connectorAuth{oauth: true}},
		"sets": {`null`, `{"values":[{"name":"gateway","parameters":{"gateway":{"type":"gatewaySetting","uiDefinition":{"displayName":"Gateway","constraints":{"required":"true"}}}}},
			{"name":"firstParty","parameters":{"token":{"type":"oauthSetting"}}}]}`, connectorAuth{oauth: true, set: "firstParty"}},
		"sets, keys only": {``, `{"values":[{"name":"basic","parameters":{"username":{"type":"string","uiDefinition":{"displayName":"User","constraints":{"required":"true"}}}}}]}`,
			connectorAuth{requires: []string{"User"}}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := connectorAuthOf(&powerautomate.Connector{ConnectionParameters: json.RawMessage(c.params), ConnectionParameterSets: json.RawMessage(c.sets)})
			if err != nil || got.oauth != c.want.oauth || got.set != c.want.set || strings.Join(got.requires, ",") != strings.Join(c.want.requires, ",") {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
	if _, err := connectorAuthOf(&powerautomate.Connector{ConnectionParameters: json.RawMessage(`[1,2]`)}); err == nil {
		t.Error("unreadable parameters were accepted")
	}
}

// TestCreateLiveConnectionRefusesHostileConnectionName: the optional connectionName
// is checked like every identifier, before any request.
func TestCreateLiveConnectionRefusesHostileConnectionName(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	for _, bad := range hostileIDs {
		h.Sim.ResetRequests()
		connError(t, h.call(t, "create_live_connection", map[string]any{"environmentName": sim.ContosoDefaultEnv,
			"connectorName": "shared_contosotasks", "connectionName": bad}), "connectionName")
		if n := len(h.Sim.Requests()); n != 0 {
			t.Errorf("connectionName %q: %d upstream requests", bad, n)
		}
	}
}
