// Package powerautomate is the upstream REST client for Power Automate
// (api.flow.microsoft.com), Power Apps connections and connectors
// (api.powerapps.com), the per-environment Power Platform API and connector
// runtimes. It validates identifiers before any I/O, attaches a delegated
// bearer token only to the configured API hosts, retries within a budget,
// and turns upstream failures into *APIError.
package powerautomate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	json "github.com/segmentio/encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/flowstudio/mcp/server/telemetry"
)

// TokenSource yields delegated access tokens for the calling user (read from
// ctx by the implementation) for one audience.
type TokenSource interface {
	Token(ctx context.Context, audience string) (string, error)
}

// Client calls the upstream APIs. It is safe for concurrent use.
type Client struct {
	cfg     Config
	tokens  TokenSource
	bases   []apiBase
	api     *http.Client // bearer requests; redirects stay within the audience's bases
	content *http.Client // anonymous SAS requests; redirects stay within ContentHosts
}

// apiBase is a place a token may be sent: scheme, a host pattern (exact
// host[:port], or ".suffix" for any subdomain) and a path prefix.
type apiBase struct {
	scheme   string
	host     string
	path     string
	audience string
	family   telemetry.Family // the label of its answers in the upstream counters
}

// maxAPIResponseBytes bounds a JSON answer from an API host; definitions and
// swaggers are large but never near this.
const maxAPIResponseBytes = 32 << 20

// New returns a client for cfg (zero fields take public-cloud defaults).
func New(cfg Config, ts TokenSource) (*Client, error) {
	if ts == nil {
		return nil, errors.New("powerautomate: nil TokenSource")
	}
	cfg = cfg.withDefaults()
	c := &Client{cfg: cfg, tokens: ts}
	for _, s := range []*string{&c.cfg.FlowURL, &c.cfg.PowerAppsURL, &c.cfg.BAPURL, &c.cfg.PowerPlatformURL, &c.cfg.ApihubURL} {
		*s = strings.TrimRight(*s, "/")
	}
	type baseSpec struct {
		raw, audience string
		family        telemetry.Family
	}
	for _, b := range []baseSpec{
		{c.cfg.FlowURL, c.cfg.FlowAudience, telemetry.Flow},
		{c.cfg.PowerAppsURL, c.cfg.PowerAppsAudience, telemetry.PowerApps},
		{c.cfg.BAPURL, c.cfg.PowerAppsAudience, telemetry.BAP},
		{c.cfg.ApihubURL, c.cfg.APIHubAudience, telemetry.ConnectorRuntime},
	} {
		u, err := parseBaseURL(b.raw)
		if err != nil {
			return nil, err
		}
		c.bases = append(c.bases, apiBase{u.Scheme, normalHost(u), u.Path, b.audience, b.family})
	}
	// Connector runtimes live on subdomains of the apihub host.
	apihub := c.bases[len(c.bases)-1]
	apihub.host = "." + apihub.host
	c.bases = append(c.bases, apihub)
	for _, h := range c.cfg.RuntimeHosts {
		c.bases = append(c.bases, apiBase{"https", strings.ToLower(h), "", c.cfg.APIHubAudience, telemetry.ConnectorRuntime})
	}
	// The per-environment template matches every environment: "{envhost}."
	// in the host becomes a suffix pattern, "{envhost}" in the path a prefix.
	// Its /powerautomate routes (the only ones used) take the Flow audience.
	if !strings.Contains(c.cfg.PowerPlatformURL, "{envhost}") {
		return nil, fmt.Errorf("powerautomate: PowerPlatformURL %q lacks {envhost}", c.cfg.PowerPlatformURL)
	}
	u, err := parseBaseURL(strings.Replace(c.cfg.PowerPlatformURL, "{envhost}", "envhost", 1))
	if err != nil {
		return nil, err
	}
	pp := apiBase{scheme: u.Scheme, host: normalHost(u), path: u.Path, audience: c.cfg.FlowAudience, family: telemetry.PowerPlatform}
	if i := strings.Index(pp.host, "envhost."); i == 0 {
		pp.host = pp.host[len("envhost"):]
	} else {
		pp.path = strings.TrimSuffix(pp.path[:strings.Index(pp.path, "envhost")], "/")
	}
	c.bases = append(c.bases, pp)

	c.api = &http.Client{Transport: cfg.HTTPClient.Transport, Timeout: cfg.HTTPClient.Timeout, CheckRedirect: c.checkAPIRedirect}
	c.content = &http.Client{Transport: cfg.HTTPClient.Transport, Timeout: cfg.HTTPClient.Timeout, CheckRedirect: c.checkContentRedirect}
	return c, nil
}

