package service_test

import (
	"context"
	"iter"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/httpmock"
	"github.com/hubkit/iothub/internal/leakcheck"
	"github.com/hubkit/iothub/service"
)

// TestNoGoroutineLeftBehind ends fan-outs every way they can end, over real
// connections, and checks that once the client's idle connections are
// closed no goroutine the run started is left. Before CloseIdleConnections
// the keep-alive connections hold goroutines (that is what they are for);
// the test checks that too, so that it can tell a leak from a pool.
//
// It is not parallel: leakcheck counts every goroutine of the process.
func TestNoGoroutineLeftBehind(t *testing.T) {
	stops := []struct {
		name string
		run  func(t *testing.T, run *service.FanOut, cancel context.CancelFunc)
	}{
		{"context cancelled", func(t *testing.T, run *service.FanOut, cancel context.CancelFunc) {
			n := 0
			for range run.Results() {
				if n++; n == 3 {
					cancel()
				}
			}
		}},
		{"aborted", func(t *testing.T, run *service.FanOut, cancel context.CancelFunc) {
			n := 0
			for range run.Results() {
				if n++; n == 3 {
					run.Abort()
				}
			}
		}},
		{"results abandoned", func(t *testing.T, run *service.FanOut, cancel context.CancelFunc) {
			for range run.Results() {
				break
			}
		}},
		{"ran to the end", func(t *testing.T, run *service.FanOut, cancel context.CancelFunc) {
			for range run.Results() {
			}
		}},
	}
	for _, st := range stops {
		t.Run(st.name, func(t *testing.T) {
			hub, _, client, _, ts := tlsHub(t, 40, 20*time.Millisecond, iothub.RetryOptions{})
			base := leakcheck.Take()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			run, err := client.StartFanOut(ctx, iter.Seq2[service.Target, error](targetList(ts)), service.MethodParams[any]{Name: "reboot"}, &service.FanOutOptions{Concurrency: 8})
			if err != nil {
				t.Fatal(err)
			}
			st.run(t, run, cancel)
			if len(hub.Calls()) == 0 {
				t.Fatal("no call was made")
			}
			// The fan-out's own goroutines end with it; what is left is
			// the connection pool (client and server side).
			waitFor(t, func() bool { return len(base.Leaked()) > 0 && allConnections(base.Leaked()) })
			client.CloseIdleConnections()
			base.Check(t)
		})
	}
}

// TestCloseIdleConnectionsDefaultTransport checks the SDK's own default
// transport: after a call its connection stays pooled, and
// CloseIdleConnections ends it. The hub is served over plain HTTP here
// (InsecureAllowHTTP), as the default transport trusts only real
// certificates.
func TestCloseIdleConnectionsDefaultTransport(t *testing.T) {
	hub := httpmock.New(nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
	srv := httptest.NewServer(hub)
	defer srv.Close()
	client, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), &iothub.ClientOptions{
		Endpoint: srv.URL, InsecureAllowHTTP: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	base := leakcheck.Take()
	if _, err := client.InvokeDeviceMethod(t.Context(), "d1", service.MethodParams[any]{Name: "m"}, nil); err != nil {
		t.Fatal(err)
	}
	if len(base.Leaked()) == 0 {
		t.Fatal("no pooled connection after a call; the check below would prove nothing")
	}
	client.CloseIdleConnections()
	base.Check(t)
}

// allConnections reports whether every stack is a connection's: the
// transport's read and write loops, or the server's per-connection serve.
func allConnections(stacks []string) bool {
	for _, s := range stacks {
		if !containsAny(s, "persistConn", "http2.(*ClientConn)", "http2clientConnReadLoop", "(*conn).serve", "http2.(*serverConn)", "(*http2serverConn)", "(*http2ClientConn)", "(*clientConnReadLoop)") {
			return false
		}
	}
	return true
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// waitFor polls cond for up to leakcheck.Wait.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(leakcheck.Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
