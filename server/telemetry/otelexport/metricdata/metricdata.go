// Package metricdata is one collection of the server's metrics as the two
// publishers read it: the OTLP encoder (package otlp) and the Prometheus text
// writer (package promtext). It models only what the server publishes: string
// attributes, gauges, cumulative sums and explicit-bucket histograms.
package metricdata

import "time"

// Attr is an attribute (a label): key and string value.
type Attr struct{ Key, Value string }

// Kind is the OpenTelemetry data type of a metric.
type Kind uint8

const (
	// Gauge is a value sampled now (an observable gauge).
	Gauge Kind = iota
	// Sum is a cumulative sum since Collection.Start: a counter when Monotonic,
	// an up-down counter otherwise (which Prometheus shows as a gauge).
	Sum
	// Histogram is a cumulative explicit-bucket histogram.
	Histogram
)

// Point is one series' value: Int, or Float when IsFloat; a Histogram's in Hist.
type Point struct {
	Attrs   []Attr
	Int     int64
	Float   float64
	IsFloat bool
	Hist    *HistogramValue
}

// HistogramValue is an explicit-bucket histogram: Counts[i] counts the values
// in (Bounds[i-1], Bounds[i]], the last one those above every bound, so
// len(Counts) == len(Bounds)+1 and Count is their sum.
type HistogramValue struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// Metric is one named metric and its series.
type Metric struct {
	Name        string // OpenTelemetry's dotted name
	Description string
	Unit        string // UCUM, as OpenTelemetry writes it: "s", "By", "{call}"
	Kind        Kind
	Monotonic   bool // Sum only
	Points      []Point
}

// Scope is an instrumentation scope and the metrics it produced.
type Scope struct {
	Name, Version string
	Metrics       []Metric
}

// Collection is everything one collection read.
type Collection struct {
	Resource  []Attr // who reports: service.name, service.instance.id, ...
	SchemaURL string // the semantic conventions the names follow
	Scopes    []Scope
	// Start is when the cumulative sums and histograms started counting;
	// Time is when they were read.
	Start, Time time.Time
}
