package otelsetup

import (
	"context"
	"errors"
	"fmt"
	"strings"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// metricExporter is an sdkmetric.Exporter that posts OTLP/HTTP protobuf.
type metricExporter struct {
	s           *sender
	temporality sdkmetric.TemporalitySelector
}

var _ sdkmetric.Exporter = (*metricExporter)(nil)

// temporalitySelector is what
// OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE asks for: cumulative
// (the default), delta or lowmemory, as the OpenTelemetry specification
// defines them.
func temporalitySelector(getenv func(string) string) (sdkmetric.TemporalitySelector, error) {
	const key = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
	switch v := strings.ToLower(strings.TrimSpace(getenv(key))); v {
	case "", "cumulative":
		return sdkmetric.DefaultTemporalitySelector, nil
	case "delta":
		return func(k sdkmetric.InstrumentKind) metricdata.Temporality {
			switch k {
			case sdkmetric.InstrumentKindCounter, sdkmetric.InstrumentKindObservableCounter, sdkmetric.InstrumentKindHistogram:
				return metricdata.DeltaTemporality
			}
			return metricdata.CumulativeTemporality
		}, nil
	case "lowmemory":
		return func(k sdkmetric.InstrumentKind) metricdata.Temporality {
			switch k {
			case sdkmetric.InstrumentKindCounter, sdkmetric.InstrumentKindHistogram:
				return metricdata.DeltaTemporality
			}
			return metricdata.CumulativeTemporality
		}, nil
	default:
		return nil, fmt.Errorf("%s=%s is not supported: want cumulative, delta or lowmemory", key, v)
	}
}

// Temporality is the temporality the environment asks for.
func (e *metricExporter) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return e.temporality(k)
}

// Aggregation is the SDK's default for every kind.
func (e *metricExporter) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}

// Export posts rm as an ExportMetricsServiceRequest.
func (e *metricExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	if err := e.s.live(); err != nil {
		return err
	}
	body, n, terr := metricsRequest(rm)
	if n == 0 {
		return terr
	}
	return errors.Join(e.s.send(ctx, body), terr)
}

// ForceFlush has nothing to flush: Export holds nothing back.
func (e *metricExporter) ForceFlush(ctx context.Context) error { return ctx.Err() }

// Shutdown stops later Exports and closes idle connections.
func (e *metricExporter) Shutdown(ctx context.Context) error {
	e.s.stop()
	return ctx.Err()
}

// metricsRequest is the ExportMetricsServiceRequest {repeated
// ResourceMetrics resource_metrics = 1} of rm, and the number of metrics in
// it. A metric of an aggregation it does not know is left out and named in
// the error; the rest is written. A scope left with no metric is left out.
//
// ResourceMetrics is {Resource resource = 1; repeated ScopeMetrics
// scope_metrics = 2; string schema_url = 3}, ScopeMetrics {InstrumentationScope
// scope = 1; repeated Metric metrics = 2; string schema_url = 3}.
func metricsRequest(rm *metricdata.ResourceMetrics) ([]byte, int, error) {
	var errs []error
	n := 0
	b, at := beginMessage(nil, 1)
	b = appendResource(b, 1, rm.Resource)
	for _, sm := range rm.ScopeMetrics {
		before := len(b)
		var sat int
		b, sat = beginMessage(b, 2)
		b = appendScope(b, 1, sm.Scope.Name, sm.Scope.Version, sm.Scope.Attributes)
		written := 0
		for _, m := range sm.Metrics {
			mb, ok := appendMetric(b, 2, m)
			if !ok {
				errs = append(errs, fmt.Errorf("OTLP metric export: %s: aggregation %T is not supported, left out", m.Name, m.Data))
				continue
			}
			b = mb
			written++
		}
		if written == 0 {
			b = b[:before]
			continue
		}
		b = appendString(b, 3, sm.Scope.SchemaURL)
		b = endMessage(b, sat)
		n += written
	}
	if rm.Resource != nil {
		b = appendString(b, 3, rm.Resource.SchemaURL())
	}
	return endMessage(b, at), n, errors.Join(errs...)
}

// appendMetric writes the Metric field num {string name = 1; string
// description = 2; string unit = 3; oneof data {Gauge gauge = 5; Sum sum =
// 7; Histogram histogram = 9; ExponentialHistogram exponential_histogram =
// 10; Summary summary = 11}}; false, and b as it was, for an aggregation it
// does not know.
func appendMetric(b []byte, num fieldNum, m metricdata.Metrics) ([]byte, bool) {
	before := len(b)
	b, at := beginMessage(b, num)
	b = appendString(b, 1, m.Name)
	b = appendString(b, 2, m.Description)
	b = appendString(b, 3, m.Unit)
	switch a := m.Data.(type) {
	case metricdata.Gauge[int64]:
		b = appendGauge(b, a.DataPoints)
	case metricdata.Gauge[float64]:
		b = appendGauge(b, a.DataPoints)
	case metricdata.Sum[int64]:
		b = appendSum(b, a)
	case metricdata.Sum[float64]:
		b = appendSum(b, a)
	case metricdata.Histogram[int64]:
		b = appendHistogram(b, a)
	case metricdata.Histogram[float64]:
		b = appendHistogram(b, a)
	case metricdata.ExponentialHistogram[int64]:
		b = appendExpHistogram(b, a)
	case metricdata.ExponentialHistogram[float64]:
		b = appendExpHistogram(b, a)
	case metricdata.Summary:
		b = appendSummary(b, a)
	default:
		return b[:before], false
	}
	return endMessage(b, at), true
}

