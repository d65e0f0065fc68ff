package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRunSmall builds the programs and runs them end to end with tiny
// figures: the simulator, one call, one round of each program. It checks the
// report's shape, not its numbers.
func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three programs")
	}
	var out bytes.Buffer
	if err := run(config{n: 200, concurrency: []int{8}, rounds: 1}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	report := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^one call \(reference -devices sim-fleet-00001, startup included\): wall \S+, CPU \S+, peak RSS [0-9.]+ MiB$`),
		regexp.MustCompile(`(?m)^one call \(fleet-reboot -devices sim-fleet-00001, startup included\): wall \S+, CPU \S+, peak RSS [0-9.]+ MiB$`),
		regexp.MustCompile(`(?m)^concurrency 8: 1 rounds of 200 calls per program$`),
		// The reference keeps a plain transport, which over HTTP/1.1 may
		// dial a spare connection past its concurrency; only the SDK's
		// fan-out promises at most one per worker.
		regexp.MustCompile(`(?m)^  round 1  reference +CPU +\S+ +[0-9.]+ µs/call  peak RSS +[0-9.]+ MiB  conns +[0-9]+  wall +\S+$`),
		regexp.MustCompile(`(?m)^  round 1  fleet-reboot +CPU +\S+ +[0-9.]+ µs/call  peak RSS +[0-9.]+ MiB  conns +[1-8]  wall +\S+$`),
		regexp.MustCompile(`(?m)^fleet-reboot/reference c=8: CPU median [0-9.]+× \(range [0-9.]+–[0-9.]+ over 1 rounds\); peak RSS median [0-9.]+× \(range [0-9.]+–[0-9.]+ over 1 rounds\)$`),
	} {
		if !want.MatchString(report) {
			t.Errorf("the report lacks %s:\n%s", want, report)
		}
	}
}

func TestParseInts(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"8,64,256", []int{8, 64, 256}, false},
		{" 4 ", []int{4}, false},
		{"8,0", nil, true},
		{"x", nil, true},
	}
	for _, tt := range tests {
		got, err := parseInts(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseInts(%q) err = %v, want error %v", tt.in, err, tt.wantErr)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("parseInts(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestSummary(t *testing.T) {
	got := summary([]float64{1.5, 1.1, 1.3, 1.2})
	if want := "median 1.25× (range 1.10–1.50 over 4 rounds)"; !strings.Contains(got, want) {
		t.Errorf("summary = %q, want %q", got, want)
	}
}
