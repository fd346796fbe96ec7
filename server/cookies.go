package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Browser cookies. Each value is base64url(JSON {"exp", "v"}) "." base64url(MAC), where
// MAC = HMAC-SHA256(CookieKey, purpose 0x00 payload). The purpose keeps one cookie from
// standing in for another; exp bounds its life whatever the browser does with Max-Age.
// Nothing in them is secret from their owner: a signed cookie proves it came from us
// and is recent, nothing more.

// Cookie purposes, also their base names.
const (
	loginCookie   = "flowstudio-login"   // state, nonce and PKCE verifier of one sign-in
	sessionCookie = "flowstudio-session" // the signed-in dashboard user
)

const (
	loginTTL   = 10 * time.Minute
	sessionTTL = 8 * time.Hour
	// maxCookieBytes refuses absurd cookies before any decoding.
	maxCookieBytes = 3072
)

var errBadCookie = errors.New("cookie missing, forged or expired")

type cookieCodec struct {
	key []byte
	now func() time.Time
}

type cookieEnvelope struct {
	Exp int64           `json:"exp"`
	V   json.RawMessage `json:"v"`
}

func (c cookieCodec) mac(purpose, payload string) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// encode signs v for purpose, valid for ttl.
func (c cookieCodec) encode(purpose string, v any, ttl time.Duration) (string, error) {
	inner, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	env, err := json.Marshal(cookieEnvelope{Exp: c.now().Add(ttl).Unix(), V: inner})
	if err != nil {
		return "", err
	}
	payload := base64.RawURLEncoding.EncodeToString(env)
	return payload + "." + base64.RawURLEncoding.EncodeToString(c.mac(purpose, payload)), nil
}

// decode checks the MAC and the expiry and fills v.
func (c cookieCodec) decode(purpose, value string, v any) error {
	if len(value) > maxCookieBytes {
		return errBadCookie
	}
	payload, sig, ok := strings.Cut(value, ".")
	if !ok {
		return errBadCookie
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, c.mac(purpose, payload)) {
		return errBadCookie
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return errBadCookie
	}
	var env cookieEnvelope
	if err := json.Unmarshal(raw, &env); err != nil || c.now().Unix() >= env.Exp {
		return errBadCookie
	}
	if err := json.Unmarshal(env.V, v); err != nil {
		return errBadCookie
	}
	return nil
}

// loginState is what /login hands to /callback through the browser. Grant and UserID
// are set for a grant sign-in (/login?grant=...): the grant's name and the dashboard
// user it is for; the callback takes both from here, never from its URL.
type loginState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"pv"`
	Grant    string `json:"g,omitempty"`
	UserID   string `json:"u,omitempty"`
}

// webSession is a signed-in dashboard user. The display name lives here, not in the
// store. SID is random per sign-in; CSRF tokens are derived from it.
type webSession struct {
	UserID   string `json:"uid"`
	TenantID string `json:"tid"`
	Name     string `json:"name,omitempty"`
	SID      string `json:"sid"`
	Epoch    int64  `json:"ep,omitempty"` // the user's SessionEpoch when it was opened
}

// csrfToken is the form token of a session: HMAC of its SID under the cookie key, so a
// page from another origin, which cannot read the HttpOnly cookie, cannot forge it.
func (c cookieCodec) csrfToken(s *webSession) string {
	return base64.RawURLEncoding.EncodeToString(c.mac("csrf", s.SID))
}

func (c cookieCodec) checkCSRF(s *webSession, token string) bool {
	got, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil && len(token) < 100 && hmac.Equal(got, c.mac("csrf", s.SID))
}

// secureCookies reports whether cookies get Secure and the __Host- prefix: always,
// except when the site is plain HTTP on a loopback host (a laptop), where a browser
// would refuse Secure cookies. The public URL decides; without one, the request.
func (s *Server) secureCookies(r *http.Request) bool {
	scheme, host := s.siteOrigin(r)
	return scheme != "http" || !isLoopbackHost(host)
}

// siteOrigin is the scheme and host the browser sees.
func (s *Server) siteOrigin(r *http.Request) (scheme, host string) {
	if s.public != nil {
		return s.public.Scheme, s.public.Host
	}
	scheme = "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme, r.Host
}

// siteURL is the site's base URL, without a trailing slash.
func (s *Server) siteURL(r *http.Request) string {
	scheme, host := s.siteOrigin(r)
	return (&url.URL{Scheme: scheme, Host: host}).String()
}

func (s *Server) cookieName(r *http.Request, base string) string {
	if s.secureCookies(r) {
		return "__Host-" + base
	}
	return base
}

func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, base, value string, ttl time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name:     s.cookieName(r, base),
		Value:    value,
		Path:     "/",
		MaxAge:   int(ttl / time.Second),
		HttpOnly: true,
		Secure:   s.secureCookies(r),
		SameSite: http.SameSiteLaxMode,
	})
}

func (s *Server) clearCookie(w http.ResponseWriter, r *http.Request, base string) {
	http.SetCookie(w, &http.Cookie{
		Name:     s.cookieName(r, base),
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   s.secureCookies(r),
		SameSite: http.SameSiteLaxMode,
	})
}

// readCookie decodes the named signed cookie into v.
func (s *Server) readCookie(r *http.Request, base string, v any) error {
	c, err := r.Cookie(s.cookieName(r, base))
	if err != nil {
		return errBadCookie
	}
	return s.web.cookies.decode(base, c.Value, v)
}

// session returns the signed-in dashboard user, or nil. A signed cookie is not enough:
// the user record's session epoch must still be the one the session was opened under,
// so logout, revoke and re-issue end every session of the user on every replica at
// once (one user read, only for a request that carries a session cookie).
func (s *Server) session(r *http.Request) *webSession {
	var ws webSession
	if err := s.readCookie(r, sessionCookie, &ws); err != nil || ws.UserID == "" || ws.SID == "" {
		return nil
	}
	if s.deps.Accounts == nil {
		return nil
	}
	u, err := s.deps.Accounts.GetUser(r.Context(), ws.UserID)
	if err != nil || u.SessionEpoch != ws.Epoch {
		return nil // ended, or cannot tell: fail closed
	}
	return &ws
}
