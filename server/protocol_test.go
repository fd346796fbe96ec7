package server

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/jsonschema-go/jsonschema"
)

// mcpSchema is the published JSON Schema of MCP revision 2026-07-28 (schema.json of the
// specification repository, commit 271ecc9, kept verbatim).
const mcpSchema = "testdata/mcp-schema/2026-07-28.json"

// TestStatelessResultsMatchSchema answers every method a 2026-07-28 client calls and
// checks each result against the revision's own schema definition, plus what the
// schema cannot say: the server names itself in _meta, and no member is sent twice
// (the members the transport adds must not collide with a method's own).
func TestStatelessResultsMatchSchema(t *testing.T) {
	raw, err := os.ReadFile(mcpSchema)
	if err != nil {
		t.Fatal(err)
	}
	var root jsonschema.Schema
	if err := json.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, nil)
	key := h.key(t, "t.alice", 2, "full")
	for _, tc := range []struct {
		method, name, params, def string
	}{
		{"server/discover", "", `{}`, "DiscoverResult"},
		{"tools/list", "", `{}`, "ListToolsResult"},
		{"tools/call", "tool_search", `{"name":"tool_search","arguments":{"query":"flow runs"}}`, "CallToolResult"},
		{"tools/call", "list_live_flows", `{"name":"list_live_flows","arguments":{"pageSize":0}}`, "CallToolResult"}, // isError
		{"prompts/list", "", `{}`, "ListPromptsResult"},
		{"prompts/get", "debug-flow", `{"name":"debug-flow"}`, "GetPromptResult"},
		{"resources/list", "", `{}`, "ListResourcesResult"},
	} {
		t.Run(tc.method+" "+tc.name, func(t *testing.T) {
			params := strings.Replace(tc.params, "{", `{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",`+
				`"io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}},`, 1)
			params = strings.Replace(params, `},}`, `}}`, 1)
			headers := map[string]string{"X-Api-Key": key, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": tc.method}
			if tc.name != "" {
				headers["Mcp-Name"] = tc.name
			}
			rec := h.do(t, "POST", "/mcp", headers, `{"jsonrpc":"2.0","id":7,"method":"`+tc.method+`","params":`+params+`}`)
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var resp struct {
				Result json.RawMessage
				Error  json.RawMessage
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp.Error != nil {
				t.Fatalf("%v: %s", err, rec.Body)
			}
			if dup := duplicateMember(t, resp.Result); dup != "" {
				t.Fatalf("result member %q sent twice: %s", dup, resp.Result)
			}
			schema := &jsonschema.Schema{Ref: "#/$defs/" + tc.def, Defs: root.Defs}
			resolved, err := schema.Resolve(nil)
			if err != nil {
				t.Fatal(err)
			}
			var result map[string]any
			_ = json.Unmarshal(resp.Result, &result)
			if err := resolved.Validate(result); err != nil {
				t.Fatalf("not a %s: %v\n%s", tc.def, err, resp.Result)
			}
			info := result["_meta"].(map[string]any)["io.modelcontextprotocol/serverInfo"].(map[string]any)
			if info["name"] != "flowstudio-mcp" || info["version"] == nil {
				t.Fatalf("serverInfo %v", info)
			}
			if _, ok := result["serverInfo"]; ok {
				t.Fatal("serverInfo belongs in _meta")
			}
		})
	}
}

// TestSchemaCheckCanFail keeps the test above honest: the discover result as it was
// (serverInfo at the top, no cache hint) is refused by the same check.
func TestSchemaCheckCanFail(t *testing.T) {
	raw, _ := os.ReadFile(mcpSchema)
	var root jsonschema.Schema
	if err := json.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	resolved, err := (&jsonschema.Schema{Ref: "#/$defs/DiscoverResult", Defs: root.Defs}).Resolve(nil)
	if err != nil {
		t.Fatal(err)
	}
	var old map[string]any
	_ = json.Unmarshal([]byte(`{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{},"serverInfo":{"name":"x","version":"1"}}`), &old)
	if resolved.Validate(old) == nil {
		t.Fatal("a discover result without ttlMs and cacheScope passed")
	}
	if dup := duplicateMember(t, []byte(`{"a":1,"b":{"a":2},"a":3}`)); dup != "a" {
		t.Fatalf("duplicate not found: %q", dup)
	}
	if diff := cmp.Diff("", duplicateMember(t, []byte(`{"a":1,"b":{"a":2}}`))); diff != "" {
		t.Fatal(diff)
	}
}

// duplicateMember returns a member name that occurs twice at the top of a JSON object.
func duplicateMember(t *testing.T, obj []byte) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", obj)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		name := tok.(string)
		if seen[name] {
			return name
		}
		seen[name] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return ""
}
