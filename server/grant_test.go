package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server/identity"
	"github.com/flowstudio/mcp/server/sealing"
	"github.com/flowstudio/mcp/tools"
	"github.com/flowstudio/mcp/tools/metering"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/powerautomate/entrasim"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Incremental consent for the connector runtime: /login?grant=connectors.

// newSimWebHarness is the server as embedded mode wires it: the simulator at /sim,
// sign-in against its Entra ID stand-in, and the real catalog on the real delegated
// token source, which opens the refresh token the sign-in sealed and redeems it at
// the stand-in for each API.
func newSimWebHarness(t *testing.T, extra ...func(*webOptions)) (*webHarness, *tokenTap, *sim.Sim) {
	t.Helper()
	return newSimWebHarnessAs(t, func(authority string) identity.App {
		return identity.App{Authority: authority, Tenant: "organizations", ClientID: entrasim.DevClientID, ClientSecret: entrasim.DevClientSecret}
	}, nil, extra...)
}

// newSimWebHarnessAs is newSimWebHarness with the app registration app returns for
// the stand-in's authority; wrap, when set, sees every request to the simulator.
func newSimWebHarnessAs(t *testing.T, app func(authority string) identity.App, wrap func(http.Handler) http.Handler, extra ...func(*webOptions)) (*webHarness, *tokenTap, *sim.Sim) {
	t.Helper()
	simulator := sim.New(sim.Options{PathPrefix: "/sim"})
	tap := &tokenTap{}
	handler := tap.wrap(simulator.Handler())
	if wrap != nil {
		handler = wrap(handler)
	}
	h := newWebHarness(t, webOptions{sim: handler, setup: func(base string, h *webHarness, o *webOptions) {
		for _, fn := range extra {
			fn(o)
		}
		o.entra = app(base + "/sim" + entrasim.Path)
		o.sealer = sealing.New(sealing.NewFileKeys(filepath.Join(h.dataDir, sealing.KeyFile)), sealing.Options{})
		tokens, err := identity.NewTokenSource(identity.Config{App: o.entra,
			Logger: zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), h.logs, zapcore.DebugLevel))},
			h.store, o.sealer)
		if err != nil {
			t.Fatal(err)
		}
		pa, err := powerautomate.New(sim.ConfigFor(base+"/sim"), tokens)
		if err != nil {
			t.Fatal(err)
		}
		meter := metering.New(metering.Options{Store: h.store, Quotas: metering.DefaultQuotas, DashboardURL: base + "/dashboard",
			Log: metering.NewLogger(h.logs)})
		if o.catalog, err = tools.NewCatalog(&tools.Env{PA: pa, DashboardURL: base + "/dashboard"}, meter, 0, tools.All()); err != nil {
			t.Fatal(err)
		}
	}})
	return h, tap, simulator
}

// simSignIn opens path (/login or /login?grant=...) in the browser and walks the
// stand-in's pages as email: sign-in, consent (returned), Accept; it returns where
// the browser ended.
func simSignIn(t *testing.T, h *webHarness, c *http.Client, path, email string) (end webPage, consent string) {
	t.Helper()
	page := webFetch(t, c, "GET", h.ts.URL+path, nil, nil)
	authorize := page.url.String()
	if page.status != 200 || !strings.Contains(authorize, "/sim/entra/organizations/oauth2/v2.0/authorize?") {
		t.Fatalf("%s landed on %s (%d)", path, authorize, page.status)
	}
	cp := webFetch(t, c, "POST", authorize, url.Values{"login_email": {email}}, nil)
	if cp.status != 200 || !strings.Contains(cp.body, `id="accept"`) {
		t.Fatalf("no consent page: %d %s", cp.status, cp.body)
	}
	return webFetch(t, c, "POST", authorize, url.Values{"login_email": {email}, "consent": {"accept"}}, nil), cp.body
}

