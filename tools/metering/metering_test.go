package metering_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"
	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/tools"
	"github.com/flowstudio/mcp/tools/metering"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
)

// lines is a concurrency-safe buffer of log lines.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) Sync() error { return nil }

func (l *lines) objects(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON line: %s", sc.Bytes())
		}
		out = append(out, m)
	}
	return out
}

var fixedNow = time.Date(2026, 3, 4, 10, 30, 15, 0, time.UTC)

// countMe is a live tool that does nothing and calls nothing upstream.
func countMe() *tools.Tool {
	return tools.Define(tools.Tool{Name: "count_me", Title: "Count me", Description: "A test tool that only gets counted.",
		Kind: tools.ReadOnly, Group: tools.Live,
		Input: json.RawMessage(`{"type":"object","additionalProperties":false,"properties":{"environmentName":{"type":"string"}}}`)},
		func(context.Context, *tools.Env, struct {
			EnvironmentName string `json:"environmentName"`
		}) (map[string]int, error) {
			return map[string]int{"n": 1}, nil
		})
}

type harness struct {
	h     http.Handler
	meter *metering.Meter
	log   *lines
}

func newHarness(t *testing.T, store metering.Store, quotas metering.Quotas, env *tools.Env) *harness {
	t.Helper()
	log := &lines{}
	m := metering.New(metering.Options{Store: store, Quotas: quotas, DashboardURL: "https://fs.example/dashboard",
		Log: metering.NewLogger(log), Now: func() time.Time { return fixedNow }})
	if env == nil {
		env = &tools.Env{DashboardURL: "https://fs.example/dashboard", Reports: reportSink{}}
	}
	c, err := tools.NewCatalog(env, m, 0, append(tools.All(), countMe()))
	if err != nil {
		t.Fatal(err)
	}
	s := rpc.NewServer(rpc.Options{SessionSecret: bytes.Repeat([]byte("s"), 32)})
	c.Register(s)
	return &harness{h: s, meter: m, log: log}
}

type reportSink struct{}

func (reportSink) AddBugReport(_ context.Context, r *cosmos.BugReport) (*cosmos.BugReport, error) {
	c := *r
	c.ID, c.CreatedAt = "r1", fixedNow.Unix()
	return &c, nil
}

type result struct {
	IsError bool
	Text    string
}

var reqSeq atomic.Int64

