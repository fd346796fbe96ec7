package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowstudio/mcp/server/telemetry/otelexport/metricdata"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // the test server reads gzip frames
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// request is a small encoded export with one counter point of value 42.
func request() []byte {
	return AppendRequest(nil, &metricdata.Collection{
		Resource: []metricdata.Attr{{Key: "service.name", Value: "test"}},
		Scopes: []metricdata.Scope{{Name: "s", Metrics: []metricdata.Metric{{Name: "calls", Kind: metricdata.Sum, Monotonic: true,
			Points: []metricdata.Point{{Int: 42}}}}}},
		Start: time.Unix(1, 0), Time: time.Unix(2, 0),
	})
}

// value42 checks that a received request is request()'s.
func value42(t *testing.T, req *colmetricpb.ExportMetricsServiceRequest) {
	t.Helper()
	rm := req.GetResourceMetrics()
	if len(rm) != 1 || rm[0].GetScopeMetrics()[0].GetMetrics()[0].GetSum().GetDataPoints()[0].GetAsInt() != 42 {
		t.Errorf("received %v", req)
	}
}

// client builds a client from env whose waits are recorded, not slept.
func client(t *testing.T, env map[string]string) (*Client, *[]time.Duration) {
	t.Helper()
	cfg, err := FromEnv(envOf(env), os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	c := New(cfg, "flowstudio-test/1")
	var waits []time.Duration
	c.sleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return ctx.Err()
	}
	t.Cleanup(c.Close)
	return c, &waits
}

// otlpHTTP is an OTLP/HTTP receiver whose answers come from answer, by attempt.
func otlpHTTP(t *testing.T, answer func(n int, w http.ResponseWriter)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/metrics" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("%s %s %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		body := io.Reader(r.Body)
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				t.Error(err)
				return
			}
			body = zr
		}
		b, _ := io.ReadAll(body)
		var req colmetricpb.ExportMetricsServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			t.Errorf("not an OTLP request: %v", err)
		}
		value42(t, &req)
		answer(int(n.Add(1)), w)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func ok(w http.ResponseWriter) {
	out, _ := proto.Marshal(&colmetricpb.ExportMetricsServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func TestHTTPExportSendsHeadersAndGzip(t *testing.T) {
	var got http.Header
	srv, n := otlpHTTP(t, func(_ int, w http.ResponseWriter) { ok(w) })
	srv.Config.Handler = func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone(); next.ServeHTTP(w, r) })
	}(srv.Config.Handler)
	c, _ := client(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL, "OTEL_EXPORTER_OTLP_HEADERS": "api-key=k%3D1",
		"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"})
	if err := c.Export(t.Context(), request()); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 1 || got.Get("Api-Key") != "k=1" || got.Get("Content-Encoding") != "gzip" || got.Get("User-Agent") != "flowstudio-test/1" {
		t.Errorf("%d requests, headers %v", n.Load(), got)
	}
}

// 503 and 429 are tried again after the server's Retry-After (seconds or a date).
func TestHTTPRetryHonoursRetryAfter(t *testing.T) {
	srv, n := otlpHTTP(t, func(n int, w http.ResponseWriter) {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("Retry-After", time.Now().Add(20*time.Second).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			ok(w)
		}
	})
	c, waits := client(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL, "OTEL_EXPORTER_OTLP_TIMEOUT": "60000"})
	if err := c.Export(t.Context(), request()); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 3 || len(*waits) != 2 || (*waits)[0] != 7*time.Second || (*waits)[1] <= 10*time.Second || (*waits)[1] > 20*time.Second {
		t.Errorf("%d requests, waits %v", n.Load(), *waits)
	}
}

// Without Retry-After the waits back off exponentially, with jitter.
func TestHTTPRetryBacksOff(t *testing.T) {
	srv, n := otlpHTTP(t, func(n int, w http.ResponseWriter) {
		if n <= 3 {
			w.WriteHeader([]int{0, http.StatusBadGateway, http.StatusGatewayTimeout, http.StatusServiceUnavailable}[n])
			return
		}
		ok(w)
	})
	c, waits := client(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL, "OTEL_EXPORTER_OTLP_TIMEOUT": "60000"})
	if err := c.Export(t.Context(), request()); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 4 || len(*waits) != 3 {
		t.Fatalf("%d requests, waits %v", n.Load(), *waits)
	}
	for i, w := range *waits {
		base := firstBackoff << i
		if w < base/2 || w >= base {
			t.Errorf("wait %d: %v, want in [%v, %v)", i, w, base/2, base)
		}
	}
}

// A Retry-After that ends past the export's timeout is not waited for: the
// export gives up at once and says why.
func TestHTTPRetryBoundedByTimeout(t *testing.T) {
	srv, n := otlpHTTP(t, func(_ int, w http.ResponseWriter) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	c, waits := client(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL}) // 10 s by default
	err := c.Export(t.Context(), request())
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "past the export timeout") {
		t.Errorf("error %v", err)
	}
	if n.Load() != 1 || len(*waits) != 0 {
		t.Errorf("%d requests, waits %v", n.Load(), *waits)
	}
}

