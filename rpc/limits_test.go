package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// newLimitServer is a server with a 1 MiB body limit (as in production) and a method
// that counts its calls and returns a result of resultBytes characters.
func newLimitServer(opts Options, resultBytes int, delay time.Duration) (*Server, *atomic.Int64) {
	var calls atomic.Int64
	opts.MaxBodyBytes = 1 << 20
	s := NewServer(opts)
	result := strings.Repeat("a", resultBytes)
	s.Handle("count", func(context.Context, json.RawMessage) (any, error) {
		calls.Add(1)
		time.Sleep(delay)
		return result, nil
	})
	return s, &calls
}

// batchOf is a batch of n calls to method with ids 1..n.
func batchOf(n int, method string) string {
	entries := make([]string, n)
	for i := range entries {
		entries[i] = fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q}`, i+1, method)
	}
	return "[" + strings.Join(entries, ",") + "]"
}

type batchAnswer struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int64  `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func decodeBatch(t *testing.T, ex exchange) []batchAnswer {
	t.Helper()
	var out []batchAnswer
	if err := json.Unmarshal([]byte(ex.body), &out); err != nil || ex.status != http.StatusOK {
		t.Fatalf("status %d, body not a JSON array (%v): %.300s", ex.status, err, ex.body)
	}
	return out
}

func TestBatchLengthIsCapped(t *testing.T) {
	s, calls := newLimitServer(Options{}, 2, 0)
	const refusal = `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request: a batch may hold at most 50 messages"}}`

	t.Run("51 entries: one error, nothing runs", func(t *testing.T) {
		ex := post(t, s, batchOf(51, "count"), nil)
		if ex.status != http.StatusBadRequest || ex.body != refusal {
			t.Fatalf("status %d body %s", ex.status, ex.body)
		}
		if n := calls.Load(); n != 0 {
			t.Fatalf("%d calls ran", n)
		}
	})
	t.Run("6000 entries (issue 10): one error, nothing runs", func(t *testing.T) {
		ex := post(t, s, batchOf(6000, "count"), nil)
		if ex.status != http.StatusBadRequest || ex.body != refusal || calls.Load() != 0 {
			t.Fatalf("status %d body %s calls %d", ex.status, ex.body, calls.Load())
		}
	})
	t.Run("51 with notifications counts every message", func(t *testing.T) {
		body := strings.TrimSuffix(batchOf(50, "count"), "]") + `,{"jsonrpc":"2.0","method":"notifications/initialized"}]`
		if ex := post(t, s, body, nil); ex.status != http.StatusBadRequest || ex.body != refusal || calls.Load() != 0 {
			t.Fatalf("status %d body %s calls %d", ex.status, ex.body, calls.Load())
		}
	})
	t.Run("50 entries all run, in order", func(t *testing.T) {
		out := decodeBatch(t, post(t, s, batchOf(50, "count"), nil))
		if len(out) != 50 || calls.Load() != 50 {
			t.Fatalf("%d answers, %d calls", len(out), calls.Load())
		}
		for i, a := range out {
			if string(a.ID) != fmt.Sprint(i+1) || a.Error != nil || string(a.Result) != `"aa"` {
				t.Fatalf("answer %d: id %s result %s error %+v", i, a.ID, a.Result, a.Error)
			}
		}
	})
	t.Run("the cap is an option", func(t *testing.T) {
		small, smallCalls := newLimitServer(Options{MaxBatch: 3}, 2, 0)
		ex := post(t, small, batchOf(4, "count"), nil)
		want := `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request: a batch may hold at most 3 messages"}}`
		if ex.status != http.StatusBadRequest || ex.body != want || smallCalls.Load() != 0 {
			t.Fatalf("status %d body %s calls %d", ex.status, ex.body, smallCalls.Load())
		}
		if out := decodeBatch(t, post(t, small, batchOf(3, "count"), nil)); len(out) != 3 {
			t.Fatalf("%d answers", len(out))
		}
	})
}

func TestBatchResponseIsCapped(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	s, calls := newLimitServer(Options{MaxBatchResponseBytes: 10 * 1024, Logger: zap.New(core)}, 1000, 0)
	const tooLarge = "Response too large: this batch's answers reached 10240 bytes; send the rest again in another request"

	// 30 calls, a notification among them, then an invalid message: each answer is
	// about 1,037 bytes, so the tenth reaches 10 KiB and the twenty after it are skipped.
	body := strings.TrimSuffix(batchOf(30, "count"), "]") +
		`,{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"1.0","id":"bad","method":"count"}]`
	body = strings.Replace(body, `,{"jsonrpc":"2.0","id":5,`, `,{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":5,`, 1)
	out := decodeBatch(t, post(t, s, body, nil))
	if len(out) != 31 {
		t.Fatalf("want 31 answers (30 calls and the invalid message), got %d", len(out))
	}
	const answered = 10
	for i, a := range out[:30] {
		if string(a.ID) != fmt.Sprint(i+1) {
			t.Fatalf("answer %d has id %s: out of order", i, a.ID)
		}
		if i < answered {
			if a.Error != nil || len(a.Result) != 1002 {
				t.Fatalf("answer %d should hold its result: %+v", i, a.Error)
			}
			continue
		}
		if a.Error == nil || a.Error.Code != CodeBatchResponseTooLarge || a.Error.Message != tooLarge || a.Result != nil {
			t.Fatalf("answer %d should be the too-large error: result %.20s error %+v", i, a.Result, a.Error)
		}
	}
	if last := out[30]; string(last.ID) != `"bad"` || last.Error == nil || last.Error.Code != CodeInvalidRequest {
		t.Fatalf("the invalid message keeps its own error: %+v", last)
	}
	if n := calls.Load(); n != answered {
		t.Fatalf("%d calls ran, want %d: skipped entries must not run", n, answered)
	}
	stopped := logs.FilterMessage("mcp batch stopped").All()
	if len(stopped) != 1 {
		t.Fatalf("want one log line, got %d", len(stopped))
	}
	fields := stopped[0].ContextMap()
	if fields["reason"] != "response cap reached" || fields["ran"] != int64(answered) || fields["skipped"] != int64(20) {
		t.Fatalf("log fields %v", fields)
	}

	t.Run("one answer past the cap is still sent", func(t *testing.T) {
		tiny, tinyCalls := newLimitServer(Options{MaxBatchResponseBytes: 100}, 1000, 0)
		out := decodeBatch(t, post(t, tiny, batchOf(3, "count"), nil))
		if len(out) != 3 || out[0].Error != nil || out[1].Error == nil || out[2].Error == nil ||
			out[1].Error.Code != CodeBatchResponseTooLarge || tinyCalls.Load() != 1 {
			t.Fatalf("answers %+v, calls %d", out, tinyCalls.Load())
		}
	})
	t.Run("all notifications is still 202", func(t *testing.T) {
		ex := post(t, s, `[{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":1,"result":{}}]`, nil)
		if ex.status != http.StatusAccepted || ex.body != "" {
			t.Fatalf("status %d body %q", ex.status, ex.body)
		}
	})
}

func TestBatchStopsWhenTheClientGoes(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	s, calls := newLimitServer(Options{Logger: zap.New(core)}, 10, 50*time.Millisecond)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r.WithContext(WithRequestID(r.Context(), "req-gone")))
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(150*time.Millisecond, cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(batchOf(50, "count")))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the request should have been cancelled; status %d", resp.StatusCode)
	}

	var stopped []observer.LoggedEntry
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if stopped = logs.FilterMessage("mcp batch stopped").All(); len(stopped) > 0 {
			break
		}
	}
	if len(stopped) != 1 {
		t.Fatalf("want one log line for the stopped batch, got %d (calls so far %d)", len(stopped), calls.Load())
	}
	time.Sleep(200 * time.Millisecond) // nothing more may start
	ran := calls.Load()
	if ran >= 10 {
		t.Fatalf("%d of 50 calls ran after the client went away", ran)
	}
	fields := stopped[0].ContextMap()
	want := map[string]any{"request_id": "req-gone", "reason": "request ended", "messages": int64(50),
		"ran": ran, "skipped": 50 - ran}
	for k, v := range want {
		if fields[k] != v {
			t.Fatalf("log field %s = %v, want %v (all: %v)", k, fields[k], v, fields)
		}
	}
	if len(fields) != len(want)+1 { // + response_bytes
		t.Fatalf("unexpected log fields: %v", fields)
	}
}

