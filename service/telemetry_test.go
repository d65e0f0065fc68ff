package service_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/service"
)

// observed is a client whose spans and metrics are kept in memory.
type observed struct {
	hub    *iothubtest.Hub
	client *service.Client
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	tp     *sdktrace.TracerProvider
}

func newObserved(t *testing.T) *observed {
	t.Helper()
	hub := iothubtest.New(nil)
	t.Cleanup(hub.Close)
	o := &observed{hub: hub, spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	o.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.spans))
	opts := hub.ClientOptions()
	opts.TracerProvider = o.tp
	opts.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader))
	opts.Retry = iothub.RetryOptions{MinDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}
	c, err := service.NewClientFromConnectionString(hub.ConnectionString(), opts)
	if err != nil {
		t.Fatal(err)
	}
	o.client = c
	return o
}

// span is a recorded span as the tests compare it: volatile values (ids
// and times) left out, random ones replaced by "<set>".
type span struct {
	Name     string
	Kind     string
	Status   string
	Attrs    map[string]string
	Children []span
}

// volatile attributes are random per call: only their presence is checked.
var volatile = map[attribute.Key]bool{"az.client_request_id": true, "iothub.tracking_id": true}

// tree returns the recorded spans as trees, roots first by start time.
func (o *observed) tree() []span {
	ended := o.spans.Ended()
	sort.SliceStable(ended, func(i, j int) bool { return ended[i].StartTime().Before(ended[j].StartTime()) })
	byParent := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	ids := map[trace.SpanID]bool{}
	for _, s := range ended {
		ids[s.SpanContext().SpanID()] = true
	}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range ended {
		if p := s.Parent().SpanID(); p.IsValid() && ids[p] {
			byParent[p] = append(byParent[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	var build func(s sdktrace.ReadOnlySpan) span
	build = func(s sdktrace.ReadOnlySpan) span {
		n := span{Name: s.Name(), Kind: s.SpanKind().String(), Attrs: map[string]string{}}
		if s.Status().Code != 0 {
			n.Status = s.Status().Code.String()
		}
		for _, a := range s.Attributes() {
			v := a.Value.String()
			if volatile[a.Key] && v != "" {
				v = "<set>"
			}
			n.Attrs[string(a.Key)] = v
		}
		for _, c := range byParent[s.SpanContext().SpanID()] {
			n.Children = append(n.Children, build(c))
		}
		return n
	}
	var out []span
	for _, r := range roots {
		out = append(out, build(r))
	}
	return out
}

// metrics sums every data point: counters and gauges by value, histograms
// by count, keyed "name{k=v,…}" with the hub's address attributes left out
// (the span tests check them).
func (o *observed) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := o.reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	key := func(name string, set attribute.Set) string {
		var parts []string
		for _, kv := range set.ToSlice() {
			switch kv.Key {
			case "iothub.hub.host", "server.address", "server.port":
				continue
			}
			parts = append(parts, string(kv.Key)+"="+kv.Value.String())
		}
		return name + "{" + strings.Join(parts, ",") + "}"
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)] += float64(p.Value)
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)] += float64(p.Value)
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)] += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)] += float64(p.Count)
				}
			default:
				t.Fatalf("metric %s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	return out
}

// opSpan is the operation span of an invocation of reboot on a device.
func opSpan(hubHost, device string, end map[string]string, children ...span) span {
	a := map[string]string{
		"az.namespace":         "Microsoft.Devices",
		"az.client_request_id": "<set>",
		"iothub.hub.host":      hubHost,
		"iothub.operation":     "InvokeDeviceMethod",
		"iothub.device.id":     device,
		"iothub.method.name":   "reboot",
	}
	status := ""
	for k, v := range end {
		if k == "status" {
			status = v
			continue
		}
		a[k] = v
	}
	return span{Name: "InvokeDeviceMethod", Kind: "internal", Status: status, Attrs: a, Children: children}
}

