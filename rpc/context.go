package rpc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"time"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	callKey
)

// WithRequestID stores the HTTP request id (set by the server's middleware).
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestID returns the request id, or "" when none was set.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// Call describes the JSON-RPC call a method is serving.
type Call struct {
	// ProtocolVersion is the revision in force for this request.
	ProtocolVersion string
	Method          string
	// Params is the request's params as parsed with the message (nil when there
	// were none): methods read the name and arguments here instead of parsing
	// params again.
	Params *Params
	// progressToken is params._meta.progressToken, nil when the client asked for none.
	progressToken json.RawMessage
	stream        *sseStream // nil when answering as plain JSON
	lastProgress  float64
	// cancelled is set when the client sent notifications/cancelled for this call:
	// its context is cancelled and no response is sent.
	cancelled atomic.Bool
	// w and r are the request's, for a stream opened by the call itself (ElicitURL);
	// elicitURL says the session's client declared URL-mode elicitation.
	w         http.ResponseWriter
	r         *http.Request
	elicitURL bool
}

// CallFrom returns the call being served; nil outside a method.
func CallFrom(ctx context.Context) *Call {
	c, _ := ctx.Value(callKey).(*Call)
	return c
}

// Reporting says whether Progress would send anything for this call: the client
// gave a progress token and the answer is a stream. Handlers check it once, so that
// a call without a token does no progress bookkeeping at all.
func Reporting(ctx context.Context) bool {
	c := CallFrom(ctx)
	return c != nil && c.stream != nil && c.progressToken != nil
}

// Progress sends notifications/progress on the request's SSE stream when the client
// gave a progress token. progress must increase; stale values are dropped, as the spec
// requires progress to grow with every notification.
func Progress(ctx context.Context, progress, total float64, message string) {
	c := CallFrom(ctx)
	if c == nil || c.stream == nil || c.progressToken == nil || progress <= c.lastProgress || c.cancelled.Load() {
		return
	}
	c.lastProgress = progress
	params := map[string]any{"progressToken": c.progressToken, "progress": progress}
	if total > 0 {
		params["total"] = total
	}
	if message != "" {
		params["message"] = message
	}
	c.stream.notify("notifications/progress", params)
}

// ElicitURL asks the client to open url for its user (MCP 2025-11-25 URL-mode
// elicitation): an elicitation/create request on the call's SSE stream, which it
// opens if the answer was to be plain JSON. It returns false, and sends nothing,
// when the session's client did not declare the capability or cannot take a
// stream (no text/event-stream in Accept, a batch, 2026-07-28); the caller then
// shows the link some other way. The client's answer (accept, decline, cancel)
// is a POST of its own that any replica acknowledges; whether the person finished
// is learnt from the upstream, not from that answer.
func ElicitURL(ctx context.Context, message, url, elicitationID string) bool {
	c := CallFrom(ctx)
	if c == nil || !c.elicitURL || c.w == nil || c.r == nil || c.cancelled.Load() || isStateless(c.ProtocolVersion) ||
		!acceptsSSE(c.r.Header.Values("Accept")) {
		return false
	}
	if c.stream == nil {
		// A stream may run long: lift the server's write deadline for this response.
		_ = http.NewResponseController(c.w).SetWriteDeadline(time.Now().Add(3 * time.Minute))
		c.stream = newSSEStream(c.w)
	}
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	req, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": "elicit-" + hex.EncodeToString(b), "method": "elicitation/create",
		"params": map[string]string{"mode": "url", "message": message, "url": url, "elicitationId": elicitationID}})
	if err != nil {
		return false
	}
	c.stream.write("message", req)
	return true
}
