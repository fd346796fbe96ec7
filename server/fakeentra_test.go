package server

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowstudio/mcp/server/identity"
	"github.com/golang-jwt/jwt/v5"
)

// fakeEntra is an Entra ID stand-in the attack tests control: Entra's paths under
// /{tenant}/, discovery whose issuer is the {tenantid} template for "organizations",
// an authorize endpoint that approves at once, a token endpoint that checks PKCE, the
// client secret and one-time codes, and hooks to spoil the next id_token.
type fakeEntra struct {
	t        *testing.T
	srv      *httptest.Server
	key      *rsa.PrivateKey
	kid      string
	clientID string
	secret   string

	mu       sync.Mutex
	user     fakeUser
	grants   map[string]*fakeGrant // by code, deleted when redeemed
	spoil    func(jwt.MapClaims)   // applied to the next id_token
	foreign  *rsa.PrivateKey       // when set, signs the next id_token instead of key
	noRT     bool                  // next token response carries no refresh token
	hs256    bool                  // next id_token is HS256 with the client secret as key
	issued   []string              // every token and code handed out
	scopes   []string              // scopes of the last authorize request
	query    url.Values            // the last authorize request's query
	denyWith string                // authorize answers with this error
	// scope, when set, is the scope value of the next token response; otherwise it
	// lists the scopes asked for of the first resource, as Entra does.
	scope string
}

type fakeUser struct{ tid, oid, email, name string }

type fakeGrant struct {
	nonce, challenge, redirect string
	user                       fakeUser
	scopes                     []string
}

const (
	fakeTenant = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
	fakeOID    = "9f8e7d6c-5b4a-4392-8180-7f6e5d4c3b2a"
	fakeEmail  = "Dana.Tester@Contoso-Test.example"
)

var testRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

var foreignRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// newEntraHarness is the start of most web tests: a fake Entra ID of the
// test's own, a web harness that signs in with it, and a browser.
func newEntraHarness(t *testing.T) (*fakeEntra, *webHarness, *http.Client) {
	t.Helper()
	fe := newFakeEntra(t)
	h := newWebHarness(t, webOptions{entra: fe.config()})
	return fe, h, h.browser(t)
}

func newFakeEntra(t *testing.T) *fakeEntra {
	t.Helper()
	f := &fakeEntra{t: t, key: testRSAKey(), kid: "fake-key-1", clientID: "11111111-2222-3333-4444-555555555555",
		secret: "fake-client-secret", grants: map[string]*fakeGrant{},
		user: fakeUser{tid: fakeTenant, oid: fakeOID, email: fakeEmail, name: "Dana Tester"}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", f.discovery)
	mux.HandleFunc("GET /{tenant}/oauth2/v2.0/authorize", f.authorize)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", f.token)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", f.keys)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeEntra) url() string { return f.srv.URL }

func (f *fakeEntra) config() identity.App {
	return identity.App{Authority: f.srv.URL, Tenant: "organizations", ClientID: f.clientID, ClientSecret: f.secret}
}

func (f *fakeEntra) issuer(tid string) string { return f.srv.URL + "/" + tid + "/v2.0" }

func (f *fakeEntra) discovery(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	iss := f.issuer(tenant)
	if tenant == "organizations" || tenant == "common" {
		iss = f.issuer("{tenantid}")
	}
	base := f.srv.URL + "/" + tenant
	writeTestJSON(w, 200, map[string]any{
		"issuer":                                iss,
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
	})
}

func (f *fakeEntra) keys(w http.ResponseWriter, _ *http.Request) {
	pub := f.key.PublicKey
	b64 := base64.RawURLEncoding.EncodeToString
	writeTestJSON(w, 200, map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": f.kid,
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

func (f *fakeEntra) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Host == "" {
		http.Error(w, "bad redirect_uri", 400)
		return
	}
	if q.Get("client_id") != f.clientID || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" {
		http.Error(w, "bad authorize request", 400)
		return
	}
	f.mu.Lock()
	f.scopes = strings.Fields(q.Get("scope"))
	f.query = q
	back := redirect.Query()
	if f.denyWith != "" {
		back.Set("error", f.denyWith)
		back.Set("error_description", "AADSTS65004: User declined to consent <script>alert(1)</script>")
	} else {
		code := "code-" + rand.Text()
		f.grants[code] = &fakeGrant{nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri"), user: f.user,
			scopes: f.scopes}
		f.issued = append(f.issued, code)
		back.Set("code", code)
	}
	back.Set("state", q.Get("state"))
	f.mu.Unlock()
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (f *fakeEntra) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", 400)
		return
	}
	fail := func(code string) {
		writeTestJSON(w, 400, map[string]string{"error": code, "error_description": "AADSTS70008: secret detail"})
	}
	p := r.PostForm
	if p.Get("client_id") != f.clientID || p.Get("client_secret") != f.secret {
		fail("invalid_client")
		return
	}
	if p.Get("grant_type") != "authorization_code" {
		fail("unsupported_grant_type")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.grants[p.Get("code")]
	delete(f.grants, p.Get("code")) // one use, even when it fails below
	if !ok {
		fail("invalid_grant")
		return
	}
	sum := sha256.Sum256([]byte(p.Get("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge || p.Get("redirect_uri") != g.redirect {
		fail("invalid_grant")
		return
	}
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": f.issuer(g.user.tid), "aud": f.clientID, "sub": "pairwise-" + g.user.oid,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"tid": g.user.tid, "oid": g.user.oid, "nonce": g.nonce, "name": g.user.name,
		"preferred_username": g.user.email, "email": g.user.email, "ver": "2.0",
	}
	if f.spoil != nil {
		f.spoil(claims)
		f.spoil = nil
	}
	signer := f.key
	if f.foreign != nil {
		signer, f.foreign = f.foreign, nil
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	var key any = signer
	if f.hs256 {
		tok, key, f.hs256 = jwt.NewWithClaims(jwt.SigningMethodHS256, claims), []byte(f.secret), false
	}
	tok.Header["kid"] = f.kid
	idToken, err := tok.SignedString(key)
	if err != nil {
		f.t.Errorf("fake entra: sign: %v", err)
		http.Error(w, "sign", 500)
		return
	}
	access, refresh := "at-"+rand.Text()+rand.Text(), "rt-"+rand.Text()+rand.Text()
	f.issued = append(f.issued, idToken, access, refresh)
	body := map[string]any{"token_type": "Bearer", "expires_in": 3600, "scope": firstResourceScopes(g.scopes),
		"access_token": access, "id_token": idToken, "refresh_token": refresh}
	if f.scope != "" {
		body["scope"], f.scope = f.scope, ""
	}
	if f.noRT {
		delete(body, "refresh_token")
		f.noRT = false
	}
	w.Header().Set("Cache-Control", "no-store")
	writeTestJSON(w, 200, body)
}

// firstResourceScopes are the scopes of the first resource among scopes (the access
// token's resource).
func firstResourceScopes(scopes []string) string {
	var resource string
	var out []string
	for _, sc := range scopes {
		i := strings.LastIndex(sc, "/")
		if i < 0 {
			continue
		}
		if resource == "" {
			resource = sc[:i]
		}
		if sc[:i] == resource {
			out = append(out, sc)
		}
	}
	return strings.Join(out, " ")
}

// lastAuthorize returns the query of the last authorize request.
func (f *fakeEntra) lastAuthorize() url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.query
}

// secrets returns every code and token handed out so far.
func (f *fakeEntra) secrets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.issued...)
}

func (f *fakeEntra) set(fn func(f *fakeEntra)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func writeTestJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
