package otelsetup

import (
	"compress/gzip"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	collmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/service"
)

// received is one request a collector got, its body decompressed.
type received struct {
	Method, Path, ContentType, ContentEncoding string
	Header                                     http.Header
	Body                                       []byte
}

// collector is an OTLP/HTTP collector that records what it receives and
// answers each request with the next of its answers (200 when they run out).
type collector struct {
	*httptest.Server
	mu       sync.Mutex
	got      []received
	statuses []int
}

func newCollector(t *testing.T, statuses ...int) *collector {
	t.Helper()
	c := &collector{statuses: statuses}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.got = append(c.got, received{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"), r.Header.Clone(), b})
		status := http.StatusOK
		if len(c.statuses) > 0 {
			status, c.statuses = c.statuses[0], c.statuses[1:]
		}
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(status)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *collector) requests() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// spanSummary is what the export test compares of a span.
type spanSummary struct {
	Name       string
	Kind       tracepb.Span_SpanKind
	Parent     string // the parent's name, "" for a root
	Attributes []*commonpb.KeyValue
}

// TestExport starts the export from the environment, makes spans and
// metrics through the providers Apply sets (a real direct-method call on
// the fake hub, and the providers directly), and decodes what the
// collector receives with the OTLP collector packages.
func TestExport(t *testing.T) {
	t.Parallel()
	col := newCollector(t)
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":    col.URL + "/",
		"OTEL_SERVICE_NAME":              "fleet-test",
		"OTEL_EXPORTER_OTLP_HEADERS":     "api-key=s%3Dcret%20value, x-tenant = t1",
		"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
	}
	ctx := t.Context()
	tel, err := Start(ctx, "p", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}

	hub := iothubtest.New(nil)
	defer hub.Close()
	hub.AddDevice("dev-1", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, nil)})
	opts := hub.ClientOptions()
	tel.Apply(opts)
	client, err := service.NewClientFromConnectionString(hub.ConnectionString(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.InvokeDeviceMethod(ctx, "dev-1", service.MethodParams[any]{Name: "reboot"}, nil); err != nil {
		t.Fatal(err)
	}

	every := []attribute.KeyValue{
		attribute.Bool("b", true),
		attribute.Int64("i", -7),
		attribute.Float64("f", 1.5),
		attribute.String("s", "x"),
		attribute.BoolSlice("bs", []bool{true, false}),
		attribute.Int64Slice("is", []int64{1, 2}),
		attribute.Float64Slice("fs", []float64{0.5}),
		attribute.StringSlice("ss", []string{"a", "b"}),
	}
	tr := opts.TracerProvider.Tracer("otelsetup-test")
	pctx, parent := tr.Start(ctx, "fleet", trace.WithSpanKind(trace.SpanKindServer))
	_, child := tr.Start(pctx, "step", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(every...))
	child.End()
	parent.End()

	m := opts.MeterProvider.Meter("otelsetup-test")
	count, _ := m.Int64Counter("test.count")
	count.Add(ctx, 2, metric.WithAttributes(attribute.String("k", "v")))
	count.Add(ctx, 1, metric.WithAttributes(attribute.String("k", "v")))
	lat, _ := m.Float64Histogram("test.latency", metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(1, 2))
	lat.Record(ctx, 0.5)
	lat.Record(ctx, 2.5)
	g, _ := m.Float64Gauge("test.gauge")
	g.Record(ctx, 7.25)

	if err := tel.Shutdown(ctx); err != nil {
		t.Fatal("Shutdown:", err)
	}

	var traces colltracepb.ExportTraceServiceRequest
	var metrics collmetricpb.ExportMetricsServiceRequest
	for _, r := range col.requests() {
		want := received{Method: "POST", ContentType: "application/x-protobuf", ContentEncoding: "gzip"}
		got := received{Method: r.Method, ContentType: r.ContentType, ContentEncoding: r.ContentEncoding}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: request (-want +got):\n%s", r.Path, diff)
		}
		if diff := cmp.Diff([]string{"s=cret value"}, r.Header.Values("Api-Key")); diff != "" {
			t.Errorf("%s: api-key header (-want +got):\n%s", r.Path, diff)
		}
		if diff := cmp.Diff([]string{"t1"}, r.Header.Values("X-Tenant")); diff != "" {
			t.Errorf("%s: x-tenant header (-want +got):\n%s", r.Path, diff)
		}
		var msg proto.Message
		switch r.Path {
		case "/v1/traces":
			msg = &colltracepb.ExportTraceServiceRequest{}
		case "/v1/metrics":
			msg = &collmetricpb.ExportMetricsServiceRequest{}
		default:
			t.Errorf("request to %s, want /v1/traces or /v1/metrics", r.Path)
			continue
		}
		if err := proto.Unmarshal(r.Body, msg); err != nil {
			t.Fatalf("%s: the body is not an export request: %v", r.Path, err)
		}
		switch msg := msg.(type) {
		case *colltracepb.ExportTraceServiceRequest:
			traces.ResourceSpans = append(traces.ResourceSpans, msg.ResourceSpans...)
		case *collmetricpb.ExportMetricsServiceRequest:
			metrics.ResourceMetrics = append(metrics.ResourceMetrics, msg.ResourceMetrics...)
		}
	}

	t.Run("traces", func(t *testing.T) {
		names := map[string]string{} // span id → name
		var spans []*tracepb.Span
		for _, rs := range traces.ResourceSpans {
			if got := stringAttr(rs.GetResource().GetAttributes(), "service.name"); got != "fleet-test" {
				t.Errorf("service.name = %q, want fleet-test", got)
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					names[string(s.SpanId)] = s.Name
					spans = append(spans, s)
				}
			}
		}
		keep := map[string]bool{"iothub.device.id": true, "iothub.method.name": true, "http.request.method": true}
		var got []spanSummary
		for _, s := range spans {
			sum := spanSummary{Name: s.Name, Kind: s.Kind, Parent: names[string(s.ParentSpanId)]}
			for _, kv := range s.Attributes {
				if s.Name == "step" || keep[kv.Key] {
					sum.Attributes = append(sum.Attributes, kv)
				}
			}
			got = append(got, sum)
		}
		want := []spanSummary{
			{Name: "POST", Kind: tracepb.Span_SPAN_KIND_CLIENT, Parent: "InvokeDeviceMethod", Attributes: kvs("http.request.method", "POST")},
			{Name: "InvokeDeviceMethod", Kind: tracepb.Span_SPAN_KIND_INTERNAL, Attributes: kvs("iothub.device.id", "dev-1", "iothub.method.name", "reboot")},
			{Name: "step", Kind: tracepb.Span_SPAN_KIND_CLIENT, Parent: "fleet", Attributes: keyValues(every)},
			{Name: "fleet", Kind: tracepb.Span_SPAN_KIND_SERVER},
		}
		sortKVs := func(s []*commonpb.KeyValue) []*commonpb.KeyValue {
			return slices.SortedFunc(slices.Values(s), func(a, b *commonpb.KeyValue) int { return strings.Compare(a.Key, b.Key) })
		}
		if diff := cmp.Diff(want, got, protocmp.Transform(),
			cmp.Transformer("sortKVs", sortKVs),
			cmp.Transformer("sortSpans", func(s []spanSummary) []spanSummary {
				return slices.SortedFunc(slices.Values(s), func(a, b spanSummary) int { return strings.Compare(a.Name, b.Name) })
			})); diff != "" {
			t.Errorf("spans (-want +got):\n%s", diff)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		byName := map[string]*metricpb.Metric{}
		for _, rm := range metrics.ResourceMetrics {
			if got := stringAttr(rm.GetResource().GetAttributes(), "service.name"); got != "fleet-test" {
				t.Errorf("service.name = %q, want fleet-test", got)
			}
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					byName[m.Name] = m
				}
			}
		}
		ignoreTimes := protocmp.IgnoreFields(&metricpb.NumberDataPoint{}, "start_time_unix_nano", "time_unix_nano")
		ignoreHistTimes := protocmp.IgnoreFields(&metricpb.HistogramDataPoint{}, "start_time_unix_nano", "time_unix_nano")
		tests := []struct {
			name string
			want *metricpb.Metric
		}{
			{"test.count", &metricpb.Metric{Name: "test.count", Data: &metricpb.Metric_Sum{Sum: &metricpb.Sum{
				AggregationTemporality: metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE,
				IsMonotonic:            true,
				DataPoints:             []*metricpb.NumberDataPoint{{Attributes: kvs("k", "v"), Value: &metricpb.NumberDataPoint_AsInt{AsInt: 3}}},
			}}}},
			{"test.latency", &metricpb.Metric{Name: "test.latency", Unit: "s", Data: &metricpb.Metric_Histogram{Histogram: &metricpb.Histogram{
				AggregationTemporality: metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE,
				DataPoints: []*metricpb.HistogramDataPoint{{
					Count: 2, Sum: new(3.0), ExplicitBounds: []float64{1, 2}, BucketCounts: []uint64{1, 0, 1}, Min: new(0.5), Max: new(2.5),
				}},
			}}}},
			{"test.gauge", &metricpb.Metric{Name: "test.gauge", Data: &metricpb.Metric_Gauge{Gauge: &metricpb.Gauge{
				DataPoints: []*metricpb.NumberDataPoint{{Value: &metricpb.NumberDataPoint_AsDouble{AsDouble: 7.25}}},
			}}}},
		}
		for _, tt := range tests {
			if diff := cmp.Diff(tt.want, byName[tt.name], protocmp.Transform(), ignoreTimes, ignoreHistTimes); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tt.name, diff)
			}
		}
		// The SDK's own: one call, counted in its duration histogram.
		if got := byName["iothub.client.call.duration"].GetHistogram().GetDataPoints(); len(got) != 1 || got[0].Count != 1 {
			t.Errorf("iothub.client.call.duration data points = %v, want one with count 1", got)
		}
	})
}

