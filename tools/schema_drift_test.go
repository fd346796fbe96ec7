package tools

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// jsonFields are the argument names a Go input type decodes: its json tags (or field
// names), embedded structs' fields included, "-" and unexported fields left out.
func jsonFields(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported() && !f.Anonymous:
			continue
		case f.Anonymous && name == "":
			out = append(out, jsonFields(f.Type)...)
			continue
		case name == "":
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}

// TestInputSchemasMatchTheirTypes: every tool's input schema names exactly the
// arguments its typed input decodes, so the reviewed schema literal and the Go type
// cannot drift apart (an argument the schema allows but the handler never reads, or
// one the handler reads that no client is told about).
func TestInputSchemasMatchTheirTypes(t *testing.T) {
	for _, tool := range All() {
		var schema struct {
			Properties map[string]json.RawMessage `json:"properties"`
		}
		if err := json.Unmarshal(tool.Input, &schema); err != nil {
			t.Fatalf("%s: input schema: %v", tool.Name, err)
		}
		var inSchema []string
		for name := range schema.Properties {
			inSchema = append(inSchema, name)
		}
		inType := jsonFields(tool.inputType)
		slices.Sort(inSchema)
		slices.Sort(inType)
		if tool.inputType == nil || tool.inputType.Kind() != reflect.Struct && tool.inputType.Kind() != reflect.Pointer {
			t.Errorf("%s: input type %v is not a struct", tool.Name, tool.inputType)
			continue
		}
		if !slices.Equal(inSchema, inType) {
			t.Errorf("%s: schema properties %v, %v fields %v", tool.Name, inSchema, tool.inputType, inType)
		}
	}
}
