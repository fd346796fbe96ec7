package sim

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
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

// testClock is a test sim's clock: it moves a microsecond a reading (so that
// what happens later is later) and otherwise only when a test moves it, so no
// test sleeps to let time pass.
type testClock struct{ ns atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Unix(0, c.ns.Add(int64(time.Microsecond))) }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// clocks maps a test sim to its clock.
var clocks sync.Map

func clockOf(s *Sim) *testClock { c, _ := clocks.Load(s); return c.(*testClock) }

func newTestSim(t *testing.T, opts Options) (*Sim, *httptest.Server) {
	t.Helper()
	if opts.KeySeed == nil {
		opts.KeySeed = testSeed
	}
	var clock *testClock
	if opts.Now == nil {
		clock = &testClock{}
		clock.ns.Store(time.Now().UnixNano())
		opts.Now = clock.now
	}
	s := New(opts)
	if clock != nil {
		clocks.Store(s, clock)
		t.Cleanup(func() { clocks.Delete(s) })
	}
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

// finishRun moves the sim's clock past the end of a live run (its actions take
// milliseconds each) and reads the run.
func finishRun(t *testing.T, s *Sim, c *powerautomate.Client, r powerautomate.FlowRef, name string) *powerautomate.Run {
	t.Helper()
	clockOf(s).advance(time.Minute)
	run, err := c.GetRun(ctx, r, name, false)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// newAliceSim is the usual start of a test: a default sim, its server, and a
// client signed in as alice.
func newAliceSim(t *testing.T) (*Sim, *httptest.Server, *powerautomate.Client) {
	t.Helper()
	s, srv := newTestSim(t, Options{})
	return s, srv, newTestClient(t, s, srv.URL, alice)
}

// newAliceClient is newAliceSim for a test that needs only the client.
func newAliceClient(t *testing.T) *powerautomate.Client {
	t.Helper()
	_, _, c := newAliceSim(t)
	return c
}

// newestRun is the flow's newest run, as the first page of its run list has it.
func newestRun(t *testing.T, c *powerautomate.Client, r powerautomate.FlowRef) powerautomate.Run {
	t.Helper()
	p, err := c.ListRuns(ctx, r, powerautomate.ListRunsOptions{Top: 1})
	if err != nil || len(p.Runs) == 0 {
		t.Fatalf("newest run of %s: %v", r.Flow, err)
	}
	return p.Runs[0]
}