// callTool posts tools/call with arguments to /mcp with key.
func callTool(t *testing.T, h *webHarness, key, name string, args map[string]any) webToolResult {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 9, "method": "tools/call",
		"params": map[string]any{"name": name, "arguments": args}})
	status, raw := h.postMCP(t, key, "2025-06-18", string(body))
	var out struct {
		Result struct {
			IsError bool `json:"isError"`
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"result"`
	}
	_ = json.Unmarshal(raw, &out)
	var text strings.Builder
	for _, c := range out.Result.Content {
		text.WriteString(c.Text)
	}
	if text.Len() == 0 {
		text.Write(raw)
	}
	return webToolResult{status: status, isError: out.Result.IsError, text: text.String()}
}

// accessState is what the dashboard's line with id says about a grant: "Granted" or
// "Not granted".
func accessState(t *testing.T, body, id string) string {
	t.Helper()
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		t.Fatalf("no %s line:\n%s", id, body)
	}
	rest := body[i:]
	return rest[strings.Index(rest, ">")+1 : strings.Index(rest, "<")]
}

func connectorState(t *testing.T, body string) string {
	return accessState(t, body, "connector-access")
}

const grantConnectorsLink = `href="/login?grant=connectors"`

func TestDefaultSignInNeverAsksForConnectors(t *testing.T) {
	t.Parallel()
	fe, h, c := newEntraHarness(t)
	dash := h.signIn(t, c)
	q := fe.lastAuthorize()
	if strings.Contains(q.Get("scope"), "apihub") || strings.Contains(q.Get("scope"), "powerplatform") || q.Has("prompt") {
		t.Fatalf("the default sign-in asks for %q (prompt %q)", q.Get("scope"), q.Get("prompt"))
	}
	if !slices.Equal(strings.Fields(q.Get("scope")), identity.ConsentScopes) {
		t.Fatalf("default scopes %q, want exactly %v", q.Get("scope"), identity.ConsentScopes)
	}
	if got := connectorState(t, dash.body); got != "Not granted" || !strings.Contains(dash.body, grantConnectorsLink) ||
		!strings.Contains(dash.body, "test_live_connection") || !strings.Contains(dash.body, "connector runtime") {
		t.Fatalf("dashboard connector line %q:\n%s", got, dash.body)
	}
	if u := h.user(t, fakeUserID); u.ConsentedResources != nil {
		t.Fatalf("a default sign-in recorded grants %v", u.ConsentedResources)
	}
}

func TestGrantConnectorsAsksForExactlyTheRuntimeScope(t *testing.T) {
	t.Parallel()
	fe, h, c := newEntraHarness(t)
	dash := h.signIn(t, c)
	key := webMatch(t, keyField, dash.body)
	before := h.user(t, fakeUserID)

	login := webFetch(t, noFollow(c), "GET", h.ts.URL+"/login?grant=connectors", nil, nil)
	authz, err := url.Parse(login.header.Get("Location"))
	if login.status != http.StatusFound || err != nil || !strings.HasPrefix(authz.String(), fe.url()+"/organizations/oauth2/v2.0/authorize?") {
		t.Fatalf("/login?grant=connectors: %d to %q", login.status, login.header.Get("Location"))
	}
	q := authz.Query()
	if got := strings.Fields(q.Get("scope")); !slices.Equal(got, []string{"openid", "profile", "offline_access", "https://apihub.azure.com/.default"}) {
		t.Fatalf("grant scopes %v", got)
	}
	for k, want := range map[string]string{"prompt": "consent", "client_id": fe.clientID, "response_type": "code",
		"code_challenge_method": "S256", "redirect_uri": h.ts.URL + "/callback", "response_mode": "query"} {
		if q.Get(k) != want {
			t.Errorf("authorize %s = %q, want %q", k, q.Get(k), want)
		}
	}
	if strings.Contains(login.header.Get("Location"), "connectors") {
		t.Error("the grant name travels in the URL; it belongs in the signed cookie")
	}

	end := webFetch(t, c, "GET", authz.String(), nil, nil)
	if end.status != 200 || end.url.Path != "/dashboard" || !strings.Contains(end.body, "Connector access granted") {
		t.Fatalf("after the grant: %d at %s\n%s", end.status, end.url, end.body)
	}
	if got := connectorState(t, end.body); got != "Granted" || strings.Contains(end.body, grantConnectorsLink) {
		t.Fatalf("dashboard after the grant says %q", got)
	}
	if webMatch(t, keyField, end.body) != key {
		t.Fatal("granting connector access changed the key")
	}
	after := h.user(t, fakeUserID)
	if !slices.Equal(after.ConsentedResources, []string{identity.GrantConnectors}) || after.KeyGeneration != before.KeyGeneration ||
		after.KeyIssuedAt != before.KeyIssuedAt || after.Consent != cosmos.ConsentGranted {
		t.Fatalf("user after the grant: %+v", after)
	}
	rt, err := h.sealer.Open(context.Background(), after.ID, after.SealedRefreshToken, after.SealKeyVersion)
	secrets := fe.secrets()
	if err != nil || string(rt) != secrets[len(secrets)-1] {
		t.Fatalf("the stored refresh token is not the grant sign-in's (%v)", err)
	}

	// Signing in again (the default) keeps the grant: Entra's consent is cumulative.
	if again := h.signIn(t, h.browser(t)); connectorState(t, again.body) != "Granted" {
		t.Fatal("a default sign-in dropped the grant")
	}
	// Revoke clears it; the next sign-in starts from the default.
	rv := h.post(t, c, "/dashboard/revoke", webMatch(t, csrfField, end.body))
	if u := h.user(t, fakeUserID); rv.status != 200 || u.ConsentedResources != nil || u.Consent != cosmos.ConsentRevoked {
		t.Fatalf("after revoke: %d, grants %v consent %s", rv.status, u.ConsentedResources, u.Consent)
	}
	if back := h.signIn(t, c); connectorState(t, back.body) != "Not granted" {
		t.Fatal("a grant survived revoke")
	}
	h.assertNoSecrets(t, append(fe.secrets(), key, fakeEmail))
}

func TestGrantCannotBeSmuggled(t *testing.T) {
	t.Parallel()
	noGrant := func(t *testing.T, h *webHarness) {
		t.Helper()
		if u := h.user(t, fakeUserID); u.ConsentedResources != nil {
			t.Fatalf("the user gained grants %v", u.ConsentedResources)
		}
	}

	t.Run("grant added to the callback URL of a default sign-in", func(t *testing.T) {
		t.Parallel()
		_, h, c := newEntraHarness(t)
		cb := h.begin(t, c)
		p := webFetch(t, c, "GET", withQuery(cb, func(q url.Values) {
			q.Set("grant", "connectors")
			q.Set("scope", "https://apihub.azure.com/user_impersonation")
		}), nil, nil)
		if p.status != 200 || p.url.Path != "/dashboard" || connectorState(t, p.body) != "Not granted" {
			t.Fatalf("%d at %s", p.status, p.url)
		}
		noGrant(t, h)
	})

	t.Run("without a dashboard session", func(t *testing.T) {
		t.Parallel()
		fe := newFakeEntra(t)
		h := newWebHarness(t, webOptions{entra: fe.config()})
		p := webFetch(t, noFollow(h.browser(t)), "GET", h.ts.URL+"/login?grant=connectors", nil, nil)
		if p.status != http.StatusForbidden || p.header.Get("Location") != "" || !strings.Contains(p.body, "Sign in first") {
			t.Fatalf("%d to %q", p.status, p.header.Get("Location"))
		}
		if cookiesOf(p.header)["flowstudio-login"] != nil {
			t.Fatal("a login cookie was set")
		}
	})

	t.Run("names and scopes that are not a grant", func(t *testing.T) {
		t.Parallel()
		_, h, c := newEntraHarness(t)
		h.signIn(t, c)
		for _, v := range []string{"", "Connectors", "connectors,graph", "https://graph.microsoft.com/Mail.Read", "../connectors"} {
			p := webFetch(t, noFollow(c), "GET", h.ts.URL+"/login?"+url.Values{"grant": {v}}.Encode(), nil, nil)
			if p.status != http.StatusBadRequest || p.header.Get("Location") != "" || strings.Contains(p.body, "Mail.Read") {
				t.Errorf("grant=%q: %d to %q", v, p.status, p.header.Get("Location"))
			}
		}
		// Scope parameters beside a real grant are ignored.
		p := webFetch(t, noFollow(c), "GET", h.ts.URL+"/login?grant=connectors&scope=https://graph.microsoft.com/Mail.Read&prompt=none", nil, nil)
		authz, _ := url.Parse(p.header.Get("Location"))
		if authz == nil || authz.Query().Get("scope") != "openid profile offline_access https://apihub.azure.com/.default" ||
			authz.Query().Get("prompt") != "consent" {
			t.Fatalf("extra parameters changed the request: %q", p.header.Get("Location"))
		}
		noGrant(t, h)
	})

	t.Run("a forged login cookie naming the grant", func(t *testing.T) {
		t.Parallel()
		_, h, c := newEntraHarness(t)
		h.signIn(t, c)
		cb := h.begin(t, c) // a default sign-in: its cookie names no grant
		base, _ := url.Parse(h.ts.URL)
		var value string
		for _, ck := range c.Jar.Cookies(base) {
			if ck.Name == "flowstudio-login" {
				value = ck.Value
			}
		}
		payload, sig, _ := strings.Cut(value, ".")
		raw, _ := base64.RawURLEncoding.DecodeString(payload)
		edited := strings.Replace(string(raw), `"pv":`, `"g":"connectors","u":"`+fakeUserID+`","pv":`, 1)
		c.Jar.SetCookies(base, []*http.Cookie{{Name: "flowstudio-login", Value: base64.RawURLEncoding.EncodeToString([]byte(edited)) + "." + sig}})
		if p := webFetch(t, c, "GET", cb.String(), nil, nil); p.status != 400 || !strings.Contains(p.body, "Sign-in expired") {
			t.Fatalf("forged cookie: %d %s", p.status, p.url)
		}
		noGrant(t, h)
	})

	t.Run("another account consents", func(t *testing.T) {
		t.Parallel()
		fe, h, c := newEntraHarness(t)
		h.signIn(t, c)
		login := webFetch(t, noFollow(c), "GET", h.ts.URL+"/login?grant=connectors", nil, nil)
		fe.set(func(f *fakeEntra) {
			f.user = fakeUser{tid: fakeTenant, oid: "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", email: "mallory@contoso-test.example", name: "Mallory"}
		})
		p := webFetch(t, c, "GET", login.header.Get("Location"), nil, nil)
		if p.status != 400 || !strings.Contains(p.body, "Another account signed in") {
			t.Fatalf("%d at %s", p.status, p.url)
		}
		if _, err := h.store.GetUser(context.Background(), cosmos.UserID(fakeTenant, "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee")); err == nil {
			t.Fatal("the other account was stored")
		}
		noGrant(t, h)
	})

	t.Run("Entra grants no scope of the runtime", func(t *testing.T) {
		t.Parallel()
		fe, h, c := newEntraHarness(t)
		h.signIn(t, c)
		fe.set(func(f *fakeEntra) { f.scope = "openid profile offline_access" })
		p := webFetch(t, c, "GET", h.ts.URL+"/login?grant=connectors", nil, nil)
		if p.url.Path != "/dashboard" || !strings.Contains(p.body, "did not grant the extra access") || connectorState(t, p.body) != "Not granted" {
			t.Fatalf("%d at %s\n%s", p.status, p.url, p.body)
		}
		noGrant(t, h)
	})

	t.Run("declined at the consent page", func(t *testing.T) {
		t.Parallel()
		fe, h, c := newEntraHarness(t)
		h.signIn(t, c)
		before := h.user(t, fakeUserID)
		fe.set(func(f *fakeEntra) { f.denyWith = "access_denied" })
		p := webFetch(t, c, "GET", h.ts.URL+"/login?grant=connectors", nil, nil)
		if p.url.Path != "/dashboard" || !strings.Contains(p.body, "The extra access was not granted") {
			t.Fatalf("%d at %s\n%s", p.status, p.url, p.body)
		}
		if after := h.user(t, fakeUserID); after.Consent != cosmos.ConsentGranted || string(after.SealedRefreshToken) != string(before.SealedRefreshToken) {
			t.Fatal("declining the grant changed the sign-in")
		}
		noGrant(t, h)
	})

	t.Run("permission revoked while consenting", func(t *testing.T) {
		t.Parallel()
		_, h, c := newEntraHarness(t)
		dash := h.signIn(t, c)
		login := webFetch(t, noFollow(c), "GET", h.ts.URL+"/login?grant=connectors", nil, nil)
		h.post(t, c, "/dashboard/revoke", webMatch(t, csrfField, dash.body))
		p := webFetch(t, c, "GET", login.header.Get("Location"), nil, nil)
		if p.status != http.StatusConflict || !strings.Contains(p.body, "Sign in again first") {
			t.Fatalf("%d at %s", p.status, p.url)
		}
		if u := h.user(t, fakeUserID); u.Consent != cosmos.ConsentRevoked || len(u.SealedRefreshToken) != 0 {
			t.Fatalf("a grant brought a revoked user back: %+v", u)
		}
		noGrant(t, h)
	})
}

// TestConnectorToolsAfterTheGrant is embedded mode end to end: the real catalog, the
// real token source and the simulator's Entra ID stand-in. Before the grant the
// connector runtime call is an isError that says where to grant it, and nothing is
// asked of Entra for that audience; after the grant sign-in the same call succeeds,
// and the refresh token the grant sign-in gave still serves the Flow tools.
func TestConnectorToolsAfterTheGrant(t *testing.T) {
	t.Parallel()
	h, tap, simulator := newSimWebHarness(t)
	c := h.browser(t)
	dash, consent := simSignIn(t, h, c, "/login", "alice@contoso.com")
	if dash.url.Path != "/dashboard" || strings.Contains(consent, "apihub") || strings.Contains(consent, "connector runtime") {
		t.Fatalf("default sign-in ended at %s; consent page:\n%s", dash.url, consent)
	}
	key := webMatch(t, keyField, dash.body)
	args := map[string]any{"environmentName": sim.ContosoDefaultEnv, "connectorName": "shared_contosotasks",
		"connectionName": sim.ContosoTasksConnection}

	before := callTool(t, h, key, "test_live_connection", args)
	if before.status != 200 || !before.isError || !strings.Contains(before.text, "grant connector access at "+h.ts.URL+"/dashboard") ||
		!strings.Contains(before.text, "https://apihub.azure.com") {
		t.Fatalf("before the grant: %d isError=%v %s", before.status, before.isError, before.text)
	}
	for _, r := range simulator.Requests() {
		if r.Host == "apihub" {
			t.Fatalf("the runtime was called before the grant: %+v", r)
		}
	}
	if u := h.user(t, cosmos.UserID(sim.ContosoTenantID, mustOID(simulator, "alice@contoso.com"))); u.Consent != cosmos.ConsentGranted {
		t.Fatalf("the refused audience changed consent to %s", u.Consent)
	}

	end, consent := simSignIn(t, h, c, "/login?grant=connectors", "alice@contoso.com")
	if !strings.Contains(consent, "connector runtime") || !strings.Contains(consent, "https://apihub.azure.com/.default") ||
		strings.Contains(consent, "Flows.Manage.All") {
		t.Fatalf("the grant's consent page:\n%s", consent)
	}
	if end.url.Path != "/dashboard" || connectorState(t, end.body) != "Granted" || webMatch(t, keyField, end.body) != key {
		t.Fatalf("after the grant: %d at %s", end.status, end.url)
	}

	after := callTool(t, h, key, "test_live_connection", args)
	var out struct {
		OK        bool `json:"ok"`
		LiveCheck struct {
			Ran, OK bool
		} `json:"liveCheck"`
	}
	if after.isError || json.Unmarshal([]byte(after.text), &out) != nil || !out.OK || !out.LiveCheck.Ran || !out.LiveCheck.OK {
		t.Fatalf("after the grant: isError=%v %s", after.isError, after.text)
	}
	if r := callTool(t, h, key, "list_live_environments", map[string]any{}); r.isError || !strings.Contains(r.text, sim.ContosoDefaultEnv) {
		t.Fatalf("the Flow tools after the grant: %s", r.text)
	}
	h.assertNoSecrets(t, append(tap.secrets(), key, "alice@contoso.com"))
}

func mustOID(s *sim.Sim, email string) string {
	_, oid := s.UserFor(email)
	return oid
}

// TestGrantDataverse: the default sign-in never asks for Dynamics CRM; the dashboard's
// Grant Dataverse access asks for exactly its one scope, records the "dataverse"
// grant and keeps the key and the other grants as they were.
func TestGrantDataverse(t *testing.T) {
	t.Parallel()
	fe, h, c := newEntraHarness(t)
	dash := h.signIn(t, c)
	if q := fe.lastAuthorize(); strings.Contains(q.Get("scope"), "dynamics") {
		t.Fatalf("the default sign-in asks for %q", q.Get("scope"))
	}
	state := func(body string) string { return accessState(t, body, "dataverse-access") }
	const link = `href="/login?grant=dataverse"`
	if state(dash.body) != "Not granted" || !strings.Contains(dash.body, link) || !strings.Contains(dash.body, "add_live_flow_to_solution") {
		t.Fatalf("dashboard before the grant:\n%s", dash.body)
	}
	key := webMatch(t, keyField, dash.body)

	login := webFetch(t, noFollow(c), "GET", h.ts.URL+"/login?grant=dataverse", nil, nil)
	authz, err := url.Parse(login.header.Get("Location"))
	if login.status != http.StatusFound || err != nil {
		t.Fatalf("/login?grant=dataverse: %d to %q", login.status, login.header.Get("Location"))
	}
	if got := strings.Fields(authz.Query().Get("scope")); !slices.Equal(got,
		[]string{"openid", "profile", "offline_access", "https://globaldisco.crm.dynamics.com/user_impersonation"}) {
		t.Fatalf("grant scopes %v", got)
	}
	end := webFetch(t, c, "GET", authz.String(), nil, nil)
	if end.status != 200 || end.url.Path != "/dashboard" || !strings.Contains(end.body, "Dataverse access granted") ||
		state(end.body) != "Granted" || strings.Contains(end.body, link) || connectorState(t, end.body) != "Not granted" {
		t.Fatalf("after the grant: %d at %s\n%s", end.status, end.url, end.body)
	}
	if webMatch(t, keyField, end.body) != key {
		t.Fatal("granting Dataverse access changed the key")
	}
	if u := h.user(t, fakeUserID); !slices.Equal(u.ConsentedResources, []string{identity.GrantDataverse}) {
		t.Fatalf("grants %v", u.ConsentedResources)
	}
}
