package otelsetup

import (
	"context"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	colltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

// capturingClient is an otlptrace.Client that keeps what the official
// transform made of the spans.
type capturingClient struct {
	mu  sync.Mutex
	got []*tracepb.ResourceSpans
}

func (c *capturingClient) Start(context.Context) error { return nil }
func (c *capturingClient) Stop(context.Context) error  { return nil }
func (c *capturingClient) UploadTraces(_ context.Context, rs []*tracepb.ResourceSpans) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, rs...)
	return nil
}

// everyKind is an attribute of every attribute.Type the SDK has, nested
// ones included, and a value long enough that its lengths take two and
// three varint bytes.
func everyKind() []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.Bool("a.bool", true),
		attribute.Bool("a.false", false),
		attribute.Int64("a.int", -3),
		attribute.Int64("a.zero", 0),
		attribute.Float64("a.float", 2.5),
		attribute.Float64("a.negzero", math.Copysign(0, -1)),
		attribute.String("a.string", "s"),
		attribute.String("a.emptystring", ""),
		attribute.BoolSlice("b.bools", []bool{true, false}),
		attribute.Int64Slice("b.ints", []int64{4, -5, 0}),
		attribute.Float64Slice("b.floats", []float64{0.5, 0}),
		attribute.StringSlice("b.strings", []string{"x", ""}),
		attribute.StringSlice("b.none", nil),
		{Key: "c.bytes", Value: attribute.ByteSliceValue([]byte{0, 1})},
		{Key: "c.slice", Value: attribute.SliceValue(attribute.StringValue("p"), attribute.Int64Value(6), attribute.SliceValue(attribute.BoolValue(true)))},
		{Key: "c.map", Value: attribute.MapValue(attribute.String("in", "q"), attribute.KeyValue{Key: "m", Value: attribute.MapValue(attribute.Int("deep", 1))})},
		{Key: "d.empty"},
		attribute.String("e.long", strings.Repeat("x", 200)),
		attribute.String("e.longer", strings.Repeat("y", 20_000)),
	}
}

// richSpans is spans of two resources and, in the first, two scopes and
// the zero scope: every kind and status, parent and child, remote parent,
// trace state, events, links and dropped counts.
func richSpans(t *testing.T) []sdktrace.ReadOnlySpan {
	t.Helper()
	tid := trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	ts, err := trace.ParseTraceState("vendor=v1,other=o2")
	if err != nil {
		t.Fatal(err)
	}
	sc := func(sid byte, remote bool, flags trace.TraceFlags) trace.SpanContext {
		return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{sid, 0, 0, 0, 0, 0, 0, 1}, TraceFlags: flags, TraceState: ts, Remote: remote})
	}
	resA := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.30.0", attribute.String("service.name", "a"), attribute.Int("n", 1))
	resB := resource.NewSchemaless(attribute.String("service.name", "b"))
	scope1 := instrumentation.Scope{Name: "github.com/hubkit/iothub", Version: "v1", SchemaURL: "https://example.com/s", Attributes: attribute.NewSet(attribute.String("k", "v"))}
	scope2 := instrumentation.Scope{Name: "other"}
	t0 := time.Unix(1_700_000_000, 123)
	stubs := tracetest.SpanStubs{
		{
			Name: "root", SpanContext: sc(1, false, trace.FlagsSampled), Parent: sc(9, true, trace.FlagsSampled),
			SpanKind: trace.SpanKindServer, StartTime: t0, EndTime: t0.Add(time.Second),
			Attributes: everyKind(), Status: sdktrace.Status{Code: codes.Error, Description: "it broke"},
			DroppedAttributes: 3, DroppedEvents: 4, DroppedLinks: 5,
			Events: []sdktrace.Event{
				{Name: "ev", Time: t0.Add(time.Millisecond), Attributes: []attribute.KeyValue{attribute.Int("i", 1)}, DroppedAttributeCount: 2},
				{Name: "bare", Time: t0.Add(2 * time.Millisecond)},
			},
			Links: []sdktrace.Link{
				{SpanContext: sc(7, true, 0), Attributes: []attribute.KeyValue{attribute.String("l", "x")}, DroppedAttributeCount: 1},
				{SpanContext: sc(8, false, trace.FlagsSampled)},
			},
			Resource: resA, InstrumentationScope: scope1,
		},
		{
			Name: "child", SpanContext: sc(2, false, trace.FlagsSampled), Parent: sc(1, false, trace.FlagsSampled),
			SpanKind: trace.SpanKindClient, StartTime: t0.Add(time.Millisecond), EndTime: t0.Add(2 * time.Millisecond),
			Status: sdktrace.Status{Code: codes.Ok}, Resource: resA, InstrumentationScope: scope2,
		},
		{Name: "producer", SpanContext: sc(3, false, 0), SpanKind: trace.SpanKindProducer, StartTime: t0, EndTime: t0, Resource: resB, InstrumentationScope: scope1},
		{Name: "consumer", SpanContext: sc(4, false, 0), SpanKind: trace.SpanKindConsumer, StartTime: t0, EndTime: t0, Resource: resA, InstrumentationScope: scope1},
		{Name: "internal", SpanContext: sc(5, false, 0), SpanKind: trace.SpanKindInternal, StartTime: t0, EndTime: t0, Resource: resA},
		{Name: "unspecified", SpanContext: sc(6, false, 0), StartTime: t0, EndTime: t0, Resource: resA, InstrumentationScope: scope2},
	}
	return stubs.Snapshots()
}

