package sim

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

// caller is the identity of an authenticated API request.
type caller struct {
	tenantID string
	objectID string
	scopes   []string
}

func (c *caller) hasScope(s string) bool { return slices.Contains(c.scopes, s) }

// AccessClaims are the claims of a v1 Entra ID access token that the
// simulator mints and reads.
type AccessClaims struct {
	TenantID string `json:"tid"`
	ObjectID string `json:"oid"`
	Scope    string `json:"scp,omitempty"`
	jwt.RegisteredClaims
}

// Issuer is the v1 access-token issuer of a tenant.
func Issuer(tenantID string) string { return "https://sts.windows.net/" + tenantID + "/" }

// MintAccessToken signs an RS256 access token for a user of a tenant with
// one audience and the given delegated scopes (scp). A negative ttl makes an
// already expired token.
func (s *Sim) MintAccessToken(tenantID, objectID, audience string, scopes []string, ttl time.Duration) string {
	now := s.now()
	return s.Sign(AccessClaims{
		TenantID: tenantID,
		ObjectID: objectID,
		Scope:    strings.Join(scopes, " "),
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer(tenantID),
			Subject:   objectID,
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now.Add(-time.Minute)),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	})
}

// Sign signs any claims with the simulator's key (kid set), for access
// tokens here and id tokens of a sign-in simulator.
func (s *Sim) Sign(claims jwt.Claims) string {
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = s.keyID
	signed, err := t.SignedString(s.key)
	if err != nil {
		panic("sim: signing token: " + err.Error()) // only a broken key can fail
	}
	return signed
}

// PublicKey is the key that verifies every token the simulator signs.
func (s *Sim) PublicKey() *rsa.PublicKey { return &s.key.PublicKey }

// KeyID is the kid of the signing key.
func (s *Sim) KeyID() string { return s.keyID }

// JWKS is the JSON Web Key Set ({"keys":[...]}) of the signing key.
func (s *Sim) JWKS() []byte {
	pub := s.key.PublicKey
	b64 := base64.RawURLEncoding.EncodeToString
	out, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": s.keyID,
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}}})
	return out
}

// TokenSourceFor is a powerautomate.TokenSource for the user with this email
// (see UserFor): it mints a one-hour token per call. Tests and local tools
// use it where a real deployment has the signed-in user's tokens.
func (s *Sim) TokenSourceFor(email string, scopes ...string) powerautomate.TokenSource {
	if len(scopes) == 0 {
		scopes = []string{"Flows.Read.All", "Flows.Manage.All", "User"}
	}
	tid, oid := s.UserFor(email)
	return tokenSourceFunc(func(_ context.Context, aud string) (string, error) {
		return s.MintAccessToken(tid, oid, aud, scopes, time.Hour), nil
	})
}

type tokenSourceFunc func(ctx context.Context, audience string) (string, error)

func (f tokenSourceFunc) Token(ctx context.Context, audience string) (string, error) {
	return f(ctx, audience)
}

// authenticate checks the bearer token of an API request: signature,
// expiry, audience for the host, and the tid/oid identity.
func (s *Sim) authenticate(w http.ResponseWriter, r *http.Request, hostKey string) (*caller, bool) {
	allowed := DefaultAudiences[hostKey]
	if a, ok := s.opts.Audiences[hostKey]; ok {
		allowed = a
	}
	return s.authenticateFor(w, r, allowed)
}

// authenticateFor is authenticate with the accepted audiences given.
func (s *Sim) authenticateFor(w http.ResponseWriter, r *http.Request, allowed []string) (*caller, bool) {
	fail := func(code, msg string) (*caller, bool) {
		w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, code, msg)
		return nil, false
	}
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return fail("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
	}
	claims, err := s.verified.check(raw, s.now, func(claims *AccessClaims) error {
		_, err := jwt.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return &s.key.PublicKey, nil },
			jwt.WithValidMethods([]string{"RS256"}), jwt.WithExpirationRequired(), jwt.WithTimeFunc(s.now))
		return err
	})
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		const layout = "1/2/2006 3:04:05 PM"
		return fail("ExpiredAuthenticationToken", "The access token expiry UTC time '"+claims.ExpiresAt.UTC().Format(layout)+
			"' is earlier than current UTC time '"+s.now().UTC().Format(layout)+"'.")
	case err != nil:
		return fail("InvalidAuthenticationToken", "The access token is invalid.")
	case claims.TenantID == "" || claims.ObjectID == "":
		return fail("InvalidAuthenticationToken", "The access token has no tenant or object id.")
	}
	if !slices.ContainsFunc(claims.Audience, func(a string) bool { return slices.Contains(allowed, a) }) {
		return fail("InvalidAuthenticationTokenAudience", "The access token has been obtained for wrong audience or resource '"+
			strings.Join(claims.Audience, ",")+"'. It should exactly match with one of the allowed audiences '"+strings.Join(allowed, "', '")+"'.")
	}
	return &caller{tenantID: strings.ToLower(claims.TenantID), objectID: strings.ToLower(claims.ObjectID), scopes: strings.Fields(claims.Scope)}, true
}

