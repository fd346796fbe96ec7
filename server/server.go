// Package server is the HTTP face of FlowStudio MCP: routes and middleware (request id,
// security headers, Origin check, API-key auth), health, and the MCP endpoint.
package server

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/rpc/logsafe"
	"github.com/flowstudio/mcp/server/account"
	"github.com/flowstudio/mcp/server/billing"
	"github.com/flowstudio/mcp/server/identity"
	"github.com/flowstudio/mcp/server/keyring"
	"github.com/flowstudio/mcp/server/oauth"
	"github.com/flowstudio/mcp/tools"
	"go.uber.org/zap"
)

// Deps are what the server is built from; main wires them.
type Deps struct {
	Settings Settings
	Logger   *zap.Logger
	Keys     *keyring.Keyring
	Users    UserStore
	Catalog  *tools.Catalog
	// Ready reports whether the store answers (for /readyz).
	Ready func(ctx context.Context) error
	// Simulator is mounted at /sim/ in embedded mode (the simulated tenant).
	Simulator http.Handler
	Version   string
	// Accounts, Sealer and Entra serve sign-in, the dashboard and key management
	// (consent.go, dashboard.go); without Accounts and Sealer those routes are absent.
	Accounts AccountStore
	Sealer   Sealer
	Entra    identity.App
	// EntraHTTPClient talks to Entra ID for sign-in; nil means 15 s, no redirects.
	EntraHTTPClient *http.Client
	// Billing applies Stripe subscription events (stripe.go); nil answers 503.
	Billing BillingStore
	// OAuth stores the authorization server's clients, codes and refresh tokens
	// (oauth.go); nil leaves /mcp/oauth and the authorization server out.
	OAuth OAuthStore
	// MetadataRoots, when set, are the TLS roots for fetching Client ID Metadata
	// Documents instead of the system's (tests).
	MetadataRoots *x509.CertPool
	// Alerts feeds the dashboard's alerts section (alerts.go); nil hides it.
	Alerts AlertStore
	// Stripe calls Stripe's API (Checkout, Customer Portal, cancel); nil is billing off.
	Stripe *billing.Client
	// AccountData serves "what is kept" and "Delete my account" (accountpages.go);
	// nil leaves those routes out.
	AccountData account.Store
	// UsageHistory feeds the dashboard's usage charts (charts.go); nil: no charts.
	UsageHistory UsageHistory
}

// Server routes HTTP requests.
type Server struct {
	deps     Deps
	log      *zap.Logger
	mcp      *rpc.Server
	mux      *http.ServeMux
	draining atomic.Bool
	public   *url.URL // nil when FLOWSTUDIO_PUBLIC_URL is unset
	web      *web     // people-facing pages; nil when not mounted
	slots    *userSlots
	requests atomic.Uint64 // requests served, for ReleaseMemoryWhenIdle
	oauth    *oauth.Server // nil when /mcp/oauth is not mounted
	// registrations bounds Dynamic Client Registration on this replica.
	registrations *oauth.RegistrationLimit
}

// DefaultMaxInFlightPerUser is how many MCP requests of one user run at once on a
// replica unless FLOWSTUDIO_MAX_INFLIGHT_PER_USER says otherwise (and for Settings
// built without LoadSettings).
const DefaultMaxInFlightPerUser = 16

// New builds the server and its routes.
func New(d Deps) *Server {
	s := &Server{deps: d, log: d.Logger, mux: http.NewServeMux()}
	perUser := d.Settings.MaxInFlightPerUser
	if perUser <= 0 {
		perUser = DefaultMaxInFlightPerUser
	}
	s.slots = newUserSlots(perUser, 10*time.Second)
	if d.Settings.PublicURL != "" {
		s.public, _ = url.Parse(d.Settings.PublicURL)
	}
	s.mcp = rpc.NewServer(rpc.Options{
		Info: rpc.Implementation{Name: "flowstudio-mcp", Title: "FlowStudio MCP for Power Automate", Version: d.Version},
		Instructions: "Tools for Microsoft Power Automate in the signed-in user's own tenant. " +
			"Start with list_live_environments, then list_live_flows; to debug, get_live_flow_runs then get_live_flow_run_error.",
		SessionSecret:  d.Keys.SessionKey(),
		SessionSubject: func(ctx context.Context) string { return principalID(ctx) },
		MaxBodyBytes:   d.Settings.MaxBodyBytes,
		Logger:         d.Logger,
	})
	if d.Catalog != nil {
		d.Catalog.Register(s.mcp)
	}
	s.mcp.Capability("resources", map[string]any{})
	s.mcp.Handle("resources/list", func(context.Context, json.RawMessage) (any, error) {
		return map[string]any{"resources": []any{}}, nil
	})
	s.mcp.Cacheable("resources/list", 5*time.Minute, rpc.CachePublic)

	s.mux.Handle("/mcp", s.checkOrigin(s.authenticate(s.mcp)))
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("POST /webhooks/stripe", s.stripeWebhook)       // stripe.go
	s.mux.HandleFunc("GET /.well-known/security.txt", s.securityTxt) // securitytxt.go
	s.mux.HandleFunc("GET /favicon.ico", favicon)                    // help.go
	if d.Simulator != nil {
		s.mux.Handle("/sim/", d.Simulator) // it strips its own /sim prefix
	}
	// /mcp takes API keys only: clients that probe the origin-level discovery URLs
	// must find nothing, or they start an OAuth flow for /mcp. OAuth lives at
	// /mcp/oauth with an issuer at /oauth, whose path-inserted URLs are more specific
	// patterns than these (oauth.go).
	for _, p := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-authorization-server",
		"/.well-known/openid-configuration", "/authorize", "/token", "/register"} {
		s.mux.Handle(p, http.NotFoundHandler())
		s.mux.Handle(p+"/", http.NotFoundHandler())
	}
	s.mountWeb()
	s.mountOAuth()
	return s
}