// attemptSpan is the span of one HTTP attempt of an invocation on device.
func attemptSpan(hubHost, device string, resend int, end map[string]string) span {
	a := map[string]string{
		"http.request.method":  "POST",
		"url.full":             "https://" + hubHost + "/twins/" + device + "/methods?api-version=" + iothub.APIVersion,
		"server.address":       hubHost,
		"server.port":          "443",
		"az.namespace":         "Microsoft.Devices",
		"az.client_request_id": "<set>",
	}
	if resend > 0 {
		a["http.request.resend_count"] = fmt.Sprint(resend)
	}
	status := ""
	for k, v := range end {
		if k == "status" {
			status = v
			continue
		}
		a[k] = v
	}
	return span{Name: "POST", Kind: "client", Status: status, Attrs: a}
}

func TestTelemetryInvoke(t *testing.T) {
	t.Parallel()
	reboot := service.MethodParams[any]{Name: "reboot", Payload: map[string]int{"delay": 1}}
	tests := []struct {
		name        string
		setup       func(h *iothubtest.Hub)
		wantErr     bool
		wantSpans   func(host string) []span
		wantMetrics map[string]float64
	}{{
		name: "succeeded",
		setup: func(h *iothubtest.Hub) {
			h.AddDevice("dev-1", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, map[string]bool{"ok": true})})
		},
		wantSpans: func(host string) []span {
			return []span{opSpan(host, "dev-1",
				map[string]string{"iothub.outcome": "succeeded", "iothub.attempts": "1", "iothub.device.status": "200"},
				attemptSpan(host, "dev-1", 0, map[string]string{"http.response.status_code": "200"}))}
		},
		wantMetrics: map[string]float64{
			"iothub.client.call.duration{iothub.method.name=reboot,iothub.operation=InvokeDeviceMethod,iothub.outcome=succeeded}": 1,
			"http.client.request.duration{http.request.method=POST,http.response.status_code=200}":                                1,
			"iothub.client.attempts{iothub.operation=InvokeDeviceMethod}":                                                         1,
			"iothub.client.active_calls{iothub.operation=InvokeDeviceMethod}":                                                     0,
			"iothub.auth.token.renewals{iothub.auth.kind=sas}":                                                                    1,
		},
	}, {
		name: "device error status",
		setup: func(h *iothubtest.Hub) {
			h.AddDevice("dev-1", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(500, "busy")})
		},
		wantSpans: func(host string) []span {
			return []span{opSpan(host, "dev-1",
				map[string]string{"iothub.outcome": "device-error", "iothub.attempts": "1", "iothub.device.status": "500"},
				attemptSpan(host, "dev-1", 0, map[string]string{"http.response.status_code": "200"}))}
		},
		wantMetrics: map[string]float64{
			"iothub.client.call.duration{iothub.method.name=reboot,iothub.operation=InvokeDeviceMethod,iothub.outcome=device-error}": 1,
			"http.client.request.duration{http.request.method=POST,http.response.status_code=200}":                                   1,
			"iothub.client.attempts{iothub.operation=InvokeDeviceMethod}":                                                            1,
			"iothub.client.active_calls{iothub.operation=InvokeDeviceMethod}":                                                        0,
			"iothub.auth.token.renewals{iothub.auth.kind=sas}":                                                                       1,
		},
	}, {
		name: "retried after 503",
		setup: func(h *iothubtest.Hub) {
			h.AddDevice("dev-1", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, nil)})
			h.AddFault(iothubtest.Fault{DeviceID: "dev-1", Code: iothub.ErrorCodeServiceUnavailable})
		},
		wantSpans: func(host string) []span {
			return []span{opSpan(host, "dev-1",
				map[string]string{"iothub.outcome": "succeeded", "iothub.attempts": "2", "iothub.device.status": "200"},
				attemptSpan(host, "dev-1", 0, map[string]string{
					"http.response.status_code": "503", "error.type": "503", "status": "Error",
					"iothub.error.code": "503001", "iothub.error.name": "ServiceUnavailable", "iothub.tracking_id": "<set>",
				}),
				attemptSpan(host, "dev-1", 1, map[string]string{"http.response.status_code": "200"}))}
		},
		wantMetrics: map[string]float64{
			"iothub.client.call.duration{iothub.method.name=reboot,iothub.operation=InvokeDeviceMethod,iothub.outcome=succeeded}": 1,
			"http.client.request.duration{error.type=503,http.request.method=POST,http.response.status_code=503}":                 1,
			"http.client.request.duration{http.request.method=POST,http.response.status_code=200}":                                1,
			"iothub.client.attempts{iothub.operation=InvokeDeviceMethod}":                                                         2,
			"iothub.client.retries{iothub.operation=InvokeDeviceMethod}":                                                          1,
			"iothub.client.active_calls{iothub.operation=InvokeDeviceMethod}":                                                     0,
			"iothub.auth.token.renewals{iothub.auth.kind=sas}":                                                                    1,
		},
	}, {
		name: "lost answer",
		setup: func(h *iothubtest.Hub) {
			h.AddDevice("dev-1", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, nil)})
			h.AddFault(iothubtest.LostAnswers("dev-1", ""))
		},
		wantErr: true,
		wantSpans: func(host string) []span {
			return []span{opSpan(host, "dev-1",
				map[string]string{
					"iothub.outcome": "unknown", "iothub.attempts": "1", "status": "Error", "error.type": "GatewayTimeout",
					"iothub.error.code": "504101", "iothub.error.name": "GatewayTimeout", "iothub.tracking_id": "<set>",
				},
				attemptSpan(host, "dev-1", 0, map[string]string{
					"http.response.status_code": "504", "error.type": "504", "status": "Error",
					"iothub.error.code": "504101", "iothub.error.name": "GatewayTimeout", "iothub.tracking_id": "<set>",
				}))}
		},
		wantMetrics: map[string]float64{
			"iothub.client.call.duration{error.type=GatewayTimeout,iothub.method.name=reboot,iothub.operation=InvokeDeviceMethod,iothub.outcome=unknown}": 1,
			"http.client.request.duration{error.type=504,http.request.method=POST,http.response.status_code=504}":                                         1,
			"iothub.client.attempts{iothub.operation=InvokeDeviceMethod}":                                                                                 1,
			"iothub.client.active_calls{iothub.operation=InvokeDeviceMethod}":                                                                             0,
			"iothub.auth.token.renewals{iothub.auth.kind=sas}":                                                                                            1,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := newObserved(t)
			tt.setup(o.hub)
			_, err := o.client.InvokeDeviceMethod(t.Context(), "dev-1", reboot, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantSpans(o.client.HostName()), o.tree()); diff != "" {
				t.Errorf("spans (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantMetrics, o.metrics(t)); diff != "" {
				t.Errorf("metrics (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTelemetryFanOut runs a fan-out over ten devices, one of them
// offline: one FanOut span whose children are the ten invocations, each
// with its attempt, and the metrics of the run.
func TestTelemetryFanOut(t *testing.T) {
	t.Parallel()
	o := newObserved(t)
	var ids []string
	for i := range 10 {
		id := fmt.Sprintf("dev-%02d", i)
		ids = append(ids, id)
		o.hub.AddDevice(id, &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, nil), Offline: i == 3})
	}
	run, err := o.client.StartFanOut(t.Context(), service.Devices(ids...), service.MethodParams[any]{Name: "reboot"}, &service.FanOutOptions{Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	for range run.Results() {
	}
	roots := o.tree()
	if len(roots) != 1 {
		t.Fatalf("%d root spans, want the fan-out's only: %+v", len(roots), roots)
	}
	root := roots[0]
	children := root.Children
	root.Children = nil
	host := o.client.HostName()
	wantRoot := span{Name: "FanOut", Kind: "internal", Attrs: map[string]string{
		"az.namespace":                "Microsoft.Devices",
		"iothub.hub.host":             host,
		"iothub.operation":            "FanOut",
		"iothub.method.name":          "reboot",
		"iothub.fanout.concurrency":   "4",
		"iothub.fanout.targets":       "10",
		"iothub.fanout.succeeded":     "9",
		"iothub.fanout.device_error":  "0",
		"iothub.fanout.not_delivered": "1",
		"iothub.fanout.unknown":       "0",
	}}
	if diff := cmp.Diff(wantRoot, root); diff != "" {
		t.Errorf("fan-out span (-want +got):\n%s", diff)
	}
	slices.SortFunc(children, func(a, b span) int { return strings.Compare(a.Attrs["iothub.device.id"], b.Attrs["iothub.device.id"]) })
	var want []span
	for i, id := range ids {
		if i == 3 {
			want = append(want, opSpan(host, id,
				map[string]string{
					"iothub.outcome": "not-delivered", "iothub.attempts": "1", "status": "Error", "error.type": "DeviceNotOnline",
					"iothub.error.code": "404103", "iothub.error.name": "DeviceNotOnline", "iothub.tracking_id": "<set>",
				},
				attemptSpan(host, id, 0, map[string]string{
					"http.response.status_code": "404", "error.type": "404", "status": "Error",
					"iothub.error.code": "404103", "iothub.error.name": "DeviceNotOnline", "iothub.tracking_id": "<set>",
				})))
			continue
		}
		want = append(want, opSpan(host, id,
			map[string]string{"iothub.outcome": "succeeded", "iothub.attempts": "1", "iothub.device.status": "200"},
			attemptSpan(host, id, 0, map[string]string{"http.response.status_code": "200"})))
	}
	if diff := cmp.Diff(want, children); diff != "" {
		t.Errorf("invocation spans (-want +got):\n%s", diff)
	}
	wantMetrics := map[string]float64{
		"iothub.client.call.duration{iothub.method.name=reboot,iothub.operation=InvokeDeviceMethod,iothub.outcome=succeeded}":                                9,
		"iothub.client.call.duration{error.type=DeviceNotOnline,iothub.method.name=reboot,iothub.operation=InvokeDeviceMethod,iothub.outcome=not-delivered}": 1,
		"http.client.request.duration{http.request.method=POST,http.response.status_code=200}":                                                               9,
		"http.client.request.duration{error.type=404,http.request.method=POST,http.response.status_code=404}":                                                1,
		"iothub.client.attempts{iothub.operation=InvokeDeviceMethod}":                                                                                        10,
		"iothub.client.active_calls{iothub.operation=InvokeDeviceMethod}":                                                                                    0,
		"iothub.auth.token.renewals{iothub.auth.kind=sas}":                                                                                                   1,
		"iothub.fanout.targets{iothub.method.name=reboot,iothub.outcome=succeeded}":                                                                          9,
		"iothub.fanout.targets{iothub.method.name=reboot,iothub.outcome=not-delivered}":                                                                      1,
	}
	if diff := cmp.Diff(wantMetrics, o.metrics(t)); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}

// TestTelemetryFanOutGauges reads the fan-out gauges while a fan-out
// runs, and finds none once it has ended.
func TestTelemetryFanOutGauges(t *testing.T) {
	t.Parallel()
	o := newObserved(t)
	release := make(chan struct{})
	o.hub.AddDevice("slow", &iothubtest.DeviceOptions{Handler: func(ctx context.Context, _ iothubtest.MethodCall) iothubtest.MethodResponse {
		<-release
		return iothubtest.MethodResponse{Status: 200}
	}})
	run, err := o.client.StartFanOut(t.Context(), service.Devices("slow"), service.MethodParams[any]{Name: "reboot"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the one call is in flight.
	for run.Stats().InFlight == 0 {
		time.Sleep(time.Millisecond)
	}
	got := o.metrics(t)
	for _, k := range []string{"iothub.fanout.window{}", "iothub.fanout.active{}"} {
		if got[k] != 1 {
			t.Errorf("%s = %v while the fan-out runs, want 1 (all: %v)", k, got[k], got)
		}
	}
	if _, ok := got["iothub.fanout.rate{}"]; !ok {
		t.Errorf("no iothub.fanout.rate while the fan-out runs: %v", got)
	}
	close(release)
	for range run.Results() {
	}
	got = o.metrics(t)
	for k := range got {
		if strings.HasPrefix(k, "iothub.fanout.window") || strings.HasPrefix(k, "iothub.fanout.active") {
			t.Errorf("%s = %v after the fan-out ended, want no observation", k, got[k])
		}
	}
}

// TestTelemetryTraceparent checks that the caller's trace flows to the
// hub: the attempt's traceparent names the caller's trace and the
// attempt's span, and the fake hub accepts it.
func TestTelemetryTraceparent(t *testing.T) {
	t.Parallel()
	o := newObserved(t)
	o.hub.AddDevice("dev-1", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, nil)})
	ctx, parent := o.tp.Tracer("test").Start(t.Context(), "caller")
	if _, err := o.client.InvokeDeviceMethod(ctx, "dev-1", service.MethodParams[any]{Name: "reboot"}, nil); err != nil {
		t.Fatal(err)
	}
	parent.End()
	var attempt sdktrace.ReadOnlySpan
	for _, s := range o.spans.Ended() {
		if s.Name() == "POST" {
			attempt = s
		}
	}
	if attempt == nil {
		t.Fatal("no attempt span")
	}
	reqs := o.hub.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	sc := attempt.SpanContext()
	want := fmt.Sprintf("00-%s-%s-01", sc.TraceID(), sc.SpanID())
	if got := reqs[0].Header.Get("traceparent"); got != want {
		t.Errorf("traceparent = %q, want %q", got, want)
	}
	if attempt.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Error("the attempt is not in the caller's trace")
	}
}

// TestTelemetryPropagatorWithoutTracer passes the caller's trace context on
// without recording spans.
func TestTelemetryPropagatorWithoutTracer(t *testing.T) {
	t.Parallel()
	hub := iothubtest.New(nil)
	t.Cleanup(hub.Close)
	hub.AddDevice("dev-1", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, nil)})
	opts := hub.ClientOptions()
	opts.Propagator = propagationTraceContext()
	c, err := service.NewClientFromConnectionString(hub.ConnectionString(), opts)
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider()
	ctx, parent := tp.Tracer("test").Start(t.Context(), "caller")
	defer parent.End()
	if _, err := c.InvokeDeviceMethod(ctx, "dev-1", service.MethodParams[any]{Name: "reboot"}, nil); err != nil {
		t.Fatal(err)
	}
	sc := parent.SpanContext()
	want := fmt.Sprintf("00-%s-%s-01", sc.TraceID(), sc.SpanID())
	if got := hub.Requests()[0].Header.Get("traceparent"); got != want {
		t.Errorf("traceparent = %q, want the caller's %q", got, want)
	}
}

// TestTelemetryUnset sends no trace header when no telemetry is set.
func TestTelemetryUnset(t *testing.T) {
	t.Parallel()
	hub := iothubtest.New(nil)
	t.Cleanup(hub.Close)
	hub.AddDevice("dev-1", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, nil)})
	c, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider()
	ctx, parent := tp.Tracer("test").Start(t.Context(), "caller")
	defer parent.End()
	if _, err := c.InvokeDeviceMethod(ctx, "dev-1", service.MethodParams[any]{Name: "reboot"}, nil); err != nil {
		t.Fatal(err)
	}
	if got := hub.Requests()[0].Header.Values("traceparent"); got != nil {
		t.Errorf("traceparent = %q without telemetry options, want none", got)
	}
}

