package service_test

import (
	"encoding/json"
	"testing"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/httpmock"
	"github.com/hubkit/iothub/service"
)

// BenchmarkInvokeDeviceMethod measures one invocation through the whole
// client (validation, encoding, signing from the cache, the retry layer,
// decoding) against the in-process simulated hub, whose own work (SAS
// verification, routing, validation) is included.
func BenchmarkInvokeDeviceMethod(b *testing.B) {
	hub := httpmock.New(nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
	client, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), &iothub.ClientOptions{Transport: hub.RoundTripper()})
	if err != nil {
		b.Fatal(err)
	}
	params := service.MethodParams[any]{Name: "reboot", Payload: json.RawMessage(`{"delay":5}`), TimeoutInSeconds: 30}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.InvokeDeviceMethod(b.Context(), "d1", params, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInvokeDeviceTyped is the same call through the generic typed
// form, encoding a struct and decoding the answer into one.
func BenchmarkInvokeDeviceTyped(b *testing.B) {
	hub := httpmock.New(nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
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
// connection (HTTP/2, kept alive) to the simulated hub.
func BenchmarkInvokeDeviceMethodTLS(b *testing.B) {
	hub := httpmock.New(nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
	srv, err := hub.StartTLS()
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	client, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), &iothub.ClientOptions{Endpoint: srv.URL, Transport: srv.Client().Transport})
	if err != nil {
		b.Fatal(err)
	}
	params := service.MethodParams[any]{Name: "reboot", Payload: json.RawMessage(`{"delay":5}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.InvokeDeviceMethod(b.Context(), "d1", params, nil); err != nil {
			b.Fatal(err)
		}
	}
}
