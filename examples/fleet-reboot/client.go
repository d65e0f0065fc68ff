package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"time"

	"github.com/hubkit/iothub/registry"
	"github.com/hubkit/iothub/service"
)

// runClient invokes the method from here: a fan-out with bounded, adaptive
// concurrency.
func runClient(ctx context.Context, cfg config, d deps, client *service.Client, reg *registry.Client,
	targets iter.Seq2[service.Target, error], total int, done map[service.Target]service.Outcome,
	params service.MethodParams[any], stderr io.Writer) int {
	var rw *reportWriter
	if cfg.report != "" {
		var err error
		rw, err = openReport(cfg.report, cfg.resume)
		if err != nil {
			fmt.Fprintln(stderr, name+": -report:", err)
			return exitUsage
		}
	}

	prog := newProgress(stderr, d.terminal, d.progressEvery, total, time.Now())
	targets = skipDone(targets, done, prog.skip)

	f, err := client.StartFanOut(ctx, targets, params, &service.FanOutOptions{
		Concurrency:   cfg.concurrency,
		RatePerSecond: cfg.rate,
	})
	if err != nil { // validated before; cannot happen
		prog.finish(false)
		fmt.Fprintln(stderr, name+":", err)
		return exitUsage
	}

	// Count a query's targets for the ETA, alongside the calls.
	if total < 0 {
		if cq, ok := countQuery(cfg.query); ok {
			go func() {
				for row, err := range reg.QueryRaw(ctx, cq, nil) {
					if err != nil {
						return // no ETA, then
					}
					var c struct{ N int }
					if json.Unmarshal(row, &c) == nil {
						prog.setTotal(c.N)
					}
					return
				}
			}()
		}
	}

	// The first interrupt cancels ctx: the fan-out stops starting calls on
	// its own. The second abandons the calls in flight.
	watchDone := make(chan struct{})
	defer close(watchDone)
	go func() {
		select {
		case <-ctx.Done():
		case <-watchDone:
			return
		}
		prog.printf("%s: interrupted: starting no new call; waiting for the calls in flight (interrupt again to abandon them)\n", name)
		select {
		case <-d.abort:
			prog.printf("%s: abandoning the calls in flight; they are reported unknown\n", name)
			f.Abort()
		case <-watchDone:
		}
	}()

	for r := range f.Results() {
		if rw != nil {
			rw.write(r)
		}
		prog.add(r.Outcome)
	}
	interrupted := ctx.Err() != nil
	prog.finish(interrupted)

	code := exitOK
	if interrupted {
		code = exitFailed
	}
	if err := f.Err(); err != nil && !interrupted {
		printErr(stderr, "the target query failed; not every target was invoked", err)
		code = exitFailed
	}
	if !prog.allSucceeded() {
		code = exitFailed
	}
	if rw != nil {
		if err := rw.close(); err != nil {
			fmt.Fprintln(stderr, name+": -report:", err)
			code = exitFailed
		} else if code != exitOK {
			fmt.Fprintf(stderr, "%s: per-target results in %s; run again with -report %s -resume to retry the targets that did not succeed\n",
				name, cfg.report, cfg.report)
		}
	}
	return code
}
