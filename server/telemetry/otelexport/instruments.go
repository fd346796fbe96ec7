package otelexport

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/flowstudio/mcp/server/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
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
// main runs, a few milliseconds after exec.
var processStart = time.Now()

// register declares the observable instruments over telemetry's counters.
func register(m metric.Meter) error {
	calls, err := m.Int64ObservableCounter(MetricToolCalls, metric.WithUnit("{call}"),
		metric.WithDescription("Tool calls (tools/call of a declared tool) that ended, by tool and outcome."))
	if err != nil {
		return err
	}
	inFlight, err := m.Int64ObservableUpDownCounter(MetricToolCallsInFlight, metric.WithUnit("{call}"),
		metric.WithDescription("Tool calls running now, by tool."))
	if err != nil {
		return err
	}
	upstream, err := m.Int64ObservableCounter(MetricUpstreamResponses, metric.WithUnit("{response}"),
		metric.WithDescription("Upstream HTTP answers (every attempt), by host family and status; status \"none\" is a request that got no answer."))
	if err != nil {
		return err
	}
	store, err := m.Int64ObservableCounter(MetricStoreOperations, metric.WithUnit("{operation}"),
		metric.WithDescription("Store operations, by container, operation and outcome (ok, not_found, conflict, error)."))
	if err != nil {
		return err
	}
	tokens, err := m.Int64ObservableCounter(MetricTokenRedemptions, metric.WithUnit("{redemption}"),
		metric.WithDescription("Refresh-token redemptions for an access token not in memory, by outcome."))
	if err != nil {
		return err
	}
	refusals, err := m.Int64ObservableCounter(MetricQuotaRefusals, metric.WithUnit("{call}"),
		metric.WithDescription("Calls refused for a limit (daily or minute quota, meta rate, uncounted usage, requests in flight, bug reports), by reason and plan."))
	if err != nil {
		return err
	}
	rss, err := m.Int64ObservableGauge(MetricProcessMemory, metric.WithUnit("By"),
		metric.WithDescription("Resident memory of the process."))
	if err != nil {
		return err
	}
	uptime, err := m.Float64ObservableGauge(MetricProcessUptime, metric.WithUnit("s"),
		metric.WithDescription("Seconds since the process started."))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, t := range telemetry.Tools() {
			tool := attribute.String(LabelTool, t.Name())
			o.ObserveInt64(inFlight, t.InFlight(), metric.WithAttributes(tool))
			for _, oc := range telemetry.Outcomes() {
				o.ObserveInt64(calls, int64(t.Calls(oc)), metric.WithAttributes(tool, attribute.String(LabelOutcome, oc.String())))
			}
		}
		telemetry.UpstreamAnswers(func(f telemetry.Family, status int, n uint64) {
			o.ObserveInt64(upstream, int64(n), metric.WithAttributes(attribute.String(LabelFamily, f.String()),
				attribute.String(LabelStatus, telemetry.StatusLabel(status))))
		})
		telemetry.StoreOps(func(container string, op telemetry.StoreOp, oc telemetry.StoreOutcome, n uint64) {
			o.ObserveInt64(store, int64(n), metric.WithAttributes(attribute.String(LabelContainer, container),
				attribute.String(LabelOperation, op.String()), attribute.String(LabelOutcome, oc.String())))
		})
		telemetry.TokenRedemptions(func(r telemetry.Redemption, n uint64) {
			o.ObserveInt64(tokens, int64(n), metric.WithAttributes(attribute.String(LabelOutcome, r.String())))
		})
		telemetry.QuotaRefusals(func(r telemetry.Refusal, plan string, n uint64) {
			o.ObserveInt64(refusals, int64(n), metric.WithAttributes(attribute.String(LabelReason, r.String()),
				attribute.String(LabelPlan, plan)))
		})
		if b, ok := residentBytes(); ok {
			o.ObserveInt64(rss, int64(b))
		}
		o.ObserveFloat64(uptime, time.Since(processStart).Seconds())
		return nil
	}, calls, inFlight, upstream, store, tokens, refusals, rss, uptime)
	if err != nil {
		return fmt.Errorf("metrics callback: %w", err)
	}
	return nil
}

// latencyProducer hands the tool-call latency histograms to the readers at each
// collection: OpenTelemetry has no observable histogram, and recording into a
// synchronous one would put the SDK on every call.
type latencyProducer struct{ start time.Time }

func (p latencyProducer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	now := time.Now()
	tools := telemetry.Tools()
	points := make([]metricdata.HistogramDataPoint[float64], 0, len(tools))
	for _, t := range tools {
		buckets, count, sum := t.Latency()
		points = append(points, metricdata.HistogramDataPoint[float64]{
			Attributes:   attribute.NewSet(attribute.String(LabelTool, t.Name())),
			StartTime:    p.start,
			Time:         now,
			Count:        count,
			Bounds:       telemetry.LatencyBounds,
			BucketCounts: buckets,
			Sum:          sum,
		})
	}
	return []metricdata.ScopeMetrics{{
		Scope: instrumentation.Scope{Name: ScopeName},
		Metrics: []metricdata.Metrics{{
			Name:        MetricToolCallDuration,
			Description: "Tool call latency, from the call's arrival to its result, by tool.",
			Unit:        "s",
			Data:        metricdata.Histogram[float64]{DataPoints: points, Temporality: metricdata.CumulativeTemporality},
		}},
	}}, nil
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
