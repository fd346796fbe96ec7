package server

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server/oauth"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
)

// /mcp/oauth end to end over HTTP: the authorization server, the person's side on the
// simulator's Entra ID stand-in, and every attack of issue 13's table.

// oauthCallback is a client's redirect URI: it records what it receives.
type oauthCallback struct {
	srv  *httptest.Server
	mu   sync.Mutex
	last url.Values
	hits int
}

func newOAuthCallback(t *testing.T) *oauthCallback {
	cb := &oauthCallback{}
	cb.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cb.mu.Lock()
		cb.last, cb.hits = r.URL.Query(), cb.hits+1
		cb.mu.Unlock()
		_, _ = io.WriteString(w, "callback")
	}))
	t.Cleanup(cb.srv.Close)
	return cb
}

func (cb *oauthCallback) uri() string { return cb.srv.URL + "/cb" }

func (cb *oauthCallback) got() (url.Values, int) {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	return cb.last, cb.hits
}

func pkcePair() (verifier, challenge string) {
	verifier = oauth.NewSecret("v")
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// oauthCall sends one request to the authorization server and decodes its JSON
// answer (nil when it is not JSON); the header is for checks that need it.
func oauthCall(t *testing.T, method, target, contentType, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, resp.Header, out
}

func postJSON(t *testing.T, target string, body any) (int, map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(body)
	status, _, out := oauthCall(t, http.MethodPost, target, "application/json", string(raw))
	return status, out
}

func registerClient(t *testing.T, h *webHarness, name string, redirects ...string) string {
	t.Helper()
	status, out := postJSON(t, h.ts.URL+oauth.RegisterPath, map[string]any{"client_name": name, "redirect_uris": redirects})
	if status != 201 || out["client_id"] == "" || out["token_endpoint_auth_method"] != "none" {
		t.Fatalf("registration: %d %v", status, out)
	}
	return out["client_id"].(string)
}

func tokenRequest(t *testing.T, h *webHarness, form url.Values) (int, map[string]any) {
	t.Helper()
	status, header, out := oauthCall(t, http.MethodPost, h.ts.URL+oauth.TokenPath, "application/x-www-form-urlencoded", form.Encode())
	if cc := header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("token answer Cache-Control %q", cc)
	}
	return status, out
}

// authParams are a valid authorization request's parameters.
func authParams(h *webHarness, clientID, redirect, challenge string) url.Values {
	return url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {"st-123"},
		"resource": {h.ts.URL + oauth.ResourcePath}, "scope": {oauth.ScopeFull}}
}

var consentReq = regexp.MustCompile(`name="req" value="([^"]+)"`)

// authorize runs the browser part: the authorize URL, Microsoft sign-in on the
// simulator when the browser has no session, our consent page, Allow. It returns the
// consent page and what the client's redirect URI received.
func authorize(t *testing.T, h *webHarness, c *http.Client, cb *oauthCallback, q url.Values, email string) (webPage, url.Values) {
	t.Helper()
	page := webFetch(t, c, "GET", h.ts.URL+oauth.AuthorizePath+"?"+q.Encode(), nil, nil)
	if strings.Contains(page.url.Path, "/sim/entra/") { // not signed in: Microsoft first
		if page.status != 200 {
			t.Fatalf("sign-in page %d", page.status)
		}
		webFetch(t, c, "POST", page.url.String(), url.Values{"login_email": {email}}, nil)
		page = webFetch(t, c, "POST", page.url.String(), url.Values{"login_email": {email}, "consent": {"accept"}}, nil)
	}
	if page.status != 200 || page.url.Path != "/oauth/consent" || !strings.Contains(page.body, `id="allow"`) {
		t.Fatalf("no consent page: %s %d\n%s", page.url, page.status, page.body)
	}
	_, before := cb.got()
	end := webFetch(t, c, "POST", h.ts.URL+"/oauth/consent", url.Values{"csrf": {webMatch(t, csrfField, page.body)},
		"req": {webMatch(t, consentReq, page.body)}, "action": {"allow"}},
		map[string]string{"Origin": h.ts.URL, "Sec-Fetch-Site": "same-origin"})
	got, hits := cb.got()
	if end.body != "callback" || hits != before+1 {
		t.Fatalf("consent did not reach the client: %s %d\n%s", end.url, end.status, end.body)
	}
	return page, got
}

