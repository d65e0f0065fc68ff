package otelsetup

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	collmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

// unknownAgg is an aggregation the transform does not know.
type unknownAgg struct{ metricdata.Aggregation }

// decodeMetrics is the request metricsRequest writes for rm, decoded with
// the collector package: its one ResourceMetrics.
func decodeMetrics(t *testing.T, rm *metricdata.ResourceMetrics) (*metricpb.ResourceMetrics, int, error) {
	t.Helper()
	body, n, err := metricsRequest(rm)
	req := &collmetricpb.ExportMetricsServiceRequest{}
	if err := proto.Unmarshal(body, req); err != nil {
		t.Fatal("the request does not decode:", err)
	}
	if len(req.ResourceMetrics) != 1 {
		t.Fatalf("%d ResourceMetrics, want 1", len(req.ResourceMetrics))
	}
	return req.ResourceMetrics[0], n, err
}

// TestResourceMetrics writes each aggregation, for int64 and float64, with
// every attribute value kind, exemplars, scope and resource, and compares
// the decoded request with the generated types' form, written by hand.
func TestResourceMetrics(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(100, 5)
	t1 := time.Unix(160, 7)
	const n0, n1 = 100_000_000_005, 160_000_000_007
	set := attribute.NewSet(attribute.String("k", "v"))
	kv := []*commonpb.KeyValue{{Key: "k", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "v"}}}}
	str := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	arr := func(vs ...*commonpb.AnyValue) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vs}}}
	}
	i64 := func(i int64) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: i}}
	}
	f64 := func(f float64) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: f}}
	}
	bl := func(b bool) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: b}}
	}
	traceID := []byte("0123456789abcdef")
	spanID := []byte("01234567")

	tests := []struct {
		name string
		in   metricdata.Aggregation
		want *metricpb.Metric // Name "m" is added
	}{
		{
			name: "int64 gauge with an exemplar",
			in: metricdata.Gauge[int64]{DataPoints: []metricdata.DataPoint[int64]{{
				Attributes: set, StartTime: t0, Time: t1, Value: -4,
				Exemplars: []metricdata.Exemplar[int64]{{FilteredAttributes: []attribute.KeyValue{attribute.Int("e", 1)}, Time: t1, Value: 9, SpanID: spanID, TraceID: traceID}},
			}}},
			want: &metricpb.Metric{Data: &metricpb.Metric_Gauge{Gauge: &metricpb.Gauge{DataPoints: []*metricpb.NumberDataPoint{{
				Attributes: kv, StartTimeUnixNano: n0, TimeUnixNano: n1, Value: &metricpb.NumberDataPoint_AsInt{AsInt: -4},
				Exemplars: []*metricpb.Exemplar{{
					FilteredAttributes: []*commonpb.KeyValue{{Key: "e", Value: i64(1)}}, TimeUnixNano: n1,
					Value: &metricpb.Exemplar_AsInt{AsInt: 9}, SpanId: spanID, TraceId: traceID,
				}},
			}}}}},
		},
		{
			name: "float64 gauge without a start time",
			in:   metricdata.Gauge[float64]{DataPoints: []metricdata.DataPoint[float64]{{Time: t1, Value: 0.25}}},
			want: &metricpb.Metric{Data: &metricpb.Metric_Gauge{Gauge: &metricpb.Gauge{DataPoints: []*metricpb.NumberDataPoint{{
				TimeUnixNano: n1, Value: &metricpb.NumberDataPoint_AsDouble{AsDouble: 0.25},
			}}}}},
		},
		{
			name: "int64 monotonic cumulative sum",
			in:   metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: true, DataPoints: []metricdata.DataPoint[int64]{{Attributes: set, StartTime: t0, Time: t1, Value: 12}}},
			want: &metricpb.Metric{Data: &metricpb.Metric_Sum{Sum: &metricpb.Sum{
				AggregationTemporality: metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE, IsMonotonic: true,
				DataPoints: []*metricpb.NumberDataPoint{{Attributes: kv, StartTimeUnixNano: n0, TimeUnixNano: n1, Value: &metricpb.NumberDataPoint_AsInt{AsInt: 12}}},
			}}},
		},
		{
			name: "float64 delta up-down sum",
			in: metricdata.Sum[float64]{Temporality: metricdata.DeltaTemporality, DataPoints: []metricdata.DataPoint[float64]{
				{Value: -1.5, Exemplars: []metricdata.Exemplar[float64]{{Value: 2.5}}},
			}},
			want: &metricpb.Metric{Data: &metricpb.Metric_Sum{Sum: &metricpb.Sum{
				AggregationTemporality: metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA,
				DataPoints: []*metricpb.NumberDataPoint{{
					Value:     &metricpb.NumberDataPoint_AsDouble{AsDouble: -1.5},
					Exemplars: []*metricpb.Exemplar{{Value: &metricpb.Exemplar_AsDouble{AsDouble: 2.5}}},
				}},
			}}},
		},
		{
			name: "float64 histogram with min and max",
			in: metricdata.Histogram[float64]{Temporality: metricdata.CumulativeTemporality, DataPoints: []metricdata.HistogramDataPoint[float64]{{
				Attributes: set, StartTime: t0, Time: t1, Count: 3, Bounds: []float64{0.1, 1}, BucketCounts: []uint64{1, 1, 1},
				Min: metricdata.NewExtrema(0.05), Max: metricdata.NewExtrema(4.0), Sum: 4.55,
			}}},
			want: &metricpb.Metric{Data: &metricpb.Metric_Histogram{Histogram: &metricpb.Histogram{
				AggregationTemporality: metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE,
				DataPoints: []*metricpb.HistogramDataPoint{{
					Attributes: kv, StartTimeUnixNano: n0, TimeUnixNano: n1, Count: 3, Sum: new(4.55),
					ExplicitBounds: []float64{0.1, 1}, BucketCounts: []uint64{1, 1, 1}, Min: new(0.05), Max: new(4.0),
				}},
			}}},
		},
		{
			name: "int64 delta histogram without min and max",
			in: metricdata.Histogram[int64]{Temporality: metricdata.DeltaTemporality, DataPoints: []metricdata.HistogramDataPoint[int64]{{
				Count: 2, Bounds: []float64{10}, BucketCounts: []uint64{2, 0}, Sum: 7,
			}}},
			want: &metricpb.Metric{Data: &metricpb.Metric_Histogram{Histogram: &metricpb.Histogram{
				AggregationTemporality: metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA,
				DataPoints:             []*metricpb.HistogramDataPoint{{Count: 2, Sum: new(7.0), ExplicitBounds: []float64{10}, BucketCounts: []uint64{2, 0}}},
			}}},
		},
		{
			name: "float64 exponential histogram",
			in: metricdata.ExponentialHistogram[float64]{Temporality: metricdata.CumulativeTemporality, DataPoints: []metricdata.ExponentialHistogramDataPoint[float64]{{
				Attributes: set, StartTime: t0, Time: t1, Count: 6, Sum: -1.25, Scale: 3, ZeroCount: 1, ZeroThreshold: 1e-9,
				Min: metricdata.NewExtrema(-2.0), Max: metricdata.NewExtrema(3.0),
				PositiveBucket: metricdata.ExponentialBucket{Offset: -2, Counts: []uint64{1, 2}},
				NegativeBucket: metricdata.ExponentialBucket{Offset: 4, Counts: []uint64{2}},
			}}},
			want: &metricpb.Metric{Data: &metricpb.Metric_ExponentialHistogram{ExponentialHistogram: &metricpb.ExponentialHistogram{
				AggregationTemporality: metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE,
				DataPoints: []*metricpb.ExponentialHistogramDataPoint{{
					Attributes: kv, StartTimeUnixNano: n0, TimeUnixNano: n1, Count: 6, Sum: new(-1.25), Scale: 3, ZeroCount: 1, ZeroThreshold: 1e-9,
					Min: new(-2.0), Max: new(3.0),
					Positive: &metricpb.ExponentialHistogramDataPoint_Buckets{Offset: -2, BucketCounts: []uint64{1, 2}},
					Negative: &metricpb.ExponentialHistogramDataPoint_Buckets{Offset: 4, BucketCounts: []uint64{2}},
				}},
			}}},
		},
		{
			name: "int64 exponential histogram, delta, empty buckets",
			in: metricdata.ExponentialHistogram[int64]{Temporality: metricdata.DeltaTemporality, DataPoints: []metricdata.ExponentialHistogramDataPoint[int64]{{
				Count: 1, Sum: 3, ZeroCount: 1,
			}}},
			want: &metricpb.Metric{Data: &metricpb.Metric_ExponentialHistogram{ExponentialHistogram: &metricpb.ExponentialHistogram{
				AggregationTemporality: metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA,
				DataPoints: []*metricpb.ExponentialHistogramDataPoint{{
					Count: 1, Sum: new(3.0), ZeroCount: 1,
					Positive: &metricpb.ExponentialHistogramDataPoint_Buckets{}, Negative: &metricpb.ExponentialHistogramDataPoint_Buckets{},
				}},
			}}},
		},
		{
			name: "zero values of a oneof and of optional fields are set",
			in: metricdata.Histogram[int64]{Temporality: metricdata.CumulativeTemporality, DataPoints: []metricdata.HistogramDataPoint[int64]{{
				Count: 1, Bounds: []float64{0}, BucketCounts: []uint64{1, 0}, Min: metricdata.NewExtrema[int64](0), Max: metricdata.NewExtrema[int64](0),
				Exemplars: []metricdata.Exemplar[int64]{{Value: 0}},
			}}},
			want: &metricpb.Metric{Data: &metricpb.Metric_Histogram{Histogram: &metricpb.Histogram{
				AggregationTemporality: metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE,
				DataPoints: []*metricpb.HistogramDataPoint{{
					Count: 1, Sum: new(0.0), ExplicitBounds: []float64{0}, BucketCounts: []uint64{1, 0}, Min: new(0.0), Max: new(0.0),
					Exemplars: []*metricpb.Exemplar{{Value: &metricpb.Exemplar_AsInt{AsInt: 0}}},
				}},
			}}},
		},
		{
			name: "int64 zero gauge, many points",
			in: metricdata.Gauge[int64]{DataPoints: slices.Repeat([]metricdata.DataPoint[int64]{
				{Attributes: set, Value: 0}, {Value: -1 << 62},
			}, 100)},
			want: &metricpb.Metric{Data: &metricpb.Metric_Gauge{Gauge: &metricpb.Gauge{DataPoints: slices.Repeat([]*metricpb.NumberDataPoint{
				{Attributes: kv, Value: &metricpb.NumberDataPoint_AsInt{AsInt: 0}}, {Value: &metricpb.NumberDataPoint_AsInt{AsInt: -1 << 62}},
			}, 100)}}},
		},
		{
			name: "summary",
			in: metricdata.Summary{DataPoints: []metricdata.SummaryDataPoint{{
				Attributes: set, StartTime: t0, Time: t1, Count: 10, Sum: 55,
				QuantileValues: []metricdata.QuantileValue{{Quantile: 0, Value: 1}, {Quantile: 1, Value: 10}},
			}}},
			want: &metricpb.Metric{Data: &metricpb.Metric_Summary{Summary: &metricpb.Summary{DataPoints: []*metricpb.SummaryDataPoint{{
				Attributes: kv, StartTimeUnixNano: n0, TimeUnixNano: n1, Count: 10, Sum: 55,
				QuantileValues: []*metricpb.SummaryDataPoint_ValueAtQuantile{{Quantile: 0, Value: 1}, {Quantile: 1, Value: 10}},
			}}}}},
		},
		{
			name: "every attribute value kind",
			in: metricdata.Gauge[int64]{DataPoints: []metricdata.DataPoint[int64]{{Value: 1, Attributes: attribute.NewSet(
				attribute.Bool("a.bool", true),
				attribute.Int64("a.int", -3),
				attribute.Float64("a.float", 2.5),
				attribute.String("a.string", "s"),
				attribute.BoolSlice("b.bools", []bool{true, false}),
				attribute.Int64Slice("b.ints", []int64{4, 5}),
				attribute.Float64Slice("b.floats", []float64{0.5}),
				attribute.StringSlice("b.strings", []string{"x", "y"}),
				attribute.KeyValue{Key: "c.bytes", Value: attribute.ByteSliceValue([]byte{0, 1})},
				attribute.KeyValue{Key: "c.slice", Value: attribute.SliceValue(attribute.StringValue("p"), attribute.Int64Value(6))},
				attribute.KeyValue{Key: "c.map", Value: attribute.MapValue(attribute.String("in", "q"))},
				attribute.KeyValue{Key: "d.empty"},
			)}}},
			want: &metricpb.Metric{Data: &metricpb.Metric_Gauge{Gauge: &metricpb.Gauge{DataPoints: []*metricpb.NumberDataPoint{{
				Value: &metricpb.NumberDataPoint_AsInt{AsInt: 1},
				Attributes: []*commonpb.KeyValue{ // attribute.Set sorts by key
					{Key: "a.bool", Value: bl(true)},
					{Key: "a.float", Value: f64(2.5)},
					{Key: "a.int", Value: i64(-3)},
					{Key: "a.string", Value: str("s")},
					{Key: "b.bools", Value: arr(bl(true), bl(false))},
					{Key: "b.floats", Value: arr(f64(0.5))},
					{Key: "b.ints", Value: arr(i64(4), i64(5))},
					{Key: "b.strings", Value: arr(str("x"), str("y"))},
					{Key: "c.bytes", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{0, 1}}}},
					{Key: "c.map", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{{Key: "in", Value: str("q")}}}}}},
					{Key: "c.slice", Value: arr(str("p"), i64(6))},
					{Key: "d.empty", Value: &commonpb.AnyValue{}},
				},
			}}}}},
		},
	}
	res := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.30.0", attribute.String("service.name", "svc"))
	scope := instrumentation.Scope{Name: "github.com/hubkit/iothub", Version: "v1", SchemaURL: "https://example.com/s", Attributes: attribute.NewSet(attribute.String("k", "v"))}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rm := &metricdata.ResourceMetrics{Resource: res, ScopeMetrics: []metricdata.ScopeMetrics{{
				Scope:   scope,
				Metrics: []metricdata.Metrics{{Name: "m", Description: "d", Unit: "u", Data: tt.in}},
			}}}
			got, n, err := decodeMetrics(t, rm)
			if err != nil || n != 1 {
				t.Fatalf("metricsRequest: %d metrics, error %v; want 1 and none", n, err)
			}
			tt.want.Name, tt.want.Description, tt.want.Unit = "m", "d", "u"
			want := &metricpb.ResourceMetrics{
				Resource:  &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name", Value: str("svc")}}},
				SchemaUrl: "https://opentelemetry.io/schemas/1.30.0",
				ScopeMetrics: []*metricpb.ScopeMetrics{{
					Scope:     &commonpb.InstrumentationScope{Name: "github.com/hubkit/iothub", Version: "v1", Attributes: kv},
					SchemaUrl: "https://example.com/s",
					Metrics:   []*metricpb.Metric{tt.want},
				}},
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestResourceMetricsUnknown leaves out an aggregation it does not know,
// and a scope with nothing else, says so, and writes the rest.
func TestResourceMetricsUnknown(t *testing.T) {
	t.Parallel()
	rm := &metricdata.ResourceMetrics{ScopeMetrics: []metricdata.ScopeMetrics{
		{Scope: instrumentation.Scope{Name: "left out"}, Metrics: []metricdata.Metrics{{Name: "odder", Data: unknownAgg{}}}},
		{Metrics: []metricdata.Metrics{
			{Name: "odd", Data: unknownAgg{}},
			{Name: "fine", Data: metricdata.Gauge[int64]{}},
		}},
	}}
	got, n, err := decodeMetrics(t, rm)
	if n != 1 {
		t.Errorf("%d metrics written, want 1", n)
	}
	for _, name := range []string{"odder", "odd"} {
		if err == nil || !strings.Contains(err.Error(), name+": aggregation otelsetup.unknownAgg is not supported, left out") {
			t.Errorf("error %v, want one naming the metric %s and its aggregation", err, name)
		}
	}
	want := &metricpb.ResourceMetrics{ScopeMetrics: []*metricpb.ScopeMetrics{{Scope: &commonpb.InstrumentationScope{}, Metrics: []*metricpb.Metric{
		{Name: "fine", Data: &metricpb.Metric_Gauge{Gauge: &metricpb.Gauge{DataPoints: []*metricpb.NumberDataPoint{}}}},
	}}}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
