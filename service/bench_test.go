package service_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/internal/testkit/loadtest"
	"github.com/hubkit/iothub/service"
)

// The benchmarks here come in pairs: the SDK's call and the same request
// made by loadtest.Reference, the cheapest correct hand-written net/http
// client, so that the SDK's cost is read against it in the same run.

var benchPayload = json.RawMessage(`{"delay":5}`)

// benchHub returns a simulated hub with device d1 answering every method,
// and, with tls, its loopback TLS server (HTTP/2), closed at the end.
func benchHub(b *testing.B, tls bool) (*httpmock.Hub, *httpmock.Server) {
	hub := httpmock.New(nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
	if !tls {
		return hub, nil
	}
	srv, err := hub.StartTLS()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	return hub, srv
}

// BenchmarkInvokeDeviceMethod measures one invocation through the whole
// client (validation, encoding, signing from the cache, the retry layer,
// decoding) against the in-process simulated hub, whose own work (SAS
// verification, routing, validation) is included.
func BenchmarkInvokeDeviceMethod(b *testing.B) {
	hub, _ := benchHub(b, false)
	client, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), &iothub.ClientOptions{Transport: hub.RoundTripper()})
	if err != nil {
		b.Fatal(err)
	}
	params := service.MethodParams[any]{Name: "reboot", Payload: benchPayload, TimeoutInSeconds: 30}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.InvokeDeviceMethod(b.Context(), "d1", params, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInvokeCommand is BenchmarkInvokeDeviceMethod's call as a Plug
// and Play component command (raw body, timeouts in the query string, the
// status from a header), against the same hub and device: the device sees
// the method "thermostat1*reboot". The reference client has no command
// form; compare with BenchmarkInvokeDeviceMethod.
func BenchmarkInvokeCommand(b *testing.B) {
	hub, _ := benchHub(b, false)
	client, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), &iothub.ClientOptions{Transport: hub.RoundTripper()})
	if err != nil {
		b.Fatal(err)
	}
	params := service.CommandParams[any]{Component: "thermostat1", Name: "reboot", Payload: benchPayload, TimeoutInSeconds: 30}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.InvokeCommand(b.Context(), "d1", params, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInvokeReference is BenchmarkInvokeDeviceMethod's request made
// by the minimal reference client.
func BenchmarkInvokeReference(b *testing.B) {
	hub, _ := benchHub(b, false)
	ref, err := loadtest.NewReference(hub.ConnectionString("service"), "", hub.RoundTripper(), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ref.Invoke(b.Context(), "d1", "reboot", benchPayload, 30); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInvokeDeviceTyped is the same call through the generic typed
// form, encoding a struct and decoding the answer into one.
func BenchmarkInvokeDeviceTyped(b *testing.B) {
	hub, _ := benchHub(b, false)
	client, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), &iothub.ClientOptions{Transport: hub.RoundTripper()})
	if err != nil {
		b.Fatal(err)
	}
	params := service.MethodParams[rebootRequest]{Name: "reboot", Payload: rebootRequest{Delay: 5}, TimeoutInSeconds: 30}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := service.InvokeDevice[rebootStatus](b.Context(), client, "d1", params, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInvokeDeviceMethodTLS is one invocation over a real loopback TLS
// connection (HTTP/2, kept alive) to the simulated hub, which runs in the
// same process.
func BenchmarkInvokeDeviceMethodTLS(b *testing.B) {
	hub, srv := benchHub(b, true)
	client, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), &iothub.ClientOptions{Endpoint: srv.URL, Transport: srv.Client().Transport})
	if err != nil {
		b.Fatal(err)
	}
	params := service.MethodParams[any]{Name: "reboot", Payload: benchPayload, TimeoutInSeconds: 30}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.InvokeDeviceMethod(b.Context(), "d1", params, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInvokeReferenceTLS is BenchmarkInvokeDeviceMethodTLS's request
// made by the minimal reference client.
func BenchmarkInvokeReferenceTLS(b *testing.B) {
	hub, srv := benchHub(b, true)
	ref, err := loadtest.NewReference(hub.ConnectionString("service"), srv.URL, srv.Client().Transport, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ref.Invoke(b.Context(), "d1", "reboot", benchPayload, 30); err != nil {
			b.Fatal(err)
		}
	}
}

// cannedTransport answers every request with the same method result after
// reading the request body and reporting its progress through httptrace,
// as net/http's transport would: it leaves only the client's own work to
// measure.
type cannedTransport struct{}

var cannedAnswer = []byte(`{"status":200,"payload":{"rebooting":true}}`)

func (cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	trace := httptrace.ContextClientTrace(r.Context())
	if trace != nil && trace.GetConn != nil {
		trace.GetConn(r.URL.Host)
	}
	if trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Reused: true})
	}
	if trace != nil && trace.WroteRequest != nil {
		defer trace.WroteRequest(httptrace.WroteRequestInfo{})
	}
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{
		StatusCode: http.StatusOK,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		Header:     http.Header{"Content-Type": {"application/json; charset=utf-8"}},
		// The length the hub states, as net/http reports it.
		ContentLength: int64(len(cannedAnswer)),
		Body:          io.NopCloser(bytes.NewReader(cannedAnswer)),
		Request:       r,
	}, nil
}

