package outbound

import (
	"crypto/tls"
	"net/http"
	"testing"
	"time"
)

func TestClientsEnforceTLS12(t *testing.T) {
	for name, c := range map[string]*http.Client{
		"Client":       Client(time.Second, false),
		"NewTransport": {Transport: NewTransport()},
	} {
		if got := MinVersionOf(c); got != tls.VersionTLS12 {
			t.Errorf("%s: minimum TLS version %#x, want TLS 1.2", name, got)
		}
	}
	if MinVersionOf(http.DefaultClient) != 0 {
		t.Fatal("MinVersionOf invents a minimum where Go's default applies")
	}
	c := Client(time.Second, true)
	if c.CheckRedirect == nil || c.CheckRedirect(nil, nil) != http.ErrUseLastResponse {
		t.Fatal("noRedirects does not stop redirects")
	}
}
