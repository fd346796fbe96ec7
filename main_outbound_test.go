package main

import (
	"crypto/tls"
	"testing"

	"github.com/flowstudio/mcp/server/outbound"
)

// TestCLIClientTLS12: the CLI's checks of a server or simulator (sync, dev-key) never
// speak TLS below 1.2 either.
func TestCLIClientTLS12(t *testing.T) {
	if got := outbound.MinVersionOf(outboundClient); got != tls.VersionTLS12 {
		t.Fatalf("minimum TLS version %#x, want TLS 1.2", got)
	}
}
