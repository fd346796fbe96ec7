package rpc

import (
	"bytes"
	json "github.com/segmentio/encoding/json"
	"unicode/utf8"

	"github.com/sourcegraph/jsonrpc2"
)

// JSON-RPC error codes (JSON-RPC 2.0 and MCP).
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
	// CodeUnauthorized is in the implementation-defined range; used with HTTP 401.
	CodeUnauthorized = -32001
	// 2026-07-28 codes.
	CodeHeaderMismatch             = -32020
	CodeUnsupportedProtocolVersion = -32022
)

// maxIDLength bounds a string id: echoing an id is fine, echoing a megabyte is not.
const maxIDLength = 1024

var nullID = json.RawMessage("null")

// isIntegerID reports whether b is a JSON integer literal of any size (2^64
// included), -?(0|[1-9][0-9]*): MCP ids are strings or integers, and we echo them
// byte for byte rather than through a numeric type.
func isIntegerID(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 || (b[0] == '0' && len(b) > 1) {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Message is one decoded JSON-RPC message. The sourcegraph/jsonrpc2 Request carries the
// method and params; the id is kept as its raw JSON because jsonrpc2.ID cannot hold a
// negative or 2^64 id, nor tell an absent id from `null`.
type Message struct {
	jsonrpc2.Request
	// RawID is the id exactly as sent, nil for a notification.
	RawID json.RawMessage
	// IsResponse marks a client's response to a server request (we send none, so it is
	// accepted and dropped).
	IsResponse bool
	// Head is what the transport and the methods read from params, parsed once when
	// the message is decoded; nil when params is absent or not an object.
	Head *Params
}

// Params is the part of a request's params that the transport (progress, the
// 2026-07-28 header checks) and tools/call read. Fields of the wrong type are left
// empty, as if absent.
type Params struct {
	Name      string          `json:"name"`
	URI       string          `json:"uri"`
	Arguments json.RawMessage `json:"arguments"`
	Meta      struct {
		ProgressToken   json.RawMessage `json:"progressToken"`
		ProtocolVersion json.RawMessage `json:"io.modelcontextprotocol/protocolVersion"`
	} `json:"_meta"`
}

// response is the wire envelope. Its id is raw JSON so that `null`, negative and
// huge ids round-trip; jsonrpc2.Response cannot write them.
type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *jsonrpc2.Error `json:"error,omitempty"`
}

// NewError builds a JSON-RPC error; data may be nil.
func NewError(code int64, message string, data any) *jsonrpc2.Error {
	e := &jsonrpc2.Error{Code: code, Message: message}
	if data != nil {
		e.SetError(data)
	}
	return e
}

// envelope is a message's members, each as sent; nil when absent.
type envelope struct {
	JSONRPC json.RawMessage `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  json.RawMessage `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
}

// envelopeFlags decode a message as JSON-RPC reads it: member names match exactly
// (encoding/json would take "ID" for "id"), and the members stay in the request's
// body, which is read into a buffer of its own and never reused, rather than copied.
const envelopeFlags = json.ZeroCopy | json.DontMatchCaseInsensitiveStructFields

// decodeOne validates one JSON value as a JSON-RPC 2.0 message. On failure it returns
// the id to answer with (nullID when the id is unknown) and the error.
func decodeOne(raw json.RawMessage) (*Message, json.RawMessage, *jsonrpc2.Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		if !json.Valid(raw) {
			return nil, nullID, NewError(CodeParseError, "Parse error: body is not valid JSON", nil)
		}
		return nil, nullID, NewError(CodeInvalidRequest, "Invalid Request: a JSON-RPC message must be an object", nil)
	}
	var env envelope
	if rest, err := json.Parse(raw, &env, envelopeFlags); err != nil || len(rest) != 0 {
		return nil, nullID, NewError(CodeParseError, "Parse error: body is not valid JSON", nil)
	}
	id, idOK := env.ID, env.ID != nil
	answerID := nullID
	if idOK && validID(id) {
		answerID = id
	}
	if string(env.JSONRPC) != `"2.0"` {
		var version string
		if env.JSONRPC == nil || json.Unmarshal(env.JSONRPC, &version) != nil || version != "2.0" {
			return nil, answerID, NewError(CodeInvalidRequest, `Invalid Request: "jsonrpc" must be "2.0"`, nil)
		}
	}
	if idOK && !validID(id) {
		return nil, nullID, NewError(CodeInvalidRequest, "Invalid Request: id must be a string or an integer", nil)
	}
	if env.Method == nil {
		if idOK && ((env.Result != nil) != (env.Error != nil)) {
			return &Message{RawID: id, IsResponse: true}, nil, nil
		}
		return nil, answerID, NewError(CodeInvalidRequest, "Invalid Request: method is missing", nil)
	}
	m := &Message{}
	if _, err := json.Parse(env.Method, &m.Method, envelopeFlags); err != nil || m.Method == "" {
		return nil, answerID, NewError(CodeInvalidRequest, "Invalid Request: method must be a non-empty string", nil)
	}
	if p := env.Params; p != nil {
		if p[0] != '{' && p[0] != '[' {
			if string(p) != "null" {
				return nil, answerID, NewError(CodeInvalidRequest, "Invalid Request: params must be an object", nil)
			}
		} else {
			m.Params = &p
			if p[0] == '{' {
				m.Head = new(Params)
				_, _ = json.Parse(p, m.Head, envelopeFlags) // valid JSON already; a mistyped field stays empty
			}
		}
	}
	if idOK {
		m.RawID = id
		m.ID = toJSONRPC2ID(id)
	} else {
		m.Notif = true
	}
	return m, nil, nil
}

