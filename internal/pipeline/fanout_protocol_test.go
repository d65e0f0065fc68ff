package pipeline

import (
	"crypto/x509"
	"fmt"
	"net/http"
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
// first rather than each dialling its own).
func TestFanOutConnections(t *testing.T) {
	t.Parallel()
	const workers, calls = 64, 20
	for _, tt := range []struct {
		name      string
		http2     bool
		wantProto string
		maxConns  int32
	}{
		{"default", false, "HTTP/1.1", workers},
		{"HTTP/2 opt-in", true, "HTTP/2.0", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hub := httpmock.New(nil)
			for i := range workers {
				hub.AddDevice(fmt.Sprintf("d%d", i), nil)
			}
			srv, err := hub.StartTLS()
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			cs, err := auth.ParseConnectionString(hub.ConnectionString("service"))
			if err != nil {
				t.Fatal(err)
			}
			a, err := cs.Authorizer(nil)
			if err != nil {
				t.Fatal(err)
			}
			p, err := New(cs.HostName, a, &iothub.ClientOptions{Endpoint: srv.URL, HTTP2: tt.http2})
			if err != nil {
				t.Fatal(err)
			}
			var cc closeCounter
			cert, err := x509.ParseCertificate(srv.Certificate().Raw)
			if err != nil {
				t.Fatal(err)
			}
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
			if n := cc.dialed.Load(); n > tt.maxConns {
				t.Errorf("%d connections opened for %d workers, want at most %d", n, workers, tt.maxConns)
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
