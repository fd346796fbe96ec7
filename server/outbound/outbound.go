// Package outbound is the HTTP transport of every client of ours that leaves the
// process (Entra ID, the Power Platform APIs, the simulator checks of the CLI): TLS
// 1.2 at least, whatever Go's default or a GODEBUG setting would allow. The Azure
// SDK clients (Cosmos DB, Key Vault, managed identity) bring their own transport,
// which sets the same minimum.
package outbound

import (
	"crypto/tls"
	"net/http"
	"time"
)

// MinTLSVersion is the lowest TLS version any outbound connection speaks.
const MinTLSVersion = tls.VersionTLS12

// NewTransport returns a transport like http.DefaultTransport that never speaks TLS
// below MinTLSVersion. Callers may tune its pool before first use.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{MinVersion: MinTLSVersion}
	return t
}

// shared is the transport of the clients built by Client: one pool for the few
// outbound calls outside the Power Platform client, which has its own.
var shared = NewTransport()

// Client returns a client on the shared transport with this overall timeout; with
// noRedirects it never follows one (codes and tokens never go anywhere else).
func Client(timeout time.Duration, noRedirects bool) *http.Client {
	c := &http.Client{Transport: shared, Timeout: timeout}
	if noRedirects {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c
}

// MinVersionOf returns the minimum TLS version a client's transport enforces, or 0
// when it sets none (Go's default then applies, which GODEBUG can lower). For tests
// of each package that builds a client.
func MinVersionOf(c *http.Client) uint16 {
	if c == nil {
		return 0
	}
	t, ok := c.Transport.(*http.Transport)
	if !ok || t.TLSClientConfig == nil {
		return 0
	}
	return t.TLSClientConfig.MinVersion
}
