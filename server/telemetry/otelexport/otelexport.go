// Package otelexport publishes the server's counters (package telemetry) and the Go
// runtime's as OpenTelemetry metrics: over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) is set, and in the Prometheus text format on
// the internal listener FLOWSTUDIO_METRICS_ADDR. With neither set nothing is built:
// no goroutine, no listener.
//
// The counters are read when a scrape or an export collects, never on a call's
// path: a tool call pays only telemetry's atomic adds. The OTLP encoding and
// transport (package otlp) and the text format (package promtext) are written
// here rather than taken from the OpenTelemetry SDK, its exporters and the
// Prometheus client: linking those (with gRPC and the protobuf runtime) made the
// binary's code and data about 7 MB larger, which on Linux is about as much more
// idle RSS on every replica, and their 90-odd package initialisers added about
// 2 ms to every start, for the few dozen series the server publishes.
package otelexport

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowstudio/mcp/rpc/logsafe"
	"github.com/flowstudio/mcp/server/telemetry/otelexport/metricdata"
	"github.com/flowstudio/mcp/server/telemetry/otelexport/otlp"
	"github.com/flowstudio/mcp/server/telemetry/otelexport/promtext"
	"go.uber.org/zap"
)

// ScopeName names the instrumentation scope of the server's own metrics.
const ScopeName = "github.com/flowstudio/mcp"

// ContentType is the Content-Type of GET /metrics: the Prometheus text format.
const ContentType = promtext.ContentType

// Defaults of OTEL_METRIC_EXPORT_INTERVAL and OTEL_METRIC_EXPORT_TIMEOUT.
const (
	DefaultExportInterval = 60 * time.Second
	DefaultExportTimeout  = 30 * time.Second
)

// Options say what to start.
type Options struct {
	// MetricsAddr is FLOWSTUDIO_METRICS_ADDR: the internal Prometheus listener; "" is off.
	MetricsAddr string
	// Version is the service.version resource attribute.
	Version string
	Log     *zap.Logger
	// Getenv reads the OTEL_* settings; nil means os.Getenv.
	Getenv func(string) string
}

// OTLPEnabled reports whether the environment asks for OTLP export: an endpoint is
// set, and neither OTEL_METRICS_EXPORTER=none nor OTEL_SDK_DISABLED=true turns it off.
func OTLPEnabled(getenv func(string) string) bool {
	if getenv("OTEL_METRICS_EXPORTER") == "none" || strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != ""
}

// Exporter is the running export: the OTLP loop and, if asked for, the
// internal listener.
type Exporter struct {
	version  string
	resource []metricdata.Attr
	log      *zap.Logger

	srv *http.Server
	ln  net.Listener

	otlp          *otlp.Client
	interval      time.Duration
	exportTimeout time.Duration
	stop          context.CancelFunc // ends the loop, and an export it is in
	loopDone      chan struct{}
	shutdown      sync.Once
}

// Start builds what o and the environment ask for. It returns nil (and no error)
// when they ask for nothing. A listener that cannot bind, or an OTEL_* setting it
// cannot use, is an error naming the setting.
func Start(ctx context.Context, o Options) (*Exporter, error) {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	switch v := o.Getenv("OTEL_METRICS_EXPORTER"); v {
	case "", "otlp", "none":
	default:
		return nil, fmt.Errorf("OTEL_METRICS_EXPORTER must be otlp or none (got %q); the Prometheus endpoint is FLOWSTUDIO_METRICS_ADDR", v)
	}
	useOTLP := OTLPEnabled(o.Getenv)
	if o.MetricsAddr == "" && !useOTLP {
		return nil, nil
	}
	res, err := resource(o.Getenv, o.Version)
	if err != nil {
		return nil, err
	}
	e := &Exporter{version: o.Version, resource: res, log: o.Log}
	var cfg otlp.Config
	if useOTLP {
		// Every setting is read before anything starts, so a bad one leaves nothing running.
		if cfg, err = e.otlpSettings(o.Getenv); err != nil {
			return nil, err
		}
	}
	if o.MetricsAddr != "" {
		if err := e.listen(o.MetricsAddr); err != nil {
			return nil, err
		}
	}
	if useOTLP {
		e.otlp = otlp.New(cfg, "flowstudio-mcp/"+e.version)
		for _, w := range cfg.Warnings {
			e.log.Warn("metrics export setting not applied", zap.String("setting", w))
		}
		e.log.Info("metrics exported over OTLP", zap.String("otlp_protocol", cfg.Protocol),
			zap.String("otlp_endpoint", cfg.Endpoint()), zap.Duration("export_interval", e.interval))
		e.startLoop()
	}
	return e, nil
}

