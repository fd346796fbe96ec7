package otlp

import (
	"math"
	"testing"
	"time"

	"github.com/flowstudio/mcp/server/telemetry/otelexport/metricdata"
	"github.com/google/go-cmp/cmp"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

func kv(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// What AppendRequest writes decodes with the official OTLP types into exactly
// the request the collection describes: every field, zero values included.
func TestRequestDecodesWithTheOfficialTypes(t *testing.T) {
	start := time.Unix(1700000000, 123)
	now := start.Add(90 * time.Second)
	bounds := []float64{0.005, 0.5, 60}
	c := &metricdata.Collection{
		Resource:  []metricdata.Attr{{Key: "service.name", Value: "flowstudio-mcp"}, {Key: "service.version", Value: "1.2.3"}},
		SchemaURL: "https://opentelemetry.io/schemas/1.43.0",
		Scopes: []metricdata.Scope{
			{Name: "scope.a", Metrics: []metricdata.Metric{
				{Name: "calls", Description: "Calls.", Unit: "{call}", Kind: metricdata.Sum, Monotonic: true, Points: []metricdata.Point{
					{Attrs: []metricdata.Attr{{Key: "outcome", Value: "ok"}, {Key: "tool", Value: "t"}}, Int: 7},
					{Attrs: []metricdata.Attr{{Key: "outcome", Value: "refused"}, {Key: "tool", Value: "t"}}, Int: 0},
				}},
				{Name: "in_flight", Unit: "{call}", Kind: metricdata.Sum, Points: []metricdata.Point{{Int: -2}}},
				{Name: "uptime", Description: "Up.", Unit: "s", Kind: metricdata.Gauge, Points: []metricdata.Point{{Float: 12.5, IsFloat: true}}},
				{Name: "rss", Unit: "By", Kind: metricdata.Gauge, Points: []metricdata.Point{{Int: math.MaxInt64}}},
				{Name: "duration", Unit: "s", Kind: metricdata.Histogram, Points: []metricdata.Point{
					{Attrs: []metricdata.Attr{{Key: "tool", Value: "t"}}, Hist: &metricdata.HistogramValue{Bounds: bounds, Counts: []uint64{1, 0, 2, 3}, Count: 6, Sum: 0}},
				}},
			}},
			{Name: "scope.b", Version: "0.72.0", Metrics: []metricdata.Metric{
				{Name: "empty", Kind: metricdata.Sum, Monotonic: true},
			}},
		},
		Start: start, Time: now,
	}
	b := AppendRequest([]byte("prefix"), c)
	if string(b[:6]) != "prefix" {
		t.Fatal("AppendRequest does not append")
	}
	var got colmetricpb.ExportMetricsServiceRequest
	if err := proto.Unmarshal(b[6:], &got); err != nil {
		t.Fatal(err)
	}
	s, n := uint64(start.UnixNano()), uint64(now.UnixNano())
	cumulative := metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
	sum := 0.0
	want := &colmetricpb.ExportMetricsServiceRequest{ResourceMetrics: []*metricpb.ResourceMetrics{{
		Resource:  &resourcepb.Resource{Attributes: []*commonpb.KeyValue{kv("service.name", "flowstudio-mcp"), kv("service.version", "1.2.3")}},
		SchemaUrl: c.SchemaURL,
		ScopeMetrics: []*metricpb.ScopeMetrics{
			{Scope: &commonpb.InstrumentationScope{Name: "scope.a"}, Metrics: []*metricpb.Metric{
				{Name: "calls", Description: "Calls.", Unit: "{call}", Data: &metricpb.Metric_Sum{Sum: &metricpb.Sum{
					AggregationTemporality: cumulative, IsMonotonic: true, DataPoints: []*metricpb.NumberDataPoint{
						{Attributes: []*commonpb.KeyValue{kv("outcome", "ok"), kv("tool", "t")}, StartTimeUnixNano: s, TimeUnixNano: n, Value: &metricpb.NumberDataPoint_AsInt{AsInt: 7}},
						{Attributes: []*commonpb.KeyValue{kv("outcome", "refused"), kv("tool", "t")}, StartTimeUnixNano: s, TimeUnixNano: n, Value: &metricpb.NumberDataPoint_AsInt{AsInt: 0}},
					}}}},
				{Name: "in_flight", Unit: "{call}", Data: &metricpb.Metric_Sum{Sum: &metricpb.Sum{
					AggregationTemporality: cumulative, DataPoints: []*metricpb.NumberDataPoint{
						{StartTimeUnixNano: s, TimeUnixNano: n, Value: &metricpb.NumberDataPoint_AsInt{AsInt: -2}},
					}}}},
				{Name: "uptime", Description: "Up.", Unit: "s", Data: &metricpb.Metric_Gauge{Gauge: &metricpb.Gauge{DataPoints: []*metricpb.NumberDataPoint{
					{TimeUnixNano: n, Value: &metricpb.NumberDataPoint_AsDouble{AsDouble: 12.5}},
				}}}},
				{Name: "rss", Unit: "By", Data: &metricpb.Metric_Gauge{Gauge: &metricpb.Gauge{DataPoints: []*metricpb.NumberDataPoint{
					{TimeUnixNano: n, Value: &metricpb.NumberDataPoint_AsInt{AsInt: math.MaxInt64}},
				}}}},
				{Name: "duration", Unit: "s", Data: &metricpb.Metric_Histogram{Histogram: &metricpb.Histogram{
					AggregationTemporality: cumulative, DataPoints: []*metricpb.HistogramDataPoint{{
						Attributes: []*commonpb.KeyValue{kv("tool", "t")}, StartTimeUnixNano: s, TimeUnixNano: n,
						Count: 6, Sum: &sum, BucketCounts: []uint64{1, 0, 2, 3}, ExplicitBounds: bounds,
					}}}}},
			}},
			{Scope: &commonpb.InstrumentationScope{Name: "scope.b", Version: "0.72.0"}, Metrics: []*metricpb.Metric{
				{Name: "empty", Data: &metricpb.Metric_Sum{Sum: &metricpb.Sum{AggregationTemporality: cumulative, IsMonotonic: true}}},
			}},
		},
	}}}
	if diff := cmp.Diff(want, &got, protocmp.Transform()); diff != "" {
		t.Errorf("decoded request (-want +got):\n%s", diff)
	}
}

// The decoder the client uses for answers reads what the official types write,
// and refuses truncated input instead of reading past it.
func TestPartialSuccessAndTruncation(t *testing.T) {
	b, _ := proto.Marshal(&colmetricpb.ExportMetricsServiceResponse{PartialSuccess: &colmetricpb.ExportMetricsPartialSuccess{
		RejectedDataPoints: 3, ErrorMessage: "bad unit"}})
	err := partialSuccess(b)
	p, ok := err.(*PartialSuccess)
	if !ok || p.Rejected != 3 || p.Message != "bad unit" {
		t.Fatalf("partial success: %v", err)
	}
	empty, _ := proto.Marshal(&colmetricpb.ExportMetricsServiceResponse{})
	if partialSuccess(empty) != nil || partialSuccess(nil) != nil {
		t.Error("an empty response is a full success")
	}
	// b is one field (partial_success): every shorter prefix cuts it.
	for i := 1; i < len(b); i++ {
		if err := fields(b[:i], func(field) error { return nil }); err == nil {
			t.Errorf("a prefix of %d of %d bytes decodes", i, len(b))
		}
	}
	if err := fields([]byte{0x0a, 0x05, 'a'}, func(field) error { return nil }); err == nil {
		t.Error("a length past the end is accepted")
	}
	if err := fields([]byte{0x0b}, func(field) error { return nil }); err == nil {
		t.Error("a group is accepted")
	}
}
