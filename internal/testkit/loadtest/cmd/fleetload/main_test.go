package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRunSmall runs one tiny scenario end to end: a hub over TLS, a
// fan-out of 300 targets at a limit it does not reach. It checks the
// report's fields, not its numbers.
func TestRunSmall(t *testing.T) {
	var out bytes.Buffer
	cfg := config{scenarios: []string{"limit"}, targets: 300, concurrency: []int{8}, retryAfter: []string{"half"},
		limit: 20000, latency: time.Millisecond, faultAt: time.Second, changeAt: []time.Duration{time.Second, 2 * time.Second}, giveUp: time.Minute}
	if !run(cfg, &out) {
		t.Fatalf("run reported a broken guarantee:\n%s", out.String())
	}
	report := out.String()
	for _, want := range []string{
		"scenario limit: 300 targets, hub limit 20000 calls/s (burst 50 ms), no traffic shaping, device latency 1ms, no client rate",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q:\n%s", want, report)
		}
	}
	line := regexp.MustCompile(`(?m)^  c=8 retry-after=half +targets +300  wall +[0-9.]+m?s  calls/s +[0-9]+  share of limit +[0-9.]+%  throttled +0 \( ?0\.00% of calls\)  succeeded=300 attempts=300$`)
	if !line.MatchString(report) {
		t.Errorf("the run's line is not as expected:\n%s", report)
	}
	if strings.Contains(report, "FAIL") {
		t.Errorf("the report has a FAIL line:\n%s", report)
	}
}

// TestCheckFails feeds check an outcome that breaks each guarantee.
func TestCheckFails(t *testing.T) {
	t.Parallel()
	fl := &fleet{ids: []string{"dev-000000", "dev-000001", "dev-000002"}}
	o := &outcome{results: map[string]int{"dev-000000": 1, "dev-000001": 2}, strangers: 1, maxPerDev: 2, gaveUp: -1}
	var out bytes.Buffer
	if check(&out, plan{scenario: "limit", variant: "c=1"}, fl, o) {
		t.Error("check passed an outcome with a missing, a duplicate and a stranger result")
	}
	want := "FAIL limit c=1: 1 targets without a result, 1 with more than one, 1 results for targets not asked for\n" +
		"FAIL limit c=1: a device got 2 calls: a duplicate invocation\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("check's output (-want +got):\n%s", diff)
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	cfg, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := config{scenarios: allScenarios, concurrency: []int{64, 256}, retryAfter: []string{"half", "none"}, limit: 1000,
		latency: 10 * time.Millisecond, faultAt: 1500 * time.Millisecond, changeAt: []time.Duration{10 * time.Second, 20 * time.Second}, giveUp: 15 * time.Minute, backlog: 2 * time.Second}
	if diff := cmp.Diff(want, cfg, cmp.AllowUnexported(config{})); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	for _, args := range [][]string{
		{"-scenario", "nope"},
		{"-scenario", ""},
		{"-c", "0"},
		{"-backlog", "0s"},
		{"-retry-after", "always"},
		{"-change-at", "20s,10s"},
		{"-change-at", "10s"},
		{"-targets", "-1"},
		{"-limit", "0"},
		{"-give-up", "0s"},
	} {
		if _, err := parseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("parseFlags(%q): nil error", args)
		}
	}
}