func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return nil, fmt.Errorf("powerautomate: bad base URL %q", raw)
	}
	return u, nil
}

// normalHost is the lower-case host[:port] without a default port.
func normalHost(u *url.URL) string {
	h := strings.ToLower(u.Host)
	if (u.Scheme == "https" && strings.HasSuffix(h, ":443")) || (u.Scheme == "http" && strings.HasSuffix(h, ":80")) {
		h = h[:strings.LastIndex(h, ":")]
	}
	return h
}

func hostMatches(host, pattern string) bool {
	if strings.HasPrefix(pattern, ".") {
		return strings.HasSuffix(host, pattern) && len(host) > len(pattern)
	}
	return host == pattern
}

func pathUnder(p, prefix string) bool {
	return prefix == "" || strings.EqualFold(p, prefix) ||
		(len(p) > len(prefix) && strings.EqualFold(p[:len(prefix)], prefix) && p[len(prefix)] == '/')
}

// baseFor finds the API base a URL belongs to, the longest path prefix winning.
func (c *Client) baseFor(u *url.URL) (apiBase, bool) {
	var best apiBase
	found := false
	if u.User != nil {
		return best, false
	}
	host := normalHost(u)
	for _, b := range c.bases {
		if strings.EqualFold(u.Scheme, b.scheme) && hostMatches(host, b.host) && pathUnder(u.Path, b.path) &&
			(!found || len(b.path) > len(best.path)) {
			best, found = b, true
		}
	}
	return best, found
}

// contentAllowed reports whether u is an anonymous SAS URL on ContentHosts.
func (c *Client) contentAllowed(u *url.URL) bool {
	if (u.Scheme != "https" && u.Scheme != "http") || u.User != nil {
		return false
	}
	host := normalHost(u)
	for _, h := range c.cfg.ContentHosts {
		if hostMatches(host, strings.ToLower(h)) {
			return true
		}
	}
	return false
}

// checkAPIRedirect follows a redirect only within bases of the same audience
// as the original request, so the bearer token never leaves them.
func (c *Client) checkAPIRedirect(req *http.Request, via []*http.Request) error {
	orig, _ := c.baseFor(via[0].URL)
	target, ok := c.baseFor(req.URL)
	if len(via) >= 5 || !ok || target.audience != orig.audience {
		req.Header.Del("Authorization")
		return fmt.Errorf("%w: to host %s", ErrRedirectRefused, req.URL.Host)
	}
	return nil
}

func (c *Client) checkContentRedirect(req *http.Request, via []*http.Request) error {
	req.Header.Del("Authorization")
	if len(via) >= 5 || !c.contentAllowed(req.URL) {
		return fmt.Errorf("%w: to host %s", ErrRedirectRefused, req.URL.Host)
	}
	return nil
}

// request is one logical upstream call; send retries it as a whole.
type request struct {
	op        string // for errors, e.g. "GetFlow"
	method    string
	url       string
	body      []byte           // nil: no body
	audience  string           // "" means anonymous (content client, no Authorization)
	readLimit int64            // body cap; exceeding it sets response.truncated
	family    telemetry.Family // of an API request; anonymous ones count as Content
}

type response struct {
	status    int
	header    http.Header
	body      []byte
	truncated bool
}

// emptyBody is sent to POST endpoints that reject a request without a body.
var emptyBody = []byte("{}")

