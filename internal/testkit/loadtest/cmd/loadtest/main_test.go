package main

import (
	"bytes"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestMain lets the test binary serve the hub when the harness starts it
// as its child, as the command does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-serve" {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestRunSmall runs the harness end to end with tiny figures: a child hub,
// both clients side by side, a fan-out sweep. It checks the report's
// shape, not its numbers.
func TestRunSmall(t *testing.T) {
	var out bytes.Buffer
	cfg := config{n: 200, concurrency: []int{4}, rounds: 2, devices: 10, sweep: []int{50}, sweepC: 4}
	if err := run(cfg, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"negotiated: HTTP/1.1",
		"concurrency 4: 2 rounds of 100 calls per client",
		"  reference ",
		"  sdk ",
		"sdk/reference: CPU per call",
		"fan-out over streamed targets, concurrency 4",
		"         50 ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRunAA runs the harness's A/A mode: the SDK in both places, so both
// rows show the SDK's allocations per call (the reference makes about ten
// fewer).
func TestRunAA(t *testing.T) {
	var out bytes.Buffer
	cfg := config{n: 2000, concurrency: []int{2}, rounds: 2, devices: 5, sweepC: 2, aa: true}
	if err := run(cfg, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "A/A run") {
		t.Errorf("an A/A run should say so:\n%s", out.String())
	}
	_, after, _ := strings.Cut(out.String(), "allocs per call ")
	diff, _, _ := strings.Cut(after, ",")
	// Allocations are counted for the whole process per block, so the
	// runtime's and the hub connection's own allocations land on
	// whichever client's block they fall in: with 1,000 calls a block
	// (about 100 allocations per call under -race) that moves a row by a
	// few per call. A biased harness would differ by ten or more, the gap
	// between the SDK and the reference.
	if d, err := strconv.ParseFloat(diff, 64); err != nil || math.Abs(d) > 5 {
		t.Errorf("A/A allocations per call differ by %q, want within 5:\n%s", diff, out.String())
	}
}

func TestParseList(t *testing.T) {
	t.Parallel()
	if got, err := parseList("1, 64,256"); err != nil || len(got) != 3 || got[0] != 1 || got[1] != 64 || got[2] != 256 {
		t.Errorf("parseList = %v, %v", got, err)
	}
	for _, bad := range []string{"0", "-1", "x", "1,,y"} {
		if _, err := parseList(bad); err == nil {
			t.Errorf("parseList(%q): nil error", bad)
		}
	}
}
