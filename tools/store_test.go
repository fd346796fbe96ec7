package tools

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/teamcache"
)

// The store tools' tests fill an embedded store with cache items in the shapes
// `flowstudio sync` writes (package teamcache) and call the tools through
// tools/call; the sync itself is tested in package teamsync and end to end in main.

const (
	stUserA  = "11111111-aaaa-4aaa-8aaa-111111111111.a0000000-0000-4000-8000-00000000000a"
	stUserB  = "11111111-aaaa-4aaa-8aaa-111111111111.b0000000-0000-4000-8000-00000000000b"
	stEnv1   = "Default-11111111-aaaa-4aaa-8aaa-111111111111"
	stEnv2   = "22222222-bbbb-4bbb-8bbb-222222222222"
	stFlowA  = "aaaaaaaa-0000-4000-8000-000000000001" // invoice, monitored, critical, tag finance
	stFlowB  = "aaaaaaaa-0000-4000-8000-000000000002" // stopped report
	stFlowC  = "aaaaaaaa-0000-4000-8000-000000000003" // no governance
	stMaker1 = "c0000000-0000-4000-8000-000000000001"
	stMaker2 = "c0000000-0000-4000-8000-000000000002"
	stSynced = "2026-03-01T10:00:00Z"
)

type storeHarness struct {
	store *cosmos.Store
	env   *Env
}

func newStoreHarness(t *testing.T) *storeHarness {
	t.Helper()
	store, err := cosmos.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return &storeHarness{store: store, env: &Env{Cache: store, DashboardURL: "https://flowstudio.test/dashboard"}}
}

// as is a harness calling the tools as a user on a plan.
func (h *storeHarness) as(t *testing.T, userID string, tier cosmos.Tier) *liveHarness {
	t.Helper()
	cat, err := NewCatalog(h.env, nil, 0, All())
	if err != nil {
		t.Fatal(err)
	}
	return &liveHarness{Catalog: cat, Principal: &Principal{Caller: powerautomate.Caller{UserID: userID}, Tier: tier, Scope: ScopeFull}}
}

func (h *storeHarness) put(t *testing.T, userID, kind, key string, body any) {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.PutCacheItem(t.Context(), &cosmos.CacheItem{UserID: userID, Kind: kind, Key: key, Body: raw}); err != nil {
		t.Fatal(err)
	}
}

func flowKey(env, flow string) string { return teamcache.Key(env, flow) }

