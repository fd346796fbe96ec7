package server

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server/billing"
	"github.com/flowstudio/mcp/server/identity"
	"github.com/flowstudio/mcp/server/keyring"
	"github.com/flowstudio/mcp/server/logtest"
	"github.com/flowstudio/mcp/server/sealing"
	"github.com/flowstudio/mcp/tools"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// webHarness is the server with the real embedded store, a real listener on
// 127.0.0.1, an Entra stand-in and a log that keeps every line it writes.
type webHarness struct {
	srv     *Server
	ts      *httptest.Server
	store   *cosmos.Store
	dataDir string
	keys    *keyring.Keyring
	sealer  *sealing.Sealer
	logs    *logtest.Buffer
}

type webOptions struct {
	entra identity.App
	// entraHTTP is the sign-in's client to Entra (nil: the default).
	entraHTTP *http.Client
	settings  func(*Settings)
	sealer    *sealing.Sealer
	catalog   *tools.Catalog
	sim       http.Handler
	// metadataRoots are the TLS roots for Client ID Metadata Documents.
	metadataRoots *x509.CertPool
	// setup, when set, completes the options once the server's URL is known.
	setup func(baseURL string, h *webHarness, o *webOptions)
}

func newWebHarness(t testing.TB, o webOptions) *webHarness {
	t.Helper()
	h := &webHarness{dataDir: t.TempDir(), logs: &logtest.Buffer{}}
	var err error
	if h.store, err = cosmos.OpenEmbedded(h.dataDir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.store.Close() })
	if h.keys, err = keyring.New("web-test-token-secret-0123456789abcdef"); err != nil {
		t.Fatal(err)
	}
	var handler http.Handler = http.NotFoundHandler()
	h.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(h.ts.Close)
	if o.setup != nil {
		o.setup(h.ts.URL, h, &o)
	}
	h.sealer = o.sealer
	if h.sealer == nil {
		h.sealer = sealing.New(sealing.NewFileKeys(filepath.Join(h.dataDir, sealing.KeyFile)), sealing.Options{})
	}
	if o.catalog == nil {
		if o.catalog, err = tools.NewCatalog(&tools.Env{}, nil, 0, tools.All()); err != nil {
			t.Fatal(err)
		}
	}
	settings, err := LoadSettings(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	settings.PublicURL = h.ts.URL
	settings.Addr = h.ts.Listener.Addr().String()
	if o.settings != nil {
		o.settings(&settings)
	}
	enc := zap.NewProductionEncoderConfig()
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(h.logs), zapcore.DebugLevel))
	// Two replicas behind one URL, taking requests in turn: a sign-in started on one
	// finishes on the other, so nothing may live in one replica's memory.
	var replicas []http.Handler
	for range 2 {
		h.srv = New(Deps{Settings: settings, Logger: log, Keys: h.keys, Users: h.store, Catalog: o.catalog,
			Ready: h.store.Ping, Simulator: o.sim, Accounts: h.store, Alerts: h.store, Sealer: h.sealer, Entra: o.entra, EntraHTTPClient: o.entraHTTP,
			Version: "test", OAuth: h.store, MetadataRoots: o.metadataRoots,
			Billing: h.store, AccountData: h.store, UsageHistory: h.store, Stripe: billing.New(billing.Config{SecretKey: settings.StripeSecretKey, APIBase: settings.StripeAPIBase,
				PricePro: settings.StripePricePro, PriceTeam: settings.StripePriceTeam})})
		replicas = append(replicas, h.srv.Handler())
	}
	var turn atomic.Uint64
	handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		replicas[turn.Add(1)%uint64(len(replicas))].ServeHTTP(w, r)
	})
	return h
}

// browser is an HTTP client with a cookie jar that follows redirects, like a browser.
func (h *webHarness) browser(t testing.TB) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar}
}