func TestBatchLen(t *testing.T) {
	for _, body := range []string{
		`[]`, ` [ ] `, `[1]`, `[1,2,3]`, `[ {"a":[1,2,{"b":","}]} , "x,y" , [[],[]] , null ]`,
		`["\"],[", "\\", "\\\"", "]"]`, `[{"jsonrpc":"2.0","id":"}","method":"a,b"},{},true,false,-1.5e3]`,
		"[\n\t{\"k\":\"v\"}\r\n,\n1\n]",
	} {
		var items []json.RawMessage
		if err := json.Unmarshal([]byte(body), &items); err != nil {
			t.Fatalf("test case %s: %v", body, err)
		}
		if got := batchLen([]byte(body), 100); got != len(items) {
			t.Errorf("batchLen(%s) = %d, want %d", body, got, len(items))
		}
		if len(items) > 1 {
			if got := batchLen([]byte(body), 1); got != 2 {
				t.Errorf("batchLen(%s, limit 1) = %d, want 2 (stops past the limit)", body, got)
			}
		}
	}
}

// FuzzBatchLen: for every valid JSON array, batchLen counts what the decoder splits.
func FuzzBatchLen(f *testing.F) {
	for _, seed := range []string{`[]`, `[1,"a,b",{"c":[1,2]}]`, `["\\\"]"]`, batchOf(3, "ping")} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var items []json.RawMessage
		if json.Unmarshal([]byte(body), &items) != nil || items == nil {
			return
		}
		if got := batchLen([]byte(body), len(items)); got != len(items) {
			t.Fatalf("batchLen(%q) = %d, want %d", body, got, len(items))
		}
	})
}
