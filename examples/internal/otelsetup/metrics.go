package otelsetup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
)

// metricExporter is an sdkmetric.Exporter that posts OTLP/HTTP protobuf.
type metricExporter struct {
	s           *sender
	temporality sdkmetric.TemporalitySelector

	mu       sync.Mutex
	shutdown bool
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
	e.mu.Lock()
	done := e.shutdown
	e.mu.Unlock()
	if done {
		return errors.New("OTLP metric export: the exporter is shut down")
	}
	pb, terr := resourceMetrics(rm)
	if len(pb.ScopeMetrics) == 0 {
		return terr
	}
	body, err := frame([]*metricpb.ResourceMetrics{pb})
	if err != nil {
		return errors.Join(fmt.Errorf("OTLP metric export: %w", err), terr)
	}
	return errors.Join(e.s.send(ctx, body), terr)
}

// ForceFlush has nothing to flush: Export holds nothing back.
func (e *metricExporter) ForceFlush(ctx context.Context) error { return ctx.Err() }

// Shutdown stops later Exports and closes idle connections.
func (e *metricExporter) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.shutdown = true
	e.mu.Unlock()
	e.s.client.CloseIdleConnections()
	return ctx.Err()
}

// resourceMetrics is the OTLP form of rm. A metric of an aggregation it does
// not know is left out and named in the error; the rest is converted.
func resourceMetrics(rm *metricdata.ResourceMetrics) (*metricpb.ResourceMetrics, error) {
	out := &metricpb.ResourceMetrics{Resource: resourcePB(rm.Resource)}
	if rm.Resource != nil {
		out.SchemaUrl = rm.Resource.SchemaURL()
	}
	var errs []error
	for _, sm := range rm.ScopeMetrics {
		spb := &metricpb.ScopeMetrics{
			Scope: &commonpb.InstrumentationScope{
				Name:       sm.Scope.Name,
				Version:    sm.Scope.Version,
				Attributes: keyValues(sm.Scope.Attributes.ToSlice()),
			},
			SchemaUrl: sm.Scope.SchemaURL,
		}
		for _, m := range sm.Metrics {
			mpb := &metricpb.Metric{Name: m.Name, Description: m.Description, Unit: m.Unit}
			if !setData(mpb, m.Data) {
				errs = append(errs, fmt.Errorf("OTLP metric export: %s: aggregation %T is not supported, left out", m.Name, m.Data))
				continue
			}
			spb.Metrics = append(spb.Metrics, mpb)
		}
		if len(spb.Metrics) > 0 {
			out.ScopeMetrics = append(out.ScopeMetrics, spb)
		}
	}
	return out, errors.Join(errs...)
}

// setData sets the OTLP form of a on m; false for an aggregation it does
// not know.
func setData(m *metricpb.Metric, a metricdata.Aggregation) bool {
	switch a := a.(type) {
	case metricdata.Gauge[int64]:
		m.Data = &metricpb.Metric_Gauge{Gauge: &metricpb.Gauge{DataPoints: numberPoints(a.DataPoints)}}
	case metricdata.Gauge[float64]:
		m.Data = &metricpb.Metric_Gauge{Gauge: &metricpb.Gauge{DataPoints: numberPoints(a.DataPoints)}}
	case metricdata.Sum[int64]:
		m.Data = &metricpb.Metric_Sum{Sum: sum(a)}
	case metricdata.Sum[float64]:
		m.Data = &metricpb.Metric_Sum{Sum: sum(a)}
	case metricdata.Histogram[int64]:
		m.Data = &metricpb.Metric_Histogram{Histogram: histogram(a)}
	case metricdata.Histogram[float64]:
		m.Data = &metricpb.Metric_Histogram{Histogram: histogram(a)}
	case metricdata.ExponentialHistogram[int64]:
		m.Data = &metricpb.Metric_ExponentialHistogram{ExponentialHistogram: expHistogram(a)}
	case metricdata.ExponentialHistogram[float64]:
		m.Data = &metricpb.Metric_ExponentialHistogram{ExponentialHistogram: expHistogram(a)}
	case metricdata.Summary:
		m.Data = &metricpb.Metric_Summary{Summary: summary(a)}
	default:
		return false
	}
	return true
}

