package tools

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/server/telemetry"
)

// refusingMeter refuses every call, as a spent quota does.
type refusingMeter struct{}

func (refusingMeter) Admit(context.Context, *Principal, *Tool) error {
	return &ToolError{Message: "quota spent"}
}
func (refusingMeter) Record(context.Context, CallRecord) {}

func handlerTool(name string, group Group, handler func() (map[string]string, error)) *Tool {
	return Define(Tool{Name: name, Title: "Test " + name, Description: "A test tool: " + name + ".",
		Kind: ReadOnly, Group: group, Input: json.RawMessage(`{"type":"object","additionalProperties":false,"properties":{}}`)},
		func(context.Context, *Env, struct{}) (map[string]string, error) { return handler() })
}

// Every tools/call of a declared tool is counted once, under the tool's name and the
// outcome its result had, and leaves nothing in flight, even when the handler panics.
func TestCallsAreCountedByToolAndOutcome(t *testing.T) {
	ok := handlerTool("telemetry_ok", Live, func() (map[string]string, error) { return map[string]string{}, nil })
	failing := handlerTool("telemetry_tool_error", Live, func() (map[string]string, error) {
		return nil, &ToolError{Message: "not found"}
	})
	broken := handlerTool("telemetry_internal", Live, func() (map[string]string, error) { return nil, errors.New("bug") })
	panicking := handlerTool("telemetry_panic", Live, func() (map[string]string, error) { panic("bug") })
	store := handlerTool("telemetry_store", Store, func() (map[string]string, error) { return map[string]string{}, nil })
	c := mustCatalog(t, &Env{}, nil, ok, failing, broken, panicking, store)
	refusing := mustCatalog(t, &Env{}, refusingMeter{}, handlerTool("telemetry_refused", Live, func() (map[string]string, error) {
		return map[string]string{}, nil
	}))

	type want struct {
		tool    string
		outcome telemetry.Outcome
	}
	cases := []struct {
		name string
		call func()
		want want
	}{
		{"ok", func() { callTool(t, c, fullPro, "telemetry_ok", map[string]any{}) }, want{"telemetry_ok", telemetry.OK}},
		{"bad arguments", func() { callTool(t, c, fullPro, "telemetry_ok", map[string]any{"bogus": 1}) }, want{"telemetry_ok", telemetry.InvalidArguments}},
		{"arguments not an object", func() { callTool(t, c, fullPro, "telemetry_ok", []int{1}) }, want{"telemetry_ok", telemetry.InvalidArguments}},
		{"tool error", func() { callTool(t, c, fullPro, "telemetry_tool_error", map[string]any{}) }, want{"telemetry_tool_error", telemetry.ToolError}},
		{"internal error", func() { callTool(t, c, fullPro, "telemetry_internal", map[string]any{}) }, want{"telemetry_internal", telemetry.InternalError}},
		{"plan", func() { callTool(t, c, fullPro, "telemetry_store", map[string]any{}) }, want{"telemetry_store", telemetry.Refused}},
		{"quota", func() { callTool(t, refusing, fullPro, "telemetry_refused", map[string]any{}) }, want{"telemetry_refused", telemetry.Refused}},
		{"panic", func() {
			defer func() { _ = recover() }() // rpc's dispatch recovers it in the server
			raw, _ := json.Marshal(map[string]any{"name": "telemetry_panic", "arguments": map[string]any{}})
			_, _ = c.call(WithPrincipal(rpc.WithRequestID(t.Context(), "req"), fullPro), raw)
		}, want{"telemetry_panic", telemetry.InternalError}},
	}
	for _, tc := range cases {
		counters := telemetry.ToolFor(tc.want.tool)
		before := map[telemetry.Outcome]uint64{}
		for _, o := range telemetry.Outcomes() {
			before[o] = counters.Calls(o)
		}
		_, countBefore, _ := counters.Latency()
		tc.call()
		for _, o := range telemetry.Outcomes() {
			want := before[o]
			if o == tc.want.outcome {
				want++
			}
			if got := counters.Calls(o); got != want {
				t.Errorf("%s: %s calls %s = %d, want %d", tc.name, tc.want.tool, o, got, want)
			}
		}
		if _, count, _ := counters.Latency(); count != countBefore+1 {
			t.Errorf("%s: latency count %d, want %d", tc.name, count, countBefore+1)
		}
		if n := counters.InFlight(); n != 0 {
			t.Errorf("%s: %d in flight after the call", tc.name, n)
		}
	}

	// An unknown or hidden tool is counted under no name: a name a client sends is
	// never a label.
	for _, tool := range telemetry.Tools() {
		if tool.Name() == "no_such_tool" {
			t.Fatal("counters exist for a tool nobody declared")
		}
	}
	callUnknown := func() {
		raw, _ := json.Marshal(map[string]any{"name": "no_such_tool", "arguments": map[string]any{}})
		if _, err := c.call(WithPrincipal(t.Context(), fullPro), raw); err == nil {
			t.Fatal("an unknown tool must be a JSON-RPC error")
		}
	}
	callUnknown()
	for _, tool := range telemetry.Tools() {
		if tool.Name() == "no_such_tool" {
			t.Fatal("an unknown tool's name became a label")
		}
	}
}

// The counters of a catalog's tools are bound when it is built: tools/call looks
// nothing up and allocates nothing for them.
func TestCatalogBindsCountersAtBuild(t *testing.T) {
	c := mustCatalog(t, &Env{}, nil)
	for _, tool := range c.Tools() {
		if tool.stats == nil || tool.stats != telemetry.ToolFor(tool.Name) {
			t.Errorf("%s: counters not bound to the declaration", tool.Name)
		}
	}
}
