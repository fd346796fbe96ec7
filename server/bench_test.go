package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkToolsCallRoundTrip measures one tools/call through the whole HTTP handler:
// middleware, API-key verification, the user read from the embedded store, the rpc
// layer, argument validation, and an upstream call to the in-process simulator.
func BenchmarkToolsCallRoundTrip(b *testing.B) {
	m := newCallServer(b, nil)
	call := func(body string) string { return m.call(b, body) }
	env := firstName(b, call(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_live_environments","arguments":{}}}`), "environments")
	flow := firstName(b, call(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_live_flows","arguments":{"environmentName":"`+env+`"}}}`), "flows")
	for _, bc := range []struct{ name, body, method string }{
		// The shared bench's two cases: a meta tool, and one flow read with one upstream GET.
		{"list_skills", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_skills","arguments":{"skill":"discover"}}}`, ""},
		{"get_live_flow", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_live_flow","arguments":{"environmentName":"` + env + `","flowName":"` + flow + `"}}}`, ""},
		// The whole path including an upstream call to the simulator (RS256 token
		// minting and checking dominate it).
		{"list_live_environments", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_live_environments","arguments":{}}}`, ""},
		// Our own overhead: auth, store read, rpc, validation, no upstream.
		{"invalid_arguments", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_live_flows","arguments":{"pageSize":0}}}`, ""},
		// The same at 2026-07-28: headers checked against the body, resultType and
		// serverInfo added to the result.
		{"invalid_arguments_2026-07-28", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_live_flows","arguments":{"pageSize":0},` +
			`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`, "list_live_flows"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			reads := m.store.reads.Load()
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(bc.body))
				req.Host = "127.0.0.1:8080"
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Api-Key", m.key)
				if bc.method != "" {
					req.Header.Set("MCP-Protocol-Version", "2026-07-28")
					req.Header.Set("Mcp-Method", "tools/call")
					req.Header.Set("Mcp-Name", bc.method)
				}
				rec := httptest.NewRecorder()
				m.h.ServeHTTP(rec, req)
				if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"result"`) {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
			b.ReportMetric(float64(m.store.reads.Load()-reads)/float64(b.N), "store-reads/op")
		})
	}
}

// firstName returns the name of the first entry of list in a tools/call result.
func firstName(b *testing.B, body, list string) string {
	b.Helper()
	var resp struct {
		Result struct {
			StructuredContent map[string][]struct{ Name string } `json:"structuredContent"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || len(resp.Result.StructuredContent[list]) == 0 {
		b.Fatalf("no %s in %s", list, body)
	}
	return resp.Result.StructuredContent[list][0].Name
}
