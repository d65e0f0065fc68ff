package simfleet_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/hubkit/iothub/internal/testkit/heapprobe"
	"github.com/hubkit/iothub/internal/testkit/simfleet"
	"github.com/hubkit/iothub/iothubtest"
)

// BenchmarkIdleDevice records the live heap an idle simulated device costs
// (registered, online, with the fleet's method handlers, no calls yet), as
// the standalone simulator and the examples' embedded hub build their
// fleets: the rise of the live heap after a collection (heapprobe), over
// the devices. Run it, the 1M case included, with
//
//	go test -run '^$' -bench IdleDevice -benchtime 1x ./internal/testkit/simfleet
//
// Benchmarks never run in plain go test.
func BenchmarkIdleDevice(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			var perDevice float64
			for b.Loop() {
				probe := heapprobe.Start()
				h := iothubtest.New(&iothubtest.Options{MaxRecorded: 10_000})
				opts := &simfleet.Options{Fleet: n}
				simfleet.Add(h, opts)
				probe.Sample()
				perDevice = probe.PeakMiB() * (1 << 20) / float64(len(simfleet.DeviceIDs(opts)))
				runtime.KeepAlive(h)
				h.Close()
			}
			b.ReportMetric(perDevice, "B/device")
		})
	}
}
