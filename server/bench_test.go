package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server/keyring"
	"github.com/flowstudio/mcp/tools"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
	"go.uber.org/zap"
)

// countingUsers counts store round trips made by the API-key check.
type countingUsers struct {
	UserStore
	reads int
}

func (c *countingUsers) ViewUser(ctx context.Context, id string) (*cosmos.User, error) {
	c.reads++
	return c.UserStore.ViewUser(ctx, id)
}

// BenchmarkToolsCallRoundTrip measures one tools/call through the whole HTTP handler:
// middleware, API-key verification, the user read from the embedded store, the rpc
// layer, argument validation, and an upstream call to the in-process simulator.
func BenchmarkToolsCallRoundTrip(b *testing.B) {
	store, err := cosmos.OpenEmbedded(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	keys, _ := keyring.New(strings.Repeat("k", 40))
	simulator := sim.New(sim.Options{PathPrefix: "/sim"})
	upstream := httptest.NewServer(simulator.Handler())
	defer upstream.Close()
	tid, oid := simulator.UserFor("bench@contoso.com")
	user, err := store.CreateUser(context.Background(), &cosmos.User{ID: cosmos.UserID(tid, oid), TenantID: tid, ObjectID: oid,
		Tier: cosmos.TierPro, KeyGeneration: 1, KeyIssuedAt: time.Now().Unix(), Consent: cosmos.ConsentGranted})
	if err != nil {
		b.Fatal(err)
	}
	pa, err := powerautomate.New(simulator.Config(upstream.URL+"/sim"), simulator.TokenSourceFor("bench@contoso.com"))
	if err != nil {
		b.Fatal(err)
	}
	catalog, err := tools.NewCatalog(&tools.Env{PA: pa}, nil, 0, tools.All())
	if err != nil {
		b.Fatal(err)
	}
	settings, _ := LoadSettings(func(string) string { return "" })
	users := &countingUsers{UserStore: store}
	h := New(Deps{Settings: settings, Logger: zap.NewNop(), Keys: keys, Users: users, Catalog: catalog}).Handler()
	key, _ := keys.Issue(user.ID, 1, time.Unix(user.KeyIssuedAt, 0), tools.ScopeFull)
	call := func(body string) string {
		req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
		req.Host = "127.0.0.1:8080"
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Api-Key", key)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Body.String()
	}
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
			users.reads = 0
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(bc.body))
				req.Host = "127.0.0.1:8080"
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Api-Key", key)
				if bc.method != "" {
					req.Header.Set("MCP-Protocol-Version", "2026-07-28")
					req.Header.Set("Mcp-Method", "tools/call")
					req.Header.Set("Mcp-Name", bc.method)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"result"`) {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
			b.ReportMetric(float64(users.reads)/float64(b.N), "store-reads/op")
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
