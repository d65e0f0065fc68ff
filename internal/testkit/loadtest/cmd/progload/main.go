// Command progload measures whole programs as users run them:
// examples/fleet-reboot against refprog, a minimal reference program
// (net/http, one SAS token, a JSON decode of each answer), each a child
// process invoking "reboot" on the same devices against the standalone
// simulator (cmd/iothubsim) over TLS, alternating, several rounds per
// concurrency. Devices answer at once (latency 0).
//
// Usage:
//
//	go run ./internal/testkit/loadtest/cmd/progload [-n 20000] [-c 8,64,256] [-rounds 5]
//
// For each run it prints the child's user+system CPU (rusage), CPU per
// call, peak RSS (rusage Maxrss), the connections it opened (distinct TCP
// sockets seen in /proc/PID/fd, polled every 2 ms: keep-alive connections
// live for the whole run, so none is missed unless the client churns; a
// name lookup's netlink or Unix socket is not counted) and
// wall time; then per concurrency the ratio fleet-reboot ÷ reference of each
// round, with its median and range. The programs are built once, into a
// temporary directory, with the go command on PATH; Linux only (rusage
// and /proc).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// config is what the flags set.
type config struct {
	n           int   // calls per run: devices in the list
	concurrency []int // one table per value
	rounds      int   // alternating pairs of runs per concurrency
}

func main() {
	cfg := config{}
	var cs string
	flag.IntVar(&cfg.n, "n", 20000, "calls per run (each to a distinct device)")
	flag.StringVar(&cs, "c", "8,64,256", "comma-separated concurrencies")
	flag.IntVar(&cfg.rounds, "rounds", 5, "alternating rounds per concurrency")
	flag.Parse()
	var err error
	if cfg.concurrency, err = parseInts(cs); err != nil || cfg.n < 1 || cfg.rounds < 1 {
		fmt.Fprintf(os.Stderr, "progload: -n and -rounds must be positive and -c a list of positive integers (%v)\n", err)
		os.Exit(2)
	}
	if err := run(cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "progload:", err)
		os.Exit(1)
	}
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// run builds the programs, starts the simulator, and measures.
func run(cfg config, out io.Writer) error {
	dir, err := os.MkdirTemp("", "progload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bins, err := build(dir)
	if err != nil {
		return err
	}
	hub, err := startSim(bins.sim, dir, cfg.n)
	if err != nil {
		return err
	}
	defer hub.stop()
	devices, err := writeDevices(dir, cfg.n)
	if err != nil {
		return err
	}
	env := append(os.Environ(), "SSL_CERT_FILE="+hub.certPath)
	report := filepath.Join(dir, "report.jsonl")
	progs := []program{
		{name: "reference", args: func(c int, devices string) []string {
			return []string{bins.ref, "-connection-string", hub.connectionString, "-devices", devices, "-concurrency", strconv.Itoa(c)}
		}},
		{name: "fleet-reboot", args: func(c int, devices string) []string {
			return []string{bins.fleet, "-connection-string", hub.connectionString, "-devices", devices,
				"-concurrency", strconv.Itoa(c), "-report", report}
		}, before: func() error { return removeIfExists(report) }},
	}
	fmt.Fprintf(out, "progload: %d reboot calls per run, each program a child process against cmd/iothubsim over TLS (it offers HTTP/2 and HTTP/1.1; both programs speak HTTP/1.1), device latency 0; %d alternating rounds\n\n", cfg.n, cfg.rounds)
	for _, p := range progs {
		r, err := runProgram(p, p.args(1, firstDevice), env)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "one call (%s -devices %s, startup included): wall %s, CPU %s, peak RSS %.1f MiB\n", p.name, firstDevice, fmtDur(r.wall), fmtDur(r.cpu), mib(r.maxRSS))
	}
	fmt.Fprintln(out)
	devices = "@" + devices
	for _, c := range cfg.concurrency {
		if err := compare(out, progs, env, devices, c, cfg); err != nil {
			return err
		}
	}
	return nil
}

func removeIfExists(name string) error {
	if err := os.Remove(name); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