func propagationTraceContext() propagation.TextMapPropagator { return propagation.TraceContext{} }

// TestTelemetryCommand checks that a Plug and Play command's span and
// metrics carry the method the device sees and the device's status, which
// a command's answer gives in a header: a device failure is device-error,
// not succeeded.
func TestTelemetryCommand(t *testing.T) {
	t.Parallel()
	o := newObserved(t)
	dev := o.hub.AddDevice("dev-1", &iothubtest.DeviceOptions{ModelID: "dtmi:com:example:TemperatureController;2"})
	dev.HandleMethod("thermostat1*getMaxMinReport", iothubtest.Answer(500, map[string]string{"error": "no data"}))
	res, err := o.client.InvokeCommand(t.Context(), "dev-1", service.CommandParams[any]{Component: "thermostat1", Name: "getMaxMinReport"}, nil)
	if err != nil || res.Status != 500 {
		t.Fatalf("InvokeCommand = %+v, %v; want status 500", res, err)
	}
	spans := o.tree()
	if len(spans) != 1 {
		t.Fatalf("%d root spans, want 1: %+v", len(spans), spans)
	}
	want := map[string]string{
		"iothub.operation":     "InvokeCommand",
		"iothub.method.name":   "thermostat1*getMaxMinReport",
		"iothub.outcome":       "device-error",
		"iothub.device.status": "500",
	}
	got := map[string]string{}
	for k := range want {
		got[k] = spans[0].Attrs[k]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("command span attributes (-want +got):\n%s", diff)
	}
	metrics := o.metrics(t)
	key := "iothub.client.call.duration{iothub.method.name=thermostat1*getMaxMinReport,iothub.operation=InvokeCommand,iothub.outcome=device-error}"
	if metrics[key] != 1 {
		t.Errorf("metric %s = %v, want 1; all: %v", key, metrics[key], metrics)
	}
}
