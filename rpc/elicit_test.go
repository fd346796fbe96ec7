package rpc

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// elicitServer has a method that asks for a URL-mode elicitation and says whether
// it was sent.
func elicitServer(t *testing.T) *Server {
	t.Helper()
	s := newTestServer(t)
	s.Handle("signin", func(ctx context.Context, _ json.RawMessage) (any, error) {
		return map[string]bool{"elicited": ElicitURL(ctx, "Sign in to Contoso Tasks", "https://consent.example/login?data=x", "el-1")}, nil
	})
	return s
}

func sessionFor(t *testing.T, s *Server, version, capabilities string) string {
	t.Helper()
	init := post(t, s, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+version+`","capabilities":`+capabilities+`}}`,
		map[string]string{"x-test-subject": "alice"})
	sid := init.header.Get(SessionHeader)
	if sid == "" {
		t.Fatalf("no session: %d %s", init.status, init.body)
	}
	return sid
}

// sseData returns the data lines of an SSE answer.
func sseData(body string) []string {
	var out []string
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			out = append(out, v)
		}
	}
	return out
}

// TestElicitURL: a client that declared URL-mode elicitation (2025-11-25) gets an
// elicitation/create request on a stream the call opens, then the response; one
// that did not, or cannot take a stream, gets plain JSON and the call learns that
// nothing was sent.
func TestElicitURL(t *testing.T) {
	s := elicitServer(t)
	call := `{"jsonrpc":"2.0","id":9,"method":"signin"}`

	sid := sessionFor(t, s, "2025-11-25", `{"elicitation":{"form":{},"url":{}}}`)
	got := post(t, s, call, map[string]string{SessionHeader: sid, "x-test-subject": "alice"})
	if ct := got.header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q: %s", ct, got.body)
	}
	data := sseData(got.body)
	if len(data) != 3 || data[0] != "" {
		t.Fatalf("want the priming event, the request, the response; got %q", data)
	}
	var req struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      string          `json:"id"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal([]byte(data[1]), &req); err != nil || req.JSONRPC != "2.0" || !strings.HasPrefix(req.ID, "elicit-") ||
		req.Method != "elicitation/create" ||
		string(req.Params) != `{"elicitationId":"el-1","message":"Sign in to Contoso Tasks","mode":"url","url":"https://consent.example/login?data=x"}` {
		t.Fatalf("elicitation request %s (%v)", data[1], err)
	}
	if !strings.Contains(data[2], `"id":9`) || !strings.Contains(data[2], `"elicited":true`) {
		t.Fatalf("response %s", data[2])
	}
	// The client's answer is acknowledged like any client response.
	if ack := post(t, s, `{"jsonrpc":"2.0","id":"`+req.ID+`","result":{"action":"accept"}}`, map[string]string{SessionHeader: sid, "x-test-subject": "alice"}); ack.status != 202 {
		t.Fatalf("the client's answer: %d", ack.status)
	}

	for name, c := range map[string]struct {
		version, caps string
		headers       map[string]string
	}{
		"form mode only":            {"2025-11-25", `{"elicitation":{}}`, nil},
		"no elicitation":            {"2025-11-25", `{}`, nil},
		"an older revision":         {"2025-06-18", `{"elicitation":{"url":{}}}`, nil},
		"no event stream in Accept": {"2025-11-25", `{"elicitation":{"url":{}}}`, map[string]string{"Accept": "application/json"}},
	} {
		t.Run(name, func(t *testing.T) {
			h := map[string]string{SessionHeader: sessionFor(t, s, c.version, c.caps), "x-test-subject": "alice"}
			for k, v := range c.headers {
				h[k] = v
			}
			got := post(t, s, call, h)
			if got.header.Get("Content-Type") != "application/json" || !strings.Contains(got.body, `"elicited":false`) {
				t.Fatalf("%s: %s", got.header.Get("Content-Type"), got.body)
			}
		})
	}
	// No session at all, and a batch: nothing to elicit through.
	if got := post(t, s, call, map[string]string{"x-test-subject": "alice"}); !strings.Contains(got.body, `"elicited":false`) {
		t.Fatalf("without a session: %s", got.body)
	}
	batch := post(t, s, "["+call+"]", map[string]string{SessionHeader: sessionFor(t, s, "2025-03-26", `{"elicitation":{"url":{}}}`), "x-test-subject": "alice"})
	if !strings.Contains(batch.body, `"elicited":false`) {
		t.Fatalf("in a batch: %s", batch.body)
	}
}

// TestElicitURLOnAStreamAlreadyOpen: a call already streaming (progress token) sends the
// request on that same stream.
func TestElicitURLOnAStreamAlreadyOpen(t *testing.T) {
	s := elicitServer(t)
	sid := sessionFor(t, s, "2025-11-25", `{"elicitation":{"url":{}}}`)
	got := post(t, s, `{"jsonrpc":"2.0","id":3,"method":"signin","params":{"_meta":{"progressToken":"p"}}}`,
		map[string]string{SessionHeader: sid, "x-test-subject": "alice"})
	data := sseData(got.body)
	if len(data) != 3 || !strings.Contains(data[1], "elicitation/create") || !strings.Contains(data[2], `"elicited":true`) {
		t.Fatalf("got %q", data)
	}
}