// kvs makes string attributes of key, value pairs.
func kvs(pairs ...string) []*commonpb.KeyValue {
	var out []*commonpb.KeyValue
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, &commonpb.KeyValue{Key: pairs[i], Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: pairs[i+1]}}})
	}
	return out
}

func stringAttr(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

// tlsCollector is a collector over TLS and its certificate in PEM.
type tlsCollector struct {
	*httptest.Server
	certPEM []byte
}

func newTLSCollector(t *testing.T) *tlsCollector {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	return &tlsCollector{srv, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})}
}

// TestStartRefuses refuses bad settings before anything is started or
// sent.
func TestStartRefuses(t *testing.T) {
	t.Parallel()
	col := newCollector(t)
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"gRPC", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported"},
		{"gRPC for metrics only", map[string]string{"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=grpc is not supported"},
		{"http/json", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json is not supported"},
		{"bad headers", map[string]string{"OTEL_EXPORTER_OTLP_METRICS_HEADERS": "nokey"}, "OTEL_EXPORTER_OTLP_METRICS_HEADERS: entry 1"},
		{"bad temporality", map[string]string{"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "x"}, "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=x is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = col.URL
			tel, err := Start(t.Context(), "p", func(k string) string { return tt.env[k] })
			if tel != nil || err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Start = %v, %v; want nil and an error with %q", tel, err, tt.wantErr)
			}
		})
	}
	t.Cleanup(func() {
		if got := col.requests(); len(got) != 0 {
			t.Errorf("%d requests sent; want none", len(got))
		}
	})
}
