// Package otlp sends metrics to an OpenTelemetry collector: it encodes a
// metricdata.Collection as an OTLP ExportMetricsServiceRequest and posts it over
// OTLP/HTTP (application/x-protobuf) or gRPC, both on net/http (gRPC is HTTP/2
// with a 5-byte frame prefix and its status in the trailers). Retries follow the
// OTLP specification: throttled or unavailable answers are tried again after
// the server's Retry-After (or RetryInfo), else an exponential backoff, all
// within the export's timeout. It reads the standard OTEL_EXPORTER_OTLP_*
// settings (FromEnv).
package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flowstudio/mcp/server/outbound"
)

// maxResponse bounds what is read of an answer: a response message, a status.
const maxResponse = 1 << 20

// Backoff between attempts when the server names no delay: doubling from
// firstBackoff up to maxBackoff, with jitter.
const (
	firstBackoff = time.Second
	maxBackoff   = 30 * time.Second
)

// Client exports to one endpoint. It is safe for use by one goroutine at a time
// (the exporter's loop, then its final export).
type Client struct {
	cfg       Config
	hc        *http.Client
	userAgent string
	// sleep waits d or until ctx ends; tests replace it to see the delays asked for.
	sleep func(ctx context.Context, d time.Duration) error
}

// New builds the client of cfg; userAgent names the server and its version.
func New(cfg Config, userAgent string) *Client {
	t := outbound.NewTransport()
	if cfg.TLS != nil {
		t.TLSClientConfig = cfg.TLS
	}
	if cfg.Protocol == GRPC {
		// gRPC is HTTP/2 only: over TLS (ALPN h2) or, for http://, plaintext
		// HTTP/2 with prior knowledge.
		var p http.Protocols
		if cfg.URL.Scheme == "http" {
			p.SetUnencryptedHTTP2(true)
			t.Proxy = nil // an HTTP proxy would not carry HTTP/2 with prior knowledge
		} else {
			p.SetHTTP2(true)
		}
		t.Protocols = &p
	}
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 2, 2
	return &Client{
		cfg: cfg,
		hc: &http.Client{Transport: t,
			// Never follow a redirect: the headers may carry an API key.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		userAgent: userAgent,
		sleep:     sleepCtx,
	}
}

// Close drops the idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Redact lists the strings an error message must never show: the header values.
func (c *Client) Redact() []string {
	out := make([]string, 0, len(c.cfg.Headers))
	for _, h := range c.cfg.Headers {
		out = append(out, h[1])
	}
	return out
}

// PartialSuccess is an export the server accepted in part: the export is done
// (no retry), and the rejection is worth a warning.
type PartialSuccess struct {
	Rejected int64
	Message  string
}

func (p *PartialSuccess) Error() string {
	return fmt.Sprintf("OTLP partial success: %d data points rejected: %s", p.Rejected, p.Message)
}

// attempt is the outcome of one request: err nil on success; retry says whether
// it may be tried again, after wait if the server named a delay.
type attempt struct {
	err   error
	retry bool
	wait  time.Duration
}

// Export sends one encoded ExportMetricsServiceRequest, retrying within the
// configured timeout (and ctx). A *PartialSuccess error means it was delivered.
func (c *Client) Export(ctx context.Context, request []byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	body, err := c.body(request)
	if err != nil {
		return err
	}
	backoff := firstBackoff
	for n := 1; ; n++ {
		var a attempt
		if c.cfg.Protocol == GRPC {
			a = c.grpc(ctx, body)
		} else {
			a = c.http(ctx, body)
		}
		if a.err == nil || !a.retry {
			return a.err
		}
		wait := a.wait
		if wait <= 0 {
			// Jitter in [backoff/2, backoff): replicas restarted together spread out.
			wait = backoff/2 + rand.N(backoff/2)
			backoff = min(2*backoff, maxBackoff)
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return fmt.Errorf("%w (attempt %d; the next one, in %v, would end past the export timeout)", a.err, n, wait.Round(time.Millisecond))
		}
		if err := c.sleep(ctx, wait); err != nil {
			return fmt.Errorf("%w (attempt %d; %v)", a.err, n, err)
		}
	}
}

// transient says whether a request that got no answer may succeed if tried
// again: a refused, reset or timed-out connection, a stream the server ended
// may; a certificate that does not verify, or a server that does not speak TLS,
// will not.
func transient(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	return !errors.As(err, &verify) && !errors.As(err, &record) && !errors.As(err, &unknownCA) &&
		!errors.As(err, &hostname) && !errors.As(err, &invalid)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// body is the request as sent: gzipped if asked, and for gRPC in its frame
// (compressed flag, big-endian length, message).
func (c *Client) body(request []byte) ([]byte, error) {
	var out bytes.Buffer
	if c.cfg.Protocol == GRPC {
		out.Write(make([]byte, 5))
	}
	if c.cfg.Gzip {
		zw := gzip.NewWriter(&out)
		if _, err := zw.Write(request); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
	} else {
		out.Write(request)
	}
	b := out.Bytes()
	if c.cfg.Protocol == GRPC {
		if c.cfg.Gzip {
			b[0] = 1
		}
		binary.BigEndian.PutUint32(b[1:5], uint32(len(b)-5))
	}
	return b, nil
}

func (c *Client) newRequest(ctx context.Context, body []byte) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL.String(), bytes.NewReader(body))
	for _, h := range c.cfg.Headers {
		req.Header.Set(h[0], h[1])
	}
	req.Header.Set("User-Agent", c.userAgent)
	return req
}

