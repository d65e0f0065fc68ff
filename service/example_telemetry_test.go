package service_test

import (
	"context"
	"fmt"
	"log"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/service"
)

// Example_telemetry wires a TracerProvider and a MeterProvider (here the
// OpenTelemetry SDK's in-memory pieces; in production, ones with an OTLP
// exporter) into the client options: every call then has a span with a
// child per HTTP attempt, and the metrics of docs/observability.md.
func Example_telemetry() {
	hub := iothubtest.New(nil)
	defer hub.Close()
	hub.AddDevice("dev-1", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, nil)})

	spans := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	opts := hub.ClientOptions()
	opts.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	opts.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))

	client, err := service.NewClientFromConnectionString(hub.ConnectionString(), opts)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if _, err := client.InvokeDeviceMethod(ctx, "dev-1", service.MethodParams[any]{Name: "reboot"}, nil); err != nil {
		log.Fatal(err)
	}

	for _, s := range spans.Ended() {
		fmt.Println("span:", s.Name(), s.SpanKind())
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		log.Fatal(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if h, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == "iothub.client.call.duration" {
			outcome, _ := h.DataPoints[0].Attributes.Value("iothub.outcome")
			fmt.Println("metric:", m.Name, m.Unit, "count", h.DataPoints[0].Count, "outcome", outcome.AsString())
		}
	}
	// Output:
	// span: POST client
	// span: InvokeDeviceMethod internal
	// metric: iothub.client.call.duration s count 1 outcome succeeded
}
