package rpc

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary bodies through the whole HTTP handler: it must never
// panic, must always answer a known status, and every JSON body it writes must be a
// JSON-RPC envelope (or an array of them) whose id is null, a string or an integer.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":-1,"method":"echo","params":{"a":[1,2]}}`,
		`{"jsonrpc":"2.0","id":18446744073709551616,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":null,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1.5,"method":"ping"}`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"x"}]`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":"a","result":{}}`,
		`{"jsonrpc":"2.0","id":1,"method":"slow","params":{"_meta":{"progressToken":1}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}`,
		`{`, `[]`, `null`, `"x"`, ``,
	} {
		f.Add(seed)
	}
	s := newTestServer(f)
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 202, 400, 413:
		default:
			t.Fatalf("unexpected status %d for %q", rec.Code, body)
		}
		out := strings.TrimSpace(rec.Body.String())
		if out == "" || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			return
		}
		var envs []map[string]json.RawMessage
		if strings.HasPrefix(out, "[") {
			if err := json.Unmarshal([]byte(out), &envs); err != nil {
				t.Fatalf("batch answer is not JSON: %v", err)
			}
		} else {
			var one map[string]json.RawMessage
			if err := json.Unmarshal([]byte(out), &one); err != nil {
				t.Fatalf("answer is not JSON: %v: %s", err, out)
			}
			envs = append(envs, one)
		}
		for _, env := range envs {
			if string(env["jsonrpc"]) != `"2.0"` {
				t.Fatalf("answer without jsonrpc 2.0: %s", out)
			}
			id := env["id"]
			if string(id) != "null" && !validID(id) {
				t.Fatalf("answer with invalid id %s", id)
			}
			if (env["result"] == nil) == (env["error"] == nil) {
				t.Fatalf("answer must have exactly one of result or error: %s", out)
			}
		}
	})
}