// http is one OTLP/HTTP request.
func (c *Client) http(ctx context.Context, body []byte) attempt {
	req := c.newRequest(ctx, body)
	req.Header.Set("Content-Type", "application/x-protobuf")
	if c.cfg.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return attempt{err: fmt.Errorf("OTLP export: %w", err), retry: transient(ctx, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	protobuf := strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-protobuf")
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		if err != nil || !protobuf {
			return attempt{} // delivered; the body is only a partial-success report
		}
		return attempt{err: partialSuccess(data)}
	case code == http.StatusTooManyRequests || code == http.StatusBadGateway ||
		code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout:
		return attempt{err: httpError(resp, data, protobuf), retry: true, wait: retryAfter(resp.Header.Get("Retry-After"))}
	default:
		return attempt{err: httpError(resp, data, protobuf)}
	}
}

// httpError names the status, and the message of a google.rpc.Status body (what
// OTLP/HTTP servers answer with); a text body is left out.
func httpError(resp *http.Response, data []byte, protobuf bool) error {
	msg := fmt.Sprintf("OTLP export: HTTP %s", resp.Status)
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		msg += " (redirects are not followed)"
	}
	if protobuf {
		if st, err := decodeStatus(data); err == nil && st.message != "" {
			msg += ": " + st.message
		}
	}
	return errors.New(msg)
}

// retryAfter reads Retry-After: seconds, or an HTTP date; 0 when absent or unreadable.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// gRPC status codes the exporter tells apart.
const (
	codeOK                = 0
	codeCanceled          = 1
	codeUnknown           = 2
	codeDeadlineExceeded  = 4
	codeResourceExhausted = 8
	codeAborted           = 10
	codeOutOfRange        = 11
	codeUnimplemented     = 12
	codeInternal          = 13
	codeUnavailable       = 14
	codeDataLoss          = 15
	codeUnauthenticated   = 16
	codePermissionDenied  = 7
)

// grpc is one call of MetricsService/Export.
func (c *Client) grpc(ctx context.Context, body []byte) attempt {
	req := c.newRequest(ctx, body)
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	if c.cfg.Gzip {
		req.Header.Set("Grpc-Encoding", "gzip")
	}
	req.Header.Set("Grpc-Accept-Encoding", "gzip")
	if deadline, ok := ctx.Deadline(); ok {
		req.Header.Set("Grpc-Timeout", strconv.FormatInt(max(time.Until(deadline).Milliseconds(), 1), 10)+"m")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return attempt{err: fmt.Errorf("OTLP export (gRPC): %w", err), retry: transient(ctx, err)}
	}
	defer resp.Body.Close()
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode != http.StatusOK {
		// Not a gRPC answer (a proxy's): the status maps as the gRPC spec says.
		code := codeUnknown
		switch resp.StatusCode {
		case 400:
			code = codeInternal
		case 401:
			code = codeUnauthenticated
		case 403:
			code = codePermissionDenied
		case 404:
			code = codeUnimplemented
		case 429, 502, 503, 504:
			code = codeUnavailable
		}
		return attempt{err: fmt.Errorf("OTLP export (gRPC): HTTP %s", resp.Status), retry: code == codeUnavailable,
			wait: retryAfter(resp.Header.Get("Retry-After"))}
	}
	// A trailers-only answer has the status in the headers; else it is in the trailers.
	status, message, details := resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message"), resp.Header.Get("Grpc-Status-Details-Bin")
	if status == "" {
		status, message, details = resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message"), resp.Trailer.Get("Grpc-Status-Details-Bin")
	}
	if status == "" {
		if readErr != nil {
			return attempt{err: fmt.Errorf("OTLP export (gRPC): reading the answer: %w", readErr), retry: ctx.Err() == nil}
		}
		return attempt{err: errors.New("OTLP export (gRPC): the answer has no grpc-status")}
	}
	code, err := strconv.Atoi(status)
	if err != nil {
		return attempt{err: errors.New("OTLP export (gRPC): the answer's grpc-status is not a number")}
	}
	if code == codeOK {
		msg, err := grpcMessage(data, resp.Header.Get("Grpc-Encoding"))
		if err != nil {
			return attempt{} // delivered; the body is only a partial-success report
		}
		return attempt{err: partialSuccess(msg)}
	}
	text, _ := url.PathUnescape(message) // grpc-message is percent-encoded
	err = fmt.Errorf("OTLP export (gRPC): status %d %s: %s", code, codeName(code), text)
	var wait time.Duration
	if raw, decErr := decodeBase64(details); decErr == nil {
		if st, decErr := decodeStatus(raw); decErr == nil {
			wait = st.retryDelay
		}
	}
	switch code {
	case codeCanceled, codeDeadlineExceeded, codeAborted, codeOutOfRange, codeUnavailable, codeDataLoss:
		return attempt{err: err, retry: true, wait: wait}
	case codeResourceExhausted:
		// Only when the server says when to come back (RetryInfo), as OTLP says.
		return attempt{err: err, retry: wait > 0, wait: wait}
	}
	return attempt{err: err}
}

