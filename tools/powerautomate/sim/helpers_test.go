package sim

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

// testSeed makes every test sim share one signing key (generated once).
var testSeed = []byte("sim package tests")

const (
	alice = "alice@contoso.com"
	bob   = "bob@contoso.com"
	fiona = "fiona@fabrikam.com"
)

func newTestSim(t *testing.T, opts Options) (*Sim, *httptest.Server) {
	t.Helper()
	if opts.KeySeed == nil {
		opts.KeySeed = testSeed
	}
	s := New(opts)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv
}

func newTestClient(t *testing.T, s *Sim, base, email string) *powerautomate.Client {
	t.Helper()
	cfg := s.Config(base)
	cfg.RetryBackoff = time.Millisecond
	cfg.Timeout = 10 * time.Second
	c, err := powerautomate.New(cfg, s.TokenSourceFor(email))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ref(env, flow string) powerautomate.FlowRef {
	return powerautomate.FlowRef{Environment: env, Flow: flow}
}

var ctx = context.Background()

// rawCall sends one request and returns status and body.
func rawCall(t *testing.T, method, url, token string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// flowToken mints a Flow token for alice.
func flowToken(s *Sim, email string, ttl time.Duration) string {
	tid, oid := s.UserFor(email)
	return s.MintAccessToken(tid, oid, "https://service.flow.microsoft.com/", []string{"Flows.Read.All", "Flows.Manage.All"}, ttl)
}

// wantAPIError asserts err is an *APIError with this status and code.
func wantAPIError(t *testing.T, err error, status int, code string) *powerautomate.APIError {
	t.Helper()
	var apiErr *powerautomate.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != status || apiErr.Code != code {
		t.Fatalf("err = %v (%+v), want %d %s", err, apiErr, status, code)
	}
	return apiErr
}

// waitRun polls a run until it leaves Running.
func waitRun(t *testing.T, c *powerautomate.Client, r powerautomate.FlowRef, name string) *powerautomate.Run {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		run, err := c.GetRun(ctx, r, name, false)
		if err != nil {
			t.Fatal(err)
		}
		if run.Status != "Running" || time.Now().After(deadline) {
			return run
		}
		time.Sleep(20 * time.Millisecond)
	}
}
