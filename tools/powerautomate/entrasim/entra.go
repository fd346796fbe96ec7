// Package entrasim is the Entra ID stand-in of the simulator, mounted at
// <base>/entra: the parts of
// login.microsoftonline.com that sign-in and delegated tokens use.
//
//	GET  /entra/{tenant}/v2.0/.well-known/openid-configuration
//	GET  /entra/{tenant}/oauth2/v2.0/authorize   sign-in page, then consent page
//	POST /entra/{tenant}/oauth2/v2.0/authorize   (the pages' forms)
//	POST /entra/{tenant}/oauth2/v2.0/token       authorization_code (PKCE) and refresh_token
//	GET  /entra/{tenant}/discovery/v2.0/keys     JWKS
//
// {tenant} is organizations, common, a tenant id or a tenant's domain.
//
// Refresh tokens are self-validating: AES-256-GCM sealed claims (user, client,
// consented scopes, a random id, issue and expiry times) under a key derived
// from Options.KeySeed. Any Sim with the same seed, in any process, accepts a
// token another one issued (`flowstudio dev-key` issues, the server redeems).
// Rotation is tracked by the token id: a Sim remembers every id it has
// redeemed and refuses it afterwards, so a rotated-away token dies on first
// use in each process (memory only: a restarted process has forgotten).
//
// Consent is cumulative per user and app, as in Entra ID: what a user accepts
// on the consent page adds to what they accepted before, and every refresh
// token issued afterwards serves all of it (incremental consent). A Sim keeps
// each user's consent in memory, learns it from every valid refresh token it
// sees, and remembers it in a sealed browser cookie, so a consent given after
// a restart still adds to the one given before. Redeeming a refresh token for
// a resource the user has not consented to answers invalid_grant AADSTS65001;
// <resource>/.default means the permissions the app registration lists for it
// (user_impersonation for the connector runtime and the Power Platform API),
// granted only once a user has consented to them.
package entrasim

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

// The development app registration the stand-in knows from the start. It is
// for embedded mode and tests only: the secret is public.
const (
	DevClientID     = "flowstudio-dev"
	DevClientSecret = "flowstudio-dev-secret-embedded-only"
)

// Path is where the stand-in sits under the simulator's mount: with the
// simulator at http://127.0.0.1:8080/sim the authority is
// http://127.0.0.1:8080/sim/entra.
const Path = "/entra"

// Default token lifetimes (SetTokenLifetimes changes them).
const (
	defaultAccessTTL  = time.Hour
	defaultRefreshTTL = 90 * 24 * time.Hour // Entra's inactivity window
	codeTTL           = 10 * time.Minute
)

// Client is an app registration of the stand-in.
type Client struct {
	ID, Secret string
	// RedirectURIs are accepted by exact match.
	RedirectURIs []string
	// LoopbackRedirects also accepts http://127.0.0.1:<any port>/callback and
	// http://localhost:<any port>/callback (Entra's rule for loopback URIs).
	LoopbackRedirects bool
	// Federated are the federated identity credentials the app trusts instead
	// of (or besides) its secret: a client_assertion (jwt-bearer) whose issuer,
	// subject and audience match one of them, signed by this stand-in.
	Federated []FederatedCredential
}

type entraState struct {
	rtKey cipher.AEAD // seals refresh tokens; derived from the seed
	now   func() time.Time

	mu         sync.Mutex
	clients    map[string]Client
	codes      map[string]*authCode
	used       map[string]int64    // refresh token id → its expiry (unix s), to prune
	consents   map[string][]string // tid.oid.client → consented scopes (.default expanded)
	revoked    map[string]int64    // tid.oid → tokens issued before this (unix ns) are dead
	accessTTL  time.Duration
	refreshTTL time.Duration
}

type authCode struct {
	clientID, redirectURI, challenge, nonce string
	tenantID, objectID, email               string
	scopes                                  []string // asked for at authorize (.default expanded)
	consented                               []string // everything the user has consented to for the client
	expires                                 time.Time
	used                                    bool
}

// refreshClaims are what a refresh token holds, sealed.
type refreshClaims struct {
	ID       string   `json:"jti"`
	TenantID string   `json:"tid"`
	ObjectID string   `json:"oid"`
	ClientID string   `json:"cid"`
	Scopes   []string `json:"scp"`
	IssuedAt int64    `json:"iat"` // unix nanoseconds: compared with revocations
	Expires  int64    `json:"exp"` // unix seconds
}

// refreshPrefix starts every refresh token (real ones start "0.A").
const refreshPrefix = "0.AS."

func newEntraState(seed []byte, now func() time.Time) *entraState {
	key := make([]byte, 32)
	if seed != nil {
		m := hmac.New(sha256.New, seed)
		m.Write([]byte("entra refresh tokens v1"))
		key = m.Sum(nil)
	} else {
		rand.Read(key)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // 32 bytes: cannot fail
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &entraState{
		rtKey: aead,
		now:   now,
		clients: map[string]Client{DevClientID: {ID: DevClientID, Secret: DevClientSecret, LoopbackRedirects: true,
			Federated: []FederatedCredential{DevFederatedCredential}}},
		codes:      map[string]*authCode{},
		used:       map[string]int64{},
		consents:   map[string][]string{},
		revoked:    map[string]int64{},
		accessTTL:  defaultAccessTTL,
		refreshTTL: defaultRefreshTTL,
	}
}

// RegisterClient adds or replaces an app registration, e.g. the dev
// client with the redirect URI of a public URL that is not loopback.
func (s *Entra) RegisterClient(c Client) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	s.st.clients[c.ID] = c
}

