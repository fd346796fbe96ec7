// Package keyring derives every key the server needs from TOKEN_SECRET and implements
// the API-key contract: an HS256 JWT signed with HKDF-SHA256(TOKEN_SECRET, no salt,
// info "flowstudio api-key v1", 32 bytes), claims iss "flowstudio", aud
// "flowstudio-mcp", sub, iat, exp (30 days), gen and scope. An operator can verify a key
// with nothing but TOKEN_SECRET; keys are never stored, only derived again on demand.
package keyring

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	Issuer   = "flowstudio"
	Audience = "flowstudio-mcp"
	// KeyLifetime is how long an API key is valid.
	KeyLifetime = 30 * 24 * time.Hour
	// MinSecretLength guards against a TOKEN_SECRET too short to be a secret.
	MinSecretLength = 32
)

// Labels of the derived keys (HKDF info strings). Changing one invalidates what it signs.
const (
	infoAPIKey    = "flowstudio api-key v1"
	infoEmailHash = "flowstudio email-hash v1"
	infoSession   = "flowstudio mcp-session v1"
	infoCookie    = "flowstudio cookie v1"
	infoOAuth     = "flowstudio oauth-access-token v1"
	infoWebhook   = "flowstudio alert-webhook v1"
)

// Keyring holds the derived keys. The zero value is unusable; use New.
type Keyring struct {
	apiKey    []byte
	emailHash []byte
	session   []byte
	cookie    []byte
	oauth     []byte
	webhook   []byte
	now       func() time.Time
	verified  verifiedCache
}

// New derives the keys from TOKEN_SECRET.
func New(tokenSecret string) (*Keyring, error) {
	if len(tokenSecret) < MinSecretLength {
		return nil, fmt.Errorf("TOKEN_SECRET must be at least %d characters", MinSecretLength)
	}
	derive := func(info string) []byte {
		k, err := hkdf.Key(sha256.New, []byte(tokenSecret), nil, info, 32)
		if err != nil {
			panic(err) // only fails for lengths HKDF cannot produce; 32 is fine
		}
		return k
	}
	return &Keyring{
		apiKey:    derive(infoAPIKey),
		emailHash: derive(infoEmailHash),
		session:   derive(infoSession),
		cookie:    derive(infoCookie),
		oauth:     derive(infoOAuth),
		webhook:   derive(infoWebhook),
		now:       time.Now,
	}, nil
}

// SessionKey signs MCP session ids.
func (k *Keyring) SessionKey() []byte { return k.session }

// CookieKey signs browser cookies (sign-in state, dashboard session, CSRF).
func (k *Keyring) CookieKey() []byte { return k.cookie }

// OAuthKey signs the OAuth access tokens of /mcp/oauth; never an API key's key, so
// neither can stand in for the other.
func (k *Keyring) OAuthKey() []byte { return k.oauth }

// WebhookKey is the key a user's alert webhook calls are signed with: HMAC-SHA256
// of the user id under a key derived from TOKEN_SECRET, so it is never stored, the
// dashboard can show it again, and every replica and job signs alike.
func (k *Keyring) WebhookKey(userID string) []byte {
	m := hmac.New(sha256.New, k.webhook)
	m.Write([]byte(userID))
	return m.Sum(nil)
}

// HashEmail is the only form in which an email is stored or logged: hex
// HMAC-SHA256 of the lower-cased address.
func (k *Keyring) HashEmail(email string) string {
	m := hmac.New(sha256.New, k.emailHash)
	m.Write([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(m.Sum(nil))
}

// Claims are the API key's claims.
type Claims struct {
	jwt.RegisteredClaims
	Generation int64  `json:"gen"`
	Scope      string `json:"scope"`
}

// Issue derives the API key of a user for a key generation issued at issuedAt. The
// same inputs give the same key, so the dashboard can show it again without storing it.
func (k *Keyring) Issue(userID string, generation int64, issuedAt time.Time, scope string) (string, error) {
	issuedAt = issuedAt.UTC().Truncate(time.Second)
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Audience:  jwt.ClaimStrings{Audience},
			Subject:   userID,
			IssuedAt:  jwt.NewNumericDate(issuedAt),
			ExpiresAt: jwt.NewNumericDate(issuedAt.Add(KeyLifetime)),
		},
		Generation: generation,
		Scope:      scope,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(k.apiKey)
}

// ErrInvalidKey is every reason a key is refused but one; the caller never learns which.
var ErrInvalidKey = errors.New("invalid API key")

// ErrExpiredKey is a key this keyring signed, valid in every other way, whose exp
// has passed. Only a key with our signature gets it, so saying "expired" tells a
// forger nothing (and nothing about whether its user exists: no user is read).
var ErrExpiredKey = errors.New("API key expired")

// Verify checks signature (HS256 only), iss, aud, exp (required), nbf and iat, and
// returns the claims.
//
// A key that passed is remembered (by its exact text) until it expires, so a client
// sending the same key on every request pays for parsing it once; only exp can turn
// a verified key invalid later, and it is checked on every call.
func (k *Keyring) Verify(token string) (*Claims, error) {
	if len(token) > 4096 {
		return nil, ErrInvalidKey
	}
	if c, ok := k.verified.get(token, k.now()); ok {
		return c, nil
	}
	var claims Claims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return k.apiKey, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(Issuer),
		jwt.WithAudience(Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(k.now),
		jwt.WithLeeway(30*time.Second),
	)
	if claims.Subject == "" || (claims.Scope != "full" && claims.Scope != "read") {
		return nil, ErrInvalidKey
	}
	if err != nil {
		if onlyExpired(err, &claims) {
			return nil, ErrExpiredKey
		}
		return nil, ErrInvalidKey
	}
	k.verified.put(token, &claims)
	return &claims, nil
}

// onlyExpired reports whether exp is the one thing wrong with a key: the signature
// was checked first (the parser validates claims only after it), and iss, aud and
// iat are ours.
func onlyExpired(err error, c *Claims) bool {
	if !errors.Is(err, jwt.ErrTokenExpired) || errors.Is(err, jwt.ErrTokenSignatureInvalid) ||
		errors.Is(err, jwt.ErrTokenMalformed) || errors.Is(err, jwt.ErrTokenUnverifiable) ||
		errors.Is(err, jwt.ErrTokenInvalidIssuer) || errors.Is(err, jwt.ErrTokenInvalidAudience) ||
		errors.Is(err, jwt.ErrTokenUsedBeforeIssued) || errors.Is(err, jwt.ErrTokenNotValidYet) {
		return false
	}
	return c.Issuer == Issuer && len(c.Audience) == 1 && c.Audience[0] == Audience && c.ExpiresAt != nil
}

// verifiedCache holds keys that passed Verify. It is bounded: when full it starts
// over, which costs one parse per active key.
type verifiedCache struct {
	mu sync.RWMutex
	m  map[string]*Claims
}

const maxVerifiedKeys = 4096

// expiryLeeway matches the parser's leeway for exp.
const expiryLeeway = 30 * time.Second

func (c *verifiedCache) get(token string, now time.Time) (*Claims, bool) {
	c.mu.RLock()
	claims, ok := c.m[token]
	c.mu.RUnlock()
	if !ok || claims.ExpiresAt == nil || !now.Before(claims.ExpiresAt.Add(expiryLeeway)) {
		return nil, false
	}
	cp := *claims
	return &cp, true
}

func (c *verifiedCache) put(token string, claims *Claims) {
	cp := *claims
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxVerifiedKeys {
		c.m = make(map[string]*Claims)
	}
	c.m[token] = &cp
}