// noFollow is the same client stopping at the first redirect.
func noFollow(c *http.Client) *http.Client {
	return &http.Client{Jar: c.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type webPage struct {
	status int
	url    *url.URL
	header http.Header
	body   string
}

func webFetch(t testing.TB, c *http.Client, method, target string, form url.Values, headers map[string]string) webPage {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return webPage{status: resp.StatusCode, url: resp.Request.URL, header: resp.Header, body: string(b)}
}

// signIn runs /login → authorize → /callback → /dashboard and returns the dashboard.
func (h *webHarness) signIn(t testing.TB, c *http.Client) webPage {
	t.Helper()
	p := webFetch(t, c, "GET", h.ts.URL+"/login", nil, nil)
	if p.status != 200 || p.url.Path != "/dashboard" {
		t.Fatalf("sign-in ended at %s with %d:\n%s", p.url, p.status, p.body)
	}
	return p
}

var (
	keyField     = regexp.MustCompile(`id="key-full"[^>]*value="([^"]+)"`)
	readKeyField = regexp.MustCompile(`id="key-read"[^>]*value="([^"]+)"`)
	csrfField    = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

func webMatch(t testing.TB, re *regexp.Regexp, body string) string {
	t.Helper()
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("%s not found in:\n%s", re, body)
	}
	return m[1]
}

// mcpStatus posts a ping with key and returns the HTTP status.
func (h *webHarness) mcpStatus(t testing.TB, key string) int {
	t.Helper()
	status, _ := h.mcpRefusal(t, key)
	return status
}

// post submits a dashboard form as the browser would: same Origin, its CSRF token.
func (h *webHarness) post(t testing.TB, c *http.Client, path, csrf string) webPage {
	t.Helper()
	return webFetch(t, c, "POST", h.ts.URL+path, url.Values{"csrf": {csrf}},
		map[string]string{"Origin": h.ts.URL, "Sec-Fetch-Site": "same-origin"})
}

func (h *webHarness) user(t testing.TB, id string) *cosmos.User {
	t.Helper()
	u, err := h.store.GetUser(context.Background(), id)
	if err != nil {
		t.Fatalf("user %s: %v", id, err)
	}
	return u
}

// signedUp reports whether the fake Entra user has a record.
func (h *webHarness) signedUp(t testing.TB) bool {
	t.Helper()
	_, err := h.store.GetUser(context.Background(), fakeUserID)
	if err != nil && !errors.Is(err, cosmos.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// assertNoSecrets reads every byte of the data directory (database, WAL, shared
// memory) and of the log, and fails on any of the secrets.
func (h *webHarness) assertNoSecrets(t testing.TB, secrets []string) {
	t.Helper()
	var stored bytes.Buffer
	files := 0
	err := filepath.WalkDir(h.dataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		stored.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 || stored.Len() == 0 {
		t.Fatal("the data directory holds nothing: the check would prove nothing")
	}
	logs := h.logs.String()
	if logs == "" {
		t.Fatal("nothing was logged: the check would prove nothing")
	}
	for _, s := range secrets {
		if len(s) < 6 {
			t.Fatalf("secret %q too short to search for", s)
		}
		for _, form := range []string{s, strings.ToLower(s)} {
			if bytes.Contains(stored.Bytes(), []byte(form)) {
				t.Errorf("the store holds a secret (%.12s…)", form)
			}
			if strings.Contains(logs, form) {
				t.Errorf("the log holds a secret (%.12s…)", form)
			}
		}
	}
	t.Logf("searched %d bytes in %d store files and %d bytes of log for %d secrets", stored.Len(), files, len(logs), len(secrets))
}

// Pages are parsed on first use, not at start: every page the code renders must parse
// and exist (read from the render calls in the source, the code's own list).
func TestEveryRenderedPageParses(t *testing.T) {
	h := newWebHarness(t, webOptions{})
	pages := h.srv.web.pages()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	call := regexp.MustCompile(`s\.render\(w, r, [A-Za-z.]+, "([a-z_-]+)"`)
	seen := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range call.FindAllStringSubmatch(string(src), -1) {
			seen++
			if pages[m[1]] == nil {
				t.Errorf("%s renders page %q, which has no template", f, m[1])
			}
		}
	}
	if seen < 10 || len(pages) < 10 {
		t.Fatalf("found %d render calls and %d pages: the pattern no longer matches the code", seen, len(pages))
	}
}
