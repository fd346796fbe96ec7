package entrasim_test

import (
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowstudio/mcp/tools/powerautomate/entrasim"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
	"github.com/golang-jwt/jwt/v5"
)

// identityEndpoint fetches the managed identity's token as azidentity does in
// a Container App: GET IDENTITY_ENDPOINT with X-IDENTITY-HEADER.
func (h *entraHarness) identityEndpoint(t *testing.T, header string, q url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", h.authority+entrasim.ManagedIdentityPath+"?"+q.Encode(), nil)
	req.Header.Set("X-IDENTITY-HEADER", header)
	return jsonCall(t, req)
}

func assertionForm(rt, assertion string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "client_id": {entrasim.DevClientID}, "refresh_token": {rt},
		"scope":                 {"https://service.powerapps.com/User"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
}

// TestEntraFederatedCredential: an app with no secret presents the simulated
// managed identity's token (from the identity endpoint) as a jwt-bearer
// client_assertion; every assertion that does not match its federated
// credential, or is not the stand-in's, is refused as Entra refuses it, and a
// refused attempt does not spend the refresh token.
func TestEntraFederatedCredential(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	h := newEntraHarness(t, sim.Options{Now: func() time.Time { return time.Unix(0, now.Load()) }})
	h.entra.RegisterClient(entrasim.Client{ID: "no-secret-app", LoopbackRedirects: true, Federated: []entrasim.FederatedCredential{entrasim.DevFederatedCredential}})
	tid, oid := h.sim.UserFor("alice@contoso.com")

	for _, c := range []struct {
		name, header string
		q            url.Values
		status       int
	}{
		{"no header", "", url.Values{"api-version": {"2019-08-01"}, "resource": {entrasim.FederatedAudience}}, 401},
		{"wrong header", "guess", url.Values{"api-version": {"2019-08-01"}, "resource": {entrasim.FederatedAudience}}, 401},
		{"old api", entrasim.IdentityHeader, url.Values{"api-version": {"2017-09-01"}, "resource": {entrasim.FederatedAudience}}, 400},
		{"no resource", entrasim.IdentityHeader, url.Values{"api-version": {"2019-08-01"}}, 400},
		{"other identity", entrasim.IdentityHeader, url.Values{"api-version": {"2019-08-01"}, "resource": {entrasim.FederatedAudience}, "client_id": {"other"}}, 400},
	} {
		if status, body := h.identityEndpoint(t, c.header, c.q); status != c.status || body["access_token"] != nil {
			t.Errorf("identity endpoint, %s: %d %v", c.name, status, body)
		}
	}
	status, body := h.identityEndpoint(t, entrasim.IdentityHeader, url.Values{"api-version": {"2019-08-01"},
		"resource": {entrasim.FederatedAudience}, "client_id": {entrasim.ManagedIdentityClientID}})
	assertion, _ := body["access_token"].(string)
	if status != 200 || assertion == "" || body["expires_on"] != "1772370000" {
		t.Fatalf("identity endpoint: %d %v", status, body)
	}

	for _, client := range []string{entrasim.DevClientID, "no-secret-app"} {
		rt := h.entra.IssueRefreshToken(tid, oid, client, signInScopes)
		form := assertionForm(rt, assertion)
		form.Set("client_id", client)
		if status, body := h.tokenCall(t, "organizations", form); status != 200 || body["access_token"] == nil {
			t.Fatalf("%s with the managed identity's assertion: %d %v", client, status, body)
		}
	}

	other := sim.New(sim.Options{}) // another key: not this stand-in's signature
	forged := func(mutate func(*entrasim.ManagedIdentityClaims)) string {
		var c entrasim.ManagedIdentityClaims
		if _, _, err := jwt.NewParser().ParseUnverified(h.entra.ManagedIdentityToken(h.authority, entrasim.FederatedAudience, time.Hour), &c); err != nil {
			t.Fatal(err)
		}
		mutate(&c)
		return h.sim.Sign(c)
	}
	rt := h.entra.IssueRefreshToken(tid, oid, "no-secret-app", signInScopes)
	for _, c := range []struct {
		name   string
		form   func(url.Values)
		aadsts string
	}{
		{"another signer", func(f url.Values) {
			f.Set("client_assertion", other.Entra().ManagedIdentityToken(h.authority, entrasim.FederatedAudience, time.Hour))
		}, "AADSTS50027"},
		{"not a JWT", func(f url.Values) { f.Set("client_assertion", "mi-token") }, "AADSTS50027"},
		{"wrong type", func(f url.Values) {
			f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
		}, "AADSTS700023"},
		{"wrong audience", func(f url.Values) {
			f.Set("client_assertion", h.entra.ManagedIdentityToken(h.authority, "https://management.azure.com/", time.Hour))
		}, "AADSTS700212"},
		{"wrong subject", func(f url.Values) {
			f.Set("client_assertion", forged(func(c *entrasim.ManagedIdentityClaims) { c.Subject = "another-identity" }))
		}, "AADSTS700213"},
		{"wrong issuer", func(f url.Values) {
			f.Set("client_assertion", h.entra.ManagedIdentityToken("https://login.example", entrasim.FederatedAudience, time.Hour))
		}, "AADSTS700211"},
		{"expired", func(f url.Values) {
			f.Set("client_assertion", h.entra.ManagedIdentityToken(h.authority, entrasim.FederatedAudience, -time.Second))
		}, "AADSTS700024"},
		{"secret as well", func(f url.Values) { f.Set("client_secret", entrasim.DevClientSecret) }, "AADSTS7000219"},
	} {
		form := assertionForm(rt, assertion)
		form.Set("client_id", "no-secret-app")
		c.form(form)
		status, body := h.tokenCall(t, "organizations", form)
		wantStatus, code := 401, "invalid_client"
		if c.aadsts == "AADSTS7000219" {
			wantStatus, code = 400, "invalid_request"
		}
		t.Run(c.name, func(t *testing.T) { wantOAuthError(t, status, body, wantStatus, code, c.aadsts) })
	}
	// A secret is no way in for an app that has none.
	form := refreshForm(rt, "https://service.powerapps.com/User")
	form.Set("client_id", "no-secret-app")
	status, body = h.tokenCall(t, "organizations", form)
	wantOAuthError(t, status, body, 401, "invalid_client", "AADSTS7000215")

	// The assertion expires with the clock: an hour later it is refused, and a
	// fresh one from the identity endpoint works (no sleeping).
	now.Add(int64(time.Hour + time.Minute))
	status, body = h.tokenCall(t, "organizations", func() url.Values { f := assertionForm(rt, assertion); f.Set("client_id", "no-secret-app"); return f }())
	wantOAuthError(t, status, body, 401, "invalid_client", "AADSTS700024")
	_, body = h.identityEndpoint(t, entrasim.IdentityHeader, url.Values{"api-version": {"2019-08-01"}, "resource": {entrasim.FederatedAudience}})
	fresh, _ := body["access_token"].(string)
	form = assertionForm(rt, fresh)
	form.Set("client_id", "no-secret-app")
	if status, body := h.tokenCall(t, "organizations", form); status != 200 {
		t.Fatalf("fresh assertion after the clock moved: %d %v", status, body)
	}
}
