// Package telemetry counts what the people who run the server need to see: tool
// calls by tool and outcome, their latency and how many are in flight, upstream
// answers by host family and status, store operations by outcome, refresh-token
// redemptions and quota refusals. It only counts, in atomics laid out before the
// first call (a tool's counters are bound to its declaration when the catalog is
// built), so that counting costs a tools/call a few atomic adds and nothing else:
// no allocation, no map, no lock. Package otelexport reads the counters when a
// metrics reader collects (OpenTelemetry observable instruments, the Prometheus
// endpoint, OTLP); nothing here knows about exporters.
//
// No counter is keyed by anything a user chooses or by who a user is: label values
// come from fixed lists (outcomes, families, operations, plans) or from names the
// code declares (tools, store containers).
package telemetry

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Outcome is how a tool call ended.
type Outcome uint8

const (
	// OK is a result without isError.
	OK Outcome = iota
	// ToolError is an isError result from the tool: the upstream refused, not found,
	// a consent to give, and so on.
	ToolError
	// InvalidArguments is an isError result for arguments that do not fit the schema.
	InvalidArguments
	// Refused is an isError result before the tool ran: the plan, the quota or the
	// per-minute rate.
	Refused
	// InternalError is an isError result with a reference to the log.
	InternalError
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "tool_error", "invalid_arguments", "refused", "internal_error"}

func (o Outcome) String() string { return outcomeNames[o] }

// Outcomes lists every outcome, in order.
func Outcomes() []Outcome { return values(numOutcomes) }

// LatencyBounds are the upper bounds, in seconds, of the tool-call latency
// histogram's buckets (a last bucket holds the rest). They span a call answered
// from memory (a few ms) to one that waits out upstream retries (tens of seconds).
var LatencyBounds = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

const numBuckets = 14 // len(LatencyBounds) + 1

// latencyBoundsNS are LatencyBounds as durations, so that a call picks its bucket
// by comparing integers.
var latencyBoundsNS = func() [numBuckets - 1]time.Duration {
	var b [numBuckets - 1]time.Duration
	if len(LatencyBounds) != len(b) {
		panic("telemetry: numBuckets does not match LatencyBounds")
	}
	for i, s := range LatencyBounds {
		b[i] = time.Duration(s * float64(time.Second))
	}
	return b
}()

// Tool holds one tool's counters. Get it once with ToolFor, when the tool is
// declared; Start and Done are then all a call pays.
type Tool struct {
	name     string
	inFlight atomic.Int64
	calls    [numOutcomes]atomic.Uint64
	buckets  [numBuckets]atomic.Uint64
	sumNanos atomic.Uint64
}

// Name is the tool's name.
func (t *Tool) Name() string { return t.name }

// Start counts a call that began.
func (t *Tool) Start() { t.inFlight.Add(1) }

// Done counts a call that ended, with its outcome and latency.
func (t *Tool) Done(o Outcome, latency time.Duration) {
	t.inFlight.Add(-1)
	if o >= numOutcomes {
		o = InternalError
	}
	t.calls[o].Add(1)
	if latency < 0 {
		latency = 0
	}
	b := 0
	for b < len(latencyBoundsNS) && latency > latencyBoundsNS[b] {
		b++
	}
	t.buckets[b].Add(1)
	t.sumNanos.Add(uint64(latency))
}

// InFlight is how many calls of the tool run now.
func (t *Tool) InFlight() int64 { return t.inFlight.Load() }

// Calls is how many calls ended with outcome o.
func (t *Tool) Calls(o Outcome) uint64 { return t.calls[o].Load() }

// Latency is a snapshot of the latency histogram: the count per bucket (one more
// than LatencyBounds), the number of calls and their summed latency in seconds.
func (t *Tool) Latency() (buckets []uint64, count uint64, sumSeconds float64) {
	buckets = make([]uint64, numBuckets)
	for i := range buckets {
		buckets[i] = t.buckets[i].Load()
		count += buckets[i]
	}
	return buckets, count, float64(t.sumNanos.Load()) / 1e9
}

var (
	toolsMu sync.Mutex
	tools   = map[string]*Tool{}
)

// ToolFor returns the counters of the named tool, creating them on first use. The
// catalog calls it once per declared tool, so a name here is always a declared
// tool's: never a name a client sent.
func ToolFor(name string) *Tool {
	toolsMu.Lock()
	defer toolsMu.Unlock()
	t := tools[name]
	if t == nil {
		t = &Tool{name: name}
		tools[name] = t
	}
	return t
}

// Tools returns every tool's counters, by name.
func Tools() []*Tool {
	toolsMu.Lock()
	out := make([]*Tool, 0, len(tools))
	for _, t := range tools {
		out = append(out, t)
	}
	toolsMu.Unlock()
	slices.SortFunc(out, func(a, b *Tool) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	return out
}
