package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/sourcegraph/jsonrpc2"
)

// fakeReports keeps reports in memory and counts them per user against the
// cap, as cosmos.Store does (its tests check the atomic count); its day never
// ends.
type fakeReports struct {
	mu      sync.Mutex
	reports []*cosmos.BugReport
	perUser map[string]int64
	err     error
}

// fakeReportsReset is when the fake's day ends.
var fakeReportsReset = time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)

func (f *fakeReports) AddBugReport(_ context.Context, userID string, perDay int64, r *cosmos.BugReport) (*cosmos.BugReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if f.perUser == nil {
		f.perUser = map[string]int64{}
	}
	if f.perUser[userID] >= perDay {
		return nil, fmt.Errorf("wrapped: %w", &cosmos.ReportLimitError{Limit: perDay, ResetsAt: fakeReportsReset})
	}
	f.perUser[userID]++
	c := *r
	c.ID, c.CreatedAt = "r1", 1767225600
	f.reports = append(f.reports, &c)
	return &c, nil
}

// ListMyBugReports and AppendBugReport: report_bug's status and append are tested
// against the embedded store (reports_test.go); this fake files only.
func (f *fakeReports) ListMyBugReports(context.Context, string, int) ([]*cosmos.BugReport, error) {
	return nil, errors.New("fakeReports files only")
}

func (f *fakeReports) AppendBugReport(context.Context, string, int64, string, string, int) (*cosmos.BugReport, error) {
	return nil, errors.New("fakeReports files only")
}

// testTool declares a do-nothing tool of a kind and group, for the gates.
func testTool(name string, kind Kind, group Group) *Tool {
	return Define(Tool{Name: name, Title: "Test " + name, Description: "A test tool that does nothing: " + name + ".",
		Kind: kind, Group: group, Input: json.RawMessage(`{"type":"object","additionalProperties":false,"properties":{}}`)},
		func(context.Context, *Env, struct{}) (map[string]string, error) {
			return map[string]string{"ok": name}, nil
		})
}

type callOutcome struct {
	IsError           bool
	Text              string
	StructuredContent json.RawMessage
}

// callTool runs one tools/call as p (nil: no principal) and decodes the result, which
// must hold one text content.
func callTool(t testing.TB, c *Catalog, p *Principal, name string, args any) callOutcome {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"name": name, "arguments": args})
	if err != nil {
		t.Fatal(err)
	}
	ctx := rpc.WithRequestID(t.Context(), "req-test")
	if p != nil {
		ctx = WithPrincipal(ctx, p)
	}
	res, err := c.call(ctx, raw)
	if err != nil {
		t.Fatalf("tools/call %s: protocol error %v", name, err)
	}
	var out struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		StructuredContent json.RawMessage `json:"structuredContent"`
		IsError           bool            `json:"isError"`
	}
	if err := json.Unmarshal(res.(rpc.Preencoded).JSON(), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Content) != 1 || out.Content[0].Type != "text" {
		t.Fatalf("%s: content = %+v", name, out.Content)
	}
	return callOutcome{IsError: out.IsError, Text: out.Content[0].Text, StructuredContent: out.StructuredContent}
}

