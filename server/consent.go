package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/flowstudio/mcp/server/outbound"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/rpc/logsafe"
	"github.com/flowstudio/mcp/server/identity"
	"github.com/flowstudio/mcp/server/keyring"
	"github.com/flowstudio/mcp/tools/pattern"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
)

// Sign-in with Microsoft (Entra ID): /login starts the authorization code flow with
// PKCE, /callback finishes it, verifies the id_token, stores the user with a sealed
// refresh token and opens the dashboard. Everything /callback needs travels in the
// signed login cookie, so any replica can finish a flow another one started.

// Sealer seals a refresh token for storage, bound to its user; version names the key
// that sealed it (*sealing.Sealer).
type Sealer interface {
	Seal(ctx context.Context, userID string, plaintext []byte) (sealed []byte, version string, err error)
}

// AccountStore is what sign-in and the dashboard need from storage.
type AccountStore interface {
	GetUser(ctx context.Context, id string) (*cosmos.User, error)
	CreateUser(ctx context.Context, u *cosmos.User) (*cosmos.User, error)
	UpdateUser(ctx context.Context, id string, fn func(*cosmos.User) error) (*cosmos.User, error)
	Usage(ctx context.Context, userID string, p cosmos.Period, at time.Time) (int64, error)
	// EraseDeleted erases what a write removed from the store's files (revoke).
	EraseDeleted(ctx context.Context) error
}

// keyRenewWithin: a sign-in renews the issue time of a key that expires sooner than
// this (same generation, so the old key keeps working until its own expiry).
const keyRenewWithin = 7 * 24 * time.Hour

// entraClient discovers the provider once (lazily: a cold replica must start fast) and
// verifies id tokens.
type entraClient struct {
	app    identity.App
	client *http.Client

	mu       sync.Mutex
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
}

// newEntraClient talks to Entra ID as app; client nil means a 15 s timeout, no
// redirects (codes and tokens never follow one anywhere) and TLS 1.2 at least.
func newEntraClient(app identity.App, client *http.Client) *entraClient {
	app.Authority = strings.TrimRight(app.Authority, "/")
	if app.Tenant == "" {
		app.Tenant = "organizations"
	}
	if client == nil {
		client = outbound.Client(15*time.Second, true)
	}
	return &entraClient{app: app, client: client}
}

// issuerFor is the id_token issuer of a tenant: <authority>/<tid>/v2.0.
func (e *entraClient) issuerFor(tid string) string { return e.app.Authority + "/" + tid + "/v2.0" }

func (e *entraClient) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, e.client)
}

// discover fetches the discovery document once; a failure is retried next time.
func (e *entraClient) discover(ctx context.Context) (*oidc.Provider, *oidc.IDTokenVerifier, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.provider != nil {
		return e.provider, e.verifier, nil
	}
	ctx, cancel := context.WithTimeout(e.ctx(ctx), 10*time.Second)
	defer cancel()
	base := e.issuerFor(e.app.Tenant)
	if e.app.MultiTenant() {
		// The document of a template names the issuer "<authority>/{tenantid}/v2.0";
		// each id_token's issuer is checked against its own tid in verify.
		ctx = oidc.InsecureIssuerURLContext(ctx, e.issuerFor("{tenantid}"))
	}
	p, err := oidc.NewProvider(ctx, base)
	if err != nil {
		return nil, nil, fmt.Errorf("entra discovery: %w", err)
	}
	e.provider = p
	e.verifier = p.Verifier(&oidc.Config{
		ClientID:             e.app.ClientID,
		SkipIssuerCheck:      true, // checked in verify, per tenant
		SupportedSigningAlgs: []string{oidc.RS256},
	})
	return e.provider, e.verifier, nil
}

func (e *entraClient) oauth2Config(p *oidc.Provider, redirectURL string) *oauth2.Config {
	ep := p.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInParams
	// No ClientSecret here: exchange sends the app's client authentication, the
	// same parameters the refresh-token redemption sends.
	return &oauth2.Config{ClientID: e.app.ClientID, Endpoint: ep, RedirectURL: redirectURL, Scopes: identity.ConsentScopes}
}