// apiCall sends an authenticated JSON request to an API host. The URL must
// belong to a configured base; its audience picks the token.
func (c *Client) apiCall(ctx context.Context, op, method, rawURL string, body any) (*response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrLinkNotAllowed, op)
	}
	base, ok := c.baseFor(u)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrLinkNotAllowed, op)
	}
	return c.sendAPI(ctx, request{op: op, method: method, url: rawURL, audience: base.audience, family: base.family}, body)
}

// sendAPI sends an API request with body as JSON (raw JSON as it is) and reads at
// most maxAPIResponseBytes of the answer: a larger one is an error, not a cut.
func (c *Client) sendAPI(ctx context.Context, req request, body any) (*response, error) {
	req.readLimit = maxAPIResponseBytes
	switch b := body.(type) {
	case nil:
	case []byte:
		req.body = b
	case json.RawMessage:
		req.body = b
	default:
		var err error
		if req.body, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("powerautomate: %s: encoding body: %w", req.op, err)
		}
	}
	resp, err := c.send(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.truncated {
		return nil, fmt.Errorf("powerautomate: %s: response larger than %d bytes", req.op, maxAPIResponseBytes)
	}
	return resp, nil
}

// send runs req with retries inside the per-call timeout.
func (c *Client) send(ctx context.Context, req request) (*response, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, c.cfg.Timeout, ErrTimeout)
	defer cancel()
	idempotent := req.method == http.MethodGet || req.method == http.MethodHead
	for attempt := 0; ; attempt++ {
		resp, err := c.attempt(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, c.ctxError(ctx, req.op)
			}
			var noRetry *permanentError
			if idempotent && attempt < c.cfg.MaxRetries && !errors.As(err, &noRetry) {
				if !sleep(ctx, c.backoff(attempt)) {
					return nil, c.ctxError(ctx, req.op)
				}
				continue
			}
			return nil, fmt.Errorf("powerautomate: %s: %w", req.op, err)
		}
		if resp.status >= 200 && resp.status < 300 {
			return resp, nil
		}
		apiErr := parseAPIError(resp.status, resp.header, resp.body)
		if !retryableStatus(resp.status, idempotent) || attempt >= c.cfg.MaxRetries {
			return nil, apiErr
		}
		wait := apiErr.RetryAfter
		if wait == 0 {
			wait = c.backoff(attempt)
		}
		if wait > c.cfg.MaxRetryWait {
			return nil, apiErr
		}
		if !sleep(ctx, wait) {
			return nil, c.ctxError(ctx, req.op)
		}
	}
}

// jsonMediaType is shared by every request; net/http never writes to header values.
var jsonMediaType = []string{"application/json"}

// permanentError marks a transport failure that a retry cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func (c *Client) attempt(ctx context.Context, req request) (*response, error) {
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hreq, err := http.NewRequestWithContext(ctx, req.method, req.url, body)
	if err != nil {
		return nil, &permanentError{err}
	}
	// Canonical keys and shared values: Header.Set would allocate both per call.
	hreq.Header["Accept"] = jsonMediaType
	if req.body != nil {
		hreq.Header["Content-Type"] = jsonMediaType
	}
	hc, family := c.content, telemetry.Content
	if req.audience != "" {
		family = req.family
		authorization, err := c.authorization(ctx, req.audience)
		if err != nil {
			return nil, &permanentError{fmt.Errorf("token for %s: %w", req.audience, err)}
		}
		hreq.Header["Authorization"] = authorization
		hc = c.api
	}
	hresp, err := hc.Do(hreq)
	if err != nil {
		telemetry.UpstreamAnswer(family, telemetry.NoResponse)
		if errors.Is(err, ErrRedirectRefused) {
			return nil, &permanentError{ErrRedirectRefused}
		}
		return nil, err
	}
	defer hresp.Body.Close()
	data, err := readLimited(hresp.Body, hresp.ContentLength, req.readLimit+1)
	recordCall(ctx, hresp.StatusCode, int64(len(data)))
	telemetry.UpstreamAnswer(family, hresp.StatusCode)
	if err != nil {
		return nil, err
	}
	resp := &response{status: hresp.StatusCode, header: hresp.Header, body: data}
	if int64(len(data)) > req.readLimit {
		resp.body, resp.truncated = data[:req.readLimit], true
	}
	return resp, nil
}

