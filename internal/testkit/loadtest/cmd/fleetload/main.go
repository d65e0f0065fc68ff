// Command fleetload runs fleet flow-control scenarios of
// service.Client.StartFanOut against the simulated hub served over TLS
// (in this process: the figures are about pacing, not CPU) and prints, per
// run: targets, wall time, calls per second, their share of the hub's
// limit, and the throttled calls and their share of all calls; for the
// limit-change run the rate second by second, for the fault runs how long
// the fan-out took to report every target once the fault began.
//
// Scenarios (-scenario, a comma-separated list, default all of them):
//
//	limit       10,000 targets, a 1,000 calls/s limit (burst 50 ms, no
//	            traffic shaping), 10 ms device latency, no client rate;
//	            every -c × every -retry-after
//	shaping     the same with traffic shaping: over-limit calls queued up
//	            to 2 s before any 429
//	change      25,000 targets; the limit halves at the first -change-at
//	            and doubles back at the second
//	s1          2,000 targets on one S1 unit with small payloads (40/s)
//	hubdown     3,000 targets given as a list; the hub closes at -fault-at
//	fleetfault  3,000 targets; at -fault-at the policy is revoked (401),
//	            the daily quota runs out (403002) or the hub is suspended
//	            (403001), one run each
//
// Every run checks the fan-out's truth: every target gets exactly one
// result and no device gets a call more than once. A run that breaks it
// prints a FAIL line and the command exits 1.
//
//	go run ./internal/testkit/loadtest/cmd/fleetload -scenario limit,hubdown
//	go run ./internal/testkit/loadtest/cmd/fleetload -scenario limit -targets 2000 -c 64 -retry-after half
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config is the command line.
type config struct {
	scenarios   []string
	targets     int // 0: each scenario's own number
	concurrency []int
	retryAfter  []string // "half" or "none"
	limit       float64  // calls/s of the limit, shaping, change, hubdown and fleetfault hubs
	latency     time.Duration
	faultAt     time.Duration
	changeAt    []time.Duration
	giveUp      time.Duration // a run still going after this is aborted
	backlog     time.Duration // the shaping hub's queue
}

// allScenarios are the scenario names, in the order they run.
var allScenarios = []string{"limit", "shaping", "change", "s1", "hubdown", "fleetfault"}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetload:", err)
		os.Exit(2)
	}
	if !run(cfg, os.Stdout) {
		os.Exit(1)
	}
}

// parseFlags reads the command line.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("fleetload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	scen := fs.String("scenario", strings.Join(allScenarios, ","), "scenarios to run: "+strings.Join(allScenarios, ", "))
	fs.IntVar(&cfg.targets, "targets", 0, "targets per run; 0 means each scenario's own (10,000, 25,000, 2,000, 3,000)")
	conc := fs.String("c", "64,256", "fan-out concurrency, or a comma-separated list (the runs other than limit and shaping use the first)")
	ra := fs.String("retry-after", "half,none", "which 429s carry Retry-After: half, none, or both as a list (the runs other than limit and shaping use the first)")
	fs.Float64Var(&cfg.limit, "limit", 1000, "the hub's direct-method limit in calls/s (not s1's)")
	fs.DurationVar(&cfg.latency, "latency", 10*time.Millisecond, "device latency")
	fs.DurationVar(&cfg.faultAt, "fault-at", 1500*time.Millisecond, "when the hub closes (hubdown) or the fleet-wide fault starts (fleetfault), from the fan-out's start")
	fs.DurationVar(&cfg.giveUp, "give-up", 15*time.Minute, "abort a run's fan-out (FanOut.Abort) that is still going after this long, and say so")
	fs.DurationVar(&cfg.backlog, "backlog", 2*time.Second, "how long the shaping hub queues over-limit calls before it answers 429 (shaping)")
	change := fs.String("change-at", "10s,20s", "when the limit halves and when it doubles back (change)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	var err error
	if cfg.scenarios, err = parseScenarios(*scen); err != nil {
		return config{}, err
	}
	if cfg.concurrency, err = parseInts(*conc); err != nil || len(cfg.concurrency) == 0 {
		return config{}, errors.New("-c wants positive integers separated by commas")
	}
	if cfg.retryAfter, err = parseRetryAfter(*ra); err != nil {
		return config{}, err
	}
	if cfg.changeAt, err = parseDurations(*change); err != nil || len(cfg.changeAt) != 2 || cfg.changeAt[0] >= cfg.changeAt[1] {
		return config{}, errors.New("-change-at wants two increasing durations, as in 10s,20s")
	}
	if cfg.targets < 0 || cfg.limit <= 0 || cfg.latency < 0 || cfg.faultAt <= 0 || cfg.giveUp <= 0 || cfg.backlog <= 0 {
		return config{}, errors.New("-targets must not be negative; -limit, -fault-at, -give-up and -backlog must be positive; -latency must not be negative")
	}
	return cfg, nil
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseScenarios(s string) ([]string, error) {
	list := splitList(s)
	for _, name := range list {
		if !slices.Contains(allScenarios, name) {
			return nil, fmt.Errorf("-scenario: unknown scenario %q; choose from %s", name, strings.Join(allScenarios, ", "))
		}
	}
	if len(list) == 0 {
		return nil, errors.New("-scenario: no scenario given")
	}
	return list, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		v, err := strconv.Atoi(f)
		if err != nil || v <= 0 {
			return nil, errors.New("not a positive integer")
		}
		out = append(out, v)
	}
	return out, nil
}

func parseRetryAfter(s string) ([]string, error) {
	list := splitList(s)
	for _, v := range list {
		if v != "half" && v != "none" {
			return nil, fmt.Errorf("-retry-after: %q is neither half nor none", v)
		}
	}
	if len(list) == 0 {
		return nil, errors.New("-retry-after: nothing given")
	}
	return list, nil
}

func parseDurations(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range splitList(s) {
		d, err := time.ParseDuration(f)
		if err != nil || d <= 0 {
			return nil, errors.New("not a positive duration")
		}
		out = append(out, d)
	}
	return out, nil
}

// run runs the chosen scenarios and reports whether every run kept the
// fan-out's guarantees.
func run(cfg config, out io.Writer) bool {
	ok := true
	for _, name := range cfg.scenarios {
		for i, p := range plans(name, cfg) {
			if i == 0 {
				fmt.Fprintf(out, "scenario %s: %d targets, %s\n", name, p.targets, p.header)
			}
			if !execute(p, out) {
				ok = false
			}
		}
		fmt.Fprintln(out)
	}
	return ok
}
