package service_test

import (
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/service"
)

// BenchmarkInvokeTelemetry is BenchmarkInvokeDeviceMethod with telemetry
// set: the OpenTelemetry SDK's providers, sampling every span into an
// in-memory exporter (batched), metrics into a manual reader. "off" is the
// same client with none, whose allocs/op must equal
// BenchmarkInvokeDeviceMethod's.
func BenchmarkInvokeTelemetry(b *testing.B) {
	params := service.MethodParams[any]{Name: "reboot", Payload: benchPayload, TimeoutInSeconds: 30}
	for _, bc := range []struct {
		name          string
		traces, metrs bool
	}{{"off", false, false}, {"traces", true, false}, {"metrics", false, true}, {"both", true, true}} {
		b.Run(bc.name, func(b *testing.B) {
			hub, _ := benchHub(b, false)
			opts := &iothub.ClientOptions{Transport: hub.RoundTripper()}
			if bc.traces {
				tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewInMemoryExporter()))
				b.Cleanup(func() { _ = tp.Shutdown(b.Context()) })
				opts.TracerProvider = tp
			}
			if bc.metrs {
				opts.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			}
			client, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), opts)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.InvokeDeviceMethod(b.Context(), "d1", params, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
