package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
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

// BenchmarkLoadTargets is reading -devices @FILE of 20,000 ids, one per
// line, and dropping the repeated ones, as a run does before its first
// call.
func BenchmarkLoadTargets(b *testing.B) {
	var sb strings.Builder
	for i := range 20_000 {
		fmt.Fprintf(&sb, "sim-fleet-%05d\n", i+1)
	}
	file := filepath.Join(b.TempDir(), "devices.txt")
	if err := os.WriteFile(file, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ids, err := parseDevices("@" + file)
		if err != nil {
			b.Fatal(err)
		}
		if n := len(uniq(ids)); n != 20_000 {
			b.Fatalf("%d ids", n)
		}
	}
}
