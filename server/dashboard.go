package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/rpc/logsafe"
	"github.com/flowstudio/mcp/server/account"
	"github.com/flowstudio/mcp/server/identity"
	"github.com/flowstudio/mcp/server/keyring"
	"github.com/flowstudio/mcp/server/oauth"
	"github.com/flowstudio/mcp/tools"
	"github.com/flowstudio/mcp/tools/metering"
	"go.uber.org/zap"
)

// The people-facing pages: landing, dashboard (key, client setups, usage, re-issue,
// revoke) and sign-out. Plain HTML from embedded templates, one stylesheet and one
// small script, all served from this binary; no inline script, no third-party origin.

//go:embed web
var webFS embed.FS

// pageCSP is the Content-Security-Policy of every HTML page.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// web is the state of the people-facing routes.
type web struct {
	entra   *entraClient
	cookies cookieCodec
	// pages are parsed on first use: a cold start answers /mcp before any page, and
	// parsing them all took 1.5 ms of it.
	pages  func() map[string]*template.Template
	assets map[string]asset // by file name under /static/
}

type asset struct {
	body        []byte
	contentType string
	version     string // short content hash, appended to the URL so caches never go stale
}

func newWeb(d Deps) *web {
	w := &web{
		entra:   newEntraClient(d.Entra, d.EntraHTTPClient),
		cookies: cookieCodec{key: d.Keys.CookieKey(), now: time.Now},
		assets:  map[string]asset{},
	}
	types := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
	names, _ := fs.Glob(webFS, "web/static/*")
	for _, name := range names {
		body, err := webFS.ReadFile(name)
		if err != nil {
			panic(err) // embedded: cannot fail
		}
		sum := sha256.Sum256(body)
		w.assets[path.Base(name)] = asset{body: body, contentType: types[path.Ext(name)], version: hex.EncodeToString(sum[:6])}
	}
	funcs := template.FuncMap{
		"asset":  func(name string) string { return "/static/" + name + "?v=" + w.assets[name].version },
		"secret": func(id, label, value string) secretField { return secretField{ID: id, Label: label, Value: value} },
	}
	w.pages = sync.OnceValue(func() map[string]*template.Template {
		pages := map[string]*template.Template{}
		files, _ := fs.Glob(webFS, "web/*.html")
		for _, p := range files {
			name := strings.TrimSuffix(path.Base(p), ".html")
			if name == "layout" {
				continue
			}
			pages[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(webFS, "web/layout.html", p))
		}
		return pages
	})
	return w
}

// mountWeb adds the people-facing routes. Without an account store (some tests) there
// are none.
func (s *Server) mountWeb() {
	if s.deps.Accounts == nil || s.deps.Sealer == nil {
		return
	}
	s.web = newWeb(s.deps)
	page := func(h http.HandlerFunc) http.Handler { return s.pageHeaders(h) }
	s.mux.Handle("GET /{$}", page(s.landing))
	s.mux.Handle("GET /login", page(s.login))
	s.mux.Handle("GET /callback", page(s.callback))
	s.mux.Handle("GET /dashboard", page(s.dashboard))
	s.mux.Handle("POST /dashboard/reissue", page(s.reissue))
	s.mux.Handle("POST /dashboard/revoke", page(s.revoke))
	s.mux.Handle("POST /dashboard/alerts/webhook", page(s.setWebhook)) // alerts.go
	s.mux.Handle("POST /dashboard/checkout", page(s.checkout))         // billingpages.go
	s.mux.Handle("POST /dashboard/billing", page(s.manageBilling))     // billingpages.go
	s.mux.Handle("GET /logout", page(s.logoutPage))
	s.mux.Handle("POST /logout", page(s.logout))
	s.mux.Handle("GET /security", page(s.securityPage)) // securitytxt.go
	s.mux.Handle("GET /help", page(s.helpPage))         // help.go
	s.mux.Handle("GET /connections/signed-in", page(s.connectionSignedIn))
	if s.deps.AccountData != nil { // accountpages.go
		s.mux.Handle("GET /dashboard/data", page(s.dataPage))
		s.mux.Handle("GET /dashboard/data.json", page(s.dataJSON))
		s.mux.Handle("GET /dashboard/delete", page(s.deletePage))
		s.mux.Handle("POST /dashboard/delete", page(s.deleteAccount))
	}
	s.mux.HandleFunc("GET /static/{name}", s.static)
}

