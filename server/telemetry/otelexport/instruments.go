package otelexport

import (
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/flowstudio/mcp/server/telemetry"
	"github.com/flowstudio/mcp/server/telemetry/otelexport/metricdata"
)

// The server's metric names (OpenTelemetry style; the Prometheus endpoint shows them
// with underscores, unit and _total suffixes: flowstudio_tool_calls_total, ...).
const (
	MetricToolCalls         = "flowstudio.tool.calls"
	MetricToolCallsInFlight = "flowstudio.tool.calls.in_flight"
	MetricToolCallDuration  = "flowstudio.tool.call.duration"
	MetricUpstreamResponses = "flowstudio.upstream.responses"
	MetricStoreOperations   = "flowstudio.store.operations"
	MetricTokenRedemptions  = "flowstudio.token.redemptions"
	MetricQuotaRefusals     = "flowstudio.quota.refusals"
	MetricProcessMemory     = "process.memory.usage"
	MetricProcessUptime     = "process.uptime"
)

// Label keys. None of them ever holds a user, tenant, key, environment or flow.
const (
	LabelTool      = "tool"
	LabelOutcome   = "outcome"
	LabelFamily    = "family"
	LabelStatus    = "status"
	LabelContainer = "container"
	LabelOperation = "operation"
	LabelReason    = "reason"
	LabelPlan      = "plan"
)

// processStart approximates the process start: package variables are set before
// main runs, a few milliseconds after exec. The server's counters count from it.
var processStart = time.Now()

func attrs(kv ...string) []metricdata.Attr {
	out := make([]metricdata.Attr, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, metricdata.Attr{Key: kv[i], Value: kv[i+1]})
	}
	return out
}

func counterMetric(name, unit, description string) metricdata.Metric {
	return metricdata.Metric{Name: name, Unit: unit, Description: description, Kind: metricdata.Sum, Monotonic: true}
}

func count(n uint64) int64 { return int64(min(n, 1<<63-1)) }

// serverMetrics reads package telemetry's counters, the process's memory and uptime.
func serverMetrics(now time.Time) []metricdata.Metric {
	tools := telemetry.Tools()
	calls := counterMetric(MetricToolCalls, "{call}", "Tool calls (tools/call of a declared tool) that ended, by tool and outcome.")
	inFlight := metricdata.Metric{Name: MetricToolCallsInFlight, Unit: "{call}", Kind: metricdata.Sum,
		Description: "Tool calls running now, by tool."}
	duration := metricdata.Metric{Name: MetricToolCallDuration, Unit: "s", Kind: metricdata.Histogram,
		Description: "Tool call latency, from the call's arrival to its result, by tool."}
	for _, t := range tools {
		inFlight.Points = append(inFlight.Points, metricdata.Point{Attrs: attrs(LabelTool, t.Name()), Int: t.InFlight()})
		for _, oc := range telemetry.Outcomes() {
			calls.Points = append(calls.Points, metricdata.Point{Attrs: attrs(LabelOutcome, oc.String(), LabelTool, t.Name()),
				Int: count(t.Calls(oc))})
		}
		buckets, n, sum := t.Latency()
		duration.Points = append(duration.Points, metricdata.Point{Attrs: attrs(LabelTool, t.Name()),
			Hist: &metricdata.HistogramValue{Bounds: telemetry.LatencyBounds, Counts: buckets, Count: n, Sum: sum}})
	}
	upstream := counterMetric(MetricUpstreamResponses, "{response}",
		"Upstream HTTP answers (every attempt), by host family and status; status \"none\" is a request that got no answer.")
	telemetry.UpstreamAnswers(func(f telemetry.Family, status int, n uint64) {
		upstream.Points = append(upstream.Points, metricdata.Point{
			Attrs: attrs(LabelFamily, f.String(), LabelStatus, telemetry.StatusLabel(status)), Int: count(n)})
	})
	store := counterMetric(MetricStoreOperations, "{operation}",
		"Store operations, by container, operation and outcome (ok, not_found, conflict, error).")
	telemetry.StoreOps(func(container string, op telemetry.StoreOp, oc telemetry.StoreOutcome, n uint64) {
		store.Points = append(store.Points, metricdata.Point{
			Attrs: attrs(LabelContainer, container, LabelOperation, op.String(), LabelOutcome, oc.String()), Int: count(n)})
	})
	tokens := counterMetric(MetricTokenRedemptions, "{redemption}",
		"Refresh-token redemptions for an access token not in memory, by outcome.")
	telemetry.TokenRedemptions(func(r telemetry.Redemption, n uint64) {
		tokens.Points = append(tokens.Points, metricdata.Point{Attrs: attrs(LabelOutcome, r.String()), Int: count(n)})
	})
	refusals := counterMetric(MetricQuotaRefusals, "{call}",
		"Calls refused for a limit (daily or minute quota, meta rate, uncounted usage, requests in flight, bug reports), by reason and plan.")
	telemetry.QuotaRefusals(func(r telemetry.Refusal, plan string, n uint64) {
		refusals.Points = append(refusals.Points, metricdata.Point{Attrs: attrs(LabelPlan, plan, LabelReason, r.String()), Int: count(n)})
	})
	rss := metricdata.Metric{Name: MetricProcessMemory, Unit: "By", Kind: metricdata.Gauge,
		Description: "Resident memory of the process."}
	if b, ok := residentBytes(); ok {
		rss.Points = []metricdata.Point{{Int: count(b)}}
	}
	uptime := metricdata.Metric{Name: MetricProcessUptime, Unit: "s", Kind: metricdata.Gauge,
		Description: "Seconds since the process started.",
		Points:      []metricdata.Point{{Float: now.Sub(processStart).Seconds(), IsFloat: true}}}
	return []metricdata.Metric{calls, inFlight, upstream, store, tokens, refusals, rss, uptime, duration}
}

// residentBytes reads the resident set size from /proc/self/statm (pages), else
// VmRSS in /proc/self/status (kB); false where neither is readable (not Linux).
func residentBytes() (uint64, bool) {
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 2 {
			if pages, err := strconv.ParseUint(f[1], 10, 64); err == nil && pages > 0 {
				return pages * uint64(os.Getpagesize()), true
			}
		}
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			if kb, err := strconv.ParseUint(f[1], 10, 64); err == nil && kb > 0 {
				return kb * 1024, true
			}
		}
	}
	return 0, false
}
