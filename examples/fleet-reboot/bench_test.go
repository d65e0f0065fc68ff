package main

import (
	"encoding/json"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/hubkit/iothub/service"
)

// BenchmarkReportAndProgress is the program's own work per result: one
// report line encoded and written to the file, and the progress count.
// "one at a time" is results that arrive one by one, a write each;
// "eight ready" is results that arrive eight together (FanOut.Buffered),
// one write for the eight. Compare it with the cost of a call
// (docs/performance.md).
func BenchmarkReportAndProgress(b *testing.B) {
	for _, bb := range []struct {
		name  string
		ready int // results ready together
	}{{"one at a time", 1}, {"eight ready", 8}} {
		b.Run(bb.name, func(b *testing.B) {
			w, err := openReport(filepath.Join(b.TempDir(), "report.jsonl"), false)
			if err != nil {
				b.Fatal(err)
			}
			p := newProgress(display{w: io.Discard, every: time.Hour}, -1, time.Now())
			r := service.Result{
				Target:   service.Target{DeviceID: "sim-fleet-00042"},
				Outcome:  service.OutcomeSucceeded,
				Status:   200,
				Payload:  json.RawMessage(`{"rebooting":true,"delay":5}`),
				Attempts: 1,
				Latency:  25 * time.Millisecond,
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				w.write(r, i%bb.ready != 0)
				p.add(r.Outcome)
			}
			b.StopTimer()
			p.finish(false)
			if err := w.close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
