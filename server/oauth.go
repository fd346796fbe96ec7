package server

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/rpc/logsafe"
	"github.com/flowstudio/mcp/server/oauth"
	"github.com/flowstudio/mcp/tools"
	"go.uber.org/zap"
)

// /mcp/oauth: the MCP endpoint for OAuth clients (claude.ai, ChatGPT, connector
// directories), with the authorization server of package oauth and the person's side
// here: the consent page (after Microsoft sign-in when needed) and the dashboard's
// connected apps. /mcp keeps its x-api-key check untouched, and the origin-level
// discovery URLs stay 404, so header clients never start an OAuth flow.

// oauthCookie carries a validated authorization request through sign-in to consent.
const (
	oauthCookie = "flowstudio-oauth"
	oauthTTL    = 10 * time.Minute
)

// mountOAuth adds /mcp/oauth and the authorization server, when there is a store
// for it and the people-facing pages exist (sign-in is part of the flow).
func (s *Server) mountOAuth() {
	if s.deps.OAuth == nil || s.web == nil {
		return
	}
	s.oauth = &oauth.Server{Store: s.deps.OAuth, Tokens: oauth.NewTokens(s.deps.Keys.OAuthKey(), nil),
		Fetcher: oauth.NewFetcher(s.deps.Settings.Embedded() && !s.deps.Settings.Production(), s.deps.MetadataRoots)}
	s.registrations = &oauth.RegistrationLimit{PerMinute: oauth.DefaultRegistrationsPerMinute}
	s.mux.Handle(oauth.ResourcePath, s.checkOrigin(s.authenticateOAuth(s.mcp)))
	meta := func(doc func(string) map[string]any) http.Handler {
		return s.anyOrigin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET, HEAD, OPTIONS")
				oauth.WriteError(w, &oauth.Error{Status: http.StatusMethodNotAllowed, Code: "invalid_request", Description: "use GET"})
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "public, max-age=3600")
			_ = json.NewEncoder(w).Encode(doc(s.siteURL(r)))
		}))
	}
	s.mux.Handle(oauth.ResourceMetaPath, meta(oauth.ResourceMetadata))
	s.mux.Handle(oauth.ASMetaPath, meta(oauth.Metadata))
	s.mux.Handle(oauth.OIDCMetaPath, meta(oauth.Metadata))
	s.mux.Handle(oauth.OIDCAppendedPath, meta(oauth.Metadata))
	s.mux.Handle(oauth.RegisterPath, s.anyOrigin(http.HandlerFunc(s.oauthRegister)))
	s.mux.Handle(oauth.TokenPath, s.anyOrigin(http.HandlerFunc(s.oauthToken)))
	page := func(h http.HandlerFunc) http.Handler { return s.pageHeaders(h) }
	s.mux.Handle("GET "+oauth.AuthorizePath, page(s.oauthAuthorize))
	s.mux.Handle("GET /oauth/consent", page(s.oauthConsentPage))
	s.mux.Handle("POST /oauth/consent", page(s.oauthConsent))
	s.mux.Handle("POST /dashboard/apps/revoke", page(s.revokeApp))
}

// OAuthStore is what /mcp/oauth needs from storage (*cosmos.Store).
type OAuthStore = oauth.Store

var (
	hdrVaryOrigin  = []string{"Origin"}
	hdrCORSExpose  = []string{"Mcp-Session-Id, WWW-Authenticate"}
	hdrCORSMethods = []string{"GET, POST, DELETE, OPTIONS"}
	hdrCORSHeaders = []string{"x-api-key, authorization, content-type, mcp-protocol-version, mcp-session-id, last-event-id"}
	hdrCORSMaxAge  = []string{"600"}
)

