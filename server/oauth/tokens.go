package oauth

import (
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Access tokens are HS256 JWTs under a key of their own (keyring.OAuthKey): iss the
// issuer, aud the resource (RFC 8707), sub the user id, exp at most an hour, gen the
// user's key generation (a re-issue or revoke kills them like keys), gid the grant
// (revoking the app kills them), scope and client_id. Never stored.

// Claims are an access token's claims.
type Claims struct {
	jwt.RegisteredClaims
	Generation int64  `json:"gen"`
	GrantID    string `json:"gid"`
	Scope      string `json:"scope"`
	ClientID   string `json:"client_id"`
}

// Tokens mints and checks access tokens.
type Tokens struct {
	key []byte
	now func() time.Time
}

// NewTokens signs with key; now is the clock (nil: time.Now).
func NewTokens(key []byte, now func() time.Time) *Tokens {
	if now == nil {
		now = time.Now
	}
	return &Tokens{key: key, now: now}
}

// Issue mints an access token for the grant g of user sub.
func (t *Tokens) Issue(issuer, audience, sub string, gen int64, grantID, scope, clientID string) (string, time.Duration, error) {
	now := t.now().UTC().Truncate(time.Second)
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: issuer, Audience: jwt.ClaimStrings{audience}, Subject: sub,
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(AccessTokenLifetime))},
		Generation: gen, GrantID: grantID, Scope: scope, ClientID: clientID,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.key)
	return s, AccessTokenLifetime, err
}

// ErrInvalidToken is every reason an access token is refused.
var ErrInvalidToken = errors.New("invalid access token")

// Verify checks signature (HS256 only), iss, aud (exactly this resource), exp
// (required) and iat, and returns the claims.
func (t *Tokens) Verify(token, issuer, audience string) (*Claims, error) {
	if len(token) > 4096 {
		return nil, ErrInvalidToken
	}
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(t.now),
		jwt.WithLeeway(30*time.Second),
	)
	if err != nil || c.Subject == "" || c.GrantID == "" || (c.Scope != ScopeFull && c.Scope != ScopeRead) {
		return nil, ErrInvalidToken
	}
	return &c, nil
}