// AddRedirectURI lets an existing client use one more redirect URI.
func (s *Entra) AddRedirectURI(clientID, uri string) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	if c, ok := s.st.clients[clientID]; ok && !slices.Contains(c.RedirectURIs, uri) {
		c.RedirectURIs = append(slices.Clone(c.RedirectURIs), uri)
		s.st.clients[clientID] = c
	}
}

// SetTokenLifetimes sets the lifetime of the access tokens and refresh
// tokens the stand-in issues from now on (tests: short access tokens).
func (s *Entra) SetTokenLifetimes(access, refresh time.Duration) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	s.st.accessTTL, s.st.refreshTTL = access, refresh
}

// IssueRefreshToken issues a refresh token as if the user had signed in to
// the client and consented to scopes (full scope strings, e.g.
// "https://service.flow.microsoft.com/Flows.Read.All"), without a browser.
// Any Sim built with the same KeySeed accepts it. <resource>/.default is expanded
// as the consent page would.
func (s *Entra) IssueRefreshToken(tenantID, objectID, clientID string, scopes []string) string {
	return s.st.issueRefresh(strings.ToLower(tenantID), strings.ToLower(objectID), clientID, expandDefault(scopes))
}

// RevokeRefreshTokens makes every refresh token of the user issued so far
// fail with invalid_grant (as when an admin revokes sessions), in this Sim.
func (s *Entra) RevokeRefreshTokens(tenantID, objectID string) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	s.st.revoked[strings.ToLower(tenantID)+"."+strings.ToLower(objectID)] = s.now().UnixNano()
}

func consentKey(tid, oid, clientID string) string { return tid + "." + oid + "." + clientID }

// addConsent adds scopes to what the user consented to for the client and
// returns the whole consent.
func (e *entraState) addConsent(tid, oid, clientID string, scopes ...[]string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := consentKey(tid, oid, clientID)
	all := slices.Clone(e.consents[k])
	for _, list := range scopes {
		for _, sc := range list {
			if !slices.Contains(all, sc) {
				all = append(all, sc)
			}
		}
	}
	e.consents[k] = all
	return slices.Clone(all)
}

// consentCookie remembers, in the browser, what a user consented to, sealed
// like refresh tokens: a restarted Sim adds to it instead of starting over.
const consentCookie = "sim-entra-consent"

type consentClaims struct {
	Key    string   `json:"k"` // consentKey
	Scopes []string `json:"scp"`
}

func (e *entraState) sealConsent(c consentClaims) string {
	plain, _ := json.Marshal(c)
	nonce := make([]byte, e.rtKey.NonceSize())
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(e.rtKey.Seal(nonce, nonce, plain, []byte(consentCookie)))
}

func (e *entraState) openConsent(value string) *consentClaims {
	sealed, err := base64.RawURLEncoding.DecodeString(value)
	n := e.rtKey.NonceSize()
	if err != nil || len(sealed) < n {
		return nil
	}
	plain, err := e.rtKey.Open(nil, sealed[:n], sealed[n:], []byte(consentCookie))
	if err != nil {
		return nil
	}
	var c consentClaims
	if json.Unmarshal(plain, &c) != nil {
		return nil
	}
	return &c
}

