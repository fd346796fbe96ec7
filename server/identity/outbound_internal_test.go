package identity

import (
	"crypto/tls"
	"testing"

	"github.com/flowstudio/mcp/server/outbound"
)

// TestTokenClientTLS12: redemptions carry refresh tokens and the client secret, so the
// default client never speaks TLS below 1.2.
func TestTokenClientTLS12(t *testing.T) {
	ts, err := NewTokenSource(Config{App: App{Authority: "https://login.example", ClientID: "c", ClientSecret: "s"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := outbound.MinVersionOf(ts.cfg.HTTPClient); got != tls.VersionTLS12 {
		t.Fatalf("minimum TLS version %#x, want TLS 1.2", got)
	}
	if ts.cfg.HTTPClient.CheckRedirect == nil {
		t.Fatal("the token client follows redirects")
	}
}
