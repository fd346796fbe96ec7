package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server/identity"
	"github.com/flowstudio/mcp/server/keyring"
	"github.com/golang-jwt/jwt/v5"
)

var fakeUserID = cosmos.UserID(fakeTenant, fakeOID) // both lower-case already

func cookiesOf(h http.Header) map[string]*http.Cookie {
	out := map[string]*http.Cookie{}
	for _, c := range (&http.Response{Header: h}).Cookies() {
		out[c.Name] = c
	}
	return out
}

func TestSignInStoresUserAndShowsKey(t *testing.T) {
	t.Parallel()
	fe, h, c := newEntraHarness(t)

	login := webFetch(t, noFollow(c), "GET", h.ts.URL+"/login", nil, nil)
	if login.status != http.StatusFound {
		t.Fatalf("/login: %d %s", login.status, login.body)
	}
	authz, err := url.Parse(login.header.Get("Location"))
	if err != nil || !strings.HasPrefix(authz.String(), fe.url()+"/organizations/oauth2/v2.0/authorize?") {
		t.Fatalf("/login redirects to %q", login.header.Get("Location"))
	}
	q := authz.Query()
	for k, want := range map[string]string{"client_id": fe.clientID, "response_type": "code", "code_challenge_method": "S256",
		"redirect_uri": h.ts.URL + "/callback", "response_mode": "query"} {
		if q.Get(k) != want {
			t.Errorf("authorize %s = %q, want %q", k, q.Get(k), want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 40 {
			t.Errorf("authorize %s = %q: want a random value", k, q.Get(k))
		}
	}
	wantScopes := "openid profile email offline_access https://service.flow.microsoft.com/Flows.Read.All " +
		"https://service.flow.microsoft.com/Flows.Manage.All https://service.flow.microsoft.com/Activity.Read.All https://service.powerapps.com/User"
	if q.Get("scope") != wantScopes {
		t.Errorf("scope = %q\nwant    %q", q.Get("scope"), wantScopes)
	}
	lc := cookiesOf(login.header)["flowstudio-login"]
	if lc == nil || !lc.HttpOnly || lc.SameSite != http.SameSiteLaxMode || lc.MaxAge != 600 || lc.Path != "/" || lc.Secure || lc.Domain != "" {
		t.Fatalf("login cookie %+v: want HttpOnly, SameSite=Lax, Max-Age 600, Path /, host-only (not Secure on http loopback)", lc)
	}
	if strings.Contains(lc.Value, q.Get("code_challenge")) {
		t.Error("the login cookie should hold the verifier, not the challenge")
	}

	// Follow the rest as a browser: authorize → /callback → /dashboard.
	var sessionSet *http.Cookie
	follow := &http.Client{Jar: c.Jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if s := cookiesOf(req.Response.Header)["flowstudio-session"]; s != nil {
			sessionSet = s
		}
		return nil
	}}
	dash := webFetch(t, follow, "GET", authz.String(), nil, nil)
	if dash.status != 200 || dash.url.String() != h.ts.URL+"/dashboard" {
		t.Fatalf("ended at %s (%d):\n%s", dash.url, dash.status, dash.body)
	}
	if sessionSet == nil || !sessionSet.HttpOnly || sessionSet.SameSite != http.SameSiteLaxMode || sessionSet.MaxAge != 8*3600 || sessionSet.Path != "/" {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Lax, Max-Age 8h, Path /", sessionSet)
	}
	for k, want := range map[string]string{"Cache-Control": "no-store", "Content-Security-Policy": pageCSP,
		"X-Frame-Options": "DENY", "Content-Type": "text/html; charset=utf-8"} {
		if got := dash.header.Get(k); got != want {
			t.Errorf("dashboard %s = %q, want %q", k, got, want)
		}
	}
	for _, want := range []string{"Dana Tester", fakeTenant, "Free", "0 of 200", "claude mcp add --transport http flowstudio " + h.ts.URL + "/mcp",
		".vscode/mcp.json", "~/.cursor/mcp.json", "Re-issue key", "Revoke permission", "myapps.microsoft.com", "Enterprise applications"} {
		if !strings.Contains(dash.body, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	if strings.Contains(dash.body, "<script>") || strings.Contains(dash.body, " style=") || strings.Contains(dash.body, "onclick") {
		t.Error("dashboard has inline script or style")
	}

	key, readKey := webMatch(t, keyField, dash.body), webMatch(t, readKeyField, dash.body)
	// Each key sits in the page once (its masked field); the setups hold the placeholder.
	for name, k := range map[string]string{"full": key, "read-only": readKey} {
		if n := strings.Count(dash.body, k); n != 1 {
			t.Errorf("the %s key is in the dashboard %d times, want 1", name, n)
		}
	}
	if !strings.Contains(dash.body, template.HTMLEscapeString(`--header "x-api-key: `+keyPlaceholder+`"`)) ||
		!strings.Contains(dash.body, template.HTMLEscapeString(`"x-api-key": "`+keyPlaceholder+`"`)) {
		t.Error("the Claude Code and Cursor setups do not carry the key placeholder")
	}
	for _, k := range []struct{ key, scope string }{{key, "full"}, {readKey, "read"}} {
		claims, err := h.keys.Verify(k.key)
		if err != nil || claims.Subject != fakeUserID || claims.Generation != 1 || claims.Scope != k.scope {
			t.Fatalf("key claims %+v, %v: want sub %s gen 1 scope %s", claims, err, fakeUserID, k.scope)
		}
		if st := h.mcpStatus(t, k.key); st != 200 {
			t.Fatalf("MCP with the %s key: %d", k.scope, st)
		}
	}

	u := h.user(t, fakeUserID)
	if u.TenantID != fakeTenant || u.ObjectID != fakeOID || u.Tier != cosmos.TierFree || u.Consent != cosmos.ConsentGranted ||
		u.KeyGeneration != 1 || u.DisplayName != "" || u.EmailHash != h.keys.HashEmail(fakeEmail) || u.SealKeyVersion == "" {
		t.Fatalf("stored user %+v", u)
	}
	var refresh string
	for _, s := range fe.secrets() {
		if strings.HasPrefix(s, "rt-") {
			refresh = s
		}
	}
	if rt, err := h.sealer.Open(context.Background(), u.ID, u.SealedRefreshToken, u.SealKeyVersion); err != nil || string(rt) != refresh {
		t.Fatalf("sealed refresh token does not open to the one Entra gave (%v)", err)
	}

	// A returning user keeps the generation: the same key.
	again := h.signIn(t, h.browser(t))
	if got := webMatch(t, keyField, again.body); got != key {
		t.Fatal("signing in again changed the key of a consented user")
	}
	h.assertNoSecrets(t, append(fe.secrets(), key, readKey, fakeEmail, "Dana Tester"))
}

func TestCookiesAreSecureHostOnHTTPS(t *testing.T) {
	t.Parallel()
	fe := newFakeEntra(t)
	h := newWebHarness(t, webOptions{entra: fe.config(), settings: func(s *Settings) {
		s.PublicURL = "https://flowstudio.example"
		s.Addr = "0.0.0.0:8080"
	}})
	req := httptest.NewRequest("GET", "https://flowstudio.example/login", nil)
	rec := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusFound {
		t.Fatalf("/login: %d %s", rec.Code, rec.Body)
	}
	lc := cookiesOf(rec.Header())["__Host-flowstudio-login"]
	if lc == nil || !lc.Secure || !lc.HttpOnly || lc.Path != "/" || lc.Domain != "" || lc.SameSite != http.SameSiteLaxMode {
		t.Fatalf("login cookie on HTTPS: %+v; Set-Cookie %q", lc, rec.Header().Values("Set-Cookie"))
	}
	if hsts := rec.Header().Get("Strict-Transport-Security"); !strings.HasPrefix(hsts, "max-age=") {
		t.Fatalf("no HSTS on HTTPS: %q", hsts)
	}
	if got, _ := url.Parse(rec.Header().Get("Location")); got.Query().Get("redirect_uri") != "https://flowstudio.example/callback" {
		t.Fatalf("redirect_uri %q", got.Query().Get("redirect_uri"))
	}

	// A cookie without the prefix (which a sibling domain or plain HTTP could plant)
	// is not a session on HTTPS.
	value, _ := h.srv.web.cookies.encode(sessionCookie, webSession{UserID: fakeUserID, TenantID: fakeTenant, SID: "x"}, time.Hour)
	req = httptest.NewRequest("GET", "https://flowstudio.example/dashboard", nil)
	req.AddCookie(&http.Cookie{Name: "flowstudio-session", Value: value})
	rec = httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/" {
		t.Fatalf("unprefixed session cookie accepted on HTTPS: %d %s", rec.Code, rec.Header().Get("Location"))
	}
}

// begin runs /login and the authorize step without following /callback; it returns
// the callback URL the browser would open next.
func (h *webHarness) begin(t *testing.T, c *http.Client) *url.URL {
	t.Helper()
	login := webFetch(t, noFollow(c), "GET", h.ts.URL+"/login", nil, nil)
	authz := webFetch(t, noFollow(c), "GET", login.header.Get("Location"), nil, nil)
	if authz.status != http.StatusFound {
		t.Fatalf("authorize: %d %s", authz.status, authz.body)
	}
	u, err := url.Parse(authz.header.Get("Location"))
	if err != nil || !strings.HasPrefix(u.String(), h.ts.URL+"/callback?") {
		t.Fatalf("authorize redirects to %q", authz.header.Get("Location"))
	}
	return u
}

func withQuery(u *url.URL, edit func(url.Values)) string {
	q := u.Query()
	edit(q)
	v := *u
	v.RawQuery = q.Encode()
	return v.String()
}

func hasSession(h *webHarness, c *http.Client) bool {
	base, _ := url.Parse(h.ts.URL)
	for _, ck := range c.Jar.Cookies(base) {
		if ck.Name == "flowstudio-session" {
			return true
		}
	}
	return false
}

func TestCallbackAttacks(t *testing.T) {
	t.Parallel()
	otherTenant := "ffffffff-eeee-4ddd-8ccc-bbbbbbbbbbbb"
	cases := []struct {
		name   string
		setup  func(f *fakeEntra)
		attack func(t *testing.T, h *webHarness, c *http.Client, cb *url.URL) webPage
		status int
		says   string
	}{
		{name: "state mismatch", status: 400, says: "Sign-in expired",
			attack: func(t *testing.T, h *webHarness, c *http.Client, cb *url.URL) webPage {
				return webFetch(t, c, "GET", withQuery(cb, func(q url.Values) { q.Set("state", "attacker-state") }), nil, nil)
			}},
		{name: "state missing", status: 400, says: "Sign-in expired",
			attack: func(t *testing.T, h *webHarness, c *http.Client, cb *url.URL) webPage {
				return webFetch(t, c, "GET", withQuery(cb, func(q url.Values) { q.Del("state") }), nil, nil)
			}},
		{name: "callback in a browser that did not start the sign-in (login CSRF)", status: 400, says: "Sign-in expired",
			attack: func(t *testing.T, h *webHarness, _ *http.Client, cb *url.URL) webPage {
				victim := h.browser(t)
				p := webFetch(t, victim, "GET", cb.String(), nil, nil)
				if hasSession(h, victim) {
					t.Error("the victim's browser got a session for the attacker's sign-in")
				}
				return p
			}},
		{name: "forged login cookie", status: 400, says: "Sign-in expired",
			attack: func(t *testing.T, h *webHarness, c *http.Client, cb *url.URL) webPage {
				forged := base64.RawURLEncoding.EncodeToString([]byte(`{"exp":99999999999,"v":{"s":"`+cb.Query().Get("state")+`","n":"n","pv":"v"}}`)) + ".AAAA"
				fresh := h.browser(t)
				base, _ := url.Parse(h.ts.URL)
				fresh.Jar.SetCookies(base, []*http.Cookie{{Name: "flowstudio-login", Value: forged}})
				return webFetch(t, fresh, "GET", cb.String(), nil, nil)
			}},
		{name: "replayed code", status: 400, says: "already used",
			attack: func(t *testing.T, h *webHarness, c *http.Client, cb *url.URL) webPage {
				base, _ := url.Parse(h.ts.URL)
				stolen := slices.Clone(c.Jar.Cookies(base)) // the login cookie, as an attacker with the browser's cookies would have it
				if first := webFetch(t, c, "GET", cb.String(), nil, nil); first.status != 200 || first.url.Path != "/dashboard" {
					t.Fatalf("first use: %d at %s", first.status, first.url)
				}
				attacker := h.browser(t)
				attacker.Jar.SetCookies(base, stolen)
				p := webFetch(t, attacker, "GET", cb.String(), nil, nil)
				if hasSession(h, attacker) {
					t.Error("a replayed code opened a session")
				}
				return p
			}},
		{name: "nonce mismatch", status: 400, says: "could not be verified",
			setup: func(f *fakeEntra) { f.spoil = func(c jwt.MapClaims) { c["nonce"] = "nonce-of-another-sign-in" } }},
		{name: "nonce missing", status: 400, says: "could not be verified",
			setup: func(f *fakeEntra) { f.spoil = func(c jwt.MapClaims) { delete(c, "nonce") } }},
		{name: "issuer of another authority", status: 400, says: "could not be verified",
			setup: func(f *fakeEntra) {
				f.spoil = func(c jwt.MapClaims) { c["iss"] = "https://login.evil.example/" + fakeTenant + "/v2.0" }
			}},
		{name: "issuer of another tenant than tid", status: 400, says: "could not be verified",
			setup: func(f *fakeEntra) { f.spoil = func(c jwt.MapClaims) { c["iss"] = f.issuer(otherTenant) } }},
		{name: "issuer is the template", status: 400, says: "could not be verified",
			setup: func(f *fakeEntra) { f.spoil = func(c jwt.MapClaims) { c["iss"] = f.issuer("{tenantid}") } }},
		{name: "malformed tid", status: 400, says: "could not be verified",
			setup: func(f *fakeEntra) {
				f.spoil = func(c jwt.MapClaims) { c["tid"] = "../x"; c["iss"] = f.issuer("../x") }
			}},
		{name: "another audience", status: 400, says: "could not be verified",
			setup: func(f *fakeEntra) { f.spoil = func(c jwt.MapClaims) { c["aud"] = "00000000-another-app" } }},
		{name: "expired", status: 400, says: "could not be verified",
			setup: func(f *fakeEntra) {
				f.spoil = func(c jwt.MapClaims) {
					c["iat"], c["nbf"], c["exp"] = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
				}
			}},
		{name: "signed by another key with the same kid", status: 400, says: "could not be verified",
			setup: func(f *fakeEntra) { f.foreign = foreignRSAKey() }},
		{name: "HS256 with the client secret", status: 400, says: "could not be verified",
			setup: func(f *fakeEntra) { f.hs256 = true }},
		{name: "no refresh token", status: 502, says: "Offline access was not granted",
			setup: func(f *fakeEntra) { f.noRT = true }},
		{name: "consent declined", status: 403, says: "Permission not granted",
			setup: func(f *fakeEntra) { f.denyWith = "access_denied" }},
		{name: "consent required", status: 403, says: "Permission not granted",
			setup: func(f *fakeEntra) { f.denyWith = "consent_required" }},
		{name: "other Entra error", status: 502, says: "server_error",
			setup: func(f *fakeEntra) { f.denyWith = "server_error" }},
		{name: "unprintable error code", status: 502, says: "unknown_error",
			attack: func(t *testing.T, h *webHarness, c *http.Client, cb *url.URL) webPage {
				return webFetch(t, c, "GET", h.ts.URL+"/callback?error=%3Cscript%3Ealert(1)%3C/script%3E&error_description=AADSTS9999+raw", nil, nil)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fe := newFakeEntra(t)
			if tc.setup != nil {
				fe.set(tc.setup)
			}
			h := newWebHarness(t, webOptions{entra: fe.config()})
			c := h.browser(t)
			var p webPage
			if tc.attack != nil && tc.name == "unprintable error code" {
				p = tc.attack(t, h, c, nil)
			} else {
				cb := h.begin(t, c)
				if tc.attack != nil {
					p = tc.attack(t, h, c, cb)
				} else {
					p = webFetch(t, c, "GET", cb.String(), nil, nil)
				}
			}
			if p.status != tc.status || !strings.Contains(p.body, tc.says) {
				t.Fatalf("got %d at %s, want %d saying %q:\n%s", p.status, p.url, tc.status, tc.says, p.body)
			}
			if tc.name != "replayed code" {
				if hasSession(h, c) {
					t.Error("a refused sign-in opened a session")
				}
				if h.signedUp(t) {
					t.Error("a refused sign-in stored a user")
				}
			}
			for _, raw := range []string{"AADSTS", "<script>", "secret detail"} {
				if strings.Contains(p.body, raw) {
					t.Errorf("the page shows upstream text %q", raw)
				}
			}
			if loc := p.header.Get("Location"); loc != "" {
				t.Errorf("an error page redirects to %q", loc)
			}
			h.assertNoSecrets(t, append(fe.secrets(), fakeEmail))
		})
	}
}

func TestTokenFromAnotherTenantThanConfigured(t *testing.T) {
	t.Parallel()
	fe := newFakeEntra(t)
	cfg := fe.config()
	cfg.Tenant = "aaaaaaaa-0000-4000-8000-000000000001" // single-tenant app; the user is from fakeTenant
	h := newWebHarness(t, webOptions{entra: cfg})
	c := h.browser(t)
	p := webFetch(t, c, "GET", h.begin(t, c).String(), nil, nil)
	if p.status != 400 || !strings.Contains(p.body, "could not be verified") || h.signedUp(t) {
		t.Fatalf("a token of another tenant was accepted: %d %s", p.status, p.body)
	}
	if !strings.Contains(h.logs.String(), "another tenant") {
		t.Error("the log does not say why")
	}
}

func TestNoOpenRedirect(t *testing.T) {
	t.Parallel()
	fe, h, c := newEntraHarness(t)
	evil := url.Values{"next": {"https://evil.example/"}, "redirect_uri": {"https://evil.example/cb"}, "return_to": {"//evil.example"},
		"redirect": {`/\evil.example`}, "state": {"attacker"}, "prompt": {"none"}}

	login := webFetch(t, noFollow(c), "GET", h.ts.URL+"/login?"+evil.Encode(), nil, nil)
	authz, _ := url.Parse(login.header.Get("Location"))
	if authz == nil || authz.Scheme+"://"+authz.Host != fe.url() || authz.Query().Get("redirect_uri") != h.ts.URL+"/callback" ||
		authz.Query().Get("state") == "attacker" || authz.Query().Has("prompt") || authz.Query().Has("next") {
		t.Fatalf("/login with redirect parameters went to %q", login.header.Get("Location"))
	}

	// Host header injection cannot move the redirect_uri.
	forged := webFetch(t, noFollow(c), "GET", h.ts.URL+"/login", nil, map[string]string{"Host": "evil.example"})
	req, _ := http.NewRequest("GET", h.ts.URL+"/login", nil)
	req.Host = "evil.example"
	resp, err := noFollow(c).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || strings.Contains(resp.Header.Get("Location"), "evil.example") || strings.Contains(forged.header.Get("Location"), "evil.example") {
		t.Fatalf("Host: evil.example gave %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	cb := h.begin(t, c)
	done := webFetch(t, noFollow(c), "GET", withQuery(cb, func(q url.Values) {
		for k, v := range evil {
			if k != "state" {
				q[k] = v
			}
		}
	}), nil, nil)
	if done.status != http.StatusSeeOther || done.header.Get("Location") != "/dashboard" {
		t.Fatalf("callback with redirect parameters: %d to %q", done.status, done.header.Get("Location"))
	}

	declined := webFetch(t, noFollow(c), "GET", h.ts.URL+"/callback?error=access_denied&next=https://evil.example/", nil, nil)
	if declined.header.Get("Location") != "" {
		t.Fatalf("declined callback redirects to %q", declined.header.Get("Location"))
	}
}

func TestDashboardFormsNeedCSRFAndSameOrigin(t *testing.T) {
	t.Parallel()
	_, h, c := newEntraHarness(t)
	dash := h.signIn(t, c)
	csrf := webMatch(t, csrfField, dash.body)
	other := webMatch(t, csrfField, h.signIn(t, h.browser(t)).body) // same user, another session
	if other == csrf {
		t.Fatal("two sessions share a CSRF token")
	}
	same := map[string]string{"Origin": h.ts.URL, "Sec-Fetch-Site": "same-origin"}
	cases := []struct {
		name    string
		client  *http.Client
		form    url.Values
		headers map[string]string
	}{
		{"missing token", c, url.Values{}, same},
		{"empty token", c, url.Values{"csrf": {""}}, same},
		{"wrong token", c, url.Values{"csrf": {base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))}}, same},
		{"token of another session", c, url.Values{"csrf": {other}}, same},
		{"cross-origin Origin", c, url.Values{"csrf": {csrf}}, map[string]string{"Origin": "https://evil.example"}},
		{"opaque Origin", c, url.Values{"csrf": {csrf}}, map[string]string{"Origin": "null"}},
		{"cross-site fetch metadata", c, url.Values{"csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"same-site but other origin", c, url.Values{"csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "same-site"}},
		{"no session", h.browser(t), url.Values{"csrf": {csrf}}, same},
	}
	for _, path := range []string{"/dashboard/reissue", "/dashboard/revoke", "/logout"} {
		for _, tc := range cases {
			t.Run(path+" "+tc.name, func(t *testing.T) {
				p := webFetch(t, noFollow(tc.client), "POST", h.ts.URL+path, tc.form, tc.headers)
				if p.status != http.StatusForbidden || p.header.Get("Location") != "" {
					t.Fatalf("%d, Location %q:\n%s", p.status, p.header.Get("Location"), p.body)
				}
				if u := h.user(t, fakeUserID); u.KeyGeneration != 1 || u.Consent != cosmos.ConsentGranted {
					t.Fatalf("a refused form changed the user: gen %d consent %s", u.KeyGeneration, u.Consent)
				}
				if !hasSession(h, c) {
					t.Fatal("a refused form ended the session")
				}
			})
		}
	}
	// GET on a form route does nothing.
	if p := webFetch(t, noFollow(c), "GET", h.ts.URL+"/dashboard/revoke", nil, nil); p.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET /dashboard/revoke: %d", p.status)
	}
	// The genuine form works.
	re := h.post(t, c, "/dashboard/reissue", csrf)
	if re.status != 200 || !strings.Contains(re.body, "A new key was issued") {
		t.Fatalf("genuine re-issue: %d %s", re.status, re.body)
	}
	// Re-issue ended every session and opened a new one here: the old form token is dead.
	if p := webFetch(t, noFollow(c), "POST", h.ts.URL+"/logout", url.Values{"csrf": {csrf}}, same); p.status != http.StatusForbidden {
		t.Fatalf("the form token of the session before re-issue: %d", p.status)
	}
	if p := h.post(t, c, "/logout", webMatch(t, csrfField, re.body)); p.status != 200 || p.url.Path != "/" || hasSession(h, c) {
		t.Fatalf("genuine sign-out: %d at %s", p.status, p.url)
	}
}

func TestForgedOrExpiredSessionIsRefused(t *testing.T) {
	t.Parallel()
	_, h, c := newEntraHarness(t)
	dash := h.signIn(t, c)
	csrf := webMatch(t, csrfField, dash.body)
	base, _ := url.Parse(h.ts.URL)
	var genuine, loginValue string
	for _, ck := range c.Jar.Cookies(base) {
		if ck.Name == "flowstudio-session" {
			genuine = ck.Value
		}
	}
	// A victim whose session the attacker wants to ride.
	victimID := cosmos.UserID("aaaaaaaa-0000-4000-8000-000000000002", "bbbbbbbb-0000-4000-8000-000000000003")
	if _, err := h.store.CreateUser(context.Background(), &cosmos.User{ID: victimID, TenantID: "aaaaaaaa-0000-4000-8000-000000000002",
		ObjectID: "bbbbbbbb-0000-4000-8000-000000000003", Tier: cosmos.TierPro, KeyGeneration: 4, KeyIssuedAt: time.Now().Unix(),
		Consent: cosmos.ConsentGranted}); err != nil {
		t.Fatal(err)
	}
	payload, sig, _ := strings.Cut(genuine, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	swapped := base64.RawURLEncoding.EncodeToString(bytes.Replace(raw, []byte(fakeUserID), []byte(victimID), 1)) + "." + sig

	expired, _ := cookieCodec{key: h.keys.CookieKey(), now: func() time.Time { return time.Now().Add(-sessionTTL - time.Minute) }}.
		encode(sessionCookie, webSession{UserID: victimID, TenantID: "x", SID: "sid"}, sessionTTL)
	otherKeys, _ := keyring.New("another-token-secret-0123456789abcdefghij")
	foreign, _ := cookieCodec{key: otherKeys.CookieKey(), now: time.Now}.encode(sessionCookie, webSession{UserID: victimID, SID: "sid"}, sessionTTL)
	loginValue, _ = h.srv.web.cookies.encode(loginCookie, webSession{UserID: victimID, SID: "sid"}, time.Hour) // right key, wrong purpose

	for _, tc := range []struct{ name, value string }{
		{"user id swapped", swapped},
		{"garbage", "not-a-cookie"},
		{"no signature", payload},
		{"expired", expired},
		{"signed with another TOKEN_SECRET", foreign},
		{"a login cookie as a session", loginValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := h.browser(t)
			b.Jar.SetCookies(base, []*http.Cookie{{Name: "flowstudio-session", Value: tc.value}})
			p := webFetch(t, b, "GET", h.ts.URL+"/dashboard", nil, nil)
			if p.url.Path != "/" || strings.Contains(p.body, `id="key-full"`) || !strings.Contains(p.body, "Sign in with Microsoft") {
				t.Fatalf("forged session reached %s (%d)", p.url, p.status)
			}
			csrfFor := csrf
			if p := webFetch(t, noFollow(b), "POST", h.ts.URL+"/dashboard/revoke", url.Values{"csrf": {csrfFor}},
				map[string]string{"Origin": h.ts.URL}); p.status != http.StatusForbidden {
				t.Fatalf("revoke with a forged session: %d", p.status)
			}
			if u := h.user(t, victimID); u.Consent != cosmos.ConsentGranted || u.KeyGeneration != 4 {
				t.Fatal("the victim was changed")
			}
		})
	}
}

func TestKeyDiesOnReissueAndRevoke(t *testing.T) {
	t.Parallel()
	fe, h, c := newEntraHarness(t)
	dash := h.signIn(t, c)
	key1, read1 := webMatch(t, keyField, dash.body), webMatch(t, readKeyField, dash.body)
	if h.mcpStatus(t, key1) != 200 || h.mcpStatus(t, read1) != 200 {
		t.Fatal("fresh keys refused")
	}

	re := h.post(t, c, "/dashboard/reissue", webMatch(t, csrfField, dash.body))
	key2, read2 := webMatch(t, keyField, re.body), webMatch(t, readKeyField, re.body)
	if key2 == key1 || read2 == read1 {
		t.Fatal("re-issue showed the same key")
	}
	for name, want := range map[string]int{"old full key": 401, "old read key": 401, "new full key": 200, "new read key": 200} {
		k := map[string]string{"old full key": key1, "old read key": read1, "new full key": key2, "new read key": read2}[name]
		if got := h.mcpStatus(t, k); got != want {
			t.Errorf("after re-issue, %s: %d, want %d", name, got, want)
		}
	}

	rv := h.post(t, c, "/dashboard/revoke", webMatch(t, csrfField, re.body))
	if !strings.Contains(rv.body, "Permission revoked") || strings.Contains(rv.body, `id="key-full"`) || !strings.Contains(rv.body, "myapps.microsoft.com") {
		t.Fatalf("dashboard after revoke:\n%s", rv.body)
	}
	for _, k := range []string{key1, read1, key2, read2} {
		if got := h.mcpStatus(t, k); got != 401 {
			t.Errorf("after revoke a key answers %d", got)
		}
	}
	u := h.user(t, fakeUserID)
	if u.Consent != cosmos.ConsentRevoked || len(u.SealedRefreshToken) != 0 || u.SealKeyVersion != "" || u.KeyGeneration != 3 {
		t.Fatalf("user after revoke: consent %s, sealed %d bytes, gen %d", u.Consent, len(u.SealedRefreshToken), u.KeyGeneration)
	}
	if p := h.post(t, c, "/dashboard/reissue", webMatch(t, csrfField, rv.body)); p.status != http.StatusConflict {
		t.Fatalf("re-issue after revoke: %d", p.status)
	}

	// Signing in again grants a new generation; none of the old keys comes back.
	back := h.signIn(t, c)
	key3 := webMatch(t, keyField, back.body)
	if h.mcpStatus(t, key3) != 200 {
		t.Fatal("key after signing in again refused")
	}
	for _, k := range []string{key1, read1, key2, read2} {
		if got := h.mcpStatus(t, k); got != 401 {
			t.Errorf("an old key came back: %d", got)
		}
	}
	if u := h.user(t, fakeUserID); u.KeyGeneration <= 3 || u.Consent != cosmos.ConsentGranted || len(u.SealedRefreshToken) == 0 {
		t.Fatalf("user after signing in again: %+v", u)
	}
	h.assertNoSecrets(t, append(fe.secrets(), key1, read1, key2, read2, key3, fakeEmail))
}

func TestLandingSaysWhatIsStored(t *testing.T) {
	t.Parallel()
	fe := newFakeEntra(t)
	h := newWebHarness(t, webOptions{entra: fe.config()})
	p := webFetch(t, h.browser(t), "GET", h.ts.URL+"/", nil, nil)
	if p.status != 200 || p.header.Get("Content-Security-Policy") != pageCSP {
		t.Fatalf("landing: %d, CSP %q", p.status, p.header.Get("Content-Security-Policy"))
	}
	for _, want := range []string{"Sign in with Microsoft", `href="/login"`, "tenant ID and object ID", "hash of your email", "refresh token",
		"plan", "Counters", "Flow definitions, run history", "Tokens, keys or email addresses in logs", `name="viewport"`,
		"keeps no one's name or email address"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("landing lacks %q", want)
		}
	}
	for _, asset := range []string{"app.css", "app.js"} {
		a := webFetch(t, h.browser(t), "GET", h.ts.URL+"/static/"+asset, nil, nil)
		if a.status != 200 || a.header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(a.header.Get("Content-Type"), map[string]string{"app.css": "text/css", "app.js": "text/javascript"}[asset]) {
			t.Errorf("%s: %d %q", asset, a.status, a.header.Get("Content-Type"))
		}
	}
	if a := webFetch(t, h.browser(t), "GET", h.ts.URL+"/static/", nil, nil); a.status != 404 {
		t.Errorf("/static/ lists: %d", a.status)
	}
	if a := webFetch(t, h.browser(t), "GET", h.ts.URL+"/nothing-here", nil, nil); a.status != 404 {
		t.Errorf("unknown path: %d", a.status)
	}
}

func TestSignInUnavailableIsAPageNotAPanic(t *testing.T) {
	t.Parallel()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	h := newWebHarness(t, webOptions{entra: identity.App{Authority: dead.URL, Tenant: "organizations", ClientID: "x", ClientSecret: "y"}})
	p := webFetch(t, h.browser(t), "GET", h.ts.URL+"/login", nil, nil)
	if p.status != http.StatusServiceUnavailable || !strings.Contains(p.body, "unreachable") {
		t.Fatalf("%d %s", p.status, p.body)
	}
}
