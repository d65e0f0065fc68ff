package service_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/heapprobe"
	"github.com/hubkit/iothub/service"
)

// revoking is a hub stand-in that answers the first ok method calls with
// status 200 and every later one with 401002, as a hub whose policy was
// revoked mid-run; it keeps nothing.
type revoking struct {
	ok    int64
	calls atomic.Int64
}

func (h *revoking) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	status, body := http.StatusOK, `{"status":200,"payload":null}`
	if h.calls.Add(1) > h.ok {
		status, body = http.StatusUnauthorized, `{"Message":"{\"errorCode\":401002,\"message\":\"IotHubUnauthorizedAccess\"}"}`
	}
	return &http.Response{
		StatusCode:    status,
		Status:        http.StatusText(status),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json; charset=utf-8"}, "Iothub-Errorcode": {"IotHubUnauthorizedAccess"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}, nil
}

// BenchmarkFanOutFleetFaultRemaining: a fleet-wide fault (401) trips after
// 1,000 calls of a run over 1,000,001 streamed targets; the fan-out reads
// the rest of the sequence and reports every remaining target
// not-delivered without calling. It reports the time per remaining target
// (ns/remaining-target), the whole run's wall time (s/run) and how far the
// live heap rose above its level before the run, sampled after a GC at a
// quarter, half and three quarters of the results (live-heap-growth-MiB):
// flat, since no list of the remaining targets is built.
func BenchmarkFanOutFleetFaultRemaining(b *testing.B) {
	const ok, n = 1000, 1_000_001
	var peak, perTarget, wall float64
	b.ReportAllocs()
	for b.Loop() {
		hub := &revoking{ok: ok}
		client, err := service.NewClientFromConnectionString(
			"HostName=bench.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey="+benchKey,
			&iothub.ClientOptions{Transport: hub})
		if err != nil {
			b.Fatal(err)
		}
		probe := heapprobe.Start()
		start := time.Now()
		run, err := client.StartFanOut(b.Context(), generated(n), service.MethodParams[any]{Name: "reboot"},
			&service.FanOutOptions{Concurrency: 64, StartRate: 1e6})
		if err != nil {
			b.Fatal(err)
		}
		count, skipped := 0, 0
		var tripped time.Time
		for r := range run.Results() {
			count++
			if r.Attempts == 0 {
				if skipped == 0 {
					tripped = time.Now()
				}
				skipped++
				if !errors.Is(r.Err, service.ErrFleetFault) || iothub.MayHaveRun(r.Err) {
					b.Fatalf("%s: %v", r.DeviceID, r.Err)
				}
			}
			if count%(n/4) == 0 && count < n {
				probe.Sample()
			}
		}
		if count != n || skipped < n-ok-64 || !errors.Is(run.Err(), service.ErrFleetFault) {
			b.Fatalf("%d results, %d skipped, Err %v", count, skipped, run.Err())
		}
		perTarget = float64(time.Since(tripped).Nanoseconds()) / float64(skipped)
		wall = time.Since(start).Seconds()
		peak = max(peak, probe.PeakMiB())
	}
	b.ReportMetric(perTarget, "ns/remaining-target")
	b.ReportMetric(wall, "s/run")
	b.ReportMetric(peak, "live-heap-growth-MiB")
}

// BenchmarkFanOutHubKilledRemaining: the hub goes away (its listener
// closes, so connections are refused) after 1,000 calls of a run over
// 1,000,001 streamed targets. The pipeline's retries of the refused
// connections run their course, the breaker confirms the fault on the
// third call in a row that could not connect, and the fan-out reports
// every remaining target not-delivered without calling. It reports the
// time from the hub going away to the last result (s/hub-gone-to-last),
// the time per remaining target and the live heap's rise, as
// BenchmarkFanOutFleetFaultRemaining does.
func BenchmarkFanOutHubKilledRemaining(b *testing.B) {
	const ok, n = 1000, 1_000_001
	var peak, gone, perTarget float64
	b.ReportAllocs()
	for b.Loop() {
		var served atomic.Int64
		killed := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_, _ = io.WriteString(w, `{"status":200,"payload":null}`)
			if served.Add(1) == ok {
				close(killed)
			}
		}))
		go func() {
			<-killed
			srv.Listener.Close()
			srv.CloseClientConnections()
		}()
		client, err := service.NewClientFromConnectionString(
			"HostName=bench.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey="+benchKey,
			&iothub.ClientOptions{Endpoint: srv.URL, InsecureAllowHTTP: true})
		if err != nil {
			b.Fatal(err)
		}
		probe := heapprobe.Start()
		run, err := client.StartFanOut(b.Context(), generated(n), service.MethodParams[any]{Name: "reboot"},
			&service.FanOutOptions{Concurrency: 64, StartRate: 1e6})
		if err != nil {
			b.Fatal(err)
		}
		count, skipped := 0, 0
		var tripped, killedAt time.Time
		for r := range run.Results() {
			count++
			if killedAt.IsZero() {
				select {
				case <-killed:
					killedAt = time.Now()
				default:
				}
			}
			if r.Attempts == 0 {
				if skipped == 0 {
					tripped = time.Now()
				}
				skipped++
				if !errors.Is(r.Err, service.ErrFleetFault) || iothub.MayHaveRun(r.Err) {
					b.Fatalf("%s: %v", r.DeviceID, r.Err)
				}
			}
			if count%(n/4) == 0 && count < n {
				probe.Sample()
			}
		}
		srv.Close()
		// The calls in flight when the hub went away fail only once their
		// retries are spent, and workers freed by the first failures start
		// one more call each before the third trips the breaker: at most
		// two calls per worker after the hub is gone (a few calls past ok
		// are still served on open connections while it closes).
		if count != n || skipped < n-int(served.Load())-2*64 || !errors.Is(run.Err(), service.ErrFleetFault) {
			b.Fatalf("%d results, %d skipped, Err %v", count, skipped, run.Err())
		}
		gone = time.Since(killedAt).Seconds()
		perTarget = float64(time.Since(tripped).Nanoseconds()) / float64(skipped)
		peak = max(peak, probe.PeakMiB())
	}
	b.ReportMetric(gone, "s/hub-gone-to-last")
	b.ReportMetric(perTarget, "ns/remaining-target")
	b.ReportMetric(peak, "live-heap-growth-MiB")
}
