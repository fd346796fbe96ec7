package tools

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	json "github.com/segmentio/encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/rpc/logsafe"
	"github.com/flowstudio/mcp/server/telemetry"
	"github.com/flowstudio/mcp/tools/pattern"
	"go.uber.org/zap"
)

// DefaultPageSize is how many tools one tools/list page carries.
const DefaultPageSize = 100

var toolName = pattern.MustClass(`^[a-z][a-z0-9_]{0,63}$`)

// Catalog serves the declared tools over MCP.
type Catalog struct {
	tools    []*Tool
	byName   map[string]*Tool
	env      *Env
	meter    Meter
	pageSize int
	answers  answerMemo
}

// Meter admits and records tool calls (quotas and the metering log line).
type Meter interface {
	// Admit decides whether the call may run; a non-nil *ToolError refuses it.
	Admit(ctx context.Context, p *Principal, t *Tool) error
	// Record is called once per admitted or refused call.
	Record(ctx context.Context, rec CallRecord)
}

// CallRecord is what one tool call leaves behind: the metering fields, nothing else.
type CallRecord struct {
	Tool           string
	Principal      *Principal
	Environment    string
	UpstreamStatus int // 0 when no upstream call was made
	Latency        time.Duration
	Bytes          int
	IsError        bool
}

// NewCatalog checks the declarations and returns a catalog. pageSize <= 0 means
// DefaultPageSize.
func NewCatalog(env *Env, meter Meter, pageSize int, all []*Tool) (*Catalog, error) {
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	// The catalog keeps its own copy of env that names it, for the meta tools.
	var own Env
	if env != nil {
		own = *env
	}
	c := &Catalog{env: &own, meter: meter, pageSize: pageSize, byName: map[string]*Tool{}}
	own.catalog = c
	for _, t := range all {
		if err := checkDeclaration(t); err != nil {
			return nil, err
		}
		if c.byName[t.Name] != nil {
			return nil, fmt.Errorf("tool %s declared twice", t.Name)
		}
		// Its counters are bound here, once: a call only adds to them.
		t.stats = telemetry.ToolFor(t.Name)
		c.byName[t.Name] = t
		c.tools = append(c.tools, t)
	}
	return c, nil
}

// Tools returns the declarations in catalog order.
func (c *Catalog) Tools() []*Tool { return c.tools }

func checkDeclaration(t *Tool) error {
	switch {
	case !toolName.Match(t.Name):
		return fmt.Errorf("tool %q: name must be snake_case", t.Name)
	case t.Description == "" || t.Title == "":
		return fmt.Errorf("tool %s: title and description are required", t.Name)
	case t.Kind == kindUnset || t.Group == groupUnset:
		return fmt.Errorf("tool %s: kind and group are required", t.Name)
	case t.call == nil:
		return fmt.Errorf("tool %s: no handler (declare it with Define)", t.Name)
	}
	var schema struct {
		Type                 string          `json:"type"`
		AdditionalProperties *bool           `json:"additionalProperties"`
		AnyOf                json.RawMessage `json:"anyOf"`
		OneOf                json.RawMessage `json:"oneOf"`
		AllOf                json.RawMessage `json:"allOf"`
	}
	if err := json.Unmarshal(t.Input, &schema); err != nil {
		return fmt.Errorf("tool %s: input schema: %w", t.Name, err)
	}
	if schema.Type != "object" || schema.AdditionalProperties == nil || *schema.AdditionalProperties {
		return fmt.Errorf("tool %s: input schema must be type object with additionalProperties false", t.Name)
	}
	if schema.AnyOf != nil || schema.OneOf != nil || schema.AllOf != nil {
		return fmt.Errorf("tool %s: no top-level anyOf/oneOf/allOf (clients reject them)", t.Name)
	}
	if t.Output != nil && !json.Valid(t.Output) {
		return fmt.Errorf("tool %s: output schema is not JSON", t.Name)
	}
	return nil
}

// listCacheTTL is how long a 2026-07-28 client may reuse tools/list and prompts/list.
const listCacheTTL = 5 * time.Minute

