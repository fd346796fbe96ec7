package server

import (
	"crypto/tls"
	"testing"

	"github.com/flowstudio/mcp/server/identity"
	"github.com/flowstudio/mcp/server/outbound"
)

// TestEntraClientTLS12: sign-in sends codes, verifiers and the client secret, so its
// default client never speaks TLS below 1.2.
func TestEntraClientTLS12(t *testing.T) {
	e := newEntraClient(identity.App{Authority: "https://login.example", ClientID: "c"}, nil)
	if got := outbound.MinVersionOf(e.client); got != tls.VersionTLS12 {
		t.Fatalf("minimum TLS version %#x, want TLS 1.2", got)
	}
}
