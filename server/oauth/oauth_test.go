package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestValidateRedirectURI(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		uri string
		ok  bool
	}{
		{"https://claude.ai/api/mcp/auth_callback", true},
		{"https://chatgpt.com/connector_platform_oauth_redirect", true},
		{"http://127.0.0.1:6274/oauth/callback", true},
		{"http://localhost:3000/cb", true},
		{"http://[::1]:8080/cb", true},
		{"com.example.app:/callback", true},
		{"http://evil.example/cb", false},
		{"http://10.0.0.1/cb", false},
		{"javascript:alert(1)", false},
		{"JavaScript://x/%0aalert(1)", false},
		{"data:text/html,hi", false},
		{"file:///etc/passwd", false},
		{"https://claude.ai/cb#frag", false},
		{"https://user:pw@claude.ai/cb", false},
		{"/relative/cb", false},
		{"myapp:/cb", false}, // not reverse-domain
		{"https:///nohost", false},
		{"", false},
		{"https://x.example/" + strings.Repeat("a", 600), false},
	} {
		if err := ValidateRedirectURI(c.uri); (err == nil) != c.ok {
			t.Errorf("ValidateRedirectURI(%q) = %v, want ok=%v", c.uri, err, c.ok)
		}
	}
}

func TestNormalizeScope(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"": ScopeFull, "mcp:full": ScopeFull, "mcp:read": ScopeRead,
		"mcp:read mcp:full": ScopeFull, "mcp:read offline_access": ScopeRead} {
		if got, ok := NormalizeScope(in); !ok || got != want {
			t.Errorf("NormalizeScope(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, bad := range []string{"admin", "mcp:full openid", "mcp:*"} {
		if _, ok := NormalizeScope(bad); ok {
			t.Errorf("NormalizeScope(%q) accepted", bad)
		}
	}
}

func TestVerifyPKCE(t *testing.T) {
	t.Parallel()
	verifier := strings.Repeat("a1-._~", 8)
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	if !VerifyPKCE(verifier, challenge) {
		t.Fatal("the right verifier is refused")
	}
	for _, v := range []string{"", verifier[:42], verifier + "x", strings.Repeat("a", 129), strings.Repeat("a", 42) + "!"} {
		if VerifyPKCE(v, challenge) {
			t.Errorf("verifier %q accepted", v)
		}
	}
	if VerifyPKCE(challenge, challenge) { // plain: the challenge itself as verifier
		t.Error("plain PKCE accepted")
	}
}

func TestAccessTokens(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tok := NewTokens([]byte("k-0123456789abcdef0123456789abcdef"), func() time.Time { return now })
	at, ttl, err := tok.Issue("https://h/oauth", "https://h/mcp/oauth", "t.o", 3, "g1", ScopeRead, "c1")
	if err != nil || ttl > time.Hour {
		t.Fatal(err, ttl)
	}
	c, err := tok.Verify(at, "https://h/oauth", "https://h/mcp/oauth")
	if err != nil || c.Subject != "t.o" || c.Generation != 3 || c.GrantID != "g1" || c.Scope != ScopeRead {
		t.Fatalf("%+v %v", c, err)
	}
	if c.ExpiresAt.Sub(c.IssuedAt.Time) > time.Hour {
		t.Fatal("an access token lives longer than an hour")
	}
	if _, err := tok.Verify(at, "https://h/oauth", "https://other/mcp/oauth"); err == nil {
		t.Error("a token for another audience passed")
	}
	if _, err := tok.Verify(at, "https://other/oauth", "https://h/mcp/oauth"); err == nil {
		t.Error("a token from another issuer passed")
	}
	other := NewTokens([]byte("other-key-0123456789abcdef01234567"), func() time.Time { return now })
	if _, err := other.Verify(at, "https://h/oauth", "https://h/mcp/oauth"); err == nil {
		t.Error("a token under another key passed")
	}
	later := NewTokens([]byte("k-0123456789abcdef0123456789abcdef"), func() time.Time { return now.Add(time.Hour + time.Minute) })
	if _, err := later.Verify(at, "https://h/oauth", "https://h/mcp/oauth"); err == nil {
		t.Error("an expired token passed")
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "https://h/oauth",
		Audience: jwt.ClaimStrings{"https://h/mcp/oauth"}, Subject: "t.o", ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))},
		GrantID: "g1", Scope: ScopeFull}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if _, err := tok.Verify(none, "https://h/oauth", "https://h/mcp/oauth"); err == nil {
		t.Error("alg none passed")
	}
}

