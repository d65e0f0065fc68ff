package edge

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// fullGzipAnswer returns a GetModuleLogs answer whose gzipped json logs
// are just under MaxLogsBytes, and how many records it holds.
func fullGzipAnswer(tb testing.TB) (json.RawMessage, int) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	type rec = wireLogRecord
	gz := func(recs []rec) []byte {
		raw, _ := json.Marshal(recs)
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(raw)
		_ = zw.Close()
		return buf.Bytes()
	}
	var recs []rec
	var data []byte
	for n := 1000; ; n += 1000 {
		for len(recs) < n {
			i := len(recs)
			recs = append(recs, rec{"hub.azure-devices.net", "edge-1", "tempSensor", "stdout", 6,
				fmt.Sprintf("reading %d: temperature %.2f humidity %.1f id %x", i, 15+10*rng.Float64(), 100*rng.Float64(), rng.Uint64()),
				t0.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)})
		}
		next := gz(recs)
		if len(next) > MaxLogsBytes {
			recs = recs[:n-1000]
			break
		}
		data = next
	}
	answer, _ := json.Marshal([]map[string]any{{"id": "tempSensor", "payloadBytes": data, "payload": nil}})
	return answer, len(recs)
}

// BenchmarkDecodeGzipLogs decodes a full (just under 127,000 gzipped
// bytes) GetModuleLogs answer: base64, gunzip, the records parsed.
func BenchmarkDecodeGzipLogs(b *testing.B) {
	answer, n := fullGzipAnswer(b)
	b.SetBytes(int64(len(answer)))
	b.ReportAllocs()
	for b.Loop() {
		logs, err := decodeLogs("edge-1", answer, ContentTypeJSON, DefaultMaxDecodedBytes)
		if err != nil || len(logs[0].Lines) != n {
			b.Fatalf("%d lines, %v", len(logs[0].Lines), err)
		}
	}
}
