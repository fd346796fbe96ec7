package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flowstudio/mcp/server/outbound"
)

// Webhook calls carry two headers: the time and an HMAC-SHA256 over "<time>.<body>"
// with the user's webhook key, so a receiver can check origin and freshness.
const (
	HeaderTimestamp = "X-FlowStudio-Timestamp"
	HeaderSignature = "X-FlowStudio-Signature" // "v1=<hex>"
)

// Sign returns the signature header value for a body sent at ts.
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// ErrURLRefused is a webhook URL this server will not call.
var ErrURLRefused = errors.New("webhook URL refused")

// maxURLLength bounds a stored webhook URL.
const maxURLLength = 2048

// CheckURL validates a webhook URL a user gives: https, a host name (or a public
// address), no credentials, no fragment. allowLoopback (development only) also
// admits http to a loopback address. The address it resolves to is checked again at
// every call (Poster), since DNS can change.
func CheckURL(raw string, allowLoopback bool) (*url.URL, error) {
	if len(raw) > maxURLLength || strings.ContainsAny(raw, " \t\r\n") {
		return nil, refused("not a URL")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || !u.IsAbs() {
		return nil, refused("not an absolute URL")
	}
	if u.User != nil {
		return nil, refused("credentials in the URL")
	}
	if u.Fragment != "" {
		return nil, refused("a fragment")
	}
	host := u.Hostname()
	addr, ipErr := netip.ParseAddr(host)
	loopback := host == "localhost" || (ipErr == nil && addr.IsLoopback())
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowLoopback && loopback:
	default:
		return nil, refused("only https URLs are called")
	}
	if loopback && !allowLoopback {
		return nil, refused("a loopback address")
	}
	if ipErr == nil && !loopback && !publicAddr(addr) {
		return nil, refused("a private or reserved address")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, refused("a bad port")
		}
	}
	return u, nil
}

func refused(why string) error { return errors.Join(ErrURLRefused, errors.New(why)) }

// publicAddr says whether an address is one a webhook may reach: not loopback,
// private (RFC 1918, RFC 4193), link-local (cloud metadata at 169.254.169.254),
// shared (100.64/10), multicast or unspecified.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsMulticast() || a.IsUnspecified() || a.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range reserved {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

var reserved = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
}

// Poster calls webhooks. It dials only public addresses (checked on the address
// actually dialled, after DNS), through no proxy, follows no redirect, and reads
// at most a little of the answer.
type Poster struct {
	client        *http.Client
	allowLoopback bool
	now           func() time.Time
}

// NewPoster returns a Poster; allowLoopback (development only) lets it call
// loopback addresses too.
func NewPoster(allowLoopback bool) *Poster {
	p := &Poster{allowLoopback: allowLoopback, now: time.Now}
	dialer := &net.Dialer{Timeout: 5 * time.Second, Control: p.control}
	p.client = &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			TLSClientConfig:       &tls.Config{MinVersion: outbound.MinTLSVersion},
			ResponseHeaderTimeout: 10 * time.Second,
			MaxIdleConns:          4,
			IdleConnTimeout:       30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return p
}

// control refuses a connection to an address a webhook may not reach.
func (p *Poster) control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return refused("bad address")
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return refused("bad address")
	}
	if p.allowLoopback && a.Unmap().IsLoopback() {
		return nil
	}
	if !publicAddr(a) {
		return refused("resolves to a private or reserved address")
	}
	return nil
}

// Post sends body to rawURL, signed with secret. A 2xx answer is success; errors
// carry a kind, never the URL or the answer.
func (p *Poster) Post(ctx context.Context, rawURL string, secret, body []byte) error {
	u, err := CheckURL(rawURL, p.allowLoopback)
	if err != nil {
		return errKind("webhook_url_refused")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return errKind("webhook_request")
	}
	ts := p.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "FlowStudio-Alerts/1")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(secret, ts, body))
	resp, err := p.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrURLRefused) {
			return errKind("webhook_address_refused")
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return errKind("webhook_timeout")
		}
		return errKind("webhook_unreachable")
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errKind("webhook_status_" + strconv.Itoa(resp.StatusCode))
	}
	return nil
}
