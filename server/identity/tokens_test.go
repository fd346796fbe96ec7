package identity_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server/identity"
	"github.com/flowstudio/mcp/server/sealing"
	"github.com/flowstudio/mcp/server/sealing/sealingtest"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/powerautomate/entrasim"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
)

var testSeed = []byte("identity package tests")

type harness struct {
	sim    *sim.Sim
	srv    *httptest.Server
	store  *cosmos.Store
	sealer *sealing.Sealer
	ts     *identity.TokenSource
	logs   *observer.ObservedLogs
	now    atomic.Int64 // unix nanoseconds of the token source's clock
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{sim: sim.New(sim.Options{KeySeed: testSeed})}
	h.srv = httptest.NewServer(h.sim.Handler())
	t.Cleanup(h.srv.Close)
	store, err := cosmos.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h.store = store
	h.sealer = sealing.New(sealing.NewFileKeys(filepath.Join(t.TempDir(), sealing.KeyFile)), sealing.Options{})
	h.now.Store(time.Now().UnixNano())
	core, logs := observer.New(zap.DebugLevel)
	h.logs = logs
	h.ts, err = identity.NewTokenSource(identity.Config{
		App:    identity.App{Authority: h.srv.URL + entrasim.Path, ClientID: entrasim.DevClientID, ClientSecret: entrasim.DevClientSecret},
		Logger: zap.New(core), Now: func() time.Time { return time.Unix(0, h.now.Load()) },
	}, store, h.sealer)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// connectorScope is what the sim records once a user accepts the connectors grant's
// https://apihub.azure.com/.default (the permission the app lists).
const connectorScope = "https://apihub.azure.com/user_impersonation"

// consent creates a consented user holding a sealed refresh token, as
// sign-in (or dev-key) would, and returns the principal of its key.
func (h *harness) consent(t *testing.T, email string) *powerautomate.Caller {
	t.Helper()
	return h.consentWith(t, email, identity.ConsentScopes, nil)
}

// consentWith is consent with the refresh token's consented scopes (what Entra
// knows) and the grants of the user record (what FlowStudio knows) chosen apart.
func (h *harness) consentWith(t *testing.T, email string, scopes, grants []string) *powerautomate.Caller {
	t.Helper()
	tid, oid := h.sim.UserFor(email)
	id := cosmos.UserID(tid, oid)
	rt := h.sim.Entra().IssueRefreshToken(tid, oid, entrasim.DevClientID, scopes)
	sealed, version, err := h.sealer.Seal(t.Context(), id, []byte(rt))
	if err != nil {
		t.Fatal(err)
	}
	u, err := h.store.CreateUser(t.Context(), &cosmos.User{ID: id, TenantID: tid, ObjectID: oid, Tier: cosmos.TierFree,
		KeyGeneration: 1, KeyIssuedAt: time.Now().Unix(), Consent: cosmos.ConsentGranted,
		SealedRefreshToken: sealed, SealKeyVersion: version, ConsentedResources: grants})
	if err != nil {
		t.Fatal(err)
	}
	return &powerautomate.Caller{UserID: u.ID, TenantID: tid, ObjectID: oid, KeyGeneration: u.KeyGeneration}
}

func (h *harness) tokenCalls() int {
	n := 0
	for _, r := range h.sim.Requests() {
		if r.Host == "entra" && strings.HasSuffix(r.Path, "/oauth2/v2.0/token") {
			n++
		}
	}
	return n
}

func (h *harness) storedRefreshToken(t *testing.T, id string) string {
	t.Helper()
	u, err := h.store.GetUser(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(u.SealedRefreshToken) == 0 {
		return ""
	}
	rt, err := h.sealer.Open(t.Context(), id, u.SealedRefreshToken, u.SealKeyVersion)
	if err != nil {
		t.Fatal(err)
	}
	return string(rt)
}

func audienceOf(t *testing.T, token string) (aud, scp string) {
	t.Helper()
	var c struct {
		jwt.RegisteredClaims
		Scp string `json:"scp"`
	}
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
		t.Fatal(err)
	}
	return c.Audience[0], c.Scp
}

func TestTokenCachedUntilShortlyBeforeExpiry(t *testing.T) {
	h := newHarness(t)
	h.sim.Entra().SetTokenLifetimes(5*time.Minute, time.Hour)
	p := h.consent(t, "alice@contoso.com")
	ctx := powerautomate.WithCaller(t.Context(), p)
	first, err := h.ts.Token(ctx, powerautomate.AudienceFlow)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if tok, err := h.ts.Token(ctx, powerautomate.AudienceFlow); err != nil || tok != first {
			t.Fatalf("not served from cache: %v", err)
		}
		// The Power Automate client asks for the header value: the same token, cached.
		if a, err := h.ts.Authorization(ctx, powerautomate.AudienceFlow); err != nil || len(a) != 1 || a[0] != "Bearer "+first {
			t.Fatalf("Authorization = %q, %v; want the cached token as a bearer", a, err)
		}
	}
	if n := h.tokenCalls(); n != 1 {
		t.Fatalf("%d token endpoint calls, want 1", n)
	}
	h.now.Add(int64(2*time.Minute + 50*time.Second)) // expires in 2m10s: still outside the 2 min skew
	h.ts.Token(ctx, powerautomate.AudienceFlow)
	if n := h.tokenCalls(); n != 1 {
		t.Fatalf("%d calls before the skew window", n)
	}
	h.now.Add(int64(15 * time.Second)) // within 2 min of expiry
	if _, err := h.ts.Token(ctx, powerautomate.AudienceFlow); err != nil {
		t.Fatal(err)
	}
	if n := h.tokenCalls(); n != 2 {
		t.Fatalf("%d calls, want a new redemption near expiry", n)
	}
	// A new key generation (re-issue, revoke + sign-in) never reuses the cache.
	p2 := *p
	p2.KeyGeneration++
	h.ts.Token(powerautomate.WithCaller(t.Context(), &p2), powerautomate.AudienceFlow)
	if n := h.tokenCalls(); n != 3 {
		t.Fatalf("%d calls, want a redemption for the new generation", n)
	}
}

