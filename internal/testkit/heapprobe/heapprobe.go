// Package heapprobe measures how far a program's live heap rises during a
// piece of work, for benchmarks that show memory staying flat.
package heapprobe

import "runtime"

// Probe records the live heap at its start and the largest rise above it
// seen by Sample. Each measurement forces a garbage collection first, so
// that it counts what is retained, not garbage waiting for the collector.
// A Probe is not safe for concurrent use.
type Probe struct {
	base, peak uint64
}

// Start returns a Probe whose baseline is the live heap now.
func Start() *Probe {
	return &Probe{base: liveHeap()}
}

// Sample measures the live heap and keeps its rise above the baseline if
// it is the largest so far.
func (p *Probe) Sample() {
	if h := liveHeap(); h > p.base {
		p.peak = max(p.peak, h-p.base)
	}
}

// PeakMiB is the largest rise Sample saw, in MiB.
func (p *Probe) PeakMiB() float64 {
	return float64(p.peak) / (1 << 20)
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