// seed writes user A's cache: two environments, three named flows (and extra
// generated ones in env 2), statistics, connections, makers, governance, state.
func (h *storeHarness) seed(t *testing.T, userID string, extraFlows int) {
	t.Helper()
	h.put(t, userID, teamcache.KindSyncState, teamcache.SyncStateKey, teamcache.SyncState{SyncedAt: stSynced, AttemptedAt: stSynced, Window: "7d",
		Environments: 2, Flows: 3 + extraFlows})
	h.put(t, userID, teamcache.KindEnvironment, strings.ToLower(stEnv1), teamcache.Environment{Name: stEnv1, DisplayName: "Contoso (default)",
		SKU: "Default", IsDefault: true, FlowCount: 3, ConnectionCount: 2, FlowsComplete: true, ConnectionsComplete: true})
	h.put(t, userID, teamcache.KindEnvironment, stEnv2, teamcache.Environment{Name: stEnv2, DisplayName: "Contoso Production",
		SKU: "Production", FlowCount: extraFlows, ConnectionCount: 1, FlowsComplete: false, ConnectionsComplete: true})
	connA := "shared-office365-1"
	flows := []teamcache.Flow{
		{EnvironmentName: stEnv1, Name: stFlowA, DisplayName: "Invoice approval", State: "Started", CreatorObjectID: stMaker1, Trigger: "Request/Button",
			ActionCount: 7, ActionTypes: map[string]int{"OpenApiConnection": 2, "Compose": 5}, Operations: map[string]int{"SendEmailV2": 2},
			Connectors: []string{"shared_office365"}, ConnectionReferences: []teamcache.ConnRef{{Connector: "shared_office365", ConnectionName: connA, Source: "Embedded"}},
			Triggers: []teamcache.Operation{{Type: "Request", Kind: "Button"}}},
		{EnvironmentName: stEnv1, Name: stFlowB, DisplayName: "Daily sales report", State: "Stopped", CreatorObjectID: stMaker2, Trigger: "Recurrence",
			ActionCount: 3, Connectors: []string{"shared_sharepointonline"}},
		{EnvironmentName: stEnv1, Name: stFlowC, DisplayName: "Order intake", State: "Started", CreatorObjectID: stMaker1, Trigger: "Request/Http", ActionCount: 2},
	}
	for i := range extraFlows {
		state := "Started"
		if i%10 == 0 {
			state = "Stopped"
		}
		name := uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprintf("%s/%d", userID, i))).String()
		flows = append(flows, teamcache.Flow{EnvironmentName: stEnv2, Name: name, DisplayName: fmt.Sprintf("Generated flow %03d", i), State: state,
			CreatorObjectID: stMaker2, ActionCount: i % 5})
	}
	for _, f := range flows {
		h.put(t, userID, teamcache.KindFlow, flowKey(f.EnvironmentName, f.Name), f)
	}
	recent := []teamcache.RunBrief{
		{Name: "08584000000000000000000000005CU05", Status: "Failed", Start: "2026-03-01T09:00:00Z", End: "2026-03-01T09:00:02Z", DurationMS: 2000, ErrorCode: "ActionFailed"},
		{Name: "08584000000000000000000000004CU04", Status: "Succeeded", Start: "2026-02-28T09:00:00Z", End: "2026-02-28T09:00:01Z", DurationMS: 1000},
		{Name: "08584000000000000000000000003CU03", Status: "Failed", Start: "2026-02-27T09:00:00Z", End: "2026-02-27T09:00:03Z", DurationMS: 3000, ErrorCode: "InvalidTemplate"},
		{Name: "08584000000000000000000000002CU02", Status: "Succeeded", Start: "2026-02-26T09:00:00Z", End: "2026-02-26T09:00:02Z", DurationMS: 2000},
	}
	h.put(t, userID, teamcache.KindFlowStats, flowKey(stEnv1, stFlowA), teamcache.FlowStats{EnvironmentName: stEnv1, FlowName: stFlowA, Window: "7d",
		From: "2026-02-22T10:00:00Z", To: stSynced, Runs: 4, ByStatus: map[string]int{"Failed": 2, "Succeeded": 2}, Failed: 2, FailureRate: 0.5,
		AvgDurationMS: 2000, LastRun: &recent[0], LastFailure: &recent[0], Recent: recent})
	h.put(t, userID, teamcache.KindConnection, flowKey(stEnv1, connA), teamcache.Connection{EnvironmentName: stEnv1, Name: connA, Connector: "shared_office365",
		Status: "Connected", OwnerObjectID: stMaker1, Flows: []string{flowKey(stEnv1, stFlowA)}, FlowCount: 1})
	h.put(t, userID, teamcache.KindConnection, flowKey(stEnv1, "shared-twitter-1"), teamcache.Connection{EnvironmentName: stEnv1, Name: "shared-twitter-1",
		Connector: "shared_twitter", Status: "Error", ErrorCode: "Unauthorized", Expires: "2026-02-20T00:00:00Z", OwnerObjectID: stMaker1})
	h.put(t, userID, teamcache.KindConnection, flowKey(stEnv2, "shared-office365-2"), teamcache.Connection{EnvironmentName: stEnv2, Name: "shared-office365-2",
		Connector: "shared_office365", Status: "Connected", OwnerObjectID: stMaker2})
	h.put(t, userID, teamcache.KindMaker, stMaker1, teamcache.Maker{ObjectID: stMaker1, FlowCount: 2, StartedFlows: 2,
		ConnectionCount: 2, Environments: []string{stEnv1}, Flows: []teamcache.MakerFlow{{ID: flowKey(stEnv1, stFlowA), DisplayName: "Invoice approval", State: "Started"},
			{ID: flowKey(stEnv1, stFlowC), DisplayName: "Order intake", State: "Started"}}})
	h.put(t, userID, teamcache.KindMaker, stMaker2, teamcache.Maker{ObjectID: stMaker2, FlowCount: 1 + extraFlows, StoppedFlows: 1,
		ConnectionCount: 1, Environments: []string{stEnv1, stEnv2}})
	h.put(t, userID, teamcache.KindGovernance, flowKey(stEnv1, stFlowA), teamcache.Governance{EnvironmentName: stEnv1, FlowName: stFlowA,
		Monitor: true, Critical: true, Tags: []string{"Finance", "sox"}, BusinessImpact: "high", OwnerTeam: "Accounts payable"})
}

