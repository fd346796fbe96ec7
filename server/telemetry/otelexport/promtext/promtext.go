// Package promtext writes a metricdata.Collection in the Prometheus text
// exposition format 0.0.4: HELP and TYPE lines, escaped label values, histograms
// as cumulative _bucket series with an le label up to +Inf, then _sum and _count.
// Names follow OpenTelemetry's Prometheus exporter with underscore escaping and
// suffixes: dots become underscores, the unit is appended (bytes, seconds,
// percent; a {curly} unit is dropped) and a counter ends in _total. The resource
// is the target_info series. Families and series come out sorted, so two scrapes
// of the same counts are the same bytes.
package promtext

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/flowstudio/mcp/server/telemetry/otelexport/metricdata"
)

// ContentType is the Content-Type of the exposition: the text format, with
// names escaped to underscores.
const ContentType = "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"

// TargetInfo is the name of the series that carries the resource attributes.
const TargetInfo = "target_info"

// units are the Prometheus suffixes of the UCUM units OpenTelemetry uses (the
// subset of the exporter's table that Go programs report).
var units = map[string]string{
	"d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
	"us": "microseconds", "ns": "nanoseconds",
	"By": "bytes", "KiBy": "kibibytes", "MiBy": "mebibytes", "GiBy": "gibibytes",
	"KBy": "kilobytes", "MBy": "megabytes", "GBy": "gigabytes",
	"1": "", "%": "percent",
}

// MetricName is the Prometheus name of an OpenTelemetry metric: the name's
// alphanumeric runs joined by underscores, the unit's suffix unless a run
// already is it, then _total for a counter (or _ratio for a gauge of unit "1").
func MetricName(name, unit string, kind metricdata.Kind, monotonic bool) string {
	tokens := strings.FieldsFunc(name, func(r rune) bool { return !isMetricChar(r) })
	if suffix := unitSuffix(unit); suffix != "" && !slices.Contains(tokens, suffix) {
		tokens = append(tokens, suffix)
	}
	switch {
	case kind == metricdata.Sum && monotonic:
		tokens = append(slices.DeleteFunc(tokens, func(t string) bool { return t == "total" }), "total")
	case kind == metricdata.Gauge && unit == "1":
		tokens = append(slices.DeleteFunc(tokens, func(t string) bool { return t == "ratio" }), "ratio")
	}
	out := strings.Join(tokens, "_")
	if out != "" && out[0] >= '0' && out[0] <= '9' {
		out = "_" + out
	}
	return out
}

func isMetricChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ':'
}

// unitSuffix is the suffix of a unit: a known unit's word, else the unit cleaned
// to metric characters; "" for a {curly} annotation. A per-unit ("By/s") is
// beyond what the server reports and gives no suffix.
func unitSuffix(unit string) string {
	unit = strings.TrimSpace(unit)
	if unit == "" || strings.ContainsAny(unit, "{}/") {
		return ""
	}
	if s, ok := units[unit]; ok {
		return s
	}
	var b strings.Builder
	for _, r := range unit {
		if !isMetricChar(r) {
			r = '_'
		}
		if r == '_' && strings.HasSuffix(b.String(), "_") {
			continue
		}
		b.WriteRune(r)
	}
	return strings.TrimPrefix(b.String(), "_")
}

// LabelName is the Prometheus name of an attribute key: letters and digits kept,
// any run of other characters one underscore, "key_" before a leading digit; a
// key written __like__ this keeps its double underscores. "" when nothing but
// underscores would be left.
func LabelName(key string) string {
	reserved := len(key) >= 4 && strings.HasPrefix(key, "__") && strings.HasSuffix(key, "__")
	if reserved {
		key = key[2 : len(key)-2]
	}
	var b strings.Builder
	under := false
	for _, r := range key {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			under = false
		} else if !under {
			b.WriteByte('_')
			under = true
		}
	}
	name := b.String()
	if reserved {
		name = "__" + name + "__"
	}
	switch {
	case name == "" || strings.Trim(name, "_") == "":
		return ""
	case name[0] >= '0' && name[0] <= '9':
		name = "key_" + name
	}
	return name
}

