package keyring

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const secret = "a-test-token-secret-that-is-long-enough-0123456789"

func mustKeyring(t *testing.T) *Keyring {
	t.Helper()
	k, err := New(secret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestIssueIsDeterministicAndVerifies(t *testing.T) {
	k := mustKeyring(t)
	at := time.Now().Add(-time.Hour)
	a, _ := k.Issue("tid.oid", 3, at, "full")
	b, _ := k.Issue("tid.oid", 3, at, "full")
	if a != b {
		t.Fatal("the same user, generation and issue time must derive the same key")
	}
	c, err := k.Verify(a)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "tid.oid" || c.Generation != 3 || c.Scope != "full" || c.Issuer != Issuer {
		t.Fatalf("claims %+v", c)
	}
}

// TestContractVerifiableWithTokenSecretAlone re-derives the key as the README tells an
// auditor to: HKDF-SHA256(TOKEN_SECRET, no salt, "flowstudio api-key v1", 32).
func TestContractVerifiableWithTokenSecretAlone(t *testing.T) {
	k := mustKeyring(t)
	key, _ := k.Issue("u", 1, time.Now(), "read")
	derived, err := hkdf.Key(sha256.New, []byte(secret), nil, "flowstudio api-key v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Parse(key, func(*jwt.Token) (any, error) { return derived, nil }, jwt.WithValidMethods([]string{"HS256"}))
	if err != nil || !tok.Valid {
		t.Fatalf("independent verification failed: %v", err)
	}
}

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestForgedAndExpiredKeysAreRefused(t *testing.T) {
	k := mustKeyring(t)
	now := time.Now()
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": Issuer, "aud": Audience, "sub": "u", "iat": now.Unix(),
			"exp": now.Add(time.Hour).Unix(), "gen": 1, "scope": "full"}
	}
	with := func(k string, v any) jwt.MapClaims { c := good(); c[k] = v; return c }
	without := func(k string) jwt.MapClaims { c := good(); delete(c, k); return c }
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	valid := sign(t, jwt.SigningMethodHS256, k.apiKey, good())
	parts := strings.Split(valid, ".")
	tamperedPayload := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"flowstudio","aud":"flowstudio-mcp","sub":"admin","exp":9999999999,"gen":1,"scope":"full"}`))
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))

	cases := map[string]string{
		"expired":                  sign(t, jwt.SigningMethodHS256, k.apiKey, with("exp", now.Add(-time.Hour).Unix())),
		"nbf in the future":        sign(t, jwt.SigningMethodHS256, k.apiKey, with("nbf", now.Add(time.Hour).Unix())),
		"iat in the future":        sign(t, jwt.SigningMethodHS256, k.apiKey, with("iat", now.Add(time.Hour).Unix())),
		"wrong audience":           sign(t, jwt.SigningMethodHS256, k.apiKey, with("aud", "someone-else")),
		"wrong issuer":             sign(t, jwt.SigningMethodHS256, k.apiKey, with("iss", "evil")),
		"missing exp":              sign(t, jwt.SigningMethodHS256, k.apiKey, without("exp")),
		"missing sub":              sign(t, jwt.SigningMethodHS256, k.apiKey, without("sub")),
		"unknown scope":            sign(t, jwt.SigningMethodHS256, k.apiKey, with("scope", "admin")),
		"alg none":                 noneHeader + "." + parts[1] + ".",
		"RS256":                    sign(t, jwt.SigningMethodRS256, rsaKey, good()),
		"HS512 with the right key": sign(t, jwt.SigningMethodHS512, k.apiKey, good()),
		"signed with TOKEN_SECRET": sign(t, jwt.SigningMethodHS256, []byte(secret), good()),
		"tampered payload":         parts[0] + "." + tamperedPayload + "." + parts[2],
		"garbage":                  "not-a-jwt",
		"empty":                    "",
		"huge":                     strings.Repeat("a", 10000),
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := k.Verify(token); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := k.Verify(valid); err != nil {
		t.Fatalf("the untampered control key must verify: %v", err)
	}
}

func TestHashEmailIsKeyedAndCaseInsensitive(t *testing.T) {
	k := mustKeyring(t)
	other, _ := New(strings.Repeat("z", 40))
	if k.HashEmail("Alice@Contoso.com") != k.HashEmail("alice@contoso.com ") {
		t.Fatal("hash must ignore case and spaces")
	}
	if k.HashEmail("alice@contoso.com") == other.HashEmail("alice@contoso.com") {
		t.Fatal("hash must depend on TOKEN_SECRET")
	}
	if strings.Contains(k.HashEmail("alice@contoso.com"), "alice") {
		t.Fatal("hash leaks the email")
	}
}

func TestShortSecretRefused(t *testing.T) {
	if _, err := New("short"); err == nil {
		t.Fatal("short TOKEN_SECRET accepted")
	}
}

// TestRememberedKeyStillExpires: Verify remembers keys that passed, but a remembered
// key is refused the moment it expires, and a tampered copy is never taken for it.
func TestRememberedKeyStillExpires(t *testing.T) {
	k := mustKeyring(t)
	now := time.Now()
	k.now = func() time.Time { return now }
	key, _ := k.Issue("tid.oid", 1, now, "full")
	for range 2 { // parsed, then remembered
		if c, err := k.Verify(key); err != nil || c.Subject != "tid.oid" {
			t.Fatalf("fresh key: %v %+v", err, c)
		}
	}
	if _, err := k.Verify(key[:len(key)-2] + "xx"); err == nil {
		t.Fatal("a tampered copy of a remembered key was accepted")
	}
	now = now.Add(KeyLifetime + time.Minute)
	if _, err := k.Verify(key); err == nil {
		t.Fatal("a remembered key was accepted after it expired")
	}
}

// TestOnlyOurExpiredKeysSayExpired: ErrExpiredKey only for a key with our signature
// and our iss/aud whose exp passed; a forged or otherwise broken one that is also
// expired gets the same ErrInvalidKey as any other forgery.
func TestOnlyOurExpiredKeysSayExpired(t *testing.T) {
	k := mustKeyring(t)
	now := time.Now()
	past := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": Issuer, "aud": Audience, "sub": "tid.oid", "iat": now.Add(-40 * 24 * time.Hour).Unix(),
			"exp": now.Add(-10 * 24 * time.Hour).Unix(), "gen": 1, "scope": "full"}
	}
	with := func(k string, v any) jwt.MapClaims { c := past(); c[k] = v; return c }
	ours := sign(t, jwt.SigningMethodHS256, k.apiKey, past())
	if _, err := k.Verify(ours); !errors.Is(err, ErrExpiredKey) {
		t.Fatalf("our expired key: %v, want ErrExpiredKey", err)
	}
	issued, _ := k.Issue("tid.oid", 3, now.Add(-KeyLifetime-time.Hour), "read")
	if _, err := k.Verify(issued); !errors.Is(err, ErrExpiredKey) {
		t.Fatalf("an issued key past its lifetime: %v, want ErrExpiredKey", err)
	}
	for name, token := range map[string]string{
		"forged signature":       sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("f", 32)), past()),
		"signed with the secret": sign(t, jwt.SigningMethodHS256, []byte(secret), past()),
		"wrong issuer":           sign(t, jwt.SigningMethodHS256, k.apiKey, with("iss", "evil")),
		"wrong audience":         sign(t, jwt.SigningMethodHS256, k.apiKey, with("aud", "other")),
		"no subject":             sign(t, jwt.SigningMethodHS256, k.apiKey, with("sub", "")),
		"unknown scope":          sign(t, jwt.SigningMethodHS256, k.apiKey, with("scope", "admin")),
		"iat in the future":      sign(t, jwt.SigningMethodHS256, k.apiKey, with("iat", now.Add(time.Hour).Unix())),
		"tampered":               ours[:len(ours)-3] + "abc",
	} {
		if _, err := k.Verify(token); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s: %v, want ErrInvalidKey", name, err)
		}
	}
}
