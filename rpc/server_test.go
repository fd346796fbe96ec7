package rpc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type subjectKey struct{}

func newTestServer(t testing.TB) *Server {
	t.Helper()
	s := NewServer(Options{
		Info:          Implementation{Name: "test", Version: "1"},
		SessionSecret: []byte("0123456789abcdef0123456789abcdef"),
		SessionSubject: func(ctx context.Context) string {
			v, _ := ctx.Value(subjectKey{}).(string)
			return v
		},
		MaxBodyBytes: 4096,
	})
	s.Capability("tools", map[string]any{})
	s.Handle("echo", func(_ context.Context, p json.RawMessage) (any, error) { return map[string]any{"params": p}, nil })
	s.Handle("fail", func(context.Context, json.RawMessage) (any, error) { return nil, errors.New("secret detail") })
	s.Handle("panic", func(context.Context, json.RawMessage) (any, error) { panic("boom") })
	s.Handle("invalid", func(context.Context, json.RawMessage) (any, error) {
		return nil, NewError(CodeInvalidParams, "bad cursor", nil)
	})
	s.Handle("slow", func(ctx context.Context, _ json.RawMessage) (any, error) {
		for i := 1; i <= 3; i++ {
			Progress(ctx, float64(i), 3, "step")
		}
		return map[string]string{"done": "yes"}, nil
	})
	return s
}

type exchange struct {
	status  int
	header  http.Header
	body    string
	decoded map[string]any
}

