package otlp

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func noFiles(string) ([]byte, error) { return nil, os.ErrNotExist }

func TestEndpoints(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "http://collector:4318/v1/metrics"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otlp.example.com/otlp/"}, "https://otlp.example.com/otlp/v1/metrics"},
		// The per-signal endpoint is used as given, query included.
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:1", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "https://in.example.com/api/metrics?tenant=a"},
			"https://in.example.com/api/metrics?tenant=a"},
		{map[string]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c:4318"}, "http://c:4318/"},
		// gRPC: the path is the Export method's; http is plaintext HTTP/2, https TLS.
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317/ignored"},
			"http://c:4317/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"},
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4317"},
			"https://c:4317/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"},
		// Without a scheme, gRPC is TLS unless OTEL_EXPORTER_OTLP_INSECURE is true.
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "c:4317"},
			"https://c:4317/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"},
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "c:4317", "OTEL_EXPORTER_OTLP_INSECURE": "true"},
			"http://c:4317/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"},
		// An https endpoint stays TLS whatever INSECURE says.
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4317", "OTEL_EXPORTER_OTLP_INSECURE": "true"},
			"https://c:4317/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"},
		{map[string]string{"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"},
			"http://c:4317/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"},
	} {
		cfg, err := FromEnv(envOf(c.env), noFiles)
		if err != nil {
			t.Errorf("%v: %v", c.env, err)
			continue
		}
		if cfg.URL.String() != c.want {
			t.Errorf("%v: %s, want %s", c.env, cfg.URL, c.want)
		}
	}
}

func TestSettings(t *testing.T) {
	cfg, err := FromEnv(envOf(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":                       "http://c:4318",
		"OTEL_EXPORTER_OTLP_HEADERS":                        "api-key=s3cr%2Ct%3Dv, x-tenant = a b ,",
		"OTEL_EXPORTER_OTLP_TIMEOUT":                        "2500",
		"OTEL_EXPORTER_OTLP_COMPRESSION":                    "gzip",
		"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
	}), noFiles)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Protocol != HTTPProtobuf || cfg.Timeout != 2500*time.Millisecond || !cfg.Gzip || cfg.TLS != nil {
		t.Errorf("config %+v", cfg)
	}
	if len(cfg.Headers) != 2 || cfg.Headers[0] != [2]string{"api-key", "s3cr,t=v"} || cfg.Headers[1] != [2]string{"x-tenant", "a b"} {
		t.Errorf("headers %q", cfg.Headers)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "TEMPORALITY_PREFERENCE") {
		t.Errorf("warnings %q", cfg.Warnings)
	}
	// The per-signal headers replace the general ones.
	cfg, _ = FromEnv(envOf(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
		"OTEL_EXPORTER_OTLP_HEADERS": "a=1", "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "b=2"}), noFiles)
	if len(cfg.Headers) != 1 || cfg.Headers[0] != [2]string{"b", "2"} {
		t.Errorf("per-signal headers %q", cfg.Headers)
	}
	cfg, _ = FromEnv(envOf(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4318"}), noFiles)
	if cfg.TLS == nil || cfg.TLS.RootCAs != nil || cfg.TLS.MinVersion < 0x0303 {
		t.Errorf("https: system roots and TLS 1.2 at least: %+v", cfg.TLS)
	}
}

// A setting that cannot be used stops the start with the variable's name, and
// never quotes a header's value (an API key) or the endpoint (which may carry one).
func TestBadSettingsNameTheVariable(t *testing.T) {
	const secret = "SECRETVALUE"
	files := func(name string) ([]byte, error) {
		if name == "notpem" {
			return []byte("not a certificate " + secret), nil
		}
		return nil, errors.New("no such file")
	}
	for _, c := range []struct {
		env      map[string]string
		variable string
	}{
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{map[string]string{"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "udp"}, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://" + secret + "@c"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://user:" + secret + "@c"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{map[string]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "c:4318/" + secret}, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"},
		{map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "api-key" + secret}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "bad key=" + secret}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{map[string]string{"OTEL_EXPORTER_OTLP_METRICS_HEADERS": "k=%zz" + secret}, "OTEL_EXPORTER_OTLP_METRICS_HEADERS"},
		{map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "k=a%0Db" + secret}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "content-type=" + secret}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, "OTEL_EXPORTER_OTLP_TIMEOUT"},
		{map[string]string{"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "-1"}, "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"},
		{map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "OTEL_EXPORTER_OTLP_COMPRESSION"},
		{map[string]string{"OTEL_EXPORTER_OTLP_INSECURE": "yes please"}, "OTEL_EXPORTER_OTLP_INSECURE"},
		{map[string]string{"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "sometimes"}, "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c", "OTEL_EXPORTER_OTLP_CERTIFICATE": "missing.pem"}, "OTEL_EXPORTER_OTLP_CERTIFICATE"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c", "OTEL_EXPORTER_OTLP_CERTIFICATE": "notpem"}, "OTEL_EXPORTER_OTLP_CERTIFICATE"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": "c.pem"}, "OTEL_EXPORTER_OTLP_CLIENT_KEY"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": "notpem", "OTEL_EXPORTER_OTLP_CLIENT_KEY": "notpem"},
			"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"},
	} {
		env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
		for k, v := range c.env {
			env[k] = v
		}
		_, err := FromEnv(envOf(env), files)
		if err == nil || !strings.Contains(err.Error(), c.variable) {
			t.Errorf("%v: %v, want an error naming %s", c.env, err, c.variable)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%v: the error quotes the value: %v", c.env, err)
		}
	}
	if _, err := FromEnv(envOf(nil), noFiles); err == nil {
		t.Error("no endpoint: no error")
	}
}
