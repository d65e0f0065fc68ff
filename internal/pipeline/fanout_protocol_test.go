package pipeline

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/auth"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
)

// TestFanOutConnections runs 64 workers of sequential calls through
// WithConnLimit(64), as a fan-out of concurrency 64 does, against the TLS
// fake hub, which offers HTTP/2. By default the calls go over HTTP/1.1 (in
// the server's view) on at most 64 connections; with ClientOptions.HTTP2
// they go over HTTP/2 on at most 2 (one, in fact: the workers share the
// first rather than each dialling its own). With HTTP2 against a server that
// declines HTTP/2 (the hub served over HTTP/1.1 only), the fan-out is not
// held to one connection: it goes on over at most 64 (plus the first).
func TestFanOutConnections(t *testing.T) {
	t.Parallel()
	const workers, calls = 64, 20
	for _, tt := range []struct {
		name      string
		http2     bool
		http1Only bool // the server declines HTTP/2
		wantProto string
		minConns  int32
		maxConns  int32
	}{
		{"default", false, false, "HTTP/1.1", 1, workers},
		{"HTTP/2 opt-in", true, false, "HTTP/2.0", 1, 2},
		{"HTTP/2 opt-in, declined", true, true, "HTTP/1.1", 2, workers + 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hub := httpmock.New(nil)
			for i := range workers {
				hub.AddDevice(fmt.Sprintf("d%d", i), nil)
			}
			url, cert := startTLS(t, hub, tt.http1Only)
			cs, err := auth.ParseConnectionString(hub.ConnectionString("service"))
			if err != nil {
				t.Fatal(err)
			}
			a, err := cs.Authorizer(nil)
			if err != nil {
				t.Fatal(err)
			}
			p, err := New(cs.HostName, a, &iothub.ClientOptions{Endpoint: url, HTTP2: tt.http2})
			if err != nil {
				t.Fatal(err)
			}
			var cc closeCounter
			cc.watch(p.transport.(*http.Transport), cert)
			limited, release := p.WithConnLimit(workers)
			defer release()
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for range calls {
						req := methodRequest(RetryNotDelivered)
						req.DeviceID = fmt.Sprintf("d%d", w)
						req.Path = "/twins/" + req.DeviceID + "/methods"
						if _, err := limited.Do(t.Context(), req); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			t.Logf("%d connections opened for %d workers", cc.dialed.Load(), workers)
			if n := cc.dialed.Load(); n < tt.minConns || n > tt.maxConns {
				t.Errorf("%d connections opened for %d workers, want %d to %d", n, workers, tt.minConns, tt.maxConns)
			}
			reqs := hub.Requests()
			if len(reqs) != workers*calls {
				t.Errorf("hub saw %d requests, want %d", len(reqs), workers*calls)
			}
			for _, r := range reqs {
				if r.Proto != tt.wantProto {
					t.Fatalf("hub saw %s, want %s", r.Proto, tt.wantProto)
				}
			}
		})
	}
}

// startTLS serves hub over TLS, as httpmock's StartTLS does (HTTP/2 and
// HTTP/1.1), or over HTTP/1.1 only, and returns its URL and certificate.
func startTLS(t *testing.T, hub *httpmock.Hub, http1Only bool) (string, *x509.Certificate) {
	t.Helper()
	if http1Only {
		srv := httptest.NewTLSServer(hub)
		t.Cleanup(srv.Close)
		return srv.URL, srv.Certificate()
	}
	srv, err := hub.StartTLS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv.URL, srv.Certificate()
}
