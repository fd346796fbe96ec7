package otelexport

import (
	"math"
	"runtime/metrics"
	"sync"

	"github.com/flowstudio/mcp/server/telemetry/otelexport/metricdata"
)

// The Go runtime's metrics, as OpenTelemetry's semantic conventions (v1.43)
// name them and as the contrib runtime instrumentation reported them before this
// package read runtime/metrics itself: same names, units, descriptions, kinds
// and attributes. They keep that instrumentation's scope, which is part of a
// metric's identity in OpenTelemetry, so that stores keying series by scope see
// the same series.
const (
	RuntimeScopeName    = "go.opentelemetry.io/contrib/instrumentation/runtime"
	RuntimeScopeVersion = "0.72.0"
)

// The runtime/metrics samples read at each collection.
const (
	rtTotal       = "/memory/classes/total:bytes"
	rtReleased    = "/memory/classes/heap/released:bytes"
	rtStacks      = "/memory/classes/heap/stacks:bytes"
	rtLimit       = "/gc/gomemlimit:bytes"
	rtAllocated   = "/gc/heap/allocs:bytes"
	rtAllocations = "/gc/heap/allocs:objects"
	rtGoal        = "/gc/heap/goal:bytes"
	rtGoroutines  = "/sched/goroutines:goroutines"
	rtMaxProcs    = "/sched/gomaxprocs:threads"
	rtGOGC        = "/gc/gogc:percent"
)

var (
	runtimeMu      sync.Mutex
	runtimeSamples = func() []metrics.Sample {
		names := []string{rtTotal, rtReleased, rtStacks, rtLimit, rtAllocated, rtAllocations, rtGoal, rtGoroutines, rtMaxProcs, rtGOGC}
		s := make([]metrics.Sample, len(names))
		for i, n := range names {
			s[i].Name = n
		}
		return s
	}()
)

// runtimeMetrics reads the Go runtime's figures.
func runtimeMetrics() []metricdata.Metric {
	runtimeMu.Lock()
	metrics.Read(runtimeSamples)
	values := make(map[string]int64, len(runtimeSamples))
	for _, s := range runtimeSamples {
		if s.Value.Kind() == metrics.KindUint64 {
			values[s.Name] = int64(min(s.Value.Uint64(), math.MaxInt64))
		}
	}
	runtimeMu.Unlock()

	upDown := func(name, unit, description string, v int64) metricdata.Metric {
		return metricdata.Metric{Name: name, Unit: unit, Description: description, Kind: metricdata.Sum,
			Points: []metricdata.Point{{Int: v}}}
	}
	stacks := values[rtStacks]
	used := upDown("go.memory.used", "By", "Memory used by the Go runtime.", 0)
	used.Points = []metricdata.Point{
		{Attrs: []metricdata.Attr{{Key: "go.memory.type", Value: "stack"}}, Int: stacks},
		{Attrs: []metricdata.Attr{{Key: "go.memory.type", Value: "other"}}, Int: values[rtTotal] - values[rtReleased] - stacks},
	}
	out := []metricdata.Metric{used}
	// The limit is reported only when one is set (GOMEMLIMIT or debug.SetMemoryLimit).
	if limit, ok := values[rtLimit]; ok && limit != math.MaxInt64 {
		out = append(out, upDown("go.memory.limit", "By", "Go runtime memory limit configured by the user, if a limit exists.", limit))
	}
	allocated := upDown("go.memory.allocated", "By", "Memory allocated to the heap by the application.", values[rtAllocated])
	allocated.Monotonic = true
	allocations := upDown("go.memory.allocations", "{allocation}", "Count of allocations to the heap by the application.", values[rtAllocations])
	allocations.Monotonic = true
	return append(out, allocated, allocations,
		upDown("go.memory.gc.goal", "By", "Heap size target for the end of the GC cycle.", values[rtGoal]),
		upDown("go.goroutine.count", "{goroutine}", "Count of live goroutines.", values[rtGoroutines]),
		upDown("go.processor.limit", "{thread}", "The number of OS threads that can execute user-level Go code simultaneously.", values[rtMaxProcs]),
		upDown("go.config.gogc", "%", "Heap size target percentage configured by the user, otherwise 100.", values[rtGOGC]),
	)
}