// TestTraceRequest decodes the request traceRequest writes with the
// collector package and compares it with what the OpenTelemetry exporter's
// own transform makes of the same spans.
func TestTraceRequest(t *testing.T) {
	t.Parallel()
	spans := richSpans(t)

	cc := &capturingClient{}
	official, err := otlptrace.New(t.Context(), cc)
	if err != nil {
		t.Fatal(err)
	}
	if err := official.ExportSpans(t.Context(), spans); err != nil {
		t.Fatal(err)
	}
	want := &colltracepb.ExportTraceServiceRequest{ResourceSpans: cc.got}
	// The official transform leaves a link's trace_state out; OTLP has it
	// (Span.Link field 3), and this exporter sends it.
	for _, rs := range want.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				for _, l := range s.Links {
					l.TraceState = "vendor=v1,other=o2"
				}
			}
		}
	}

	got := &colltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(traceRequest(spans), got); err != nil {
		t.Fatal("the request does not decode:", err)
	}
	// The official transform's resources come in map order. Sorted here,
	// before the comparison: protocmp.Transform turns the messages into
	// its own form first, so a cmp.Transformer on the slice never ran,
	// and the test failed whenever the map order differed.
	byService := func(a, b *tracepb.ResourceSpans) int {
		return strings.Compare(stringAttr(a.GetResource().GetAttributes(), "service.name"), stringAttr(b.GetResource().GetAttributes(), "service.name"))
	}
	slices.SortFunc(want.ResourceSpans, byService)
	slices.SortFunc(got.ResourceSpans, byService)
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("(-official transform +ours):\n%s", diff)
	}
	if n := len(got.ResourceSpans); n != 2 {
		t.Errorf("%d resources, want 2", n)
	}
}

// TestTraceRequestEmpty writes nothing for no spans: ExportSpans then
// sends no request.
func TestTraceRequestEmpty(t *testing.T) {
	t.Parallel()
	for _, spans := range [][]sdktrace.ReadOnlySpan{nil, {nil}} {
		if got := traceRequest(spans); got != nil {
			t.Errorf("traceRequest(%v) = %x, want nil", spans, got)
		}
	}
}

// TestSpanExporter posts spans, sends nothing for none, and refuses to
// export after Shutdown.
func TestSpanExporter(t *testing.T) {
	t.Parallel()
	col := newCollector(t)
	exp := &spanExporter{s: newSender(signalConfig{url: col.URL + "/v1/traces", timeout: 10 * time.Second}, "spans")}
	ctx := t.Context()
	if err := exp.ExportSpans(ctx, nil); err != nil {
		t.Fatal("ExportSpans(nil):", err)
	}
	spans := richSpans(t)
	if err := exp.ExportSpans(ctx, spans); err != nil {
		t.Fatal("ExportSpans:", err)
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatal("Shutdown:", err)
	}
	if err := exp.ExportSpans(ctx, spans); err == nil || !strings.Contains(err.Error(), "shut down") {
		t.Errorf("ExportSpans after Shutdown = %v, want an error saying it is shut down", err)
	}
	got := col.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests, want 1", len(got))
	}
	want := received{Method: http.MethodPost, Path: "/v1/traces", ContentType: "application/x-protobuf", Body: traceRequest(spans)}
	if diff := cmp.Diff(want, got[0], cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Header" }, cmp.Ignore())); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
}

// keyValues is the generated-types form of attributes, what a decoded
// request holds.
func keyValues(kvs []attribute.KeyValue) []*commonpb.KeyValue {
	if len(kvs) == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, &commonpb.KeyValue{Key: string(kv.Key), Value: anyValuePB(kv.Value)})
	}
	return out
}

func anyValuePB(v attribute.Value) *commonpb.AnyValue {
	array := func(vs []attribute.Value) *commonpb.AnyValue {
		a := &commonpb.ArrayValue{}
		for _, v := range vs {
			a.Values = append(a.Values, anyValuePB(v))
		}
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: a}}
	}
	switch v.Type() {
	case attribute.BOOL:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v.AsBool()}}
	case attribute.INT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v.AsInt64()}}
	case attribute.FLOAT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v.AsFloat64()}}
	case attribute.STRING:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v.AsString()}}
	case attribute.BYTESLICE:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: v.AsByteSlice()}}
	case attribute.BOOLSLICE:
		return array(sliceValues(v.AsBoolSlice(), attribute.BoolValue))
	case attribute.INT64SLICE:
		return array(sliceValues(v.AsInt64Slice(), attribute.Int64Value))
	case attribute.FLOAT64SLICE:
		return array(sliceValues(v.AsFloat64Slice(), attribute.Float64Value))
	case attribute.STRINGSLICE:
		return array(sliceValues(v.AsStringSlice(), attribute.StringValue))
	case attribute.SLICE:
		return array(v.AsSlice())
	case attribute.MAP:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: keyValues(v.AsMap())}}}
	}
	return &commonpb.AnyValue{}
}

func sliceValues[T any](vs []T, value func(T) attribute.Value) []attribute.Value {
	out := make([]attribute.Value, 0, len(vs))
	for _, v := range vs {
		out = append(out, value(v))
	}
	return out
}
