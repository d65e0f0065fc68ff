package service_test

import (
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"
	"testing"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/heapprobe"
	"github.com/hubkit/iothub/service"
)

// answering is a hub stand-in that answers every method call at once with
// status 200 and keeps nothing, so that a benchmark's memory is the
// client's alone. (The simulated hub remembers every delivery, which a
// million targets would make the largest thing in the process.)
type answering struct{}

func (answering) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	const body = `{"status":200,"payload":null}`
	return &http.Response{
		StatusCode:    http.StatusOK,
		Status:        "200 OK",
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json; charset=utf-8"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}, nil
}

// generated yields n device targets made up as they are read, as a
// registry query's pages would: no list of them exists anywhere.
func generated(n int) iter.Seq2[service.Target, error] {
	return func(yield func(service.Target, error) bool) {
		for i := range n {
			if !yield(service.Target{DeviceID: fmt.Sprintf("dev-%07d", i)}, nil) {
				return
			}
		}
	}
}

// BenchmarkFanOutMemory runs a fan-out over 10,000, 100,000 and 1,000,000
// streamed targets at concurrency 64 through the whole client (validation,
// signing, the retry layer, decoding, outcome classification) and reports
// how far the live heap rose above its level before the run, sampled after
// a GC at a quarter, half and three quarters of the results
// (live-heap-growth-MiB). The fan-out holds only the calls in flight, so
// the figure stays flat whatever the number of targets.
func BenchmarkFanOutMemory(b *testing.B) {
	client, err := service.NewClientFromConnectionString(
		"HostName=bench.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey="+benchKey,
		&iothub.ClientOptions{Transport: answering{}})
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			var peak float64
			b.ReportAllocs()
			for b.Loop() {
				probe := heapprobe.Start()
				run, err := client.StartFanOut(b.Context(), generated(n), service.MethodParams[any]{Name: "reboot"},
					&service.FanOutOptions{Concurrency: 64})
				if err != nil {
					b.Fatal(err)
				}
				count := 0
				for r := range run.Results() {
					if r.Outcome != service.OutcomeSucceeded {
						b.Fatalf("%s: %s %v", r.DeviceID, r.Outcome, r.Err)
					}
					count++
					if count%(n/4) == 0 && count < n {
						probe.Sample()
					}
				}
				if count != n {
					b.Fatalf("%d results, want %d", count, n)
				}
				peak = max(peak, probe.PeakMiB())
			}
			b.ReportMetric(peak, "live-heap-growth-MiB")
		})
	}
}

// benchKey is a made-up shared access key (base64 of 32 bytes).
const benchKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