func post(t *testing.T, h http.Handler, body string, headers map[string]string) exchange {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	req = req.WithContext(context.WithValue(req.Context(), subjectKey{}, headers["x-test-subject"]))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	ex := exchange{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
	if strings.HasPrefix(ex.body, "{") {
		_ = json.Unmarshal(rec.Body.Bytes(), &ex.decoded)
	}
	return ex
}

func (e exchange) errorCode() float64 {
	if errObj, ok := e.decoded["error"].(map[string]any); ok {
		return errObj["code"].(float64)
	}
	return 0
}

func TestTransportStatusAndErrorCodes(t *testing.T) {
	s := newTestServer(t)
	big := `{"jsonrpc":"2.0","id":1,"method":"echo","params":{"x":"` + strings.Repeat("a", 5000) + `"}}`
	cases := []struct {
		name     string
		body     string
		headers  map[string]string
		status   int
		code     float64
		idInBody string // raw id expected in the response ("" = don't check)
	}{
		{"ping", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, nil, 200, 0, "1"},
		{"unknown method", `{"jsonrpc":"2.0","id":2,"method":"nope"}`, nil, 200, CodeMethodNotFound, "2"},
		{"malformed json", `{"jsonrpc":"2.0","id":`, nil, 400, CodeParseError, "null"},
		{"not an object", `42`, nil, 400, CodeInvalidRequest, "null"},
		{"wrong jsonrpc version", `{"jsonrpc":"1.0","id":3,"method":"ping"}`, nil, 400, CodeInvalidRequest, "3"},
		{"missing jsonrpc", `{"id":3,"method":"ping"}`, nil, 400, CodeInvalidRequest, "3"},
		{"null id", `{"jsonrpc":"2.0","id":null,"method":"ping"}`, nil, 400, CodeInvalidRequest, "null"},
		{"fractional id", `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`, nil, 400, CodeInvalidRequest, "null"},
		{"exponent id", `{"jsonrpc":"2.0","id":1e3,"method":"ping"}`, nil, 400, CodeInvalidRequest, "null"},
		{"object id", `{"jsonrpc":"2.0","id":{},"method":"ping"}`, nil, 400, CodeInvalidRequest, "null"},
		{"bool id", `{"jsonrpc":"2.0","id":true,"method":"ping"}`, nil, 400, CodeInvalidRequest, "null"},
		{"negative id echoed", `{"jsonrpc":"2.0","id":-7,"method":"ping"}`, nil, 200, 0, "-7"},
		{"2^64 id echoed", `{"jsonrpc":"2.0","id":18446744073709551616,"method":"ping"}`, nil, 200, 0, "18446744073709551616"},
		{"string id echoed", `{"jsonrpc":"2.0","id":"abc","method":"ping"}`, nil, 200, 0, `"abc"`},
		{"very long string id", `{"jsonrpc":"2.0","id":"` + strings.Repeat("x", 2000) + `","method":"ping"}`, nil, 400, CodeInvalidRequest, "null"},
		{"missing method", `{"jsonrpc":"2.0","id":4}`, nil, 400, CodeInvalidRequest, "4"},
		{"empty method", `{"jsonrpc":"2.0","id":4,"method":""}`, nil, 400, CodeInvalidRequest, "4"},
		{"params not object", `{"jsonrpc":"2.0","id":5,"method":"echo","params":"x"}`, nil, 400, CodeInvalidRequest, "5"},
		{"internal error hides detail", `{"jsonrpc":"2.0","id":6,"method":"fail"}`, nil, 200, CodeInternalError, "6"},
		{"panic is internal error", `{"jsonrpc":"2.0","id":6,"method":"panic"}`, nil, 200, CodeInternalError, "6"},
		{"method's own rpc error", `{"jsonrpc":"2.0","id":7,"method":"invalid"}`, nil, 200, CodeInvalidParams, "7"},
		{"notification 202", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, nil, 202, 0, ""},
		{"client response 202", `{"jsonrpc":"2.0","id":9,"result":{}}`, nil, 202, 0, ""},
		{"oversize body 413", big, nil, 413, CodeInvalidRequest, "null"},
		{"wrong content type 415", `{}`, map[string]string{"Content-Type": "text/plain"}, 415, CodeInvalidRequest, "null"},
		{"missing content type 415", `{}`, map[string]string{"Content-Type": ""}, 415, CodeInvalidRequest, "null"},
		{"unacceptable accept 406", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, map[string]string{"Accept": "text/html"}, 406, CodeInvalidRequest, "null"},
		{"content type with charset", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, map[string]string{"Content-Type": "Application/JSON; charset=utf-8"}, 200, 0, "1"},
		{"content type json-like 415", `{}`, map[string]string{"Content-Type": "application/jsonx"}, 415, CodeInvalidRequest, "null"},
		{"accept with parameters", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, map[string]string{"Accept": "text/html, Application/Json;q=0.9"}, 200, 0, "1"},
		{"accept list without json 406", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, map[string]string{"Accept": "text/html,image/png"}, 406, CodeInvalidRequest, "null"},
		{"unsupported protocol header 400", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, map[string]string{"MCP-Protocol-Version": "1999-01-01"}, 400, CodeInvalidRequest, "null"},
		{"bad session 404", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, map[string]string{"Mcp-Session-Id": "forged.session"}, 404, CodeInvalidRequest, "null"},
		{"set level", `{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"debug"}}`, nil, 200, 0, "1"},
		{"set bad level", `{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"loud"}}`, nil, 200, CodeInvalidParams, "1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ex := post(t, s, tc.body, tc.headers)
			if ex.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", ex.status, tc.status, ex.body)
			}
			if got := ex.errorCode(); got != tc.code {
				t.Fatalf("error code = %v, want %v; body %s", got, tc.code, ex.body)
			}
			if tc.status == 202 && ex.body != "" {
				t.Fatalf("202 must have no body, got %q", ex.body)
			}
			if tc.idInBody != "" {
				var env struct{ ID json.RawMessage }
				if err := json.Unmarshal([]byte(ex.body), &env); err != nil {
					t.Fatalf("body is not JSON: %v", err)
				}
				if string(env.ID) != tc.idInBody {
					t.Fatalf("id = %s, want %s", env.ID, tc.idInBody)
				}
			}
			if strings.Contains(ex.body, "secret detail") || strings.Contains(ex.body, "boom") || strings.Contains(ex.body, "goroutine") {
				t.Fatalf("internal detail leaked: %s", ex.body)
			}
		})
	}
}

func TestMethodsOtherThanPost(t *testing.T) {
	s := newTestServer(t)
	for _, m := range []string{http.MethodGet, http.MethodDelete, http.MethodPut} {
		req := httptest.NewRequest(m, "/mcp", nil)
		req.Header.Set("Accept", "text/event-stream")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "POST" {
			t.Errorf("%s: status %d Allow %q, want 405 POST", m, rec.Code, rec.Header().Get("Allow"))
		}
	}
}

