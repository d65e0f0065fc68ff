package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/internal/testkit/syncbuf"
)

// TestOTLPExport runs a fan-out with OTEL_EXPORTER_OTLP_ENDPOINT set: the
// program sends protobuf bodies to /v1/traces and /v1/metrics before it
// returns, also when interrupted (its context cancelled) mid-run.
func TestOTLPExport(t *testing.T) {
	t.Parallel()
	for _, interrupted := range []bool{false, true} {
		var mu sync.Mutex
		paths := map[string]int{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if r.Method == http.MethodPost && r.Header.Get("Content-Type") == "application/x-protobuf" && len(b) > 0 {
				mu.Lock()
				paths[r.URL.Path]++
				mu.Unlock()
			}
			w.Header().Set("Content-Type", "application/x-protobuf")
		}))
		env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL, "OTEL_SERVICE_NAME": "fleet-test"}
		ctx, cancel := context.WithCancel(t.Context())
		var stdout, stderr syncbuf.Buffer
		d := deps{getenv: func(k string) string { return env[k] }, stdout: &stdout, stderr: &stderr}
		if interrupted {
			// The first progress line means the fan-out runs: interrupt it.
			d.stderr = &cancelOnWrite{w: &stderr, after: 2, cancel: cancel}
		}
		code := runWith(ctx, []string{"-simulate", "20", "-devices", "sim-device-1,sim-fleet-00001,sim-fleet-00002"}, d)
		cancel()
		if !interrupted && code != cli.ExitOK {
			t.Errorf("exit %d; stderr:\n%s", code, stderr.String())
		}
		mu.Lock()
		if paths["/v1/traces"] == 0 || paths["/v1/metrics"] == 0 {
			t.Errorf("interrupted %v: protobuf requests by path %v; want /v1/traces and /v1/metrics; stderr:\n%s", interrupted, paths, stderr.String())
		}
		mu.Unlock()
		srv.Close()
	}
}

// cancelOnWrite cancels after its after-th write.
type cancelOnWrite struct {
	mu     sync.Mutex
	w      io.Writer
	after  int
	cancel context.CancelFunc
}

func (c *cancelOnWrite) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.after--
	if c.after == 0 {
		c.cancel()
	}
	c.mu.Unlock()
	return c.w.Write(p)
}
