package rpc

import (
	"context"
	"net/http"
	"strings"
	"sync"

	json "github.com/segmentio/encoding/json"
	"go.uber.org/zap"

	"github.com/flowstudio/mcp/rpc/logsafe"
)

// Cancellation (notifications/cancelled) reaches a call only while it runs on this
// replica and only for calls answered as a stream, that is, calls that carried a
// progress token: registering every call would cost the plain JSON path a lock, a
// key and a map entry, and a call short enough to answer as JSON is over before a
// cancellation could arrive. From 2026-07-28 on, closing the stream cancels any call.

// inflight are the cancellable calls of this server, by caller and request id.
type inflight struct {
	mu    sync.Mutex
	calls map[string]inflightCall
}

type inflightCall struct {
	call   *Call
	cancel context.CancelFunc
}

// cancelKey binds a request id to its caller (the authenticated subject) and
// session, so that nobody cancels another's call by guessing its id.
func (s *Server) cancelKey(r *http.Request, rawID json.RawMessage) string {
	var b strings.Builder
	b.WriteString(s.opts.SessionSubject(r.Context()))
	b.WriteByte(0)
	b.WriteString(r.Header.Get(SessionHeader))
	b.WriteByte(0)
	b.Write(rawID)
	return b.String()
}

// track registers a streamed call; the returned func removes it.
func (s *Server) track(key string, c *Call, cancel context.CancelFunc) func() {
	s.inflight.mu.Lock()
	if s.inflight.calls == nil {
		s.inflight.calls = map[string]inflightCall{}
	}
	if _, dup := s.inflight.calls[key]; dup {
		// The same id twice from one caller at once: the spec forbids it; the
		// first keeps the registration, the second cannot be cancelled.
		s.inflight.mu.Unlock()
		return func() {}
	}
	s.inflight.calls[key] = inflightCall{call: c, cancel: cancel}
	s.inflight.mu.Unlock()
	return func() {
		s.inflight.mu.Lock()
		delete(s.inflight.calls, key)
		s.inflight.mu.Unlock()
	}
}

// cancelled handles notifications/cancelled: the named call of the same caller, if
// it still runs here, is cancelled and answers nothing. Unknown, finished or
// malformed cancellations are ignored, as the spec says.
func (s *Server) cancelled(r *http.Request, msg *Message) {
	if msg.Params == nil {
		return
	}
	var p struct {
		RequestID json.RawMessage `json:"requestId"`
	}
	if json.Unmarshal(*msg.Params, &p) != nil || !validID(p.RequestID) {
		return
	}
	key := s.cancelKey(r, compactID(p.RequestID))
	s.inflight.mu.Lock()
	ic, ok := s.inflight.calls[key]
	s.inflight.mu.Unlock()
	if !ok || ic.call.Method == "initialize" {
		return
	}
	ic.call.cancelled.Store(true)
	ic.cancel()
	s.log.Info("mcp call cancelled by the client", zap.String(logsafe.KeyRequestID, RequestID(r.Context())),
		zap.String("method", logMethod(ic.call.Method)))
}

// compactID is a request id as the request carried it: ids are strings or
// integers, so only surrounding space can differ.
func compactID(id json.RawMessage) json.RawMessage {
	return json.RawMessage(strings.TrimSpace(string(id)))
}
