// Package rpc speaks MCP over streamable HTTP: it decodes JSON-RPC messages (on the wire
// types of sourcegraph/jsonrpc2), enforces the transport rules of every supported
// revision, dispatches to registered methods and answers as JSON or SSE. It knows
// nothing of tools, users or Azure.
package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	json "github.com/segmentio/encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flowstudio/mcp/rpc/logsafe"
	"github.com/sourcegraph/jsonrpc2"
	"go.uber.org/zap"
)

// Method serves one JSON-RPC method. params is nil when the request had none. A
// *jsonrpc2.Error is sent as is; any other error becomes -32603 with a reference, and
// its detail goes only to the log.
type Method func(ctx context.Context, params json.RawMessage) (any, error)

// Implementation names this server in initialize and server/discover.
type Implementation struct {
	Name    string `json:"name"`
	Title   string `json:"title,omitempty"`
	Version string `json:"version"`
}

// Options configure a Server.
type Options struct {
	Info         Implementation
	Instructions string
	// SessionSecret signs session ids; every replica must share it.
	SessionSecret []byte
	// SessionSubject names the authenticated caller of a request, to bind sessions to it.
	SessionSubject func(ctx context.Context) string
	// MaxBodyBytes bounds a POST body (413 beyond).
	MaxBodyBytes int64
	// CallTimeout bounds one method call.
	CallTimeout time.Duration
	// MaxBatch bounds the messages in one JSON-RPC batch (2025-03-26): a longer batch
	// is refused whole (400, -32600) and none of it runs. Default DefaultMaxBatch.
	MaxBatch int
	// MaxBatchResponseBytes bounds one batch's answers: once the answers sent reach it,
	// the requests left are not run and each is answered with -32010. The answer that
	// crosses it is still sent (its call ran), so a response may pass it by one answer.
	// Default DefaultMaxBatchResponseBytes.
	MaxBatchResponseBytes int
	Logger                *zap.Logger
}

// Server is an http.Handler for the MCP endpoint.
type Server struct {
	opts         Options
	methods      map[string]Method
	capabilities map[string]any
	sessions     sessionCodec
	log          *zap.Logger
	inflight     inflight // streamed calls, for notifications/cancelled
	// complete opens every 2026-07-28 result (see completion); cacheable replaces it
	// for the methods whose results carry a cache hint.
	complete  []byte
	cacheable map[string][]byte
}