// expandDefault turns <resource>/.default into the permission the app
// registration lists for the resource, where it lists one.
func expandDefault(scopes []string) []string {
	out := make([]string, 0, len(scopes))
	for _, sc := range scopes {
		if res, perm, err := parseScope(sc); err == nil && res != nil && perm == ".default" && res.configured != "" {
			sc = res.prefix + res.configured
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

func (e *entraState) issueRefresh(tid, oid, clientID string, scopes []string) string {
	e.mu.Lock()
	ttl := e.refreshTTL
	e.mu.Unlock()
	now := e.now()
	c := refreshClaims{ID: rand.Text(), TenantID: tid, ObjectID: oid, ClientID: clientID,
		Scopes: slices.Clone(scopes), IssuedAt: now.UnixNano(), Expires: now.Add(ttl).Unix()}
	plain, _ := json.Marshal(c)
	nonce := make([]byte, e.rtKey.NonceSize())
	rand.Read(nonce)
	sealed := e.rtKey.Seal(nonce, nonce, plain, []byte(refreshPrefix))
	return refreshPrefix + base64.RawURLEncoding.EncodeToString(sealed)
}

// openRefresh returns the claims of a refresh token this seed sealed, or nil.
func (e *entraState) openRefresh(token string) *refreshClaims {
	raw, ok := strings.CutPrefix(token, refreshPrefix)
	if !ok {
		return nil
	}
	sealed, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(sealed) < e.rtKey.NonceSize() {
		return nil
	}
	n := e.rtKey.NonceSize()
	plain, err := e.rtKey.Open(nil, sealed[:n], sealed[n:], []byte(refreshPrefix))
	if err != nil {
		return nil
	}
	var c refreshClaims
	if json.Unmarshal(plain, &c) != nil || c.ID == "" || c.TenantID == "" || c.ObjectID == "" {
		return nil
	}
	return &c
}

// entraTenant is the {tenant} of a request: a template (organizations,
// common) or one tenant.
type entraTenant struct {
	segment  string // as requested, lower-cased
	template bool
	id       string // the tenant id when not a template
}

func (s *Entra) resolveTenant(segment string) (entraTenant, bool) {
	seg := strings.ToLower(segment)
	switch seg {
	case "organizations", "common":
		return entraTenant{segment: seg, template: true}, true
	}
	if id, _, ok := s.dir.Tenant(seg); ok {
		return entraTenant{segment: seg, id: id}, true
	}
	return entraTenant{}, false
}

// allows reports whether a user of tenant tid may sign in here.
func (t entraTenant) allows(tid string) bool { return t.template || t.id == tid }

// Serve answers a request for path (below the stand-in's mount) as the stand-in
// reached at authority (its external URL, e.g. http://127.0.0.1:8080/sim/entra).
func (s *Entra) Serve(w http.ResponseWriter, r *http.Request, authority, path string) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", s.entraDiscovery)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", s.entraKeys)
	mux.HandleFunc("GET /{tenant}/oauth2/v2.0/authorize", s.entraAuthorize)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/authorize", s.entraAuthorize)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.entraToken)
	mux.HandleFunc("GET "+ManagedIdentityPath, s.managedIdentityToken)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "AADSTS900561: The endpoint only accepts the documented methods and paths.", http.StatusNotFound)
	})
	routed := r.Clone(context.WithValue(r.Context(), authorityKey{}, strings.TrimRight(authority, "/")))
	routed.URL.Path = path
	routed.URL.RawPath = ""
	mux.ServeHTTP(w, routed)
}

type authorityKey struct{}

// authority is the stand-in's authority URL as this request reached it.
func authority(r *http.Request) string { return r.Context().Value(authorityKey{}).(string) }

func (s *Entra) entraDiscovery(w http.ResponseWriter, r *http.Request) {
	t, ok := s.resolveTenant(r.PathValue("tenant"))
	if !ok {
		entraError(w, http.StatusBadRequest, "invalid_tenant", 90002, "Tenant '"+r.PathValue("tenant")+"' not found.")
		return
	}
	base := authority(r) + "/" + t.segment
	issuer := authority(r) + "/{tenantid}/v2.0"
	if !t.template {
		base = authority(r) + "/" + t.id
		issuer = base + "/v2.0"
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=86400, private")
	json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                issuer,
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query"},
		"subject_types_supported":               []string{"pairwise"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic", "private_key_jwt"},
		"code_challenge_methods_supported":      []string{"S256"},
		"claims_supported": []string{"sub", "iss", "aud", "exp", "iat", "nbf", "nonce", "tid", "oid", "email",
			"preferred_username", "name", "ver"},
		"request_uri_parameter_supported": false,
		"tenant_region_scope":             nil,
		"cloud_instance_name":             "microsoftonline.com",
	})
}

