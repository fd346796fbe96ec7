package server

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/flowstudio/mcp/cosmos"
)

// The dashboard's usage charts, drawn here as SVG inside the page: no script, no
// inline style (the CSP stays as it is; colours come from app.css classes), and
// every bar carries a <title> a screen reader or a hover shows. The data are the
// metering's own counters: a day counter per UTC day (kept 35 days) and a counter
// per tool for today.

// UsageHistory is what the charts read (*cosmos.Store).
type UsageHistory interface {
	ListUsageCounters(ctx context.Context, userID string) ([]*cosmos.UsageCounter, error)
	ToolUsage(ctx context.Context, userID string, at time.Time) (map[string]int64, error)
}

// chartDays is how many days the calls-per-day chart shows, today included.
const chartDays = 30

// svgChart is one chart, laid out for the template: coordinates are whole user
// units of the viewBox.
type svgChart struct {
	ID            string
	Title, Desc   string
	Width, Height int
	Bars          []svgBar
	Labels        []svgText // axis and category labels
	Empty         string    // shown instead of bars when there is nothing to draw
}

type svgBar struct {
	X, Y, W, H int
	Title      string // "<label>: <n> calls"
	Today      bool
}

type svgText struct {
	X, Y   int
	Text   string
	Anchor string // start, middle, end
}

// dailyChart lays out calls per UTC day for the chartDays days ending today.
func dailyChart(counters []*cosmos.UsageCounter, now time.Time) svgChart {
	today := now.UTC().Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -(chartDays - 1))
	perDay := make([]int64, chartDays)
	var total, peak int64
	for _, c := range counters {
		if c.Period != cosmos.PerDay {
			continue
		}
		i := int(time.Unix(c.Start, 0).UTC().Sub(first) / (24 * time.Hour))
		if i < 0 || i >= chartDays || c.Count <= 0 {
			continue
		}
		perDay[i] += c.Count
	}
	for _, n := range perDay {
		total += n
		peak = max(peak, n)
	}
	const w, h, left, right, top, bottom = 720, 200, 44, 8, 12, 26
	ch := svgChart{ID: "chart-daily", Width: w, Height: h, Title: "Tool calls per day, last 30 days",
		Desc: fmt.Sprintf("%d counted calls from %s to %s (UTC); the most in one day: %d.", total,
			first.Format("2 Jan"), today.Format("2 Jan 2006"), peak)}
	if total == 0 {
		ch.Empty = "No counted tool calls in the last 30 days."
		return ch
	}
	plotW, plotH := w-left-right, h-top-bottom
	slot := plotW / chartDays
	for i, n := range perDay {
		day := first.AddDate(0, 0, i)
		bh := int(n * int64(plotH) / peak)
		if n > 0 && bh == 0 {
			bh = 1
		}
		ch.Bars = append(ch.Bars, svgBar{X: left + i*slot + 2, Y: top + plotH - bh, W: slot - 4, H: bh, Today: i == chartDays-1,
			Title: day.Format("Mon 2 Jan") + ": " + plural(n, "call")})
		if i%7 == 1 || i == chartDays-1 {
			ch.Labels = append(ch.Labels, svgText{X: left + i*slot + slot/2, Y: h - 8, Text: day.Format("2 Jan"), Anchor: "middle"})
		}
	}
	ch.Labels = append(ch.Labels,
		svgText{X: left - 6, Y: top + 4, Text: strconv.FormatInt(peak, 10), Anchor: "end"},
		svgText{X: left - 6, Y: top + plotH, Text: "0", Anchor: "end"})
	return ch
}

// toolChart lays out today's calls by tool, most called first.
func toolChart(byTool map[string]int64, now time.Time) svgChart {
	type row struct {
		tool string
		n    int64
	}
	var rows []row
	var total, peak int64
	for tool, n := range byTool {
		if n > 0 {
			rows = append(rows, row{tool, n})
			total += n
			peak = max(peak, n)
		}
	}
	slices.SortFunc(rows, func(a, b row) int {
		if a.n != b.n {
			return int(b.n - a.n)
		}
		if a.tool < b.tool {
			return -1
		}
		return 1
	})
	const w, rowH, labelW, valueW = 720, 24, 250, 70
	ch := svgChart{ID: "chart-tools", Width: w, Title: "Today's tool calls by tool",
		Desc: fmt.Sprintf("%s of %d tools today (%s, UTC).", plural(total, "counted call"), len(rows), now.UTC().Format("2 Jan 2006"))}
	if total == 0 {
		ch.Height = rowH
		ch.Empty = "No counted tool calls today."
		return ch
	}
	ch.Height = len(rows)*rowH + 4
	plotW := w - labelW - valueW
	for i, r := range rows {
		y := i*rowH + 2
		bw := int(r.n * int64(plotW) / peak)
		if bw == 0 {
			bw = 1
		}
		ch.Bars = append(ch.Bars, svgBar{X: labelW, Y: y + 3, W: bw, H: rowH - 8, Title: r.tool + ": " + plural(r.n, "call")})
		ch.Labels = append(ch.Labels,
			svgText{X: labelW - 8, Y: y + rowH - 8, Text: r.tool, Anchor: "end"},
			svgText{X: labelW + bw + 6, Y: y + rowH - 8, Text: strconv.FormatInt(r.n, 10), Anchor: "start"})
	}
	return ch
}

func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.FormatInt(n, 10) + " " + word + "s"
}
