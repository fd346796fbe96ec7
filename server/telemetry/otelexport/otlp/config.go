package otlp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/flowstudio/mcp/server/outbound"
)

// Protocols of OTEL_EXPORTER_OTLP_PROTOCOL.
const (
	HTTPProtobuf = "http/protobuf"
	GRPC         = "grpc"
)

// grpcMethod is the path of the OTLP metrics service's Export method.
const grpcMethod = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"

// DefaultTimeout bounds one export, its retries included, unless
// OTEL_EXPORTER_OTLP_TIMEOUT says otherwise.
const DefaultTimeout = 10 * time.Second

// Config is where and how exports go.
type Config struct {
	Protocol string
	// URL is what each export POSTs to: the OTLP/HTTP metrics URL, or for gRPC the
	// endpoint's scheme and host with the Export method's path.
	URL *url.URL
	// Headers go with every export (OTEL_EXPORTER_OTLP_HEADERS); their values may
	// be API keys, so nothing here ever logs them.
	Headers [][2]string
	Timeout time.Duration
	Gzip    bool
	// TLS is the client configuration of an https endpoint: the system roots or
	// OTEL_EXPORTER_OTLP_CERTIFICATE, and a client certificate if one is set.
	TLS *tls.Config
	// Warnings are settings understood but not applied, for the start-up log.
	Warnings []string
}

// Endpoint is the URL without its path, which the start-up log may show.
func (c *Config) Endpoint() string { return c.URL.Scheme + "://" + c.URL.Host }

// env reads OTEL_EXPORTER_OTLP_METRICS_<name>, else OTEL_EXPORTER_OTLP_<name>,
// trimmed, with the variable it came from (for errors that name it).
type env struct {
	getenv   func(string) string
	readFile func(string) ([]byte, error)
}

func (e env) get(name string) (value, variable string) {
	for _, v := range []string{"OTEL_EXPORTER_OTLP_METRICS_" + name, "OTEL_EXPORTER_OTLP_" + name} {
		if s := strings.TrimSpace(e.getenv(v)); s != "" {
			return s, v
		}
	}
	return "", "OTEL_EXPORTER_OTLP_" + name
}

// FromEnv reads the OpenTelemetry exporter settings. A value it cannot use is an
// error naming the variable, never quoting a header value or a file's content.
func FromEnv(getenv func(string) string, readFile func(string) ([]byte, error)) (Config, error) {
	e := env{getenv: getenv, readFile: readFile}
	c := Config{Protocol: HTTPProtobuf, Timeout: DefaultTimeout}
	if p, name := e.get("PROTOCOL"); p != "" {
		if p != HTTPProtobuf && p != GRPC {
			return c, fmt.Errorf("%s must be grpc or http/protobuf (got %q)", name, p)
		}
		c.Protocol = p
	}
	insecure := false
	if v, name := e.get("INSECURE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("%s must be true or false (got %q)", name, v)
		}
		insecure = b
	}
	if err := c.endpoint(getenv, insecure); err != nil {
		return c, err
	}
	var err error
	if c.Headers, err = e.headers(); err != nil {
		return c, err
	}
	if v, name := e.get("TIMEOUT"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			return c, fmt.Errorf("%s must be a positive number of milliseconds (got %q)", name, v)
		}
		c.Timeout = time.Duration(ms) * time.Millisecond
	}
	switch v, name := e.get("COMPRESSION"); v {
	case "", "none":
	case "gzip":
		c.Gzip = true
	default:
		return c, fmt.Errorf("%s must be gzip or none (got %q)", name, v)
	}
	if c.URL.Scheme == "https" {
		if c.TLS, err = e.tls(); err != nil {
			return c, err
		}
	}
	switch v, name := e.get("TEMPORALITY_PREFERENCE"); strings.ToLower(v) {
	case "", "cumulative":
	case "delta", "lowmemory":
		c.Warnings = append(c.Warnings, name+"="+v+" is not supported: every sum and histogram is exported cumulative")
	default:
		return c, fmt.Errorf("%s must be cumulative, delta or lowmemory (got %q)", name, v)
	}
	return c, nil
}

// endpoint sets URL. For OTLP/HTTP the metrics endpoint is used as given and the
// general one gets /v1/metrics appended to its path; both need http or https.
// For gRPC the path is ignored; http means plaintext HTTP/2, https TLS, and an
// endpoint without a scheme (host:port) is TLS unless OTEL_EXPORTER_OTLP_INSECURE
// is true, as the specification says.
func (c *Config) endpoint(getenv func(string) string, insecure bool) error {
	name, raw := "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))
	perSignal := raw != ""
	if !perSignal {
		name, raw = "OTEL_EXPORTER_OTLP_ENDPOINT", strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
	}
	if raw == "" {
		return errors.New("OTEL_EXPORTER_OTLP_ENDPOINT is not set")
	}
	if c.Protocol == GRPC && !strings.Contains(raw, "://") {
		scheme := "https"
		if insecure {
			scheme = "http"
		}
		raw = scheme + "://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return fmt.Errorf("%s must be an http or https URL with a host and no user information", name)
	}
	switch {
	case c.Protocol == GRPC:
		u = &url.URL{Scheme: u.Scheme, Host: u.Host, Path: grpcMethod}
	case !perSignal:
		u.Path = path.Join("/", u.Path, "v1/metrics")
		u.RawPath = ""
	case u.Path == "":
		u.Path = "/"
	}
	u.Fragment = ""
	c.URL = u
	return nil
}

// headers parses key=value pairs separated by commas, values percent-decoded.
func (e env) headers() ([][2]string, error) {
	v, name := e.get("HEADERS")
	if v == "" {
		return nil, nil
	}
	var out [][2]string
	for i, pair := range strings.Split(v, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, val, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || !validHeaderName(k) {
			return nil, fmt.Errorf("%s: entry %d is not name=value with a valid header name", name, i+1)
		}
		decoded, err := url.PathUnescape(strings.TrimSpace(val))
		if err != nil || strings.ContainsAny(decoded, "\r\n\x00") {
			return nil, fmt.Errorf("%s: the value of %s is not valid (percent-encoding or a control character)", name, k)
		}
		switch strings.ToLower(k) {
		case "content-type", "content-length", "content-encoding", "te", "host", "grpc-timeout", "grpc-encoding":
			return nil, fmt.Errorf("%s: %s is set by the exporter itself", name, k)
		}
		out = append(out, [2]string{k, decoded})
	}
	return out, nil
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// tls is the client configuration of an https endpoint: at least TLS 1.2, the
// system roots unless a CA file is given, and a client certificate when both
// its files are.
func (e env) tls() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: outbound.MinTLSVersion}
	if file, name := e.get("CERTIFICATE"); file != "" {
		pem, err := e.readFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: cannot read the CA file: %w", name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate in the CA file", name)
		}
		cfg.RootCAs = pool
	}
	cert, certName := e.get("CLIENT_CERTIFICATE")
	key, keyName := e.get("CLIENT_KEY")
	switch {
	case cert == "" && key == "":
	case cert == "" || key == "":
		return nil, fmt.Errorf("%s and %s go together: set both or neither", certName, keyName)
	default:
		certPEM, err := e.readFile(cert)
		if err != nil {
			return nil, fmt.Errorf("%s: cannot read the file: %w", certName, err)
		}
		keyPEM, err := e.readFile(key)
		if err != nil {
			return nil, fmt.Errorf("%s: cannot read the file: %w", keyName, err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("%s and %s: not a certificate and its private key", certName, keyName)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
