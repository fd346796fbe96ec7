package server

import (
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server/identity"
)

// The identity of testdata/oidc-mock/server.mjs.
const (
	mockTenant = "5d2a8c41-7e3b-4f96-a0c8-1b9e2f4d6a73"
	mockOID    = "c3e1f7a9-24b6-4d8e-9f10-6a5b4c3d2e1f"
	mockEmail  = "mock.user@fabrikam-mock.example"
)

// TestSignInWithThirdPartyOIDC runs the whole sign-in against oauth2-mock-server, an
// OpenID Connect implementation that is not ours, dressed as Entra ID
// (testdata/oidc-mock). Start it with
//
//	eval "$(bash server/testdata/oidc-mock/start.sh)"
func TestSignInWithThirdPartyOIDC(t *testing.T) {
	base := os.Getenv("OIDC_MOCK_URL")
	if base == "" {
		t.Skip("OIDC_MOCK_URL is not set; start the third-party OIDC server with: eval \"$(bash server/testdata/oidc-mock/start.sh)\"")
	}
	tap := &tokenTap{}
	h := newWebHarness(t, webOptions{entra: identity.App{Authority: strings.TrimRight(base, "/"), Tenant: "organizations",
		ClientID: "flowstudio-interop-client", ClientSecret: "interop-secret"}, entraHTTP: tap.client()})
	c := h.browser(t)
	// /login → the mock's authorize (approves at once) → /callback → /dashboard.
	dash := h.signIn(t, c)
	for _, want := range []string{"Mock User", mockTenant, "Free"} {
		if !strings.Contains(dash.body, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	key := webMatch(t, keyField, dash.body)
	if st := h.mcpStatus(t, key); st != 200 {
		t.Fatalf("MCP with the key: %d", st)
	}
	u := h.user(t, cosmos.UserID(mockTenant, mockOID))
	if u.Consent != cosmos.ConsentGranted || u.KeyGeneration != 1 || u.EmailHash != h.keys.HashEmail(mockEmail) || len(u.SealedRefreshToken) == 0 {
		t.Fatalf("stored user %+v", u)
	}
	// A returning user keeps the key; the mock's codes are one-time (PKCE state is
	// dropped on use), so replaying the callback with the stolen login cookie fails.
	cb := h.begin(t, c)
	site, _ := url.Parse(h.ts.URL)
	var stolen []*http.Cookie // the login cookie only
	for _, ck := range c.Jar.Cookies(site) {
		if ck.Name == "flowstudio-login" {
			stolen = append(stolen, ck)
		}
	}
	if p := webFetch(t, c, "GET", cb.String(), nil, nil); p.status != 200 || webMatch(t, keyField, p.body) != key {
		t.Fatalf("second sign-in: %d, or the key changed", p.status)
	}
	attacker := h.browser(t)
	attacker.Jar.SetCookies(site, stolen)
	if p := webFetch(t, attacker, "GET", cb.String(), nil, nil); p.status != 400 || hasSession(h, attacker) {
		t.Fatalf("replayed callback: %d", p.status)
	}
	if len(tap.secrets()) < 3 {
		t.Fatalf("the token responses were not seen: %d tokens", len(tap.secrets()))
	}
	h.assertNoSecrets(t, append(tap.secrets(), key, mockEmail))
}