// corsAllowed answers a browser request from an allowed origin to /mcp or /mcp/oauth:
// the Access-Control headers, and the whole answer to a preflight. It reports
// whether the request is done. Called only when the request has an Origin.
func corsAllowed(w http.ResponseWriter, r *http.Request, origin string) bool {
	h := w.Header()
	h["Access-Control-Allow-Origin"] = []string{origin}
	h["Vary"] = hdrVaryOrigin
	h["Access-Control-Expose-Headers"] = hdrCORSExpose
	if r.Method != http.MethodOptions {
		return false
	}
	h["Access-Control-Allow-Methods"] = hdrCORSMethods
	h["Access-Control-Allow-Headers"] = hdrCORSHeaders
	h["Access-Control-Max-Age"] = hdrCORSMaxAge
	w.WriteHeader(http.StatusNoContent)
	return true
}

// anyOrigin is the CORS of the metadata, registration and token endpoints: any
// origin (browser-based clients run on theirs), no credentials. The Host is still
// checked (DNS rebinding).
func (s *Server) anyOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r.Host) {
			http.Error(w, "Forbidden: unknown host", http.StatusForbidden)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Expose-Headers", "WWW-Authenticate")
		if r.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "authorization, content-type, mcp-protocol-version")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authenticateOAuth checks the access token on every /mcp/oauth request: signature,
// issuer, audience (this resource), expiry, then the one user read: consent, key
// generation and the grant still connected. Then it serves exactly as /mcp does.
func (s *Server) authenticateOAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := s.siteURL(r)
		auth := r.Header.Get("Authorization")
		inQuery := r.URL.Query().Has("access_token")
		if len(auth) < 8 || !strings.EqualFold(auth[:7], "bearer ") || inQuery {
			msg := "Unauthorized: this endpoint takes an OAuth access token in the Authorization: Bearer header; your client signs in through OAuth"
			switch {
			case inQuery:
				msg = "Unauthorized: send the access token in the Authorization header, never in the query string"
			case r.Header.Get(APIKeyHeader) != "":
				msg = "Unauthorized: API keys go to /mcp; /mcp/oauth takes OAuth access tokens (Authorization: Bearer)"
			}
			s.oauthUnauthorized(w, r, base, "", msg, "missing token")
			return
		}
		claims, err := s.oauth.Tokens.Verify(strings.TrimSpace(auth[7:]), oauth.Issuer(base), oauth.Resource(base))
		if err != nil {
			s.oauthUnauthorized(w, r, base, "invalid_token", "Unauthorized: the access token is invalid, expired or for another server; sign in again", "invalid token")
			return
		}
		user, err := s.deps.Users.ViewUser(r.Context(), claims.Subject)
		switch {
		case errors.Is(err, cosmos.ErrNotFound):
			s.oauthUnauthorized(w, r, base, "invalid_token", "Unauthorized: this token's user no longer exists", "unknown user")
			return
		case err != nil:
			s.userLookupFailed(w, r, err, claims.Subject)
			return
		case user.Consent != cosmos.ConsentGranted:
			s.oauthUnauthorized(w, r, base, "invalid_token", "Unauthorized: permission was revoked or needs renewing; sign in again", "consent "+string(user.Consent))
			return
		case user.KeyGeneration != claims.Generation:
			s.oauthUnauthorized(w, r, base, "invalid_token", "Unauthorized: access was re-issued or revoked; sign in again", "stale generation")
			return
		case !hasGrant(user, claims.GrantID):
			s.oauthUnauthorized(w, r, base, "invalid_token", "Unauthorized: this app was disconnected; sign in again", "grant revoked")
			return
		}
		scope := tools.ScopeFull
		if claims.Scope == oauth.ScopeRead {
			scope = tools.ScopeRead
		}
		s.serveAs(w, r, next, user, scope)
	})
}

func hasGrant(u *cosmos.User, id string) bool {
	for i := range u.OAuthGrants {
		if u.OAuthGrants[i].ID == id {
			return true
		}
	}
	return false
}

