package notify

import (
	"crypto/tls"
	"testing"

	"github.com/flowstudio/mcp/server/outbound"
)

// TestWebhookClientTLS12: alert webhooks never speak TLS below 1.2 (the SMTP client's
// is go-mail's default, TLS 1.2 too).
func TestWebhookClientTLS12(t *testing.T) {
	if got := outbound.MinVersionOf(NewPoster(false).client); got != tls.VersionTLS12 {
		t.Fatalf("minimum TLS version %#x, want TLS 1.2", got)
	}
}