func (h *harness) call(t *testing.T, p *tools.Principal, name string, args any) result {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
		"params": map[string]any{"name": name, "arguments": args}})
	req := httptest.NewRequest(http.MethodPost, "/mcp", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	ctx := rpc.WithRequestID(req.Context(), fmt.Sprintf("req-%d", reqSeq.Add(1)))
	req = req.WithContext(tools.WithPrincipal(ctx, p))
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	var resp struct {
		Result struct {
			Content []struct{ Text string } `json:"content"`
			IsError bool                    `json:"isError"`
		} `json:"result"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || len(resp.Result.Content) == 0 {
		t.Errorf("tools/call %s: %d %s", name, rec.Code, rec.Body)
		return result{IsError: true}
	}
	return result{IsError: resp.Result.IsError, Text: resp.Result.Content[0].Text}
}

func mustOpenEmbedded(t *testing.T, dir string) *cosmos.Store {
	t.Helper()
	s, err := cosmos.OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func principal(user string, tier tools.Tier) *tools.Principal {
	return &tools.Principal{UserID: "tenant." + user, TenantID: "tenant", ObjectID: user,
		EmailHash: "0123456789abcdef" + fmt.Sprintf("%x", user), Tier: tier, Scope: tools.ScopeFull}
}

// TestMeteringLineFields asserts the exact key set of metering lines, with and
// without the optional environment and upstream_status.
func TestMeteringLineFields(t *testing.T) {
	simulator := sim.New(sim.Options{})
	upstream := httptest.NewServer(simulator.Handler())
	defer upstream.Close()
	pa, err := powerautomate.New(simulator.Config(upstream.URL), simulator.TokenSourceFor("alice@contoso.com"))
	if err != nil {
		t.Fatal(err)
	}
	store := mustOpenEmbedded(t, t.TempDir())
	h := newHarness(t, store, metering.DefaultQuotas, &tools.Env{PA: pa, DashboardURL: "https://fs.example/dashboard"})
	p := principal("alice", tools.TierPro)

	if r := h.call(t, p, "list_live_environments", map[string]any{}); r.IsError {
		t.Fatalf("list_live_environments: %s", r.Text)
	}
	h.call(t, p, "count_me", map[string]any{"environmentName": "Default-1234"})
	h.call(t, p, "tool_search", map[string]any{"query": "flows"})
	h.call(t, p, "count_me", map[string]any{"bogus": true}) // refused before it runs: still one line

	got := h.log.objects(t)
	if len(got) != 4 {
		t.Fatalf("%d lines, want one per call:\n%v", len(got), got)
	}
	base := []string{"ts", "tool", "user", "tier", "latency_ms", "bytes", "request_id"}
	want := [][]string{
		append(slices.Clone(base), "upstream_status"),
		append(slices.Clone(base), "environment"),
		base,
		base,
	}
	for i, line := range got {
		var keys []string
		for k := range line {
			keys = append(keys, k)
			if !slices.Contains(metering.Fields, k) {
				t.Errorf("line %d: key %q is not a metering field", i, k)
			}
		}
		sort.Strings(keys)
		sort.Strings(want[i])
		if !slices.Equal(keys, want[i]) {
			t.Errorf("line %d keys %v, want exactly %v", i, keys, want[i])
		}
		if line["user"] != p.EmailHash || line["tier"] != "pro" || !strings.HasPrefix(line["request_id"].(string), "req-") {
			t.Errorf("line %d: %v", i, line)
		}
		if _, err := time.Parse(time.RFC3339, line["ts"].(string)); err != nil || !strings.HasSuffix(line["ts"].(string), "Z") {
			t.Errorf("line %d: ts %v is not UTC RFC 3339", i, line["ts"])
		}
		if n, ok := line["bytes"].(float64); !ok || n < 20 {
			t.Errorf("line %d: bytes %v", i, line["bytes"])
		}
	}
	if got[0]["upstream_status"] != float64(200) || got[0]["tool"] != "list_live_environments" {
		t.Errorf("upstream line: %v", got[0])
	}
	if got[1]["environment"] != "Default-1234" {
		t.Errorf("environment line: %v", got[1])
	}
}

func TestQuotaRefusal(t *testing.T) {
	store := mustOpenEmbedded(t, t.TempDir())
	quotas := metering.Quotas{Free: metering.Quota{PerDay: 3, PerMinute: 2}, Pro: metering.Quota{PerDay: 100, PerMinute: 100},
		Team: metering.Quota{PerDay: 4, PerMinute: 100}}
	h := newHarness(t, store, quotas, nil)

	t.Run("per minute", func(t *testing.T) {
		p := principal("minute", tools.TierFree)
		for i := range 2 {
			if r := h.call(t, p, "count_me", map[string]any{}); r.IsError {
				t.Fatalf("call %d: %s", i, r.Text)
			}
		}
		r := h.call(t, p, "count_me", map[string]any{})
		for _, want := range []string{"quota reached", "free plan allows 2 tool calls per minute", "2026-03-04 10:31:00 (UTC)",
			"https://fs.example/dashboard", "upgrade"} {
			if !r.IsError || !strings.Contains(r.Text, want) {
				t.Errorf("refusal %q lacks %q", r.Text, want)
			}
		}
		if n, _ := store.Usage(t.Context(), p.UserID, cosmos.PerMinute, fixedNow); n != 2 {
			t.Errorf("minute counter %d after a refusal, want 2 (refusals are taken back)", n)
		}
		if n, _ := store.Usage(t.Context(), p.UserID, cosmos.PerDay, fixedNow); n != 2 {
			t.Errorf("day counter %d after a refusal, want 2", n)
		}
	})
	t.Run("per day on the team plan", func(t *testing.T) {
		p := principal("day", tools.TierTeam)
		for range 4 {
			h.call(t, p, "count_me", map[string]any{})
		}
		r := h.call(t, p, "count_me", map[string]any{})
		for _, want := range []string{"team plan allows 4 tool calls per day", "2026-03-05 00:00:00 (UTC)", "contact us"} {
			if !r.IsError || !strings.Contains(r.Text, want) {
				t.Errorf("refusal %q lacks %q", r.Text, want)
			}
		}
		u, err := metering.UsageToday(t.Context(), store, quotas, p.UserID, p.Tier, fixedNow)
		if err != nil {
			t.Fatal(err)
		}
		want := metering.Usage{UsedDay: 4, LimitDay: 4, UsedMinute: 4, LimitMinute: 100,
			DayResets: time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC), MinuteResets: time.Date(2026, 3, 4, 10, 31, 0, 0, time.UTC)}
		if u != want {
			t.Errorf("UsageToday = %+v, want %+v", u, want)
		}
	})
	t.Run("meta tools work past quota and are not counted", func(t *testing.T) {
		p := principal("meta", tools.TierFree)
		for range 2 {
			h.call(t, p, "count_me", map[string]any{})
		}
		if r := h.call(t, p, "count_me", map[string]any{}); !r.IsError {
			t.Fatal("not over quota")
		}
		for name, args := range map[string]any{
			"tool_search": map[string]any{"query": "flows"},
			"list_skills": map[string]any{},
			"report_bug":  map[string]any{"title": "quota", "description": "I ran out"},
		} {
			for range 5 {
				if r := h.call(t, p, name, args); r.IsError {
					t.Fatalf("%s past quota: %s", name, r.Text)
				}
			}
		}
		if n, _ := store.Usage(t.Context(), p.UserID, cosmos.PerDay, fixedNow); n != 2 {
			t.Errorf("day counter %d, want 2: meta calls were counted", n)
		}
	})
}

// failingStore fails every increment.
type failingStore struct{ metering.Store }

func (failingStore) IncrementUsage(context.Context, string, cosmos.Period, time.Time, int64) (int64, error) {
	return 0, fmt.Errorf("cosmos: increment usage/day-x: %w: dial https://acct.documents.azure.com/dbs/flowstudio?sig=SECRET", cosmos.ErrUnavailable)
}

func TestStoreFailureFailsClosed(t *testing.T) {
	h := newHarness(t, failingStore{}, metering.DefaultQuotas, nil)
	p := principal("x", tools.TierPro)
	r := h.call(t, p, "count_me", map[string]any{})
	if !r.IsError || !strings.Contains(r.Text, "retry in a few seconds") || strings.Contains(r.Text, "SECRET") {
		t.Fatalf("got %+v", r)
	}
	if r := h.call(t, p, "list_skills", map[string]any{}); r.IsError {
		t.Fatalf("meta tools need no counter: %s", r.Text)
	}
}

// countingStore counts store round trips.
type countingStore struct {
	metering.Store
	increments atomic.Int64
}

func (c *countingStore) IncrementUsage(ctx context.Context, userID string, p cosmos.Period, at time.Time, by int64) (int64, error) {
	c.increments.Add(1)
	return c.Store.IncrementUsage(ctx, userID, p, at, by)
}

// TestStoreRoundTripsPerCall pins the store round trips metering adds to a
// tools/call (the API-key check adds one user read; server tests count that).
func TestStoreRoundTripsPerCall(t *testing.T) {
	store := &countingStore{Store: mustOpenEmbedded(t, t.TempDir())}
	quotas := metering.Quotas{Free: metering.Quota{PerDay: 1, PerMinute: 1}}
	h := newHarness(t, store, quotas, nil)
	p := principal("rt", tools.TierFree)
	for _, tc := range []struct {
		tool string
		args any
		want int64
	}{
		{"count_me", map[string]any{}, 2},                // admitted: day + minute increments, in parallel
		{"count_me", map[string]any{}, 4},                // refused: both increments, then both taken back
		{"tool_search", map[string]any{"query": "x"}, 0}, // meta: none
		{"count_me", map[string]any{"bad": 1}, 0},        // invalid arguments: none
	} {
		before := store.increments.Load()
		h.call(t, p, tc.tool, tc.args)
		if got := store.increments.Load() - before; got != tc.want {
			t.Errorf("%s: %d store round trips, want %d", tc.tool, got, tc.want)
		}
	}
}

// runQuotaRace makes two catalogs, each with its own Meter and its own handle on
// one store, consume one user's quota from many goroutines, and returns how
// many calls were admitted.
func runQuotaRace(t *testing.T, s1, s2 metering.Store, q metering.Quota, calls int) int {
	t.Helper()
	quotas := metering.Quotas{Free: q, Pro: q, Team: q}
	a, b := newHarness(t, s1, quotas, nil), newHarness(t, s2, quotas, nil)
	p := principal("race"+rand.Text()[:6], tools.TierPro)
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			for j := range calls / 32 {
				h := a
				if (i+j)%2 == 1 {
					h = b
				}
				if r := h.call(t, p, "count_me", map[string]any{}); !r.IsError {
					admitted.Add(1)
				} else if !strings.Contains(r.Text, "quota reached") {
					t.Errorf("unexpected refusal: %s", r.Text)
				}
			}
		})
	}
	wg.Wait()
	day, _ := s1.Usage(t.Context(), p.UserID, cosmos.PerDay, fixedNow)
	minute, _ := s2.Usage(t.Context(), p.UserID, cosmos.PerMinute, fixedNow)
	// Refusals are taken back; one whose take-back failed (a store timeout under
	// load) leaves a counter one too high, never too low.
	if day < admitted.Load() || minute < admitted.Load() {
		t.Errorf("counters day %d minute %d after the race, below the %d admitted calls", day, minute, admitted.Load())
	} else if day != admitted.Load() || minute != admitted.Load() {
		t.Logf("counters day %d minute %d for %d admitted calls: a take-back failed under load", day, minute, admitted.Load())
	}
	return int(admitted.Load())
}

func testQuotaAcrossReplicas(t *testing.T, open func(t *testing.T) (metering.Store, metering.Store)) {
	for _, tc := range []struct {
		name string
		q    metering.Quota
		want int
	}{
		{"day limit binds", metering.Quota{PerDay: 25, PerMinute: 1000}, 25},
		{"minute limit binds", metering.Quota{PerDay: 1000, PerMinute: 17}, 17},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s1, s2 := open(t)
			// The documented bound: never more than the limit. With one binding
			// counter the first refusal can only come once the limit is used up,
			// so exactly the limit is admitted.
			if got := runQuotaRace(t, s1, s2, tc.q, 192); got != tc.want {
				t.Fatalf("%d calls admitted, want exactly %d", got, tc.want)
			}
		})
	}
}

func TestQuotaAcrossReplicasEmbedded(t *testing.T) {
	testQuotaAcrossReplicas(t, func(t *testing.T) (metering.Store, metering.Store) {
		dir := t.TempDir()
		return mustOpenEmbedded(t, dir), mustOpenEmbedded(t, dir) // one data dir opened twice
	})
}

// crossPartitionHeader works around @vercel/cosmosdb-server's 500 for a missing
// item (see package cosmos's tests).
type crossPartitionHeader struct{}

func (crossPartitionHeader) Do(r *policy.Request) (*http.Response, error) {
	r.Raw().Header.Set("x-ms-documentdb-query-enablecrosspartition", "True")
	return r.Next()
}

const emulatorKey = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="

func TestQuotaAcrossReplicasCosmos(t *testing.T) {
	endpoint := os.Getenv("COSMOS_TEST_ENDPOINT")
	if endpoint == "" {
		t.Skip("COSMOS_TEST_ENDPOINT is not set")
	}
	testQuotaAcrossReplicas(t, func(t *testing.T) (metering.Store, metering.Store) {
		database := "metering-" + rand.Text()[:10]
		open := func() *cosmos.Store {
			s, err := cosmos.OpenCosmos(t.Context(), cosmos.CosmosConfig{Endpoint: endpoint, Database: database, Key: emulatorKey,
				ClientOptions: &azcosmos.ClientOptions{ClientOptions: azcore.ClientOptions{PerCallPolicies: []policy.Policy{crossPartitionHeader{}}}}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		s1, s2 := open(), open()
		if err := s1.Provision(t.Context()); err != nil {
			t.Fatal(err)
		}
		return s1, s2
	})
}

func TestParseQuota(t *testing.T) {
	for in, want := range map[string]metering.Quota{"200/20": {200, 20}, " 5000 / 120 ": {5000, 120}, "1/1": {1, 1}} {
		if got, err := metering.ParseQuota(in); err != nil || got != want {
			t.Errorf("ParseQuota(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "200", "200/", "/20", "0/0", "20/200", "-1/1", "1.5/1", "a/b", "2000000000/1"} {
		if _, err := metering.ParseQuota(bad); err == nil {
			t.Errorf("ParseQuota(%q) accepted", bad)
		}
	}
	if q := metering.DefaultQuotas.For("bogus"); q != metering.DefaultQuotas.Free {
		t.Errorf("an unknown tier gets %v", q)
	}
}

// BenchmarkAdmit measures the quota check on the embedded store: two parallel
// increments per admitted call.
func BenchmarkAdmit(b *testing.B) {
	store, err := cosmos.OpenEmbedded(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	m := metering.New(metering.Options{Store: store, Quotas: metering.Quotas{Free: metering.Quota{PerDay: 1 << 40, PerMinute: 1 << 40}}})
	p := principal("bench", tools.TierFree)
	tool := countMe()
	ctx := context.Background()
	for b.Loop() {
		if err := m.Admit(ctx, p, tool); err != nil {
			b.Fatal(err)
		}
	}
}
