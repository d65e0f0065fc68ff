package service_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/auth"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/service"
)

// TestNoSecretInTelemetry drives clients signed with a SAS key, a shared
// access key credential and Entra tokens through succeeding, retried,
// refused, lost and broken calls and a fan-out, and checks that no key,
// signature, bearer token or payload appears in any span (name,
// attributes, events, status) or metric (name, attributes).
func TestNoSecretInTelemetry(t *testing.T) {
	t.Parallel()
	const payloadMarker = "payload-marker-7f3a9c" // in the payload, echoed back by the device
	hub := httpmock.New(nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
	hub.AddDevice("offline", &httpmock.DeviceOptions{Offline: true})
	pol, _ := hub.Policy("iothubowner")
	spans := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	opts := &iothub.ClientOptions{
		Transport:      hub.RoundTripper(),
		Retry:          iothub.RetryOptions{MinDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond},
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)),
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
	}
	cred, err := auth.NewSharedAccessKeyCredential(pol.Name, pol.Key, nil)
	if err != nil {
		t.Fatal(err)
	}
	var clients []*service.Client
	for _, mk := range []func() (*service.Client, error){
		func() (*service.Client, error) {
			return service.NewClientFromConnectionString(hub.ConnectionString("iothubowner"), opts)
		},
		func() (*service.Client, error) {
			return service.NewClientWithSharedAccessKey(hub.HostName(), cred, opts)
		},
		func() (*service.Client, error) {
			return service.NewClient(hub.HostName(), hub.TokenCredential(httpmock.DataContributor, nil), opts)
		},
	} {
		c, err := mk()
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	faults := []httpmock.Fault{
		{Code: 429001, Times: 2},           // retried
		{Code: 503005},                     // retried
		{Drop: httpmock.DropBeforeWrite},   // retried
		{Code: 401002},                     // refused
		{AfterDelivery: true},              // 504101
		{Drop: httpmock.DropAfterDelivery}, // broken
	}
	params := service.MethodParams[any]{Name: "reboot", Payload: json.RawMessage(`{"note":"` + payloadMarker + `"}`)}
	for _, c := range clients {
		_, _ = c.InvokeDeviceMethod(t.Context(), "d1", params, nil)
		for _, f := range faults {
			hub.ClearFaults()
			f.Operation = httpmock.OperationMethod
			hub.AddFault(f)
			_, _ = c.InvokeDeviceMethod(t.Context(), "d1", params, nil)
		}
		hub.ClearFaults()
		run, err := c.StartFanOut(t.Context(), service.Devices("d1", "offline", "missing"), params, nil)
		if err != nil {
			t.Fatal(err)
		}
		for range run.Results() {
		}
	}

	var outputs []string
	for _, s := range spans.Ended() {
		outputs = append(outputs, s.Name(), s.Status().Description)
		for _, a := range s.Attributes() {
			outputs = append(outputs, string(a.Key), a.Value.String())
		}
		for _, e := range s.Events() {
			outputs = append(outputs, e.Name)
			for _, a := range e.Attributes {
				outputs = append(outputs, string(a.Key), a.Value.String())
			}
		}
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			outputs = append(outputs, m.Name, m.Description)
			addSet := func(kvs []string) { outputs = append(outputs, kvs...) }
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					addSet(setStrings(p.Attributes.ToSlice()))
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					addSet(setStrings(p.Attributes.ToSlice()))
				}
			}
		}
	}
	if len(spans.Ended()) < 30 || len(rm.ScopeMetrics) == 0 {
		t.Fatalf("%d spans, %d metric scopes: the test observed too little", len(spans.Ended()), len(rm.ScopeMetrics))
	}

	sent := sentSecrets(hub)
	var sawSig, sawBearer bool
	for _, r := range hub.Requests() {
		a := r.Header.Get("Authorization")
		sawSig = sawSig || strings.Contains(a, "sig=")
		sawBearer = sawBearer || strings.HasPrefix(a, "Bearer ")
	}
	if !sawSig || !sawBearer {
		t.Fatalf("signatures sent: %v, bearer tokens sent: %v; want both", sawSig, sawBearer)
	}
	windows := secretWindows(append(sent, pol.Key))
	all := strings.Join(outputs, "\n")
	for _, w := range windows {
		if strings.Contains(all, w) {
			t.Fatalf("a secret (window %q) appears in the telemetry", w)
		}
	}
	if strings.Contains(all, payloadMarker) {
		t.Error("the payload appears in the telemetry")
	}
	if strings.Contains(all, "sig=") || strings.Contains(all, "Bearer") || strings.Contains(all, "SharedAccessSignature") {
		t.Error("an Authorization value appears in the telemetry")
	}
}

func setStrings(kvs []attribute.KeyValue) []string {
	var out []string
	for _, kv := range kvs {
		out = append(out, string(kv.Key), kv.Value.String())
	}
	return out
}