// Register adds tools/list and tools/call, and the skills as prompts
// (prompts/list, prompts/get), to an MCP server.
func (c *Catalog) Register(s *rpc.Server) {
	s.Capability("tools", map[string]any{"listChanged": false})
	s.Handle("tools/list", c.list)
	// The list depends on the key (read-only keys see no write tool), so a cache keeps
	// it per credential; it changes only with a release.
	s.Cacheable("tools/list", listCacheTTL, rpc.CachePrivate)
	s.Handle("tools/call", c.call)
	c.registerPrompts(s)
}

type listedTool struct {
	Name         string          `json:"name"`
	Title        string          `json:"title"`
	Description  string          `json:"description"`
	InputSchema  json.RawMessage `json:"inputSchema"`
	OutputSchema json.RawMessage `json:"outputSchema,omitempty"`
	Annotations  map[string]any  `json:"annotations"`
}

func (t *Tool) listing() listedTool {
	return listedTool{Name: t.Name, Title: t.Title, Description: t.Description,
		InputSchema: t.Input, OutputSchema: t.Output, Annotations: t.Annotations()}
}

// visible returns the tools the caller may list, in catalog order.
func (c *Catalog) visible(p *Principal) []*Tool {
	out := make([]*Tool, 0, len(c.tools))
	for _, t := range c.tools {
		if p == nil || p.canSee(t) {
			out = append(out, t)
		}
	}
	return out
}

// listable is what tools/list shows: the visible tools the caller's plan includes.
// A tool of a higher plan is not listed (so a plan change shows in the list, and
// agents are not offered what they cannot call), yet calling it still answers the
// plan refusal with the upgrade URL, and tool_search and list_skills still name it.
func (c *Catalog) listable(p *Principal) []*Tool {
	tools := c.visible(p)
	if p == nil {
		return tools
	}
	return slices.DeleteFunc(tools, func(t *Tool) bool { return !p.Tier.AtLeast(t.MinTier()) })
}

func (c *Catalog) list(ctx context.Context, params json.RawMessage) (any, error) {
	var p struct {
		Cursor *string `json:"cursor"`
	}
	if len(params) > 0 && json.Unmarshal(params, &p) != nil {
		return nil, rpc.NewError(rpc.CodeInvalidParams, "Invalid params", nil)
	}
	tools := c.listable(PrincipalFrom(ctx))
	start := 0
	if p.Cursor != nil {
		n, ok := decodeCursor(*p.Cursor)
		if !ok || n <= 0 || n >= len(tools) {
			return nil, rpc.NewError(rpc.CodeInvalidParams, "Invalid params: unknown cursor", nil)
		}
		start = n
	}
	end := min(start+c.pageSize, len(tools))
	page := make([]listedTool, 0, end-start)
	for _, t := range tools[start:end] {
		page = append(page, t.listing())
	}
	result := map[string]any{"tools": page}
	if end < len(tools) {
		result["nextCursor"] = encodeCursor(end)
	}
	return result, nil
}

// Cursors are opaque to clients: an offset, base64url'd with a version prefix.
func encodeCursor(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("t1:" + strconv.Itoa(offset)))
}

func decodeCursor(s string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 4 || string(b[:3]) != "t1:" {
		return 0, false
	}
	n, err := strconv.Atoi(string(b[3:]))
	return n, err == nil
}

// callResult is the MCP CallToolResult: one text content and, for a handler's
// output, the same JSON as structuredContent.
type callResult struct {
	text       string // the message, or the output's JSON
	structured bool   // text is the output's JSON: send it as structuredContent too
	isError    bool
	scratch    *[]byte // text's buffer, from scratchPool, given back by encode
	answer     []byte  // a remembered answer (Tool.Pure): sent as it is
	memoKey    string  // remember this answer under memoKey once encoded
}

// scratchPool holds the buffers outputs are encoded into: an output is encoded,
// copied into the response twice (quoted and verbatim) and never read again.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// maxPooledScratch keeps one huge output from being held by the pool for good.
const maxPooledScratch = 256 << 10

