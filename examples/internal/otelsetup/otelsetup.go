// Package otelsetup starts the OpenTelemetry export the example programs'
// environment asks for: OTLP over HTTP with protobuf bodies, POST
// ExportTraceServiceRequest to …/v1/traces and ExportMetricsServiceRequest
// to …/v1/metrics, Content-Type application/x-protobuf. The exporter is the
// package's own, small one: the OpenTelemetry OTLP/HTTP exporters link gRPC
// and its gateway into every program, and cost memory even when nothing is
// exported. It writes the messages from the SDK's span and metric data
// with protobuf wire primitives of its own: the generated OTLP types, the
// protobuf runtime and even its protowire package would add packages that
// do work at init, whether or not anything is exported.
//
// It honours these variables (a signal's own _TRACES_ or _METRICS_ form
// wins, whole, over the general one):
//
//   - OTEL_EXPORTER_OTLP_ENDPOINT (such as http://localhost:4318): traces to
//     …/v1/traces and metrics to …/v1/metrics;
//   - OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and
//     OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: one signal's full URL, used as
//     given;
//   - OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf, the only protocol
//     supported; any other value is an error, so that a collector expecting
//     gRPC is not sent protobuf silently;
//   - OTEL_EXPORTER_OTLP_HEADERS: key=value,key2=value2 with percent-encoded
//     values, sent on every request; errors never show a value;
//   - OTEL_EXPORTER_OTLP_TIMEOUT: milliseconds one export may take, retries
//     included, 10000 by default;
//   - OTEL_EXPORTER_OTLP_COMPRESSION: gzip or none (the default);
//   - OTEL_EXPORTER_OTLP_CERTIFICATE: a PEM file of the CAs to trust for
//     https, instead of the system's; OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE
//     and OTEL_EXPORTER_OTLP_CLIENT_KEY: PEM files of a client certificate
//     and its key, for mutual TLS;
//   - OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: cumulative (the
//     default), delta or lowmemory;
//   - OTEL_SERVICE_NAME: the service.name of the resource, the program's
//     name by default.
//
// An invalid value is an error of Start, before anything is sent. A 2xx
// answer is success; 429, 502, 503 and 504 are retried, after Retry-After
// when the collector sends one and with a growing, jittered backoff
// otherwise, while the timeout allows; any other answer is an error naming
// the URL (without its query) and the status. A partial success is an
// error too, with the count the collector rejected. Redirects are not
// followed, so the headers go nowhere else.
// The SDK's own variables (OTEL_BSP_* for the span batcher,
// OTEL_METRIC_EXPORT_INTERVAL and OTEL_METRIC_EXPORT_TIMEOUT for the
// metric reader) apply as the SDK reads them, from the process environment.
// HTTPS_PROXY, HTTP_PROXY and NO_PROXY apply as net/http reads them. Not
// honoured: OTEL_EXPORTER_OTLP_INSECURE (gRPC only) and
// OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION (explicit
// buckets, always).
//
// With no endpoint set nothing is started: no exporter, no goroutine, no
// connection.
package otelsetup

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/attribute"
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
	traces, err := readSignal(getenv, "TRACES", "/v1/traces")
	if err != nil {
		return nil, err
	}
	metrics, err := readSignal(getenv, "METRICS", "/v1/metrics")
	if err != nil {
		return nil, err
	}
	if traces.url == "" && metrics.url == "" {
		return nil, nil
	}
	var temporality sdkmetric.TemporalitySelector
	if metrics.url != "" {
		if temporality, err = temporalitySelector(getenv); err != nil {
			return nil, err
		}
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
	if traces.url != "" {
		exp := &spanExporter{s: newSender(traces, "spans")}
		t.tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	}
	if metrics.url != "" {
		exp := &metricExporter{s: newSender(metrics, "data points"), temporality: temporality}
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
