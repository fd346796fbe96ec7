package otlp

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/flowstudio/mcp/server/telemetry/otelexport/metricdata"
)

// Field numbers of the OTLP messages written here (opentelemetry-proto:
// collector/metrics/v1, metrics/v1, common/v1, resource/v1).
const (
	requestResourceMetrics = 1 // ExportMetricsServiceRequest

	resourceMetricsResource = 1 // ResourceMetrics
	resourceMetricsScopes   = 2
	resourceMetricsSchema   = 3
	resourceAttributes      = 1 // Resource

	scopeMetricsScope   = 1 // ScopeMetrics
	scopeMetricsMetrics = 2
	scopeName           = 1 // InstrumentationScope
	scopeVersion        = 2

	metricName        = 1 // Metric
	metricDescription = 2
	metricUnit        = 3
	metricGauge       = 5
	metricSum         = 7
	metricHistogram   = 9

	dataPoints       = 1 // Gauge, Sum, Histogram
	temporality      = 2 // Sum, Histogram
	sumIsMonotonic   = 3 // Sum
	cumulativeTempor = 2 // AggregationTemporality CUMULATIVE

	numberStart      = 2 // NumberDataPoint
	numberTime       = 3
	numberAsDouble   = 4
	numberAsInt      = 6
	numberAttributes = 7

	histStart        = 2 // HistogramDataPoint
	histTime         = 3
	histCount        = 4
	histSum          = 5
	histBucketCounts = 6
	histBounds       = 7
	histAttributes   = 9

	keyValueKey    = 1 // KeyValue
	keyValueValue  = 2
	anyValueString = 1 // AnyValue
)

// AppendRequest appends c as an ExportMetricsServiceRequest: one resource, its
// scopes, and every metric with cumulative temporality.
func AppendRequest(b []byte, c *metricdata.Collection) []byte {
	start, now := unixNano(c.Start), unixNano(c.Time)
	return appendMessage(b, requestResourceMetrics, func(b []byte) []byte {
		b = appendMessage(b, resourceMetricsResource, func(b []byte) []byte {
			return appendAttrs(b, resourceAttributes, c.Resource)
		})
		for si := range c.Scopes {
			s := &c.Scopes[si]
			b = appendMessage(b, resourceMetricsScopes, func(b []byte) []byte {
				b = appendMessage(b, scopeMetricsScope, func(b []byte) []byte {
					b = appendStringField(b, scopeName, s.Name)
					if s.Version != "" {
						b = appendStringField(b, scopeVersion, s.Version)
					}
					return b
				})
				for mi := range s.Metrics {
					m := &s.Metrics[mi]
					b = appendMessage(b, scopeMetricsMetrics, func(b []byte) []byte {
						return appendMetric(b, m, start, now)
					})
				}
				return b
			})
		}
		if c.SchemaURL != "" {
			b = appendStringField(b, resourceMetricsSchema, c.SchemaURL)
		}
		return b
	})
}

func appendMetric(b []byte, m *metricdata.Metric, start, now uint64) []byte {
	b = appendStringField(b, metricName, m.Name)
	if m.Description != "" {
		b = appendStringField(b, metricDescription, m.Description)
	}
	if m.Unit != "" {
		b = appendStringField(b, metricUnit, m.Unit)
	}
	switch m.Kind {
	case metricdata.Gauge:
		// A gauge's points carry no start time: it is a sample, not a sum.
		return appendMessage(b, metricGauge, func(b []byte) []byte {
			return appendNumberPoints(b, m.Points, 0, now)
		})
	case metricdata.Sum:
		return appendMessage(b, metricSum, func(b []byte) []byte {
			b = appendNumberPoints(b, m.Points, start, now)
			b = appendVarintField(b, temporality, cumulativeTempor)
			if m.Monotonic {
				b = appendVarintField(b, sumIsMonotonic, 1)
			}
			return b
		})
	default:
		return appendMessage(b, metricHistogram, func(b []byte) []byte {
			for i := range m.Points {
				p := &m.Points[i]
				if p.Hist == nil {
					continue
				}
				b = appendMessage(b, dataPoints, func(b []byte) []byte {
					return appendHistogramPoint(b, p, start, now)
				})
			}
			return appendVarintField(b, temporality, cumulativeTempor)
		})
	}
}

func appendNumberPoints(b []byte, points []metricdata.Point, start, now uint64) []byte {
	for i := range points {
		p := &points[i]
		b = appendMessage(b, dataPoints, func(b []byte) []byte {
			if start != 0 {
				b = appendFixed64Field(b, numberStart, start)
			}
			b = appendFixed64Field(b, numberTime, now)
			// The value is a oneof: written even when zero, or the point has none.
			if p.IsFloat {
				b = appendDoubleField(b, numberAsDouble, p.Float)
			} else {
				b = appendFixed64Field(b, numberAsInt, uint64(p.Int))
			}
			return appendAttrs(b, numberAttributes, p.Attrs)
		})
	}
	return b
}

func appendHistogramPoint(b []byte, p *metricdata.Point, start, now uint64) []byte {
	h := p.Hist
	b = appendFixed64Field(b, histStart, start)
	b = appendFixed64Field(b, histTime, now)
	b = appendFixed64Field(b, histCount, h.Count)
	b = appendDoubleField(b, histSum, h.Sum) // optional: present means known
	b = appendTag(b, histBucketCounts, wireBytes)
	b = binary.AppendUvarint(b, uint64(8*len(h.Counts)))
	for _, n := range h.Counts {
		b = binary.LittleEndian.AppendUint64(b, n)
	}
	b = appendTag(b, histBounds, wireBytes)
	b = binary.AppendUvarint(b, uint64(8*len(h.Bounds)))
	for _, f := range h.Bounds {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	return appendAttrs(b, histAttributes, p.Attrs)
}

func appendAttrs(b []byte, field int, attrs []metricdata.Attr) []byte {
	for _, a := range attrs {
		b = appendMessage(b, field, func(b []byte) []byte {
			b = appendStringField(b, keyValueKey, a.Key)
			return appendMessage(b, keyValueValue, func(b []byte) []byte {
				return appendStringField(b, anyValueString, a.Value)
			})
		})
	}
	return b
}

func unixNano(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}
