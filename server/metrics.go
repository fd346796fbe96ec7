package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/flowstudio/mcp/rpc/logsafe"
	"go.uber.org/zap"
)

// The internal metrics listener (FLOWSTUDIO_METRICS_ADDR): GET /metrics in the
// Prometheus text exposition format, on its own address, never on the public mux.
// It says how the process is doing (goroutines, heap, RSS, GC, start time) and
// nothing about users, keys or payloads. Hand-written: no client library.

// processStart approximates the process start: package variables are initialised
// before main runs, a few milliseconds after exec.
var processStart = time.Now()

// MetricsContentType is the Prometheus text exposition format, version 0.0.4.
const MetricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// MetricsHandler serves GET (and HEAD) /metrics; any other path is 404.
func MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		body := renderMetrics()
		w.Header().Set("Content-Type", MetricsContentType)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
	})
	return mux
}

// renderMetrics writes every metric with its HELP and TYPE lines.
func renderMetrics() []byte {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var b bytes.Buffer
	metric := func(name, kind, help string, value string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, kind, name, value)
	}
	metric("go_goroutines", "gauge", "Number of goroutines that currently exist.", strconv.Itoa(runtime.NumGoroutine()))
	metric("go_memstats_heap_inuse_bytes", "gauge", "Number of heap bytes that are in use.", strconv.FormatUint(ms.HeapInuse, 10))
	metric("go_memstats_sys_bytes", "gauge", "Number of bytes obtained from the system.", strconv.FormatUint(ms.Sys, 10))
	if rss, ok := residentBytes(); ok {
		metric("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", strconv.FormatUint(rss, 10))
	}
	metric("go_gc_cycles_total", "counter", "Number of completed GC cycles.", strconv.FormatUint(uint64(ms.NumGC), 10))
	metric("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
		strconv.FormatFloat(float64(processStart.UnixNano())/1e9, 'f', 3, 64))
	return b.Bytes()
}

// residentBytes reads the resident set size from /proc/self/statm (pages), else
// VmRSS in /proc/self/status (kB); false where neither is readable (not Linux).
func residentBytes() (uint64, bool) {
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 2 {
			if pages, err := strconv.ParseUint(f[1], 10, 64); err == nil && pages > 0 {
				return pages * uint64(os.Getpagesize()), true
			}
		}
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			if kb, err := strconv.ParseUint(f[1], 10, 64); err == nil && kb > 0 {
				return kb * 1024, true
			}
		}
	}
	return 0, false
}

// MetricsListener is the running internal listener.
type MetricsListener struct {
	srv *http.Server
	ln  net.Listener
}

// StartMetrics listens on addr and serves MetricsHandler there, logging its address.
// A failure to serve later is logged; it never stops the public server.
func StartMetrics(addr string, log *zap.Logger) (*MetricsListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("FLOWSTUDIO_METRICS_ADDR: %w", err)
	}
	m := &MetricsListener{ln: ln, srv: &http.Server{
		Handler:           MetricsHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zap.NewStdLog(log.Named("metrics")),
	}}
	log.Info("metrics listening (internal)", zap.String("metrics_addr", ln.Addr().String()),
		zap.String("metrics_url", "http://"+ln.Addr().String()+"/metrics"))
	go func() {
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", logsafe.Error(err))
		}
	}()
	return m, nil
}

// Addr is the address the listener is bound to.
func (m *MetricsListener) Addr() string { return m.ln.Addr().String() }

// Shutdown stops the listener, letting a scrape in flight finish within ctx.
func (m *MetricsListener) Shutdown(ctx context.Context) error { return m.srv.Shutdown(ctx) }

// checkMetricsAddr accepts FLOWSTUDIO_METRICS_ADDR as HOST:PORT (any host: Container
// Apps scrapes from inside its environment), but never the public listener's own
// address: /metrics must not be reachable where /mcp is.
func checkMetricsAddr(metrics, public string) error {
	if metrics == "" {
		return nil
	}
	mHost, mPort, err := net.SplitHostPort(metrics)
	if err != nil {
		return fmt.Errorf("FLOWSTUDIO_METRICS_ADDR must be HOST:PORT, such as 127.0.0.1:9090 (got %q)", metrics)
	}
	if _, err := strconv.ParseUint(mPort, 10, 16); err != nil {
		return fmt.Errorf("FLOWSTUDIO_METRICS_ADDR must be HOST:PORT with a numeric port, such as 127.0.0.1:9090 (got %q)", metrics)
	}
	pHost, pPort, err := net.SplitHostPort(public)
	if err != nil || mPort == "0" || mPort != pPort {
		return nil // port 0 is a fresh port each time; a bad FLOWSTUDIO_ADDR fails at listen
	}
	wildcard := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	if mHost == pHost || wildcard(mHost) || wildcard(pHost) {
		return fmt.Errorf("FLOWSTUDIO_METRICS_ADDR (%s) is the public listen address FLOWSTUDIO_ADDR (%s): "+
			"the metrics listener is internal and needs a port of its own, such as 127.0.0.1:9090", metrics, public)
	}
	return nil
}
