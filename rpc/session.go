package rpc

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// SessionHeader is the MCP session header (case-insensitive on the wire).
const SessionHeader = "Mcp-Session-Id"

// sessionLifetime bounds how long a session id is honoured; a client that outlives it
// gets 404 and re-initializes, as the spec tells it to.
const sessionLifetime = 24 * time.Hour

// sessionCodec mints and opens self-contained session ids: the negotiated revision and a
// digest of the caller, signed with HMAC-SHA256. Any replica holding the same secret
// accepts them, so no session state lives in memory. A session never authenticates: the
// API key is checked on every request and the session is only bound to its subject.
type sessionCodec struct {
	key []byte
	now func() time.Time
}

type sessionClaims struct {
	Version string `json:"v"`
	// ElicitURL: the client declared URL-mode elicitation at initialize
	// (capabilities.elicitation.url, 2025-11-25).
	ElicitURL bool   `json:"u,omitempty"`
	Subject   string `json:"s"` // base64url(sha256(subject)), never the subject itself
	Issued    int64  `json:"i"`
	Nonce     string `json:"n"`
}

var errBadSession = errors.New("unknown or expired session")

func subjectDigest(subject string) string {
	sum := sha256.Sum256([]byte(subject))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

func (c *sessionCodec) mint(version, subject string, elicitURL bool) string {
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	payload, _ := json.Marshal(sessionClaims{
		Version:   version,
		ElicitURL: elicitURL,
		Subject:   subjectDigest(subject),
		Issued:    c.now().Unix(),
		Nonce:     base64.RawURLEncoding.EncodeToString(nonce),
	})
	body := base64.RawURLEncoding.EncodeToString(payload)
	return body + "." + c.sign(body)
}

func (c *sessionCodec) sign(body string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("flowstudio session v1\x00" + body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// open verifies a session id for subject and returns the negotiated revision and
// whether the client takes URL-mode elicitation.
func (c *sessionCodec) open(id, subject string) (string, bool, error) {
	body, sig, ok := strings.Cut(id, ".")
	if !ok || len(id) > 512 || !hmac.Equal([]byte(sig), []byte(c.sign(body))) {
		return "", false, errBadSession
	}
	payload, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return "", false, errBadSession
	}
	var claims sessionClaims
	if json.Unmarshal(payload, &claims) != nil || !isSupported(claims.Version) {
		return "", false, errBadSession
	}
	age := c.now().Sub(time.Unix(claims.Issued, 0))
	if age < -time.Minute || age > sessionLifetime || claims.Subject != subjectDigest(subject) {
		return "", false, errBadSession
	}
	return claims.Version, claims.ElicitURL, nil
}