// oauthUnauthorized is the 401 of /mcp/oauth: a Bearer challenge naming the
// Protected Resource Metadata (RFC 9728 §5.1), so OAuth clients start the flow.
func (s *Server) oauthUnauthorized(w http.ResponseWriter, r *http.Request, base, code, msg, reason string) {
	s.log.Info("mcp request unauthorized", zap.String("request_id", rpc.RequestID(r.Context())), zap.String("reason", reason))
	c := `Bearer resource_metadata="` + base + oauth.ResourceMetaPath + `", scope="` + oauth.ScopeFull + `"`
	if code != "" {
		c += `, error="` + code + `"`
	}
	w.Header().Set("WWW-Authenticate", c)
	writeRPCError(w, http.StatusUnauthorized, rpc.NewError(rpc.CodeUnauthorized, msg, nil))
}

// oauthPost answers a request that is not a POST of mediaType with the OAuth error
// the endpoint owes (code and description for a wrong content type).
func oauthPost(w http.ResponseWriter, r *http.Request, mediaType, code, description string) bool {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		oauth.WriteError(w, &oauth.Error{Status: http.StatusMethodNotAllowed, Code: "invalid_request", Description: "use POST"})
		return false
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != mediaType {
		oauth.WriteError(w, &oauth.Error{Status: 400, Code: code, Description: description})
		return false
	}
	return true
}

// oauthRegister is Dynamic Client Registration (RFC 7591).
func (s *Server) oauthRegister(w http.ResponseWriter, r *http.Request) {
	if !oauthPost(w, r, "application/json", "invalid_client_metadata", "send the client metadata as application/json") {
		return
	}
	if !s.registrations.Allow() {
		s.log.Warn("client registration refused", zap.String(logsafe.KeyRequestID, rpc.RequestID(r.Context())), zap.String("reason", "rate"))
		w.Header().Set("Retry-After", "60")
		oauth.WriteError(w, &oauth.Error{Status: http.StatusTooManyRequests, Code: "temporarily_unavailable",
			Description: "too many client registrations on this server just now; retry in a minute"})
		return
	}
	var reg oauth.Registration
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	if err := dec.Decode(&reg); err != nil {
		oauth.WriteError(w, &oauth.Error{Status: 400, Code: "invalid_client_metadata", Description: "the body is not a JSON object of client metadata (at most 16 KiB)"})
		return
	}
	c, oe := s.oauth.RegisterClient(r.Context(), &reg)
	if oe != nil {
		s.log.Info("client registration refused", zap.String(logsafe.KeyRequestID, rpc.RequestID(r.Context())), zap.String("error_code", oe.Code))
		oauth.WriteError(w, oe)
		return
	}
	s.log.Info("oauth client registered", zap.String(logsafe.KeyRequestID, rpc.RequestID(r.Context())))
	oauth.WriteJSON(w, http.StatusCreated, map[string]any{
		"client_id": c.ID, "client_id_issued_at": c.CreatedAt, "client_name": c.Name, "redirect_uris": c.RedirectURIs,
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"token_endpoint_auth_method": "none",
	})
}

// oauthToken is the token endpoint: authorization_code (with PKCE) and refresh_token.
func (s *Server) oauthToken(w http.ResponseWriter, r *http.Request) {
	if !oauthPost(w, r, "application/x-www-form-urlencoded", "invalid_request", "send the request as application/x-www-form-urlencoded") {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		oauth.WriteError(w, &oauth.Error{Status: 400, Code: "invalid_request", Description: "the form does not parse (at most 16 KiB)"})
		return
	}
	basicUser, _, _ := r.BasicAuth()
	resp, oe := s.oauth.Token(r.Context(), r.PostForm, basicUser, s.siteURL(r))
	if oe != nil {
		s.log.Info("token request refused", zap.String(logsafe.KeyRequestID, rpc.RequestID(r.Context())),
			zap.String("grant_type", grantTypeName(r.PostForm.Get("grant_type"))), zap.String("error_code", oe.Code))
		oauth.WriteError(w, oe)
		return
	}
	oauth.WriteJSON(w, http.StatusOK, resp)
}