// Other answers are not retried; a google.rpc.Status body's message is kept.
func TestHTTPErrorsAreNotRetried(t *testing.T) {
	srv, n := otlpHTTP(t, func(_ int, w http.ResponseWriter) {
		b, _ := proto.Marshal(&spb.Status{Code: 3, Message: "bad data point"})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(b)
	})
	c, waits := client(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL})
	err := c.Export(t.Context(), request())
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "bad data point") {
		t.Errorf("error %v", err)
	}
	if n.Load() != 1 || len(*waits) != 0 {
		t.Errorf("%d requests, waits %v", n.Load(), *waits)
	}
}

func TestHTTPPartialSuccess(t *testing.T) {
	srv, _ := otlpHTTP(t, func(_ int, w http.ResponseWriter) {
		b, _ := proto.Marshal(&colmetricpb.ExportMetricsServiceResponse{PartialSuccess: &colmetricpb.ExportMetricsPartialSuccess{
			RejectedDataPoints: 2, ErrorMessage: "unit unknown"}})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(b)
	})
	c, _ := client(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL})
	var p *PartialSuccess
	if err := c.Export(t.Context(), request()); !errors.As(err, &p) || p.Rejected != 2 || p.Message != "unit unknown" {
		t.Errorf("error %v", err)
	}
}

// A redirect is not followed: the headers (an API key) never go elsewhere.
func TestHTTPRedirectsAreNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/v1/metrics", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c, _ := client(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL, "OTEL_EXPORTER_OTLP_HEADERS": "api-key=k"})
	err := c.Export(t.Context(), request())
	if err == nil || !strings.Contains(err.Error(), "redirects are not followed") || elsewhere.Load() != 0 {
		t.Errorf("error %v, %d requests elsewhere", err, elsewhere.Load())
	}
}

// writePEM writes blocks to a file in dir and returns its path.
func writePEM(t *testing.T, name string, blocks ...*pem.Block) string {
	t.Helper()
	var b bytes.Buffer
	for _, bl := range blocks {
		_ = pem.Encode(&b, bl)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// clientCert makes a self-signed client certificate and its key, as PEM files.
func clientCert(t *testing.T) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "flowstudio-exporter"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return writePEM(t, "client.pem", &pem.Block{Type: "CERTIFICATE", Bytes: der}),
		writePEM(t, "client-key.pem", &pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), cert
}

// An https endpoint verifies the server against OTEL_EXPORTER_OTLP_CERTIFICATE
// (and the system roots without it, which do not know a test server), and
// presents the client certificate when one is set.
func TestHTTPSWithCAFileAndClientCertificate(t *testing.T) {
	certFile, keyFile, cert := clientCert(t)
	var peer atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			peer.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		}
		ok(w)
	}))
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()
	ca := writePEM(t, "ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	c, waits := client(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL})
	err := c.Export(t.Context(), request())
	var verify *tls.CertificateVerificationError
	if !errors.As(err, &verify) || len(*waits) != 0 {
		t.Errorf("without the CA file: %v (waits %v): want a verification error, not retried", err, *waits)
	}
	c, _ = client(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL, "OTEL_EXPORTER_OTLP_CERTIFICATE": ca})
	if err := c.Export(t.Context(), request()); err != nil || peer.Load() != nil {
		t.Errorf("with the CA file: %v, client certificate %v", err, peer.Load())
	}
	c, _ = client(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL, "OTEL_EXPORTER_OTLP_CERTIFICATE": ca,
		"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": certFile, "OTEL_EXPORTER_OTLP_CLIENT_KEY": keyFile})
	if err := c.Export(t.Context(), request()); err != nil || peer.Load() != "flowstudio-exporter" {
		t.Errorf("with a client certificate: %v, the server saw %v", err, peer.Load())
	}
}

// receiver is a real gRPC OTLP metrics service whose answers come from answer.
type receiver struct {
	colmetricpb.UnimplementedMetricsServiceServer
	t      *testing.T
	mu     sync.Mutex
	calls  int
	md     metadata.MD
	answer func(n int) error
}

func (r *receiver) Export(ctx context.Context, req *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	value42(r.t, req)
	r.mu.Lock()
	r.calls++
	n := r.calls
	r.md, _ = metadata.FromIncomingContext(ctx)
	r.mu.Unlock()
	if err := r.answer(n); err != nil {
		return nil, err
	}
	return &colmetricpb.ExportMetricsServiceResponse{}, nil
}

// grpcReceiver serves r over plaintext HTTP/2 and returns its http:// endpoint.
func grpcReceiver(t *testing.T, r *receiver) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	colmetricpb.RegisterMetricsServiceServer(srv, r)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return "http://" + ln.Addr().String()
}

