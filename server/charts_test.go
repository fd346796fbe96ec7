package server

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/cosmos"
)

func TestDailyChartLayout(t *testing.T) {
	now := time.Date(2026, 3, 30, 15, 0, 0, 0, time.UTC)
	day := func(d int) int64 { return time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC).Unix() }
	counters := []*cosmos.UsageCounter{
		{Period: cosmos.PerDay, Start: day(30), Count: 40},                                             // today, the peak
		{Period: cosmos.PerDay, Start: day(1), Count: 10},                                              // the first day shown
		{Period: cosmos.PerDay, Start: time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC).Unix(), Count: 99}, // 31 days ago: not shown
		{Period: cosmos.PerMinute, Start: day(30), Count: 500},                                         // not a day counter
		{Period: cosmos.ToolPerDay, Start: day(30), Count: 500, Tool: "x"},
	}
	ch := dailyChart(counters, now)
	if len(ch.Bars) != chartDays {
		t.Fatalf("%d bars, want %d", len(ch.Bars), chartDays)
	}
	last, first := ch.Bars[chartDays-1], ch.Bars[0]
	if !last.Today || last.Title != "Mon 30 Mar: 40 calls" || first.Title != "Sun 1 Mar: 10 calls" {
		t.Errorf("bars: first %+v, last %+v", first, last)
	}
	if first.H != last.H*10/40 || ch.Bars[5].H != 0 {
		t.Errorf("heights not proportional: %d, %d, %d", last.H, first.H, ch.Bars[5].H)
	}
	if last.Y+last.H != first.Y+first.H {
		t.Error("bars do not share a baseline")
	}
	if !strings.Contains(ch.Desc, "50 counted calls") || !strings.Contains(ch.Desc, "the most in one day: 40") {
		t.Errorf("description %q", ch.Desc)
	}
	if empty := dailyChart(nil, now); empty.Empty == "" || len(empty.Bars) != 0 {
		t.Errorf("no counters: %+v", empty)
	}
}

func TestToolChartLayout(t *testing.T) {
	ch := toolChart(map[string]int64{"get_live_flow": 3, "list_live_flows": 12, "get_live_flow_runs": 3, "unused": 0}, time.Now())
	if len(ch.Bars) != 3 {
		t.Fatalf("%d bars", len(ch.Bars))
	}
	want := []string{"list_live_flows: 12 calls", "get_live_flow: 3 calls", "get_live_flow_runs: 3 calls"}
	for i, b := range ch.Bars {
		if b.Title != want[i] {
			t.Errorf("bar %d: %q, want %q", i, b.Title, want[i])
		}
	}
	if ch.Bars[1].W != ch.Bars[0].W*3/12 {
		t.Errorf("widths not proportional: %d, %d", ch.Bars[0].W, ch.Bars[1].W)
	}
	if !strings.HasPrefix(ch.Desc, "18 counted calls of 3 tools") {
		t.Errorf("description %q", ch.Desc)
	}
}

// TestDashboardDrawsUsage: after counted calls the dashboard draws both charts as
// SVG from the stored counters (calls today under today's bar, each tool with its
// count), with no script, no inline style and the page's CSP unchanged.
func TestDashboardDrawsUsage(t *testing.T) {
	t.Parallel()
	h, _, _ := newSimWebHarness(t)
	c := h.browser(t)
	end, _ := simSignIn(t, h, c, "/login", "alice@contoso.com")
	key := webMatch(t, keyField, end.body)
	if strings.Contains(end.body, "<svg") && !strings.Contains(end.body, "No counted tool calls") {
		t.Fatal("charts with bars before any call")
	}
	for _, tool := range []string{"list_live_environments", "list_live_environments", "list_skills"} {
		if r := webCallTool(t, h, key, tool); r.status != 200 || r.isError {
			t.Fatalf("%s: %d %s", tool, r.status, r.text)
		}
	}
	var p webPage
	for try := 0; try < 4; try++ { // counts reach the store within a flush interval (1 s)
		time.Sleep(600 * time.Millisecond)
		p = webFetch(t, c, "GET", h.ts.URL+"/dashboard", nil, nil)
		if strings.Contains(p.body, "<title>list_live_environments: 2 calls</title>") {
			break
		}
	}
	today := time.Now().UTC().Format("Mon 2 Jan") + ": 2 calls"
	for _, want := range []string{`id="chart-daily"`, `id="chart-tools"`, `<rect class="bar today"`, "<title>" + today + "</title>",
		"<title>list_live_environments: 2 calls</title>", `role="img"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the dashboard lacks %q", want)
		}
	}
	if strings.Contains(p.body, "list_skills: ") {
		t.Error("a meta tool (not counted) is charted")
	}
	if p.header.Get("Content-Security-Policy") != pageCSP || pageCSP != "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'" {
		t.Errorf("CSP changed: %q", p.header.Get("Content-Security-Policy"))
	}
	if regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>[^<]+</script>|\sstyle=|\son[a-z]+=`).MatchString(p.body) {
		t.Error("the page has an inline script, inline style or event handler")
	}
	if p.status != http.StatusOK {
		t.Fatalf("dashboard: %d", p.status)
	}
}
