package service_test

import (
	"context"
	"iter"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/internal/testkit/leakcheck"
	"github.com/hubkit/iothub/service"
)

// TestNoGoroutineLeftBehind ends fan-outs every way they can end, over real
// connections, and checks that no goroutine the run started is left: a
// fan-out keeps its connections in a pool of its own and closes them when
// it ends, so not even keep-alive connections remain, without
// CloseIdleConnections.
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