// mcpOAuth posts a JSON-RPC request to path with an Authorization header.
func mcpOAuth(t *testing.T, h *webHarness, path, authz, body string) (int, http.Header, string) {
	t.Helper()
	status, header, raw := h.postJSONRPC(t, path, "2025-06-18", "Authorization", authz, body)
	return status, header, string(raw)
}

const toolsListBody = `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`

func bearer(tok any) string { return "Bearer " + tok.(string) }

// oauthGrant authorizes and redeems the code; it returns the token answer.
func oauthGrant(t *testing.T, h *webHarness, c *http.Client, cb *oauthCallback, clientID, email string, edit func(url.Values)) map[string]any {
	t.Helper()
	verifier, challenge := pkcePair()
	q := authParams(h, clientID, cb.uri(), challenge)
	if edit != nil {
		edit(q)
	}
	_, got := authorize(t, h, c, cb, q, email)
	status, tok := tokenRequest(t, h, url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")},
		"redirect_uri": {cb.uri()}, "client_id": {clientID}, "code_verifier": {verifier}, "resource": {h.ts.URL + oauth.ResourcePath}})
	if status != 200 {
		t.Fatalf("token: %d %v", status, tok)
	}
	return tok
}

func TestOAuthDiscoveryAndChallenge(t *testing.T) {
	t.Parallel()
	h, _, _ := newSimWebHarness(t)
	base := h.ts.URL
	for _, p := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp",
		"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/authorize", "/token", "/register"} {
		if resp, err := http.Get(base + p); err != nil || resp.StatusCode != 404 {
			t.Errorf("%s: %v %v, want 404 (header clients must not start OAuth)", p, resp.StatusCode, err)
		}
	}
	get := func(p string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest("GET", base+p, nil)
		req.Header.Set("Origin", "https://inspector.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", p, resp.StatusCode, err)
		}
		defer resp.Body.Close()
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: no CORS for any origin", p)
		}
		var doc map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&doc)
		return doc
	}
	prm := get(oauth.ResourceMetaPath)
	if prm["resource"] != base+"/mcp/oauth" || prm["authorization_servers"].([]any)[0] != base+"/oauth" {
		t.Errorf("protected resource metadata: %v", prm)
	}
	for _, p := range []string{oauth.ASMetaPath, oauth.OIDCMetaPath, oauth.OIDCAppendedPath} {
		md := get(p)
		if md["issuer"] != base+"/oauth" || md["token_endpoint"] != base+"/oauth/token" ||
			md["code_challenge_methods_supported"].([]any)[0] != "S256" || len(md["code_challenge_methods_supported"].([]any)) != 1 ||
			md["client_id_metadata_document_supported"] != true || md["authorization_response_iss_parameter_supported"] != true {
			t.Errorf("%s: %v", p, md)
		}
	}
	// A preflight to the token endpoint from any origin.
	req, _ := http.NewRequest("OPTIONS", base+oauth.TokenPath, nil)
	req.Header.Set("Origin", "https://inspector.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("token preflight: %v %v", resp.StatusCode, err)
	}
	status, hdr, body := mcpOAuth(t, h, "/mcp/oauth", "", toolsListBody)
	want := `Bearer resource_metadata="` + base + `/.well-known/oauth-protected-resource/mcp/oauth"`
	if status != 401 || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), want) {
		t.Errorf("401 challenge: %d %q", status, hdr.Get("WWW-Authenticate"))
	}
	if !strings.Contains(body, "Authorization: Bearer") {
		t.Errorf("401 body does not say what to send: %s", body)
	}
	// /mcp keeps its own challenge: no OAuth invitation there.
	if status, hdr, _ := mcpOAuth(t, h, "/mcp", "", toolsListBody); status != 401 || strings.Contains(hdr.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("/mcp challenge: %d %q", status, hdr.Get("WWW-Authenticate"))
	}
}

