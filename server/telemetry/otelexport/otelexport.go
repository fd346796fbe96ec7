// Package otelexport publishes the server's counters (package telemetry) and the Go
// runtime's with OpenTelemetry: over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) is set, and in the Prometheus text format on
// the internal listener FLOWSTUDIO_METRICS_ADDR. With neither set nothing is built:
// no meter provider, no goroutine, no listener.
//
// The counters are read when a reader collects (observable instruments, and a
// producer for the latency histogram, which OpenTelemetry has no observable
// instrument for), never on a call's path: a tool call pays only telemetry's
// atomic adds. The OpenTelemetry SDK's synchronous instruments cost about 4 µs and
// 4 allocations per call for the same counters (measured with a pre-built
// attribute set), which the tools/call path cannot afford.
package otelexport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/flowstudio/mcp/rpc/logsafe"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/contrib/instrumentation/runtime"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.uber.org/zap"
)

// ServiceName is the service.name resource attribute unless OTEL_SERVICE_NAME says otherwise.
const ServiceName = "flowstudio-mcp"

// ScopeName names the instrumentation scope of the server's own metrics.
const ScopeName = "github.com/flowstudio/mcp"

// ContentType begins the Content-Type of GET /metrics: the Prometheus text format
// (client_golang adds the name escaping it used).
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

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

// Exporter is the running export: a meter provider and, if asked for, the
// internal listener.
type Exporter struct {
	provider *sdkmetric.MeterProvider
	srv      *http.Server
	ln       net.Listener
}

// Start builds what o and the environment ask for. It returns nil (and no error)
// when they ask for nothing. A listener that cannot bind, or an OTLP setting the
// exporters refuse, is an error naming the setting.
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
	otlp := OTLPEnabled(o.Getenv)
	if o.MetricsAddr == "" && !otlp {
		return nil, nil
	}
	res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", serviceName(o.Getenv)),
			attribute.String("service.version", o.Version), attribute.String("service.instance.id", instanceID(o.Getenv))))
	if err != nil {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	latency := latencyProducer{start: time.Now()}
	opts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	var registry *prometheus.Registry
	if o.MetricsAddr != "" {
		registry = prometheus.NewRegistry()
		reader, err := otelprom.New(otelprom.WithRegisterer(registry), otelprom.WithoutScopeInfo(),
			otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
			otelprom.WithProducer(latency))
		if err != nil {
			return nil, fmt.Errorf("prometheus exporter: %w", err)
		}
		opts = append(opts, sdkmetric.WithReader(reader))
	}
	var protocol string
	if otlp {
		exp, p, err := otlpExporter(ctx, o.Getenv)
		if err != nil {
			return nil, err
		}
		protocol = p
		// The interval is OTEL_METRIC_EXPORT_INTERVAL (60 s by default), read by the SDK.
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithProducer(latency))))
	}
	// The SDK's own errors and log lines go to our log, through logsafe (an
	// endpoint URL is cut to its host), never to stderr as plain text.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		o.Log.Warn("metrics export failed", logsafe.Error(err))
	}))
	otel.SetLogger(funcr.New(func(prefix, args string) {
		o.Log.Warn("opentelemetry", logsafe.Error(errors.New(prefix+" "+args)))
	}, funcr.Options{}))
	e := &Exporter{provider: sdkmetric.NewMeterProvider(opts...)}
	if err := register(e.provider.Meter(ScopeName)); err != nil {
		_ = e.provider.Shutdown(ctx)
		return nil, err
	}
	if err := runtime.Start(runtime.WithMeterProvider(e.provider)); err != nil {
		_ = e.provider.Shutdown(ctx)
		return nil, fmt.Errorf("runtime metrics: %w", err)
	}
	if otlp {
		o.Log.Info("metrics exported over OTLP", zap.String("otlp_protocol", protocol))
	}
	if registry != nil {
		if err := e.listen(o.MetricsAddr, registry, o.Log); err != nil {
			_ = e.provider.Shutdown(ctx)
			return nil, err
		}
	}
	return e, nil
}

// otlpExporter picks the OTLP transport as the OpenTelemetry settings say
// (OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL; http/protobuf
// by default); the exporters read the endpoint, headers, timeout and TLS settings themselves.
func otlpExporter(ctx context.Context, getenv func(string) string) (sdkmetric.Exporter, string, error) {
	name, protocol := "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", getenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
	if protocol == "" {
		name, protocol = "OTEL_EXPORTER_OTLP_PROTOCOL", getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp sdkmetric.Exporter
	var err error
	switch protocol {
	case "", "http/protobuf":
		protocol = "http/protobuf"
		exp, err = otlpmetrichttp.New(ctx)
	case "grpc":
		exp, err = otlpmetricgrpc.New(ctx)
	default:
		return nil, "", fmt.Errorf("%s must be grpc or http/protobuf (got %q)", name, protocol)
	}
	if err != nil {
		return nil, "", fmt.Errorf("OTLP metrics exporter (OTEL_EXPORTER_OTLP_*): %w", err)
	}
	return exp, protocol, nil
}

func serviceName(getenv func(string) string) string {
	if s := getenv("OTEL_SERVICE_NAME"); s != "" {
		return s
	}
	return ServiceName
}

// instanceID tells replicas apart: Container Apps names each replica in
// CONTAINER_APP_REPLICA_NAME; elsewhere the host name.
func instanceID(getenv func(string) string) string {
	if s := getenv("CONTAINER_APP_REPLICA_NAME"); s != "" {
		return s
	}
	h, _ := os.Hostname()
	return h
}

// Handler serves GET (and HEAD) /metrics from registry; any other path is 404.
func Handler(registry *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	h := promhttp.HandlerFor(registry, promhttp.HandlerOpts{
		// Plain text only: no content negotiation to the protobuf or OpenMetrics formats.
		EnableOpenMetrics: false,
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		r.Header.Del("Accept") // the text format, whatever the scraper asks for
		h.ServeHTTP(w, r)
	})
	return mux
}

func (e *Exporter) listen(addr string, registry *prometheus.Registry, log *zap.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("FLOWSTUDIO_METRICS_ADDR: %w", err)
	}
	e.ln = ln
	e.srv = &http.Server{
		Handler:           Handler(registry),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zap.NewStdLog(log.Named("metrics")),
	}
	log.Info("metrics listening (internal)", zap.String("metrics_addr", ln.Addr().String()),
		zap.String("metrics_url", "http://"+ln.Addr().String()+"/metrics"))
	go func() {
		if err := e.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", logsafe.Error(err))
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

// Shutdown stops the listener (a scrape in flight may finish within ctx) and
// pushes a last OTLP export. A nil Exporter does nothing.
func (e *Exporter) Shutdown(ctx context.Context) error {
	if e == nil {
		return nil
	}
	var errs []error
	if e.srv != nil {
		errs = append(errs, e.srv.Shutdown(ctx))
	}
	errs = append(errs, e.provider.Shutdown(ctx))
	return errors.Join(errs...)
}