// verifiedTokens remembers the claims of tokens whose signature checked out, so that a
// token sent again is not verified again (an RSA verification per request was a third
// of the simulator's CPU); its times are checked on every use. Bounded: when full it
// starts over.
type verifiedTokens struct {
	mu sync.Mutex
	m  map[string]*AccessClaims
}

const maxVerifiedTokens = 4096

// timesOnly checks what changes with the clock: exp (required) and nbf.
func timesOnly(now func() time.Time) *jwt.Validator {
	return jwt.NewValidator(jwt.WithExpirationRequired(), jwt.WithTimeFunc(now))
}

// check returns raw's claims: from memory, with exp and nbf checked against now, or
// from verify, remembered when it succeeds.
func (v *verifiedTokens) check(raw string, now func() time.Time, verify func(*AccessClaims) error) (AccessClaims, error) {
	v.mu.Lock()
	known := v.m[raw]
	v.mu.Unlock()
	if known != nil {
		return *known, timesOnly(now).Validate(known)
	}
	var claims AccessClaims
	if err := verify(&claims); err != nil {
		return claims, err
	}
	kept := claims
	v.mu.Lock()
	if v.m == nil || len(v.m) >= maxVerifiedTokens {
		v.m = make(map[string]*AccessClaims)
	}
	v.m[raw] = &kept
	v.mu.Unlock()
	return claims, nil
}

// audience is the aud of a token verified before, if it was.
func (v *verifiedTokens) audience(raw string) (string, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if c := v.m[raw]; c != nil {
		return strings.Join(c.Audience, ","), true
	}
	return "", false
}

// unverifiedAudience reads aud without checking anything, for recording.
func (s *Sim) unverifiedAudience(r *http.Request) string {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	if aud, ok := s.verified.audience(raw); ok {
		return aud
	}
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &claims); err != nil {
		return ""
	}
	return strings.Join(claims.Audience, ",")
}

// keyCache keeps seeded keys: generating one takes a while and tests make many sims.
var keyCache sync.Map // string(seed) → *rsa.PrivateKey

// signingKey returns a random 2048-bit key, or the one a seed determines.
// Go ignores custom randomness in rsa.GenerateKey, so seeded keys are built
// from primes drawn from a ChaCha8 stream.
func signingKey(seed []byte) *rsa.PrivateKey {
	if seed == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic("sim: generating key: " + err.Error())
		}
		return k
	}
	if k, ok := keyCache.Load(string(seed)); ok {
		return k.(*rsa.PrivateKey)
	}
	stream := mrand.NewChaCha8(sha256.Sum256(seed))
	e := big.NewInt(65537)
	one := big.NewInt(1)
	prime := func() *big.Int {
		buf := make([]byte, 128)
		for {
			stream.Read(buf)
			buf[0] |= 0xC0 // top two bits: the product has exactly 2048 bits
			buf[127] |= 1
			p := new(big.Int).SetBytes(buf)
			if p.ProbablyPrime(20) && new(big.Int).GCD(nil, nil, e, new(big.Int).Sub(p, one)).Cmp(one) == 0 {
				return p
			}
		}
	}
	p, q := prime(), prime()
	phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
	k := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537},
		D:         new(big.Int).ModInverse(e, phi),
		Primes:    []*big.Int{p, q},
	}
	k.Precompute()
	if err := k.Validate(); err != nil {
		panic("sim: seeded key invalid: " + err.Error())
	}
	keyCache.Store(string(seed), k)
	return k
}

func keyID(pub *rsa.PublicKey) string {
	sum := sha256.Sum256(pub.N.Bytes())
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}