// appendGauge writes gauge = 5, Gauge {repeated NumberDataPoint data_points
// = 1}.
func appendGauge[N int64 | float64](b []byte, dps []metricdata.DataPoint[N]) []byte {
	b, at := beginMessage(b, 5)
	for _, dp := range dps {
		b = appendNumberPoint(b, 1, dp)
	}
	return endMessage(b, at)
}

// appendSum writes sum = 7, Sum {repeated NumberDataPoint data_points = 1;
// AggregationTemporality aggregation_temporality = 2; bool is_monotonic =
// 3}.
func appendSum[N int64 | float64](b []byte, s metricdata.Sum[N]) []byte {
	b, at := beginMessage(b, 7)
	for _, dp := range s.DataPoints {
		b = appendNumberPoint(b, 1, dp)
	}
	b = appendVarint(b, 2, temporality(s.Temporality))
	b = appendVarint(b, 3, boolVarint(s.IsMonotonic))
	return endMessage(b, at)
}

// appendNumberPoint writes the NumberDataPoint field num {fixed64
// start_time_unix_nano = 2; fixed64 time_unix_nano = 3; oneof value {double
// as_double = 4; sfixed64 as_int = 6}; repeated Exemplar exemplars = 5;
// repeated KeyValue attributes = 7}. The SDK has no data point flags
// (field 8).
func appendNumberPoint[N int64 | float64](b []byte, num fieldNum, dp metricdata.DataPoint[N]) []byte {
	b, at := beginMessage(b, num)
	b = appendAttributeSet(b, 7, dp.Attributes)
	b = appendFixed64(b, 2, unixNano(dp.StartTime))
	b = appendFixed64(b, 3, unixNano(dp.Time))
	b = appendNumber(b, 4, 6, dp.Value)
	b = appendExemplars(b, 5, dp.Exemplars)
	return endMessage(b, at)
}

// appendNumber writes v as the oneof's double field asDouble or its
// sfixed64 field asInt, whichever its type is; zero too.
func appendNumber[N int64 | float64](b []byte, asDouble, asInt fieldNum, v N) []byte {
	switch v := any(v).(type) {
	case int64:
		return setFixed64(b, asInt, uint64(v))
	case float64:
		return setDouble(b, asDouble, v)
	}
	return b
}

// appendExemplars writes each of es as the repeated Exemplar field num
// {fixed64 time_unix_nano = 2; oneof value {double as_double = 3; sfixed64
// as_int = 6}; bytes span_id = 4; bytes trace_id = 5; repeated KeyValue
// filtered_attributes = 7}.
func appendExemplars[N int64 | float64](b []byte, num fieldNum, es []metricdata.Exemplar[N]) []byte {
	for _, e := range es {
		var at int
		b, at = beginMessage(b, num)
		b = appendKeyValues(b, 7, e.FilteredAttributes)
		b = appendFixed64(b, 2, unixNano(e.Time))
		b = appendNumber(b, 3, 6, e.Value)
		b = appendBytes(b, 4, e.SpanID)
		b = appendBytes(b, 5, e.TraceID)
		b = endMessage(b, at)
	}
	return b
}

// appendHistogram writes histogram = 9, Histogram {repeated
// HistogramDataPoint data_points = 1; AggregationTemporality
// aggregation_temporality = 2}. HistogramDataPoint is {fixed64
// start_time_unix_nano = 2; fixed64 time_unix_nano = 3; fixed64 count = 4;
// optional double sum = 5; repeated fixed64 bucket_counts = 6; repeated
// double explicit_bounds = 7; repeated Exemplar exemplars = 8; repeated
// KeyValue attributes = 9; optional double min = 11; optional double max =
// 12}.
func appendHistogram[N int64 | float64](b []byte, h metricdata.Histogram[N]) []byte {
	b, at := beginMessage(b, 9)
	for _, dp := range h.DataPoints {
		var pat int
		b, pat = beginMessage(b, 1)
		b = appendAttributeSet(b, 9, dp.Attributes)
		b = appendFixed64(b, 2, unixNano(dp.StartTime))
		b = appendFixed64(b, 3, unixNano(dp.Time))
		b = appendFixed64(b, 4, dp.Count)
		b = setDouble(b, 5, float64(dp.Sum))
		b = appendPackedFixed64(b, 6, dp.BucketCounts)
		b = appendPackedDouble(b, 7, dp.Bounds)
		b = appendExemplars(b, 8, dp.Exemplars)
		b = appendExtremum(b, 11, dp.Min)
		b = appendExtremum(b, 12, dp.Max)
		b = endMessage(b, pat)
	}
	b = appendVarint(b, 2, temporality(h.Temporality))
	return endMessage(b, at)
}