func TestCORSPreflights(t *testing.T) {
	t.Parallel()
	h, _, _ := newSimWebHarness(t, func(o *webOptions) {
		o.settings = func(s *Settings) { s.AllowedOrigins = []string{"https://inspector.example"} }
	})
	// send sends req and returns the answer's status and header (the body is not read).
	send := func(req *http.Request) (int, http.Header) {
		t.Helper()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	for _, path := range []string{"/mcp", "/mcp/oauth"} {
		req, _ := http.NewRequest("OPTIONS", h.ts.URL+path, nil)
		req.Header.Set("Origin", "https://inspector.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, mcp-protocol-version")
		status, header := send(req)
		allow := strings.ToLower(header.Get("Access-Control-Allow-Headers"))
		if status != 204 || header.Get("Access-Control-Allow-Origin") != "https://inspector.example" ||
			!strings.Contains(header.Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(strings.ToLower(header.Get("Access-Control-Expose-Headers")), "mcp-session-id") ||
			!strings.Contains(strings.ToLower(header.Get("Access-Control-Expose-Headers")), "www-authenticate") {
			t.Errorf("%s preflight: %d %v", path, status, header)
		}
		for _, hd := range []string{"x-api-key", "authorization", "content-type", "mcp-protocol-version", "mcp-session-id", "last-event-id"} {
			if !strings.Contains(allow, hd) {
				t.Errorf("%s preflight does not allow %s", path, hd)
			}
		}
		req.Header.Set("Origin", "https://evil.example")
		if status, header := send(req); status != 403 || header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s preflight from another origin: %d", path, status)
		}
	}
	// The real request from the allowed origin is readable by it (401 here: no key).
	req, _ := http.NewRequest("POST", h.ts.URL+"/mcp/oauth", strings.NewReader(toolsListBody))
	req.Header.Set("Origin", "https://inspector.example")
	req.Header.Set("Content-Type", "application/json")
	if status, header := send(req); status != 401 || header.Get("Access-Control-Allow-Origin") != "https://inspector.example" {
		t.Errorf("POST from the allowed origin: %d %v", status, header)
	}
}

func TestOAuthFlowEndToEnd(t *testing.T) {
	t.Parallel()
	h, tap, simulator := newSimWebHarness(t)
	cb := newOAuthCallback(t)
	clientID := registerClient(t, h, "Claude Test", cb.uri())
	c := h.browser(t)
	verifier, challenge := pkcePair()
	q := authParams(h, clientID, cb.uri(), challenge)
	page, got := authorize(t, h, c, cb, q, "alice@contoso.com")
	for _, want := range []string{"Claude Test", cb.srv.Listener.Addr().String(), "mcp:full"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the consent page does not show %q", want)
		}
	}
	if got.Get("state") != "st-123" || got.Get("iss") != h.ts.URL+"/oauth" || got.Get("code") == "" {
		t.Fatalf("authorization response: %v", got)
	}
	code := got.Get("code")
	status, tok := tokenRequest(t, h, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {cb.uri()}, "client_id": {clientID}, "code_verifier": {verifier}, "resource": {h.ts.URL + oauth.ResourcePath}})
	if status != 200 || tok["token_type"] != "Bearer" || tok["expires_in"].(float64) > 3600 || tok["scope"] != oauth.ScopeFull || tok["refresh_token"] == "" {
		t.Fatalf("token: %d %v", status, tok)
	}
	at := tok["access_token"].(string)
	status, _, body := mcpOAuth(t, h, "/mcp/oauth", bearer(at), toolsListBody)
	if status != 200 || !strings.Contains(body, `"name":"update_live_flow"`) {
		t.Fatalf("tools/list at /mcp/oauth: %d %.300s", status, body)
	}
	status, _, body = mcpOAuth(t, h, "/mcp/oauth", bearer(at),
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_live_environments","arguments":{}}}`)
	if status != 200 || !strings.Contains(body, `"isError":false`) || !strings.Contains(body, "environments") {
		t.Fatalf("tools/call at /mcp/oauth: %d %s", status, body)
	}
	// The same token elsewhere is refused with words that say where it belongs.
	if status, _, body := mcpOAuth(t, h, "/mcp", bearer(at), toolsListBody); status != 401 || !strings.Contains(body, "/mcp/oauth") {
		t.Errorf("access token at /mcp: %d %s", status, body)
	}
	req, _ := http.NewRequest("POST", h.ts.URL+"/mcp/oauth?access_token="+at, strings.NewReader(toolsListBody))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("access token in the query string: %v %v", resp.StatusCode, err)
	}

	// Refresh rotates; the dashboard lists the app.
	rt1 := tok["refresh_token"].(string)
	status, tok2 := tokenRequest(t, h, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}, "client_id": {clientID}})
	if status != 200 || tok2["refresh_token"] == rt1 || tok2["access_token"] == "" {
		t.Fatalf("refresh: %d %v", status, tok2)
	}
	dash := webFetch(t, c, "GET", h.ts.URL+"/dashboard", nil, nil)
	if !strings.Contains(dash.body, `id="connected-apps"`) || !strings.Contains(dash.body, "Claude Test") {
		t.Fatalf("the dashboard does not list the app:\n%s", dash.body)
	}
	// Revoke from the dashboard: the access token and the refresh token die.
	u := h.user(t, cosmos.UserID(sim.ContosoTenantID, mustOID(simulator, "alice@contoso.com")))
	if len(u.OAuthGrants) != 1 {
		t.Fatalf("grants: %+v", u.OAuthGrants)
	}
	end := webFetch(t, c, "POST", h.ts.URL+"/dashboard/apps/revoke", url.Values{"csrf": {webMatch(t, csrfField, dash.body)},
		"grant": {u.OAuthGrants[0].ID}}, map[string]string{"Origin": h.ts.URL, "Sec-Fetch-Site": "same-origin"})
	if end.url.Path != "/dashboard" || !strings.Contains(end.body, "disconnected") || strings.Contains(end.body, `id="connected-apps"`) {
		t.Fatalf("revoke app: %s\n%s", end.url, end.body)
	}
	if status, _, _ := mcpOAuth(t, h, "/mcp/oauth", bearer(tok2["access_token"]), toolsListBody); status != 401 {
		t.Errorf("access token after the app was revoked: %d", status)
	}
	if status, out := tokenRequest(t, h, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok2["refresh_token"].(string)}, "client_id": {clientID}}); status != 400 || out["error"] != "invalid_grant" {
		t.Errorf("refresh after the app was revoked: %d %v", status, out)
	}

	// No code, verifier, access or refresh token in the store or the log.
	h.assertNoSecrets(t, append(tap.secrets(), code, verifier, at, rt1, tok2["access_token"].(string), tok2["refresh_token"].(string), "alice@contoso.com"))
}

