package otelexport

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowstudio/mcp/server/telemetry"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

func noEnv(string) string { return "" }

// scrape reads /metrics from a running exporter and parses it with the Prometheus
// text parser: a body it cannot parse fails the test.
func scrape(t *testing.T, addr string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ContentType) {
		t.Fatalf("GET /metrics: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("not the Prometheus text format: %v\n%s", err, b)
	}
	return families, string(b)
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// find returns the sample of family name whose labels include want.
func find(families map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	for _, m := range families[name].GetMetric() {
		got := labels(m)
		match := true
		for k, v := range want {
			if got[k] != v {
				match = false
			}
		}
		if match {
			return m
		}
	}
	return nil
}

func counter(families map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	if m := find(families, name, want); m != nil {
		return m.GetCounter().GetValue()
	}
	return 0
}

func startPrometheus(t *testing.T) *Exporter {
	t.Helper()
	e, err := Start(t.Context(), Options{MetricsAddr: "127.0.0.1:0", Version: "test", Log: zap.NewNop(), Getenv: noEnv})
	if err != nil || e == nil {
		t.Fatalf("Start: %v %v", e, err)
	}
	t.Cleanup(func() { _ = e.Shutdown(context.Background()) })
	return e
}

// Every counter of package telemetry shows in the exposition under its name and
// labels, with the runtime's and the process's figures.
func TestPrometheusExposition(t *testing.T) {
	e := startPrometheus(t)
	before, _ := scrape(t, e.Addr())

	tool := telemetry.ToolFor("otelexport_test_tool")
	tool.Start()
	tool.Done(telemetry.OK, 30*time.Millisecond)
	tool.Start()
	tool.Done(telemetry.Refused, time.Millisecond)
	tool.Start() // still running
	defer tool.Done(telemetry.OK, 0)
	telemetry.UpstreamAnswer(telemetry.Flow, 429)
	telemetry.UpstreamAnswer(telemetry.ConnectorRuntime, telemetry.NoResponse)
	telemetry.ContainerFor("otelexport_test_container").Count(telemetry.Increment, telemetry.StoreError)
	telemetry.TokenRedemption(telemetry.Reconnect)
	telemetry.QuotaRefusal(telemetry.DailyQuota, "free")

	after, body := scrape(t, e.Addr())
	delta := func(name string, want map[string]string) float64 {
		return counter(after, name, want) - counter(before, name, want)
	}
	checks := []struct {
		name string
		want map[string]string
	}{
		{"flowstudio_tool_calls_total", map[string]string{"tool": "otelexport_test_tool", "outcome": "ok"}},
		{"flowstudio_tool_calls_total", map[string]string{"tool": "otelexport_test_tool", "outcome": "refused"}},
		{"flowstudio_upstream_responses_total", map[string]string{"family": "flow", "status": "429"}},
		{"flowstudio_upstream_responses_total", map[string]string{"family": "connector_runtime", "status": "none"}},
		{"flowstudio_store_operations_total", map[string]string{"container": "otelexport_test_container", "operation": "increment", "outcome": "error"}},
		{"flowstudio_token_redemptions_total", map[string]string{"outcome": "reconnect"}},
		{"flowstudio_quota_refusals_total", map[string]string{"reason": "daily_quota", "plan": "free"}},
	}
	for _, c := range checks {
		if d := delta(c.name, c.want); d != 1 {
			t.Errorf("%s%v went up by %v, want 1", c.name, c.want, d)
		}
	}
	if m := find(after, "flowstudio_tool_calls_in_flight", map[string]string{"tool": "otelexport_test_tool"}); m == nil || m.GetGauge().GetValue() != 1 {
		t.Errorf("in flight: %v", m)
	}
	// The histogram: the 30 ms call in the 0.05 s bucket, the 1 ms call in every bucket.
	h := find(after, "flowstudio_tool_call_duration_seconds", map[string]string{"tool": "otelexport_test_tool"})
	if h == nil || h.GetHistogram().GetSampleCount() != 2 {
		t.Fatalf("latency histogram: %v\n%s", h, body)
	}
	for _, b := range h.GetHistogram().GetBucket() {
		want := uint64(0)
		switch {
		case b.GetUpperBound() >= 0.05:
			want = 2
		case b.GetUpperBound() >= 0.005:
			want = 1
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	if s := h.GetHistogram().GetSampleSum(); s < 0.030 || s > 0.032 {
		t.Errorf("sum %v", s)
	}
	for _, name := range []string{"go_goroutine_count", "go_memory_used_bytes", "process_uptime_seconds"} {
		if f := after[name]; f == nil || len(f.GetMetric()) == 0 || f.GetMetric()[0].GetGauge().GetValue() <= 0 {
			t.Errorf("%s missing or not positive", name)
		}
	}
	if runtime.GOOS == "linux" {
		if f := after["process_memory_usage_bytes"]; f == nil || f.GetMetric()[0].GetGauge().GetValue() <= 0 {
			t.Error("process_memory_usage_bytes missing on Linux")
		}
	}
	if find(after, "target_info", map[string]string{"service_name": ServiceName, "service_version": "test"}) == nil {
		t.Error("target_info does not name the service and version")
	}
}

func TestMetricsHandlerRoutes(t *testing.T) {
	e := startPrometheus(t)
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/metrics", 200},
		{http.MethodHead, "/metrics", 200},
		{http.MethodPost, "/metrics", http.StatusMethodNotAllowed},
		{http.MethodGet, "/mcp", http.StatusNotFound},
		{http.MethodGet, "/", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(c.method, "http://"+e.Addr()+c.path, nil)
		req.Header.Set("Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.status)
		}
		if c.status == 200 && !strings.HasPrefix(resp.Header.Get("Content-Type"), ContentType) {
			t.Errorf("%s %s: %q: always the text format", c.method, c.path, resp.Header.Get("Content-Type"))
		}
	}
}

// Nothing is built, and no goroutine started, when no setting asks for metrics.
func TestNothingStartsWithoutSettings(t *testing.T) {
	before := runtime.NumGoroutine()
	e, err := Start(t.Context(), Options{Getenv: noEnv})
	if err != nil || e != nil {
		t.Fatalf("Start with no settings: %v %v", e, err)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Start, %d before", n, before)
	}
	if e.Addr() != "" || e.Shutdown(t.Context()) != nil {
		t.Error("a nil Exporter has no address and shuts down quietly")
	}
}

func TestBadSettingsAreRefusedByName(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if _, err := Start(t.Context(), Options{MetricsAddr: taken.Addr().String(), Getenv: noEnv}); err == nil ||
		!strings.Contains(err.Error(), "FLOWSTUDIO_METRICS_ADDR") {
		t.Errorf("address in use: %v", err)
	}
	for _, c := range []struct{ name, value string }{
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"},
		{"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "carrier-pigeon"},
		{"OTEL_METRICS_EXPORTER", "prometheus"},
	} {
		env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", c.name: c.value}
		_, err := Start(t.Context(), Options{Getenv: func(k string) string { return env[k] }})
		if err == nil || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%s=%s: %v", c.name, c.value, err)
		}
	}
}

// OTEL_METRICS_EXPORTER=none and OTEL_SDK_DISABLED=true turn OTLP off whatever the endpoint.
func TestOTLPTurnedOff(t *testing.T) {
	for _, off := range [][2]string{{"OTEL_METRICS_EXPORTER", "none"}, {"OTEL_SDK_DISABLED", "true"}} {
		env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", off[0]: off[1]}
		getenv := func(k string) string { return env[k] }
		if OTLPEnabled(getenv) {
			t.Errorf("%s=%s: OTLP still on", off[0], off[1])
		}
		if e, err := Start(t.Context(), Options{Getenv: getenv}); e != nil || err != nil {
			t.Errorf("%s=%s: Start built %v, %v", off[0], off[1], e, err)
		}
	}
	if !OTLPEnabled(func(k string) string {
		return map[string]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://127.0.0.1:4318/v1/metrics"}[k]
	}) {
		t.Error("the metrics endpoint alone turns OTLP on")
	}
}

// collected gathers the metric names an OTLP receiver got, and the service name.
type collected struct {
	tool    string // a tool only this test calls, once
	mu      sync.Mutex
	names   map[string]bool
	service string
	calls   int64 // flowstudio.tool.calls of otelexport_otlp_tool, outcome ok
}

func (c *collected) add(req *colmetricpb.ExportMetricsServiceRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.names == nil {
		c.names = map[string]bool{}
	}
	for _, rm := range req.GetResourceMetrics() {
		for _, a := range rm.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				c.service = a.GetValue().GetStringValue()
			}
		}
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				c.names[m.GetName()] = true
				if m.GetName() == MetricToolCalls {
					c.calls = max(c.calls, toolCalls(m.GetSum(), c.tool))
				}
			}
		}
	}
}