// encode writes the result once: the output's JSON goes out as it was encoded,
// both as the text (quoted) and as structuredContent (verbatim), into a buffer
// that leaves rpc room for the envelope, sized for the usual case in one go.
func (r *callResult) encode(answers *answerMemo) rpc.Preencoded {
	if r.answer != nil {
		b := make([]byte, rpc.Headroom, rpc.Headroom+len(r.answer)+1)
		return rpc.NewPreencoded(append(b, r.answer...))
	}
	const open, rest = `{"content":[{"type":"text","text":`, `}],"structuredContent":,"isError":false}`
	n := rpc.Headroom + len(open) + quotedLen(r.text) + len(rest) + 1
	if r.structured {
		n += len(r.text)
	}
	b := make([]byte, rpc.Headroom, n)
	b = append(b, open...)
	b = rpc.AppendString(b, r.text)
	b = append(b, `}]`...)
	if r.structured {
		b = append(b, `,"structuredContent":`...)
		b = append(b, r.text...)
	}
	if r.isError {
		b = append(b, `,"isError":true}`...)
	} else {
		b = append(b, `,"isError":false}`...)
	}
	if r.memoKey != "" {
		answers.put(r.memoKey, b[rpc.Headroom:])
	}
	if r.scratch != nil {
		if cap(*r.scratch) <= maxPooledScratch {
			scratchPool.Put(r.scratch)
		}
		r.scratch, r.text = nil, ""
	}
	return rpc.NewPreencoded(b)
}