func TestOAuthReadScopeHidesWriteTools(t *testing.T) {
	t.Parallel()
	h, _, _ := newSimWebHarness(t)
	cb := newOAuthCallback(t)
	clientID := registerClient(t, h, "Reader", cb.uri())
	tok := oauthGrant(t, h, h.browser(t), cb, clientID, "alice@contoso.com", func(q url.Values) { q.Set("scope", oauth.ScopeRead) })
	if tok["scope"] != oauth.ScopeRead {
		t.Fatalf("scope %v", tok["scope"])
	}
	status, _, body := mcpOAuth(t, h, "/mcp/oauth", bearer(tok["access_token"]), toolsListBody)
	if status != 200 || strings.Contains(body, `"name":"update_live_flow"`) || !strings.Contains(body, `"name":"list_live_flows"`) {
		t.Fatalf("read scope tools/list: %d %.300s", status, body)
	}
	// A refresh cannot widen the scope.
	if status, out := tokenRequest(t, h, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)},
		"client_id": {clientID}, "scope": {oauth.ScopeFull}}); status != 400 || out["error"] != "invalid_scope" {
		t.Errorf("widening refresh: %d %v", status, out)
	}
}

func TestOAuthTokensDieOnReissueAndRevoke(t *testing.T) {
	t.Parallel()
	h, _, _ := newSimWebHarness(t)
	cb := newOAuthCallback(t)
	clientID := registerClient(t, h, "App", cb.uri())
	c := h.browser(t)
	for _, action := range []string{"/dashboard/reissue", "/dashboard/revoke"} {
		tok := oauthGrant(t, h, c, cb, clientID, "alice@contoso.com", nil)
		if status, _, _ := mcpOAuth(t, h, "/mcp/oauth", bearer(tok["access_token"]), toolsListBody); status != 200 {
			t.Fatalf("before %s: %d", action, status)
		}
		dash := webFetch(t, c, "GET", h.ts.URL+"/dashboard", nil, nil)
		h.post(t, c, action, webMatch(t, csrfField, dash.body))
		if status, _, body := mcpOAuth(t, h, "/mcp/oauth", bearer(tok["access_token"]), toolsListBody); status != 401 {
			t.Errorf("access token after %s: %d %s", action, status, body)
		}
		if status, out := tokenRequest(t, h, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {clientID}}); status != 400 || out["error"] != "invalid_grant" {
			t.Errorf("refresh after %s: %d %v", action, status, out)
		}
	}
}