func mustCatalog(t *testing.T, env *Env, meter Meter, extra ...*Tool) *Catalog {
	t.Helper()
	c, err := NewCatalog(env, meter, 0, append(All(), extra...))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var (
	fullPro  = &Principal{Caller: powerautomate.Caller{UserID: "t.u", EmailHash: "ab12"}, Tier: cosmos.TierPro, Scope: ScopeFull}
	readPro  = &Principal{Caller: powerautomate.Caller{UserID: "t.u", EmailHash: "ab12"}, Tier: cosmos.TierPro, Scope: ScopeRead}
	fullTeam = &Principal{Caller: powerautomate.Caller{UserID: "t.u", EmailHash: "ab12"}, Tier: cosmos.TierTeam, Scope: ScopeFull}
)

func searchNames(t *testing.T, o callOutcome) []string {
	t.Helper()
	if o.IsError {
		t.Fatalf("tool_search failed: %s", o.Text)
	}
	var out struct {
		Tools []struct {
			Name        string          `json:"name"`
			InputSchema json.RawMessage `json:"inputSchema"`
		} `json:"tools"`
		Unknown []string `json:"unknown"`
	}
	if err := json.Unmarshal(o.StructuredContent, &out); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range out.Tools {
		names = append(names, tl.Name)
	}
	return names
}

func TestToolSearch(t *testing.T) {
	c := mustCatalog(t, &Env{}, nil, testTool("delete_test_thing", Destructive, Live))

	t.Run("keywords rank names first", func(t *testing.T) {
		names := searchNames(t, callTool(t, c, fullPro, "tool_search", map[string]any{"query": "environments"}))
		if len(names) == 0 || names[0] != "list_live_environments" {
			t.Fatalf("search for environments: %v", names)
		}
		names = searchNames(t, callTool(t, c, fullPro, "tool_search", map[string]any{"query": "flows", "limit": 1}))
		if len(names) != 1 {
			t.Fatalf("limit 1 gave %v", names)
		}
	})
	t.Run("nothing matches", func(t *testing.T) {
		o := callTool(t, c, fullPro, "tool_search", map[string]any{"query": "zebra quantum"})
		if names := searchNames(t, o); len(names) != 0 || !strings.Contains(string(o.StructuredContent), "nothing matched") {
			t.Fatalf("got %v %s", names, o.StructuredContent)
		}
	})
	t.Run("skill", func(t *testing.T) {
		names := searchNames(t, callTool(t, c, fullPro, "tool_search", map[string]any{"query": "skill:discover"}))
		if len(names) == 0 || names[0] != "list_live_environments" {
			t.Fatalf("skill:discover gave %v", names)
		}
		for _, n := range names {
			if c.byName[n] == nil {
				t.Errorf("skill lists %s, which the catalog lacks", n)
			}
		}
		if o := callTool(t, c, fullPro, "tool_search", map[string]any{"query": "skill:nope"}); !o.IsError || !strings.Contains(o.Text, "debug-flow") {
			t.Fatalf("unknown skill: %+v", o)
		}
	})
	t.Run("select returns full listings", func(t *testing.T) {
		o := callTool(t, c, fullPro, "tool_search", map[string]any{"query": "select:list_live_flows, no_such_tool,list_live_flows"})
		var out struct {
			Tools   []listedTool `json:"tools"`
			Unknown []string     `json:"unknown"`
		}
		if err := json.Unmarshal(o.StructuredContent, &out); err != nil {
			t.Fatal(err)
		}
		if len(out.Tools) != 1 || out.Tools[0].Name != "list_live_flows" || len(out.Tools[0].InputSchema) == 0 || out.Tools[0].Annotations == nil {
			t.Fatalf("select: %s", o.StructuredContent)
		}
		if len(out.Unknown) != 1 || !strings.Contains(out.Unknown[0], "no_such_tool") {
			t.Fatalf("unknown: %v", out.Unknown)
		}
	})
	t.Run("read keys find no write tools", func(t *testing.T) {
		if names := searchNames(t, callTool(t, c, readPro, "tool_search", map[string]any{"query": "delete test thing"})); slices.Contains(names, "delete_test_thing") {
			t.Fatalf("read key found a destructive tool: %v", names)
		}
		if names := searchNames(t, callTool(t, c, fullPro, "tool_search", map[string]any{"query": "delete test thing"})); !slices.Contains(names, "delete_test_thing") {
			t.Fatalf("full key did not find it: %v", names)
		}
		o := callTool(t, c, readPro, "tool_search", map[string]any{"query": "select:delete_test_thing"})
		if names := searchNames(t, o); len(names) != 0 {
			t.Fatalf("read key selected a destructive tool: %s", o.StructuredContent)
		}
	})
}

func TestListSkills(t *testing.T) {
	c := mustCatalog(t, &Env{}, nil)
	o := callTool(t, c, fullPro, "list_skills", map[string]any{})
	var out listSkillsOut
	if err := json.Unmarshal(o.StructuredContent, &out); err != nil || o.IsError {
		t.Fatalf("%v %s", err, o.Text)
	}
	var got []string
	for _, s := range out.Skills {
		got = append(got, s.Name)
		for _, st := range s.Steps {
			tool := c.byName[st.Tool]
			if tool == nil {
				t.Errorf("skill %s names %s, which the catalog lacks", s.Name, st.Tool)
				continue
			}
			if wantNeeds := !cosmos.TierPro.AtLeast(tool.MinTier()); wantNeeds != (st.Needs != "") {
				t.Errorf("skill %s step %s: needs %q", s.Name, st.Tool, st.Needs)
			}
		}
	}
	if want := []string{"discover", "build-flow", "debug-flow", "monitor-flow", "governance"}; !slices.Equal(got, want) {
		t.Fatalf("skills %v, want %v", got, want)
	}
	o = callTool(t, c, fullPro, "list_skills", map[string]any{"skill": "debug-flow"})
	if !strings.Contains(string(o.StructuredContent), `"debug-flow"`) || strings.Contains(string(o.StructuredContent), `"governance"`) {
		t.Fatalf("one skill: %s", o.StructuredContent)
	}
	if o := callTool(t, c, fullPro, "list_skills", map[string]any{"skill": "bogus"}); !o.IsError {
		t.Fatal("an unknown skill was accepted")
	}
}

// TestSkillsNameOnlyKnownTools keeps the bundles in step with the catalog: every step
// of every skill is checked against All() itself, not a typed copy of its names (a
// typo would silently drop a step forever).
func TestSkillsNameOnlyKnownTools(t *testing.T) {
	known := map[string]bool{}
	for _, tool := range All() {
		known[tool.Name] = true
	}
	for _, s := range skills {
		for _, st := range s.Steps {
			if !known[st.Tool] {
				t.Errorf("skill %s: unknown tool %s", s.Name, st.Tool)
			}
		}
	}
}

func TestPrompts(t *testing.T) {
	c := mustCatalog(t, &Env{}, nil)
	ctx := WithPrincipal(t.Context(), fullPro)
	res, err := c.listPrompts(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	prompts := res.(map[string]any)["prompts"].([]listedPrompt)
	if len(prompts) != len(skills) || prompts[0].Name != "discover" || prompts[0].Description == "" {
		t.Fatalf("prompts/list: %+v", prompts)
	}
	if _, err := c.listPrompts(ctx, json.RawMessage(`{"cursor":"x"}`)); !isRPCError(err, rpc.CodeInvalidParams) {
		t.Fatalf("a cursor: %v", err)
	}

	res, err = c.getPrompt(ctx, json.RawMessage(`{"name":"debug-flow","arguments":{"context":"flow Invoice sync fails"}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res)
	text := string(b)
	for _, want := range []string{`"role":"user"`, `"type":"text"`, "get_live_flow_runs", "flow Invoice sync fails", `"description"`} {
		if !strings.Contains(text, want) {
			t.Errorf("prompts/get lacks %s: %s", want, text)
		}
	}
	if strings.Contains(text, "get_live_flow_run_error") != (c.byName["get_live_flow_run_error"] != nil) {
		t.Error("a prompt names a tool the catalog lacks, or misses one it has")
	}
	for _, bad := range []string{`{"name":"nope"}`, `{}`, `{"name":"discover","arguments":{"bogus":"x"}}`, `[`} {
		if _, err := c.getPrompt(ctx, json.RawMessage(bad)); !isRPCError(err, rpc.CodeInvalidParams) {
			t.Errorf("prompts/get %s: %v, want -32602", bad, err)
		}
	}
}

func isRPCError(err error, code int64) bool {
	var e *jsonrpc2.Error
	return errors.As(err, &e) && e.Code == code
}

func TestReportBug(t *testing.T) {
	reports := &fakeReports{}
	c := mustCatalog(t, &Env{Reports: reports}, nil)

	o := callTool(t, c, fullPro, "report_bug", map[string]any{"title": "list_live_flows misses a flow",
		"description": "The flow Orders is not listed.", "evidence": "list_live_flows {environmentName: Default-x}", "tool": "list_live_flows"})
	if o.IsError || !strings.Contains(string(o.StructuredContent), `"id":"r1"`) {
		t.Fatalf("report_bug: %+v", o)
	}
	got := reports.reports[0]
	if got.UserHash != "ab12" || got.Tier != "pro" || got.Tool != "list_live_flows" || got.RequestID != "req-test" || got.Evidence == "" {
		t.Fatalf("stored %+v", got)
	}

	// 8 KiB in all: title + description + evidence.
	o = callTool(t, c, fullPro, "report_bug", map[string]any{"title": "big", "description": strings.Repeat("d", 5000),
		"evidence": strings.Repeat("e", 5000)})
	if !o.IsError || !strings.Contains(o.Text, "8192 bytes") || len(reports.reports) != 1 {
		t.Fatalf("oversize report: %+v (%d stored)", o, len(reports.reports))
	}
	exact := MaxBugReportBytes - len("t") - 4000
	o = callTool(t, c, fullPro, "report_bug", map[string]any{"title": "t", "description": strings.Repeat("d", 4000), "evidence": strings.Repeat("e", exact)})
	if o.IsError || len(reports.reports) != 2 {
		t.Fatalf("a report of exactly 8 KiB: %+v", o)
	}
	// Multi-byte text is counted in bytes.
	o = callTool(t, c, fullPro, "report_bug", map[string]any{"title": "t", "description": strings.Repeat("é", 4097)})
	if !o.IsError {
		t.Fatal("8194 bytes of é were accepted")
	}

	reports.err = errors.New("store down at https://cosmos.example/dbs/x?k=SECRET")
	if o := callTool(t, c, fullPro, "report_bug", map[string]any{"title": "t", "description": "d"}); !o.IsError || strings.Contains(o.Text, "SECRET") {
		t.Fatalf("store failure: %+v", o)
	}
	if o := callTool(t, mustCatalog(t, &Env{}, nil), fullPro, "report_bug", map[string]any{"title": "t", "description": "d"}); !o.IsError {
		t.Fatal("no report store, yet accepted")
	}
	// report_bug sends data to the operators, so it is a write: clients ask before
	// running it, and read-only keys do not see it.
	if o := callTool(t, c, readPro, "tool_search", map[string]any{"query": "select:report_bug"}); len(searchNames(t, o)) != 0 {
		t.Fatal("read key sees report_bug")
	}
}

// report_bug takes at most MaxBugReportsPerDay reports per user per UTC day,
// counted by user id; then it answers an isError that names the cap and the
// reset.
func TestReportBugDailyCap(t *testing.T) {
	reports := &fakeReports{}
	c := mustCatalog(t, &Env{Reports: reports}, nil)
	freeFull := &Principal{Caller: powerautomate.Caller{UserID: "t.free", EmailHash: "cd34"}, Tier: cosmos.TierFree, Scope: ScopeFull}
	file := func(p *Principal) callOutcome {
		return callTool(t, c, p, "report_bug", map[string]any{"title": "t", "description": "d"})
	}
	for i := range MaxBugReportsPerDay {
		if o := file(freeFull); o.IsError {
			t.Fatalf("report %d of a free key was refused: %s", i+1, o.Text)
		}
	}
	want := "you have filed 20 reports today, the daily limit; it resets at 2026-01-02 00:00 UTC. Next: file it after the reset"
	for range 2 {
		if o := file(freeFull); !o.IsError || o.Text != want {
			t.Fatalf("a report past the cap: %+v\nwant text %q", o, want)
		}
	}
	if len(reports.reports) != MaxBugReportsPerDay {
		t.Fatalf("%d reports stored, want %d", len(reports.reports), MaxBugReportsPerDay)
	}
	// Counted by user id: a user with the same email hash is another user.
	sameHash := &Principal{Caller: powerautomate.Caller{UserID: "t.other", EmailHash: "cd34"}, Tier: cosmos.TierFree, Scope: ScopeFull}
	for _, p := range []*Principal{fullPro, sameHash} {
		if o := file(p); o.IsError {
			t.Fatalf("%s was refused by another user's cap: %s", p.UserID, o.Text)
		}
	}
	if reports.perUser["t.free"] != MaxBugReportsPerDay || reports.perUser["t.u"] != 1 || reports.perUser["t.other"] != 1 {
		t.Fatalf("counted per user: %v", reports.perUser)
	}
	if got := reports.reports[len(reports.reports)-1]; got.UserHash != "cd34" || got.Tier != "free" {
		t.Fatalf("stored %+v", got)
	}
	if o := file(nil); !o.IsError || !strings.Contains(o.Text, "signed-in caller") {
		t.Fatalf("a report of nobody: %+v", o)
	}
	// Read-only keys still cannot file at all (report_bug is a write).
	raw := json.RawMessage(`{"name":"report_bug","arguments":{"title":"t","description":"d"}}`)
	if _, err := c.call(WithPrincipal(t.Context(), readPro), raw); !isRPCError(err, -32602) {
		t.Fatalf("a read-only key called report_bug: %v", err)
	}
}

var _ ReportStore = (*cosmos.Store)(nil)

// The same on the real store, two catalogs on two handles of one embedded
// file (two replicas): one count, the exact message, other users unaffected.
func TestReportBugDailyCapOnStore(t *testing.T) {
	dir := t.TempDir()
	var cs []*Catalog
	for range 2 {
		s, err := cosmos.OpenEmbedded(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		cs = append(cs, mustCatalog(t, &Env{Reports: s}, nil))
	}
	freeFull := &Principal{Caller: powerautomate.Caller{UserID: "t.free", EmailHash: "cd34"}, Tier: cosmos.TierFree, Scope: ScopeFull}
	before := time.Now().UTC()
	for i := range MaxBugReportsPerDay {
		if o := callTool(t, cs[i%2], freeFull, "report_bug", map[string]any{"title": "t", "description": "d"}); o.IsError {
			t.Fatalf("report %d was refused: %s", i+1, o.Text)
		}
	}
	o := callTool(t, cs[0], freeFull, "report_bug", map[string]any{"title": "t", "description": "d"})
	after := time.Now().UTC()
	msg := func(now time.Time) string {
		return "you have filed 20 reports today, the daily limit; it resets at " +
			now.Truncate(24*time.Hour).Add(24*time.Hour).Format("2006-01-02") + " 00:00 UTC. Next: file it after the reset"
	}
	if !o.IsError || (o.Text != msg(before) && o.Text != msg(after)) {
		t.Fatalf("a report past the cap: %+v, want %q", o, msg(after))
	}
	if o := callTool(t, cs[1], fullPro, "report_bug", map[string]any{"title": "t", "description": "d"}); o.IsError {
		t.Fatalf("another user was refused: %s", o.Text)
	}
}

func TestGates(t *testing.T) {
	meter := &countingMeter{}
	c := mustCatalog(t, &Env{DashboardURL: "https://fs.example/dashboard"}, meter,
		testTool("write_test_thing", Write, Live), testTool("list_store_test", ReadOnly, Store))

	t.Run("read keys neither list nor call write tools", func(t *testing.T) {
		res, err := c.list(WithPrincipal(t.Context(), readPro), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, lt := range res.(map[string]any)["tools"].([]listedTool) {
			if lt.Annotations["readOnlyHint"] != true {
				t.Errorf("read key lists %s", lt.Name)
			}
		}
		raw := json.RawMessage(`{"name":"write_test_thing","arguments":{}}`)
		if _, err := c.call(WithPrincipal(t.Context(), readPro), raw); !isRPCError(err, rpc.CodeInvalidParams) {
			t.Fatalf("read key called a write tool: %v", err)
		}
		if o := callTool(t, c, fullPro, "write_test_thing", map[string]any{}); o.IsError {
			t.Fatalf("full key: %s", o.Text)
		}
	})
	t.Run("store tools need team", func(t *testing.T) {
		before := meter.admits
		o := callTool(t, c, fullPro, "list_store_test", map[string]any{})
		want := "list_store_test needs the team plan; this key's plan is pro. Upgrade to team on the dashboard: https://fs.example/dashboard#plans"
		if !o.IsError || o.Text != want {
			t.Fatalf("got %q, want %q", o.Text, want)
		}
		if meter.admits != before {
			t.Error("a call refused for its plan was counted")
		}
		if o := callTool(t, c, fullTeam, "list_store_test", map[string]any{}); o.IsError {
			t.Fatalf("team: %s", o.Text)
		}
	})
	t.Run("bad arguments are not counted", func(t *testing.T) {
		before := meter.admits
		if o := callTool(t, c, fullPro, "tool_search", map[string]any{"nope": 1}); !o.IsError {
			t.Fatal("accepted")
		}
		if meter.admits != before {
			t.Error("counted")
		}
	})
}

type countingMeter struct {
	mu      sync.Mutex
	admits  int
	records []CallRecord
}

func (m *countingMeter) Admit(context.Context, *Principal, *Tool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.admits++
	return nil
}

func (m *countingMeter) Record(_ context.Context, rec CallRecord) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.records = append(m.records, rec)
}