// NewServer returns a server answering initialize, ping, logging/setLevel and
// server/discover; Handle adds the rest.
func NewServer(opts Options) *Server {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 2 * time.Minute
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.MaxBatchResponseBytes <= 0 {
		opts.MaxBatchResponseBytes = DefaultMaxBatchResponseBytes
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.SessionSubject == nil {
		opts.SessionSubject = func(context.Context) string { return "" }
	}
	s := &Server{
		opts:         opts,
		methods:      map[string]Method{},
		capabilities: map[string]any{"logging": map[string]any{}},
		sessions:     sessionCodec{key: opts.SessionSecret, now: time.Now},
		log:          opts.Logger,
		cacheable:    map[string][]byte{},
	}
	s.complete = completion(opts.Info, nil)
	// What server/discover says is the same for every caller and changes only with a
	// release.
	s.Cacheable("server/discover", 5*time.Minute, CachePublic)
	s.methods["ping"] = func(context.Context, json.RawMessage) (any, error) { return struct{}{}, nil }
	s.methods["logging/setLevel"] = setLevel
	return s
}

// Handle registers a method.
func (s *Server) Handle(name string, m Method) { s.methods[name] = m }

// Capability declares a server capability (e.g. "tools") for initialize.
func (s *Server) Capability(name string, value any) { s.capabilities[name] = value }

// CacheScope says who may reuse a cached 2026-07-28 result.
type CacheScope string

const (
	// CachePublic results hold nothing about the caller: any cache may share them.
	CachePublic CacheScope = "public"
	// CachePrivate results may be reused only for the same credentials.
	CachePrivate CacheScope = "private"
)

// Cacheable gives a method's 2026-07-28 results the ttlMs and cacheScope that the
// revision requires on cacheable results (server/discover and the list methods).
// Call it while setting the server up, before it serves.
func (s *Server) Cacheable(method string, ttl time.Duration, scope CacheScope) {
	s.cacheable[method] = completion(s.opts.Info, &cacheHint{ttl: ttl, scope: scope})
}

type cacheHint struct {
	ttl   time.Duration
	scope CacheScope
}

// completion encodes, once, the members a 2026-07-28 result starts with: resultType,
// the cache hint if any, and _meta naming this server (clients read the server's name
// and version from there, since there is no initialize).
func completion(info Implementation, hint *cacheHint) []byte {
	b := []byte(`"resultType":"complete"`)
	if hint != nil {
		b = append(b, `,"ttlMs":`...)
		b = strconv.AppendInt(b, hint.ttl.Milliseconds(), 10)
		b = append(b, `,"cacheScope":`...)
		b = AppendString(b, string(hint.scope))
	}
	infoJSON, err := json.Marshal(info)
	if err != nil { // three strings always encode
		panic(err)
	}
	b = append(b, `,"_meta":{"`+metaServerInfo+`":`...)
	b = append(b, infoJSON...)
	return append(b, '}')
}

// httpError is a transport-level refusal: an HTTP status and, where useful, a JSON-RPC
// error body with id null.
type httpError struct {
	status int
	err    *jsonrpc2.Error
	id     json.RawMessage
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if herr := s.serve(w, r); herr != nil {
		s.log.Info("mcp request refused",
			zap.String("request_id", RequestID(r.Context())),
			zap.Int("status", herr.status), zap.Int64("code", errCode(herr.err)),
			zap.String("reason", errMessage(herr.err)))
		writeHTTPError(w, herr)
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) *httpError {
	if r.Method != http.MethodPost {
		// No standalone GET stream is offered, and sessions are stateless, so DELETE
		// cannot be honoured on every replica: both are 405 (the spec allows it).
		w.Header().Set("Allow", http.MethodPost)
		return &httpError{status: http.StatusMethodNotAllowed,
			err: NewError(CodeInvalidRequest, "Method not allowed: use POST", nil)}
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" && !isMediaType(ct, "application/json") {
		return &httpError{status: http.StatusUnsupportedMediaType,
			err: NewError(CodeInvalidRequest, "Unsupported Media Type: Content-Type must be application/json", nil)}
	}
	if !acceptsResponse(r.Header.Values("Accept")) {
		return &httpError{status: http.StatusNotAcceptable,
			err: NewError(CodeInvalidRequest, "Not Acceptable: Accept must allow application/json or text/event-stream", nil)}
	}
	body, err := readBody(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes), r.ContentLength, s.opts.MaxBodyBytes)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &httpError{status: http.StatusRequestEntityTooLarge,
				err: NewError(CodeInvalidRequest, fmt.Sprintf("Request body too large (limit %d bytes)", s.opts.MaxBodyBytes), nil)}
		}
		return &httpError{status: http.StatusBadRequest, err: NewError(CodeParseError, "Parse error: could not read body", nil)}
	}

	version, elicitURL, herr := s.requestVersion(r)
	if herr != nil {
		return herr
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if !batchesAllowed(version) {
			return &httpError{status: http.StatusBadRequest,
				err: NewError(CodeInvalidRequest, "Invalid Request: JSON-RPC batches are allowed only in protocol 2025-03-26", nil)}
		}
		return s.serveBatch(w, r, version, trimmed)
	}
	msg, id, rpcErr := decodeOne(trimmed)
	if rpcErr != nil {
		// A malformed message is answered in the body; its status says the POST was refused.
		return &httpError{status: http.StatusBadRequest, err: rpcErr, id: id}
	}
	if msg.IsResponse || msg.Notif {
		if msg.Notif && msg.Method == "notifications/cancelled" {
			s.cancelled(r, msg)
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	if isStateless(version) || r.Header.Get("Mcp-Method") != "" {
		if herr := checkStatelessEnvelope(r, msg, version); herr != nil {
			return herr
		}
		version = Version20260728
	}
	s.serveOne(w, r, version, msg, elicitURL)
	return nil
}

// readBody reads a request body in one allocation when its length is declared
// (and within the limit), else as io.ReadAll does.
func readBody(body io.Reader, declared, limit int64) ([]byte, error) {
	if declared <= 0 || declared > limit {
		return io.ReadAll(body)
	}
	buf := make([]byte, declared+1) // one spare byte: a body longer than declared is an error below
	n, err := io.ReadFull(body, buf)
	switch {
	case int64(n) == declared && (err == io.ErrUnexpectedEOF || err == io.EOF):
		return buf[:n], nil // exactly the declared length, then the end
	case err != nil:
		return nil, err // cut short, or over the limit
	}
	return nil, errors.New("body longer than its Content-Length")
}

// requestVersion picks the revision in force: the MCP-Protocol-Version header, else
// the one sealed in the session, else 2025-03-26 as the spec says to assume. It also
// says whether the session's client declared URL-mode elicitation.
func (s *Server) requestVersion(r *http.Request) (string, bool, *httpError) {
	header := r.Header.Get("MCP-Protocol-Version")
	if header != "" && !isSupported(header) {
		code := int64(CodeInvalidRequest)
		if r.Header.Get("Mcp-Method") != "" {
			code = CodeUnsupportedProtocolVersion
		}
		return "", false, &httpError{status: http.StatusBadRequest,
			err: NewError(code, "Unsupported MCP-Protocol-Version",
				map[string]any{"supported": SupportedVersions, "requested": truncate(header, 64)})}
	}
	if isStateless(header) {
		return header, false, nil // 2026-07-28 has no sessions: the header is ignored
	}
	elicitURL := false
	if sid := r.Header.Get(SessionHeader); sid != "" {
		v, eu, err := s.sessions.open(sid, s.opts.SessionSubject(r.Context()))
		if err != nil {
			return "", false, &httpError{status: http.StatusNotFound,
				err: NewError(CodeInvalidRequest, "Session not found: initialize a new session", nil)}
		}
		if header == "" {
			header = v
		}
		elicitURL = eu
	}
	if header == "" {
		header = Version20250326
	}
	return header, elicitURL, nil
}

// serveBatch answers a 2025-03-26 batch in order, streaming each answer as it is
// produced. The work is bounded: at most MaxBatch messages, no new call once the
// answers reach MaxBatchResponseBytes, and none once the client has gone away. A
// request that is not run gets its own error, so the client sees which to send again.
func (s *Server) serveBatch(w http.ResponseWriter, r *http.Request, version string, body []byte) *httpError {
	// Count before decoding: a 6,000-entry body is refused without splitting it.
	if batchLen(body, s.opts.MaxBatch) > s.opts.MaxBatch {
		return &httpError{status: http.StatusBadRequest, err: errBatchTooLong(s.opts.MaxBatch)}
	}
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return &httpError{status: http.StatusBadRequest, err: NewError(CodeParseError, "Parse error: body is not valid JSON", nil)}
	}
	if len(items) == 0 {
		return &httpError{status: http.StatusBadRequest, err: NewError(CodeInvalidRequest, "Invalid Request: empty batch", nil)}
	}
	if len(items) > s.opts.MaxBatch {
		return &httpError{status: http.StatusBadRequest, err: errBatchTooLong(s.opts.MaxBatch)}
	}
	out := batchWriter{w: w}
	var stop *jsonrpc2.Error // once set, no further request runs
	stopReason := ""
	ran, skipped := 0, 0
	for _, item := range items {
		msg, id, rpcErr := decodeOne(item)
		switch {
		case rpcErr != nil:
			out.add(encodeError(id, rpcErr))
		case msg.IsResponse || msg.Notif:
		case msg.Method == "initialize":
			out.add(encodeError(msg.RawID, NewError(CodeInvalidRequest, "Invalid Request: initialize must not be batched", nil)))
		default:
			if stop == nil {
				// A call already started is not cancelled by a disconnect (2025-03-26),
				// but no new one starts for a client that is gone.
				if r.Context().Err() != nil {
					stop, stopReason = errBatchCancelled, "request ended"
				} else if out.written >= s.opts.MaxBatchResponseBytes {
					stop, stopReason = errBatchResponseTooLarge(s.opts.MaxBatchResponseBytes), "response cap reached"
				}
			}
			if stop != nil {
				skipped++
				out.add(encodeError(msg.RawID, stop))
				continue
			}
			ctx, cancel := s.callContext(r, version, msg, nil)
			out.add(s.dispatch(ctx, msg))
			cancel()
			ran++
		}
	}
	if stop != nil {
		s.log.Info("mcp batch stopped",
			zap.String(logsafe.KeyRequestID, RequestID(r.Context())),
			zap.String("reason", stopReason), zap.Int("messages", len(items)),
			zap.Int("ran", ran), zap.Int("skipped", skipped), zap.Int("response_bytes", out.written))
	}
	if !out.started {
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	out.close()
	return nil
}

func (s *Server) serveOne(w http.ResponseWriter, r *http.Request, version string, msg *Message, elicitURL bool) {
	var stream *sseStream
	token := progressToken(msg)
	if token != nil && acceptsSSE(r.Header.Values("Accept")) {
		// SSE may run long: lift the server's write deadline for this response only.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.opts.CallTimeout + 10*time.Second))
		stream = newSSEStream(w)
	}
	ctx, cancel := s.callContext(r, version, msg, stream)
	defer cancel()
	call := CallFrom(ctx)
	call.progressToken = token
	// What a server-to-client request (ElicitURL) needs to open a stream later.
	call.w, call.r, call.elicitURL = w, r, elicitURL

	if msg.Method == "initialize" {
		s.initialize(ctx, w, msg, stream)
		return
	}
	if stream != nil {
		defer s.track(s.cancelKey(r, msg.RawID), call, cancel)()
	}
	out := s.dispatch(ctx, msg)
	if call.cancelled.Load() {
		return // cancelled by the client: the stream ends without a response
	}
	if isStateless(version) {
		members, ok := s.cacheable[msg.Method]
		if !ok {
			members = s.complete
		}
		out = completeResult(out, members)
	}
	if call.stream != nil { // opened before the call, or by the call (ElicitURL)
		call.stream.write("message", out)
		return
	}
	writeJSONBody(w, out)
}

// callContext bounds a call. Before 2026-07-28 a dropped connection is not a
// cancellation, so the call is detached from the request; from 2026-07-28 on, closing
// the stream cancels it.
func (s *Server) callContext(r *http.Request, version string, msg *Message, stream *sseStream) (context.Context, context.CancelFunc) {
	parent := r.Context()
	if !isStateless(version) {
		parent = context.WithoutCancel(parent)
	}
	ctx, cancel := context.WithTimeout(parent, s.opts.CallTimeout)
	return context.WithValue(ctx, callKey, &Call{ProtocolVersion: version, Method: msg.Method, stream: stream, Params: msg.Head}), cancel
}

func (s *Server) initialize(ctx context.Context, w http.ResponseWriter, msg *Message, stream *sseStream) {
	var p struct {
		ProtocolVersion string `json:"protocolVersion"`
		Capabilities    struct {
			Elicitation *struct {
				URL json.RawMessage `json:"url"`
			} `json:"elicitation"`
		} `json:"capabilities"`
	}
	if msg.Params != nil {
		_ = json.Unmarshal(*msg.Params, &p)
	}
	if p.ProtocolVersion == "" {
		s.writeOut(w, stream, encodeError(msg.RawID, NewError(CodeInvalidParams, "Invalid params: protocolVersion is required", nil)))
		return
	}
	negotiated := p.ProtocolVersion
	if !isSupported(negotiated) {
		negotiated = LatestHandshakeVersion
	}
	result := map[string]any{
		"protocolVersion": negotiated,
		"capabilities":    s.capabilities,
		"serverInfo":      s.opts.Info,
	}
	if s.opts.Instructions != "" {
		result["instructions"] = s.opts.Instructions
	}
	out, err := encodeResult(msg.RawID, result)
	if err != nil {
		out = encodeError(msg.RawID, NewError(CodeInternalError, "Internal error", nil))
	}
	if !isStateless(negotiated) && stream == nil {
		elicitURL := p.Capabilities.Elicitation != nil && len(p.Capabilities.Elicitation.URL) > 0 &&
			string(p.Capabilities.Elicitation.URL) != "null" && negotiated >= Version20251125
		w.Header().Set(SessionHeader, s.sessions.mint(negotiated, s.opts.SessionSubject(ctx), elicitURL))
	}
	s.writeOut(w, stream, out)
}

func (s *Server) writeOut(w http.ResponseWriter, stream *sseStream, out []byte) {
	if stream != nil {
		stream.write("message", out)
		return
	}
	writeJSONBody(w, out)
}

// dispatch runs one request and returns its encoded response.
func (s *Server) dispatch(ctx context.Context, msg *Message) (out []byte) {
	defer func() {
		if p := recover(); p != nil {
			ref := RequestID(ctx)
			s.log.Error("method panicked", zap.String(logsafe.KeyRequestID, ref), zap.String("method", logMethod(msg.Method)),
				logsafe.Panic(p))
			out = encodeError(msg.RawID, internalError(ref))
		}
	}()
	m, ok := s.methods[msg.Method]
	if msg.Method == "server/discover" {
		m, ok = s.discover, true
	}
	if !ok {
		return encodeError(msg.RawID, NewError(CodeMethodNotFound, "Method not found: "+truncate(msg.Method, 100), nil))
	}
	var params json.RawMessage
	if msg.Params != nil {
		params = *msg.Params
	}
	result, err := m(ctx, params)
	if err != nil {
		var rpcErr *jsonrpc2.Error
		if errors.As(err, &rpcErr) {
			return encodeError(msg.RawID, rpcErr)
		}
		ref := RequestID(ctx)
		s.log.Error("method failed", zap.String(logsafe.KeyRequestID, ref), zap.String("method", logMethod(msg.Method)), logsafe.Error(err))
		return encodeError(msg.RawID, internalError(ref))
	}
	out, err = encodeResult(msg.RawID, result)
	if err != nil {
		s.log.Error("result not encodable", zap.String(logsafe.KeyRequestID, RequestID(ctx)), zap.String("method", logMethod(msg.Method)), logsafe.Error(err))
		return encodeError(msg.RawID, internalError(RequestID(ctx)))
	}
	return out
}

func (s *Server) discover(context.Context, json.RawMessage) (any, error) {
	// The server's name and version travel in the result's _meta (see completion),
	// as the 2026-07-28 schema has them, not as a member of their own.
	result := map[string]any{
		"supportedVersions": SupportedVersions,
		"capabilities":      s.capabilities,
	}
	if s.opts.Instructions != "" {
		result["instructions"] = s.opts.Instructions
	}
	return result, nil
}

func internalError(ref string) *jsonrpc2.Error {
	return NewError(CodeInternalError, "Internal error (ref "+ref+")", nil)
}

// logLevels are the RFC 5424 levels MCP uses.
var logLevels = map[string]bool{"debug": true, "info": true, "notice": true, "warning": true,
	"error": true, "critical": true, "alert": true, "emergency": true}

// setLevel accepts the level. The server sends no log notifications of its own, so
// there is nothing to filter; an unknown level is still refused.
func setLevel(_ context.Context, params json.RawMessage) (any, error) {
	var p struct {
		Level string `json:"level"`
	}
	if json.Unmarshal(params, &p) != nil || !logLevels[p.Level] {
		return nil, NewError(CodeInvalidParams, "Invalid params: level must be one of debug, info, notice, warning, error, critical, alert, emergency", nil)
	}
	return struct{}{}, nil
}

func writeHTTPError(w http.ResponseWriter, herr *httpError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(herr.status)
	if herr.err != nil {
		_, _ = w.Write(encodeError(herr.id, herr.err))
	}
}

func progressToken(msg *Message) json.RawMessage {
	if msg.Head == nil {
		return nil
	}
	t := bytes.TrimSpace(msg.Head.Meta.ProgressToken)
	if len(t) == 0 || string(t) == "null" {
		return nil
	}
	return t
}

// acceptsResponse is lenient: no Accept header, */*, JSON or SSE will do.
func acceptsResponse(values []string) bool {
	if len(values) == 0 {
		return true
	}
	for _, v := range values {
		for rest := v; rest != ""; {
			var part string
			part, rest, _ = strings.Cut(rest, ",")
			part = strings.TrimSpace(part)
			switch part { // the usual spellings, without parsing
			case "*/*", "application/*", "application/json", "text/event-stream", "text/*":
				return true
			}
			mt, _, _ := mime.ParseMediaType(part)
			switch mt {
			case "*/*", "application/*", "application/json", "text/event-stream", "text/*":
				return true
			}
		}
	}
	return false
}

// isMediaType reports whether a Content-Type value names the media type want
// (parameters and case aside).
func isMediaType(value, want string) bool {
	mt, _, err := mime.ParseMediaType(value)
	return err == nil && mt == want
}

func acceptsSSE(values []string) bool {
	for _, v := range values {
		if strings.Contains(v, "text/event-stream") {
			return true
		}
	}
	return false
}

// completeResult puts members (see completion) first in a 2026-07-28 result object,
// in one allocation; an error response is returned as it is. No method's result has
// members of these names itself (TestStatelessResultsMatchSchema checks every one).
func completeResult(out, members []byte) []byte {
	const key = `"result":{`
	i := bytes.Index(out, []byte(key))
	if i < 0 {
		return out
	}
	at := i + len(key)
	comma := 0
	if out[at] != '}' {
		comma = 1
	}
	b := make([]byte, 0, len(out)+len(members)+comma)
	b = append(b, out[:at]...)
	b = append(b, members...)
	if comma == 1 {
		b = append(b, ',')
	}
	return append(b, out[at:]...)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func errCode(e *jsonrpc2.Error) int64 {
	if e == nil {
		return 0
	}
	return e.Code
}

func errMessage(e *jsonrpc2.Error) string {
	if e == nil {
		return ""
	}
	return e.Message
}

// logMethod is a method name fit for the log: only registered methods reach a
// method, but a name is client text, so it is bounded and kept to its alphabet.
func logMethod(m string) string {
	if len(m) > 64 || strings.IndexFunc(m, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '/' || r == '_')
	}) >= 0 {
		return "‹invalid›"
	}
	return m
}

// jsonContentType is shared by every response; net/http never writes to header values.
var jsonContentType = []string{"application/json"}

// writeJSONBody sends a whole JSON body with its length: a body past 2 KiB would
// otherwise go out chunked, which costs both ends framing for nothing.
func writeJSONBody(w http.ResponseWriter, out []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(out))}
	_, _ = w.Write(out)
}