func TestOAuthAttacks(t *testing.T) {
	t.Parallel()
	var metaBase string
	meta := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/huge.json":
			_, _ = w.Write([]byte(`{"client_id":"` + metaBase + `/huge.json","client_name":"`))
			chunk := []byte(strings.Repeat("x", 1<<16))
			for range 160 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/loop.json":
			http.Redirect(w, r, "/loop.json", http.StatusFound)
		}
	}))
	t.Cleanup(meta.Close)
	metaBase = meta.URL
	roots := meta.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	h, _, simulator := newSimWebHarness(t, func(o *webOptions) { o.metadataRoots = roots })
	cb := newOAuthCallback(t)
	clientID := registerClient(t, h, "App", cb.uri())
	otherID := registerClient(t, h, "Other", cb.uri())
	c := h.browser(t)
	resource := h.ts.URL + oauth.ResourcePath
	oauthGrant(t, h, c, cb, clientID, "alice@contoso.com", nil) // signs the browser in

	// code returns a fresh code of clientID with its verifier.
	code := func() (string, string) {
		verifier, challenge := pkcePair()
		_, got := authorize(t, h, c, cb, authParams(h, clientID, cb.uri(), challenge), "alice@contoso.com")
		return got.Get("code"), verifier
	}
	redeem := func(code, verifier, client string) (int, map[string]any) {
		return tokenRequest(t, h, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {cb.uri()},
			"client_id": {client}, "code_verifier": {verifier}, "resource": {resource}})
	}
	wantErr := func(name string, status int, out map[string]any, code string) {
		t.Helper()
		if status < 400 || out["error"] != code {
			t.Errorf("%s: %d %v, want %s", name, status, out, code)
		}
	}

	t.Run("token endpoint", func(t *testing.T) {
		cd, _ := code()
		status, out := redeem(cd, "", clientID)
		wantErr("missing PKCE verifier", status, out, "invalid_grant")
		cd, _ = code()
		wrong, _ := pkcePair()
		status, out = redeem(cd, wrong, clientID)
		wantErr("wrong PKCE verifier", status, out, "invalid_grant")
		cd, v := code()
		status, out = redeem(cd, v, otherID)
		wantErr("code for another client", status, out, "invalid_grant")

		cd, v = code()
		status, tok := redeem(cd, v, clientID)
		if status != 200 {
			t.Fatalf("redeem: %d %v", status, tok)
		}
		status, out = redeem(cd, v, clientID)
		wantErr("code replay", status, out, "invalid_grant")
		if status, _, _ := mcpOAuth(t, h, "/mcp/oauth", bearer(tok["access_token"]), toolsListBody); status != 401 {
			t.Errorf("the token of a replayed code still works: %d", status)
		}

		cd, v = code()
		_, tok = redeem(cd, v, clientID)
		rt := tok["refresh_token"].(string)
		status, tok2 := tokenRequest(t, h, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {clientID}})
		if status != 200 {
			t.Fatalf("refresh: %d %v", status, tok2)
		}
		status, out = tokenRequest(t, h, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {clientID}})
		wantErr("refresh token replay", status, out, "invalid_grant")
		status, out = tokenRequest(t, h, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok2["refresh_token"].(string)}, "client_id": {clientID}})
		wantErr("the newest refresh token after a replay (grant revoked)", status, out, "invalid_grant")
		if status, _, _ := mcpOAuth(t, h, "/mcp/oauth", bearer(tok2["access_token"]), toolsListBody); status != 401 {
			t.Errorf("the access token of a replayed grant still works: %d", status)
		}
		cd, v = code()
		status, out = tokenRequest(t, h, url.Values{"grant_type": {"authorization_code"}, "code": {cd}, "redirect_uri": {cb.uri()},
			"client_id": {clientID}, "code_verifier": {v}, "resource": {h.ts.URL + "/mcp"}})
		wantErr("token request for another resource", status, out, "invalid_target")
		status, out = tokenRequest(t, h, url.Values{"grant_type": {"password"}, "client_id": {clientID}})
		wantErr("password grant", status, out, "unsupported_grant_type")
	})

	t.Run("access tokens", func(t *testing.T) {
		tokens := oauth.NewTokens(h.keys.OAuthKey(), nil)
		u := h.user(t, cosmos.UserID(sim.ContosoTenantID, mustOID(simulator, "alice@contoso.com")))
		if len(u.OAuthGrants) == 0 {
			t.Fatal("no grant to forge with")
		}
		g := u.OAuthGrants[len(u.OAuthGrants)-1]
		other, _, _ := tokens.Issue(h.ts.URL+"/oauth", "https://other.example/mcp", u.ID, u.KeyGeneration, g.ID, oauth.ScopeFull, clientID)
		if status, hdr, _ := mcpOAuth(t, h, "/mcp/oauth", "Bearer "+other, toolsListBody); status != 401 || !strings.Contains(hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("token with another audience: %d %q", status, hdr.Get("WWW-Authenticate"))
		}
		old := oauth.NewTokens(h.keys.OAuthKey(), func() time.Time { return time.Now().Add(-2 * time.Hour) })
		expired, _, _ := old.Issue(h.ts.URL+"/oauth", resource, u.ID, u.KeyGeneration, g.ID, oauth.ScopeFull, clientID)
		if status, _, _ := mcpOAuth(t, h, "/mcp/oauth", "Bearer "+expired, toolsListBody); status != 401 {
			t.Errorf("expired token: %d", status)
		}
		good, _, _ := tokens.Issue(h.ts.URL+"/oauth", resource, u.ID, u.KeyGeneration, g.ID, oauth.ScopeFull, clientID)
		if status, _, _ := mcpOAuth(t, h, "/mcp/oauth", "Bearer "+good, toolsListBody); status != 200 {
			t.Errorf("control: a good token is refused (%d), so the refusals above prove nothing", status)
		}
		key, err := h.keys.Issue(u.ID, u.KeyGeneration, time.Unix(u.KeyIssuedAt, 0), "full")
		if err != nil {
			t.Fatal(err)
		}
		if status, _, _ := mcpOAuth(t, h, "/mcp/oauth", "Bearer "+key, toolsListBody); status != 401 {
			t.Errorf("an API key as a bearer token: %d", status)
		}
	})

	t.Run("authorization requests", func(t *testing.T) {
		nf := noFollow(c)
		_, challenge := pkcePair()
		shown := func(name string, q url.Values, want string) {
			t.Helper()
			_, before := cb.got()
			p := webFetch(t, nf, "GET", h.ts.URL+oauth.AuthorizePath+"?"+q.Encode(), nil, nil)
			if _, after := cb.got(); p.status != 400 || after != before || p.header.Get("Location") != "" || !strings.Contains(p.body, want) {
				t.Errorf("%s: %d %q, want a 400 page saying %q and no redirect\n%s", name, p.status, p.header.Get("Location"), want, p.body)
			}
		}
		redirected := func(name string, q url.Values, want string) {
			t.Helper()
			p := webFetch(t, nf, "GET", h.ts.URL+oauth.AuthorizePath+"?"+q.Encode(), nil, nil)
			loc, err := url.Parse(p.header.Get("Location"))
			if p.status != 302 || err != nil || !strings.HasPrefix(loc.String(), cb.uri()+"?") || loc.Query().Get("error") != want ||
				loc.Query().Get("iss") != h.ts.URL+"/oauth" {
				t.Errorf("%s: %d %q, want a redirect to the client with error=%s", name, p.status, p.header.Get("Location"), want)
			}
		}
		edit := func(fn func(url.Values)) url.Values {
			q := authParams(h, clientID, cb.uri(), challenge)
			fn(q)
			return q
		}
		shown("redirect URI not registered", edit(func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }), "redirect_uri")
		shown("redirect URI prefix match", edit(func(q url.Values) { q.Set("redirect_uri", cb.uri()+"/more") }), "exact match")
		shown("redirect URI with extra query", edit(func(q url.Values) { q.Set("redirect_uri", cb.uri()+"?x=1") }), "exact match")
		shown("unknown client", edit(func(q url.Values) { q.Set("client_id", "nobody") }), "unknown client_id")
		shown("CIMD on a private address", edit(func(q url.Values) { q.Set("client_id", "https://10.0.0.1/client.json") }), "does not fetch from")
		shown("CIMD of 10 MB", edit(func(q url.Values) { q.Set("client_id", metaBase+"/huge.json") }), "larger than 64 KiB")
		shown("CIMD redirect loop", edit(func(q url.Values) { q.Set("client_id", metaBase+"/loop.json") }), "redirects too often")
		redirected("plain PKCE", edit(func(q url.Values) { q.Set("code_challenge_method", "plain") }), "invalid_request")
		redirected("no PKCE", edit(func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }), "invalid_request")
		redirected("no resource", edit(func(q url.Values) { q.Del("resource") }), "invalid_target")
		redirected("another resource", edit(func(q url.Values) { q.Set("resource", h.ts.URL+"/mcp") }), "invalid_target")
		redirected("unknown scope", edit(func(q url.Values) { q.Set("scope", "admin") }), "invalid_scope")
		redirected("implicit flow", edit(func(q url.Values) { q.Set("response_type", "token") }), "unsupported_response_type")

		// Open redirect through state: the code goes to the registered URI only, with
		// state echoed as data.
		evil := "https://evil.example/steal"
		_, got := authorize(t, h, c, cb, edit(func(q url.Values) { q.Set("state", evil) }), "alice@contoso.com")
		if got.Get("state") != evil || got.Get("code") == "" {
			t.Errorf("state not echoed as data: %v", got)
		}
	})

	t.Run("registration", func(t *testing.T) {
		for _, uri := range []string{"javascript:alert(document.cookie)", "http://evil.example/cb", "data:text/html,x", "https://a.example/cb#f"} {
			status, out := postJSON(t, h.ts.URL+oauth.RegisterPath, map[string]any{"client_name": "x", "redirect_uris": []string{uri}})
			if status != 400 || out["error"] != "invalid_redirect_uri" {
				t.Errorf("DCR with %s: %d %v", uri, status, out)
			}
		}
		if status, out := postJSON(t, h.ts.URL+oauth.RegisterPath, map[string]any{"client_name": "x"}); status != 400 || out["error"] != "invalid_redirect_uri" {
			t.Errorf("DCR without redirect URIs: %d %v", status, out)
		}
	})

	t.Run("consent CSRF", func(t *testing.T) {
		_, challenge := pkcePair()
		p := webFetch(t, c, "GET", h.ts.URL+oauth.AuthorizePath+"?"+authParams(h, clientID, cb.uri(), challenge).Encode(), nil, nil)
		if p.url.Path != "/oauth/consent" {
			t.Fatalf("no consent page: %s", p.url)
		}
		csrf, tag := webMatch(t, csrfField, p.body), webMatch(t, consentReq, p.body)
		_, before := cb.got()
		for name, try := range map[string]struct {
			form    url.Values
			headers map[string]string
		}{
			"from another site":   {url.Values{"csrf": {csrf}, "req": {tag}, "action": {"allow"}}, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}},
			"without CSRF token":  {url.Values{"req": {tag}, "action": {"allow"}}, map[string]string{"Origin": h.ts.URL}},
			"for another request": {url.Values{"csrf": {csrf}, "req": {"forged"}, "action": {"allow"}}, map[string]string{"Origin": h.ts.URL}},
		} {
			end := webFetch(t, noFollow(c), "POST", h.ts.URL+"/oauth/consent", try.form, try.headers)
			if end.status != 403 || end.header.Get("Location") != "" {
				t.Errorf("consent %s: %d %q", name, end.status, end.header.Get("Location"))
			}
		}
		// Another browser (no session) cannot use this one's consent either.
		stranger := h.browser(t)
		end := webFetch(t, noFollow(stranger), "POST", h.ts.URL+"/oauth/consent", url.Values{"csrf": {csrf}, "req": {tag}, "action": {"allow"}},
			map[string]string{"Origin": h.ts.URL})
		if end.status != 403 {
			t.Errorf("consent from a browser without the session: %d", end.status)
		}
		if _, after := cb.got(); after != before {
			t.Error("a refused consent reached the client")
		}
	})
}