func (s *Entra) entraKeys(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.resolveTenant(r.PathValue("tenant")); !ok {
		entraError(w, http.StatusBadRequest, "invalid_tenant", 90002, "Tenant '"+r.PathValue("tenant")+"' not found.")
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=86400, private")
	w.Write(s.signer.JWKS())
}

// ---- authorize: sign-in page, consent page, redirect ----

// authorizeRequest is a validated authorize query.
type authorizeRequest struct {
	tenant      entraTenant
	client      Client
	redirectURI string
	state       string
	nonce       string
	challenge   string
	loginHint   string
	scopes      []string
}

func (s *Entra) entraAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	t, ok := s.resolveTenant(r.PathValue("tenant"))
	if !ok {
		s.entraPage(w, http.StatusBadRequest, pageData{Title: "Sign in", Error: "AADSTS90002: Tenant '" + r.PathValue("tenant") + "' not found."})
		return
	}
	s.st.mu.Lock()
	client, ok := s.st.clients[q.Get("client_id")]
	s.st.mu.Unlock()
	if !ok {
		s.entraPage(w, http.StatusBadRequest, pageData{Title: "Sign in", Error: "AADSTS700016: Application with identifier '" +
			q.Get("client_id") + "' was not found in the directory."})
		return
	}
	redirectURI := q.Get("redirect_uri")
	if !redirectAllowed(client, redirectURI) {
		s.entraPage(w, http.StatusBadRequest, pageData{Title: "Sign in", Error: "AADSTS50011: The redirect URI '" + redirectURI +
			"' specified in the request does not match the redirect URIs configured for the application '" + client.ID + "'."})
		return
	}
	// From here on errors go back to the app, as Entra does.
	ar := authorizeRequest{tenant: t, client: client, redirectURI: redirectURI, state: q.Get("state"), nonce: q.Get("nonce"),
		challenge: q.Get("code_challenge"), loginHint: q.Get("login_hint"), scopes: strings.Fields(q.Get("scope"))}
	fail := func(code string, aadsts int, msg string) {
		redirectWith(w, r, redirectURI, url.Values{"error": {code}, "error_description": {fmt.Sprintf("AADSTS%d: %s", aadsts, msg)}, "state": {ar.state}})
	}
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", 700054, "response_type must be 'code'.")
		return
	case q.Get("response_mode") != "" && q.Get("response_mode") != "query":
		fail("invalid_request", 900144, "Only response_mode=query is supported here.")
		return
	case !slices.Contains(ar.scopes, "openid"):
		fail("invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid: it must include 'openid'.")
		return
	case ar.challenge == "":
		fail("invalid_request", 9002325, "Proof Key for Code Exchange is required: send code_challenge.")
		return
	case q.Get("code_challenge_method") != "S256":
		fail("invalid_request", 501491, "code_challenge_method must be 'S256'.")
		return
	case len(ar.challenge) != 43:
		fail("invalid_request", 501491, "Invalid size of Code_Challenge parameter.")
		return
	}
	for _, sc := range ar.scopes {
		if _, _, err := parseScope(sc); err != nil {
			fail("invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid: "+err.Error())
			return
		}
	}
	if r.Method == http.MethodGet {
		s.entraSignInPage(w, r, ar, "")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	email := strings.ToLower(strings.TrimSpace(r.PostForm.Get("login_email")))
	if e := strings.TrimSpace(r.PostForm.Get("email")); email == "" && e != "" {
		email = strings.ToLower(e)
	}
	if !validEmail(email) {
		s.entraSignInPage(w, r, ar, "Enter an email address, like alice@contoso.com.")
		return
	}
	tid, oid := s.dir.UserFor(email)
	if !ar.tenant.allows(tid) {
		s.entraSignInPage(w, r, ar, "AADSTS50020: User account '"+email+"' from another tenant does not exist in this tenant.")
		return
	}
	switch r.PostForm.Get("consent") {
	case "":
		s.entraConsentPage(w, r, ar, email, tid)
	case "cancel":
		fail("access_denied", 65004, "User declined to consent to access the app.")
	case "accept":
		asked := expandDefault(ar.scopes)
		key := consentKey(tid, oid, client.ID)
		var remembered []string
		if ck, err := r.Cookie(consentCookie); err == nil {
			if c := s.st.openConsent(ck.Value); c != nil && c.Key == key {
				remembered = c.Scopes
			}
		}
		consented := s.st.addConsent(tid, oid, client.ID, remembered, asked)
		http.SetCookie(w, &http.Cookie{Name: consentCookie, Value: s.st.sealConsent(consentClaims{Key: key, Scopes: consented}),
			Path: entraCookiePath(r), HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil})
		code := rand.Text() + rand.Text()
		s.st.mu.Lock()
		now := s.now()
		for k, c := range s.st.codes { // prune
			if now.After(c.expires) {
				delete(s.st.codes, k)
			}
		}
		s.st.codes[code] = &authCode{clientID: client.ID, redirectURI: redirectURI, challenge: ar.challenge, nonce: ar.nonce,
			tenantID: tid, objectID: oid, email: email, scopes: asked, consented: consented, expires: now.Add(codeTTL)}
		s.st.mu.Unlock()
		redirectWith(w, r, redirectURI, url.Values{"code": {code}, "state": {ar.state}, "session_state": {uuid.NewString()}})
	default:
		http.Error(w, "bad form", http.StatusBadRequest)
	}
}

// entraCookiePath is the path of the stand-in's pages as the browser sees them.
func entraCookiePath(r *http.Request) string {
	if u, err := url.Parse(authority(r)); err == nil && u.Path != "" {
		return u.Path
	}
	return "/"
}

func validEmail(email string) bool {
	local, domain, ok := strings.Cut(email, "@")
	return ok && local != "" && strings.Contains(domain, ".") && len(email) <= 254 && !strings.ContainsAny(email, " \t\r\n<>\"'")
}

// redirectAllowed is Entra's exact match, plus any port for loopback.
func redirectAllowed(c Client, uri string) bool {
	if uri == "" {
		return false
	}
	if slices.Contains(c.RedirectURIs, uri) {
		return true
	}
	if !c.LoopbackRedirects {
		return false
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "http" || u.Path != "/callback" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return false
	}
	host := u.Hostname()
	if _, port, err := net.SplitHostPort(u.Host); err == nil {
		if _, err := strconv.Atoi(port); err != nil {
			return false
		}
	}
	return host == "127.0.0.1" || host == "localhost" || host == "::1"
}

