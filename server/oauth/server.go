package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/flowstudio/mcp/cosmos"
)

// Store is what the authorization server needs from storage (*cosmos.Store).
type Store interface {
	GetUser(ctx context.Context, id string) (*cosmos.User, error)
	UpdateUser(ctx context.Context, id string, fn func(*cosmos.User) error) (*cosmos.User, error)
	CreateOAuthItem(ctx context.Context, kind, key string, v any, ttl int) error
	GetOAuthItem(ctx context.Context, kind, key string, v any) (string, error)
	ReplaceOAuthItem(ctx context.Context, kind, key string, v any, ttl int, etag string) error
}

// Server is the authorization server's logic, independent of how the person signs in.
type Server struct {
	Store   Store
	Tokens  *Tokens
	Fetcher *Fetcher
	Now     func() time.Time
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Issuer and Resource of a site whose base URL (scheme://host, no slash) is base.
func Issuer(base string) string   { return base + IssuerPath }
func Resource(base string) string { return base + ResourcePath }

// ResourceMetadata is the Protected Resource Metadata of /mcp/oauth (RFC 9728).
func ResourceMetadata(base string) map[string]any {
	return map[string]any{
		"resource":                 Resource(base),
		"authorization_servers":    []string{Issuer(base)},
		"scopes_supported":         []string{ScopeFull, ScopeRead},
		"bearer_methods_supported": []string{"header"},
		"resource_name":            "FlowStudio MCP for Power Automate",
	}
}

// Metadata is the Authorization Server Metadata (RFC 8414), also served as the
// OpenID-style discovery document.
func Metadata(base string) map[string]any {
	return map[string]any{
		"issuer":                                         base + IssuerPath,
		"authorization_endpoint":                         base + AuthorizePath,
		"token_endpoint":                                 base + TokenPath,
		"registration_endpoint":                          base + RegisterPath,
		"scopes_supported":                               []string{ScopeFull, ScopeRead},
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token"},
		"token_endpoint_auth_methods_supported":          []string{"none"},
		"code_challenge_methods_supported":               []string{"S256"},
		"authorization_response_iss_parameter_supported": true,
		"client_id_metadata_document_supported":          true,
		"resource_indicators_supported":                  true,
	}
}

// RegisterClient stores a validated DCR client under a new id.
func (s *Server) RegisterClient(ctx context.Context, r *Registration) (*Client, *Error) {
	c, oe := Register(r)
	if oe != nil {
		return nil, oe
	}
	c.ID = NewSecret("fsc_")[:36]
	c.CreatedAt = s.now().Unix()
	if err := s.Store.CreateOAuthItem(ctx, cosmos.KindOAuthClient, c.ID, c, int(ClientLifetime/time.Second)); err != nil {
		return nil, oerr(500, "server_error", "the client could not be stored; retry")
	}
	return c, nil
}

// LookupClient finds a client: a metadata document URL is fetched, any other id is a
// registered client.
func (s *Server) LookupClient(ctx context.Context, clientID string) (*Client, *Error) {
	if clientID == "" || len(clientID) > maxClientIDLen {
		return nil, oerr(400, "invalid_client", "client_id is missing or too long")
	}
	if IsMetadataURL(clientID) {
		if s.Fetcher == nil {
			return nil, oerr(400, "invalid_client", "client id metadata documents are not accepted here")
		}
		return s.Fetcher.Fetch(ctx, clientID)
	}
	var c Client
	if _, err := s.Store.GetOAuthItem(ctx, cosmos.KindOAuthClient, clientID, &c); err != nil {
		if errors.Is(err, cosmos.ErrNotFound) {
			return nil, oerr(400, "invalid_client", "unknown client_id: register first (dynamic client registration) or use a client id metadata document URL")
		}
		return nil, oerr(500, "server_error", "the client could not be read; retry")
	}
	return &c, nil
}

// AuthRequest is a validated authorization request, waiting for the person's consent.
type AuthRequest struct {
	ClientID    string `json:"c"`
	ClientName  string `json:"n"`
	RedirectURI string `json:"r"`
	State       string `json:"s,omitempty"`
	Challenge   string `json:"pc"`
	Scope       string `json:"sc"`
	Resource    string `json:"rs"`
}

// RedirectHost is the host (or scheme, for a custom scheme) the code goes to.
func (a *AuthRequest) RedirectHost() string {
	u, err := url.Parse(a.RedirectURI)
	if err != nil {
		return ""
	}
	if u.Host != "" {
		return u.Host
	}
	return u.Scheme + ":"
}

// ParseAuthorize validates an authorization request. A bad client or redirect URI
// gives (nil, nil, err): the error is shown, never redirected (RFC 6749 §4.1.2.1).
// Anything else wrong gives the request's redirect target too, for an error response
// there.
func (s *Server) ParseAuthorize(ctx context.Context, q url.Values, base string) (*AuthRequest, *Client, *Error) {
	for _, p := range []string{"client_id", "redirect_uri", "response_type", "code_challenge", "code_challenge_method", "resource", "scope", "state"} {
		if len(q[p]) > 1 {
			return nil, nil, oerr(400, "invalid_request", "the parameter "+p+" is repeated")
		}
	}
	c, oe := s.LookupClient(ctx, q.Get("client_id"))
	if oe != nil {
		return nil, nil, oe
	}
	redirect := q.Get("redirect_uri")
	if !c.HasRedirect(redirect) {
		return nil, nil, oerr(400, "invalid_request", "redirect_uri is not one this client registered (exact match required)")
	}
	a := &AuthRequest{ClientID: c.ID, ClientName: c.DisplayName(), RedirectURI: redirect, State: q.Get("state"),
		Challenge: q.Get("code_challenge"), Resource: q.Get("resource")}
	if len(a.State) > maxStateLen {
		a.State = ""
		return a, c, oerr(400, "invalid_request", "state is longer than 512 characters")
	}
	if q.Get("response_type") != "code" {
		return a, c, oerr(400, "unsupported_response_type", "only response_type=code is supported")
	}
	switch m := q.Get("code_challenge_method"); {
	case m != "S256":
		return a, c, oerr(400, "invalid_request", "PKCE with code_challenge_method=S256 is required (plain is not accepted)")
	case !validChallenge(a.Challenge):
		return a, c, oerr(400, "invalid_request", "code_challenge must be 43 base64url characters (S256)")
	}
	if a.Resource == "" {
		return a, c, oerr(400, "invalid_target", "resource is required: the MCP server URL, "+Resource(base))
	}
	if a.Resource != Resource(base) {
		return a, c, oerr(400, "invalid_target", "resource must be "+Resource(base))
	}
	scope, ok := NormalizeScope(q.Get("scope"))
	if !ok {
		return a, c, oerr(400, "invalid_scope", "scope may only be mcp:full and mcp:read")
	}
	a.Scope = scope
	return a, c, nil
}

// ErrorRedirect is the redirect URI with an error response (RFC 6749 §4.1.2.1, with
// iss per RFC 9207).
func ErrorRedirect(a *AuthRequest, base string, oe *Error) string {
	return withParams(a.RedirectURI, url.Values{"error": {oe.Code}, "error_description": {oe.Description}}, a.State, base)
}

func withParams(redirect string, v url.Values, state, base string) string {
	u, _ := url.Parse(redirect) // validated at registration
	q := u.Query()
	for k, vs := range v {
		q[k] = vs
	}
	if state != "" {
		q.Set("state", state)
	}
	q.Set("iss", Issuer(base))
	u.RawQuery = q.Encode()
	return u.String()
}

// code is an authorization code as stored (KindOAuthCode, by hash).
type code struct {
	ClientID    string `json:"clientId"`
	ClientName  string `json:"clientName,omitempty"`
	RedirectURI string `json:"redirectUri"`
	Challenge   string `json:"challenge"`
	Scope       string `json:"scope"`
	Resource    string `json:"resource"`
	UserID      string `json:"userId"`
	GrantID     string `json:"grantId"` // chosen now, so a replayed code can revoke what it gave
	ExpiresAt   int64  `json:"exp"`
	Used        bool   `json:"used,omitempty"`
}

// refresh is a refresh token as stored (KindOAuthRefresh, by hash).
type refresh struct {
	UserID    string `json:"userId"`
	GrantID   string `json:"grantId"`
	ClientID  string `json:"clientId"`
	Scope     string `json:"scope"`
	Resource  string `json:"resource"`
	ExpiresAt int64  `json:"exp"`
	Used      bool   `json:"used,omitempty"`
}

// Approve records the person's consent to a as user userID and returns the redirect
// with the code (and state and iss).
func (s *Server) Approve(ctx context.Context, a *AuthRequest, userID, base string) (string, error) {
	secret := NewSecret("fsa_")
	rec := code{ClientID: a.ClientID, ClientName: a.ClientName, RedirectURI: a.RedirectURI, Challenge: a.Challenge,
		Scope: a.Scope, Resource: a.Resource, UserID: userID, GrantID: NewSecret("")[:22],
		ExpiresAt: s.now().Add(CodeLifetime).Unix()}
	if err := s.Store.CreateOAuthItem(ctx, cosmos.KindOAuthCode, Hash(secret), &rec, 600); err != nil {
		return "", err
	}
	if !IsMetadataURL(a.ClientID) { // keep a client that is used
		var c Client
		if etag, err := s.Store.GetOAuthItem(ctx, cosmos.KindOAuthClient, a.ClientID, &c); err == nil {
			_ = s.Store.ReplaceOAuthItem(ctx, cosmos.KindOAuthClient, a.ClientID, &c, int(ClientLifetime/time.Second), etag)
		}
	}
	return withParams(a.RedirectURI, url.Values{"code": {secret}}, a.State, base), nil
}

// Deny is the redirect of a refused consent.
func Deny(a *AuthRequest, base string) string {
	return ErrorRedirect(a, base, oerr(400, "access_denied", "the person declined"))
}

// TokenResponse is a successful token answer.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
}

// Token answers the token endpoint's form (already parsed) for the site at base.
func (s *Server) Token(ctx context.Context, form url.Values, basicUser, base string) (*TokenResponse, *Error) {
	for k, vs := range form {
		if len(vs) > 1 {
			return nil, oerr(400, "invalid_request", "the parameter "+k+" is repeated")
		}
	}
	clientID := form.Get("client_id")
	if clientID == "" {
		clientID = basicUser
	}
	if clientID == "" {
		return nil, oerr(401, "invalid_client", "client_id is required")
	}
	switch form.Get("grant_type") {
	case "authorization_code":
		return s.redeemCode(ctx, form, clientID, base)
	case "refresh_token":
		return s.redeemRefresh(ctx, form, clientID, base)
	case "":
		return nil, oerr(400, "invalid_request", "grant_type is required")
	}
	return nil, oerr(400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
}

func (s *Server) redeemCode(ctx context.Context, form url.Values, clientID, base string) (*TokenResponse, *Error) {
	secret := form.Get("code")
	if secret == "" || len(secret) > 200 {
		return nil, oerr(400, "invalid_request", "code is required")
	}
	var c code
	etag, err := s.Store.GetOAuthItem(ctx, cosmos.KindOAuthCode, Hash(secret), &c)
	switch {
	case errors.Is(err, cosmos.ErrNotFound):
		return nil, oerr(400, "invalid_grant", "the authorization code is unknown or expired")
	case err != nil:
		return nil, oerr(500, "server_error", "the code could not be read; retry")
	case c.ClientID != clientID:
		return nil, oerr(400, "invalid_grant", "the authorization code was issued to another client")
	}
	if c.Used {
		s.revokeGrant(ctx, c.UserID, c.GrantID)
		return nil, oerr(400, "invalid_grant", "the authorization code was already used; the tokens issued for it are revoked")
	}
	// Mark it used before anything else: of two redemptions at once, one wins and the
	// other is a replay.
	c.Used = true
	if err := s.Store.ReplaceOAuthItem(ctx, cosmos.KindOAuthCode, Hash(secret), &c, 600, etag); err != nil {
		if errors.Is(err, cosmos.ErrPreconditionFailed) {
			s.revokeGrant(ctx, c.UserID, c.GrantID)
			return nil, oerr(400, "invalid_grant", "the authorization code was already used; the tokens issued for it are revoked")
		}
		return nil, oerr(500, "server_error", "the code could not be redeemed; retry")
	}
	switch {
	case s.now().Unix() >= c.ExpiresAt:
		return nil, oerr(400, "invalid_grant", "the authorization code expired")
	case form.Get("redirect_uri") != c.RedirectURI:
		return nil, oerr(400, "invalid_grant", "redirect_uri does not match the authorization request")
	case form.Get("code_verifier") == "":
		return nil, oerr(400, "invalid_grant", "code_verifier is required (PKCE)")
	case !VerifyPKCE(form.Get("code_verifier"), c.Challenge):
		return nil, oerr(400, "invalid_grant", "code_verifier does not match the code_challenge")
	case form.Has("resource") && form.Get("resource") != c.Resource:
		return nil, oerr(400, "invalid_target", "resource does not match the authorization request")
	}
	now := s.now()
	g := cosmos.OAuthGrant{ID: c.GrantID, ClientID: c.ClientID, ClientName: c.ClientName,
		RedirectHost: (&AuthRequest{RedirectURI: c.RedirectURI}).RedirectHost(), Scope: c.Scope,
		CreatedAt: now.Unix(), LastUsedAt: now.Unix()}
	u, err := s.Store.UpdateUser(ctx, c.UserID, func(u *cosmos.User) error {
		if u.Consent != cosmos.ConsentGranted {
			return errNoConsent
		}
		g.Generation = u.KeyGeneration
		if len(u.OAuthGrants) >= cosmos.MaxOAuthGrants { // drop the least recently used
			oldest := 0
			for i, x := range u.OAuthGrants {
				if x.LastUsedAt < u.OAuthGrants[oldest].LastUsedAt {
					oldest = i
				}
			}
			u.OAuthGrants = slices.Delete(u.OAuthGrants, oldest, oldest+1)
		}
		u.OAuthGrants = append(u.OAuthGrants, g)
		return nil
	})
	if err != nil {
		if errors.Is(err, errNoConsent) || errors.Is(err, cosmos.ErrNotFound) {
			return nil, oerr(400, "invalid_grant", "the user's permission was revoked; authorize again")
		}
		return nil, oerr(500, "server_error", "the grant could not be stored; retry")
	}
	return s.issue(ctx, u.ID, g.Generation, g.ID, c.ClientID, c.Scope, c.Resource, base)
}

var errNoConsent = errors.New("no consent")

func (s *Server) redeemRefresh(ctx context.Context, form url.Values, clientID, base string) (*TokenResponse, *Error) {
	secret := form.Get("refresh_token")
	if secret == "" || len(secret) > 200 {
		return nil, oerr(400, "invalid_request", "refresh_token is required")
	}
	var rt refresh
	etag, err := s.Store.GetOAuthItem(ctx, cosmos.KindOAuthRefresh, Hash(secret), &rt)
	switch {
	case errors.Is(err, cosmos.ErrNotFound):
		return nil, oerr(400, "invalid_grant", "the refresh token is unknown or expired")
	case err != nil:
		return nil, oerr(500, "server_error", "the refresh token could not be read; retry")
	case rt.ClientID != clientID:
		return nil, oerr(400, "invalid_grant", "the refresh token was issued to another client")
	}
	if rt.Used {
		s.revokeGrant(ctx, rt.UserID, rt.GrantID)
		return nil, oerr(400, "invalid_grant", "the refresh token was already used; the grant is revoked, authorize again")
	}
	rt.Used = true
	if err := s.Store.ReplaceOAuthItem(ctx, cosmos.KindOAuthRefresh, Hash(secret), &rt, int(RefreshTokenLifetime/time.Second), etag); err != nil {
		if errors.Is(err, cosmos.ErrPreconditionFailed) {
			s.revokeGrant(ctx, rt.UserID, rt.GrantID)
			return nil, oerr(400, "invalid_grant", "the refresh token was already used; the grant is revoked, authorize again")
		}
		return nil, oerr(500, "server_error", "the refresh token could not be redeemed; retry")
	}
	if s.now().Unix() >= rt.ExpiresAt {
		return nil, oerr(400, "invalid_grant", "the refresh token expired")
	}
	if form.Has("resource") && form.Get("resource") != rt.Resource {
		return nil, oerr(400, "invalid_target", "resource does not match the grant")
	}
	scope := rt.Scope
	if form.Get("scope") != "" {
		asked, ok := NormalizeScope(form.Get("scope"))
		if !ok || (asked == ScopeFull && rt.Scope == ScopeRead) {
			return nil, oerr(400, "invalid_scope", "scope may not go beyond the grant's "+rt.Scope)
		}
		scope = asked
	}
	var gen int64
	_, err = s.Store.UpdateUser(ctx, rt.UserID, func(u *cosmos.User) error {
		i := slices.IndexFunc(u.OAuthGrants, func(g cosmos.OAuthGrant) bool { return g.ID == rt.GrantID })
		if u.Consent != cosmos.ConsentGranted || i < 0 || u.OAuthGrants[i].Generation != u.KeyGeneration {
			return errNoConsent
		}
		u.OAuthGrants[i].LastUsedAt = s.now().Unix()
		gen = u.KeyGeneration
		return nil
	})
	if err != nil {
		if errors.Is(err, errNoConsent) || errors.Is(err, cosmos.ErrNotFound) {
			return nil, oerr(400, "invalid_grant", "the grant was revoked (or the key re-issued); authorize again")
		}
		return nil, oerr(500, "server_error", "the grant could not be read; retry")
	}
	return s.issue(ctx, rt.UserID, gen, rt.GrantID, rt.ClientID, scope, rt.Resource, base)
}

// issue mints an access token and a new refresh token for a grant.
func (s *Server) issue(ctx context.Context, userID string, gen int64, grantID, clientID, scope, resource, base string) (*TokenResponse, *Error) {
	at, ttl, err := s.Tokens.Issue(Issuer(base), resource, userID, gen, grantID, scope, clientID)
	if err != nil {
		return nil, oerr(500, "server_error", "the token could not be signed")
	}
	secret := NewSecret("fsr_")
	rt := refresh{UserID: userID, GrantID: grantID, ClientID: clientID, Scope: scope, Resource: resource,
		ExpiresAt: s.now().Add(RefreshTokenLifetime).Unix()}
	if err := s.Store.CreateOAuthItem(ctx, cosmos.KindOAuthRefresh, Hash(secret), &rt, int(RefreshTokenLifetime/time.Second)); err != nil {
		return nil, oerr(500, "server_error", "the refresh token could not be stored; retry")
	}
	return &TokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(ttl / time.Second), RefreshToken: secret, Scope: scope}, nil
}

// revokeGrant ends a grant (a replayed code or refresh token): best effort, since the
// answer to the replay is a refusal either way.
func (s *Server) revokeGrant(ctx context.Context, userID, grantID string) {
	if userID == "" || grantID == "" {
		return
	}
	_, _ = s.Store.UpdateUser(ctx, userID, func(u *cosmos.User) error {
		if !cosmos.RemoveOAuthGrant(u, grantID) {
			return errNoConsent // nothing to write
		}
		return nil
	})
}

// RevokeGrant ends one grant of the user (the dashboard's Revoke); false when there
// was none with that id.
func (s *Server) RevokeGrant(ctx context.Context, userID, grantID string) (bool, error) {
	_, err := s.Store.UpdateUser(ctx, userID, func(u *cosmos.User) error {
		if !cosmos.RemoveOAuthGrant(u, grantID) {
			return errNoConsent
		}
		return nil
	})
	if errors.Is(err, errNoConsent) || errors.Is(err, cosmos.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// WriteError answers an OAuth error as JSON (RFC 6749 §5.2).
func WriteError(w http.ResponseWriter, oe *Error) {
	if oe.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="oauth"`)
	}
	WriteJSON(w, oe.Status, map[string]string{"error": oe.Code, "error_description": oe.Description})
}

// WriteJSON answers v with no-store caching.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