// grantTypeName keeps a logged grant type to the known names.
func grantTypeName(g string) string {
	if g == "authorization_code" || g == "refresh_token" {
		return g
	}
	return "other"
}

// oauthAuthorize validates the request, keeps it in a signed cookie and sends the
// person to the consent page (through Microsoft sign-in when needed). A bad client or
// redirect URI is shown here, never redirected to.
func (s *Server) oauthAuthorize(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	base := s.siteURL(r)
	a, _, oe := s.oauth.ParseAuthorize(r.Context(), r.URL.Query(), base)
	if oe != nil {
		s.log.Info("authorization request refused", zap.String(logsafe.KeyRequestID, rpc.RequestID(r.Context())), zap.String("error_code", oe.Code))
		if a == nil {
			s.render(w, r, http.StatusBadRequest, "error", pageData{Title: "This app's sign-in link is not valid",
				Message: "FlowStudio did not send you back to the app, because " + oe.Description + ".", Code: oe.Code})
			return
		}
		http.Redirect(w, r, oauth.ErrorRedirect(a, base, oe), http.StatusFound)
		return
	}
	value, err := s.web.cookies.encode(oauthCookie, a, oauthTTL)
	if err != nil || len(value) > maxCookieBytes {
		http.Redirect(w, r, oauth.ErrorRedirect(a, base, &oauth.Error{Code: "invalid_request", Description: "the request is too large"}), http.StatusFound)
		return
	}
	s.setCookie(w, r, oauthCookie, value, oauthTTL)
	http.Redirect(w, r, "/oauth/consent", http.StatusSeeOther)
}

// pendingAuth is the authorization request waiting in the cookie, and a tag that
// binds a consent form to exactly this request and session.
func (s *Server) pendingAuth(r *http.Request, sess *webSession) (*oauth.AuthRequest, string, bool) {
	c, err := r.Cookie(s.cookieName(r, oauthCookie))
	if err != nil {
		return nil, "", false
	}
	var a oauth.AuthRequest
	if s.web.cookies.decode(oauthCookie, c.Value, &a) != nil {
		return nil, "", false
	}
	tag := ""
	if sess != nil {
		tag = base64.RawURLEncoding.EncodeToString(s.web.cookies.mac("oauth-consent", sess.SID+"\x00"+c.Value))
	}
	return &a, tag, true
}

// waitingAuth is pendingAuth for the consent page and its form, which say so when
// nothing waits.
func (s *Server) waitingAuth(w http.ResponseWriter, r *http.Request, sess *webSession) (*oauth.AuthRequest, string, bool) {
	a, tag, ok := s.pendingAuth(r, sess)
	if !ok {
		s.renderError(w, r, http.StatusBadRequest, "This authorization has expired",
			"Nothing is waiting for your consent (it expired after 10 minutes, or was already answered). Start again from your app.")
	}
	return a, tag, ok
}