func redirectWith(w http.ResponseWriter, r *http.Request, target string, v url.Values) {
	u, _ := url.Parse(target)
	q := u.Query()
	for k, vals := range v {
		if len(vals) > 0 && vals[0] != "" {
			q.Set(k, vals[0])
		}
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

type pageData struct {
	Title, Error, Action, Hint string
	Users                      []Person
	Email, TenantName, AppID   string
	Scopes                     []string
}

func (s *Entra) entraSignInPage(w http.ResponseWriter, r *http.Request, ar authorizeRequest, errMsg string) {
	var users []Person
	for _, u := range s.dir.People() {
		if tid, _ := s.dir.UserFor(u.Email); ar.tenant.allows(tid) {
			users = append(users, u)
		}
	}
	status := http.StatusOK
	if errMsg != "" {
		status = http.StatusBadRequest
	}
	s.entraPage(w, status, pageData{Title: "Sign in to your account", Error: errMsg, Action: "authorize?" + r.URL.RawQuery,
		Users: users, Hint: ar.loginHint, AppID: ar.client.ID})
}

func (s *Entra) entraConsentPage(w http.ResponseWriter, r *http.Request, ar authorizeRequest, email, tid string) {
	name := tid
	if _, n, ok := s.dir.Tenant(tid); ok {
		name = n
	}
	s.entraPage(w, http.StatusOK, pageData{Title: "Permissions requested", Action: "authorize?" + r.URL.RawQuery, Email: email,
		TenantName: name, AppID: ar.client.ID, Scopes: describeScopes(ar.scopes)})
}

// describeScopes turns scope strings into lines a person can read.
func describeScopes(scopes []string) []string {
	known := map[string]string{
		"openid":         "Sign you in",
		"profile":        "View your basic profile",
		"email":          "View your email address",
		"offline_access": "Maintain access to data you have given it access to",
		"Flows.Read.All": "Read your flows (Power Automate)", "Flows.Manage.All": "Manage your flows (Power Automate)",
		"Activity.Read.All": "Read your flow activity (Power Automate)", "User": "Access Power Apps as you",
	}
	byResource := map[string]string{
		"apihub.azure.com/user_impersonation":      "Use your Power Platform connections through the connector runtime",
		"api.powerplatform.com/user_impersonation": "Manage your Power Platform connections",
		dynamicsCRM + "/user_impersonation":        "Access your environments' Dataverse as you",
	}
	var out []string
	for _, sc := range scopes {
		res, perm, _ := parseScope(sc)
		if res != nil && perm == ".default" {
			perm = res.configured
		}
		line := sc
		if res != nil && byResource[res.key+"/"+perm] != "" {
			line = byResource[res.key+"/"+perm] + " — " + sc
		} else if d, ok := known[perm]; ok {
			line = d + " — " + sc
		}
		out = append(out, line)
	}
	return out
}

// entraCSS is the pages' only style; the CSP allows exactly this text.
const entraCSS = `body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.5rem}ul{padding-left:1.2rem}li{margin:.3rem 0}
button{font:inherit;padding:.5rem 1rem;margin:.2rem 0;cursor:pointer}
.users button{display:block;width:100%;text-align:left}
.error{color:#a80000;border:1px solid #a80000;padding:.5rem}
label{display:block;margin:.8rem 0 .3rem}input{font:inherit;padding:.4rem;width:100%;box-sizing:border-box}
.note{color:#555;font-size:.9rem}`

var entraCSP = func() string {
	sum := sha256.Sum256([]byte(entraCSS))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; frame-ancestors 'none'; base-uri 'none'"
}()

var entraPageTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("entra").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Title}} — simulated Microsoft Entra ID</title><style>{{.CSS}}</style></head>
<body><main>
<p class="note">Simulated Microsoft Entra ID (FlowStudio embedded mode). No password: pick a person.</p>
<h1>{{.Title}}</h1>
{{with .Error}}<p class="error" role="alert" id="error">{{.}}</p>{{end}}
{{if .Scopes}}
<p><strong>{{.AppID}}</strong> wants to, as <strong id="signed-in-as">{{.Email}}</strong> ({{.TenantName}}):</p>
<ul id="scopes">{{range .Scopes}}<li>{{.}}</li>{{end}}</ul>
<form method="post" action="{{.Action}}">
<input type="hidden" name="login_email" value="{{.Email}}">
<button type="submit" id="accept" name="consent" value="accept">Accept</button>
<button type="submit" id="cancel" name="consent" value="cancel">Cancel</button>
</form>
{{else if .Action}}
<p>to continue to <strong>{{.AppID}}</strong></p>
<form method="post" action="{{.Action}}" class="users" aria-label="Simulated people">
{{range .Users}}<button type="submit" name="login_email" value="{{.Email}}">{{.Email}} — {{.Name}}, {{.Tenant}}</button>
{{end}}</form>
<form method="post" action="{{.Action}}">
<label for="email">Or another email address (contoso.com and others sign in to Contoso, fabrikam.com to Fabrikam)</label>
<input id="email" name="email" type="email" autocomplete="username" value="{{.Hint}}" required>
<button type="submit" id="next">Next</button>
</form>
{{end}}
</main></body></html>
`))
}) // parsed on first use: serve with a remote simulator never shows it

func (s *Entra) entraPage(w http.ResponseWriter, status int, d pageData) {
	var buf bytes.Buffer
	err := entraPageTmpl().Execute(&buf, struct {
		pageData
		CSS template.CSS
	}{d, template.CSS(entraCSS)})
	if err != nil {
		http.Error(w, "page error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", entraCSP)
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// ---- token endpoint ----

// entraError writes Entra's OAuth error body.
func entraError(w http.ResponseWriter, status int, code string, aadsts int, msg string, suberror ...string) {
	body := map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", aadsts, msg, uuid.NewString(), uuid.NewString(), time.Now().UTC().Format("2006-01-02 15:04:05Z")),
		"error_codes":       []int{aadsts},
		"timestamp":         time.Now().UTC().Format("2006-01-02 15:04:05Z"),
		"trace_id":          uuid.NewString(),
		"correlation_id":    uuid.NewString(),
		"error_uri":         "https://login.microsoftonline.com/error?code=" + strconv.Itoa(aadsts),
	}
	if len(suberror) > 0 {
		body["suberror"] = suberror[0]
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="sim"`)
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

