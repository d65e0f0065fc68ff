package otelsetup

import (
	"runtime"
	"testing"

	"github.com/hubkit/iothub"
)

// TestNothingSet starts nothing without an endpoint: no exporter, no
// goroutine, and options left as they were.
func TestNothingSet(t *testing.T) {
	before := runtime.NumGoroutine()
	tel, err := Start(t.Context(), "p", func(string) string { return "" })
	if err != nil || tel != nil {
		t.Fatalf("Start = %v, %v; want nil, nil", tel, err)
	}
	if n := runtime.NumGoroutine(); n != before {
		t.Errorf("%d goroutines after Start, %d before", n, before)
	}
	var o iothub.ClientOptions
	tel.Apply(&o)
	if o.TracerProvider != nil || o.MeterProvider != nil {
		t.Error("Apply of no telemetry set a provider")
	}
	if err := tel.Shutdown(t.Context()); err != nil {
		t.Error(err)
	}
}

func TestSignalURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env                 map[string]string
		wantTraces, wantErr string
	}{
		{map[string]string{}, "", ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, "http://c:4318/v1/traces", ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x"}, "http://t/x", ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported: this program exports OTLP over http/protobuf only; unset it or set http/protobuf"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, "http://c/v1/traces", ""},
	}
	for _, tt := range tests {
		got, err := signalURL(func(k string) string { return tt.env[k] }, "TRACES", "/v1/traces")
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if got != tt.wantTraces || gotErr != tt.wantErr {
			t.Errorf("%v: %q, %q; want %q, %q", tt.env, got, gotErr, tt.wantTraces, tt.wantErr)
		}
	}
}