// pageHeaders sets what every page needs and refuses a Host this server does not
// answer to (DNS rebinding).
func (s *Server) pageHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", pageCSP)
		// same-origin, not no-referrer: a form POST must carry a real Origin, which
		// no-referrer would turn into "null". Nothing leaks to other origins.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), clipboard-write=(self)")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		if !s.hostAllowed(r.Host) {
			noStore(w)
			http.Error(w, "Forbidden: unknown host", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func noStore(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }

func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	a, ok := s.web.assets[r.PathValue("name")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(a.body)
}

// pageData feeds every template.
type pageData struct {
	Title   string
	Message string
	Code    string
	Session *webSession
	CSRF    string
	Notice  string
	Dash    *dashboardView
	Contact *contactView   // the security page
	Auth    *authorizeView // the OAuth consent page
	// StatusURL is FLOWSTUDIO_STATUS_URL: the footer links to it when set.
	StatusURL string
	Data      *account.Export
	Delete    *deleteView
	// Target and Refresh: the redirect page (billingpages.go).
	Target, Refresh string
	// NoSession renders a page as signed out even though the request still
	// carried the session cookie (it was just cleared: account deleted).
	NoSession bool
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, d pageData) {
	t, ok := s.web.pages()[name]
	if !ok {
		panic("server: no page " + name)
	}
	if d.Session == nil && !d.NoSession {
		d.Session = s.session(r)
	}
	d.StatusURL = s.deps.Settings.StatusURL
	if d.Session != nil && d.CSRF == "" {
		d.CSRF = s.web.cookies.csrfToken(d.Session)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		s.log.Error("page render failed", zap.String(logsafe.KeyRequestID, rpc.RequestID(r.Context())), zap.String("page", name), logsafe.Error(err))
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	noStore(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) renderError(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	s.render(w, r, status, "error", pageData{Title: title, Message: msg})
}

// internalError logs the detail and shows only a reference.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	id := rpc.RequestID(r.Context())
	s.log.Error("web request failed", zap.String(logsafe.KeyRequestID, id), logsafe.Error(err))
	s.renderError(w, r, http.StatusInternalServerError, "Something went wrong",
		"An internal error occurred (reference "+id+"). Nothing you did caused it; please try again.")
}

// connectionSignedIn is where a connector's consent page returns a person who
// signed a connection in (create_live_connection's redirect URL). The query (the
// consent service's code) is neither read nor logged: the connection is signed in
// by then, and the agent learns it from Power Apps.
func (s *Server) connectionSignedIn(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "error", pageData{Title: "Connection sign-in finished",
		Message: "You can close this tab. Your agent checks the connection with create_live_connection (with its connectionName) or test_live_connection."})
}

func (s *Server) landing(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "landing", pageData{Title: "Power Automate for your AI agents"})
}

// secretField is a key as the "secret" template shows it: masked until revealed, in
// the page once.
type secretField struct{ ID, Label, Value string }

// keyPlaceholder stands for the key in the client setups, so the page holds the key
// once; their Copy buttons put the key in its place (app.js).
const keyPlaceholder = "YOUR_FLOWSTUDIO_KEY"

