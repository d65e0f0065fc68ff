package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
)

// otlpReceiver records what an OTLP/HTTP exporter sends it.
type otlpReceiver struct {
	mu    sync.Mutex
	paths map[string]int // path → requests with a protobuf body
	spans []string       // span names of the trace requests
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	o.mu.Lock()
	defer o.mu.Unlock()
	if r.Method == http.MethodPost && r.Header.Get("Content-Type") == "application/x-protobuf" && len(b) > 0 {
		o.paths[r.URL.Path]++
	}
	if r.URL.Path == "/v1/traces" {
		var req coltrace.ExportTraceServiceRequest
		if proto.Unmarshal(b, &req) == nil {
			for _, rs := range req.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					for _, s := range ss.Spans {
						o.spans = append(o.spans, s.Name)
					}
				}
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

// TestOTLPExport runs the program with OTEL_EXPORTER_OTLP_ENDPOINT set:
// it exports the invocation's spans to /v1/traces and its metrics to
// /v1/metrics, over HTTP/protobuf, before it exits.
func TestOTLPExport(t *testing.T) {
	t.Parallel()
	rec := &otlpReceiver{paths: map[string]int{}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	got := runInProcess(t, []string{"-device", "sim-device-1", "-method", "reboot"}, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL,
		"OTEL_SERVICE_NAME":           "invoke-test",
	})
	if got.code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", got.code, got.stderr)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.paths["/v1/traces"] == 0 || rec.paths["/v1/metrics"] == 0 {
		t.Errorf("protobuf requests by path: %v; want /v1/traces and /v1/metrics", rec.paths)
	}
	names := strings.Join(rec.spans, ",")
	if !strings.Contains(names, "InvokeDeviceMethod") || !strings.Contains(names, "POST") {
		t.Errorf("spans exported: %s; want InvokeDeviceMethod and its POST", names)
	}
}

// TestOTLPProtocolRefused refuses a protocol other than http/protobuf,
// before anything is sent.
func TestOTLPProtocolRefused(t *testing.T) {
	t.Parallel()
	got := runInProcess(t, []string{"-device", "sim-device-1", "-method", "reboot"}, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
		"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
	})
	if got.code != 2 || !strings.Contains(got.stderr, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported") {
		t.Errorf("exit code %d, stderr:\n%s\nwant 2 and the protocol named", got.code, got.stderr)
	}
}