func TestGRPCExport(t *testing.T) {
	r := &receiver{t: t, answer: func(int) error { return nil }}
	endpoint := grpcReceiver(t, r)
	for _, compression := range []string{"none", "gzip"} {
		c, _ := client(t, map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
			"OTEL_EXPORTER_OTLP_HEADERS": "api-key=k1", "OTEL_EXPORTER_OTLP_COMPRESSION": compression})
		if err := c.Export(t.Context(), request()); err != nil {
			t.Fatalf("%s: %v", compression, err)
		}
		r.mu.Lock()
		if got := r.md.Get("api-key"); len(got) != 1 || got[0] != "k1" {
			t.Errorf("%s: metadata %v", compression, r.md)
		}
		r.mu.Unlock()
	}
}

// A gRPC error status comes back with its code and message, and is retried only
// when it may pass: Unavailable (after RetryInfo's delay when given), and
// ResourceExhausted only with a RetryInfo.
func TestGRPCStatus(t *testing.T) {
	retryIn := func(c codes.Code, d time.Duration) error {
		st, _ := status.New(c, "slow down").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)})
		return st.Err()
	}
	for _, c := range []struct {
		name     string
		answer   func(n int) error
		calls    int
		waits    []time.Duration
		errParts []string
	}{
		{"permission denied", func(int) error { return status.Error(codes.PermissionDenied, "key refused") },
			1, nil, []string{"status 7 PermissionDenied", "key refused"}},
		{"unavailable with RetryInfo", func(n int) error {
			if n == 1 {
				return retryIn(codes.Unavailable, 4*time.Second)
			}
			return nil
		}, 2, []time.Duration{4 * time.Second}, nil},
		{"resource exhausted with RetryInfo", func(n int) error {
			if n == 1 {
				return retryIn(codes.ResourceExhausted, 1500*time.Millisecond)
			}
			return nil
		}, 2, []time.Duration{1500 * time.Millisecond}, nil},
		{"resource exhausted without", func(int) error { return status.Error(codes.ResourceExhausted, "quota: 100% used") },
			1, nil, []string{"ResourceExhausted", "quota: 100% used"}},
		{"unimplemented", func(int) error { return status.Error(codes.Unimplemented, "no") }, 1, nil, []string{"Unimplemented"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &receiver{t: t, answer: c.answer}
			cl, waits := client(t, map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": grpcReceiver(t, r)})
			err := cl.Export(t.Context(), request())
			if (err == nil) != (c.errParts == nil) {
				t.Fatalf("error %v", err)
			}
			for _, part := range c.errParts {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not say %q", err, part)
				}
			}
			if r.calls != c.calls || len(*waits) != len(c.waits) || (len(c.waits) > 0 && (*waits)[0] != c.waits[0]) {
				t.Errorf("%d calls, waits %v; want %d, %v", r.calls, *waits, c.calls, c.waits)
			}
		})
	}
}

// gRPC over TLS (ALPN h2), the server verified against the CA file.
func TestGRPCOverTLS(t *testing.T) {
	r := &receiver{t: t, answer: func(int) error { return nil }}
	gs := grpc.NewServer()
	colmetricpb.RegisterMetricsServiceServer(gs, r)
	srv := httptest.NewUnstartedServer(gs) // grpc-go serves HTTP/2 requests as an http.Handler
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	ca := writePEM(t, "ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	// Scheme-less: TLS, since OTEL_EXPORTER_OTLP_INSECURE is not set.
	c, _ := client(t, map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": strings.TrimPrefix(srv.URL, "https://"),
		"OTEL_EXPORTER_OTLP_CERTIFICATE": ca})
	if err := c.Export(t.Context(), request()); err != nil || r.calls != 1 {
		t.Fatalf("%v, %d calls", err, r.calls)
	}
}

// A gRPC endpoint that answers plain HTTP (a proxy's error page) is an error
// with its status, retried only for the statuses gRPC maps to Unavailable.
func TestGRPCNonGRPCAnswer(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusForbidden)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	ca := writePEM(t, "ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	c, waits := client(t, map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL,
		"OTEL_EXPORTER_OTLP_CERTIFICATE": ca})
	err := c.Export(t.Context(), request())
	if err == nil || !strings.Contains(err.Error(), "HTTP 403") || n.Load() != 1 || len(*waits) != 0 {
		t.Errorf("error %v, %d requests, waits %v", err, n.Load(), *waits)
	}
}

// A connection that fails is tried again with backoff until the next wait would
// end past the timeout.
func TestUnreachableEndpointIsRetriedWithinTheTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c, waits := client(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + addr})
	err = c.Export(t.Context(), request())
	if err == nil || !strings.Contains(err.Error(), "past the export timeout") || len(*waits) == 0 {
		t.Errorf("error %v, waits %v", err, *waits)
	}
}