func TestInitializeNegotiatesEachVersion(t *testing.T) {
	s := newTestServer(t)
	for _, tc := range []struct{ asked, want string }{
		{Version20250326, Version20250326},
		{Version20250618, Version20250618},
		{Version20251125, Version20251125},
		{"2024-11-05", LatestHandshakeVersion},
		{"2099-01-01", LatestHandshakeVersion},
	} {
		t.Run(tc.asked, func(t *testing.T) {
			ex := post(t, s, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+tc.asked+`","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`, nil)
			result := ex.decoded["result"].(map[string]any)
			if result["protocolVersion"] != tc.want {
				t.Fatalf("protocolVersion = %v, want %s", result["protocolVersion"], tc.want)
			}
			if _, ok := result["capabilities"].(map[string]any)["tools"]; !ok {
				t.Fatalf("capabilities lack tools: %v", result)
			}
			if ex.header.Get(SessionHeader) == "" {
				t.Fatal("no session id minted")
			}
		})
	}
}

func TestSessionsAreSignedAndBoundToTheSubject(t *testing.T) {
	s := newTestServer(t)
	init := post(t, s, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26"}}`,
		map[string]string{"x-test-subject": "alice"})
	sid := init.header.Get(SessionHeader)
	for _, c := range sid {
		if c < 0x21 || c > 0x7e {
			t.Fatalf("session id has a non-visible-ASCII byte: %q", sid)
		}
	}
	// The session carries 2025-03-26, so a batch without a version header is allowed.
	ok := post(t, s, `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, map[string]string{SessionHeader: sid, "x-test-subject": "alice"})
	if ok.status != 200 {
		t.Fatalf("alice's own session: %d %s", ok.status, ok.body)
	}
	other := post(t, s, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, map[string]string{SessionHeader: sid, "x-test-subject": "mallory"})
	if other.status != 404 {
		t.Fatalf("another subject's session must be 404, got %d", other.status)
	}
	tampered := post(t, s, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, map[string]string{SessionHeader: "x" + sid, "x-test-subject": "alice"})
	if tampered.status != 404 {
		t.Fatalf("tampered session must be 404, got %d", tampered.status)
	}
	// A session that outlived its lifetime is unknown.
	s.sessions.now = func() time.Time { return time.Now().Add(sessionLifetime + time.Hour) }
	expired := post(t, s, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, map[string]string{SessionHeader: sid, "x-test-subject": "alice"})
	if expired.status != 404 {
		t.Fatalf("expired session must be 404, got %d", expired.status)
	}
}

func TestBatchesPerVersion(t *testing.T) {
	s := newTestServer(t)
	batch := `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":2,"method":"nope"},{"jsonrpc":"1.0","id":3,"method":"ping"}]`
	t.Run("2025-03-26 answers each request", func(t *testing.T) {
		ex := post(t, s, batch, map[string]string{"MCP-Protocol-Version": Version20250326})
		var out []map[string]any
		if err := json.Unmarshal([]byte(ex.body), &out); err != nil || ex.status != 200 {
			t.Fatalf("status %d body %s", ex.status, ex.body)
		}
		if len(out) != 3 {
			t.Fatalf("want 3 responses (notification gets none), got %d: %s", len(out), ex.body)
		}
		if out[1]["error"].(map[string]any)["code"].(float64) != CodeMethodNotFound {
			t.Fatalf("second response: %v", out[1])
		}
	})
	t.Run("no header assumes 2025-03-26", func(t *testing.T) {
		if ex := post(t, s, batch, nil); ex.status != 200 {
			t.Fatalf("status %d", ex.status)
		}
	})
	t.Run("notifications only is 202", func(t *testing.T) {
		ex := post(t, s, `[{"jsonrpc":"2.0","method":"notifications/initialized"}]`, nil)
		if ex.status != 202 || ex.body != "" {
			t.Fatalf("status %d body %q", ex.status, ex.body)
		}
	})
	t.Run("empty batch", func(t *testing.T) {
		if ex := post(t, s, `[]`, nil); ex.status != 400 || ex.errorCode() != CodeInvalidRequest {
			t.Fatalf("status %d body %s", ex.status, ex.body)
		}
	})
	t.Run("initialize may not be batched", func(t *testing.T) {
		ex := post(t, s, `[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26"}}]`, nil)
		if !strings.Contains(ex.body, `"code":-32600`) {
			t.Fatalf("body %s", ex.body)
		}
	})
	for _, v := range []string{Version20250618, Version20251125, Version20260728} {
		t.Run(v+" refuses batches", func(t *testing.T) {
			ex := post(t, s, batch, map[string]string{"MCP-Protocol-Version": v})
			if ex.status != 400 || ex.errorCode() != CodeInvalidRequest {
				t.Fatalf("status %d body %s", ex.status, ex.body)
			}
		})
	}
}

func TestSSEWhenAProgressTokenIsSent(t *testing.T) {
	s := newTestServer(t)
	srv := httptest.NewServer(s)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`{"jsonrpc":"2.0","id":"p1","method":"slow","params":{"_meta":{"progressToken":"tok"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	var ids, data []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "id: "); ok {
			ids = append(ids, v)
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			data = append(data, v)
		}
	}
	if len(data) != 5 || data[0] != "" {
		t.Fatalf("want priming event, 3 progress notifications, 1 response; got %q", data)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("event id %s repeated", id)
		}
		seen[id] = true
	}
	var last float64
	for _, d := range data[1:4] {
		var n struct {
			Method string
			Params struct {
				ProgressToken string
				Progress      float64
			}
		}
		_ = json.Unmarshal([]byte(d), &n)
		if n.Method != "notifications/progress" || n.Params.ProgressToken != "tok" || n.Params.Progress <= last {
			t.Fatalf("bad progress notification %s", d)
		}
		last = n.Params.Progress
	}
	if !strings.Contains(data[4], `"id":"p1"`) || !strings.Contains(data[4], `"done":"yes"`) {
		t.Fatalf("final event is not the response: %s", data[4])
	}
}

func TestJSONWhenNoProgressToken(t *testing.T) {
	s := newTestServer(t)
	ex := post(t, s, `{"jsonrpc":"2.0","id":1,"method":"slow"}`, nil)
	if ct := ex.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
}

func TestStatelessRevision(t *testing.T) {
	s := newTestServer(t)
	meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}`
	modern := func(method string, extra map[string]string) map[string]string {
		h := map[string]string{"MCP-Protocol-Version": Version20260728, "Mcp-Method": method}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	t.Run("discover", func(t *testing.T) {
		ex := post(t, s, `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{`+meta+`}}`, modern("server/discover", nil))
		result := ex.decoded["result"].(map[string]any)
		if result["resultType"] != "complete" || result["ttlMs"] != float64(300000) || result["cacheScope"] != "public" {
			t.Fatalf("discover result %v", result)
		}
		if _, ok := result["serverInfo"]; ok {
			t.Fatal("serverInfo belongs in _meta, not at the top of the result")
		}
		info := result["_meta"].(map[string]any)["io.modelcontextprotocol/serverInfo"]
		if diff := cmp.Diff(map[string]any{"name": "test", "version": "1"}, info); diff != "" {
			t.Fatal(diff)
		}
		if diff := cmp.Diff([]any{"2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"}, result["supportedVersions"]); diff != "" {
			t.Fatal(diff)
		}
		if ex.header.Get(SessionHeader) != "" {
			t.Fatal("2026-07-28 must never mint a session")
		}
	})
	t.Run("method header mismatch", func(t *testing.T) {
		ex := post(t, s, `{"jsonrpc":"2.0","id":1,"method":"ping","params":{`+meta+`}}`, modern("tools/list", nil))
		if ex.status != 400 || ex.errorCode() != CodeHeaderMismatch {
			t.Fatalf("status %d body %s", ex.status, ex.body)
		}
	})
	t.Run("name header mismatch", func(t *testing.T) {
		ex := post(t, s, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a",`+meta+`}}`, modern("tools/call", map[string]string{"Mcp-Name": "b"}))
		if ex.status != 400 || ex.errorCode() != CodeHeaderMismatch {
			t.Fatalf("status %d body %s", ex.status, ex.body)
		}
	})
	t.Run("meta version missing", func(t *testing.T) {
		ex := post(t, s, `{"jsonrpc":"2.0","id":1,"method":"ping","params":{}}`, modern("ping", nil))
		if ex.status != 400 || ex.errorCode() != CodeInvalidParams {
			t.Fatalf("status %d body %s", ex.status, ex.body)
		}
	})
	t.Run("meta version unsupported", func(t *testing.T) {
		ex := post(t, s, `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2099-01-01"}}}`, modern("ping", nil))
		if ex.status != 400 || ex.errorCode() != CodeUnsupportedProtocolVersion {
			t.Fatalf("status %d body %s", ex.status, ex.body)
		}
	})
	t.Run("unsupported header with Mcp-Method", func(t *testing.T) {
		ex := post(t, s, `{"jsonrpc":"2.0","id":1,"method":"ping","params":{}}`, map[string]string{"MCP-Protocol-Version": "2099-01-01", "Mcp-Method": "ping"})
		if ex.status != 400 || ex.errorCode() != CodeUnsupportedProtocolVersion {
			t.Fatalf("status %d body %s", ex.status, ex.body)
		}
	})
	t.Run("session header ignored", func(t *testing.T) {
		ex := post(t, s, `{"jsonrpc":"2.0","id":1,"method":"echo","params":{`+meta+`}}`, modern("echo", map[string]string{SessionHeader: "garbage"}))
		if ex.status != 200 || ex.decoded["result"].(map[string]any)["resultType"] != "complete" {
			t.Fatalf("status %d body %s", ex.status, ex.body)
		}
	})
}

func TestCompleteResult(t *testing.T) {
	members := []byte(`"resultType":"complete","_meta":{}`)
	for in, want := range map[string]string{
		`{"jsonrpc":"2.0","id":1,"result":{}}`:        `{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","_meta":{}}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"a":1}}`:   `{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","_meta":{},"a":1}}`,
		`{"jsonrpc":"2.0","id":1,"error":{"code":1}}`: `{"jsonrpc":"2.0","id":1,"error":{"code":1}}`,
	} {
		if got := string(completeResult([]byte(in), members)); got != want {
			t.Errorf("completeResult(%s) = %s", in, got)
		}
	}
}

func TestCompletion(t *testing.T) {
	info := Implementation{Name: "n\"q", Version: "1.0"}
	for _, tc := range []struct {
		hint *cacheHint
		want string
	}{
		{nil, `{"resultType":"complete","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"n\"q","version":"1.0"}}}`},
		{&cacheHint{ttl: 90 * time.Second, scope: CachePrivate},
			`{"resultType":"complete","ttlMs":90000,"cacheScope":"private","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"n\"q","version":"1.0"}}}`},
	} {
		got := "{" + string(completion(info, tc.hint)) + "}"
		if got != tc.want || !json.Valid([]byte(got)) {
			t.Errorf("completion = %s, want %s", got, tc.want)
		}
	}
}

func BenchmarkPing(b *testing.B) {
	s := newTestServer(b)
	body := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		_, _ = io.Copy(io.Discard, rec.Body)
	}
}

// A Preencoded result is answered exactly as the same JSON given as a RawMessage,
// whatever the id, and in place when its headroom and spare byte allow.
func TestPreencodedResultMatchesRawMessage(t *testing.T) {
	result := `{"content":[{"type":"text","text":"{\"a\":1}"}],"structuredContent":{"a":1},"isError":false}`
	for _, id := range []string{`1`, `"req-7"`, `null`, `-12345678901234567890`, `"` + strings.Repeat("x", 62) + `"`, `"` + strings.Repeat("y", 63) + `"`} {
		want, err := encodeResult(json.RawMessage(id), json.RawMessage(result))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, Headroom, Headroom+len(result)+1)
		buf = append(buf, result...)
		got, err := encodeResult(json.RawMessage(id), NewPreencoded(buf))
		if err != nil || string(got) != string(want) {
			t.Fatalf("id %s: got %s, want %s (%v)", id, got, want, err)
		}
		inPlace := &got[len(got)-1] == &buf[:len(buf)+1][len(buf)] // the closing brace went in the spare byte
		if fits := len(id) <= 64; inPlace != fits {
			t.Errorf("id of %d bytes: written in place %v, want %v", len(id), inPlace, fits)
		}
		full := append(make([]byte, Headroom, Headroom+len(result)), result...) // no spare byte: copied
		if got, _ := encodeResult(json.RawMessage(id), NewPreencoded(full)); string(got) != string(want) {
			t.Fatalf("id %s without a spare byte: got %s", id, got)
		}
	}
}