func sum[N int64 | float64](s metricdata.Sum[N]) *metricpb.Sum {
	return &metricpb.Sum{
		DataPoints:             numberPoints(s.DataPoints),
		AggregationTemporality: temporalityPB(s.Temporality),
		IsMonotonic:            s.IsMonotonic,
	}
}

func numberPoints[N int64 | float64](dps []metricdata.DataPoint[N]) []*metricpb.NumberDataPoint {
	out := make([]*metricpb.NumberDataPoint, 0, len(dps))
	for _, dp := range dps {
		p := &metricpb.NumberDataPoint{
			Attributes:        keyValues(dp.Attributes.ToSlice()),
			StartTimeUnixNano: unixNano(dp.StartTime),
			TimeUnixNano:      unixNano(dp.Time),
			Exemplars:         exemplars(dp.Exemplars),
		}
		switch v := any(dp.Value).(type) {
		case int64:
			p.Value = &metricpb.NumberDataPoint_AsInt{AsInt: v}
		case float64:
			p.Value = &metricpb.NumberDataPoint_AsDouble{AsDouble: v}
		}
		out = append(out, p)
	}
	return out
}

func histogram[N int64 | float64](h metricdata.Histogram[N]) *metricpb.Histogram {
	out := &metricpb.Histogram{
		AggregationTemporality: temporalityPB(h.Temporality),
		DataPoints:             make([]*metricpb.HistogramDataPoint, 0, len(h.DataPoints)),
	}
	for _, dp := range h.DataPoints {
		out.DataPoints = append(out.DataPoints, &metricpb.HistogramDataPoint{
			Attributes:        keyValues(dp.Attributes.ToSlice()),
			StartTimeUnixNano: unixNano(dp.StartTime),
			TimeUnixNano:      unixNano(dp.Time),
			Count:             dp.Count,
			Sum:               new(float64(dp.Sum)),
			BucketCounts:      dp.BucketCounts,
			ExplicitBounds:    dp.Bounds,
			Exemplars:         exemplars(dp.Exemplars),
			Min:               extremum(dp.Min),
			Max:               extremum(dp.Max),
		})
	}
	return out
}

func expHistogram[N int64 | float64](h metricdata.ExponentialHistogram[N]) *metricpb.ExponentialHistogram {
	out := &metricpb.ExponentialHistogram{
		AggregationTemporality: temporalityPB(h.Temporality),
		DataPoints:             make([]*metricpb.ExponentialHistogramDataPoint, 0, len(h.DataPoints)),
	}
	for _, dp := range h.DataPoints {
		out.DataPoints = append(out.DataPoints, &metricpb.ExponentialHistogramDataPoint{
			Attributes:        keyValues(dp.Attributes.ToSlice()),
			StartTimeUnixNano: unixNano(dp.StartTime),
			TimeUnixNano:      unixNano(dp.Time),
			Count:             dp.Count,
			Sum:               new(float64(dp.Sum)),
			Scale:             dp.Scale,
			ZeroCount:         dp.ZeroCount,
			Positive:          &metricpb.ExponentialHistogramDataPoint_Buckets{Offset: dp.PositiveBucket.Offset, BucketCounts: dp.PositiveBucket.Counts},
			Negative:          &metricpb.ExponentialHistogramDataPoint_Buckets{Offset: dp.NegativeBucket.Offset, BucketCounts: dp.NegativeBucket.Counts},
			Exemplars:         exemplars(dp.Exemplars),
			Min:               extremum(dp.Min),
			Max:               extremum(dp.Max),
			ZeroThreshold:     dp.ZeroThreshold,
		})
	}
	return out
}

func summary(s metricdata.Summary) *metricpb.Summary {
	out := &metricpb.Summary{DataPoints: make([]*metricpb.SummaryDataPoint, 0, len(s.DataPoints))}
	for _, dp := range s.DataPoints {
		p := &metricpb.SummaryDataPoint{
			Attributes:        keyValues(dp.Attributes.ToSlice()),
			StartTimeUnixNano: unixNano(dp.StartTime),
			TimeUnixNano:      unixNano(dp.Time),
			Count:             dp.Count,
			Sum:               dp.Sum,
		}
		for _, q := range dp.QuantileValues {
			p.QuantileValues = append(p.QuantileValues, &metricpb.SummaryDataPoint_ValueAtQuantile{Quantile: q.Quantile, Value: q.Value})
		}
		out.DataPoints = append(out.DataPoints, p)
	}
	return out
}