// appendExpHistogram writes exponential_histogram = 10,
// ExponentialHistogram {repeated ExponentialHistogramDataPoint data_points
// = 1; AggregationTemporality aggregation_temporality = 2}. Its data point
// is {repeated KeyValue attributes = 1; fixed64 start_time_unix_nano = 2;
// fixed64 time_unix_nano = 3; fixed64 count = 4; optional double sum = 5;
// sint32 scale = 6; fixed64 zero_count = 7; Buckets positive = 8; Buckets
// negative = 9; repeated Exemplar exemplars = 11; optional double min = 12;
// optional double max = 13; double zero_threshold = 14}.
func appendExpHistogram[N int64 | float64](b []byte, h metricdata.ExponentialHistogram[N]) []byte {
	b, at := beginMessage(b, 10)
	for _, dp := range h.DataPoints {
		var pat int
		b, pat = beginMessage(b, 1)
		b = appendAttributeSet(b, 1, dp.Attributes)
		b = appendFixed64(b, 2, unixNano(dp.StartTime))
		b = appendFixed64(b, 3, unixNano(dp.Time))
		b = appendFixed64(b, 4, dp.Count)
		b = setDouble(b, 5, float64(dp.Sum))
		b = appendSint32(b, 6, dp.Scale)
		b = appendFixed64(b, 7, dp.ZeroCount)
		b = appendBuckets(b, 8, dp.PositiveBucket)
		b = appendBuckets(b, 9, dp.NegativeBucket)
		b = appendExemplars(b, 11, dp.Exemplars)
		b = appendExtremum(b, 12, dp.Min)
		b = appendExtremum(b, 13, dp.Max)
		b = appendDouble(b, 14, dp.ZeroThreshold)
		b = endMessage(b, pat)
	}
	b = appendVarint(b, 2, temporality(h.Temporality))
	return endMessage(b, at)
}

// appendBuckets writes the Buckets field num {sint32 offset = 1; repeated
// uint64 bucket_counts = 2}, always set (empty for no buckets).
func appendBuckets(b []byte, num fieldNum, eb metricdata.ExponentialBucket) []byte {
	b, at := beginMessage(b, num)
	b = appendSint32(b, 1, eb.Offset)
	b = appendPackedVarint(b, 2, eb.Counts)
	return endMessage(b, at)
}

// appendSummary writes summary = 11, Summary {repeated SummaryDataPoint
// data_points = 1}. SummaryDataPoint is {fixed64 start_time_unix_nano = 2;
// fixed64 time_unix_nano = 3; fixed64 count = 4; double sum = 5; repeated
// ValueAtQuantile quantile_values = 6; repeated KeyValue attributes = 7},
// ValueAtQuantile {double quantile = 1; double value = 2}.
func appendSummary(b []byte, s metricdata.Summary) []byte {
	b, at := beginMessage(b, 11)
	for _, dp := range s.DataPoints {
		var pat int
		b, pat = beginMessage(b, 1)
		b = appendAttributeSet(b, 7, dp.Attributes)
		b = appendFixed64(b, 2, unixNano(dp.StartTime))
		b = appendFixed64(b, 3, unixNano(dp.Time))
		b = appendFixed64(b, 4, dp.Count)
		b = appendDouble(b, 5, dp.Sum)
		for _, q := range dp.QuantileValues {
			var qat int
			b, qat = beginMessage(b, 6)
			b = appendDouble(b, 1, q.Quantile)
			b = appendDouble(b, 2, q.Value)
			b = endMessage(b, qat)
		}
		b = endMessage(b, pat)
	}
	return endMessage(b, at)
}

// appendExtremum writes a histogram's optional min or max, nothing when it
// is not recorded.
func appendExtremum[N int64 | float64](b []byte, num fieldNum, e metricdata.Extrema[N]) []byte {
	v, ok := e.Value()
	if !ok {
		return b
	}
	return setDouble(b, num, float64(v))
}

// temporality is OTLP's AggregationTemporality: UNSPECIFIED 0, DELTA 1,
// CUMULATIVE 2.
func temporality(t metricdata.Temporality) uint64 {
	switch t {
	case metricdata.DeltaTemporality:
		return 1
	case metricdata.CumulativeTemporality:
		return 2
	}
	return 0
}
