package simfleet_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/internal/testkit/simfleet"
)

// BenchmarkIdleDevice records the live heap an idle simulated device costs
// (registered, online, with the fleet's method handlers, no calls yet), as
// the standalone simulator and the examples' embedded hub build their
// fleets. Run the 1M case with
//
//	go test -run '^$' -bench IdleDevice -benchtime 1x ./internal/testkit/simfleet
//
// Benchmarks never run in plain go test.
func BenchmarkIdleDevice(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			var perDevice float64
			for b.Loop() {
				base := liveHeap()
				h := httpmock.New(&httpmock.Options{MaxRecorded: 10_000})
				simfleet.Add(h, &simfleet.Options{Fleet: n})
				after := liveHeap()
				perDevice = float64(after-base) / float64(h.DeviceCount())
				runtime.KeepAlive(h)
			}
			b.ReportMetric(perDevice, "B/device")
		})
	}
}

// liveHeap is the heap in use after a collection, as heapprobe measures it.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