// labels turns attributes into sorted label pairs. Keys that become the same
// label name share it, their values sorted and joined by ";" (as the exporter
// does); keys that leave no name are dropped.
func labels(attrs []metricdata.Attr) []metricdata.Attr {
	out := make([]metricdata.Attr, 0, len(attrs))
	for _, a := range attrs {
		name := LabelName(a.Key)
		if name == "" {
			continue
		}
		out = append(out, metricdata.Attr{Key: name, Value: a.Value})
	}
	slices.SortStableFunc(out, func(a, b metricdata.Attr) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	merged := out[:0]
	for _, l := range out {
		if n := len(merged); n > 0 && merged[n-1].Key == l.Key {
			merged[n-1].Value += ";" + l.Value
			continue
		}
		merged = append(merged, l)
	}
	return merged
}

type series struct {
	labels []metricdata.Attr
	point  *metricdata.Point
}

type family struct {
	name, help, typ string
	kind            metricdata.Kind
	series          []series
}

// Append appends the exposition of c to b.
func Append(b []byte, c *metricdata.Collection) []byte {
	byName := map[string]*family{}
	var families []*family
	for si := range c.Scopes {
		for mi := range c.Scopes[si].Metrics {
			m := &c.Scopes[si].Metrics[mi]
			if len(m.Points) == 0 {
				continue
			}
			name := MetricName(m.Name, m.Unit, m.Kind, m.Monotonic)
			f := byName[name]
			if f == nil {
				f = &family{name: name, help: m.Description, typ: typeOf(m), kind: m.Kind}
				byName[name] = f
				families = append(families, f)
			}
			if f.kind != m.Kind {
				continue // two scopes' metrics of different kinds under one name: keep the first
			}
			for pi := range m.Points {
				f.series = append(f.series, series{labels: labels(m.Points[pi].Attrs), point: &m.Points[pi]})
			}
		}
	}
	if len(c.Resource) > 0 {
		one := &metricdata.Point{Int: 1}
		families = append(families, &family{name: TargetInfo, help: "Target metadata", typ: "gauge",
			kind: metricdata.Gauge, series: []series{{labels: labels(c.Resource), point: one}}})
	}
	slices.SortFunc(families, func(a, b *family) int { return strings.Compare(a.name, b.name) })
	for _, f := range families {
		slices.SortStableFunc(f.series, func(a, b series) int { return compareLabels(a.labels, b.labels) })
		b = appendFamily(b, f)
	}
	return b
}

func typeOf(m *metricdata.Metric) string {
	switch {
	case m.Kind == metricdata.Histogram:
		return "histogram"
	case m.Kind == metricdata.Sum && m.Monotonic:
		return "counter"
	}
	return "gauge" // a gauge, or an up-down counter
}

func compareLabels(a, b []metricdata.Attr) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := strings.Compare(a[i].Key, b[i].Key); c != 0 {
			return c
		}
		if c := strings.Compare(a[i].Value, b[i].Value); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

func appendFamily(b []byte, f *family) []byte {
	if f.help != "" {
		b = append(b, "# HELP "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = appendEscaped(b, f.help, false)
		b = append(b, '\n')
	}
	b = append(b, "# TYPE "...)
	b = append(b, f.name...)
	b = append(b, ' ')
	b = append(b, f.typ...)
	b = append(b, '\n')
	for _, s := range f.series {
		p := s.point
		if f.kind != metricdata.Histogram {
			b = appendSample(b, f.name, "", s.labels, "")
			if p.IsFloat {
				b = appendFloat(b, p.Float)
			} else {
				b = strconv.AppendInt(b, p.Int, 10)
			}
			b = append(b, '\n')
			continue
		}
		h := p.Hist
		if h == nil {
			continue
		}
		var cumulative uint64
		for i, n := range h.Counts {
			cumulative += n
			le := "+Inf"
			if i < len(h.Bounds) {
				le = string(appendFloat(nil, h.Bounds[i]))
			}
			b = appendSample(b, f.name, "_bucket", s.labels, le)
			b = strconv.AppendUint(b, cumulative, 10)
			b = append(b, '\n')
		}
		b = appendSample(b, f.name, "_sum", s.labels, "")
		b = appendFloat(b, h.Sum)
		b = append(b, '\n')
		b = appendSample(b, f.name, "_count", s.labels, "")
		b = strconv.AppendUint(b, h.Count, 10)
		b = append(b, '\n')
	}
	return b
}

// appendSample writes name+suffix and the label set (with le last when given),
// then the space before the value.
func appendSample(b []byte, name, suffix string, labels []metricdata.Attr, le string) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	if len(labels) > 0 || le != "" {
		b = append(b, '{')
		for i, l := range labels {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, l.Key...)
			b = append(b, `="`...)
			b = appendEscaped(b, l.Value, true)
			b = append(b, '"')
		}
		if le != "" {
			if len(labels) > 0 {
				b = append(b, ',')
			}
			b = append(b, `le="`...)
			b = append(b, le...)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	return append(b, ' ')
}

// appendEscaped escapes a backslash and a line feed (a HELP text), and a double
// quote too in a label value; invalid UTF-8 becomes U+FFFD, which the format
// requires.
func appendEscaped(b []byte, s string, quoted bool) []byte {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\\':
			b = append(b, `\\`...)
		case r == '\n':
			b = append(b, `\n`...)
		case r == '"' && quoted:
			b = append(b, `\"`...)
		case r == utf8.RuneError && size == 1:
			b = utf8.AppendRune(b, utf8.RuneError)
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}

func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsInf(f, +1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(f):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}
