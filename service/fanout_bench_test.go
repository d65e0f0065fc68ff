package service_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/service"
)

// BenchmarkFanOut invokes a method on simulated devices that each take
// 20 ms to answer, through the in-process hub, at concurrency 1, 64 and
// 256 (50 calls per worker, so the ideal wall time N × latency /
// concurrency is 1 s in each case) and at 200 over 10,000 devices. It
// reports the worst ratio of a run's wall time to the ideal (x-ideal) and
// the allocations and bytes per call, the hub's included.
func BenchmarkFanOut(b *testing.B) {
	const latency = 20 * time.Millisecond
	for _, tc := range []struct{ n, concurrency int }{
		{50, 1},
		{50 * 64, 64},
		{50 * 256, 256},
		{10_000, 200},
	} {
		b.Run(fmt.Sprintf("n=%d/concurrency=%d", tc.n, tc.concurrency), func(b *testing.B) {
			hub := httpmock.New(nil)
			ids := make([]string, tc.n)
			for i := range tc.n {
				ids[i] = fmt.Sprintf("dev-%05d", i)
				hub.AddDevice(ids[i], &httpmock.DeviceOptions{Latency: latency, Handler: echo})
			}
			client, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), &iothub.ClientOptions{Transport: hub.RoundTripper()})
			if err != nil {
				b.Fatal(err)
			}
			ideal := time.Duration(tc.n) * latency / time.Duration(tc.concurrency)
			var worst float64
			var calls uint64
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				run, err := client.StartFanOut(b.Context(), service.Devices(ids...), service.MethodParams[any]{Name: "reboot"}, &service.FanOutOptions{Concurrency: tc.concurrency})
				if err != nil {
					b.Fatal(err)
				}
				count := 0
				for r := range run.Results() {
					if r.Outcome != service.OutcomeSucceeded {
						b.Fatalf("%s: %v", r.DeviceID, r.Err)
					}
					count++
				}
				if count != tc.n {
					b.Fatalf("%d results", count)
				}
				calls += uint64(count)
				worst = max(worst, float64(time.Since(start))/float64(ideal))
			}
			runtime.ReadMemStats(&after)
			b.ReportMetric(worst, "x-ideal")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(calls), "allocs/call")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(calls), "B/call")
		})
	}
}
