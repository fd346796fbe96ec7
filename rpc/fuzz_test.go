package rpc

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	segjson "github.com/segmentio/encoding/json"
	"github.com/sourcegraph/jsonrpc2"
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

// FuzzDecodeOne holds decodeOne to what JSON-RPC means by a message, written the plain
// way (encoding/json into a map, whose keys match exactly): the same message or the
// same refusal for any body.
func FuzzDecodeOne(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":1},"_meta":{"progressToken":"p"}}}`,
		`{"jsonrpc":"2.0","ID":1,"Method":"ping"}`, `{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}`,
		`{"jsonrpc":"2.0","id":1,"method":"\u0070ing","params":null}`, `{"jsonrpc":"2.0","id":"x","result":1}`,
		`{"jsonrpc":"2.0","id":"x","result":1,"error":{}}`, `{"jsonrpc":"1.0","id":1,"method":"p"}`,
		`{"jsonrpc":"2.0","id":1,"method":"p"} x`, `{"jsonrpc":"2.0","id":1,"method":"p","params":3}`,
		`{"jsonrpc":"2.0","id":1.5,"method":"p"}`, `{"jsonrpc":"2.0","id":[1],"method":"p"}`, `{"jsonrpc":"2.0","method":""}`,
		`{"jsonrpc":"2\u002e0","id":1,"method":"p","params":[1]}`, `{"jsonrpc":"2.0","id":1,"method":"p","params":{"name":7}}`,
		`{"jsonrpc":"2.0","id":1,"method":"p","params":{"name":"a","name":"b"}}`, `{"a":tru}`, `{"jsonrpc":"2.0","id":01,"method":"p"}`, `{"jsonrpc":"2.0","\u0069d":1,"m\u0065thod":"p"}`,
		`{"jsonrpc":"2.0","id":1,"method":"p","params":{"n\u0061me":"x","_meta":{"progressToken":1,"progressToken":2}}}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		raw := json.RawMessage(strings.TrimSpace(body))
		gotMsg, gotID, gotErr := decodeOne(raw)
		wantMsg, wantID, wantErr := decodeOneReference(raw)
		if (gotErr == nil) != (wantErr == nil) || gotErr != nil && (gotErr.Code != wantErr.Code || gotErr.Message != wantErr.Message) ||
			string(gotID) != string(wantID) {
			t.Fatalf("decodeOne(%s) = %v %s, want %v %s", raw, gotErr, gotID, wantErr, wantID)
		}
		if gotMsg == nil || wantMsg == nil {
			if (gotMsg == nil) != (wantMsg == nil) {
				t.Fatalf("decodeOne(%s): message %v, want %v", raw, gotMsg, wantMsg)
			}
			return
		}
		same := gotMsg.Method == wantMsg.Method && string(gotMsg.RawID) == string(wantMsg.RawID) && gotMsg.Notif == wantMsg.Notif &&
			gotMsg.IsResponse == wantMsg.IsResponse && (gotMsg.Params == nil) == (wantMsg.Params == nil) &&
			(gotMsg.Params == nil || string(*gotMsg.Params) == string(*wantMsg.Params)) && (gotMsg.Head == nil) == (wantMsg.Head == nil)
		if same && gotMsg.Head != nil {
			g, w := gotMsg.Head, wantMsg.Head
			same = g.Name == w.Name && g.URI == w.URI && string(g.Arguments) == string(w.Arguments) &&
				string(g.Meta.ProgressToken) == string(w.Meta.ProgressToken) && string(g.Meta.ProtocolVersion) == string(w.Meta.ProtocolVersion)
		}
		if !same {
			t.Fatalf("decodeOne(%s) = %+v %+v, want %+v %+v", raw, gotMsg, gotMsg.Head, wantMsg, wantMsg.Head)
		}
	})
}

// decodeOneReference is decodeOne as first written: a map of the members.
func decodeOneReference(raw json.RawMessage) (*Message, json.RawMessage, *jsonrpc2.Error) {
	if len(raw) == 0 || raw[0] != '{' {
		if !json.Valid(raw) {
			return nil, nullID, NewError(CodeParseError, "Parse error: body is not valid JSON", nil)
		}
		return nil, nullID, NewError(CodeInvalidRequest, "Invalid Request: a JSON-RPC message must be an object", nil)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, nullID, NewError(CodeParseError, "Parse error: body is not valid JSON", nil)
	}
	id, idOK := fields["id"]
	answerID := nullID
	if idOK && validID(id) {
		answerID = id
	}
	var version string
	if v, ok := fields["jsonrpc"]; !ok || json.Unmarshal(v, &version) != nil || version != "2.0" {
		return nil, answerID, NewError(CodeInvalidRequest, `Invalid Request: "jsonrpc" must be "2.0"`, nil)
	}
	if idOK && !validID(id) {
		return nil, nullID, NewError(CodeInvalidRequest, "Invalid Request: id must be a string or an integer", nil)
	}
	methodRaw, hasMethod := fields["method"]
	if !hasMethod {
		_, hasResult := fields["result"]
		_, hasError := fields["error"]
		if idOK && (hasResult != hasError) {
			return &Message{RawID: id, IsResponse: true}, nil, nil
		}
		return nil, answerID, NewError(CodeInvalidRequest, "Invalid Request: method is missing", nil)
	}
	m := &Message{}
	if err := json.Unmarshal(methodRaw, &m.Method); err != nil || m.Method == "" {
		return nil, answerID, NewError(CodeInvalidRequest, "Invalid Request: method must be a non-empty string", nil)
	}
	if p, ok := fields["params"]; ok {
		if p[0] != '{' && p[0] != '[' {
			if string(p) != "null" {
				return nil, answerID, NewError(CodeInvalidRequest, "Invalid Request: params must be an object", nil)
			}
		} else {
			m.Params = &p
			if p[0] == '{' {
				m.Head = new(Params) // member names match exactly here too
				_, _ = segjson.Parse(p, m.Head, segjson.DontMatchCaseInsensitiveStructFields)
			}
		}
	}
	if idOK {
		m.RawID = id
	} else {
		m.Notif = true
	}
	return m, nil, nil
}