// exchange redeems a sign-in code with the PKCE verifier, authenticating as the app
// (client secret or federated credential).
func (e *entraClient) exchange(ctx context.Context, cfg *oauth2.Config, code, verifier string) (*oauth2.Token, error) {
	auth, err := e.app.ClientAuth(ctx)
	if err != nil {
		return nil, err
	}
	opts := []oauth2.AuthCodeOption{oauth2.VerifierOption(verifier)}
	for k, vs := range auth {
		opts = append(opts, oauth2.SetAuthURLParam(k, vs[0]))
	}
	return cfg.Exchange(ctx, code, opts...)
}

// signedIn is who signed in, from a verified id_token.
type signedIn struct {
	TenantID, ObjectID string
	Email              string // email, else preferred_username; only ever stored hashed
	Name               string
}

// entraIDPattern bounds tid and oid (GUIDs in Entra) to what is safe in a user id and
// an issuer URL.
var entraIDPattern = pattern.MustClass(`^[0-9A-Za-z][0-9A-Za-z-]{0,63}$`)

// errIDToken is every id_token refusal; the reason goes only to the log.
type errIDToken struct{ reason string }

func (e *errIDToken) Error() string { return "id_token refused: " + e.reason }

// verify checks the id_token: signature (the provider's JWKS, RS256), audience (client
// id) and expiry by go-oidc; then issuer == <authority>/<tid>/v2.0, the tenant when one
// is configured, and the nonce of this sign-in.
func (e *entraClient) verify(ctx context.Context, raw, nonce string) (*signedIn, error) {
	_, v, err := e.discover(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := v.Verify(e.ctx(ctx), raw)
	if err != nil {
		return nil, &errIDToken{reason: "verify: " + err.Error()}
	}
	var c struct {
		Tid               string `json:"tid"`
		Oid               string `json:"oid"`
		Email             string `json:"email"`
		PreferredUsername string `json:"preferred_username"`
		Name              string `json:"name"`
	}
	if err := tok.Claims(&c); err != nil {
		return nil, &errIDToken{reason: "claims do not decode"}
	}
	switch {
	case !entraIDPattern.Match(c.Tid) || !entraIDPattern.Match(c.Oid):
		return nil, &errIDToken{reason: "tid or oid missing or malformed"}
	case tok.Issuer != e.issuerFor(c.Tid):
		return nil, &errIDToken{reason: "issuer does not match the token's tenant"}
	case !e.app.MultiTenant() && !strings.EqualFold(c.Tid, e.app.Tenant):
		return nil, &errIDToken{reason: "token from another tenant than ENTRA_TENANT"}
	case nonce == "" || subtle.ConstantTimeCompare([]byte(tok.Nonce), []byte(nonce)) != 1:
		return nil, &errIDToken{reason: "nonce mismatch"}
	}
	email := c.Email
	if email == "" && strings.Contains(c.PreferredUsername, "@") {
		email = c.PreferredUsername
	}
	name := strings.TrimSpace(c.Name)
	if len(name) > 120 {
		name = name[:120]
	}
	return &signedIn{TenantID: strings.ToLower(c.Tid), ObjectID: strings.ToLower(c.Oid), Email: email, Name: name}, nil
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// login starts the sign-in. Its only parameter is grant, the name of a consent beyond
// the default sign-in from a fixed list (identity.LookupGrant), never scopes; there is
// nothing to redirect anywhere but to Entra ID and back to /callback.
//
// Without grant it asks for exactly identity.ConsentScopes. With grant (a signed-in
// dashboard user only) it asks for the grant's scopes with prompt=consent; the grant
// and the user it is for travel in the signed login cookie, so the callback never
// takes them from its URL.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	st := loginState{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier()}
	var grant identity.Grant
	if q := r.URL.Query(); q.Has("grant") {
		g, ok := identity.LookupGrant(q.Get("grant"))
		if !ok {
			s.renderError(w, r, http.StatusBadRequest, "Unknown permission",
				"This link asks for a permission FlowStudio does not know. Open your dashboard and use its buttons.")
			return
		}
		sess := s.session(r)
		if sess == nil {
			s.renderError(w, r, http.StatusForbidden, "Sign in first",
				"Extra permissions are granted from your dashboard: sign in, then use its button there.")
			return
		}
		grant, st.Grant, st.UserID = g, g.Name, sess.UserID
	}
	p, _, err := s.web.entra.discover(r.Context())
	if err != nil {
		s.log.Warn("sign-in unavailable", zap.String(logsafe.KeyRequestID, rpc.RequestID(r.Context())), logsafe.Error(err))
		s.renderError(w, r, http.StatusServiceUnavailable, "Microsoft sign-in is unreachable",
			"We could not reach Microsoft sign-in just now. Please try again in a minute.")
		return
	}
	value, err := s.web.cookies.encode(loginCookie, st, loginTTL)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.setCookie(w, r, loginCookie, value, loginTTL)
	cfg := s.web.entra.oauth2Config(p, s.siteURL(r)+"/callback")
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(st.Verifier), oidc.Nonce(st.Nonce),
		oauth2.SetAuthURLParam("response_mode", "query")}
	if st.Grant != "" {
		cfg.Scopes = grant.SignInScopes()
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "consent"))
	}
	http.Redirect(w, r, cfg.AuthCodeURL(st.State, opts...), http.StatusFound)
}