func exemplars[N int64 | float64](es []metricdata.Exemplar[N]) []*metricpb.Exemplar {
	if len(es) == 0 {
		return nil
	}
	out := make([]*metricpb.Exemplar, 0, len(es))
	for _, e := range es {
		p := &metricpb.Exemplar{
			FilteredAttributes: keyValues(e.FilteredAttributes),
			TimeUnixNano:       unixNano(e.Time),
			SpanId:             e.SpanID,
			TraceId:            e.TraceID,
		}
		switch v := any(e.Value).(type) {
		case int64:
			p.Value = &metricpb.Exemplar_AsInt{AsInt: v}
		case float64:
			p.Value = &metricpb.Exemplar_AsDouble{AsDouble: v}
		}
		out = append(out, p)
	}
	return out
}

// extremum is a histogram's min or max, nil when it is not recorded.
func extremum[N int64 | float64](e metricdata.Extrema[N]) *float64 {
	v, ok := e.Value()
	if !ok {
		return nil
	}
	return new(float64(v))
}

func temporalityPB(t metricdata.Temporality) metricpb.AggregationTemporality {
	switch t {
	case metricdata.DeltaTemporality:
		return metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA
	case metricdata.CumulativeTemporality:
		return metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
	}
	return metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_UNSPECIFIED
}

// unixNano is t in OTLP's form, 0 for the zero time (unset).
func unixNano(t time.Time) uint64 {
	if t.IsZero() || t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.UnixNano())
}

// resourcePB is the OTLP form of a resource; nil for none.
func resourcePB(r *resource.Resource) *resourcepb.Resource {
	if r == nil {
		return nil
	}
	return &resourcepb.Resource{Attributes: keyValues(r.Attributes())}
}

// keyValues is the OTLP form of attributes; nil for none.
func keyValues(kvs []attribute.KeyValue) []*commonpb.KeyValue {
	if len(kvs) == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, &commonpb.KeyValue{Key: string(kv.Key), Value: anyValue(kv.Value)})
	}
	return out
}

// anyValue is the OTLP form of every attribute value kind; an EMPTY value
// is an AnyValue with none set.
func anyValue(v attribute.Value) *commonpb.AnyValue {
	av := &commonpb.AnyValue{}
	switch v.Type() {
	case attribute.BOOL:
		av.Value = &commonpb.AnyValue_BoolValue{BoolValue: v.AsBool()}
	case attribute.INT64:
		av.Value = &commonpb.AnyValue_IntValue{IntValue: v.AsInt64()}
	case attribute.FLOAT64:
		av.Value = &commonpb.AnyValue_DoubleValue{DoubleValue: v.AsFloat64()}
	case attribute.STRING:
		av.Value = &commonpb.AnyValue_StringValue{StringValue: v.AsString()}
	case attribute.BYTESLICE:
		av.Value = &commonpb.AnyValue_BytesValue{BytesValue: v.AsByteSlice()}
	case attribute.BOOLSLICE:
		av.Value = array(v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		av.Value = array(v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		av.Value = array(v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		av.Value = array(v.AsStringSlice(), attribute.StringValue)
	case attribute.SLICE:
		av.Value = array(v.AsSlice(), func(v attribute.Value) attribute.Value { return v })
	case attribute.MAP:
		av.Value = &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: keyValues(v.AsMap())}}
	}
	return av
}

// array is the OTLP array of vs, each made a Value by value.
func array[T any](vs []T, value func(T) attribute.Value) *commonpb.AnyValue_ArrayValue {
	a := &commonpb.ArrayValue{Values: make([]*commonpb.AnyValue, 0, len(vs))}
	for _, v := range vs {
		a.Values = append(a.Values, anyValue(value(v)))
	}
	return &commonpb.AnyValue_ArrayValue{ArrayValue: a}
}
