package promtext

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/server/telemetry/otelexport/metricdata"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/otlptranslator"
)

// The names are those OpenTelemetry's Prometheus exporter gave with
// otlptranslator.UnderscoreEscapingWithSuffixes, the strategy the server used.
func TestNamesMatchTheExporter(t *testing.T) {
	namer := otlptranslator.NewMetricNamer("", otlptranslator.UnderscoreEscapingWithSuffixes)
	for _, c := range []struct {
		name, unit string
		kind       metricdata.Kind
		monotonic  bool
		want       string
	}{
		{"flowstudio.tool.calls", "{call}", metricdata.Sum, true, "flowstudio_tool_calls_total"},
		{"flowstudio.tool.calls.in_flight", "{call}", metricdata.Sum, false, "flowstudio_tool_calls_in_flight"},
		{"flowstudio.tool.call.duration", "s", metricdata.Histogram, false, "flowstudio_tool_call_duration_seconds"},
		{"process.memory.usage", "By", metricdata.Gauge, false, "process_memory_usage_bytes"},
		{"go.config.gogc", "%", metricdata.Sum, false, "go_config_gogc_percent"},
		{"go.memory.allocated", "By", metricdata.Sum, true, "go_memory_allocated_bytes_total"},
		{"requests.total", "{request}", metricdata.Sum, true, "requests_total"},
		{"latency.seconds", "s", metricdata.Gauge, false, "latency_seconds"},
		{"cpu.utilization", "1", metricdata.Gauge, false, "cpu_utilization_ratio"},
		{"size", "KiBy", metricdata.Sum, true, "size_kibibytes_total"},
		{"9lives", "", metricdata.Gauge, false, "_9lives"},
		{"odd..name--x", "furlongs", metricdata.Gauge, false, "odd_name_x_furlongs"},
	} {
		got := MetricName(c.name, c.unit, c.kind, c.monotonic)
		var typ otlptranslator.MetricType = otlptranslator.MetricTypeGauge
		switch {
		case c.kind == metricdata.Histogram:
			typ = otlptranslator.MetricTypeHistogram
		case c.kind == metricdata.Sum && c.monotonic:
			typ = otlptranslator.MetricTypeMonotonicCounter
		case c.kind == metricdata.Sum:
			typ = otlptranslator.MetricTypeNonMonotonicCounter
		}
		lib, err := namer.Build(otlptranslator.Metric{Name: c.name, Unit: c.unit, Type: typ})
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want || got != lib {
			t.Errorf("%s (%s): %q, want %q (otlptranslator %q)", c.name, c.unit, got, c.want, lib)
		}
	}
	labels := otlptranslator.LabelNamer{}
	for _, key := range []string{"go.memory.type", "service.instance.id", "a..b", "__reserved__", "_private", "9th",
		"k8s.pod.name", "ünïcode.key", "with-dash", "UPPER.case", "a__b"} {
		want, err := labels.Build(key)
		if err != nil {
			t.Fatal(err)
		}
		if got := LabelName(key); got != want {
			t.Errorf("label %q: %q, otlptranslator %q", key, got, want)
		}
	}
	if LabelName("...") != "" || LabelName("") != "" {
		t.Error("a key that leaves no name is dropped")
	}
}