// entraErrorCode keeps an upstream error code printable and short; nothing else of the
// upstream answer reaches the page.
var entraErrorCode = pattern.MustClass(`^[a-z_]{1,40}$`)

// callback finishes the sign-in. On success it goes to /dashboard, or to the OAuth
// consent page when an authorization request waits in its signed cookie: no target
// comes from the request.
func (s *Server) callback(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	ctx := r.Context()
	reqID := rpc.RequestID(ctx)
	q := r.URL.Query()
	var st loginState
	cookieErr := s.readCookie(r, loginCookie, &st)
	s.clearCookie(w, r, loginCookie) // one flow, one callback

	if code := q.Get("error"); code != "" {
		if !entraErrorCode.Match(code) {
			code = "unknown_error"
		}
		s.log.Info("sign-in refused by Entra ID", zap.String(logsafe.KeyRequestID, reqID), zap.String("error_code", code))
		declined := code == "access_denied" || code == "consent_required" || code == "interaction_required"
		if declined && cookieErr == nil && st.Grant != "" && subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) == 1 {
			http.Redirect(w, r, "/dashboard?done=grant-declined", http.StatusSeeOther) // the sign-in itself is untouched
			return
		}
		if declined {
			s.render(w, r, http.StatusForbidden, "declined", pageData{Title: "Permission not granted", Code: code})
			return
		}
		s.render(w, r, http.StatusBadGateway, "error", pageData{Title: "Sign-in did not complete", Code: code,
			Message: "Microsoft sign-in answered with an error, so nothing was saved. Start again; if it keeps happening, your organisation may need to allow this app."})
		return
	}
	restart := func(reason string) {
		s.log.Info("sign-in callback refused", zap.String(logsafe.KeyRequestID, reqID), zap.String("reason", reason))
		s.renderError(w, r, http.StatusBadRequest, "Sign-in expired",
			"This sign-in link has expired, was already used, or was started in another browser or tab. Please start again.")
	}
	if cookieErr != nil {
		restart("no valid login cookie")
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1 {
		restart("state mismatch")
		return
	}
	code := q.Get("code")
	if code == "" || len(code) > 4096 {
		restart("no code")
		return
	}
	p, _, err := s.web.entra.discover(ctx)
	if err != nil {
		s.log.Warn("sign-in unavailable", zap.String(logsafe.KeyRequestID, reqID), logsafe.Error(err))
		s.renderError(w, r, http.StatusServiceUnavailable, "Microsoft sign-in is unreachable",
			"We could not reach Microsoft sign-in just now. Please try again in a minute.")
		return
	}
	xctx, cancel := context.WithTimeout(s.web.entra.ctx(ctx), 20*time.Second)
	defer cancel()
	tok, err := s.web.entra.exchange(xctx, s.web.entra.oauth2Config(p, s.siteURL(r)+"/callback"), code, st.Verifier)
	if err != nil {
		reason := "token endpoint unreachable"
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			reason = "token endpoint: " + re.ErrorCode // the code only: never a body
		}
		restart(reason)
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		restart("no id_token in the token response")
		return
	}
	id, err := s.web.entra.verify(xctx, rawID, st.Nonce)
	if err != nil {
		s.log.Warn("id_token refused", zap.String(logsafe.KeyRequestID, reqID), logsafe.Error(err))
		s.renderError(w, r, http.StatusBadRequest, "Sign-in could not be verified",
			"Microsoft's answer did not pass our checks, so nothing was saved. Please start again.")
		return
	}
	if tok.RefreshToken == "" {
		s.log.Warn("no refresh token in the token response", zap.String(logsafe.KeyRequestID, reqID))
		s.renderError(w, r, http.StatusBadGateway, "Offline access was not granted",
			"FlowStudio needs the \"Maintain access to data you have given it access to\" permission to work for your agents. Please sign in again and accept all the requested permissions.")
		return
	}
	if st.Grant != "" {
		s.finishGrant(w, r, st, id, tok)
		return
	}
	user, err := s.grantConsent(ctx, id, tok.RefreshToken)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if !s.startSession(w, r, user, id) {
		return
	}
	s.log.Info("signed in", zap.String(logsafe.KeyRequestID, reqID), zap.String("email_hash", user.EmailHash),
		zap.String("tier", string(user.Tier)), zap.Int64("key_generation", user.KeyGeneration))
	http.Redirect(w, r, s.afterSignIn(r), http.StatusSeeOther)
}