func (s *Entra) entraToken(w http.ResponseWriter, r *http.Request) {
	t, ok := s.resolveTenant(r.PathValue("tenant"))
	if !ok {
		entraError(w, http.StatusBadRequest, "invalid_request", 90002, "Tenant '"+r.PathValue("tenant")+"' not found.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		entraError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must be application/x-www-form-urlencoded.")
		return
	}
	f := r.PostForm
	clientID, secret, basic := r.BasicAuth()
	if basic {
		clientID, _ = url.QueryUnescape(clientID)
		secret, _ = url.QueryUnescape(secret)
	} else {
		clientID, secret = f.Get("client_id"), f.Get("client_secret")
	}
	s.st.mu.Lock()
	client, known := s.st.clients[clientID]
	s.st.mu.Unlock()
	switch {
	case clientID == "":
		entraError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
		return
	case !known:
		entraError(w, http.StatusBadRequest, "unauthorized_client", 700016, "Application with identifier '"+clientID+"' was not found in the directory.")
		return
	case secret == "" && (f.Has("client_assertion") || f.Has("client_assertion_type")):
		if !s.federatedClientOK(w, r, client) {
			return
		}
	case secret == "":
		entraError(w, http.StatusUnauthorized, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	case f.Has("client_assertion"):
		entraError(w, http.StatusBadRequest, "invalid_request", 7000219, "Only one of 'client_assertion' or 'client_secret' may be presented.")
		return
	case client.Secret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(client.Secret)) != 1:
		entraError(w, http.StatusUnauthorized, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.")
		return
	}
	switch f.Get("grant_type") {
	case "authorization_code":
		s.redeemCode(w, r, t, client)
	case "refresh_token":
		s.redeemRefresh(w, r, t, client)
	case "":
		entraError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
	default:
		entraError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, "The app requested an unsupported grant type '"+f.Get("grant_type")+"'.")
	}
}

