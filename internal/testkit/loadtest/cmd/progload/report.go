package main

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// runProgram prepares p's run and runs argv.
func runProgram(p program, argv, env []string) (result, error) {
	if p.before != nil {
		if err := p.before(); err != nil {
			return result{}, err
		}
	}
	return runChild(argv, env)
}

// compare runs the programs alternately, rounds times, at concurrency c,
// and prints each run and the ratios.
func compare(out io.Writer, progs []program, env []string, devices string, c int, cfg config) error {
	fmt.Fprintf(out, "concurrency %d: %d rounds of %d calls per program\n", c, cfg.rounds, cfg.n)
	var cpuRatio, rssRatio []float64
	for round := range cfg.rounds {
		var rs []result
		for i := range progs {
			// Alternate which program goes first, so neither always
			// runs on a machine the other has just warmed.
			p := progs[(i+round)%len(progs)]
			r, err := runProgram(p, p.args(c, devices), env)
			if err != nil {
				return err
			}
			printRun(out, round+1, p.name, r, cfg.n)
			rs = append(rs, r)
		}
		ref, fleet := rs[round%2], rs[(round+1)%2] // progs[0] is the reference
		cpuRatio = append(cpuRatio, ratio(fleet.cpu, ref.cpu))
		rssRatio = append(rssRatio, float64(fleet.maxRSS)/float64(ref.maxRSS))
	}
	fmt.Fprintf(out, "fleet-reboot/reference c=%d: CPU %s; peak RSS %s\n\n", c, summary(cpuRatio), summary(rssRatio))
	return nil
}

func printRun(out io.Writer, round int, name string, r result, n int) {
	fmt.Fprintf(out, "  round %d  %-12s  CPU %8s  %6.1f µs/call  peak RSS %6.1f MiB  conns %4d  wall %8s\n",
		round, name, fmtDur(r.cpu), float64(r.cpu.Nanoseconds())/1e3/float64(n), mib(r.maxRSS), r.conns, fmtDur(r.wall))
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

// summary gives the median of xs and their range.
func summary(xs []float64) string {
	s := slices.Sorted(slices.Values(xs))
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return fmt.Sprintf("median %.2f× (range %.2f–%.2f over %d rounds)", med, s[0], s[len(s)-1], len(s))
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func fmtDur(d time.Duration) string { return d.Round(time.Millisecond).String() }
