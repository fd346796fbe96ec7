package rpc

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCancelledNotificationStopsAStreamedCall: a call answered as a stream is
// cancelled by notifications/cancelled from the same caller (its context ends, the
// stream closes with no response), and not by another caller's notification.
func TestCancelledNotificationStopsAStreamedCall(t *testing.T) {
	s := newTestServer(t)
	started := make(chan context.Context, 1)
	stopped := make(chan error, 1)
	s.Handle("block", func(ctx context.Context, _ json.RawMessage) (any, error) {
		Progress(ctx, 1, 0, "waiting")
		started <- ctx
		<-ctx.Done()
		stopped <- ctx.Err()
		return map[string]string{"late": "answer"}, nil
	})
	// The subject comes from the request context, as the server's middleware sets it.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), subjectKey{}, r.Header.Get("X-Test-Subject"))))
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	send := func(subject, body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("X-Test-Subject", subject)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := send("alice", `{"jsonrpc":"2.0","id":7,"method":"block","params":{"_meta":{"progressToken":"t"}}}`)
	defer resp.Body.Close()
	callCtx := <-started

	cancel := `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"user aborted"}}`
	if r := send("mallory", cancel); r.StatusCode != http.StatusAccepted {
		t.Fatalf("another caller's cancellation: status %d", r.StatusCode)
	}
	if r := send("alice", `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":8}}`); r.StatusCode != http.StatusAccepted {
		t.Fatalf("unknown id: status %d", r.StatusCode)
	}
	// A cancellation is handled before its 202: had it matched, the call's context
	// would be done by now.
	if err := callCtx.Err(); err != nil {
		t.Fatalf("call stopped (%v) by a cancellation that was not its caller's", err)
	}
	if r := send("alice", cancel); r.StatusCode != http.StatusAccepted {
		t.Fatalf("cancellation: status %d", r.StatusCode)
	}
	if err := <-stopped; err != context.Canceled {
		t.Fatalf("call context: %v, want context.Canceled", err)
	}
	var data []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			data = append(data, v)
		}
	}
	if len(data) != 2 || !strings.Contains(data[1], "notifications/progress") {
		t.Fatalf("want the priming event and the progress notification only, no response; got %q", data)
	}
	s.inflight.mu.Lock()
	n := len(s.inflight.calls)
	s.inflight.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d calls still registered after the call ended", n)
	}
}

// TestPlainJSONCallsAreNotRegistered: without a progress token nothing is tracked.
func TestPlainJSONCallsAreNotRegistered(t *testing.T) {
	s := newTestServer(t)
	seen := 0
	s.Handle("peek", func(ctx context.Context, _ json.RawMessage) (any, error) {
		s.inflight.mu.Lock()
		seen = len(s.inflight.calls)
		s.inflight.mu.Unlock()
		return map[string]bool{"ok": true}, nil
	})
	ex := post(t, s, `{"jsonrpc":"2.0","id":1,"method":"peek"}`, nil)
	if ex.status != 200 || seen != 0 {
		t.Fatalf("status %d, %d calls registered during a plain call", ex.status, seen)
	}
}