// BenchmarkNewClient measures what building a client costs a program
// before its first call: parsing the connection string, the SAS
// credential, the default transport (a clone of net/http's), the retry
// layer and the telemetry instruments (no-op without providers); with a
// transport of the caller's own, no transport is built. The reference
// parses the same string, mints its one token and clones the same
// transport. Nothing is dialled.
func BenchmarkNewClient(b *testing.B) {
	cs := httpmock.New(nil).ConnectionString("service")
	b.Run("sdk", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := service.NewClientFromConnectionString(cs, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sdk, own transport", func(b *testing.B) {
		opts := &iothub.ClientOptions{Transport: cannedTransport{}}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := service.NewClientFromConnectionString(cs, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reference", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			t := http.DefaultTransport.(*http.Transport).Clone()
			if _, err := loadtest.NewReference(cs, "", t, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkInvokeOverhead isolates the client's own cost per call: the
// transport answers at once from memory, so what is measured is the SDK's
// (or the reference client's) request building, signing, retry layer,
// tracing and decoding.
func BenchmarkInvokeOverhead(b *testing.B) {
	hub := httpmock.New(nil) // for a valid connection string only
	b.Run("sdk", func(b *testing.B) {
		client, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), &iothub.ClientOptions{Transport: cannedTransport{}})
		if err != nil {
			b.Fatal(err)
		}
		params := service.MethodParams[any]{Name: "reboot", Payload: benchPayload, TimeoutInSeconds: 30}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := client.InvokeDeviceMethod(b.Context(), "d1", params, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reference", func(b *testing.B) {
		ref, err := loadtest.NewReference(hub.ConnectionString("service"), "", cannedTransport{}, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := ref.Invoke(b.Context(), "d1", "reboot", benchPayload, 30); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFanOutOverhead isolates a fan-out's own cost per call: the
// transport answers at once from memory, so what is measured is the
// fan-out's pacing, bookkeeping and result hand-off on top of the
// client's per-call work (BenchmarkInvokeOverhead). One op is a run of
// 1,000 targets at concurrency 8, its results ranged; ns/call, B/call and
// allocs/call are per call.
func BenchmarkFanOutOverhead(b *testing.B) {
	hub := httpmock.New(nil) // for a valid connection string only
	client, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), &iothub.ClientOptions{Transport: cannedTransport{}})
	if err != nil {
		b.Fatal(err)
	}
	const n = 1000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "dev-" + strconv.Itoa(i)
	}
	params := service.MethodParams[any]{Name: "reboot", Payload: benchPayload, TimeoutInSeconds: 30}
	// Seeded far above what the canned transport serves: slow start would
	// measure its ramp, not the per-call work.
	opts := &service.FanOutOptions{Concurrency: 8, Tier: service.TierS3, Units: 100}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	runs := 0
	for b.Loop() {
		run, err := client.StartFanOut(b.Context(), service.Devices(ids...), params, opts)
		if err != nil {
			b.Fatal(err)
		}
		for r := range run.Results() {
			if r.Outcome != service.OutcomeSucceeded {
				b.Fatalf("%s: %v", r.DeviceID, r.Err)
			}
		}
		runs++
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	calls := float64(runs * n)
	b.ReportMetric(float64(elapsed.Nanoseconds())/calls, "ns/call")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/calls, "allocs/call")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/calls, "B/call")
}
