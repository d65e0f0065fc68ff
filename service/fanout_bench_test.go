package service_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/httpmock"
	"github.com/hubkit/iothub/service"
)

// BenchmarkFanOut invokes a method on 10,000 simulated devices that each
// take 20 ms to answer, at concurrency 200, through the in-process hub. The
// ideal wall time is N × latency / concurrency = 1 s; the benchmark reports
// the worst ratio to it (x-ideal).
func BenchmarkFanOut(b *testing.B) {
	const n, concurrency, latency = 10_000, 200, 20 * time.Millisecond
	hub := httpmock.New(nil)
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("dev-%05d", i)
		hub.AddDevice(ids[i], &httpmock.DeviceOptions{Latency: latency, Handler: echo})
	}
	client, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), &iothub.ClientOptions{Transport: hub.RoundTripper()})
	if err != nil {
		b.Fatal(err)
	}
	ideal := time.Duration(n) * latency / concurrency
	var worst float64
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		run, err := client.StartFanOut(b.Context(), service.Devices(ids...), service.MethodParams[any]{Name: "reboot"}, &service.FanOutOptions{Concurrency: concurrency})
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
		if count != n {
			b.Fatalf("%d results", count)
		}
		worst = max(worst, float64(time.Since(start))/float64(ideal))
	}
	b.ReportMetric(worst, "x-ideal")
}
