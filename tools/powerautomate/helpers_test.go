package powerautomate

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTokens returns "tok:<audience>" so servers can check which audience
// a request was authorized for.
type fakeTokens struct{}

func (fakeTokens) Token(_ context.Context, aud string) (string, error) { return "tok:" + aud, nil }

const (
	testEnv  = "Default-d87a7535-dd31-4437-bfe1-95340acd55c5"
	testFlow = "fc2d4ef5-4151-4e93-9aaa-1f380d7ed95d"
	testRun  = "08586653536760200319026785874CU62"
)

// upstream is an httptest server that records what it saw.
type upstream struct {
	*httptest.Server
	mu    sync.Mutex
	hits  int
	auths []string
}

func newUpstream(t *testing.T, mux *http.ServeMux) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.hits++
		u.auths = append(u.auths, r.Header.Get("Authorization"))
		u.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) seen() (int, []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits, append([]string(nil), u.auths...)
}

// testConfig points every API at one server, with fast retries.
func testConfig(base string) Config {
	return Config{
		FlowURL: base + "/flow", PowerAppsURL: base + "/powerapps", BAPURL: base + "/bap",
		PowerPlatformURL: base + "/ppapi/{envhost}", ApihubURL: base + "/apihub",
		// No test server is a content host unless a test says so.
		ContentHosts: []string{"content.invalid"}, RuntimeHosts: []string{},
		Timeout: 5 * time.Second, RetryBackoff: time.Millisecond, MaxRetryWait: 3 * time.Second,
		HTTPClient: &http.Client{},
	}
}

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg, fakeTokens{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func hostOf(u string) string { return strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://") }

// writeJSON answers with a JSON body.
func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write([]byte(body))
}

// requireAuth fails the test unless the request carries the token for aud.
func requireAuth(t *testing.T, r *http.Request, aud string) {
	t.Helper()
	if got := r.Header.Get("Authorization"); got != "Bearer tok:"+aud {
		t.Errorf("%s %s: Authorization = %q, want token for %s", r.Method, r.URL.Path, got, aud)
	}
}

// environmentsAfterAFailure serves the environment list: the first request gets
// status and body (with retryAfter as Retry-After when set), the others one
// default environment. It returns how many requests came.
func environmentsAfterAFailure(retryAfter string, status int, body string) (*http.ServeMux, *int) {
	mux := http.NewServeMux()
	calls := new(int)
	mux.HandleFunc("GET /flow/providers/Microsoft.ProcessSimple/environments", func(w http.ResponseWriter, r *http.Request) {
		*calls++
		if *calls == 1 {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			writeJSON(w, status, body)
			return
		}
		writeJSON(w, 200, `{"value":[{"name":"`+testEnv+`","properties":{"displayName":"Contoso","isDefault":true}}]}`)
	})
	return mux, calls
}
