package tools

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/google/go-cmp/cmp"
	"github.com/sourcegraph/jsonrpc2"
)

var update = flag.Bool("update", false, "rewrite the golden schema files under testdata/")

// TestCatalogMetadataRules holds every declaration to the house rules.
func TestCatalogMetadataRules(t *testing.T) {
	all := All()
	if _, err := NewCatalog(&Env{}, nil, 0, all); err != nil {
		t.Fatal(err)
	}
	for _, tool := range all {
		t.Run(tool.Name, func(t *testing.T) {
			if len(tool.Description) < 80 {
				t.Errorf("description too short to act on (%d chars)", len(tool.Description))
			}
			var schema struct {
				Type       string                     `json:"type"`
				Required   []string                   `json:"required"`
				Properties map[string]json.RawMessage `json:"properties"`
			}
			if err := json.Unmarshal(tool.Input, &schema); err != nil {
				t.Fatal(err)
			}
			for _, r := range schema.Required {
				if _, ok := schema.Properties[r]; !ok {
					t.Errorf("required field %s is not a property", r)
				}
			}
			if _, err := tool.resolved(); err != nil {
				t.Errorf("input schema does not compile: %v", err)
			}
			if tool.Output != nil {
				var out struct{ Type string }
				if err := json.Unmarshal(tool.Output, &out); err != nil || out.Type != "object" {
					t.Errorf("output schema must be an object schema")
				}
			}
			if tool.Group == Live && tool.Annotations()["openWorldHint"] != true {
				t.Error("live tools are open-world")
			}
		})
	}
}

// TestSchemasMatchGolden compares each tool's listing (schemas and annotations) with
// testdata/schemas/<tool>.json. -update rewrites the files that differ and fails all
// the same (review the diff, then run again without it), so -update never makes a
// run pass; a golden file of a tool the catalog no longer has fails too.
func TestSchemasMatchGolden(t *testing.T) {
	t.Run("no golden file without its tool", func(t *testing.T) {
		names := map[string]bool{}
		for _, tool := range All() {
			names[tool.Name+".json"] = true
		}
		files, err := filepath.Glob(filepath.Join("testdata", "schemas", "*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if names[filepath.Base(f)] {
				continue
			}
			if *update {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
				t.Errorf("removed %s: no tool of that name; run again without -update", f)
				continue
			}
			t.Errorf("%s belongs to no tool in the catalog: remove it (or run with -update)", f)
		}
	})
	for _, tool := range All() {
		t.Run(tool.Name, func(t *testing.T) {
			got, err := json.MarshalIndent(tool.listing(), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "schemas", tool.Name+".json")
			if *update {
				if old, _ := os.ReadFile(path); bytes.Equal(old, append(got, '\n')) {
					return
				}
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				t.Fatalf("rewrote %s: review the change, then run again without -update", path)
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("no golden file (run go test ./tools -run Golden -update): %v", err)
			}
			var g, w any
			_ = json.Unmarshal(got, &g)
			_ = json.Unmarshal(want, &w)
			if diff := cmp.Diff(w, g); diff != "" {
				t.Fatalf("schema changed (-golden +now); review, then -update:\n%s", diff)
			}
		})
	}
}

func TestAnnotationsFollowKind(t *testing.T) {
	for kind, want := range map[Kind][2]bool{ReadOnly: {true, false}, Write: {false, false}, Destructive: {false, true}} {
		a := (&Tool{Kind: kind, Group: Live}).Annotations()
		if a["readOnlyHint"] != want[0] || a["destructiveHint"] != want[1] {
			t.Errorf("kind %d: %v", kind, a)
		}
	}
}