func wantCache(t *testing.T, raw json.RawMessage, syncedAt string) {
	t.Helper()
	var out struct {
		Cache cacheInfo `json:"cache"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	if out.Cache.SyncedAt != syncedAt || (syncedAt == "" && out.Cache.Note == "") {
		t.Fatalf("cache = %+v, want syncedAt %q", out.Cache, syncedAt)
	}
}

var storeToolNames = []string{"list_store_environments", "list_store_flows", "get_store_flow", "get_store_flow_summary",
	"get_store_flow_runs", "update_store_flow", "list_store_connections", "list_store_makers", "get_store_maker", "list_store_power_apps"}

// storeArgs are valid arguments for each store tool against the seeded cache.
func storeArgs(tool string) map[string]any {
	switch tool {
	case "get_store_flow", "get_store_flow_summary", "get_store_flow_runs":
		return map[string]any{"environmentName": stEnv1, "flowName": stFlowA}
	case "update_store_flow":
		return map[string]any{"environmentName": stEnv1, "flowName": stFlowA, "monitor": true}
	case "get_store_maker":
		return map[string]any{"objectId": stMaker1}
	}
	return map[string]any{}
}

func TestStoreToolsHappyPaths(t *testing.T) {
	t.Parallel()
	h := newStoreHarness(t)
	h.seed(t, stUserA, 0)
	a := h.as(t, stUserA, cosmos.TierTeam)

	var envs storeEnvsOut
	r := a.mustCall(t, "list_store_environments", map[string]any{}, &envs)
	wantCache(t, r.Structured, stSynced)
	if len(envs.Environments) != 2 || envs.Environments[0].Name != stEnv2 || !envs.Environments[0].Partial ||
		envs.Environments[1].FlowCount != 3 || envs.Environments[1].ConnectionCount != 2 || !envs.Environments[1].IsDefault {
		t.Errorf("environments = %+v", envs.Environments)
	}

	var flows storeFlowsOut
	a.mustCall(t, "list_store_flows", map[string]any{}, &flows)
	if len(flows.Flows) != 3 || flows.NextCursor != "" {
		t.Fatalf("flows = %+v", flows)
	}
	inv := flows.Flows[slices.IndexFunc(flows.Flows, func(f storeFlowRow) bool { return f.Name == stFlowA })]
	if inv.ID != flowKey(stEnv1, stFlowA) || !inv.Monitored || !inv.Critical || !slices.Equal(inv.Tags, []string{"Finance", "sox"}) ||
		inv.Trigger != "Request/Button" || inv.ActionCount != 7 || inv.EnvironmentName != stEnv1 {
		t.Errorf("invoice row = %+v", inv)
	}

	var flow storeFlowOut
	r = a.mustCall(t, "get_store_flow", map[string]any{"environmentName": strings.ToUpper(stEnv1), "flowName": strings.ToUpper(stFlowA)}, &flow)
	wantCache(t, r.Structured, stSynced)
	if flow.ID != flowKey(stEnv1, stFlowA) || flow.DisplayName != "Invoice approval" || flow.Operations["SendEmailV2"] != 2 ||
		flow.Governance == nil || flow.Governance.OwnerTeam != "Accounts payable" || flow.CachedAt == "" || len(flow.ConnectionReferences) != 1 {
		t.Errorf("flow = %+v", flow)
	}
	// By id, the same answer.
	var byID storeFlowOut
	a.mustCall(t, "get_store_flow", map[string]any{"id": flowKey(stEnv1, stFlowA)}, &byID)
	if byID.ID != flow.ID || byID.DisplayName != flow.DisplayName {
		t.Errorf("by id = %+v", byID)
	}
	var plain storeFlowOut
	a.mustCall(t, "get_store_flow", map[string]any{"environmentName": stEnv1, "flowName": stFlowC}, &plain)
	if plain.Governance != nil || plain.State != "Started" {
		t.Errorf("flow without governance = %+v", plain)
	}

	var sum storeSummaryOut
	a.mustCall(t, "get_store_flow_summary", map[string]any{"id": flowKey(stEnv1, stFlowA)}, &sum)
	if sum.Runs != 4 || sum.Failed != 2 || sum.FailureRate != 0.5 || sum.Window != "7d" || sum.LastFailure == nil ||
		sum.LastFailure.ErrorCode != "ActionFailed" || sum.DisplayName != "Invoice approval" || sum.AvgDurationMS != 2000 {
		t.Errorf("summary = %+v", sum)
	}

	var runs storeRunsOut
	a.mustCall(t, "get_store_flow_runs", map[string]any{"id": flowKey(stEnv1, stFlowA), "status": "Failed", "top": 1}, &runs)
	if len(runs.Runs) != 1 || runs.Runs[0].ErrorCode != "ActionFailed" {
		t.Errorf("failed runs, top 1 = %+v", runs.Runs)
	}
	a.mustCall(t, "get_store_flow_runs", map[string]any{"id": flowKey(stEnv1, stFlowA)}, &runs)
	if len(runs.Runs) != 4 || runs.Runs[0].Start < runs.Runs[1].Start {
		t.Errorf("runs = %+v", runs.Runs)
	}

	var conns storeConnsOut
	a.mustCall(t, "list_store_connections", map[string]any{"environmentName": stEnv1}, &conns)
	if len(conns.Connections) != 2 || conns.Connections[0].Connector != "shared_office365" || conns.Connections[0].FlowCount != 1 ||
		conns.Connections[0].Flows[0] != flowKey(stEnv1, stFlowA) || conns.Connections[1].ErrorCode != "Unauthorized" {
		t.Errorf("connections = %+v", conns.Connections)
	}

	var makers storeMakersOut
	a.mustCall(t, "list_store_makers", map[string]any{}, &makers)
	if len(makers.Makers) != 2 || makers.Makers[0].ObjectID != stMaker1 || makers.Makers[0].FlowCount != 2 || makers.Makers[1].Environments != 2 {
		t.Errorf("makers = %+v", makers.Makers)
	}
	var maker storeMakerOut
	r = a.mustCall(t, "get_store_maker", map[string]any{"objectId": strings.ToUpper(stMaker1)}, &maker)
	wantCache(t, r.Structured, stSynced)
	if maker.ObjectID != stMaker1 || len(maker.Flows) != 2 || maker.ConnectionCount != 2 {
		t.Errorf("maker = %+v", maker)
	}

	// What is not cached is a clear error with a next step.
	for tool, args := range map[string]map[string]any{
		"get_store_flow":         {"environmentName": stEnv1, "flowName": "ffffffff-0000-4000-8000-000000000000"},
		"get_store_flow_summary": {"environmentName": stEnv1, "flowName": stFlowB},
		"get_store_maker":        {"objectId": "ffffffff-0000-4000-8000-000000000000"},
	} {
		wantToolError(t, a.call(t, tool, args), []string{"Next: "})
	}
	wantToolError(t, a.call(t, "get_store_flow", map[string]any{"environmentName": stEnv1, "flowName": "ffffffff-0000-4000-8000-000000000000"}),
		[]string{"not in your Team cache", "last synced " + stSynced, "get_live_flow"})
	wantToolError(t, a.call(t, "get_store_flow_summary", map[string]any{"environmentName": stEnv1, "flowName": stFlowB}),
		[]string{"no run statistics", "get_live_flow_runs"})
	wantToolError(t, a.call(t, "get_store_flow", map[string]any{"id": flowKey(stEnv1, stFlowA), "flowName": stFlowA}), []string{"not both"})
	wantToolError(t, a.call(t, "get_store_flow", map[string]any{"environmentName": stEnv1}), []string{"pass id, or environmentName and flowName"})
	wantToolError(t, a.call(t, "get_store_flow", map[string]any{"id": "../x"}), []string{"invalid argument id"})
}

func TestStoreToolsFilters(t *testing.T) {
	t.Parallel()
	h := newStoreHarness(t)
	h.seed(t, stUserA, 30)
	a := h.as(t, stUserA, cosmos.TierTeam)
	ids := func(args map[string]any) []string {
		t.Helper()
		args["pageSize"] = 200
		var out storeFlowsOut
		a.mustCall(t, "list_store_flows", args, &out)
		var got []string
		for _, f := range out.Flows {
			got = append(got, f.Name)
		}
		sort.Strings(got)
		return got
	}
	for name, c := range map[string]struct {
		args map[string]any
		want []string // nil: check the count only
		n    int
	}{
		"environment":       {map[string]any{"environmentName": strings.ToLower(stEnv1)}, []string{stFlowA, stFlowB, stFlowC}, 3},
		"search":            {map[string]any{"search": "INVOICE"}, []string{stFlowA}, 1},
		"state":             {map[string]any{"state": "Stopped"}, nil, 1 + 3},
		"state and env":     {map[string]any{"state": "Stopped", "environmentName": stEnv1}, []string{stFlowB}, 1},
		"monitored":         {map[string]any{"monitored": true}, []string{stFlowA}, 1},
		"not monitored":     {map[string]any{"monitored": false, "environmentName": stEnv1}, []string{stFlowB, stFlowC}, 2},
		"critical":          {map[string]any{"critical": true}, []string{stFlowA}, 1},
		"tag, another case": {map[string]any{"tag": "finance"}, []string{stFlowA}, 1},
		"unknown tag":       {map[string]any{"tag": "hr"}, []string{}, 0},
		"connector":         {map[string]any{"connector": "shared_sharepointonline"}, []string{stFlowB}, 1},
		"search generated":  {map[string]any{"search": "generated flow 01"}, nil, 10},
	} {
		got := ids(c.args)
		if len(got) != c.n || (c.want != nil && len(c.want) > 0 && !slices.Equal(got, c.want)) {
			t.Errorf("%s: %v, want %d %v", name, got, c.n, c.want)
		}
	}
	var conns storeConnsOut
	a.mustCall(t, "list_store_connections", map[string]any{"status": "error"}, &conns)
	if len(conns.Connections) != 1 || conns.Connections[0].Connector != "shared_twitter" {
		t.Errorf("status filter: %+v", conns.Connections)
	}
	a.mustCall(t, "list_store_connections", map[string]any{"unused": true}, &conns)
	if len(conns.Connections) != 2 {
		t.Errorf("unused filter: %+v", conns.Connections)
	}
	a.mustCall(t, "list_store_connections", map[string]any{"connector": "shared_office365", "environmentName": stEnv2}, &conns)
	if len(conns.Connections) != 1 || conns.Connections[0].EnvironmentName != stEnv2 {
		t.Errorf("connector and environment: %+v", conns.Connections)
	}
	var makers storeMakersOut
	a.mustCall(t, "list_store_makers", map[string]any{"environmentName": stEnv2}, &makers)
	if len(makers.Makers) != 1 || makers.Makers[0].ObjectID != stMaker2 {
		t.Errorf("makers in env 2: %+v", makers.Makers)
	}
	// Schema checks come first: a bad state or environment name names the field.
	wantToolError(t, a.call(t, "list_store_flows", map[string]any{"state": "Running"}), []string{"state"})
	wantToolError(t, a.call(t, "list_store_flows", map[string]any{"environmentName": "../x"}), []string{"environmentName"})
}

func TestStoreToolsPaging(t *testing.T) {
	t.Parallel()
	h := newStoreHarness(t)
	const extra = 450 // more than two store pages (storeScanSize)
	h.seed(t, stUserA, extra)
	a := h.as(t, stUserA, cosmos.TierTeam)

	walk := func(args map[string]any) []string {
		t.Helper()
		var all []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 200 {
				t.Fatal("paging does not end")
			}
			call := map[string]any{}
			for k, v := range args {
				call[k] = v
			}
			if cursor != "" {
				call["cursor"] = cursor
			}
			var out storeFlowsOut
			r := a.mustCall(t, "list_store_flows", call, &out)
			wantCache(t, r.Structured, stSynced)
			if ps, _ := args["pageSize"].(int); len(out.Flows) > ps {
				t.Fatalf("page of %d rows, pageSize %d", len(out.Flows), ps)
			}
			for _, f := range out.Flows {
				all = append(all, f.ID)
			}
			if out.NextCursor == "" {
				return all
			}
			cursor = out.NextCursor
		}
	}
	all := walk(map[string]any{"pageSize": 50})
	if len(all) != 3+extra || !slices.IsSorted(all) || len(slices.Compact(slices.Clone(all))) != len(all) {
		t.Fatalf("%d flows, sorted %v", len(all), slices.IsSorted(all))
	}
	// A sparse filter across store pages, in small pages.
	stopped := walk(map[string]any{"pageSize": 7, "state": "Stopped"})
	if len(stopped) != 1+extra/10 || len(slices.Compact(slices.Clone(stopped))) != len(stopped) {
		t.Fatalf("%d stopped flows, want %d", len(stopped), 1+extra/10)
	}
	// The default page is 50.
	var first storeFlowsOut
	a.mustCall(t, "list_store_flows", map[string]any{}, &first)
	if len(first.Flows) != 50 || first.NextCursor == "" {
		t.Fatalf("default page: %d rows", len(first.Flows))
	}
	// Cursors are checked: garbage, or another tool's, is a clear error.
	var envs storeEnvsOut
	a.mustCall(t, "list_store_environments", map[string]any{"pageSize": 1}, &envs)
	if len(envs.Environments) != 1 || envs.NextCursor == "" {
		t.Fatalf("environments page 1: %+v", envs)
	}
	for _, bad := range []string{"garbage", "c1.!!!", envs.NextCursor} {
		wantToolError(t, a.call(t, "list_store_flows", map[string]any{"cursor": bad}), []string{"invalid argument cursor", "Next: "})
	}
	var envs2 storeEnvsOut
	a.mustCall(t, "list_store_environments", map[string]any{"pageSize": 1, "cursor": envs.NextCursor}, &envs2)
	if len(envs2.Environments) != 1 || envs2.NextCursor != "" || envs2.Environments[0].Name != stEnv1 || envs2.Environments[0].Partial {
		t.Fatalf("environments page 2: %+v", envs2)
	}
}

func TestStoreToolsNeedTheTeamPlan(t *testing.T) {
	t.Parallel()
	h := newStoreHarness(t)
	h.seed(t, stUserA, 0)
	for _, tier := range []cosmos.Tier{cosmos.TierFree, cosmos.TierPro} {
		a := h.as(t, stUserA, tier)
		for _, tool := range storeToolNames {
			wantToolError(t, a.call(t, tool, storeArgs(tool)), []string{tool + " needs the team plan", "this key's plan is " + string(tier), "dashboard"})
		}
	}
	// The same calls work on the team plan, and without a cache the answer says so.
	a := h.as(t, stUserA, cosmos.TierTeam)
	for _, tool := range storeToolNames {
		a.mustCall(t, tool, storeArgs(tool), nil)
	}
	noCache := &storeHarness{env: &Env{DashboardURL: "https://flowstudio.test/dashboard"}}
	wantToolError(t, noCache.as(t, stUserA, cosmos.TierTeam).call(t, "list_store_flows", map[string]any{}), []string{"no Team cache", "list_live_"})
}

func TestUpdateStoreFlow(t *testing.T) {
	t.Parallel()
	h := newStoreHarness(t)
	h.seed(t, stUserA, 0)
	a := h.as(t, stUserA, cosmos.TierTeam)
	id := flowKey(stEnv1, stFlowC)
	update := func(args map[string]any) updateStoreFlowOut {
		t.Helper()
		args["id"] = id
		var out updateStoreFlowOut
		r := a.mustCall(t, "update_store_flow", args, &out)
		wantCache(t, r.Structured, stSynced)
		return out
	}

	out := update(map[string]any{"tags": []string{"orders", "Orders", "web"}, "ownerTeam": " Sales ops ", "businessImpact": "medium"})
	if !out.Changed || !slices.Equal(out.Governance.Tags, []string{"orders", "web"}) || out.Governance.OwnerTeam != "Sales ops" ||
		out.Governance.BusinessImpact != "medium" || out.Governance.Monitor || out.Governance.UpdatedAt == "" || out.Governance.FlowName != stFlowC {
		t.Fatalf("first update = %+v", out)
	}
	// Merge: other fields are kept.
	out = update(map[string]any{"monitor": true, "notifyRules": []map[string]any{
		{"when": "failureRateAbove", "threshold": 0.2, "email": "ops@contoso.com"},
		{"when": "noRunsFor", "threshold": 24, "email": "ops@contoso.com"},
		{"when": "anyFailure", "email": "oncall@contoso.com"}}})
	g := out.Governance
	if !out.Changed || !g.Monitor || !slices.Equal(g.Tags, []string{"orders", "web"}) || g.OwnerTeam != "Sales ops" || len(g.NotifyRules) != 3 ||
		g.NotifyRules[0].Threshold != 0.2 {
		t.Fatalf("merged = %+v", g)
	}
	// The same again changes nothing.
	if again := update(map[string]any{"monitor": true}); again.Changed || !again.Governance.Monitor {
		t.Fatalf("repeat = %+v", again)
	}
	// Clearing with "" and [].
	out = update(map[string]any{"businessImpact": "", "tags": []string{}, "supportEmail": "", "critical": true, "tier": "gold", "description": "Takes web orders."})
	g = out.Governance
	if g.BusinessImpact != "" || len(g.Tags) != 0 || !g.Critical || g.Tier != "gold" || g.Description != "Takes web orders." || !g.Monitor {
		t.Fatalf("cleared = %+v", g)
	}
	// get_store_flow and list_store_flows show the result.
	var flow storeFlowOut
	a.mustCall(t, "get_store_flow", map[string]any{"id": id}, &flow)
	if flow.Governance == nil || flow.Governance.Tier != "gold" || len(flow.Governance.NotifyRules) != 3 {
		t.Fatalf("get after update = %+v", flow.Governance)
	}
	var crit storeFlowsOut
	a.mustCall(t, "list_store_flows", map[string]any{"critical": true}, &crit)
	if len(crit.Flows) != 2 {
		t.Fatalf("critical flows = %+v", crit.Flows)
	}

	for name, c := range map[string]struct {
		args map[string]any
		want string
	}{
		"no field":                   {map[string]any{"id": id}, "at least one governance field"},
		"anyFailure with threshold":  {map[string]any{"id": id, "notifyRules": []map[string]any{{"when": "anyFailure", "threshold": 1, "email": "a@b.co"}}}, "notifyRules[0].threshold"},
		"rate above 1":               {map[string]any{"id": id, "notifyRules": []map[string]any{{"when": "failureRateAbove", "threshold": 2, "email": "a@b.co"}}}, "(0, 1]"},
		"rate missing":               {map[string]any{"id": id, "notifyRules": []map[string]any{{"when": "failureRateAbove", "email": "a@b.co"}}}, "failureRateAbove"},
		"hours not whole":            {map[string]any{"id": id, "notifyRules": []map[string]any{{"when": "noRunsFor", "threshold": 1.5, "email": "a@b.co"}}}, "whole hours"},
		"bad rule email":             {map[string]any{"id": id, "notifyRules": []map[string]any{{"when": "anyFailure", "email": "nobody"}}}, "email"},
		"unknown rule":               {map[string]any{"id": id, "notifyRules": []map[string]any{{"when": "sometimes", "email": "a@b.co"}}}, "when"},
		"extra rule field":           {map[string]any{"id": id, "notifyRules": []map[string]any{{"when": "anyFailure", "email": "a@b.co", "sms": "1"}}}, "sms"},
		"bad support email":          {map[string]any{"id": id, "supportEmail": "help desk"}, "supportEmail"},
		"bad impact":                 {map[string]any{"id": id, "businessImpact": "huge"}, "businessImpact"},
		"tag with spaces around":     {map[string]any{"id": id, "tags": []string{" x"}}, "tags"},
		"too many tags":              {map[string]any{"id": id, "tags": strings.Split("a b c d e f g h i j k l m n o p q r s t u", " ")}, "tags"},
		"long description":           {map[string]any{"id": id, "description": strings.Repeat("x", 2001)}, "description"},
		"unknown field":              {map[string]any{"id": id, "owner": "x"}, "owner"},
		"not cached":                 {map[string]any{"environmentName": stEnv1, "flowName": "ffffffff-0000-4000-8000-000000000000", "monitor": true}, "not in your Team cache"},
		"monitor as a string":        {map[string]any{"id": id, "monitor": "yes"}, "monitor"},
		"tier with control char":     {map[string]any{"id": id, "tier": "a\nb"}, "tier"},
		"threshold beyond the range": {map[string]any{"id": id, "notifyRules": []map[string]any{{"when": "noRunsFor", "threshold": 1000, "email": "a@b.co"}}}, "threshold"},
	} {
		r := a.call(t, "update_store_flow", c.args)
		if !r.IsError || !strings.Contains(r.Text, c.want) {
			t.Errorf("%s: %v %s", name, r.IsError, r.Text)
		}
	}
	// Nothing above changed the fields.
	a.mustCall(t, "get_store_flow", map[string]any{"id": id}, &flow)
	if flow.Governance.Tier != "gold" || !flow.Governance.Critical {
		t.Fatalf("after refused updates = %+v", flow.Governance)
	}

	// Concurrent updates of different fields all land (ETag-checked merges).
	var wg sync.WaitGroup
	fields := []map[string]any{{"ownerTeam": "Team 1"}, {"tier": "silver"}, {"description": "d"}, {"supportEmail": "s@contoso.com"},
		{"tags": []string{"t"}}, {"businessImpact": "low"}}
	for _, f := range fields {
		wg.Go(func() {
			f["id"] = id
			if r := a.call(t, "update_store_flow", f); r.IsError {
				t.Errorf("concurrent update %v: %s", f, r.Text)
			}
		})
	}
	wg.Wait()
	a.mustCall(t, "get_store_flow", map[string]any{"id": id}, &flow)
	g = *flow.Governance
	if g.OwnerTeam != "Team 1" || g.Tier != "silver" || g.Description != "d" || g.SupportEmail != "s@contoso.com" ||
		!slices.Equal(g.Tags, []string{"t"}) || g.BusinessImpact != "low" {
		t.Fatalf("after concurrent updates = %+v", g)
	}
}

// TestStoreTenantIsolation: user B, with no cache of their own, sees nothing of A's,
// by listing, by id, by cursor or by writing.
func TestStoreTenantIsolation(t *testing.T) {
	t.Parallel()
	h := newStoreHarness(t)
	h.seed(t, stUserA, 60)
	a, b := h.as(t, stUserA, cosmos.TierTeam), h.as(t, stUserB, cosmos.TierTeam)
	var aPage storeFlowsOut
	a.mustCall(t, "list_store_flows", map[string]any{"pageSize": 10}, &aPage)
	if aPage.NextCursor == "" {
		t.Fatal("no cursor to replay")
	}

	for _, tool := range []string{"list_store_environments", "list_store_flows", "list_store_connections", "list_store_makers"} {
		r := b.mustCall(t, tool, map[string]any{}, nil)
		wantCache(t, r.Structured, "")
		if strings.Contains(r.Text, "Invoice") || strings.Contains(r.Text, strings.ToLower(stEnv1)) || strings.Contains(r.Text, stMaker1) {
			t.Errorf("%s shows B user A's data: %s", tool, r.Text)
		}
		if !strings.Contains(r.Text, "not been synced") {
			t.Errorf("%s: no note that B's cache is empty: %s", tool, r.Text)
		}
	}
	var bPage storeFlowsOut
	if r := b.call(t, "list_store_flows", map[string]any{"cursor": aPage.NextCursor}); !r.IsError {
		json.Unmarshal(r.Structured, &bPage)
		if len(bPage.Flows) != 0 {
			t.Fatalf("A's cursor showed B %d flows", len(bPage.Flows))
		}
	}
	for _, tool := range []string{"get_store_flow", "get_store_flow_summary", "get_store_flow_runs", "get_store_maker"} {
		wantToolError(t, b.call(t, tool, storeArgs(tool)), []string{"Next: "})
	}
	wantToolError(t, b.call(t, "update_store_flow", map[string]any{"id": flowKey(stEnv1, stFlowA), "monitor": false, "tags": []string{}}),
		[]string{"not in your Team cache"})
	var flow storeFlowOut
	a.mustCall(t, "get_store_flow", map[string]any{"id": flowKey(stEnv1, stFlowA)}, &flow)
	if flow.Governance == nil || !flow.Governance.Monitor || len(flow.Governance.Tags) != 2 {
		t.Fatalf("A's governance after B's attempt = %+v", flow.Governance)
	}
	items, _, err := h.store.ListCacheItems(t.Context(), stUserB, cosmos.CacheFilter{}, cosmos.PageRequest{})
	if err != nil || len(items) != 0 {
		t.Fatalf("B's partition: %d items, %v", len(items), err)
	}
}

func TestStoreCacheNotes(t *testing.T) {
	t.Parallel()
	h := newStoreHarness(t)
	h.seed(t, stUserA, 0)
	a := h.as(t, stUserA, cosmos.TierTeam)
	for _, c := range []struct {
		state teamcache.SyncState
		want  []string
	}{
		{teamcache.SyncState{SyncedAt: stSynced, AttemptedAt: "2026-03-01T11:00:00Z", Error: "reconnect", Window: "7d"},
			[]string{"2026-03-01T11:00:00Z", "reconnect at https://flowstudio.test/dashboard"}},
		{teamcache.SyncState{SyncedAt: stSynced, AttemptedAt: "2026-03-01T11:00:00Z", Error: "upstream_503", Window: "7d"},
			[]string{"failed (upstream_503)"}},
		{teamcache.SyncState{SyncedAt: stSynced, AttemptedAt: stSynced, Window: "7d", PartialEnvironments: []string{stEnv2}},
			[]string{"could not read everything"}},
	} {
		h.put(t, stUserA, teamcache.KindSyncState, teamcache.SyncStateKey, c.state)
		var out storeEnvsOut
		a.mustCall(t, "list_store_environments", map[string]any{}, &out)
		if out.Cache.SyncedAt != stSynced || out.Cache.Window != "7d" {
			t.Errorf("cache = %+v", out.Cache)
		}
		for _, w := range c.want {
			if !strings.Contains(out.Cache.Note, w) {
				t.Errorf("note %q lacks %q", out.Cache.Note, w)
			}
		}
	}
}
