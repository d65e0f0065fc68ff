package registry_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/heapprobe"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/registry"
)

// BenchmarkDecodeTwinPage decodes a page of 1,000 twins as QueryTwins does:
// the page into rows, each row into a Twin.
func BenchmarkDecodeTwinPage(b *testing.B) {
	sample, err := os.ReadFile("testdata/twin.json")
	if err != nil {
		b.Fatal(err)
	}
	var page bytes.Buffer
	page.WriteByte('[')
	for i := range 1000 {
		if i > 0 {
			page.WriteByte(',')
		}
		page.Write(bytes.Replace(sample, []byte(`"sample-device"`), fmt.Appendf(nil, `"device-%04d"`, i), 1))
	}
	page.WriteByte(']')
	b.SetBytes(int64(page.Len()))
	b.ReportAllocs()
	for b.Loop() {
		var rows []json.RawMessage
		if err := json.Unmarshal(page.Bytes(), &rows); err != nil {
			b.Fatal(err)
		}
		for _, r := range rows {
			var t registry.Twin
			if err := json.Unmarshal(r, &t); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkQueryTwinsMemory ranges over every twin of a simulated hub and
// reports how much more live heap there is, a quarter, half and three
// quarters of the way through, than before the loop (after a GC each time,
// so that garbage waiting for the collector does not count): the client
// keeps one page at a time, so it stays flat whatever the fleet size. The
// simulated hub's own store is allocated before the baseline.
func BenchmarkQueryTwinsMemory(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("twins=%d", n), func(b *testing.B) {
			hub := httpmock.New(nil)
			for i := range n {
				hub.AddDevice(fmt.Sprintf("dev-%06d", i), nil)
			}
			client, err := registry.NewClientFromConnectionString(hub.ConnectionString("iothubowner"),
				&iothub.ClientOptions{Transport: hub.RoundTripper()})
			if err != nil {
				b.Fatal(err)
			}
			var peak float64
			b.ReportAllocs()
			for b.Loop() {
				probe := heapprobe.Start()
				count := 0
				for _, err := range client.QueryTwins(b.Context(), "SELECT * FROM devices", &registry.QueryOptions{PageSize: 1000}) {
					if err != nil {
						b.Fatal(err)
					}
					count++
					if count%(n/4) == 0 && count < n {
						probe.Sample()
					}
				}
				if count != n {
					b.Fatalf("%d twins, want %d", count, n)
				}
				peak = max(peak, probe.PeakMiB())
			}
			b.ReportMetric(peak, "live-heap-growth-MiB")
		})
	}
}
