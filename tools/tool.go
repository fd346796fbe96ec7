// Package tools is the MCP tool catalog: one declaration per tool (name, description,
// kind, group, schemas, typed handler), argument validation against the input schema,
// tier and key-scope gates, metering, and the tools/list and tools/call methods.
package tools

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server/telemetry"
	json "github.com/segmentio/encoding/json"

	"github.com/google/jsonschema-go/jsonschema"
)

// Kind says what a tool does to the user's tenant; the MCP annotations derive from it.
// The zero value is invalid so that a declaration cannot forget it.
type Kind int

const (
	kindUnset Kind = iota
	// ReadOnly tools change nothing.
	ReadOnly
	// Write tools change state but can be undone or repeated safely.
	Write
	// Destructive tools change state in a way that may lose data.
	Destructive
)

// Group says where a tool's answer comes from; the tier gate, quota and the
// openWorldHint derive from it.
type Group int

const (
	groupUnset Group = iota
	// Live tools pass through to Power Automate / Power Apps in the user's context.
	Live
	// Store tools read the Team tier's cache.
	Store
	// Meta tools help an agent find its way; they are free and work past quota.
	Meta
)

// anyJSONType is the type keyword of an output value that can be any JSON (a part of
// a definition, run content, a connector's default): a schema with no type keyword
// would accept it too, but then a client has nothing to validate it against.
const anyJSONType = `"type":["object","array","string","number","boolean","null"]`

// Tool is one declaration: everything the catalog, tools/list, tools/call,
// tool_search and the docs need to know about a tool.
type Tool struct {
	Name        string
	Title       string
	Description string
	Kind        Kind
	Group       Group
	// Idempotent marks write tools that can be repeated with the same effect.
	Idempotent bool
	// Pure marks a tool whose answer depends only on its arguments and the caller's
	// plan and key scope (the meta tools over the catalog): the catalog remembers
	// its encoded answers (see answerMemo) and runs it once per distinct question.
	Pure bool
	// Input is the input JSON Schema: type object, additionalProperties false,
	// built by inputSchema from the tool's arguments (input.go).
	Input json.RawMessage
	// Output is the optional output JSON Schema of structuredContent.
	Output json.RawMessage
	// Environment extracts the environment the call names, for metering ("" if none).
	environment func(args map[string]any) string

	// call runs the handler on the arguments parsed once by the catalog; raw is
	// their text (see decodeArgs).
	call func(ctx context.Context, env *Env, args map[string]any, raw json.RawMessage) (any, error)

	compiled *compiledSchema
	// inputType is Define's In, for the test that keeps Input and In in step.
	inputType reflect.Type
	// stats are the tool's call counters, bound once by NewCatalog.
	stats *telemetry.Tool
}

// compiledSchema is the input schema, compiled once on first use.
type compiledSchema struct {
	once     sync.Once
	resolved *jsonschema.Resolved
	quick    *quickSchema // nil when the schema uses a keyword quickSchema does not cover
	err      error
}

// Define binds a typed handler to a declaration: arguments are validated against the
// input schema, then In is filled from the same parse; Out becomes structuredContent.
func Define[In, Out any](t Tool, handler func(ctx context.Context, env *Env, in In) (Out, error)) *Tool {
	t.call = func(ctx context.Context, env *Env, args map[string]any, raw json.RawMessage) (any, error) {
		var in In
		var members map[string]json.RawMessage
		rawMembers := func() map[string]json.RawMessage {
			if members == nil {
				members = make(map[string]json.RawMessage, len(args))
				_ = json.Unmarshal(raw, &members) // raw parsed into args already: it is an object
			}
			return members
		}
		if err := decodeArgs(&in, args, rawMembers); err != nil {
			return nil, &ToolError{Message: "invalid arguments: " + err.Error()}
		}
		return handler(ctx, env, in)
	}
	t.compiled = &compiledSchema{}
	t.inputType = reflect.TypeFor[In]()
	t.environment = func(args map[string]any) string {
		s, _ := args["environmentName"].(string)
		return s
	}
	return &t
}

// MinTier is the lowest plan that may call the tool.
func (t *Tool) MinTier() cosmos.Tier {
	if t.Group == Store {
		return cosmos.TierTeam
	}
	return cosmos.TierFree
}

// Annotations are the MCP tool annotations, derived from Kind and Group.
func (t *Tool) Annotations() map[string]any {
	return map[string]any{
		"title":           t.Title,
		"readOnlyHint":    t.Kind == ReadOnly,
		"destructiveHint": t.Kind == Destructive,
		"idempotentHint":  t.Kind == ReadOnly || t.Idempotent,
		"openWorldHint":   t.Group == Live,
	}
}

// resolved compiles the input schema once, on first use: compiling every schema at
// start-up would cost a scale-to-zero service on every cold start.
func (t *Tool) resolved() (*jsonschema.Resolved, error) {
	c := t.compiled
	c.once.Do(func() {
		var s jsonschema.Schema
		if err := json.Unmarshal(t.Input, &s); err != nil {
			c.err = fmt.Errorf("tool %s: input schema: %w", t.Name, err)
			return
		}
		c.resolved, c.err = s.Resolve(nil)
		c.quick = compileQuick(t.Input)
	})
	return c.resolved, c.err
}

// validate checks arguments against the input schema and returns a message naming the
// offending field, or "".
func (t *Tool) validate(args map[string]any) (string, error) {
	rs, err := t.resolved()
	if err != nil {
		return "", err
	}
	if q := t.compiled.quick; q != nil && q.valid(args) {
		return "", nil // the common case: valid, without the full validator's allocations
	}
	if err := rs.Validate(args); err != nil {
		return describeSchemaError(err.Error()), nil
	}
	return "", nil
}

// describeSchemaError turns the validator's chain ("validating root: validating
// /properties/top: minimum: ...") into "argument top: minimum: ...".
func describeSchemaError(msg string) string {
	field := ""
	for {
		i := strings.Index(msg, "validating ")
		if i < 0 {
			break
		}
		rest := msg[i+len("validating "):]
		path, after, ok := strings.Cut(rest, ": ")
		if !ok {
			break
		}
		if path != "root" {
			part := strings.TrimPrefix(strings.ReplaceAll(path, "/properties/", "."), ".")
			if field != "" && !strings.HasPrefix(part, field+".") {
				part = field + "." + part
			}
			field = part
		}
		msg = after
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	if field == "" {
		return "invalid arguments: " + msg
	}
	return "invalid argument " + field + ": " + msg
}
