package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// parseExposition checks the Prometheus text format line by line: every sample is
// `name value` and follows its own HELP and TYPE lines. It returns the samples.
func parseExposition(t *testing.T, body string) map[string]float64 {
	t.Helper()
	name := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	samples := map[string]float64{}
	helped, typed := map[string]bool{}, map[string]string{}
	if !strings.HasSuffix(body, "\n") {
		t.Fatalf("the exposition must end with a newline: %q", body)
	}
	for i, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "# HELP "):
			if len(f) < 4 || !name.MatchString(f[2]) {
				t.Fatalf("line %d: bad HELP: %q", i+1, line)
			}
			helped[f[2]] = true
		case strings.HasPrefix(line, "# TYPE "):
			if len(f) != 4 || !name.MatchString(f[2]) || (f[3] != "gauge" && f[3] != "counter") {
				t.Fatalf("line %d: bad TYPE: %q", i+1, line)
			}
			typed[f[2]] = f[3]
		default:
			if len(f) != 2 || !name.MatchString(f[0]) {
				t.Fatalf("line %d: want `name value`, got %q", i+1, line)
			}
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatalf("line %d: value %q: %v", i+1, f[1], err)
			}
			if !helped[f[0]] || typed[f[0]] == "" {
				t.Fatalf("line %d: %s has no HELP and TYPE before it", i+1, f[0])
			}
			if _, dup := samples[f[0]]; dup {
				t.Fatalf("line %d: %s twice", i+1, f[0])
			}
			samples[f[0]] = v
		}
	}
	return samples
}

func TestMetricsExposition(t *testing.T) {
	rec := httptest.NewRecorder()
	MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != MetricsContentType {
		t.Fatalf("%d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	samples := parseExposition(t, rec.Body.String())
	for _, want := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_sys_bytes",
		"go_gc_cycles_total", "process_start_time_seconds"} {
		if _, ok := samples[want]; !ok {
			t.Errorf("no %s in:\n%s", want, rec.Body.String())
		}
	}
	if samples["go_goroutines"] <= 0 {
		t.Errorf("go_goroutines %v", samples["go_goroutines"])
	}
	if samples["go_memstats_heap_inuse_bytes"] <= 0 || samples["go_memstats_sys_bytes"] < samples["go_memstats_heap_inuse_bytes"] {
		t.Errorf("heap in use %v, sys %v", samples["go_memstats_heap_inuse_bytes"], samples["go_memstats_sys_bytes"])
	}
	if start := samples["process_start_time_seconds"]; start <= 0 || start > float64(time.Now().Unix()+1) {
		t.Errorf("process_start_time_seconds %v", start)
	}
	if runtime.GOOS == "linux" {
		if samples["process_resident_memory_bytes"] <= 0 {
			t.Errorf("process_resident_memory_bytes %v on Linux", samples["process_resident_memory_bytes"])
		}
	}
	// Only process figures: nothing that names a user, a key or a request.
	for _, word := range []string{"user", "key", "tenant", "email", "token", "flow"} {
		if strings.Contains(strings.ToLower(rec.Body.String()), word) {
			t.Errorf("the exposition mentions %q", word)
		}
	}

	rec = httptest.NewRecorder()
	MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/mcp", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /mcp on the metrics handler: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/metrics", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d", rec.Code)
	}
}

func TestMetricsGCCounterCounts(t *testing.T) {
	before := parseExposition(t, string(renderMetrics()))["go_gc_cycles_total"]
	runtime.GC()
	if after := parseExposition(t, string(renderMetrics()))["go_gc_cycles_total"]; after <= before {
		t.Errorf("go_gc_cycles_total %v after a GC, %v before", after, before)
	}
}

func TestMetricsAddrSetting(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	s, err := LoadSettings(env())
	if err != nil || s.MetricsAddr != "" {
		t.Fatalf("default: %q %v", s.MetricsAddr, err)
	}
	for _, ok := range [][]string{
		{"FLOWSTUDIO_METRICS_ADDR", "127.0.0.1:9090"},
		{"FLOWSTUDIO_METRICS_ADDR", "0.0.0.0:9090", "FLOWSTUDIO_ADDR", "0.0.0.0:8080"}, // any host
		{"FLOWSTUDIO_METRICS_ADDR", "127.0.0.1:0", "FLOWSTUDIO_ADDR", "127.0.0.1:0"},
		{"FLOWSTUDIO_METRICS_ADDR", "127.0.0.2:8080", "FLOWSTUDIO_ADDR", "127.0.0.1:8080"},
	} {
		if s, err := LoadSettings(env(ok...)); err != nil || s.MetricsAddr != ok[1] {
			t.Errorf("%v: %q %v", ok, s.MetricsAddr, err)
		}
	}
	for _, bad := range []struct{ kv []string }{
		{[]string{"FLOWSTUDIO_METRICS_ADDR", "127.0.0.1:8080"}}, // the default FLOWSTUDIO_ADDR
		{[]string{"FLOWSTUDIO_METRICS_ADDR", "0.0.0.0:8080", "FLOWSTUDIO_ADDR", "127.0.0.1:8080"}},
		{[]string{"FLOWSTUDIO_METRICS_ADDR", ":8080", "FLOWSTUDIO_ADDR", "0.0.0.0:8080"}},
		{[]string{"FLOWSTUDIO_METRICS_ADDR", "127.0.0.1:8080", "FLOWSTUDIO_ADDR", "0.0.0.0:8080"}},
	} {
		if _, err := LoadSettings(env(bad.kv...)); err == nil || !strings.Contains(err.Error(), "FLOWSTUDIO_ADDR") {
			t.Errorf("%v: want a refusal naming FLOWSTUDIO_ADDR, got %v", bad.kv, err)
		}
	}
	for _, bad := range []string{"9090", "metrics", "127.0.0.1:http", "127.0.0.1:99999"} {
		if _, err := LoadSettings(env("FLOWSTUDIO_METRICS_ADDR", bad)); err == nil || !strings.Contains(err.Error(), "HOST:PORT") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// StartMetrics serves the handler on its own listener, which Shutdown closes.
func TestMetricsListener(t *testing.T) {
	m, err := StartMetrics("127.0.0.1:0", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + m.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	parseExposition(t, string(b))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get("http://" + m.Addr() + "/metrics"); err == nil {
		resp.Body.Close()
		t.Fatal("the listener still answers after Shutdown")
	}
}

// The public handler never serves /metrics, whatever FLOWSTUDIO_METRICS_ADDR says.
func TestPublicHandlerHasNoMetrics(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.MetricsAddr = "127.0.0.1:9090" })
	for _, path := range []string{"/metrics", "/metrics/"} {
		if rec := h.do(t, http.MethodGet, path, nil, ""); rec.Code != http.StatusNotFound || strings.Contains(rec.Body.String(), "go_goroutines") {
			t.Errorf("GET %s on the public handler: %d %.100s", path, rec.Code, rec.Body.String())
		}
	}
}