// otlpSettings reads the exporter's settings and the export period.
func (e *Exporter) otlpSettings(getenv func(string) string) (otlp.Config, error) {
	cfg, err := otlp.FromEnv(getenv, os.ReadFile)
	if err != nil {
		return cfg, err
	}
	if e.interval, err = millis(getenv, "OTEL_METRIC_EXPORT_INTERVAL", DefaultExportInterval); err != nil {
		return cfg, err
	}
	e.exportTimeout, err = millis(getenv, "OTEL_METRIC_EXPORT_TIMEOUT", DefaultExportTimeout)
	return cfg, err
}

// millis reads a positive number of milliseconds, def when unset.
func millis(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	ms, err := strconv.Atoi(v)
	if err != nil || ms <= 0 {
		return 0, fmt.Errorf("%s must be a positive number of milliseconds (got %q)", name, v)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// collect reads every metric now.
func (e *Exporter) collect() *metricdata.Collection {
	now := time.Now()
	return &metricdata.Collection{
		Resource:  e.resource,
		SchemaURL: SchemaURL,
		Scopes: []metricdata.Scope{
			{Name: ScopeName, Metrics: serverMetrics(now)},
			{Name: RuntimeScopeName, Version: RuntimeScopeVersion, Metrics: runtimeMetrics()},
		},
		Start: processStart,
		Time:  now,
	}
}

// startLoop exports every interval until Shutdown.
func (e *Exporter) startLoop() {
	ctx, stop := context.WithCancel(context.Background())
	e.stop, e.loopDone = stop, make(chan struct{})
	go func() {
		defer close(e.loopDone)
		tick := time.NewTicker(e.interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				e.export(ctx)
			}
		}
	}()
}

// export collects and sends once, within OTEL_METRIC_EXPORT_TIMEOUT (the client
// bounds each export by OTEL_EXPORTER_OTLP_TIMEOUT too). A failure is logged
// without the endpoint's path or the headers' values, and the next export sends
// the cumulative counts again: nothing is lost but the point in time.
func (e *Exporter) export(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, e.exportTimeout)
	defer cancel()
	err := e.otlp.Export(ctx, otlp.AppendRequest(nil, e.collect()))
	var partial *otlp.PartialSuccess
	switch {
	case err == nil:
	case errors.As(err, &partial):
		e.log.Warn("metrics export partly rejected", zap.Int64("rejected_points", partial.Rejected),
			logsafe.Error(err, e.otlp.Redact()...))
		err = nil
	default:
		e.log.Warn("metrics export failed", logsafe.Error(err, e.otlp.Redact()...))
	}
	return err
}

// Handler serves GET (and HEAD) /metrics in the Prometheus text format, gzipped
// when the scraper accepts it; any other path is 404, another method 405.
func (e *Exporter) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		body := promtext.Append(make([]byte, 0, 16<<10), e.collect())
		h := w.Header()
		h.Set("Content-Type", ContentType)
		h.Set("Cache-Control", "no-store")
		h.Set("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			var zb bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&zb, gzip.BestSpeed)
			_, _ = zw.Write(body)
			_ = zw.Close()
			body = zb.Bytes()
			h.Set("Content-Encoding", "gzip")
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
	return mux
}

// acceptsGzip reads Accept-Encoding: gzip listed, and not with q=0.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		if q, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(q), 64)
			return err == nil && f > 0
		}
		return true
	}
	return false
}

func (e *Exporter) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("FLOWSTUDIO_METRICS_ADDR: %w", err)
	}
	e.ln = ln
	e.srv = &http.Server{
		Handler:           e.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zap.NewStdLog(e.log.Named("metrics")),
	}
	e.log.Info("metrics listening (internal)", zap.String("metrics_addr", ln.Addr().String()),
		zap.String("metrics_url", "http://"+ln.Addr().String()+"/metrics"))
	go func() {
		if err := e.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("metrics listener stopped", logsafe.Error(err))
		}
	}()
	return nil
}

// Addr is the internal listener's address, "" when there is none.
func (e *Exporter) Addr() string {
	if e == nil || e.ln == nil {
		return ""
	}
	return e.ln.Addr().String()
}

// Shutdown stops the listener (a scrape in flight may finish within ctx), stops
// the export loop (cutting short an export or a retry wait it is in) and pushes a
// last OTLP export within ctx, so that what was counted up to the drain is not
// lost. A nil Exporter does nothing; a second Shutdown neither.
func (e *Exporter) Shutdown(ctx context.Context) error {
	if e == nil {
		return nil
	}
	var errs []error
	e.shutdown.Do(func() {
		if e.srv != nil {
			errs = append(errs, e.srv.Shutdown(ctx))
		}
		if e.otlp != nil {
			e.stop()
			<-e.loopDone
			errs = append(errs, e.export(ctx))
			e.otlp.Close()
		}
	})
	return errors.Join(errs...)
}