// startSession sets the dashboard session cookie of a verified sign-in.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, user *cosmos.User, id *signedIn) bool {
	return s.openSession(w, r, user, id.Name)
}

// openSession sets a new dashboard session cookie (a new session id) for user under
// its current session epoch.
func (s *Server) openSession(w http.ResponseWriter, r *http.Request, user *cosmos.User, name string) bool {
	ws := webSession{UserID: user.ID, TenantID: user.TenantID, Name: name, SID: randomToken(), Epoch: user.SessionEpoch}
	value, err := s.web.cookies.encode(sessionCookie, ws, sessionTTL)
	if err != nil {
		s.internalError(w, r, err)
		return false
	}
	s.setCookie(w, r, sessionCookie, value, sessionTTL)
	return true
}

// errNoGrantTarget: the grant sign-in has no consented user to add the grant to.
var errNoGrantTarget = errors.New("no consented user to add the grant to")

// finishGrant completes a grant sign-in (the grant named in the signed login cookie):
// the person who consented must be the dashboard user who asked, with a valid default
// consent. The user record gains the grant, unless Entra's answer lists no scope of
// its resource, and the new refresh token (Entra's refresh tokens serve every resource
// consented to, so it replaces the old one). Keys and key generation stay as they are.
func (s *Server) finishGrant(w http.ResponseWriter, r *http.Request, st loginState, id *signedIn, tok *oauth2.Token) {
	ctx := r.Context()
	reqID := rpc.RequestID(ctx)
	grant, ok := identity.LookupGrant(st.Grant)
	userID := cosmos.UserID(id.TenantID, id.ObjectID)
	if !ok || st.UserID == "" {
		s.internalError(w, r, fmt.Errorf("login cookie names grant %q without its user", st.Grant))
		return
	}
	if subtle.ConstantTimeCompare([]byte(userID), []byte(st.UserID)) != 1 {
		s.log.Info("grant sign-in by another account refused", zap.String(logsafe.KeyRequestID, reqID), zap.String("grant", grant.Name))
		s.renderError(w, r, http.StatusBadRequest, "Another account signed in",
			"You signed in to Microsoft with another account than the one on your dashboard, so nothing was changed. Open your dashboard and try again with the same account.")
		return
	}
	// Entra's scope lists what it granted for the access token's resource; without
	// one, what was asked for stands.
	granted := true
	if scope, _ := tok.Extra("scope").(string); strings.TrimSpace(scope) != "" {
		granted = grant.GrantedIn(scope)
	}
	sealed, version, err := s.deps.Sealer.Seal(ctx, userID, []byte(tok.RefreshToken))
	if err != nil {
		s.internalError(w, r, fmt.Errorf("seal refresh token: %w", err))
		return
	}
	user, err := s.deps.Accounts.UpdateUser(ctx, userID, func(u *cosmos.User) error {
		if u.Consent != cosmos.ConsentGranted {
			return errNoGrantTarget
		}
		u.SealedRefreshToken, u.SealKeyVersion = sealed, version
		if granted {
			identity.AddGrant(u, grant.Name)
		}
		return nil
	})
	if errors.Is(err, errNoGrantTarget) || errors.Is(err, cosmos.ErrNotFound) {
		s.renderError(w, r, http.StatusConflict, "Sign in again first",
			"Your permission was revoked or needs renewing, so nothing was changed. Sign in again, then grant the extra permission from your dashboard.")
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if !s.startSession(w, r, user, id) {
		return
	}
	s.log.Info("grant given", zap.String(logsafe.KeyRequestID, reqID), zap.String("email_hash", user.EmailHash),
		zap.String("grant", grant.Name), zap.Bool("granted", granted))
	done := "grant-missing"
	if granted {
		done = grant.Name
	}
	http.Redirect(w, r, "/dashboard?done="+url.QueryEscape(done), http.StatusSeeOther)
}

// grantConsent stores the signed-in user: a new one with key generation 1, a returning
// one with consent granted again, keeping its generation unless it had been revoked.
func (s *Server) grantConsent(ctx context.Context, id *signedIn, refreshToken string) (*cosmos.User, error) {
	userID := cosmos.UserID(id.TenantID, id.ObjectID)
	sealed, version, err := s.deps.Sealer.Seal(ctx, userID, []byte(refreshToken))
	if err != nil {
		return nil, fmt.Errorf("seal refresh token: %w", err)
	}
	var emailHash string
	if id.Email != "" {
		emailHash = s.deps.Keys.HashEmail(id.Email)
	}
	now := time.Now()
	update := func(u *cosmos.User) error {
		if emailHash != "" {
			u.EmailHash = emailHash
		}
		u.SealedRefreshToken, u.SealKeyVersion = sealed, version
		u.DisplayName = "" // the name lives in the session cookie, never in the store
		switch {
		case u.Consent == cosmos.ConsentRevoked || u.KeyGeneration < 1:
			u.KeyGeneration++
			u.KeyIssuedAt = now.Unix()
		case time.Unix(u.KeyIssuedAt, 0).Add(keyring.KeyLifetime).Before(now.Add(keyRenewWithin)):
			u.KeyIssuedAt = now.Unix()
		}
		u.Consent = cosmos.ConsentGranted
		if u.Tier == "" {
			u.Tier = cosmos.TierFree
		}
		return nil
	}
	u, err := s.deps.Accounts.UpdateUser(ctx, userID, update)
	if !errors.Is(err, cosmos.ErrNotFound) {
		return u, err
	}
	u, err = s.deps.Accounts.CreateUser(ctx, &cosmos.User{ID: userID, TenantID: id.TenantID, ObjectID: id.ObjectID,
		EmailHash: emailHash, Tier: cosmos.TierFree, KeyGeneration: 1, KeyIssuedAt: now.Unix(),
		SealedRefreshToken: sealed, SealKeyVersion: version, Consent: cosmos.ConsentGranted})
	if errors.Is(err, cosmos.ErrConflict) { // the same person signing in twice at once
		return s.deps.Accounts.UpdateUser(ctx, userID, update)
	}
	return u, err
}