// dashboardView is what the dashboard shows.
type dashboardView struct {
	Name, TenantID         string
	Tier                   string
	UsedToday, DayLimit    int64
	UsageKnown             bool
	Consent                string // granted, revoked, needs_consent
	Connectors             bool   // holds identity.GrantConnectors
	GrantConnectorsURL     string // starts the grant sign-in
	Dataverse              bool   // holds identity.GrantDataverse
	GrantDataverseURL      string
	Key, ReadKey           string
	KeyPlaceholder         string // in the client setups instead of Key
	KeyExpires             string
	KeyExpired             bool
	KeyDaysLeft            int  // whole days until the key expires, rounded up
	KeyExpiresSoon         bool // within keyWarnDays: the page warns
	MCPURL                 string
	MCPOAuthURL            string
	Apps                   []appView // connected OAuth apps
	Claude, VSCode, Cursor string
	Alerts                 *alertsView // Team plan only (alerts.go)
	Plans                  []planView
	Billing                billingView
	Charts                 []svgChart // charts.go; none when the counters could not be read
}

// keyWarnDays is how long before expiry the dashboard warns about the key.
const keyWarnDays = 7

var notices = map[string]string{
	"reissued":               "A new key was issued. The previous key no longer works: update your agents with the key below. Connected apps must sign in again.",
	"revoked":                "Permission revoked. FlowStudio deleted the Microsoft refresh token it held for you, your keys no longer work and every connected app was disconnected.",
	identity.GrantConnectors: "Connector access granted: test_live_connection's live check and dynamic dropdowns through the connector runtime now work for your agents.",
	identity.GrantDataverse:  "Dataverse access granted: add_live_flow_to_solution now works for your agents.",
	"grant-missing":          "Microsoft did not grant the extra access, so it stays off. Your organisation may require an administrator to approve it.",
	"grant-declined":         "The extra access was not granted; nothing else changed.",
	"app-revoked":            "The app was disconnected: its access stops at once; it must sign in again to come back.",
	"app-gone":               "That app was already disconnected.",
	"webhook":                "Alert webhook saved.",
	"checkout":               "Thank you. Stripe is confirming your payment; your plan changes as soon as it tells us (usually within seconds: reload this page).",
	"checkout-cancelled":     "Checkout was cancelled; nothing was charged and your plan did not change.",
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	sess, u, ok := s.signedInUser(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	v := &dashboardView{Name: sess.Name, TenantID: u.TenantID, Tier: tierTitle(u.Tier), Consent: string(u.Consent),
		MCPURL: s.siteURL(r) + "/mcp", MCPOAuthURL: s.siteURL(r) + oauth.ResourcePath, Apps: connectedApps(u), Connectors: identity.HasGrant(u, identity.GrantConnectors),
		GrantConnectorsURL: "/login?grant=" + identity.GrantConnectors,
		Dataverse:          identity.HasGrant(u, identity.GrantDataverse), GrantDataverseURL: "/login?grant=" + identity.GrantDataverse}
	if v.Name == "" {
		v.Name = "Signed-in user"
	}
	v.Plans, v.Billing = s.plansView(u)
	tier, _ := cosmos.ParseTier(string(u.Tier))
	if usage, err := metering.UsageToday(ctx, readOnlyUsage{s.deps.Accounts}, s.quotas(), u.ID, tier, time.Now()); err == nil {
		v.UsedToday, v.DayLimit, v.UsageKnown = usage.UsedDay, usage.LimitDay, true
	} else {
		s.log.Warn("usage read failed", zap.String(logsafe.KeyRequestID, rpc.RequestID(ctx)), logsafe.Error(err))
	}
	if h := s.deps.UsageHistory; h != nil {
		now := time.Now()
		counters, err := h.ListUsageCounters(ctx, u.ID)
		var byTool map[string]int64
		if err == nil {
			byTool, err = h.ToolUsage(ctx, u.ID, now)
		}
		if err == nil {
			v.Charts = []svgChart{dailyChart(counters, now), toolChart(byTool, now)}
		} else {
			s.log.Warn("usage history read failed", zap.String(logsafe.KeyRequestID, rpc.RequestID(ctx)), logsafe.Error(err))
		}
	}
	if u.Consent == cosmos.ConsentGranted {
		issued := time.Unix(u.KeyIssuedAt, 0)
		var err error
		if v.Key, err = s.deps.Keys.Issue(u.ID, u.KeyGeneration, issued, tools.ScopeFull); err == nil {
			v.ReadKey, err = s.deps.Keys.Issue(u.ID, u.KeyGeneration, issued, tools.ScopeRead)
		}
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		expires := issued.Add(keyring.KeyLifetime)
		v.KeyExpires = expires.UTC().Format("2 January 2006")
		v.KeyExpired = !time.Now().Before(expires)
		v.KeyDaysLeft = int((time.Until(expires) + 24*time.Hour - time.Second) / (24 * time.Hour))
		v.KeyExpiresSoon = !v.KeyExpired && v.KeyDaysLeft <= keyWarnDays
		v.KeyPlaceholder = keyPlaceholder
		v.Claude, v.VSCode, v.Cursor = clientSetups(v.MCPURL, keyPlaceholder)
		v.Alerts = s.alertsSection(ctx, u)
	}
	s.render(w, r, http.StatusOK, "dashboard", pageData{Title: "Your dashboard", Session: sess, Dash: v, Notice: notices[r.URL.Query().Get("done")]})
}

// clientSetups are the ready-to-paste configurations of the usual clients, with key
// (the placeholder on the dashboard) where the key goes. VS Code prompts for the key
// and keeps it in its secret storage, so the workspace file that may be committed
// never holds it.
func clientSetups(mcpURL, key string) (claude, vscode, cursor string) {
	type input struct {
		ID          string `json:"id"`
		Type        string `json:"type"`
		Description string `json:"description"`
		Password    bool   `json:"password"`
	}
	type server struct {
		Type    string            `json:"type,omitempty"`
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers"`
	}
	claude = "claude mcp add --transport http flowstudio " + mcpURL + " --header \"x-api-key: " + key + "\""
	vscode = indentJSON(struct {
		Servers map[string]server `json:"servers"`
		Inputs  []input           `json:"inputs"`
	}{
		Servers: map[string]server{"flowstudio": {Type: "http", URL: mcpURL, Headers: map[string]string{"x-api-key": "${input:flowstudio-key}"}}},
		Inputs:  []input{{ID: "flowstudio-key", Type: "promptString", Description: "FlowStudio API key", Password: true}},
	})
	cursor = indentJSON(struct {
		MCPServers map[string]server `json:"mcpServers"`
	}{map[string]server{"flowstudio": {URL: mcpURL, Headers: map[string]string{"x-api-key": key}}}})
	return claude, vscode, cursor
}

func indentJSON(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
	return strings.TrimSpace(buf.String())
}

func tierTitle(t cosmos.Tier) string {
	switch t {
	case cosmos.TierPro:
		return "Pro"
	case cosmos.TierTeam:
		return "Team"
	}
	return "Free"
}

// readOnlyUsage lets metering.UsageToday read counters through an AccountStore; the
// dashboard never counts.
type readOnlyUsage struct{ AccountStore }

func (readOnlyUsage) IncrementUsage(context.Context, string, cosmos.Period, time.Time, int64) (int64, error) {
	return 0, errors.New("the dashboard does not count usage")
}

func (readOnlyUsage) IncrementToolUsage(context.Context, string, string, time.Time, int64) (int64, error) {
	return 0, errors.New("the dashboard does not count usage")
}

// quotas are the plans' limits as the metering applies them (QUOTA_*).
func (s *Server) quotas() metering.Quotas {
	if q := s.deps.Settings.Quotas; q.Free.PerDay > 0 {
		return q
	}
	return metering.DefaultQuotas
}

// postGuard admits a state-changing form: same origin (Origin and Sec-Fetch-Site when
// the browser sends them), a live session, and the session's CSRF token.
func (s *Server) postGuard(w http.ResponseWriter, r *http.Request) (*webSession, bool) {
	reqID := rpc.RequestID(r.Context())
	if !s.sameOrigin(r) {
		s.log.Info("cross-origin form refused", zap.String(logsafe.KeyRequestID, reqID))
		s.renderError(w, r, http.StatusForbidden, "Request refused", "This form was sent from another site, so it was ignored.")
		return nil, false
	}
	sess := s.session(r)
	if sess == nil {
		s.renderError(w, r, http.StatusForbidden, "Please sign in again", "Your session has ended. Sign in again to manage your key.")
		return nil, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil || !s.web.cookies.checkCSRF(sess, r.PostForm.Get("csrf")) {
		s.log.Info("csrf token refused", zap.String(logsafe.KeyRequestID, reqID))
		s.renderError(w, r, http.StatusForbidden, "Request refused", "This form has expired or did not come from your dashboard. Open the dashboard and try again.")
		return nil, false
	}
	return sess, true
}

// sameOrigin reports whether a browser says the request comes from this site. A
// request without Origin and Sec-Fetch-Site is not from a browser page, and still needs
// the CSRF token.
func (s *Server) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	origin := r.Header.Get("Origin")
	return origin == "" || strings.EqualFold(origin, s.siteURL(r))
}

func (s *Server) reissue(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.postGuard(w, r)
	if !ok {
		return
	}
	u, err := identity.ReissueKey(r.Context(), s.deps.Accounts, sess.UserID, time.Now())
	switch {
	case errors.Is(err, identity.ErrNotConsented), errors.Is(err, cosmos.ErrNotFound):
		s.renderError(w, r, http.StatusConflict, "Sign in again first", "Your permission was revoked or needs renewing, so there is no key to re-issue. Sign in again to get a new one.")
		return
	case err != nil:
		s.internalError(w, r, err)
		return
	}
	s.keysChanged(w, r, u, sess.Name, "api key reissued", "reissued")
}

// keysChanged follows a change of the user's key generation (re-issue, revoke): it
// logs event, and since every session ended with the old generation, gives this
// browser a new one to show the dashboard's notice done.
func (s *Server) keysChanged(w http.ResponseWriter, r *http.Request, u *cosmos.User, name, event, done string) {
	s.log.Info(event, zap.String(logsafe.KeyRequestID, rpc.RequestID(r.Context())), zap.String("email_hash", u.EmailHash),
		zap.Int64("key_generation", u.KeyGeneration))
	if !s.openSession(w, r, u, name) {
		return
	}
	http.Redirect(w, r, "/dashboard?done="+done, http.StatusSeeOther)
}

// revoke deletes the sealed refresh token, bumps the key generation, marks consent
// revoked and clears the grants (identity.Revoke): every key of the user fails at once
// on every replica, since each MCP request reads the user record.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.postGuard(w, r)
	if !ok {
		return
	}
	u, err := identity.Revoke(r.Context(), s.deps.Accounts, sess.UserID)
	if errors.Is(err, cosmos.ErrNotFound) {
		s.endSession(w, r)
		return
	}
	if errors.Is(err, identity.ErrNotErased) { // revoked; the next erase finishes it
		s.log.Warn("revoked token not erased from the store files yet", zap.String(logsafe.KeyRequestID, rpc.RequestID(r.Context())), logsafe.Error(err))
		err = nil
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.keysChanged(w, r, u, sess.Name, "consent revoked", "revoked")
}

func (s *Server) logoutPage(w http.ResponseWriter, r *http.Request) {
	if s.session(r) == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "logout", pageData{Title: "Sign out"})
}

// logout ends every dashboard session of the user, on every replica and in every
// browser (the session epoch moves on), and clears this browser's cookie. API keys
// keep working: they are for agents, not for the dashboard.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.postGuard(w, r)
	if !ok {
		return
	}
	_, err := s.deps.Accounts.UpdateUser(r.Context(), sess.UserID, func(u *cosmos.User) error {
		u.SessionEpoch++
		return nil
	})
	if err != nil && !errors.Is(err, cosmos.ErrNotFound) {
		s.internalError(w, r, err) // the session would outlive the logout: say so rather than pretend
		return
	}
	s.endSession(w, r)
}
