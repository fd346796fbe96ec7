package entrasim_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/flowstudio/mcp/tools/powerautomate/entrasim"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
)

const testRedirect = "http://127.0.0.1:9/callback"

var signInScopes = []string{"openid", "profile", "email", "offline_access",
	"https://service.flow.microsoft.com/Flows.Read.All", "https://service.flow.microsoft.com/Flows.Manage.All",
	"https://service.powerapps.com/User"}

// testSeed makes every test's stand-in share one signing key (generated once).
var testSeed = []byte("entrasim package tests")

// entraHarness is the stand-in as the simulator mounts it, with the simulator's
// tenants and people.
type entraHarness struct {
	sim       *sim.Sim
	entra     *entrasim.Entra
	srv       *httptest.Server
	authority string
	browser   *http.Client // never follows redirects
}

func newEntraHarness(t *testing.T, opts sim.Options) *entraHarness {
	t.Helper()
	if opts.KeySeed == nil {
		opts.KeySeed = testSeed
	}
	s := sim.New(opts)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &entraHarness{sim: s, entra: s.Entra(), srv: srv, authority: srv.URL + entrasim.Path,
		browser: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (h *entraHarness) oauth(tenant string) *oauth2.Config {
	return &oauth2.Config{ClientID: entrasim.DevClientID, ClientSecret: entrasim.DevClientSecret, RedirectURL: testRedirect, Scopes: signInScopes,
		Endpoint: oauth2.Endpoint{AuthURL: h.authority + "/" + tenant + "/oauth2/v2.0/authorize",
			TokenURL: h.authority + "/" + tenant + "/oauth2/v2.0/token", AuthStyle: oauth2.AuthStyleInParams}}
}

// signIn walks the sign-in and consent pages as a browser would and returns
// the redirect to the app.
func (h *entraHarness) signIn(t *testing.T, authURL, email, consent string) *url.URL {
	t.Helper()
	resp, err := h.browser.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page := readBody(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(page, `value="alice@contoso.com"`) || !strings.Contains(page, `id="email"`) {
		t.Fatalf("sign-in page: %d %s", resp.StatusCode, page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "style-src 'sha256-") {
		t.Errorf("CSP %q", csp)
	}
	resp, err = h.browser.PostForm(authURL, url.Values{"login_email": {email}})
	if err != nil {
		t.Fatal(err)
	}
	page = readBody(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(page, `id="accept"`) || !strings.Contains(page, "Flows.Manage.All") || !strings.Contains(page, email) {
		t.Fatalf("consent page: %d %s", resp.StatusCode, page)
	}
	resp, err = h.browser.PostForm(authURL, url.Values{"login_email": {email}, "consent": {consent}})
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("after consent: %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tokenCall posts a form to the token endpoint and returns status and decoded body.
func (h *entraHarness) tokenCall(t *testing.T, tenant string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", h.authority+"/"+tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return jsonCall(t, req)
}

// jsonCall sends req and returns the status and the decoded JSON body.
func jsonCall(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(readBody(t, resp)), &body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func refreshForm(rt, scope string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "client_id": {entrasim.DevClientID}, "client_secret": {entrasim.DevClientSecret},
		"refresh_token": {rt}, "scope": {scope}}
}

func wantOAuthError(t *testing.T, status int, body map[string]any, wantStatus int, code, aadsts string) {
	t.Helper()
	desc, _ := body["error_description"].(string)
	if status != wantStatus || body["error"] != code || !strings.HasPrefix(desc, aadsts+":") {
		t.Fatalf("got %d %v, want %d %s %s", status, body, wantStatus, code, aadsts)
	}
	if codes, _ := body["error_codes"].([]any); len(codes) != 1 {
		t.Errorf("error_codes %v", body["error_codes"])
	}
}

func TestEntraDiscoveryPerTenant(t *testing.T) {
	h := newEntraHarness(t, sim.Options{})
	for _, tc := range []struct{ tenant, issuer string }{
		{"organizations", h.authority + "/{tenantid}/v2.0"},
		{"common", h.authority + "/{tenantid}/v2.0"},
		{sim.ContosoTenantID, h.authority + "/" + sim.ContosoTenantID + "/v2.0"},
		{"fabrikam.com", h.authority + "/" + sim.FabrikamTenantID + "/v2.0"},
	} {
		t.Run(tc.tenant, func(t *testing.T) {
			resp, err := http.Get(h.authority + "/" + tc.tenant + "/v2.0/.well-known/openid-configuration")
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			json.Unmarshal([]byte(readBody(t, resp)), &doc)
			if doc["issuer"] != tc.issuer {
				t.Errorf("issuer %v, want %s", doc["issuer"], tc.issuer)
			}
			for _, k := range []string{"authorization_endpoint", "token_endpoint", "jwks_uri"} {
				if s, _ := doc[k].(string); !strings.HasPrefix(s, h.authority+"/") {
					t.Errorf("%s = %v", k, doc[k])
				}
			}
		})
	}
	resp, _ := http.Get(h.authority + "/nowhere.example/v2.0/.well-known/openid-configuration")
	if readBody(t, resp); resp.StatusCode != 400 {
		t.Errorf("unknown tenant: %d", resp.StatusCode)
	}
}

func TestEntraCodeFlowWithPKCEAndIDToken(t *testing.T) {
	h := newEntraHarness(t, sim.Options{})
	// go-oidc against the template tenant, as the consent pages use it.
	ctx := oidc.InsecureIssuerURLContext(t.Context(), h.authority+"/{tenantid}/v2.0")
	provider, err := oidc.NewProvider(ctx, h.authority+"/organizations/v2.0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.oauth("organizations")
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n0nce"))
	loc := h.signIn(t, authURL, "gary@fabrikam.com", "accept")
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != testRedirect || loc.Query().Get("state") != "st4te" || loc.Query().Get("code") == "" {
		t.Fatalf("redirect %s", loc)
	}
	code := loc.Query().Get("code")

	// A wrong verifier is refused, and burns the code.
	_, err = cfg.Exchange(t.Context(), code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" || !strings.Contains(re.ErrorDescription, "AADSTS501481") {
		t.Fatalf("wrong verifier: %v", err)
	}
	_, err = cfg.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	if !errors.As(err, &re) || !strings.Contains(re.ErrorDescription, "AADSTS54005") {
		t.Fatalf("replayed code: %v", err)
	}

	// A fresh code with the right verifier.
	verifier = oauth2.GenerateVerifier()
	loc = h.signIn(t, cfg.AuthCodeURL("s2", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n2")), "gary@fabrikam.com", "accept")
	tok, err := cfg.Exchange(t.Context(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" || tok.AccessToken == "" {
		t.Fatalf("token %+v", tok)
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: entrasim.DevClientID, SkipIssuerCheck: true}).Verify(t.Context(), rawID)
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Tid, Oid, Email, Nonce, Name string
		PreferredUsername            string `json:"preferred_username"`
	}
	idt.Claims(&claims)
	_, oid := h.sim.UserFor("gary@fabrikam.com")
	if idt.Issuer != h.authority+"/"+sim.FabrikamTenantID+"/v2.0" || claims.Tid != sim.FabrikamTenantID || claims.Oid != oid ||
		claims.Email != "gary@fabrikam.com" || claims.Nonce != "n2" || claims.Name != "Gary" || claims.PreferredUsername != "gary@fabrikam.com" {
		t.Fatalf("id token iss %s claims %+v", idt.Issuer, claims)
	}
	// The access token from the code is for the first resource asked for.
	var ac sim.AccessClaims
	if _, err := jwt.ParseWithClaims(tok.AccessToken, &ac, func(*jwt.Token) (any, error) { return h.sim.PublicKey(), nil }); err != nil {
		t.Fatal(err)
	}
	if ac.Audience[0] != "https://service.flow.microsoft.com/" || ac.Scope != "Flows.Read.All Flows.Manage.All" {
		t.Fatalf("access token aud %v scp %q", ac.Audience, ac.Scope)
	}
	// And the simulated Flow API takes it.
	apiReq, _ := http.NewRequest("GET", h.srv.URL+"/flow/providers/Microsoft.ProcessSimple/environments?api-version=2016-11-01", nil)
	apiReq.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if status, body := jsonCall(t, apiReq); status != 200 {
		t.Fatalf("flow api: %d %s", status, body)
	}
}

func TestEntraAuthorizeRefusals(t *testing.T) {
	h := newEntraHarness(t, sim.Options{})
	cfg := h.oauth("organizations")
	challenge := oauth2.S256ChallengeOption(oauth2.GenerateVerifier())
	base := cfg.AuthCodeURL("s", challenge)
	with := func(k, v string) string {
		u, _ := url.Parse(base)
		q := u.Query()
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	for _, tc := range []struct {
		name, url  string
		page       string // error shown on a page (no redirect)
		redirected string // error sent back to the app
	}{
		{"unknown client", with("client_id", "nope"), "AADSTS700016", ""},
		{"foreign redirect", with("redirect_uri", "https://evil.example/callback"), "AADSTS50011", ""},
		{"loopback other path", with("redirect_uri", "http://127.0.0.1:9/other"), "AADSTS50011", ""},
		{"no PKCE", with("code_challenge", ""), "", "invalid_request"},
		{"plain PKCE", with("code_challenge_method", "plain"), "", "invalid_request"},
		{"no openid", with("scope", "offline_access https://service.flow.microsoft.com/Flows.Read.All"), "", "invalid_scope"},
		{"token response", with("response_type", "token"), "", "unsupported_response_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := h.browser.Get(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			body := readBody(t, resp)
			if tc.page != "" {
				if resp.StatusCode != 400 || !strings.Contains(body, tc.page) || resp.Header.Get("Location") != "" {
					t.Fatalf("%d %s", resp.StatusCode, body)
				}
				return
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != 302 || loc.Query().Get("error") != tc.redirected || loc.Query().Get("state") != "s" {
				t.Fatalf("%d %s", resp.StatusCode, loc)
			}
		})
	}
	t.Run("cancel", func(t *testing.T) {
		loc := h.signIn(t, base, "alice@contoso.com", "cancel")
		if loc.Query().Get("error") != "access_denied" || loc.Query().Get("code") != "" || loc.Query().Get("state") != "s" {
			t.Fatalf("cancel: %s", loc)
		}
	})
	t.Run("user of another tenant", func(t *testing.T) {
		u := h.oauth(sim.ContosoTenantID).AuthCodeURL("s", challenge)
		resp, _ := h.browser.PostForm(u, url.Values{"login_email": {"gary@fabrikam.com"}})
		if body := readBody(t, resp); resp.StatusCode != 400 || !strings.Contains(body, "AADSTS50020") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("registered redirect", func(t *testing.T) {
		h.entra.AddRedirectURI(entrasim.DevClientID, "https://flowstudio.example/callback")
		resp, _ := h.browser.Get(with("redirect_uri", "https://flowstudio.example/callback"))
		if body := readBody(t, resp); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
}

func TestEntraTokenEndpointClientAuth(t *testing.T) {
	h := newEntraHarness(t, sim.Options{})
	rt := h.refreshToken("alice@contoso.com")
	form := refreshForm(rt, "https://service.powerapps.com/User")
	form.Set("client_secret", "wrong")
	status, body := h.tokenCall(t, "organizations", form)
	wantOAuthError(t, status, body, 401, "invalid_client", "AADSTS7000215")
	form.Del("client_secret")
	status, body = h.tokenCall(t, "organizations", form)
	wantOAuthError(t, status, body, 401, "invalid_client", "AADSTS7000218")
	// Basic auth works too, and the refused attempts did not spend the token.
	req, _ := http.NewRequest("POST", h.authority+"/organizations/oauth2/v2.0/token",
		strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {"https://service.powerapps.com/User"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(entrasim.DevClientID, entrasim.DevClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("basic auth: %d %s", resp.StatusCode, b)
	}
}

func TestEntraRefreshRotationAndScopes(t *testing.T) {
	h := newEntraHarness(t, sim.Options{})
	tid, oid := h.sim.UserFor("alice@contoso.com")
	rt := h.entra.IssueRefreshToken(tid, oid, entrasim.DevClientID, signInScopes)

	audOf := func(tok string) (string, string) {
		var c sim.AccessClaims
		if _, err := jwt.ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return h.sim.PublicKey(), nil }); err != nil {
			t.Fatal(err)
		}
		if c.TenantID != tid || c.ObjectID != oid {
			t.Fatalf("token for %s/%s", c.TenantID, c.ObjectID)
		}
		return c.Audience[0], c.Scope
	}
	for _, tc := range []struct{ scope, aud, scp string }{
		{"https://service.flow.microsoft.com/Flows.Read.All https://service.flow.microsoft.com/Flows.Manage.All offline_access", "https://service.flow.microsoft.com/", "Flows.Read.All Flows.Manage.All"},
		{"https://service.flow.microsoft.com//.default", "https://service.flow.microsoft.com/", "Flows.Read.All Flows.Manage.All"},
		{"https://service.powerapps.com/User offline_access", "https://service.powerapps.com/", "User"},
	} {
		status, body := h.tokenCall(t, tid, refreshForm(rt, tc.scope))
		if status != 200 {
			t.Fatalf("%s: %d %v", tc.scope, status, body)
		}
		aud, scp := audOf(body["access_token"].(string))
		if aud != tc.aud || scp != tc.scp {
			t.Errorf("%s: aud %s scp %q", tc.scope, aud, scp)
		}
		next, _ := body["refresh_token"].(string)
		if next == "" || next == rt {
			t.Fatalf("no rotation: %v", body)
		}
		// The old one is dead now.
		status, old := h.tokenCall(t, tid, refreshForm(rt, tc.scope))
		wantOAuthError(t, status, old, 400, "invalid_grant", "AADSTS70008")
		rt = next
	}

	for _, tc := range []struct{ scope, code, aadsts string }{
		{"https://service.flow.microsoft.com/Flows.Read.All https://service.powerapps.com/User", "invalid_request", "AADSTS28000"},
		{"https://service.flow.microsoft.com/Approvals.Manage.All", "invalid_grant", "AADSTS65001"},
		// Beyond the sign-in's consent: .default is what the app lists, still needing the user's consent.
		{"https://apihub.azure.com/.default", "invalid_grant", "AADSTS65001"},
		{"https://apihub.azure.com/user_impersonation offline_access", "invalid_grant", "AADSTS65001"},
		{"https://api.powerplatform.com/.default", "invalid_grant", "AADSTS65001"},
		{"https://unknown.example.com/.default", "invalid_resource", "AADSTS500011"},
		{"", "invalid_request", "AADSTS90014"},
	} {
		status, body := h.tokenCall(t, tid, refreshForm(rt, tc.scope))
		wantOAuthError(t, status, body, 400, tc.code, tc.aadsts)
	}
	// Refusals before the rotation check did not spend the token.
	if status, body := h.tokenCall(t, tid, refreshForm(rt, "https://service.powerapps.com/User")); status != 200 {
		t.Fatalf("%d %v", status, body)
	}

	// Garbage, another tenant, another client.
	status, body := h.tokenCall(t, "organizations", refreshForm("0.AS.bogus", "https://service.powerapps.com/User"))
	wantOAuthError(t, status, body, 400, "invalid_grant", "AADSTS9002313")
	rt2 := h.entra.IssueRefreshToken(tid, oid, entrasim.DevClientID, signInScopes)
	status, body = h.tokenCall(t, sim.FabrikamTenantID, refreshForm(rt2, "https://service.powerapps.com/User"))
	wantOAuthError(t, status, body, 400, "invalid_grant", "AADSTS9002313")
	h.entra.RegisterClient(entrasim.Client{ID: "other", Secret: "s"})
	f := refreshForm(rt2, "https://service.powerapps.com/User")
	f.Set("client_id", "other")
	f.Set("client_secret", "s")
	status, body = h.tokenCall(t, "organizations", f)
	wantOAuthError(t, status, body, 400, "invalid_grant", "AADSTS700024")
}

func TestEntraRevokeAndExpiry(t *testing.T) {
	h := newEntraHarness(t, sim.Options{})
	tid, oid := h.sim.UserFor("bob@contoso.com")
	rt := h.entra.IssueRefreshToken(tid, oid, entrasim.DevClientID, signInScopes)
	h.entra.RevokeRefreshTokens(tid, oid)
	status, body := h.tokenCall(t, "organizations", refreshForm(rt, "https://service.powerapps.com/User"))
	wantOAuthError(t, status, body, 400, "invalid_grant", "AADSTS50173")
	// A token issued after the revocation works.
	rt = h.entra.IssueRefreshToken(tid, oid, entrasim.DevClientID, signInScopes)
	if status, body := h.tokenCall(t, "organizations", refreshForm(rt, "https://service.powerapps.com/User")); status != 200 {
		t.Fatalf("%d %v", status, body)
	}
	h.entra.SetTokenLifetimes(time.Minute, -time.Second)
	rt = h.entra.IssueRefreshToken(tid, oid, entrasim.DevClientID, signInScopes)
	status, body = h.tokenCall(t, "organizations", refreshForm(rt, "https://service.powerapps.com/User"))
	wantOAuthError(t, status, body, 400, "invalid_grant", "AADSTS700082")
}

func TestEntraConcurrentRedemptionsOfOneTokenOnlyOneWins(t *testing.T) {
	h := newEntraHarness(t, sim.Options{})
	rt := h.refreshToken("alice@contoso.com")
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 20 {
		wg.Go(func() {
			resp, err := http.PostForm(h.authority+"/organizations/oauth2/v2.0/token", refreshForm(rt, "https://service.powerapps.com/User"))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == 200 {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d redemptions succeeded, want 1", ok)
	}
}

// Refresh tokens validate in any Sim with the same seed: `dev-key` issues in
// one process, the server redeems in another.
func TestEntraRefreshTokensAcrossSimsWithOneSeed(t *testing.T) {
	seed := []byte("cross-process seed")
	issuer := sim.New(sim.Options{KeySeed: seed})
	tid, oid := issuer.UserFor("alice@contoso.com")
	rt := issuer.Entra().IssueRefreshToken(tid, oid, entrasim.DevClientID, signInScopes)

	h := newEntraHarness(t, sim.Options{KeySeed: seed})
	status, body := h.tokenCall(t, "organizations", refreshForm(rt, "https://service.flow.microsoft.com/Flows.Read.All"))
	if status != 200 {
		t.Fatalf("%d %v", status, body)
	}
	status, body = h.tokenCall(t, "organizations", refreshForm(rt, "https://service.flow.microsoft.com/Flows.Read.All"))
	wantOAuthError(t, status, body, 400, "invalid_grant", "AADSTS70008")

	other := newEntraHarness(t, sim.Options{KeySeed: []byte("another seed")})
	status, body = other.tokenCall(t, "organizations", refreshForm(issuer.Entra().IssueRefreshToken(tid, oid, entrasim.DevClientID, signInScopes), "https://service.powerapps.com/User"))
	wantOAuthError(t, status, body, 400, "invalid_grant", "AADSTS9002313")
}

func TestEntraJWKSVerifiesIDTokens(t *testing.T) {
	h := newEntraHarness(t, sim.Options{})
	resp, err := http.Get(h.authority + "/" + sim.ContosoTenantID + "/discovery/v2.0/keys")
	if err != nil {
		t.Fatal(err)
	}
	keys := oidc.NewRemoteKeySet(t.Context(), h.authority+"/"+sim.ContosoTenantID+"/discovery/v2.0/keys")
	readBody(t, resp)
	rt := h.refreshToken("alice@contoso.com")
	status, body := h.tokenCall(t, sim.ContosoTenantID, refreshForm(rt, "openid https://service.powerapps.com/User"))
	if status != 200 {
		t.Fatalf("%d %v", status, body)
	}
	raw, _ := body["id_token"].(string)
	if _, err := keys.VerifySignature(t.Context(), raw); err != nil {
		t.Fatalf("JWKS does not verify the id_token: %v", err)
	}
}

// consentSteps walks the stand-in's pages with a browser that keeps cookies: the
// sign-in page, the consent page (returned), then Accept; it returns the code.
func consentSteps(t *testing.T, browser *http.Client, authURL, email string) (consentPage, code string) {
	t.Helper()
	resp, err := browser.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	if page := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("sign-in page: %d %s", resp.StatusCode, page)
	}
	resp, err = browser.PostForm(authURL, url.Values{"login_email": {email}})
	if err != nil {
		t.Fatal(err)
	}
	consentPage = readBody(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(consentPage, `id="accept"`) {
		t.Fatalf("consent page: %d %s", resp.StatusCode, consentPage)
	}
	resp, err = browser.PostForm(authURL, url.Values{"login_email": {email}, "consent": {"accept"}})
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("after consent: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return consentPage, loc.Query().Get("code")
}

// TestEntraIncrementalConsent: the connector runtime needs its own consent. A
// sign-in with the default scopes cannot redeem it (AADSTS65001); a second sign-in
// that asks for just https://apihub.azure.com/.default shows that one permission,
// and the refresh token it yields serves the earlier consent too. The consent
// survives a restart of the stand-in through the browser cookie.
func TestEntraIncrementalConsent(t *testing.T) {
	seed := []byte("incremental consent seed")
	h := newEntraHarness(t, sim.Options{KeySeed: seed})
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tid, oid := h.sim.UserFor("alice@contoso.com")
	grantScopes := []string{"openid", "profile", "offline_access", "https://apihub.azure.com/.default"}

	exchange := func(t *testing.T, h *entraHarness, scopes []string, prompt bool) (*oauth2.Token, string) {
		t.Helper()
		cfg := h.oauth("organizations")
		cfg.Scopes = scopes
		verifier := oauth2.GenerateVerifier()
		opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce("n")}
		if prompt {
			opts = append(opts, oauth2.SetAuthURLParam("prompt", "consent"))
		}
		page, code := consentSteps(t, browser, cfg.AuthCodeURL("st", opts...), "alice@contoso.com")
		tok, err := cfg.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		return tok, page
	}
	redeem := func(t *testing.T, h *entraHarness, rt, scope string) (int, map[string]any) {
		t.Helper()
		return h.tokenCall(t, "organizations", refreshForm(rt, scope))
	}

	tok, _ := exchange(t, h, signInScopes, false)
	status, body := redeem(t, h, tok.RefreshToken, "https://apihub.azure.com/.default offline_access")
	wantOAuthError(t, status, body, 400, "invalid_grant", "AADSTS65001")
	if body["suberror"] != "consent_required" || !strings.Contains(body["error_description"].(string), "has not consented to use the application") {
		t.Errorf("65001 body %v", body)
	}

	// The grant sign-in: the consent page shows the one extra permission.
	tok, page := exchange(t, h, grantScopes, true)
	if !strings.Contains(page, "connector runtime") || !strings.Contains(page, "https://apihub.azure.com/.default") {
		t.Errorf("consent page does not show the connector runtime:\n%s", page)
	}
	if strings.Contains(page, "Flows.Manage.All") {
		t.Errorf("consent page asks for the default scopes again:\n%s", page)
	}
	if got, _ := tok.Extra("scope").(string); got != "https://apihub.azure.com/user_impersonation" {
		t.Errorf("token response scope %q", got)
	}
	var ac sim.AccessClaims
	if _, err := jwt.ParseWithClaims(tok.AccessToken, &ac, func(*jwt.Token) (any, error) { return h.sim.PublicKey(), nil }); err != nil ||
		ac.Audience[0] != "https://apihub.azure.com" || ac.Scope != "user_impersonation" {
		t.Fatalf("access token aud %v scp %q (%v)", ac.Audience, ac.Scope, err)
	}
	var id entrasim.IDClaims
	rawID, _ := tok.Extra("id_token").(string)
	if _, _, err := jwt.NewParser().ParseUnverified(rawID, &id); err != nil {
		t.Fatal(err)
	}
	if id.ObjectID != oid || id.TenantID != tid || id.Email != "" {
		t.Errorf("id_token of openid+profile: tid %q oid %q email %q (oid needs profile; email needs email)", id.TenantID, id.ObjectID, id.Email)
	}
	rt := tok.RefreshToken
	for _, scope := range []string{"https://apihub.azure.com/.default", "https://service.flow.microsoft.com/Flows.Read.All", "https://service.powerapps.com/User"} {
		status, body := redeem(t, h, rt, scope+" offline_access")
		if status != 200 {
			t.Fatalf("%s after the grant: %d %v", scope, status, body)
		}
		rt = body["refresh_token"].(string)
	}

	// A restarted stand-in (same seed, empty memory) adds a later consent to the one
	// the browser's cookie remembers (cookies ignore the port: both run on 127.0.0.1).
	before := newEntraHarness(t, sim.Options{KeySeed: seed})
	browser.Jar, _ = cookiejar.New(nil)
	exchange(t, before, signInScopes, false)
	after := newEntraHarness(t, sim.Options{KeySeed: seed})
	tok, _ = exchange(t, after, grantScopes, true)
	if status, body := redeem(t, after, tok.RefreshToken, "https://service.flow.microsoft.com/Flows.Read.All"); status != 200 {
		t.Fatalf("after a restart the grant's token lost the earlier consent: %d %v", status, body)
	}
}

// refreshToken is a refresh token of the sign-in scopes for one of the sim's people.
func (h *entraHarness) refreshToken(email string) string {
	tid, oid := h.sim.UserFor(email)
	return h.entra.IssueRefreshToken(tid, oid, entrasim.DevClientID, signInScopes)
}

// TestEntraDataverseConsentCoversEveryOrg: Dataverse organisations are one resource
// app. Before the grant an org audience answers AADSTS65001; after consenting
// through the Global Discovery URL, a token for any org carries that org's URL.
func TestEntraDataverseConsentCoversEveryOrg(t *testing.T) {
	h := newEntraHarness(t, sim.Options{KeySeed: []byte("dataverse consent seed")})
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	exchange := func(scopes []string) (*oauth2.Token, string) {
		cfg := h.oauth("organizations")
		cfg.Scopes = scopes
		verifier := oauth2.GenerateVerifier()
		page, code := consentSteps(t, browser, cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n"),
			oauth2.SetAuthURLParam("prompt", "consent")), "alice@contoso.com")
		tok, err := cfg.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		return tok, page
	}
	const org = "https://contoso.crm4.dynamics.com"
	tok, _ := exchange(signInScopes)
	status, body := h.tokenCall(t, "organizations", refreshForm(tok.RefreshToken, org+"/.default offline_access"))
	wantOAuthError(t, status, body, 400, "invalid_grant", "AADSTS65001")

	tok, page := exchange([]string{"openid", "profile", "offline_access", "https://globaldisco.crm.dynamics.com/user_impersonation"})
	if !strings.Contains(page, "Dataverse") {
		t.Errorf("consent page does not name Dataverse:\n%s", page)
	}
	status, body = h.tokenCall(t, "organizations", refreshForm(tok.RefreshToken, org+"/.default offline_access"))
	if status != 200 {
		t.Fatalf("org token after the grant: %d %v", status, body)
	}
	var ac sim.AccessClaims
	if _, err := jwt.ParseWithClaims(body["access_token"].(string), &ac, func(*jwt.Token) (any, error) { return h.sim.PublicKey(), nil }); err != nil ||
		ac.Audience[0] != org || ac.Scope != "user_impersonation" || body["scope"] != org+"/user_impersonation" {
		t.Fatalf("aud %v scp %q scope %v (%v)", ac.Audience, ac.Scope, body["scope"], err)
	}
	status, body = h.tokenCall(t, "organizations", refreshForm(tok.RefreshToken, "https://evil.example/.default"))
	wantOAuthError(t, status, body, 400, "invalid_resource", "AADSTS500011")
}