func toolCalls(sum *metricpb.Sum, tool string) int64 {
	for _, dp := range sum.GetDataPoints() {
		attrs := map[string]string{}
		for _, a := range dp.GetAttributes() {
			attrs[a.GetKey()] = a.GetValue().GetStringValue()
		}
		if attrs["tool"] == tool && attrs["outcome"] == "ok" {
			return dp.GetAsInt()
		}
	}
	return 0
}

func (c *collected) check(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range []string{MetricToolCalls, MetricToolCallsInFlight, MetricToolCallDuration, MetricUpstreamResponses,
		MetricStoreOperations, MetricTokenRedemptions, "go.goroutine.count", "go.memory.used", MetricProcessUptime} {
		if !c.names[name] {
			t.Errorf("the receiver got no %s (got %v)", name, c.names)
		}
	}
	if c.service != ServiceName {
		t.Errorf("service.name %q", c.service)
	}
	if c.calls != 1 {
		t.Errorf("tool calls %d, want 1", c.calls)
	}
}

// With OTEL_EXPORTER_OTLP_ENDPOINT, the metrics reach an OTLP/HTTP receiver; the
// last export happens at Shutdown (drain), so none is lost.
func TestOTLPHTTPExport(t *testing.T) {
	got := collected{tool: "otelexport_otlp_http_tool"}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/metrics" {
			http.NotFound(w, r)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var req colmetricpb.ExportMetricsServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			t.Errorf("not an OTLP request: %v", err)
		}
		got.add(&req)
		out, _ := proto.Marshal(&colmetricpb.ExportMetricsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	defer receiver.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.URL)
	exportOnce(t, got.tool)
	got.check(t)
}

type grpcReceiver struct {
	colmetricpb.UnimplementedMetricsServiceServer
	got *collected
}

func (g grpcReceiver) Export(_ context.Context, req *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	g.got.add(req)
	return &colmetricpb.ExportMetricsServiceResponse{}, nil
}

// OTEL_EXPORTER_OTLP_PROTOCOL=grpc picks the gRPC exporter.
func TestOTLPGRPCExport(t *testing.T) {
	got := collected{tool: "otelexport_otlp_grpc_tool"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	colmetricpb.RegisterMetricsServiceServer(srv, grpcReceiver{got: &got})
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+ln.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	exportOnce(t, got.tool)
	got.check(t)
}

// exportOnce starts OTLP export (no listener), makes one call of toolName and
// shuts down, which pushes the last export.
func exportOnce(t *testing.T, toolName string) {
	t.Helper()
	e, err := Start(t.Context(), Options{Version: "test", Log: zap.NewNop()})
	if err != nil || e == nil {
		t.Fatalf("Start: %v %v", e, err)
	}
	if e.Addr() != "" {
		t.Errorf("OTLP alone opened a listener at %s", e.Addr())
	}
	tool := telemetry.ToolFor(toolName)
	tool.Start()
	tool.Done(telemetry.OK, 3*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}
