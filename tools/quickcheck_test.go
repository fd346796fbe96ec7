package tools

import (
	"encoding/json"
	"testing"
)

// TestQuickSchemaCoversTheCatalog: every tool's input schema compiles to the quick
// check, so no call pays for the full validator unless its arguments are invalid.
func TestQuickSchemaCoversTheCatalog(t *testing.T) {
	for _, tool := range All() {
		if compileQuick(tool.Input) == nil {
			t.Errorf("%s: its input schema uses a keyword the quick check does not cover", tool.Name)
		}
	}
}

// agreeWithFullValidator checks one argument value against one tool's schema with
// both validators.
func agreeWithFullValidator(t *testing.T, tool *Tool, raw []byte) {
	var args any
	if json.Unmarshal(raw, &args) != nil {
		return
	}
	rs, err := tool.resolved()
	if err != nil {
		t.Fatal(err)
	}
	q := compileQuick(tool.Input)
	full := rs.Validate(args) == nil
	if quick := q.valid(args); quick != full {
		t.Fatalf("%s %s: quick check says %v, jsonschema-go says %v (%v)", tool.Name, raw, quick, full, rs.Validate(args))
	}
}

// TestQuickSchemaAgreesOnSamples runs every tool's schema against a set of argument
// objects built from its own properties: valid ones, and each property broken in
// turn.
func TestQuickSchemaAgreesOnSamples(t *testing.T) {
	values := []any{nil, true, false, 0.0, 1.0, -1.0, 1.5, 3.0, 50.0, 1e9, "", "x", "Default-12345678-1234-1234-1234-123456789012",
		"abc-DEF_123", "flow name with spaces", "../etc/passwd", "a/b", "%2F", "Started", "Stopped", "full", "discover",
		[]any{}, []any{"a"}, []any{1.0, 2.0}, map[string]any{}, map[string]any{"k": "v"}}
	for _, tool := range All() {
		var schema struct {
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		}
		json.Unmarshal(tool.Input, &schema)
		base := map[string]any{}
		for name := range schema.Properties {
			for _, v := range values {
				base[name] = v
				b, _ := json.Marshal(base)
				agreeWithFullValidator(t, tool, b)
			}
			base[name] = "x"
		}
		for _, extra := range []string{`{}`, `{"unknown":1}`, `[]`, `null`, `"s"`} {
			agreeWithFullValidator(t, tool, []byte(extra))
		}
	}
}

func FuzzQuickSchema(f *testing.F) {
	tools := All()
	f.Add(0, `{"environmentName":"Default-1","flowName":"f"}`)
	f.Add(1, `{"top":5,"skill":"discover"}`)
	f.Add(2, `{"query":"flows","limit":3}`)
	f.Fuzz(func(t *testing.T, i int, raw string) {
		if i < 0 {
			i = -i
		}
		agreeWithFullValidator(t, tools[i%len(tools)], []byte(raw))
	})
}
