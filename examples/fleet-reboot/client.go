package main

import (
	"context"
	"encoding/json"
	"time"

	"github.com/hubkit/iothub/service"
)

// runClient invokes the method from here: a fan-out with bounded, adaptive
// concurrency. Every result goes to the report as it arrives, and to the
// progress.
func (r *fleetRun) runClient(ctx context.Context) int {
	rw, err := r.openReport()
	if err != nil {
		return exit(r.msg, err)
	}
	prog := newProgress(r.display(), r.targets.total(), time.Now())
	targets := skipDone(r.targets.seq(ctx, r.reg), r.targets.done, prog.skip)
	f, err := r.svc.StartFanOut(ctx, targets, r.params, r.fanOutOptions())
	if err != nil { // validated before; cannot happen
		prog.finish(false)
		return exit(r.msg, err)
	}
	prog.watch(f.Stats)
	if r.targets.total() < 0 {
		go r.countTargets(ctx, prog)
	}
	stopWatching := r.watchInterrupts(ctx, f, prog)
	defer stopWatching()

	for res := range f.Results() {
		rw.write(res, f.Buffered() > 0)
		prog.add(res.Outcome)
	}
	code := r.endRun(ctx, prog, f.Err())
	return r.closeReport(rw, code, true)
}

// fanOutOptions are the fan-out's options, from the flags: the one place
// that sets how the fan-out paces its calls. Without -rate or -tier the
// fan-out finds the hub's limit by itself.
func (r *fleetRun) fanOutOptions() *service.FanOutOptions {
	o := &service.FanOutOptions{
		Concurrency: r.cfg.concurrency,
		MaxRate:     r.cfg.rate,
	}
	if r.cfg.tier != "" {
		o.Tier, o.Units = r.cfg.hubTier(), r.cfg.units
	}
	return o
}

// countTargets counts the query's targets, alongside the calls, and gives
// the progress its total for the ETA; without a count there is no ETA.
func (r *fleetRun) countTargets(ctx context.Context, prog *progress) {
	cq, ok := countQuery(r.targets.query)
	if !ok {
		return
	}
	for row, err := range r.reg.QueryRaw(ctx, cq, nil) {
		if err != nil {
			return
		}
		var c struct{ N int }
		if json.Unmarshal(row, &c) == nil {
			prog.setTotal(c.N)
		}
		return
	}
}

// watchInterrupts says what the interrupts do while f runs. The first
// cancels ctx: the fan-out stops starting calls on its own. The second
// abandons the calls in flight. Call stop when f has ended.
func (r *fleetRun) watchInterrupts(ctx context.Context, f *service.FanOut, prog *progress) (stop func()) {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		prog.printf("%s: interrupted: starting no new call; waiting for the calls in flight (interrupt again to abandon them)\n", name)
		select {
		case <-r.d.abort:
			prog.printf("%s: abandoning the calls in flight; they are reported unknown\n", name)
			f.Abort()
		case <-done:
		}
	}()
	return func() { close(done) }
}