func TestConcurrentCallsRedeemOnce(t *testing.T) {
	h := newHarness(t)
	p := h.consentWith(t, "alice@contoso.com", append(slices.Clone(identity.ConsentScopes), connectorScope), []string{identity.GrantConnectors})
	ctx := powerautomate.WithCaller(t.Context(), p)
	var wg sync.WaitGroup
	tokens := make([]string, 50)
	for i := range tokens {
		wg.Go(func() {
			tok, err := h.ts.Token(ctx, powerautomate.AudienceFlow)
			if err != nil {
				t.Error(err)
			}
			tokens[i] = tok
		})
	}
	wg.Wait()
	if n := h.tokenCalls(); n != 1 {
		t.Fatalf("%d redemptions for 50 concurrent calls, want 1", n)
	}
	for _, tok := range tokens {
		if tok != tokens[0] {
			t.Fatal("callers got different tokens")
		}
	}
	// Every audience at once: one redemption each, run one after another so
	// that each uses the refresh token the previous one rotated in.
	auds := []string{powerautomate.AudienceFlow, powerautomate.AudiencePowerApps, powerautomate.AudienceAPIHub}
	p2 := *p
	p2.KeyGeneration = 7
	ctx2 := powerautomate.WithCaller(t.Context(), &p2)
	for i := range 40 {
		wg.Go(func() {
			if _, err := h.ts.Token(ctx2, auds[i%len(auds)]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := h.tokenCalls(); n != 1+len(auds) {
		t.Fatalf("%d redemptions, want %d", n, 1+len(auds))
	}
	if u, _ := h.store.GetUser(t.Context(), p.UserID); u.Consent != cosmos.ConsentGranted {
		t.Fatalf("consent %s after concurrent redemptions", u.Consent)
	}
}

func TestPerAudienceTokensAndRotatedRefreshTokenSaved(t *testing.T) {
	h := newHarness(t)
	p := h.consentWith(t, "gary@fabrikam.com", append(slices.Clone(identity.ConsentScopes), connectorScope), []string{identity.GrantConnectors})
	ctx := powerautomate.WithCaller(t.Context(), p)
	before := h.storedRefreshToken(t, p.UserID)
	for _, tc := range []struct{ aud, scp string }{
		{powerautomate.AudienceFlow, "Flows.Read.All Flows.Manage.All Activity.Read.All"},
		{powerautomate.AudiencePowerApps, "User"},
		{powerautomate.AudienceAPIHub, "user_impersonation"},
	} {
		tok, err := h.ts.Token(ctx, tc.aud)
		if err != nil {
			t.Fatalf("%s: %v", tc.aud, err)
		}
		if aud, scp := audienceOf(t, tok); aud != tc.aud || scp != tc.scp {
			t.Errorf("%s: token aud %s scp %q", tc.aud, aud, scp)
		}
	}
	after := h.storedRefreshToken(t, p.UserID)
	if after == "" || after == before {
		t.Fatal("the rotated refresh token was not saved")
	}
	// The tokens work against the simulated APIs.
	cfg := sim.ConfigFor(h.srv.URL)
	client, err := powerautomate.New(cfg, h.ts)
	if err != nil {
		t.Fatal(err)
	}
	envs, err := client.ListEnvironments(ctx)
	if err != nil || len(envs) == 0 {
		t.Fatalf("environments: %v %v", envs, err)
	}
}

func TestInvalidGrantMarksNeedsConsent(t *testing.T) {
	h := newHarness(t)
	p := h.consent(t, "bob@contoso.com")
	ctx := powerautomate.WithCaller(t.Context(), p)
	rt := h.storedRefreshToken(t, p.UserID)
	h.sim.Entra().RevokeRefreshTokens(p.TenantID, p.ObjectID) // an admin revoked the sessions
	_, err := h.ts.Token(ctx, powerautomate.AudienceFlow)
	if !errors.Is(err, powerautomate.ErrReconnect) {
		t.Fatalf("err %v, want ErrReconnect", err)
	}
	u, _ := h.store.GetUser(t.Context(), p.UserID)
	if u.Consent != cosmos.ConsentNeeded || len(u.SealedRefreshToken) != 0 {
		t.Fatalf("consent %s, sealed %d bytes", u.Consent, len(u.SealedRefreshToken))
	}
	// The log says what happened, without a token.
	entries := h.logs.FilterMessageSnippet("needs to consent").All()
	if len(entries) != 1 || entries[0].ContextMap()["aadsts"] != "AADSTS50173" {
		t.Fatalf("log: %+v", h.logs.All())
	}
	for _, e := range h.logs.All() {
		for _, v := range e.ContextMap() {
			if s, ok := v.(string); ok && (strings.Contains(s, rt) || strings.Contains(s, "0.AS.")) {
				t.Fatalf("a refresh token was logged: %v", e)
			}
		}
	}
	// From now on: reconnect, without asking Entra again.
	calls := h.tokenCalls()
	if _, err := h.ts.Token(ctx, powerautomate.AudiencePowerApps); !errors.Is(err, powerautomate.ErrReconnect) {
		t.Fatal(err)
	}
	if h.tokenCalls() != calls {
		t.Fatal("a user needing consent must not reach the token endpoint")
	}
}

func TestRevokedOrMissingTokenAsksToReconnect(t *testing.T) {
	h := newHarness(t)
	p := h.consent(t, "alice@contoso.com")
	if _, err := h.ts.Token(powerautomate.WithCaller(t.Context(), p), powerautomate.AudienceFlow); err != nil {
		t.Fatal(err)
	}
	u, err := identity.Revoke(t.Context(), h.store, p.UserID)
	if err != nil {
		t.Fatal(err)
	}
	if u.Consent != cosmos.ConsentRevoked || len(u.SealedRefreshToken) != 0 || u.KeyGeneration != p.KeyGeneration+1 {
		t.Fatalf("after revoke: %+v", u)
	}
	p2 := *p
	p2.KeyGeneration = u.KeyGeneration
	if _, err := h.ts.Token(powerautomate.WithCaller(t.Context(), &p2), powerautomate.AudienceFlow); !errors.Is(err, powerautomate.ErrReconnect) {
		t.Fatalf("revoked: %v", err)
	}
	if _, err := h.ts.Token(t.Context(), powerautomate.AudienceFlow); !errors.Is(err, powerautomate.ErrReconnect) {
		t.Fatalf("no principal: %v", err)
	}
	ghost := &powerautomate.Caller{UserID: "t.nobody", TenantID: "t", ObjectID: "nobody"}
	if _, err := h.ts.Token(powerautomate.WithCaller(t.Context(), ghost), powerautomate.AudienceFlow); !errors.Is(err, powerautomate.ErrReconnect) {
		t.Fatalf("unknown user: %v", err)
	}
	// A consented user whose token is gone (an interrupted write) also reconnects.
	q := h.consent(t, "carol@contoso.com")
	h.store.UpdateUser(t.Context(), q.UserID, func(u *cosmos.User) error { u.SealedRefreshToken, u.SealKeyVersion = nil, ""; return nil })
	if _, err := h.ts.Token(powerautomate.WithCaller(t.Context(), q), powerautomate.AudienceFlow); !errors.Is(err, powerautomate.ErrReconnect) {
		t.Fatalf("missing token: %v", err)
	}
}

func TestReissueKey(t *testing.T) {
	h := newHarness(t)
	p := h.consent(t, "alice@contoso.com")
	at := time.Unix(1_900_000_000, 0)
	u, err := identity.ReissueKey(t.Context(), h.store, p.UserID, at)
	if err != nil || u.KeyGeneration != p.KeyGeneration+1 || u.KeyIssuedAt != at.Unix() || u.Consent != cosmos.ConsentGranted {
		t.Fatalf("%+v %v", u, err)
	}
	identity.Revoke(t.Context(), h.store, p.UserID)
	if _, err := identity.ReissueKey(t.Context(), h.store, p.UserID, at); !errors.Is(err, identity.ErrNotConsented) {
		t.Fatalf("reissue after revoke: %v", err)
	}
}

func TestTransientTokenEndpointFailureIsRetried(t *testing.T) {
	h := newHarness(t)
	p := h.consent(t, "alice@contoso.com")
	h.sim.InjectFault(sim.FaultMatch{PathContains: "/oauth2/v2.0/token", Count: 1}, sim.Fault{Status: 503})
	if _, err := h.ts.Token(powerautomate.WithCaller(t.Context(), p), powerautomate.AudienceFlow); err != nil {
		t.Fatal(err)
	}
	h.sim.InjectFault(sim.FaultMatch{PathContains: "/oauth2/v2.0/token"}, sim.Fault{Status: 503})
	defer h.sim.ClearFaults()
	_, err := h.ts.Token(powerautomate.WithCaller(t.Context(), p), powerautomate.AudiencePowerApps)
	h.wantNotTheUsersFault(t, p, err, func(ee *identity.EntraError) bool { return ee.Status == 503 }, "an outage")
}

func TestWrongClientSecretIsNotTheUsersFault(t *testing.T) {
	h := newHarness(t)
	p := h.consent(t, "alice@contoso.com")
	ts, _ := identity.NewTokenSource(identity.Config{App: identity.App{Authority: h.srv.URL + entrasim.Path, ClientID: entrasim.DevClientID, ClientSecret: "wrong"}}, h.store, h.sealer)
	_, err := ts.Token(powerautomate.WithCaller(t.Context(), p), powerautomate.AudienceFlow)
	h.wantNotTheUsersFault(t, p, err, func(ee *identity.EntraError) bool { return ee.Code == "invalid_client" }, "a configuration error")
}

// wantNotTheUsersFault asserts err is an Entra error that is as wanted, does not
// ask the user to reconnect, and left the user's consent as it was.
func (h *harness) wantNotTheUsersFault(t *testing.T, p *powerautomate.Caller, err error, want func(*identity.EntraError) bool, what string) {
	t.Helper()
	var ee *identity.EntraError
	if !errors.As(err, &ee) || !want(ee) || errors.Is(err, powerautomate.ErrReconnect) {
		t.Fatalf("err %v", err)
	}
	if u, _ := h.store.GetUser(t.Context(), p.UserID); u.Consent != cosmos.ConsentGranted {
		t.Fatal(what + " must not cost the user their consent")
	}
}

func TestCallerGivingUpDoesNotFailOthers(t *testing.T) {
	h := newHarness(t)
	p := h.consent(t, "alice@contoso.com")
	h.sim.InjectFault(sim.FaultMatch{PathContains: "/oauth2/v2.0/token", Count: 1}, sim.Fault{Delay: 300 * time.Millisecond})
	short, cancel := context.WithTimeout(powerautomate.WithCaller(t.Context(), p), 50*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	var patientErr error
	wg.Go(func() {
		_, patientErr = h.ts.Token(powerautomate.WithCaller(t.Context(), p), powerautomate.AudienceFlow)
	})
	if _, err := h.ts.Token(short, powerautomate.AudienceFlow); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient caller: %v", err)
	}
	wg.Wait()
	if patientErr != nil {
		t.Fatal(patientErr)
	}
}

func TestScopesFor(t *testing.T) {
	for aud, want := range map[string][]string{
		powerautomate.AudienceFlow:               {"https://service.flow.microsoft.com/Flows.Read.All", "https://service.flow.microsoft.com/Flows.Manage.All", "https://service.flow.microsoft.com/Activity.Read.All"},
		"https://gov.service.flow.microsoft.us/": {"https://gov.service.flow.microsoft.us/Flows.Read.All", "https://gov.service.flow.microsoft.us/Flows.Manage.All", "https://gov.service.flow.microsoft.us/Activity.Read.All"},
		powerautomate.AudiencePowerApps:          {"https://service.powerapps.com/User"},
		"https://service.apps.appsplatform.us/":  {"https://service.apps.appsplatform.us/User"},
		powerautomate.AudienceAPIHub:             {"https://apihub.azure.com/.default"},
		powerautomate.AudiencePowerPlatform:      {"https://api.powerplatform.com/.default"},
		"https://service.powerautomate.cn/":      {"https://service.powerautomate.cn/Flows.Read.All", "https://service.powerautomate.cn/Flows.Manage.All", "https://service.powerautomate.cn/Activity.Read.All"},
	} {
		if got := identity.ScopesFor(aud); !slices.Equal(got, want) {
			t.Errorf("ScopesFor(%s) = %v", aud, got)
		}
	}
}

func TestResealAfterRotation(t *testing.T) {
	h := newHarness(t)
	ps := []*powerautomate.Caller{h.consent(t, "a1@contoso.com"), h.consent(t, "a2@contoso.com"), h.consent(t, "a3@fabrikam.com")}
	identity.Revoke(t.Context(), h.store, ps[2].UserID) // no token left to re-seal
	before := h.storedRefreshToken(t, ps[0].UserID)
	v2, err := h.sealer.Rotate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	res, err := identity.Reseal(t.Context(), h.store, h.sealer)
	if err != nil || res.Resealed != 2 || res.Empty != 1 || len(res.Failed) != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	for _, p := range ps[:2] {
		u, _ := h.store.GetUser(t.Context(), p.UserID)
		if u.SealKeyVersion != v2 {
			t.Fatalf("%s still sealed with %s", p.UserID, u.SealKeyVersion)
		}
	}
	if after := h.storedRefreshToken(t, ps[0].UserID); after != before {
		t.Fatal("re-sealing changed the token")
	}
	if res, _ := identity.Reseal(t.Context(), h.store, h.sealer); res.Current != 2 || res.Resealed != 0 {
		t.Fatalf("second run: %+v", res)
	}
	// And the re-sealed tokens still redeem.
	if _, err := h.ts.Token(powerautomate.WithCaller(t.Context(), ps[0]), powerautomate.AudienceFlow); err != nil {
		t.Fatal(err)
	}
}

// End to end over the Key Vault wire fake: rotate adds a secret version,
// Reseal moves every user to it, the old version still opens meanwhile.
func TestResealWithKeyVaultOverTheWire(t *testing.T) {
	h := newHarness(t)
	vault := sealingtest.NewVault(t)
	vault.Seed(sealing.DefaultSecretName, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	client, err := sealing.NewVaultClient(vault.Server.URL, &azfake.TokenCredential{}, vault.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	h.sealer = sealing.New(sealing.NewVaultKeys(client, ""), sealing.Options{})
	p := h.consent(t, "alice@contoso.com")
	u, _ := h.store.GetUser(t.Context(), p.UserID)
	v1 := u.SealKeyVersion
	v2, err := h.sealer.Rotate(t.Context())
	if err != nil || v2 == v1 || !slices.Equal(vault.Versions(sealing.DefaultSecretName), []string{v1, v2}) {
		t.Fatalf("rotate: %s %v %v", v2, err, vault.Versions(sealing.DefaultSecretName))
	}
	// Before re-sealing, a new process opens the old version from the vault.
	fresh := sealing.New(sealing.NewVaultKeys(vault.Client(t), ""), sealing.Options{})
	if _, err := fresh.Open(t.Context(), u.ID, u.SealedRefreshToken, v1); err != nil {
		t.Fatal(err)
	}
	if res, err := identity.Reseal(t.Context(), h.store, h.sealer); err != nil || res.Resealed != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	u, _ = h.store.GetUser(t.Context(), p.UserID)
	if u.SealKeyVersion != v2 {
		t.Fatalf("sealed with %s, want %s", u.SealKeyVersion, v2)
	}
	if _, err := fresh.Open(t.Context(), u.ID, u.SealedRefreshToken, u.SealKeyVersion); err != nil {
		t.Fatal(err)
	}
}

func TestFederatedCredentialInsteadOfSecret(t *testing.T) {
	h := newHarness(t)
	p := h.consent(t, "alice@contoso.com")
	var asked []string
	cred := &recordingCred{scopes: &asked}
	ts, err := identity.NewTokenSource(identity.Config{App: identity.App{Authority: h.srv.URL + entrasim.Path, ClientID: entrasim.DevClientID,
		Assertion: identity.FederatedAssertion(cred, "https://login.microsoftonline.com")}}, h.store, h.sealer)
	if err != nil {
		t.Fatal(err)
	}
	// "mi-token" is no token of the managed identity the app trusts: the stand-in
	// refuses it as Entra refuses a wrong credential, and the user keeps consent.
	_, err = ts.Token(powerautomate.WithCaller(t.Context(), p), powerautomate.AudienceFlow)
	var ee *identity.EntraError
	if !errors.As(err, &ee) || ee.Code != "invalid_client" || errors.Is(err, powerautomate.ErrReconnect) {
		t.Fatalf("err %v", err)
	}
	if !slices.Equal(asked, []string{"api://AzureADTokenExchange/.default"}) {
		t.Fatalf("asked for %v", asked)
	}
	if u, _ := h.store.GetUser(t.Context(), p.UserID); u.Consent != cosmos.ConsentGranted {
		t.Fatalf("a refused app credential changed consent to %s", u.Consent)
	}
	// The managed identity's own token, which the app's federated credential trusts,
	// redeems the same refresh token.
	cred.token = h.sim.Entra().ManagedIdentityToken(h.srv.URL+entrasim.Path, entrasim.FederatedAudience, time.Hour)
	if tok, err := ts.Token(powerautomate.WithCaller(t.Context(), p), powerautomate.AudienceFlow); err != nil || tok == "" {
		t.Fatalf("with the managed identity's assertion: %v", err)
	}
	for authority, want := range map[string]string{
		"https://login.microsoftonline.us":         "api://AzureADTokenExchangeUSGov",
		"https://login.partner.microsoftonline.cn": "api://AzureADTokenExchangeChina",
		"https://login.microsoftonline.com":        "api://AzureADTokenExchange",
	} {
		if got := identity.FederatedAudience(authority); got != want {
			t.Errorf("%s: %s", authority, got)
		}
	}
}

type recordingCred struct {
	scopes *[]string
	token  string // "" means "mi-token"
}

func (c *recordingCred) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	*c.scopes = append(*c.scopes, o.Scopes...)
	tok := c.token
	if tok == "" {
		tok = "mi-token"
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// TestConnectorAudienceNeedsTheGrant: the connector runtime's audience lies beyond
// the default sign-in. Without the grant the token source refuses it before asking
// Entra; with it, it redeems; the Power Platform API, which no grant covers yet, is
// never redeemed.
func TestConnectorAudienceNeedsTheGrant(t *testing.T) {
	h := newHarness(t)
	// Entra would even allow it (the scope is consented there): FlowStudio's record
	// decides, so nothing is redeemed the user did not grant here.
	p := h.consentWith(t, "alice@contoso.com", append(slices.Clone(identity.ConsentScopes), connectorScope), nil)
	ctx := powerautomate.WithCaller(t.Context(), p)
	for _, aud := range []string{powerautomate.AudienceAPIHub, "https://apihub.azure.com/", powerautomate.AudiencePowerPlatform} {
		_, err := h.ts.Token(ctx, aud)
		if !errors.Is(err, powerautomate.ErrConsentRequired) || errors.Is(err, powerautomate.ErrReconnect) {
			t.Fatalf("%s without the grant: %v, want ErrConsentRequired", aud, err)
		}
	}
	if n := h.tokenCalls(); n != 0 {
		t.Fatalf("%d token endpoint calls for audiences not granted", n)
	}
	if _, err := h.ts.Token(ctx, powerautomate.AudienceFlow); err != nil {
		t.Fatalf("the default audiences need no grant: %v", err)
	}

	if _, err := h.store.UpdateUser(t.Context(), p.UserID, func(u *cosmos.User) error {
		identity.AddGrant(u, identity.GrantConnectors)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tok, err := h.ts.Token(ctx, powerautomate.AudienceAPIHub)
	if err != nil {
		t.Fatalf("with the grant: %v", err)
	}
	if aud, scp := audienceOf(t, tok); aud != powerautomate.AudienceAPIHub || scp != "user_impersonation" {
		t.Fatalf("token aud %s scp %q", aud, scp)
	}
	if _, err := h.ts.Token(ctx, powerautomate.AudiencePowerPlatform); !errors.Is(err, powerautomate.ErrConsentRequired) {
		t.Fatalf("an audience no grant covers: %v", err)
	}
	if u, _ := h.store.GetUser(t.Context(), p.UserID); u.Consent != cosmos.ConsentGranted || !identity.HasGrant(u, identity.GrantConnectors) {
		t.Fatalf("user after: consent %s grants %v", u.Consent, u.ConsentedResources)
	}
}

// TestConsentMissingAtEntraDropsOnlyTheGrant: the record holds the grant but Entra
// answers AADSTS65001 for the runtime (consent withdrawn at Microsoft, or never
// given there). The call wraps ErrConsentRequired, the grant is dropped so the
// dashboard offers it again, and the sign-in stays valid: no needs_consent, the
// default audiences keep working.
func TestConsentMissingAtEntraDropsOnlyTheGrant(t *testing.T) {
	h := newHarness(t)
	p := h.consentWith(t, "bob@contoso.com", identity.ConsentScopes, []string{identity.GrantConnectors})
	ctx := powerautomate.WithCaller(t.Context(), p)
	_, err := h.ts.Token(ctx, powerautomate.AudienceAPIHub)
	if !errors.Is(err, powerautomate.ErrConsentRequired) || errors.Is(err, powerautomate.ErrReconnect) {
		t.Fatalf("err %v, want ErrConsentRequired", err)
	}
	u, _ := h.store.GetUser(t.Context(), p.UserID)
	if u.Consent != cosmos.ConsentGranted || len(u.SealedRefreshToken) == 0 {
		t.Fatalf("AADSTS65001 for the runtime marked the user: consent %s, sealed %d bytes", u.Consent, len(u.SealedRefreshToken))
	}
	if identity.HasGrant(u, identity.GrantConnectors) {
		t.Fatal("the lapsed grant is still recorded")
	}
	if _, err := h.ts.Token(ctx, powerautomate.AudienceFlow); err != nil {
		t.Fatalf("the sign-in no longer works: %v", err)
	}
	entries := h.logs.FilterMessageSnippet("grant is dropped").All()
	if len(entries) != 1 || entries[0].ContextMap()["aadsts"] != "AADSTS65001" || entries[0].ContextMap()["grant"] != identity.GrantConnectors {
		t.Fatalf("log: %+v", h.logs.All())
	}
	if n := len(h.logs.FilterMessageSnippet("needs to consent").All()); n != 0 {
		t.Fatalf("%d needs-consent log lines", n)
	}
	// Next time: refused before Entra is asked.
	calls := h.tokenCalls()
	if _, err := h.ts.Token(ctx, powerautomate.AudienceAPIHub); !errors.Is(err, powerautomate.ErrConsentRequired) || h.tokenCalls() != calls {
		t.Fatalf("second call: %v, %d token calls", err, h.tokenCalls()-calls)
	}
}

func TestGrants(t *testing.T) {
	g, ok := identity.LookupGrant(identity.GrantConnectors)
	if !ok || !slices.Equal(g.SignInScopes(), []string{"openid", "profile", "offline_access", "https://apihub.azure.com/.default"}) {
		t.Fatalf("connectors grant: %v %+v", ok, g)
	}
	if !slices.Equal(g.Scopes, identity.ScopesFor(powerautomate.AudienceAPIHub)) {
		t.Errorf("the grant asks for %v, the token source redeems %v", g.Scopes, identity.ScopesFor(powerautomate.AudienceAPIHub))
	}
	for _, bad := range []string{"", "Connectors", "connectors ", "https://apihub.azure.com/.default", "default"} {
		if _, ok := identity.LookupGrant(bad); ok {
			t.Errorf("LookupGrant(%q) found a grant", bad)
		}
	}
	for aud, want := range map[string]struct {
		grant string
		gated bool
	}{
		powerautomate.AudienceFlow:                      {"", false},
		powerautomate.AudiencePowerApps:                 {"", false},
		"https://gov.service.flow.microsoft.us/":        {"", false},
		"https://service.apps.appsplatform.us/":         {"", false},
		powerautomate.AudienceAPIHub:                    {identity.GrantConnectors, true},
		"https://apihub.azure.com/":                     {identity.GrantConnectors, true},
		powerautomate.AudiencePowerPlatform:             {"", true},
		"https://graph.microsoft.com":                   {"", true},
		"https://contoso.crm4.dynamics.com":             {identity.GrantDataverse, true},
		"https://contoso.crm.dynamics.com/":             {identity.GrantDataverse, true},
		"https://contoso.api.crm.dynamics.com":          {identity.GrantDataverse, true},
		"https://contoso.crm9.dynamics.com":             {identity.GrantDataverse, true},
		"https://contoso.crm.microsoftdynamics.us":      {identity.GrantDataverse, true},
		"https://contoso.crm.appsplatform.us":           {identity.GrantDataverse, true},
		"https://contoso.crm.dynamics.cn":               {identity.GrantDataverse, true},
		"https://contoso.crm.dynamics.com:8443":         {"", true},
		"https://crm.dynamics.com":                      {"", true},
		"https://evil.example/contoso.crm.dynamics.com": {"", true},
		"https://contoso.crm.dynamics.com.evil.example": {"", true},
		"https://contoso.crmx.dynamics.com":             {"", true},
	} {
		if grant, gated := identity.GrantFor(aud); grant != want.grant || gated != want.gated {
			t.Errorf("GrantFor(%s) = %q, %v; want %q, %v", aud, grant, gated, want.grant, want.gated)
		}
	}
	for scope, want := range map[string]bool{
		"https://apihub.azure.com/user_impersonation":                                        true,
		"https://apihub.azure.com/.default openid":                                           true,
		"https://service.flow.microsoft.com/Flows.Read.All":                                  false,
		"openid profile offline_access":                                                      false,
		"https://service.powerapps.com/User https://apihub.azure.com/user_impersonation":     true,
		"https://api.powerplatform.com/user_impersonation https://evil.example/apihub.azure": false,
	} {
		if got := g.GrantedIn(scope); got != want {
			t.Errorf("GrantedIn(%q) = %v", scope, got)
		}
	}
	dv, ok := identity.LookupGrant(identity.GrantDataverse)
	if !ok || !slices.Equal(dv.SignInScopes(), []string{"openid", "profile", "offline_access", "https://globaldisco.crm.dynamics.com/user_impersonation"}) {
		t.Fatalf("dataverse grant: %v %+v", ok, dv)
	}
	for scope, want := range map[string]bool{
		"https://globaldisco.crm.dynamics.com/user_impersonation": true,
		"https://apihub.azure.com/user_impersonation":             false,
		"https://evil.example/globaldisco.crm.dynamics.com":       false,
	} {
		if got := dv.GrantedIn(scope); got != want {
			t.Errorf("dataverse GrantedIn(%q) = %v", scope, got)
		}
	}
	if g.GrantedIn("https://globaldisco.crm.dynamics.com/user_impersonation") {
		t.Error("the connectors grant claims a Dataverse scope")
	}
	u := &cosmos.User{}
	identity.AddGrant(u, identity.GrantConnectors)
	identity.AddGrant(u, identity.GrantConnectors)
	if !slices.Equal(u.ConsentedResources, []string{identity.GrantConnectors}) || !identity.HasGrant(u, identity.GrantConnectors) {
		t.Fatalf("grants %v", u.ConsentedResources)
	}
	identity.RevokeUser(u)
	if u.ConsentedResources != nil || identity.HasGrant(u, identity.GrantConnectors) {
		t.Fatalf("revoke left grants %v", u.ConsentedResources)
	}
}
