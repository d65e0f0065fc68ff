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
// report line encoded and written to the file (one write per line, the
// case of results that arrive one at a time; results ready together share
// a write) and the progress count. Compare it
// with the cost of a call (docs/performance.md).
func BenchmarkReportAndProgress(b *testing.B) {
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
	for b.Loop() {
		w.write(r, false)
		p.add(r.Outcome)
	}
	b.StopTimer()
	p.finish(false)
	if err := w.close(); err != nil {
		b.Fatal(err)
	}
}