func (s *Entra) redeemCode(w http.ResponseWriter, r *http.Request, t entraTenant, client Client) {
	f := r.PostForm
	s.st.mu.Lock()
	c := s.st.codes[f.Get("code")]
	var prior bool
	if c != nil && c.clientID == client.ID {
		prior, c.used = c.used, true // a code is burned by its first redemption attempt
	}
	s.st.mu.Unlock()
	switch {
	case c == nil || c.clientID != client.ID:
		entraError(w, http.StatusBadRequest, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid: the authorization code is not known.")
		return
	case prior:
		entraError(w, http.StatusBadRequest, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.")
		return
	case s.now().After(c.expires):
		entraError(w, http.StatusBadRequest, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity.")
		return
	case f.Get("redirect_uri") != c.redirectURI:
		entraError(w, http.StatusBadRequest, "invalid_grant", 500112, "The reply address '"+f.Get("redirect_uri")+"' does not match the reply address provided when requesting Authorization code.")
		return
	case !t.allows(c.tenantID):
		entraError(w, http.StatusBadRequest, "invalid_grant", 700005, "Provided Authorization Code is intended to use against other tenant, thus rejected.")
		return
	case !pkceMatches(f.Get("code_verifier"), c.challenge):
		entraError(w, http.StatusBadRequest, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.")
		return
	}
	// The access token is for the first resource asked for, here or at authorize.
	want := expandDefault(strings.Fields(f.Get("scope")))
	if len(want) == 0 {
		want = c.scopes
	}
	var resource string
	for _, sc := range want {
		if res, _, err := parseScope(sc); err == nil && res != nil {
			resource = res.key
			break
		}
	}
	var req []string
	for _, sc := range want {
		if res, _, err := parseScope(sc); err == nil && res != nil && res.key == resource {
			req = append(req, sc)
		}
	}
	var idScopes []string
	if slices.Contains(c.scopes, "openid") {
		idScopes = c.scopes
	}
	s.respondTokens(w, r, c.tenantID, c.objectID, client.ID, c.consented, req, c.nonce, idScopes)
}

func pkceMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

func (s *Entra) redeemRefresh(w http.ResponseWriter, r *http.Request, t entraTenant, client Client) {
	f := r.PostForm
	rt := s.st.openRefresh(f.Get("refresh_token"))
	if rt == nil {
		entraError(w, http.StatusBadRequest, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid: the refresh token is not valid.")
		return
	}
	if rt.ClientID != client.ID {
		entraError(w, http.StatusBadRequest, "invalid_grant", 700024, "The refresh token was issued to another client.")
		return
	}
	if !t.allows(rt.TenantID) {
		entraError(w, http.StatusBadRequest, "invalid_grant", 9002313, "Invalid request. The refresh token belongs to another tenant.")
		return
	}
	want := strings.Fields(f.Get("scope"))
	if len(want) == 0 {
		entraError(w, http.StatusBadRequest, "invalid_request", 90014, "The required field 'scope' is missing from the credential.")
		return
	}
	var resource *resourceInfo
	var perms []string
	for _, sc := range want {
		res, perm, err := parseScope(sc)
		if errors.Is(err, errUnknownResource) {
			entraError(w, http.StatusBadRequest, "invalid_resource", 500011, "The resource principal named "+sc+" was not found in the tenant.")
			return
		}
		if err != nil {
			entraError(w, http.StatusBadRequest, "invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid: "+err.Error())
			return
		}
		if res == nil {
			continue // openid, profile, email, offline_access
		}
		if resource != nil && resource.key != res.key {
			entraError(w, http.StatusBadRequest, "invalid_request", 28000, "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope "+f.Get("scope")+" is not valid.")
			return
		}
		resource = res
		perms = append(perms, perm)
	}
	if resource == nil {
		entraError(w, http.StatusBadRequest, "invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid: it names no resource.")
		return
	}
	// A valid refresh token proves what its holder consented to; that and
	// what they consented to since is the consent now.
	userConsent := s.st.addConsent(rt.TenantID, rt.ObjectID, client.ID, rt.Scopes)
	consented := consentedPerms(userConsent, resource.key)
	if slices.Contains(perms, ".default") {
		perms = consented
	}
	for _, p := range perms {
		if !slices.Contains(consented, p) {
			entraError(w, http.StatusBadRequest, "invalid_grant", 65001, "The user or administrator has not consented to use the application with ID '"+
				client.ID+"'. Send an interactive authorization request for this user and resource.", "consent_required")
			return
		}
	}
	if len(perms) == 0 {
		entraError(w, http.StatusBadRequest, "invalid_grant", 65001, "The user or administrator has not consented to use the application with ID '"+
			client.ID+"' for resource '"+resource.aud+"'.", "consent_required")
		return
	}
	// Rotation and revocation: check and mark under one lock, so two
	// redemptions of one token cannot both succeed.
	s.st.mu.Lock()
	now := s.now()
	var refusal func()
	switch {
	case now.Unix() >= rt.Expires:
		refusal = func() {
			entraError(w, http.StatusBadRequest, "invalid_grant", 700082, "The refresh token has expired due to inactivity.")
		}
	case rt.IssuedAt < s.st.revoked[rt.TenantID+"."+rt.ObjectID]:
		refusal = func() {
			entraError(w, http.StatusBadRequest, "invalid_grant", 50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed.")
		}
	case s.st.used[rt.ID] != 0:
		refusal = func() {
			entraError(w, http.StatusBadRequest, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. (This refresh token was already redeemed: the simulator rotates refresh tokens, so use the one returned with it.)")
		}
	}
	if refusal == nil {
		for id, exp := range s.st.used { // prune what has expired anyway
			if exp < now.Unix() {
				delete(s.st.used, id)
			}
		}
		s.st.used[rt.ID] = rt.Expires
	}
	s.st.mu.Unlock()
	if refusal != nil {
		refusal()
		return
	}
	req := make([]string, len(perms))
	for i, p := range perms {
		req[i] = resource.prefix + p
	}
	var idScopes []string
	if slices.Contains(want, "openid") {
		idScopes = userConsent
	}
	s.respondTokens(w, r, rt.TenantID, rt.ObjectID, client.ID, userConsent, req, "", idScopes)
}

// respondTokens answers a successful redemption: an access token for the
// scopes in req (one resource, may be empty), a new refresh token serving
// everything consented when offline_access is among it, and an id_token when
// idScopes (the OpenID scopes that decide its claims) is not nil.
func (s *Entra) respondTokens(w http.ResponseWriter, r *http.Request, tid, oid, clientID string, consented, req []string, nonce string, idScopes []string) {
	s.st.mu.Lock()
	accessTTL := s.st.accessTTL
	s.st.mu.Unlock()
	out := map[string]any{"token_type": "Bearer"}
	if len(req) > 0 {
		res, _, _ := parseScope(req[0])
		var perms []string
		for _, sc := range req {
			_, p, _ := parseScope(sc)
			perms = append(perms, p)
		}
		if slices.Contains(perms, ".default") {
			perms = consentedPerms(consented, res.key)
			req = req[:0]
			for _, p := range perms {
				req = append(req, res.prefix+p)
			}
		}
		out["access_token"] = s.signer.MintAccessToken(tid, oid, res.aud, perms, accessTTL)
		out["scope"] = strings.Join(req, " ")
		out["expires_in"] = int(accessTTL.Seconds())
		out["ext_expires_in"] = int(accessTTL.Seconds())
	}
	if slices.Contains(consented, "offline_access") {
		out["refresh_token"] = s.st.issueRefresh(tid, oid, clientID, consented)
	}
	if idScopes != nil {
		out["id_token"] = s.idToken(r, tid, oid, clientID, nonce, idScopes)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	json.NewEncoder(w).Encode(out)
}

// IDClaims are the claims of a v2.0 id_token.
type IDClaims struct {
	jwt.RegisteredClaims
	Nonce             string `json:"nonce,omitempty"`
	TenantID          string `json:"tid"`
	ObjectID          string `json:"oid,omitempty"`
	Email             string `json:"email,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Name              string `json:"name,omitempty"`
	Version           string `json:"ver"`
}

// idToken signs a v2.0 id_token. As in Entra, oid, name and
// preferred_username come only with the profile scope, email only with email.
func (s *Entra) idToken(r *http.Request, tid, oid, clientID, nonce string, scopes []string) string {
	email := s.dir.Email(oid)
	name := ""
	if local, _, ok := strings.Cut(email, "@"); ok && local != "" {
		name = strings.ToUpper(local[:1]) + local[1:]
	}
	sub := sha256.Sum256([]byte(oid + "\x00" + clientID))
	now := s.now()
	c := IDClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    authority(r) + "/" + tid + "/v2.0",
			Subject:   base64.RawURLEncoding.EncodeToString(sub[:]),
			Audience:  jwt.ClaimStrings{clientID},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		},
		Nonce: nonce, TenantID: tid, Version: "2.0",
	}
	if slices.Contains(scopes, "profile") {
		c.ObjectID, c.PreferredUsername, c.Name = oid, email, name
	}
	if slices.Contains(scopes, "email") {
		c.Email = email
	}
	return s.signer.Sign(c)
}

// ---- scopes and resources ----

// resourceInfo is a resource (API) that tokens can be asked for.
type resourceInfo struct {
	key    string // lower-case host
	aud    string // the aud of its access tokens
	prefix string // what goes before a permission in a scope string
	// configured is the permission the dev app registration lists for the
	// resource: what <resource>/.default asks a user to consent to ("" none).
	// Like any other, it needs the user's consent.
	configured string
}

var resources = map[string]*resourceInfo{
	"service.flow.microsoft.com": {key: "service.flow.microsoft.com", aud: "https://service.flow.microsoft.com/", prefix: "https://service.flow.microsoft.com/"},
	"service.powerapps.com":      {key: "service.powerapps.com", aud: "https://service.powerapps.com/", prefix: "https://service.powerapps.com/"},
	"apihub.azure.com":           {key: "apihub.azure.com", aud: "https://apihub.azure.com", prefix: "https://apihub.azure.com/", configured: "user_impersonation"},
	"api.powerplatform.com":      {key: "api.powerplatform.com", aud: "https://api.powerplatform.com", prefix: "https://api.powerplatform.com/", configured: "user_impersonation"},
	"graph.microsoft.com":        {key: "graph.microsoft.com", aud: "https://graph.microsoft.com", prefix: "https://graph.microsoft.com/"},
}

var errUnknownResource = errors.New("AADSTS500011")

// dynamicsCRM is the resource key shared by every Dataverse organisation host.
const dynamicsCRM = "dynamics-crm"

var oidcScopes = []string{"openid", "profile", "email", "offline_access"}

// parseScope splits a scope string into its resource and permission. OpenID
// scopes have no resource (nil); a bare permission ("User.Read") is Graph's.
func parseScope(sc string) (*resourceInfo, string, error) {
	if slices.Contains(oidcScopes, sc) {
		return nil, sc, nil
	}
	i := strings.LastIndex(sc, "/")
	if i < 0 {
		return resources["graph.microsoft.com"], sc, nil
	}
	perm := sc[i+1:]
	u, err := url.Parse(strings.TrimRight(sc[:i+1], "/"))
	if err != nil || u.Scheme != "https" || u.Host == "" || perm == "" {
		return nil, "", fmt.Errorf("scope %q is not <resource>/<permission>", sc)
	}
	host := strings.ToLower(u.Host)
	if powerautomate.IsDataverseHost(host) {
		// Every Dataverse organisation is the one Dynamics CRM resource app: a
		// consent given through any org URL serves all; tokens carry the org's URL.
		return &resourceInfo{key: dynamicsCRM, aud: "https://" + host, prefix: "https://" + host + "/", configured: "user_impersonation"}, perm, nil
	}
	res, ok := resources[host]
	if !ok {
		return nil, "", fmt.Errorf("%w: the resource principal named %s was not found in the tenant", errUnknownResource, u.Host)
	}
	return res, perm, nil
}

// consentedPerms are the permissions on resource among consented scopes.
func consentedPerms(consented []string, resource string) []string {
	var out []string
	for _, sc := range consented {
		if res, p, err := parseScope(sc); err == nil && res != nil && res.key == resource && p != ".default" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}
