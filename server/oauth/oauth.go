// Package oauth is the OAuth 2.1 authorization server behind /mcp/oauth, per the MCP
// authorization spec (2025-06-18, 2025-11-25): metadata (RFC 8414, RFC 9728), client
// registration by Dynamic Client Registration (RFC 7591) and Client ID Metadata
// Documents, the authorization code grant with PKCE S256 only, resource indicators
// (RFC 8707) bound into the token audience, iss in the authorization response
// (RFC 9207), short-lived access tokens bound to the user's key generation, and
// refresh tokens rotated on every use with reuse detection.
//
// Written here rather than on a general OAuth framework (ory/fosite, zitadel/oidc):
// this server needs one grant type, one PKCE method, public clients only and two
// scopes, plus two things those frameworks do not have in this form (Client ID
// Metadata Documents with an SSRF-safe fetch, grants that live in the user record so
// the one user read per MCP request sees revocation). A framework would bring its own
// storage interfaces (a dozen methods over its own session types) to map onto the
// store, for less code here than the mapping would take. Tokens use golang-jwt.
//
// The person's side (sign-in, the consent page, the dashboard's connected apps) is in
// package server; this package validates requests and mints and checks tokens.
package oauth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"
)

// Scopes a client can ask for, and the key scopes they map to.
const (
	ScopeFull = "mcp:full" // every tool the user's plan allows
	ScopeRead = "mcp:read" // read-only tools, like a read-only key
)

// Lifetimes.
const (
	AccessTokenLifetime  = time.Hour
	RefreshTokenLifetime = 30 * 24 * time.Hour
	CodeLifetime         = time.Minute
	// ClientLifetime is how long a dynamically registered client is kept after its
	// registration or its last authorization.
	ClientLifetime = 90 * 24 * time.Hour
)

// Paths under the site's base URL.
const (
	ResourcePath      = "/mcp/oauth"
	IssuerPath        = "/oauth"
	AuthorizePath     = IssuerPath + "/authorize"
	TokenPath         = IssuerPath + "/token"
	RegisterPath      = IssuerPath + "/register"
	ResourceMetaPath  = "/.well-known/oauth-protected-resource" + ResourcePath
	ASMetaPath        = "/.well-known/oauth-authorization-server" + IssuerPath
	OIDCMetaPath      = "/.well-known/openid-configuration" + IssuerPath
	OIDCAppendedPath  = IssuerPath + "/.well-known/openid-configuration"
	maxStateLen       = 512
	maxClientIDLen    = 512
	maxRedirectURILen = 512
)

// Error is an OAuth error response (RFC 6749 §5.2, RFC 7591 §3.2.2).
type Error struct {
	Status      int    // HTTP status when answered directly
	Code        string // error
	Description string // error_description: our words, never an echo of input
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func oerr(status int, code, desc string) *Error {
	return &Error{Status: status, Code: code, Description: desc}
}

// NewSecret is a fresh 256-bit random value, base64url, with a prefix that says what
// it is (so a leaked one is recognisable in a scan).
func NewSecret(prefix string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// Hash is the only form in which a code or refresh token is stored: hex SHA-256.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// VerifyPKCE checks an S256 code verifier (RFC 7636 §4.1: 43 to 128 unreserved
// characters) against the challenge.
func VerifyPKCE(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 || strings.Trim(verifier, unreserved) != "" {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:]) == challenge
}

const unreserved = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"

// validChallenge: an S256 challenge is 43 base64url characters.
func validChallenge(c string) bool {
	if len(c) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(c)
	return err == nil
}

// NormalizeScope turns a requested scope into the one granted: mcp:full when asked
// (or when nothing is asked), else mcp:read. ok is false for a scope we do not know.
// offline_access is accepted and ignored: refresh tokens are always issued.
func NormalizeScope(requested string) (scope string, ok bool) {
	full, read := false, false
	for _, s := range strings.Fields(requested) {
		switch s {
		case ScopeFull:
			full = true
		case ScopeRead:
			read = true
		case "offline_access":
		default:
			return "", false
		}
	}
	if read && !full {
		return ScopeRead, true
	}
	return ScopeFull, true
}