var codeNames = map[int]string{0: "OK", 1: "Canceled", 2: "Unknown", 3: "InvalidArgument", 4: "DeadlineExceeded",
	5: "NotFound", 6: "AlreadyExists", 7: "PermissionDenied", 8: "ResourceExhausted", 9: "FailedPrecondition",
	10: "Aborted", 11: "OutOfRange", 12: "Unimplemented", 13: "Internal", 14: "Unavailable", 15: "DataLoss",
	16: "Unauthenticated"}

func codeName(code int) string {
	if s, ok := codeNames[code]; ok {
		return s
	}
	return "Code(" + strconv.Itoa(code) + ")"
}

// grpcMessage takes the one message out of a gRPC response body.
func grpcMessage(data []byte, encoding string) ([]byte, error) {
	if len(data) < 5 {
		return nil, errMalformed
	}
	n := binary.BigEndian.Uint32(data[1:5])
	if uint64(n) > uint64(len(data)-5) {
		return nil, errMalformed
	}
	msg := data[5 : 5+n]
	if data[0] == 1 {
		if encoding != "gzip" {
			return nil, errMalformed
		}
		zr, err := gzip.NewReader(bytes.NewReader(msg))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(io.LimitReader(zr, maxResponse))
	}
	return msg, nil
}

func decodeBase64(s string) ([]byte, error) {
	if s == "" {
		return nil, errMalformed
	}
	if b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "=")); err == nil {
		return b, nil
	}
	return nil, errMalformed
}

// partialSuccess reads an ExportMetricsServiceResponse: nil unless it reports
// rejected points or a message.
func partialSuccess(msg []byte) error {
	var p PartialSuccess
	err := fields(msg, func(f field) error {
		if f.num != 1 || f.wire != wireBytes { // partial_success
			return nil
		}
		return fields(f.data, func(f field) error {
			switch {
			case f.num == 1 && f.wire == wireVarint: // rejected_data_points
				p.Rejected = int64(f.n)
			case f.num == 2 && f.wire == wireBytes: // error_message
				p.Message = string(f.data)
			}
			return nil
		})
	})
	if err != nil || (p.Rejected == 0 && p.Message == "") {
		return nil
	}
	return &p
}

// rpcStatus is what the exporter reads of a google.rpc.Status.
type rpcStatus struct {
	message    string
	retryDelay time.Duration // from a google.rpc.RetryInfo detail
}

const retryInfoType = "type.googleapis.com/google.rpc.RetryInfo"

// decodeStatus reads a google.rpc.Status: message (2) and details (3, Any with
// type_url 1 and value 2), of which a RetryInfo's retry_delay (1, a Duration of
// seconds 1 and nanos 2).
func decodeStatus(b []byte) (rpcStatus, error) {
	var st rpcStatus
	err := fields(b, func(f field) error {
		switch {
		case f.num == 2 && f.wire == wireBytes:
			st.message = string(f.data)
		case f.num == 3 && f.wire == wireBytes:
			var typeURL string
			var value []byte
			if err := fields(f.data, func(f field) error {
				switch {
				case f.num == 1 && f.wire == wireBytes:
					typeURL = string(f.data)
				case f.num == 2 && f.wire == wireBytes:
					value = f.data
				}
				return nil
			}); err != nil {
				return err
			}
			if typeURL != retryInfoType {
				return nil
			}
			return fields(value, func(f field) error {
				if f.num != 1 || f.wire != wireBytes {
					return nil
				}
				var secs, nanos int64
				err := fields(f.data, func(f field) error {
					switch {
					case f.num == 1 && f.wire == wireVarint:
						secs = int64(f.n)
					case f.num == 2 && f.wire == wireVarint:
						nanos = int64(int32(f.n))
					}
					return nil
				})
				if secs >= 0 && secs < 1<<31 && nanos >= 0 {
					st.retryDelay = time.Duration(secs)*time.Second + time.Duration(nanos)
				}
				return err
			})
		}
		return nil
	})
	return st, err
}
