package tools

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/powerautomate"
)

// reportsOn is a catalog over a real embedded store.
func reportsOn(t *testing.T) (*Catalog, *cosmos.Store) {
	t.Helper()
	s, err := cosmos.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return mustCatalog(t, &Env{Reports: s}, nil), s
}

func reportOut(t *testing.T, o callOutcome) reportBugOut {
	t.Helper()
	if o.IsError {
		t.Fatalf("report_bug: %s", o.Text)
	}
	var out reportBugOut
	if err := json.Unmarshal(o.StructuredContent, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReportBugStatusAndAppend: the support channel per user. Status lists only
// the caller's reports with the operators' state; append reaches only the caller's
// reports, within the 8 KiB cap and the daily count shared with filing.
func TestReportBugStatusAndAppend(t *testing.T) {
	t.Parallel()
	c, store := reportsOn(t)
	ada := &Principal{Caller: powerautomate.Caller{UserID: "t.ada", EmailHash: "ad01"}, Tier: cosmos.TierFree, Scope: ScopeFull}
	grace := &Principal{Caller: powerautomate.Caller{UserID: "t.grace", EmailHash: "9a02"}, Tier: cosmos.TierPro, Scope: ScopeFull}

	empty := reportOut(t, callTool(t, c, ada, "report_bug", map[string]any{"action": "status"}))
	if len(empty.Reports) != 0 || !strings.Contains(empty.Note, "no reports") {
		t.Fatalf("status before filing: %+v", empty)
	}
	first := reportOut(t, callTool(t, c, ada, "report_bug", map[string]any{"title": "flows missing", "description": "d", "tool": "list_live_flows"}))
	second := reportOut(t, callTool(t, c, ada, "report_bug", map[string]any{"action": "file", "title": "runs slow", "description": "d"}))
	theirs := reportOut(t, callTool(t, c, grace, "report_bug", map[string]any{"title": "grace's", "description": "secret of grace"}))
	if first.Action != "file" || first.ID == "" || first.Received == "" || !cosmos.ValidBugReportID(second.ID) {
		t.Fatalf("file: %+v %+v", first, second)
	}

	st := reportOut(t, callTool(t, c, ada, "report_bug", map[string]any{"action": "status"}))
	if len(st.Reports) != 2 || st.Reports[0].ID != second.ID || st.Reports[1].ID != first.ID || st.Reports[1].Tool != "list_live_flows" ||
		st.Reports[0].State != "received" || st.Reports[0].Appended != 0 || st.Reports[0].Bytes != len("runs slow")+1 {
		t.Fatalf("ada's status: %+v", st)
	}
	if one := reportOut(t, callTool(t, c, ada, "report_bug", map[string]any{"action": "status", "reportId": first.ID})); len(one.Reports) != 1 || one.Reports[0].ID != first.ID {
		t.Fatalf("status of one: %+v", one)
	}
	if lim := reportOut(t, callTool(t, c, ada, "report_bug", map[string]any{"action": "status", "limit": 1})); len(lim.Reports) != 1 {
		t.Fatalf("limit 1: %+v", lim)
	}

	// Another user's report is neither shown nor extended, and not told apart from none.
	for _, args := range []map[string]any{
		{"action": "status", "reportId": theirs.ID},
		{"action": "append", "reportId": theirs.ID, "evidence": "ada was here"},
		{"action": "append", "reportId": "0000000000000000000-00000000", "evidence": "x"},
	} {
		o := callTool(t, c, ada, "report_bug", args)
		if !o.IsError || !strings.Contains(o.Text, "you have no report with this id") || strings.Contains(o.Text, "grace") {
			t.Errorf("%v: %+v", args, o)
		}
	}
	if g, _ := store.GetBugReport(t.Context(), theirs.ID); len(g.Appended) != 0 {
		t.Fatal("ada appended to grace's report")
	}

	// The operators' state and note reach the reporter.
	if _, err := store.SetBugReportState(t.Context(), first.ID, cosmos.BugReportFixed, "fixed in the next release"); err != nil {
		t.Fatal(err)
	}
	app := reportOut(t, callTool(t, c, ada, "report_bug", map[string]any{"action": "append", "reportId": first.ID, "evidence": "it happens on Mondays"}))
	if app.Action != "append" || app.ID != first.ID || app.BytesLeft == nil || *app.BytesLeft != MaxBugReportBytes-len("flows missing")-1-len("it happens on Mondays") {
		t.Fatalf("append: %+v", app)
	}
	st = reportOut(t, callTool(t, c, ada, "report_bug", map[string]any{"action": "status", "reportId": first.ID}))
	if r := st.Reports[0]; r.State != "fixed" || r.StateNote != "fixed in the next release" || r.Appended != 1 || r.Updated == "" {
		t.Fatalf("after state and append: %+v", r)
	}
	// The 8 KiB cap counts what was appended.
	o := callTool(t, c, ada, "report_bug", map[string]any{"action": "append", "reportId": first.ID, "evidence": strings.Repeat("x", *app.BytesLeft+1)})
	if !o.IsError || !strings.Contains(o.Text, "at most 8192 bytes") {
		t.Fatalf("an append past the cap: %+v", o)
	}
}

// TestReportBugArgumentsPerAction: each action takes its own arguments; anything
// else is refused with the field named, and nothing is stored.
func TestReportBugArgumentsPerAction(t *testing.T) {
	t.Parallel()
	c, store := reportsOn(t)
	ada := &Principal{Caller: powerautomate.Caller{UserID: "t.ada", EmailHash: "ad01"}, Tier: cosmos.TierFree, Scope: ScopeFull}
	id := "8223372036854775807-0a0b0c0d"
	for _, tc := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"title": "t"}, "action file needs title and description"},
		{map[string]any{"action": "file", "title": "t", "description": "d", "reportId": id}, "invalid argument reportId"},
		{map[string]any{"title": "t", "description": "d", "limit": 3}, "invalid argument limit"},
		{map[string]any{"action": "status", "title": "t"}, "invalid argument title"},
		{map[string]any{"action": "status", "evidence": "e"}, "invalid argument evidence"},
		{map[string]any{"action": "append", "reportId": id}, "action append needs reportId and evidence"},
		{map[string]any{"action": "append", "evidence": "e"}, "action append needs reportId and evidence"},
		{map[string]any{"action": "append", "reportId": id, "evidence": "e", "description": "d"}, "invalid argument description"},
		{map[string]any{"action": "append", "reportId": id, "evidence": "e", "limit": 2}, "invalid argument limit"},
		{map[string]any{"action": "delete"}, "invalid argument action"},
		{map[string]any{"action": "status", "reportId": "../../x"}, "invalid argument reportId"},
		{map[string]any{"action": "append", "reportId": "_system|x", "evidence": "e"}, "invalid argument reportId"},
		{map[string]any{"action": "status", "limit": 51}, "invalid argument limit"},
	} {
		o := callTool(t, c, ada, "report_bug", tc.args)
		if !o.IsError || !strings.Contains(o.Text, tc.want) {
			t.Errorf("%v: %+v, want %q", tc.args, o, tc.want)
		}
	}
	if got, _ := store.ListMyBugReports(t.Context(), ada.UserID, 50); len(got) != 0 {
		t.Fatalf("refused calls stored %d reports", len(got))
	}
	// Filing with an empty evidence stays accepted, as before status and append existed.
	if o := callTool(t, c, ada, "report_bug", map[string]any{"title": "t", "description": "d", "evidence": ""}); o.IsError {
		t.Fatalf("empty evidence: %s", o.Text)
	}
	if o := callTool(t, c, ada, "report_bug", map[string]any{"action": "append", "reportId": id, "evidence": ""}); !o.IsError ||
		!strings.Contains(o.Text, "action append needs reportId and evidence") {
		t.Fatalf("append of nothing: %+v", o)
	}
}
