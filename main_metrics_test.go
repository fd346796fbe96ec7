package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
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
// Prometheus text format, the public listener still answers 404 for it, and the
// metrics listener stops with the server on drain.
func TestServeMetricsListener(t *testing.T) {
	p := startServer(t, "FLOWSTUDIO_METRICS_ADDR=127.0.0.1:0")
	addr := metricsAddrFrom(t, p.logs())
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("metrics_addr %q", addr)
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
	values := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("not `name value`: %q", line)
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		values[f[0]] = v
	}
	if values["go_goroutines"] <= 0 || values["process_resident_memory_bytes"] <= 0 || values["process_start_time_seconds"] <= 0 {
		t.Fatalf("implausible metrics:\n%s", body)
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