// Handler is the root handler with the middleware every route shares.
func (s *Server) Handler() http.Handler {
	return s.withRequestID(s.recoverPanics(s.securityHeaders(s.mux)))
}

// recoverPanics turns a panic anywhere below into a plain 500 and one safe log line,
// instead of net/http's stack trace in the log and a dropped connection.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p) // the deliberate way to abort a response
				}
				s.log.Error("handler panicked", zap.String(logsafe.KeyRequestID, rpc.RequestID(r.Context())), logsafe.Panic(p))
				http.Error(w, "internal error (ref "+rpc.RequestID(r.Context())+")", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// Drain marks the server as stopping: /readyz answers 503 so traffic moves away.
func (s *Server) Drain() { s.draining.Store(true) }

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	}
	store := "ok"
	if s.deps.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.deps.Ready(ctx); err != nil {
			s.log.Warn("store not ready", zap.String("request_id", rpc.RequestID(r.Context())), logsafe.Error(err))
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "store": "unavailable"})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "store": store})
}

func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		id := hex.EncodeToString(b)
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(rpc.WithRequestID(r.Context(), id)))
	})
}

var (
	hdrNosniff    = []string{"nosniff"}
	hdrNoReferrer = []string{"no-referrer"}
	hdrDeny       = []string{"DENY"}
	hdrCSP        = []string{"default-src 'none'; frame-ancestors 'none'"}
	hdrHSTS       = []string{"max-age=63072000; includeSubDomains"}
)

func (s *Server) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Canonical keys and shared value slices: set on every response, so no
		// per-request allocation (net/http never changes a value slice it writes).
		h["X-Content-Type-Options"] = hdrNosniff
		h["Referrer-Policy"] = hdrNoReferrer
		h["X-Frame-Options"] = hdrDeny
		h["Content-Security-Policy"] = hdrCSP
		if s.public != nil && s.public.Scheme == "https" {
			h["Strict-Transport-Security"] = hdrHSTS
		}
		next.ServeHTTP(w, r)
	})
}

// checkOrigin refuses cross-origin browser requests and DNS rebinding: an Origin must
// be allowed (FLOWSTUDIO_ALLOWED_ORIGINS, the public URL, same-origin on loopback), and
// the Host must be one this server answers to. Allowed origins get CORS answers.
func (s *Server) checkOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if !s.hostAllowed(r.Host) || !s.originAllowed(origin, r.Host) {
			writeRPCError(w, http.StatusForbidden, rpc.NewError(rpc.CodeInvalidRequest, "Forbidden: origin not allowed", nil))
			return
		}
		// Browser clients from an allowed origin get CORS; a preflight ends here,
		// before the key check. Header clients send no Origin and skip this.
		if origin != "" && corsAllowed(w, r, origin) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) hostAllowed(host string) bool {
	if s.public != nil && strings.EqualFold(host, s.public.Host) {
		return true
	}
	if isLoopbackHost(host) {
		return true
	}
	// Without a public URL (a container on 0.0.0.0 behind its own ingress) the Host
	// cannot be checked; the Origin check still applies.
	return s.public == nil && !isLoopbackListen(s.deps.Settings.Addr)
}

func (s *Server) originAllowed(origin, host string) bool {
	if origin == "" {
		return true // not a browser: nothing to rebind
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	for _, o := range s.deps.Settings.AllowedOrigins {
		if strings.EqualFold(o, origin) {
			return true
		}
	}
	if s.public != nil && strings.EqualFold(u.Scheme+"://"+u.Host, s.public.Scheme+"://"+s.public.Host) {
		return true
	}
	// Same origin on loopback (a local inspector or browser on this machine).
	return strings.EqualFold(u.Host, host) && isLoopbackHost(host)
}

func isLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && isLoopbackHost(host)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
