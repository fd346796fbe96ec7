package oauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Client is a registered client as the authorization server sees it: public (no
// secret), with its exact redirect URIs.
type Client struct {
	ID           string   `json:"client_id"`
	Name         string   `json:"client_name,omitempty"`
	RedirectURIs []string `json:"redirect_uris"`
	CreatedAt    int64    `json:"client_id_issued_at,omitempty"`
}

// DisplayName is what the consent page and dashboard call the client.
func (c *Client) DisplayName() string {
	if c.Name != "" {
		return c.Name
	}
	return "Unnamed app"
}

// HasRedirect reports an exact match (no prefix, no normalisation).
func (c *Client) HasRedirect(uri string) bool {
	for _, r := range c.RedirectURIs {
		if r == uri {
			return true
		}
	}
	return false
}

// ValidateRedirectURI admits https URLs, http only on a loopback host (native apps,
// RFC 8252 §7.3), and private-use schemes with a dot (RFC 8252 §7.1, com.example.app:);
// never javascript:, data:, file: or a fragment.
func ValidateRedirectURI(raw string) error {
	if raw == "" || len(raw) > maxRedirectURILen {
		return errors.New("a redirect URI is empty or longer than 512 characters")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return errors.New("a redirect URI is not an absolute URI")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("a redirect URI has a fragment")
	}
	if u.User != nil {
		return errors.New("a redirect URI carries user information")
	}
	switch scheme := strings.ToLower(u.Scheme); scheme {
	case "https":
		if u.Host == "" {
			return errors.New("an https redirect URI has no host")
		}
	case "http":
		if !isLoopbackName(u.Hostname()) {
			return errors.New("an http redirect URI is allowed only on a loopback host (127.0.0.1, [::1], localhost); use https")
		}
	case "javascript", "data", "file", "vbscript", "about", "blob", "filesystem", "ws", "wss", "ftp":
		return fmt.Errorf("the %s: scheme is not a redirect URI", scheme)
	default:
		if !strings.Contains(scheme, ".") {
			return errors.New("a custom-scheme redirect URI must be reverse-domain (com.example.app:/callback)")
		}
	}
	return nil
}

func isLoopbackName(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Registration is a Dynamic Client Registration request (RFC 7591 §2), the fields
// this server uses; others are ignored.
type Registration struct {
	RedirectURIs            []string `json:"redirect_uris"`
	ClientName              string   `json:"client_name"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
}

// checkMetadata validates what DCR and metadata documents share and returns the
// client (without id).
func checkMetadata(redirects []string, name string, grantTypes, responseTypes []string) (*Client, *Error) {
	if len(redirects) == 0 || len(redirects) > 10 {
		return nil, oerr(400, "invalid_redirect_uri", "redirect_uris must list 1 to 10 URIs")
	}
	for _, r := range redirects {
		if err := ValidateRedirectURI(r); err != nil {
			return nil, oerr(400, "invalid_redirect_uri", err.Error())
		}
	}
	for _, g := range grantTypes {
		if g != "authorization_code" && g != "refresh_token" {
			return nil, oerr(400, "invalid_client_metadata", "grant_types may only be authorization_code and refresh_token")
		}
	}
	for _, t := range responseTypes {
		if t != "code" {
			return nil, oerr(400, "invalid_client_metadata", "response_types may only be code")
		}
	}
	name = strings.TrimSpace(name)
	if len(name) > 100 || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, oerr(400, "invalid_client_metadata", "client_name must be at most 100 printable characters")
	}
	return &Client{Name: name, RedirectURIs: redirects}, nil
}

// Register validates a DCR request; the caller gives the client its id and stores it.
// Every client is public: the answer's token_endpoint_auth_method is none whatever
// was asked (RFC 7591 §3.2.1 lets the server replace values).
func Register(r *Registration) (*Client, *Error) {
	switch r.TokenEndpointAuthMethod {
	case "", "none", "client_secret_basic", "client_secret_post":
	default:
		return nil, oerr(400, "invalid_client_metadata", "token_endpoint_auth_method must be none (public clients with PKCE)")
	}
	return checkMetadata(r.RedirectURIs, r.ClientName, r.GrantTypes, r.ResponseTypes)
}

// IsMetadataURL reports whether a client id is a Client ID Metadata Document URL.
func IsMetadataURL(clientID string) bool { return strings.HasPrefix(clientID, "https://") }

// Fetcher fetches Client ID Metadata Documents without becoming a way into the
// private network: https only, every address it connects to (after DNS, and after
// each redirect) must be public, at most 3 redirects, 5 s in all, 64 KiB of body.
type Fetcher struct {
	client  *http.Client
	maxBody int64
}

// MaxMetadataBytes bounds a Client ID Metadata Document.
const MaxMetadataBytes = 64 << 10

// NewFetcher builds the fetcher. allowLoopback admits loopback addresses (embedded
// mode, where the client and this server share a laptop); private, link-local and
// other special addresses are refused always. roots, when set, replaces the system
// roots for TLS (tests).
func NewFetcher(allowLoopback bool, roots *x509.CertPool) *Fetcher {
	dialer := &net.Dialer{Timeout: 3 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !publicAddr(ap.Addr(), allowLoopback) {
			return errForbiddenAddress
		}
		return nil
	}}
	tr := &http.Transport{
		Proxy:                  nil, // never through a proxy: the address check is ours
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    3 * time.Second,
		ResponseHeaderTimeout:  3 * time.Second,
		MaxResponseHeaderBytes: 16 << 10,
		DisableKeepAlives:      true,
	}
	return &Fetcher{maxBody: MaxMetadataBytes, client: &http.Client{Transport: tr, Timeout: 5 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > 3 {
				return errTooManyRedirects
			}
			if req.URL.Scheme != "https" {
				return errors.New("redirect away from https")
			}
			return nil
		}}}
}

var (
	errForbiddenAddress = errors.New("address not allowed")
	errTooManyRedirects = errors.New("too many redirects")
)

// nonPublic are special-purpose ranges beyond what netip classifies.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64: can reach any IPv4 address
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("fc00::/7"),
}

func publicAddr(a netip.Addr, allowLoopback bool) bool {
	a = a.Unmap()
	if a.IsLoopback() {
		return allowLoopback
	}
	if !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// validMetadataURL: https, a host, a path other than /, no query-less tricks (no
// fragment, no user info, no dot segments), at most 512 characters.
func validMetadataURL(raw string) (*url.URL, bool) {
	if len(raw) > maxClientIDLen {
		return nil, false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" || strings.Contains(raw, "#") ||
		u.Path == "" || u.Path == "/" {
		return nil, false
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return nil, false
		}
	}
	return u, true
}

// metadataDocument is a Client ID Metadata Document, the fields this server uses.
type metadataDocument struct {
	ClientID                string   `json:"client_id"`
	ClientName              string   `json:"client_name"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
}

// Fetch gets and checks the metadata document of clientID (an https URL): its
// client_id must be that URL exactly, its redirect URIs valid, its auth method none.
// Every failure is invalid_client with our own words (nothing of the document).
func (f *Fetcher) Fetch(ctx context.Context, clientID string) (*Client, *Error) {
	if _, ok := validMetadataURL(clientID); !ok {
		return nil, oerr(400, "invalid_client", "a client id URL must be https with a path, without fragment or user info")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientID, nil)
	if err != nil {
		return nil, oerr(400, "invalid_client", "the client id URL is not usable")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, errForbiddenAddress):
			return nil, oerr(400, "invalid_client", "the client metadata document is on an address this server does not fetch from (private, loopback or special-purpose)")
		case errors.Is(err, errTooManyRedirects):
			return nil, oerr(400, "invalid_client", "the client metadata document redirects too often")
		}
		return nil, oerr(400, "invalid_client", "the client metadata document could not be fetched")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, oerr(400, "invalid_client", fmt.Sprintf("the client metadata document answered HTTP %d", resp.StatusCode))
	}
	if resp.ContentLength > f.maxBody {
		return nil, oerr(400, "invalid_client", "the client metadata document is larger than 64 KiB")
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBody+1))
	if err != nil {
		return nil, oerr(400, "invalid_client", "the client metadata document could not be read")
	}
	if int64(len(body)) > f.maxBody {
		return nil, oerr(400, "invalid_client", "the client metadata document is larger than 64 KiB")
	}
	var doc metadataDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, oerr(400, "invalid_client", "the client metadata document is not a JSON object")
	}
	if doc.ClientID != clientID {
		return nil, oerr(400, "invalid_client", "the client metadata document's client_id is not its own URL")
	}
	if doc.TokenEndpointAuthMethod != "" && doc.TokenEndpointAuthMethod != "none" {
		return nil, oerr(400, "invalid_client", "only public clients (token_endpoint_auth_method none) are supported")
	}
	c, oe := checkMetadata(doc.RedirectURIs, doc.ClientName, doc.GrantTypes, doc.ResponseTypes)
	if oe != nil {
		return nil, oerr(400, "invalid_client", "the client metadata document: "+oe.Description)
	}
	c.ID = clientID
	return c, nil
}