// Authorizer is a TokenSource that also keeps each token's Authorization header
// value, so that a request does not build "Bearer " + token again (a token is a
// kilobyte or two). The slice is shared: it is sent, never changed.
type Authorizer interface {
	Authorization(ctx context.Context, audience string) ([]string, error)
}

func (c *Client) authorization(ctx context.Context, audience string) ([]string, error) {
	if a, ok := c.tokens.(Authorizer); ok {
		return a.Authorization(ctx, audience)
	}
	tok, err := c.tokens.Token(ctx, audience)
	if err != nil {
		return nil, err
	}
	return []string{"Bearer " + tok}, nil
}

// readLimited reads at most limit bytes. A declared length sizes the buffer once;
// an undeclared one (a chunked answer) is read into a pooled buffer and copied out at
// its exact size, rather than grown from 512 bytes in four or five steps.
func readLimited(r io.Reader, declared, limit int64) ([]byte, error) {
	if declared > 0 && declared < limit {
		b := make([]byte, 0, declared+1) // +1: see the end without another read
		for {
			n, err := r.Read(b[len(b):cap(b)])
			b = b[:len(b)+n]
			if err == io.EOF {
				return b, nil
			}
			if err != nil {
				return b, err
			}
			if len(b) == cap(b) { // longer than declared: read the rest the slow way
				rest, err := io.ReadAll(io.LimitReader(r, limit-int64(len(b))))
				return append(b, rest...), err
			}
		}
	}
	buf := readBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledReadBuffer {
			buf.Reset()
			readBuffers.Put(buf)
		}
	}()
	_, err := buf.ReadFrom(io.LimitReader(r, limit))
	return bytes.Clone(buf.Bytes()), err
}

// maxPooledReadBuffer keeps one huge answer from pinning its buffer in the pool.
const maxPooledReadBuffer = 256 << 10

var readBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func retryableStatus(status int, idempotent bool) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return true // rejected before any work was done
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return idempotent // the work may have happened
	}
	return false
}

func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.RetryBackoff << attempt
	return d/2 + rand.N(d/2+1) // jitter so that replicas do not retry in step
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (c *Client) ctxError(ctx context.Context, op string) error {
	if errors.Is(context.Cause(ctx), ErrTimeout) {
		return fmt.Errorf("%w: %s after %s", ErrTimeout, op, c.cfg.Timeout)
	}
	return fmt.Errorf("powerautomate: %s: %w", op, ctx.Err())
}

// callJSON is apiCall followed by decode: one call whose answer is a T.
func callJSON[T any](ctx context.Context, c *Client, op, method, u string, body any) (*T, error) {
	resp, err := c.apiCall(ctx, op, method, u, body)
	if err != nil {
		return nil, err
	}
	var out T
	if err := decode(op, resp, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func decode(op string, resp *response, out any) error {
	// ZeroCopy: strings and raw JSON point into the body, which is never changed
	// after this and is kept only as long as they are.
	rest, err := json.Parse(resp.body, out, json.ZeroCopy)
	if err == nil && len(bytes.TrimSpace(rest)) != 0 {
		err = errors.New("data after the JSON value")
	}
	if err != nil {
		return fmt.Errorf("powerautomate: %s: decoding response: %w", op, jsonError(err))
	}
	return nil
}

// jsonError keeps what a decoding error says about the shape of the response and
// drops the response text the decoder quotes in its message: errors are logged,
// and upstream text never reaches a log.
func jsonError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("not valid JSON (near byte %d)", syntax.Offset)
	case errors.As(err, &typ):
		return fmt.Errorf("field %q holds a JSON value that does not fit %s", typ.Field, typ.Type)
	}
	return errors.New("not decodable JSON")
}

// encodeQuery encodes q with %20 for spaces: OData $filter parsers do not
// all read '+' as a space.
func encodeQuery(q url.Values) string {
	return strings.ReplaceAll(q.Encode(), "+", "%20")
}

func esc(s string) string { return url.PathEscape(s) }