// RequestIDOf returns the id of body when it is one JSON-RPC request with a valid id,
// else null: what a refusal made before the body is read (a 401) answers with, so
// that clients which match answers to requests by id show the refusal's message.
func RequestIDOf(body []byte) json.RawMessage {
	var m struct {
		ID json.RawMessage `json:"id"`
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' || json.Unmarshal(body, &m) != nil || !validID(m.ID) {
		return nullID
	}
	return m.ID
}

func validID(id json.RawMessage) bool {
	id = bytes.TrimSpace(id)
	if len(id) == 0 {
		return false
	}
	switch id[0] {
	case '"':
		// Starting with a quote, a valid JSON value is exactly one string.
		return len(id) <= maxIDLength+2 && json.Valid(id)
	default:
		return isIntegerID(id)
	}
}

// toJSONRPC2ID fills the library's ID where it can represent the value; RawID stays
// the source of truth on the wire.
func toJSONRPC2ID(raw json.RawMessage) jsonrpc2.ID {
	var id jsonrpc2.ID
	if raw[0] == '"' {
		_ = json.Unmarshal(raw, &id.Str)
		id.IsString = true
		return id
	}
	_ = json.Unmarshal(raw, &id.Num) // negative or huge: left zero; RawID is echoed instead
	return id
}

// encodeResult writes the response envelope around a result. A json.RawMessage
// result is taken as the encoded JSON it is (methods build it with json.Marshal
// or AppendString), so it is neither parsed nor compacted again; a Preencoded one
// gets the envelope written in the room it left, so it is not even copied.
func encodeResult(id json.RawMessage, result any) ([]byte, error) {
	if id == nil {
		id = nullID
	}
	var raw json.RawMessage
	switch r := result.(type) {
	case json.RawMessage:
		raw = r
	case Preencoded:
		if out, ok := r.enclose(id); ok {
			return out, nil
		}
		raw = r.JSON()
	default:
		var err error
		if raw, err = json.Marshal(result); err != nil {
			return nil, err
		}
	}
	out := make([]byte, 0, len(raw)+len(id)+len(`{"jsonrpc":"2.0","id":,"result":}`))
	out = append(out, `{"jsonrpc":"2.0","id":`...)
	out = append(out, id...)
	out = append(out, `,"result":`...)
	out = append(out, raw...)
	return append(out, '}'), nil
}

// Headroom is the room a Preencoded result leaves before its JSON: enough for the
// envelope's opening with any id up to 64 bytes.
const Headroom = len(`{"jsonrpc":"2.0","id":,"result":`) + 64

// Preencoded is a method's result encoded after Headroom unused bytes, with room
// for one more byte at the end, so that the response is written around it in place:
// a large result (a flow definition, a page of runs) is then copied once less.
type Preencoded struct{ buf []byte }

// NewPreencoded takes buf, whose first Headroom bytes are free and whose rest is
// the result's JSON; buf belongs to the response from then on.
func NewPreencoded(buf []byte) Preencoded {
	if len(buf) < Headroom {
		panic("rpc: Preencoded without its headroom")
	}
	return Preencoded{buf}
}

// JSON is the result as it is.
func (p Preencoded) JSON() json.RawMessage { return p.buf[Headroom:] }

// MarshalJSON lets a Preencoded result be encoded like any other value.
func (p Preencoded) MarshalJSON() ([]byte, error) { return p.JSON(), nil }

func (p Preencoded) enclose(id json.RawMessage) ([]byte, bool) {
	const open, key = `{"jsonrpc":"2.0","id":`, `,"result":`
	start := Headroom - len(open) - len(id) - len(key)
	if start < 0 || cap(p.buf) == len(p.buf) {
		return nil, false
	}
	b := append(p.buf[start:start], open...)
	b = append(b, id...)
	_ = append(b, key...) // fills the headroom exactly, up to the result
	return append(p.buf[start:], '}'), true
}

// AppendString appends s to dst as a JSON string, as encoding/json writes it
// without HTML escaping (FuzzAppendString): invalid UTF-8 becomes U+FFFD, control
// characters and U+2028/U+2029 are escaped.
func AppendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if plainByte[b] {
			i++
			continue
		}
		if b < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			i++
			switch b {
			case '"', '\\':
				dst = append(dst, '\\')
				start = i - 1 // the character itself opens the next run
				continue
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// plainByte marks the bytes that go into a JSON string as they are: printable ASCII
// but the quote and the backslash (a table: one load per byte instead of four tests).
var plainByte = func() (t [256]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

func encodeError(id json.RawMessage, e *jsonrpc2.Error) []byte {
	if id == nil {
		id = nullID
	}
	b, _ := json.Marshal(response{JSONRPC: "2.0", ID: id, Error: e})
	return b
}