func TestDeclarationsAreChecked(t *testing.T) {
	ok := func() Tool {
		return Tool{Name: "x_tool", Title: "X", Description: "d", Kind: ReadOnly, Group: Meta,
			Input: json.RawMessage(`{"type":"object","additionalProperties":false}`)}
	}
	noop := func(t Tool) *Tool {
		return Define(t, func(_ context.Context, _ *Env, _ struct{}) (struct{}, error) { return struct{}{}, nil })
	}
	bad := map[string]func(*Tool){
		"camelCase name":         func(t *Tool) { t.Name = "xTool" },
		"no description":         func(t *Tool) { t.Description = "" },
		"no kind":                func(t *Tool) { t.Kind = kindUnset },
		"no group":               func(t *Tool) { t.Group = groupUnset },
		"open schema":            func(t *Tool) { t.Input = json.RawMessage(`{"type":"object"}`) },
		"not an object":          func(t *Tool) { t.Input = json.RawMessage(`{"type":"string","additionalProperties":false}`) },
		"top-level anyOf":        func(t *Tool) { t.Input = json.RawMessage(`{"type":"object","additionalProperties":false,"anyOf":[]}`) },
		"output schema not JSON": func(t *Tool) { t.Output = json.RawMessage(`{`) },
	}
	if _, err := NewCatalog(&Env{}, nil, 0, []*Tool{noop(ok())}); err != nil {
		t.Fatalf("control declaration refused: %v", err)
	}
	for name, mutate := range bad {
		t.Run(name, func(t *testing.T) {
			decl := ok()
			mutate(&decl)
			if _, err := NewCatalog(&Env{}, nil, 0, []*Tool{noop(decl)}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := NewCatalog(&Env{}, nil, 0, []*Tool{noop(ok()), noop(ok())}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatal("duplicate names accepted")
	}
}

func TestDescribeSchemaError(t *testing.T) {
	for in, want := range map[string]string{
		"validating root: required: missing properties: [\"environmentName\"]":                         "invalid arguments: required: missing properties: [\"environmentName\"]",
		"validating root: validating /properties/top: minimum: 0/1 is less than 1.000000":              "invalid argument top: minimum: 0/1 is less than 1.000000",
		"validating root: unexpected additional properties [\"x\"]":                                    "invalid arguments: unexpected additional properties [\"x\"]",
		"validating root: validating /properties/a: validating /properties/b: type: 1 has type number": "invalid argument a.b: type: 1 has type number",
	} {
		if got := describeSchemaError(in); got != want {
			t.Errorf("describeSchemaError(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestToolsListPagesWithCursorsAndRefusesBadOnes(t *testing.T) {
	c, err := NewCatalog(&Env{}, nil, 3, All())
	if err != nil {
		t.Fatal(err)
	}
	ctx := WithPrincipal(context.Background(), &Principal{Tier: cosmos.TierTeam, Scope: ScopeFull})
	var names []string
	params := json.RawMessage(`{}`)
	for pages := 0; ; pages++ {
		if pages > len(All()) {
			t.Fatal("pagination does not end")
		}
		out, err := c.list(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		page := out.(map[string]any)
		tools := page["tools"].([]listedTool)
		if len(tools) > 3 {
			t.Fatalf("page of %d tools, page size 3", len(tools))
		}
		for _, tool := range tools {
			names = append(names, tool.Name)
		}
		next, ok := page["nextCursor"].(string)
		if !ok {
			break
		}
		params, _ = json.Marshal(map[string]string{"cursor": next})
	}
	var want []string
	for _, tool := range All() {
		want = append(want, tool.Name)
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("paging lost or repeated tools (-want +got):\n%s", diff)
	}
	foreign := base64.RawURLEncoding.EncodeToString([]byte("x9:1"))
	for _, bad := range []string{"", "garbage!", foreign, encodeCursor(0), encodeCursor(-1), encodeCursor(len(All()) + 5)} {
		p, _ := json.Marshal(map[string]string{"cursor": bad})
		_, err := c.list(ctx, p)
		var rpcErr *jsonrpc2.Error
		if !errors.As(err, &rpcErr) || rpcErr.Code != -32602 {
			t.Errorf("cursor %q: err %v, want -32602", bad, err)
		}
	}
}

// TestEverySchemaNodeHasAType walks every input and output schema of the catalog and
// fails on any sub-schema that accepts any value (no type, enum, const, $ref or
// combinator): a client validating structuredContent would have nothing to check.
func TestEverySchemaNodeHasAType(t *testing.T) {
	for _, tool := range All() {
		for side, raw := range map[string]json.RawMessage{"input": tool.Input, "output": tool.Output} {
			if raw == nil {
				continue
			}
			var schema any
			if err := json.Unmarshal(raw, &schema); err != nil {
				t.Fatalf("%s %s schema: %v", tool.Name, side, err)
			}
			for _, where := range untypedSchemas(schema, "") {
				t.Errorf("%s %s schema: %s accepts any value; give it a type (a union of types is fine)", tool.Name, side, where)
			}
		}
	}
}

func TestUntypedSchemasFindsThem(t *testing.T) {
	var schema any
	_ = json.Unmarshal([]byte(`{"type":"object","properties":{
		"a":{"description":"no type"},"b":{"type":"array","items":{}},"c":{"anyOf":[{"type":"string"},{}]},
		"d":{"type":"object","additionalProperties":true},"e":{"type":["string","null"]},"f":{"enum":[1]},
		"g":{"type":"object","patternProperties":{"^x":{"title":"t"}}},"h":{"type":"array","prefixItems":[{"const":1},true]}}}`), &schema)
	got := untypedSchemas(schema, "")
	want := []string{"/properties/a", "/properties/b/items", "/properties/c/anyOf/1", "/properties/d/additionalProperties",
		"/properties/g/patternProperties/^x", "/properties/h/prefixItems/1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatal(diff)
	}
}

// untypedSchemas returns the JSON pointers of the sub-schemas of s that accept any
// value, in a stable order.
func untypedSchemas(s any, at string) []string {
	switch s := s.(type) {
	case bool:
		if s {
			return []string{at}
		}
		return nil
	case map[string]any:
		var out []string
		typed := false
		for _, k := range []string{"type", "enum", "const", "$ref", "anyOf", "oneOf", "allOf"} {
			if _, ok := s[k]; ok {
				typed = true
			}
		}
		if !typed {
			out = append(out, at)
		}
		for _, k := range []string{"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"} {
			if m, ok := s[k].(map[string]any); ok {
				names := make([]string, 0, len(m))
				for name := range m {
					names = append(names, name)
				}
				sort.Strings(names)
				for _, name := range names {
					out = append(out, untypedSchemas(m[name], at+"/"+k+"/"+name)...)
				}
			}
		}
		for _, k := range []string{"items", "additionalProperties", "unevaluatedProperties", "unevaluatedItems",
			"contains", "propertyNames", "not", "if", "then", "else"} {
			switch v := s[k].(type) {
			case map[string]any, bool:
				if k == "additionalProperties" || k == "unevaluatedProperties" || k == "unevaluatedItems" {
					if v == false {
						continue
					}
				}
				out = append(out, untypedSchemas(v, at+"/"+k)...)
			case []any: // items in its older array form
				for i, item := range v {
					out = append(out, untypedSchemas(item, at+"/"+k+"/"+strconv.Itoa(i))...)
				}
			}
		}
		for _, k := range []string{"anyOf", "oneOf", "allOf", "prefixItems"} {
			if list, ok := s[k].([]any); ok {
				for i, item := range list {
					out = append(out, untypedSchemas(item, at+"/"+k+"/"+strconv.Itoa(i))...)
				}
			}
		}
		return out
	}
	return []string{at + " (not a schema)"}
}