// consentUser is the signed-in person with a valid Power Platform consent, or nil.
func (s *Server) consentUser(r *http.Request) (*webSession, *cosmos.User, error) {
	sess := s.session(r)
	if sess == nil {
		return nil, nil, nil
	}
	u, err := s.deps.Accounts.GetUser(r.Context(), sess.UserID)
	if errors.Is(err, cosmos.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if u.Consent != cosmos.ConsentGranted {
		return nil, nil, nil
	}
	return sess, u, nil
}

type authorizeView struct {
	ClientName, RedirectHost, Scope, Tag string
}

func (s *Server) oauthConsentPage(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	sess, _, err := s.consentUser(r)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	a, tag, ok := s.waitingAuth(w, r, sess)
	if !ok {
		return
	}
	if sess == nil { // Microsoft sign-in and the Power Platform consent first; /callback comes back here
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	// The form's answer redirects to the app: allow that target (form-action covers
	// redirects after a form submission).
	w.Header().Set("Content-Security-Policy", strings.Replace(pageCSP, "form-action 'self'", "form-action 'self' "+cspSource(a.RedirectURI), 1))
	s.render(w, r, http.StatusOK, "authorize", pageData{Title: "Allow " + a.ClientName, Session: sess,
		Auth: &authorizeView{ClientName: a.ClientName, RedirectHost: a.RedirectHost(), Scope: a.Scope, Tag: tag}})
}

// cspSource is a CSP source for a validated redirect URI: its origin, or its scheme
// for a custom scheme.
func cspSource(redirect string) string {
	u, err := url.Parse(redirect)
	if err != nil {
		return "'none'"
	}
	if u.Host != "" {
		return u.Scheme + "://" + u.Host
	}
	return u.Scheme + ":"
}

func (s *Server) oauthConsent(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.postGuard(w, r)
	if !ok {
		return
	}
	a, tag, ok := s.waitingAuth(w, r, sess)
	if !ok {
		return
	}
	if !hmac.Equal([]byte(r.PostForm.Get("req")), []byte(tag)) {
		s.log.Info("consent form for another request refused", zap.String(logsafe.KeyRequestID, rpc.RequestID(r.Context())))
		s.renderError(w, r, http.StatusForbidden, "Request refused", "This consent form belongs to another authorization. Start again from your app.")
		return
	}
	s.clearCookie(w, r, oauthCookie) // one request, one answer
	base := s.siteURL(r)
	if r.PostForm.Get("action") != "allow" {
		http.Redirect(w, r, oauth.Deny(a, base), http.StatusSeeOther)
		return
	}
	if _, u, err := s.consentUser(r); err != nil || u == nil || u.ID != sess.UserID {
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	target, err := s.oauth.Approve(r.Context(), a, sess.UserID, base)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.log.Info("oauth consent given", zap.String(logsafe.KeyRequestID, rpc.RequestID(r.Context())), zap.String("scope", a.Scope))
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// afterSignIn is where a finished sign-in goes: the consent page when an
// authorization request waits in its cookie, else the dashboard. Never a target from
// the request.
func (s *Server) afterSignIn(r *http.Request) string {
	if s.oauth != nil {
		if _, _, ok := s.pendingAuth(r, nil); ok {
			return "/oauth/consent"
		}
	}
	return "/dashboard"
}

// appView is one connected app on the dashboard.
type appView struct {
	ID, Name, RedirectHost, Scope, First, Last string
}

func connectedApps(u *cosmos.User) []appView {
	var apps []appView
	day := func(t int64) string { return time.Unix(t, 0).UTC().Format("2 Jan 2006 15:04 UTC") }
	for _, g := range u.OAuthGrants {
		if g.Generation != u.KeyGeneration {
			continue
		}
		apps = append(apps, appView{ID: g.ID, Name: g.ClientName, RedirectHost: g.RedirectHost, Scope: g.Scope,
			First: day(g.CreatedAt), Last: day(g.LastUsedAt)})
	}
	return apps
}

// revokeApp disconnects one app: its access tokens fail at the next request, its
// refresh token at the next refresh.
func (s *Server) revokeApp(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.postGuard(w, r)
	if !ok {
		return
	}
	if s.oauth == nil {
		http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
		return
	}
	found, err := s.oauth.RevokeGrant(r.Context(), sess.UserID, r.PostForm.Get("grant"))
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	done := "app-revoked"
	if !found {
		done = "app-gone"
	}
	s.log.Info("oauth grant revoked", zap.String(logsafe.KeyRequestID, rpc.RequestID(r.Context())), zap.Bool("found", found))
	http.Redirect(w, r, "/dashboard?done="+done, http.StatusSeeOther)
}