func parse(t *testing.T, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("not the Prometheus text format: %v\n%s", err, body)
	}
	return families
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// Label values and HELP texts with the characters the format escapes come back
// from Prometheus's own parser exactly as they went in.
func TestEscaping(t *testing.T) {
	values := []string{`back\slash`, `"quoted"`, "line\nfeed", `all "three" \ at
once`, "ünïcode ✓", `trailing\`, ""}
	m := metricdata.Metric{Name: "escape.test", Kind: metricdata.Sum, Monotonic: true,
		Description: "Help with a \\ backslash and a\nline feed, and \"quotes\"."}
	for i, v := range values {
		m.Points = append(m.Points, metricdata.Point{Attrs: []metricdata.Attr{{Key: "v", Value: v}, {Key: "i", Value: string(rune('a' + i))}}, Int: int64(i)})
	}
	body := Append(nil, &metricdata.Collection{Scopes: []metricdata.Scope{{Metrics: []metricdata.Metric{m}}}})
	f := parse(t, body)["escape_test_total"]
	if f == nil || f.GetType() != dto.MetricType_COUNTER {
		t.Fatalf("no counter escape_test_total:\n%s", body)
	}
	if f.GetHelp() != m.Description {
		t.Errorf("help %q, want %q", f.GetHelp(), m.Description)
	}
	got := map[string]string{}
	for _, s := range f.GetMetric() {
		l := labelMap(s)
		got[l["i"]] = l["v"]
	}
	for i, v := range values {
		if g, ok := got[string(rune('a'+i))]; !ok || g != v {
			t.Errorf("value %q came back as %q", v, g)
		}
	}
	// Invalid UTF-8 becomes U+FFFD: the format is UTF-8.
	bad := metricdata.Metric{Name: "bad", Kind: metricdata.Gauge, Points: []metricdata.Point{{Attrs: []metricdata.Attr{{Key: "v", Value: "a\xffb"}}, Int: 1}}}
	f = parse(t, Append(nil, &metricdata.Collection{Scopes: []metricdata.Scope{{Metrics: []metricdata.Metric{bad}}}}))["bad"]
	if v := labelMap(f.GetMetric()[0])["v"]; v != "a\uFFFDb" {
		t.Errorf("invalid UTF-8: %q", v)
	}
}

// A histogram's buckets are cumulative, end with +Inf equal to the count, and
// come with _sum and _count.
func TestHistogramBucketsAreCumulative(t *testing.T) {
	bounds := []float64{0.005, 0.01, 0.5, 2.5, 60}
	counts := []uint64{3, 0, 5, 1, 0, 2} // per bucket; the last is above 60
	var total uint64
	for _, n := range counts {
		total += n
	}
	h := metricdata.Metric{Name: "call.duration", Unit: "s", Kind: metricdata.Histogram, Description: "d",
		Points: []metricdata.Point{
			{Attrs: []metricdata.Attr{{Key: "tool", Value: "b"}}, Hist: &metricdata.HistogramValue{Bounds: bounds, Counts: counts, Count: total, Sum: 200.125}},
			{Attrs: []metricdata.Attr{{Key: "tool", Value: "a"}}, Hist: &metricdata.HistogramValue{Bounds: bounds, Counts: make([]uint64, 6)}},
		}}
	body := Append(nil, &metricdata.Collection{Scopes: []metricdata.Scope{{Metrics: []metricdata.Metric{h}}}})
	if !strings.Contains(string(body), `call_duration_seconds_bucket{tool="b",le="+Inf"} 11`+"\n") ||
		!strings.Contains(string(body), `call_duration_seconds_bucket{tool="b",le="0.005"} 3`+"\n") {
		t.Errorf("bucket lines:\n%s", body)
	}
	if strings.Index(string(body), `tool="a"`) > strings.Index(string(body), `tool="b"`) {
		t.Errorf("series are not sorted by label value:\n%s", body)
	}
	f := parse(t, body)["call_duration_seconds"]
	if f.GetType() != dto.MetricType_HISTOGRAM || len(f.GetMetric()) != 2 {
		t.Fatalf("family %v", f)
	}
	for _, s := range f.GetMetric() {
		if labelMap(s)["tool"] != "b" {
			continue
		}
		hist := s.GetHistogram()
		if hist.GetSampleCount() != total || hist.GetSampleSum() != 200.125 {
			t.Errorf("count %d sum %v", hist.GetSampleCount(), hist.GetSampleSum())
		}
		want := []uint64{3, 3, 8, 9, 9}
		buckets := hist.GetBucket()
		if len(buckets) != len(bounds) && !(len(buckets) == len(bounds)+1 && math.IsInf(buckets[len(buckets)-1].GetUpperBound(), 1)) {
			t.Fatalf("%d buckets", len(buckets))
		}
		for i, b := range buckets[:len(bounds)] {
			if b.GetUpperBound() != bounds[i] || b.GetCumulativeCount() != want[i] {
				t.Errorf("bucket %d: le=%v %d, want le=%v %d", i, b.GetUpperBound(), b.GetCumulativeCount(), bounds[i], want[i])
			}
		}
	}
}

// The resource is target_info; keys that sanitise to one label share it, their
// values joined by ";" in order, as the exporter did. Families come out sorted
// and the output is the same bytes for the same counts.
func TestTargetInfoAndOrder(t *testing.T) {
	c := &metricdata.Collection{
		Resource: []metricdata.Attr{{Key: "service.name", Value: "svc"}, {Key: "a.b", Value: "2"}, {Key: "a_b", Value: "1"}},
		Scopes: []metricdata.Scope{
			{Metrics: []metricdata.Metric{{Name: "zeta", Kind: metricdata.Gauge, Points: []metricdata.Point{{Float: math.Inf(1), IsFloat: true}}}}},
			{Metrics: []metricdata.Metric{
				{Name: "alpha", Kind: metricdata.Sum, Points: []metricdata.Point{{Int: -3}}},
				{Name: "empty", Kind: metricdata.Sum, Monotonic: true},
				{Name: "small", Kind: metricdata.Gauge, Points: []metricdata.Point{{Float: 1.5e-7, IsFloat: true}}},
			}},
		},
		Time: time.Now(),
	}
	body := string(Append(nil, c))
	if body != string(Append(nil, c)) {
		t.Fatal("two writes of the same collection differ")
	}
	want := "# TYPE alpha gauge\nalpha -3\n# TYPE small gauge\nsmall 1.5e-07\n" +
		"# HELP target_info Target metadata\n# TYPE target_info gauge\ntarget_info{a_b=\"1;2\",service_name=\"svc\"} 1\n" +
		"# TYPE zeta gauge\nzeta +Inf\n"
	if body != want {
		t.Errorf("got:\n%s\nwant:\n%s", body, want)
	}
	f := parse(t, []byte(body))
	if f["empty_total"] != nil {
		t.Error("a metric without points has no family")
	}
	if v := labelMap(f["target_info"].GetMetric()[0])["a_b"]; v != "1;2" {
		t.Errorf("merged label %q", v)
	}
}