func TestPublicAddr(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{"93.184.216.34": true, "2606:4700::1": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "100.64.0.1": false, "0.0.0.0": false, "::ffff:10.0.0.1": false,
		"fd00::1": false, "fe80::1": false, "224.0.0.1": false, "64:ff9b::a00:1": false} {
		if got := publicAddr(netip.MustParseAddr(addr), false); got != want {
			t.Errorf("publicAddr(%s) = %v, want %v", addr, got, want)
		}
	}
	if !publicAddr(netip.MustParseAddr("127.0.0.1"), true) {
		t.Error("loopback refused in embedded mode")
	}
}

// metadataServer serves client metadata documents over TLS on loopback.
func metadataServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *Fetcher) {
	t.Helper()
	ts := httptest.NewTLSServer(h)
	t.Cleanup(ts.Close)
	pool := ts.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	return ts, NewFetcher(true, pool)
}

func TestFetchClientMetadataDocument(t *testing.T) {
	t.Parallel()
	var base string
	ts, f := metadataServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/good.json":
			_ = json.NewEncoder(w).Encode(map[string]any{"client_id": base + "/good.json", "client_name": "Good app",
				"redirect_uris": []string{"http://127.0.0.1:5000/cb"}, "token_endpoint_auth_method": "none"})
		case "/huge.json":
			w.Write([]byte(`{"client_id":"` + base + `/huge.json","client_name":"`))
			chunk := []byte(strings.Repeat("x", 1<<16))
			for range 160 { // 10 MB
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/loop.json":
			http.Redirect(w, r, "/loop.json", http.StatusFound)
		case "/other-id.json":
			_ = json.NewEncoder(w).Encode(map[string]any{"client_id": base + "/good.json", "redirect_uris": []string{"https://a.example/cb"}})
		case "/js.json":
			_ = json.NewEncoder(w).Encode(map[string]any{"client_id": base + "/js.json", "redirect_uris": []string{"javascript:alert(1)"}})
		case "/secret.json":
			_ = json.NewEncoder(w).Encode(map[string]any{"client_id": base + "/secret.json", "redirect_uris": []string{"https://a.example/cb"},
				"token_endpoint_auth_method": "client_secret_basic"})
		default:
			http.NotFound(w, r)
		}
	})
	base = ts.URL
	ctx := context.Background()
	c, oe := f.Fetch(ctx, base+"/good.json")
	if oe != nil || c.Name != "Good app" || !c.HasRedirect("http://127.0.0.1:5000/cb") || c.HasRedirect("http://127.0.0.1:5000/cb/x") {
		t.Fatalf("good document: %+v %v", c, oe)
	}
	for path, want := range map[string]string{"/huge.json": "larger than 64 KiB", "/loop.json": "redirects too often",
		"/other-id.json": "not its own URL", "/js.json": "scheme is not a redirect URI", "/secret.json": "public clients",
		"/missing.json": "HTTP 404"} {
		if _, oe := f.Fetch(ctx, base+path); oe == nil || oe.Code != "invalid_client" || !strings.Contains(oe.Description, want) {
			t.Errorf("%s: %v, want invalid_client saying %q", path, oe, want)
		}
	}
	// Outside embedded mode loopback is refused like any private address, before a
	// connection is made.
	strict := NewFetcher(false, nil)
	localhost := strings.Replace(base, "127.0.0.1", "localhost", 1) // a name that resolves to loopback
	for _, u := range []string{base + "/good.json", localhost + "/good.json", "https://10.0.0.1/client.json", "https://169.254.169.254/latest.json", "https://[fd00::1]/c.json"} {
		if _, oe := strict.Fetch(ctx, u); oe == nil || !strings.Contains(oe.Description, "does not fetch from") {
			t.Errorf("%s: %v, want a refusal of the address", u, oe)
		}
	}
	for _, u := range []string{"http://a.example/c.json", "https://a.example/", "https://a.example", "https://u@a.example/c.json",
		"https://a.example/c.json#x", "https://a.example/x/../c.json"} {
		if _, oe := strict.Fetch(ctx, u); oe == nil || oe.Code != "invalid_client" {
			t.Errorf("%s accepted as a client id URL", u)
		}
	}
}

func TestRegistrationLimit(t *testing.T) {
	t.Parallel()
	now := time.Unix(6000, 0)
	l := &RegistrationLimit{PerMinute: 3, now: func() time.Time { return now }}
	for i := range 3 {
		if !l.Allow() {
			t.Fatalf("registration %d refused under the limit", i+1)
		}
	}
	if l.Allow() {
		t.Fatal("a fourth registration in the minute was allowed")
	}
	now = now.Add(time.Minute)
	if !l.Allow() {
		t.Fatal("the next minute starts over")
	}
}
