package powerautomate

import (
	"crypto/tls"
	"testing"

	"github.com/flowstudio/mcp/server/outbound"
)

// TestUpstreamClientTLS12: every upstream call carries a user's bearer token.
func TestUpstreamClientTLS12(t *testing.T) {
	if got := outbound.MinVersionOf(Config{}.withDefaults().HTTPClient); got != tls.VersionTLS12 {
		t.Fatalf("minimum TLS version %#x, want TLS 1.2", got)
	}
}