func TestOAuthBadInputIsAClearError(t *testing.T) {
	t.Parallel()
	h, _, _ := newSimWebHarness(t)
	do := func(method, path, contentType, body string) (int, map[string]any) {
		t.Helper()
		status, _, out := oauthCall(t, method, h.ts.URL+path, contentType, body)
		return status, out
	}
	form := "application/x-www-form-urlencoded"
	for _, c := range []struct {
		name, method, path, ctype, body string
		status                          int
		code                            string
	}{
		{"token by GET", "GET", oauth.TokenPath, "", "", 405, "invalid_request"},
		{"token as JSON", "POST", oauth.TokenPath, "application/json", `{"grant_type":"authorization_code"}`, 400, "invalid_request"},
		{"token without client_id", "POST", oauth.TokenPath, form, "grant_type=authorization_code&code=x", 401, "invalid_client"},
		{"token without grant_type", "POST", oauth.TokenPath, form, "client_id=c", 400, "invalid_request"},
		{"token with a repeated parameter", "POST", oauth.TokenPath, form, "client_id=c&grant_type=refresh_token&refresh_token=a&refresh_token=b", 400, "invalid_request"},
		{"token with an unknown code", "POST", oauth.TokenPath, form, "client_id=c&grant_type=authorization_code&code=nope&code_verifier=x", 400, "invalid_grant"},
		{"token with an unknown refresh token", "POST", oauth.TokenPath, form, "client_id=c&grant_type=refresh_token&refresh_token=nope", 400, "invalid_grant"},
		{"token body over 16 KiB", "POST", oauth.TokenPath, form, "client_id=c&grant_type=refresh_token&refresh_token=" + strings.Repeat("a", 17<<10), 400, "invalid_request"},
		{"registration by GET", "GET", oauth.RegisterPath, "", "", 405, "invalid_request"},
		{"registration as a form", "POST", oauth.RegisterPath, form, "redirect_uris=https://a.example/cb", 400, "invalid_client_metadata"},
		{"registration not JSON", "POST", oauth.RegisterPath, "application/json", `{"redirect_uris":`, 400, "invalid_client_metadata"},
		{"registration over 16 KiB", "POST", oauth.RegisterPath, "application/json", `{"client_name":"` + strings.Repeat("a", 17<<10) + `"}`, 400, "invalid_client_metadata"},
		{"registration with a secret method", "POST", oauth.RegisterPath, "application/json", `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}`, 400, "invalid_client_metadata"},
		{"registration with the implicit grant", "POST", oauth.RegisterPath, "application/json", `{"redirect_uris":["https://a.example/cb"],"grant_types":["implicit"]}`, 400, "invalid_client_metadata"},
	} {
		status, out := do(c.method, c.path, c.ctype, c.body)
		if status != c.status || out["error"] != c.code || out["error_description"] == "" {
			t.Errorf("%s: %d %v, want %d %s with a description", c.name, status, out, c.status, c.code)
		}
	}
	// Nothing was registered or stored by the refusals above: a real registration
	// still works.
	registerClient(t, h, "After", "https://a.example/cb")

	// A flood of registrations is cut off per replica (two replicas here).
	for i := 0; ; i++ {
		status, out := postJSON(t, h.ts.URL+oauth.RegisterPath, map[string]any{"redirect_uris": []string{"https://a.example/cb"}})
		if status == http.StatusTooManyRequests {
			if out["error"] != "temporarily_unavailable" {
				t.Errorf("registration flood: %v", out)
			}
			break
		}
		if status != 201 || i > 4*oauth.DefaultRegistrationsPerMinute {
			t.Fatalf("registration %d: %d %v (no limit reached)", i, status, out)
		}
	}
}
