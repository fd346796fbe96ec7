package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsAddrFrom finds the address the internal metrics listener logged at start.
func metricsAddrFrom(t *testing.T, logs string) string {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		var entry struct {
			MetricsAddr string `json:"metrics_addr"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && entry.MetricsAddr != "" {
			return entry.MetricsAddr
		}
	}
	t.Fatalf("no metrics_addr in the start-up log:\n%s", logs)
	return ""
}

// The real binary with FLOWSTUDIO_METRICS_ADDR: /metrics answers there in the
// Prometheus text format with the runtime's figures and the tool calls just made,
// the public listener still answers 404 for it, and the metrics listener stops
// with the server on drain.
func TestServeMetricsListener(t *testing.T) {
	p := startServer(t, "FLOWSTUDIO_METRICS_ADDR=127.0.0.1:0")
	addr := metricsAddrFrom(t, p.logs())
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("metrics_addr %q", addr)
	}
	key := p.devKey(t, "metrics@contoso.com")
	if status, body, err := p.call(key, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_live_environments","arguments":{}}}`); err != nil || status != 200 || !strings.Contains(body, `"isError":false`) {
		t.Fatalf("tools/call: %d %v %.300s", status, err, body)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("not the Prometheus text format: %v\n%s", err, body)
	}
	gauge := func(name string) float64 {
		f := families[name]
		if f == nil || len(f.GetMetric()) == 0 {
			t.Fatalf("no %s in:\n%s", name, body)
		}
		return f.GetMetric()[0].GetGauge().GetValue()
	}
	if gauge("go_goroutine_count") <= 0 || gauge("go_memory_used_bytes") <= 0 || gauge("process_memory_usage_bytes") <= 0 {
		t.Fatalf("implausible runtime metrics:\n%s", body)
	}
	calls := 0.0
	for _, m := range families["flowstudio_tool_calls_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["tool"] == "list_live_environments" && labels["outcome"] == "ok" {
			calls = m.GetCounter().GetValue()
		}
	}
	if calls != 1 {
		t.Fatalf("flowstudio_tool_calls_total{tool=list_live_environments,outcome=ok} = %v, want 1:\n%s", calls, body)
	}
	if strings.Contains(body, "metrics@contoso.com") || strings.Contains(body, key) {
		t.Fatal("the exposition names the caller")
	}

	public := strings.TrimSuffix(p.url, "/mcp")
	if status, _ := httpGet(t, public+"/metrics"); status != http.StatusNotFound {
		t.Fatalf("GET /metrics on the public listener: %d, want 404", status)
	}
	if status, _ := httpGet(t, "http://"+addr+"/mcp"); status != http.StatusNotFound {
		t.Fatalf("GET /mcp on the metrics listener: %d, want 404", status)
	}

	p.stop(t)
	if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
		t.Fatal("the metrics listener still answers after the server stopped")
	}
}

// The metrics address may not be the public one: serve refuses to start, saying why.
func TestServeRefusesMetricsOnThePublicAddress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second) // a server that starts is killed
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "serve")
	cmd.Env = append(os.Environ(), "FLOWSTUDIO_ADDR=127.0.0.1:18080", "FLOWSTUDIO_METRICS_ADDR=127.0.0.1:18080",
		"FLOWSTUDIO_DATA_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "FLOWSTUDIO_METRICS_ADDR") || !strings.Contains(string(out), "FLOWSTUDIO_ADDR") {
		t.Fatalf("err %v out %s", err, out)
	}
}