// quotedLen is the length of s as a JSON string when only quotes and backslashes
// need escaping, which is the case for encoded JSON; AppendString grows the buffer
// for anything else.
func quotedLen(s string) int {
	return len(s) + 2 + strings.Count(s, `"`) + strings.Count(s, `\`)
}

func (c *Catalog) call(ctx context.Context, params json.RawMessage) (any, error) {
	var p rpc.Params
	if call := rpc.CallFrom(ctx); call != nil && call.Params != nil {
		p = *call.Params // parsed with the message: not again
	} else if len(params) == 0 || json.Unmarshal(params, &p) != nil {
		p.Name = ""
	}
	if p.Name == "" {
		return nil, rpc.NewError(rpc.CodeInvalidParams, "Invalid params: name is required", nil)
	}
	principal := PrincipalFrom(ctx)
	t := c.byName[p.Name]
	if t == nil || (principal != nil && !principal.canSee(t)) {
		return nil, rpc.NewError(rpc.CodeInvalidParams, "Unknown tool: "+truncateName(p.Name), nil)
	}
	started := time.Now()
	stats := t.stats
	stats.Start()
	finished := false
	defer func() {
		if !finished { // the handler panicked: rpc answers -32603
			stats.Done(telemetry.InternalError, time.Since(started))
		}
	}()
	result, rec, outcome := c.run(ctx, t, principal, p.Arguments)
	body := result.encode(&c.answers)
	rec.Latency = time.Since(started)
	finished = true
	stats.Done(outcome, rec.Latency)
	rec.Bytes = len(body.JSON())
	rec.IsError = result.isError
	if c.meter != nil {
		c.meter.Record(ctx, rec)
	}
	return body, nil
}

// run validates, gates and executes one call; every outcome is a CallToolResult,
// and the outcome says which kind it is (for the call counters).
func (c *Catalog) run(ctx context.Context, t *Tool, principal *Principal, rawArgs json.RawMessage) (*callResult, CallRecord, telemetry.Outcome) {
	rec := CallRecord{Tool: t.Name, Principal: principal}
	if len(rawArgs) == 0 || string(rawArgs) == "null" {
		rawArgs = json.RawMessage("{}")
	}
	args := make(map[string]any, 8) // the decoder would make room for 64
	if err := json.Unmarshal(rawArgs, &args); err != nil {
		return errorResult("invalid arguments: arguments must be a JSON object"), rec, telemetry.InvalidArguments
	}
	rec.Environment = safeEnvironment(t.environment(args))
	msg, err := t.validate(args)
	if err != nil {
		return c.internalError(ctx, t, err, nil), rec, telemetry.InternalError
	}
	if msg != "" {
		return errorResult(msg), rec, telemetry.InvalidArguments
	}
	if principal != nil && !principal.Tier.AtLeast(t.MinTier()) {
		return errorResult(fmt.Sprintf("%s needs the %s plan; this key's plan is %s. Upgrade to %s on the dashboard: %s",
			t.Name, t.MinTier(), principal.Tier, t.MinTier(), UpgradeURL(c.env.DashboardURL))), rec, telemetry.Refused
	}
	if c.meter != nil && principal != nil {
		if err := c.meter.Admit(ctx, principal, t); err != nil {
			result, _ := c.errorToResult(ctx, t, err, nil)
			return result, rec, telemetry.Refused
		}
	}
	key, memoizable := answerKey(t, principal, rawArgs)
	if memoizable {
		if body, ok := c.answers.get(key); ok {
			return &callResult{answer: body}, rec, telemetry.OK
		}
	}
	ctx, stats := withUpstreamStatus(ctx)
	out, err := t.call(ctx, c.env, args, rawArgs)
	rec.UpstreamStatus = stats()
	if err != nil {
		result, outcome := c.errorToResult(ctx, t, err, argStrings(args))
		return result, rec, outcome
	}
	result := structuredResult(out)
	if memoizable && !result.isError {
		result.memoKey = key
	}
	return result, rec, telemetry.OK
}

func structuredResult(out any) *callResult {
	// Raw JSON in an output (a definition, an action's inputs) is valid already:
	// it comes from the upstream's answer or the caller's arguments, both parsed
	// before it got here, or from compactJSON; so it is copied, not validated and
	// compacted again. No HTML escaping: this is JSON for a client, not a page.
	scratch := scratchPool.Get().(*[]byte)
	text, err := json.Append((*scratch)[:0], out, json.SortMapKeys|json.TrustRawMessage)
	if err != nil {
		scratchPool.Put(scratch)
		return errorResult("internal error: result not encodable")
	}
	*scratch = text
	// The text and structuredContent are the same JSON: encode the handler's output
	// once, into a pooled buffer that encode copies from and gives back.
	return &callResult{text: unsafe.String(unsafe.SliceData(text), len(text)), structured: true, scratch: scratch}
}

func errorResult(msg string) *callResult {
	return &callResult{text: msg, isError: true}
}

// errorToResult maps a handler's error; redact lists the call's argument
// strings, kept out of the log line of an internal error.
func (c *Catalog) errorToResult(ctx context.Context, t *Tool, err error, redact []string) (*callResult, telemetry.Outcome) {
	var te *ToolError
	if errors.As(err, &te) {
		return errorResult(te.Error()), telemetry.ToolError
	}
	if te := upstreamToolError(err, c.env.DashboardURL); te != nil {
		return errorResult(te.Error()), telemetry.ToolError
	}
	return c.internalError(ctx, t, err, redact), telemetry.InternalError
}

// internalError logs err without arguments, URLs, quoted values or tokens
// (logsafe) and answers with a reference to that line.
func (c *Catalog) internalError(ctx context.Context, t *Tool, err error, redact []string) *callResult {
	ref := rpc.RequestID(ctx)
	c.env.log().Error("tool failed", zap.String(logsafe.KeyRequestID, ref), zap.String("tool", t.Name), logsafe.Error(err, redact...))
	return errorResult("internal error (ref " + ref + ")")
}

// safeEnvironment keeps only a well-formed environment name for the log: the raw
// argument could carry anything.
func safeEnvironment(s string) string {
	if len(s) > 80 || strings.IndexFunc(s, notEnvironmentRune) >= 0 {
		return ""
	}
	return s
}

// notEnvironmentRune is false for the characters of an environment name: [A-Za-z0-9~-].
func notEnvironmentRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '~' || r == '-')
}

func truncateName(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// argStrings collects the string values in a call's arguments, at any depth.
func argStrings(v any) []string {
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			out = append(out, x)
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}
