package rpc

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
)

// sseStream writes one request's Server-Sent Events response: a priming event, any
// notifications about the request, then the response, after which the stream ends.
type sseStream struct {
	mu     sync.Mutex
	w      http.ResponseWriter
	flush  func() error
	prefix string // unique per stream, so event ids never repeat across streams
	seq    int
}

func newSSEStream(w http.ResponseWriter) *sseStream {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sseStream{w: w, flush: rc.Flush, prefix: hex.EncodeToString(b)}
	// Priming event (2025-11-25): an id and empty data, sent at once.
	s.write("", nil)
	return s
}

func (s *sseStream) write(event string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	if event != "" {
		fmt.Fprintf(s.w, "event: %s\n", event)
	}
	fmt.Fprintf(s.w, "id: %s-%d\ndata: %s\n\n", s.prefix, s.seq, data)
	_ = s.flush()
}

func (s *sseStream) notify(method string, params any) {
	b, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method, "params": params})
	if err == nil {
		s.write("message", b)
	}
}
