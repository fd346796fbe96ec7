package notify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	for _, bad := range []string{"http://hooks.example.com/x", "https://user:pw@hooks.example.com/", "https://10.0.0.5/x",
		"https://169.254.169.254/latest/meta-data", "https://[::1]/x", "https://127.0.0.1/x", "https://localhost/x",
		"https://192.168.1.1/", "https://100.64.0.1/", "ftp://hooks.example.com/", "https://hooks.example.com/#f", "not a url",
		"https://hooks.example.com:99999/", "/relative", "https://[fd00::1]/"} {
		if _, err := CheckURL(bad, false); !errors.Is(err, ErrURLRefused) {
			t.Errorf("CheckURL(%q) = %v, want refused", bad, err)
		}
	}
	for _, good := range []string{"https://hooks.slack.com/services/T/B/x", "https://contoso.webhook.office.com/webhookb2/x", "https://8.8.8.8/x"} {
		if _, err := CheckURL(good, false); err != nil {
			t.Errorf("CheckURL(%q) = %v", good, err)
		}
	}
	if _, err := CheckURL("http://127.0.0.1:8080/x", true); err != nil {
		t.Errorf("development loopback: %v", err)
	}
}

// TestPosterRefusesPrivateAddressesAtDialTime: a name that resolves to loopback is
// refused when dialled, not only when the URL is checked (DNS rebinding).
func TestPosterRefusesPrivateAddressesAtDialTime(t *testing.T) {
	called := false
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }))
	defer srv.Close()
	p := NewPoster(false)
	// localhost.localtest.me-style names are not available offline: dial the address directly.
	err := p.control("tcp", strings.TrimPrefix(srv.URL, "http://"), nil)
	if !errors.Is(err, ErrURLRefused) {
		t.Fatalf("dial control let a loopback address through: %v", err)
	}
	if err := p.Post(context.Background(), srv.URL, []byte("k"), []byte("{}")); err == nil || called {
		t.Fatalf("post to loopback: err %v, called %v", err, called)
	}
	dev := NewPoster(true)
	var sig string
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sig = r.Header.Get(HeaderSignature) }))
	defer srv2.Close()
	if err := dev.Post(context.Background(), srv2.URL, []byte("k"), []byte(`{"a":1}`)); err != nil || !strings.HasPrefix(sig, "v1=") {
		t.Fatalf("development post: %v, signature %q", err, sig)
	}
}

func TestSMTPConfig(t *testing.T) {
	for _, c := range []SMTPConfig{{From: "a@b.test"}, {Host: "smtp.example.com"}, {Host: "smtp.example.com", From: "nope"},
		{Host: "smtp.example.com:587", From: "a@b.test"}, {Host: "smtp.example.com", From: "a@b.test", Username: "u"}} {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (SMTPConfig{Host: "smtp.azurecomm.net", Port: 587, From: "a@b.test", Username: "u", Password: "p"}).Validate(); err != nil {
		t.Fatal(err)
	}
	if !loopbackHost("127.0.0.1") || loopbackHost("smtp.azurecomm.net") || loopbackHost("10.0.0.1") {
		t.Fatal("loopback detection")
	}
}

// TestSTARTTLSRequiredOutsideLoopback: a relay that is not on loopback and offers
// no STARTTLS gets nothing. The relay here listens on loopback, so the mailer is
// pointed at it under a non-loopback policy.
func TestSTARTTLSRequiredOutsideLoopback(t *testing.T) {
	m := &Mailer{cfg: SMTPConfig{Host: "smtp.example.com", Port: 587, From: "a@b.test"}}
	c, err := m.client()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.TLSPolicy(); got != "TLSMandatory" {
		t.Fatalf("remote relay TLS policy %s, want TLSMandatory", got)
	}
	m.cfg.Host = "127.0.0.1"
	if c, _ = m.client(); c.TLSPolicy() != "TLSOpportunistic" {
		t.Fatalf("loopback relay TLS policy %s", c.TLSPolicy())
	}
}
