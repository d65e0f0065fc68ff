// Package otelsetup starts the OpenTelemetry export the example programs'
// environment asks for, with the standard variables:
//
//   - OTEL_EXPORTER_OTLP_ENDPOINT (such as http://localhost:4318): traces to
//     …/v1/traces and metrics to …/v1/metrics;
//   - OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and
//     OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: one signal's full URL, which wins
//     over the general endpoint for that signal;
//   - OTEL_EXPORTER_OTLP_PROTOCOL (and its _TRACES_ and _METRICS_ forms):
//     http/protobuf, the only protocol supported; any other value is an
//     error, so that a collector expecting gRPC is not sent protobuf
//     silently;
//   - OTEL_SERVICE_NAME: the service.name of the resource, the program's
//     name by default.
//
// Headers, timeouts, compression and TLS settings follow the exporters' own
// OTEL_EXPORTER_OTLP_* variables. With no endpoint set nothing is started:
// no exporter, no goroutine, no connection.
package otelsetup

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/hubkit/iothub"
)

// Telemetry is a running export. A nil *Telemetry, what Start returns when
// nothing is asked for, is valid and does nothing.
type Telemetry struct {
	tp *sdktrace.TracerProvider // nil: no traces
	mp *sdkmetric.MeterProvider // nil: no metrics
}

// Start starts the export that getenv's variables ask for, for the program
// named program; it returns nil when they ask for none.
func Start(ctx context.Context, program string, getenv func(string) string) (*Telemetry, error) {
	tracesURL, err := signalURL(getenv, "TRACES", "/v1/traces")
	if err != nil {
		return nil, err
	}
	metricsURL, err := signalURL(getenv, "METRICS", "/v1/metrics")
	if err != nil {
		return nil, err
	}
	if tracesURL == "" && metricsURL == "" {
		return nil, nil
	}
	name := getenv("OTEL_SERVICE_NAME")
	if name == "" {
		name = program
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(attribute.String("service.name", name)))
	if err != nil {
		return nil, fmt.Errorf("OpenTelemetry resource: %w", err)
	}
	t := &Telemetry{}
	if tracesURL != "" {
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(tracesURL))
		if err != nil {
			return nil, fmt.Errorf("OTLP trace exporter: %w", err)
		}
		t.tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	}
	if metricsURL != "" {
		exp, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(metricsURL))
		if err != nil {
			_ = t.Shutdown(ctx)
			return nil, fmt.Errorf("OTLP metric exporter: %w", err)
		}
		t.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)), sdkmetric.WithResource(res))
	}
	return t, nil
}

// signalURL is the URL one signal is exported to, "" for none.
func signalURL(getenv func(string) string, signal, path string) (string, error) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := strings.TrimSpace(getenv(k)); p != "" {
			if p != "http/protobuf" {
				return "", fmt.Errorf("%s=%s is not supported: this program exports OTLP over http/protobuf only; unset it or set http/protobuf", k, p)
			}
			break // the signal's own setting wins
		}
	}
	if u := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_" + signal + "_ENDPOINT")); u != "" {
		return u, nil
	}
	if u := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")); u != "" {
		return strings.TrimSuffix(u, "/") + path, nil
	}
	return "", nil
}

// Apply sets the providers of the export in o.
func (t *Telemetry) Apply(o *iothub.ClientOptions) {
	if t == nil {
		return
	}
	if t.tp != nil {
		o.TracerProvider = t.tp
	}
	if t.mp != nil {
		o.MeterProvider = t.mp
	}
}

// Shutdown flushes what is buffered and stops the export; ctx bounds it.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	var errs []error
	if t.tp != nil {
		errs = append(errs, t.tp.Shutdown(ctx))
	}
	if t.mp != nil {
		errs = append(errs, t.mp.Shutdown(ctx))
	}
	return errors.Join(errs...)
}
