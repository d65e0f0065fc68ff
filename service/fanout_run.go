package service

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/flow"
	"github.com/hubkit/iothub/internal/wire"
)

// minPacingSleep is the shortest wait the pacer sleeps for: a shorter one
// is let through at once. The controller books every start at its slot,
// so the next reservation waits the longer: the average rate holds, and a
// burst is at most this long.
const minPacingSleep = time.Millisecond

// run feeds targets to the workers and closes results when all are done.
func (f *FanOut) run() {
	defer f.abort()
	var wg sync.WaitGroup
	for i := range f.opts.Concurrency {
		wg.Go(func() { f.worker(i) })
	}
	var pacer sync.WaitGroup
	pacer.Go(f.pace)
	f.feed()
	close(f.jobs)
	wg.Wait()
	close(f.idle)
	pacer.Wait()
	f.releaseConns()
	f.tel.end(f)
	close(f.results)
}

// feed hands the targets to the workers. Once a fleet-wide fault has
// stopped the run it reads the rest of the sequence and reports each
// target not-delivered without invoking it; once the caller stopped it, it
// reads no further.
func (f *FanOut) feed() {
	for t, err := range f.targets {
		if err != nil {
			f.sourceErr = err
			return
		}
		if f.stopCtx.Err() == nil && f.fault.Load() == nil {
			select {
			case f.jobs <- t:
				continue
			case <-f.stopCtx.Done():
			case <-f.halted:
			}
		}
		f.results <- f.notInvoked(Result{Target: t}, f.stopCause(), nil)
		f.meter.finish()
		if f.stopCtx.Err() != nil {
			return
		}
	}
}

// stopCause is why no further call starts: the fleet-wide fault, or the
// caller's cancellation; nil while calls may start.
func (f *FanOut) stopCause() error {
	if ff := f.fault.Load(); ff != nil {
		return ff
	}
	return f.stopCtx.Err()
}

// halt stops the run for a fleet-wide fault: the first one stays.
func (f *FanOut) halt(ff *FleetFaultError) {
	f.haltOnce.Do(func() {
		f.fault.Store(ff)
		close(f.halted)
	})
}

// pace is the dispatcher of the starts that must wait: once a worker asks
// for a start (awaitStart found no room in the schedule), it books the
// start with the controller, waits for it, and hands the permit to the
// longest-waiting worker (a channel serves its receivers in order). Booking
// one start at a time keeps every wait at the rate of its moment. A
// worker needs a permit for every attempt, a retry after a 429 as much as
// a first call. Booking only on demand tells the controller the truth
// about who holds the calls back: a start booked while every worker is
// busy would wait on the workers, not on the pacing, yet look paced.
func (f *FanOut) pace() {
	for {
		select {
		case <-f.demand:
		case <-f.stopCtx.Done():
			return
		case <-f.halted:
			return
		case <-f.idle:
			return
		}
		if wait := f.ctl.Reserve(time.Now()); wait >= minPacingSleep {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-f.stopCtx.Done():
			case <-f.halted:
			case <-f.idle:
			}
			t.Stop()
		}
		if f.stopCause() != nil {
			f.ctl.Release(time.Now())
			return
		}
		select {
		case f.permits <- struct{}{}:
		case <-f.stopCtx.Done():
			f.ctl.Release(time.Now())
			return
		case <-f.halted:
			f.ctl.Release(time.Now())
			return
		case <-f.idle:
			f.ctl.Release(time.Now())
			return
		}
	}
}

// awaitStart books a start with the controller at once when it has room,
// or else waits for the pacer's permit; it returns why not when the run
// stops first.
func (f *FanOut) awaitStart() error {
	if err := f.stopCause(); err != nil {
		return err
	}
	// When no worker waits and the schedule has room now, start without
	// the round trip through the pacer: two goroutine switches a call
	// when the workers, not the pacing, hold the calls back.
	if len(f.demand) == 0 && f.ctl.TryReserve(time.Now(), minPacingSleep) {
		if err := f.stopCause(); err != nil {
			f.ctl.Release(time.Now()) // stopped meanwhile: the start that never was
			return err
		}
		return nil
	}
	f.demand <- struct{}{} // room for one per worker: never blocks
	select {
	case <-f.permits:
		if err := f.stopCause(); err != nil {
			f.ctl.Release(time.Now()) // the start that never was
			return err
		}
		return nil
	case <-f.stopCtx.Done():
	case <-f.halted:
	}
	return f.stopCause()
}

// worker invokes the targets it is handed, one at a time; slot i is its
// entry in the stats' table of calls in flight.
func (f *FanOut) worker(i int) {
	// Each worker's calls hang off a context of its own, so that the
	// context of every call registers with, and leaves, a parent no other
	// worker locks; abort still reaches them all.
	ctx, cancel := context.WithCancel(f.callCtx)
	defer cancel()
	for t := range f.jobs {
		f.results <- f.invokeOne(ctx, i, t)
		f.meter.finish()
	}
}

// invokeOne invokes the method on one target, trying again after
// throttling, and classifies the outcome.
func (f *FanOut) invokeOne(ctx context.Context, i int, t Target) Result {
	res := Result{Target: t}
	if rule := wire.CheckID(t.DeviceID); rule != "" {
		res.Outcome, res.Err = OutcomeNotDelivered, &iothub.ArgumentError{Operation: "FanOut", Field: "Target.DeviceID", Rule: rule}
		return res
	}
	if t.ModuleID != "" {
		if rule := wire.CheckID(t.ModuleID); rule != "" {
			res.Outcome, res.Err = OutcomeNotDelivered, &iothub.ArgumentError{Operation: "FanOut", Field: "Target.ModuleID", Rule: rule}
			return res
		}
	}
	// The fan-out handles 429 itself, through its pacing.
	class, policy := f.opts.Invoke.policy()
	policy |= leaveThrottled
	op := opDevice
	if t.ModuleID != "" {
		op = opModule
	}
	var first time.Time
	var ranBefore error // an earlier call's error that says it may have run
	for {
		if cause := f.awaitStart(); cause != nil {
			res = f.notInvoked(res, cause, ranBefore)
			break
		}
		start := time.Now()
		if first.IsZero() {
			first = start
			f.meter.start()
		}
		f.meter.callStarted(i, start)
		r, answered, err := invokeEncoded[json.RawMessage](ctx, f.c, op, t.DeviceID, t.ModuleID, f.call, class, policy)
		end := time.Now()
		f.meter.callEnded(i)
		res.Attempts += attempts(err, answered)
		f.observe(start, end, err)
		if err != nil && iothub.MayHaveRun(err) {
			ranBefore = err
		}
		if f.retryThrottled(end, err) {
			continue
		}
		f.classify(&res, r, ranEarlier(err, ranBefore))
		break
	}
	if !first.IsZero() {
		res.Latency = time.Since(first)
	}
	return res
}

// retryThrottled reports whether a call's 429 is to be tried again, after
// waiting for its Retry-After. It is not when the Retry-After exceeds
// RetryOptions.MaxRetryAfter (the fan-out does not wait that long, as a
// single call would not), when the run's throttle budget is spent (and
// then it stops the run), or when the run stopped while it waited.
func (f *FanOut) retryThrottled(now time.Time, err error) bool {
	he, ok := errors.AsType[*iothub.Error](err)
	if !ok || !errors.Is(he, iothub.ErrThrottled) || he.RetryAfter > f.c.p.MaxRetryAfter() {
		return false
	}
	if now.Sub(time.Unix(0, f.lastAccepted.Load())) >= f.opts.ThrottleGiveUp {
		f.halt(throttleFault(err))
		return false
	}
	if he.RetryAfter > 0 {
		t := time.NewTimer(he.RetryAfter)
		defer t.Stop()
		select {
		case <-t.C:
		case <-f.stopCtx.Done():
		case <-f.halted:
		}
	}
	// Stopped while waiting: awaitStart reports it.
	return true
}

// observe tells the controller and the breaker how a call ended.
func (f *FanOut) observe(start, end time.Time, err error) {
	r := flow.Result{Outcome: flowOutcome(err), Latency: end.Sub(start)}
	if he, ok := errors.AsType[*iothub.Error](err); ok {
		r.RetryAfter = he.RetryAfter
	}
	f.ctl.Done(end, r)
	if r.Outcome == flow.Accepted {
		f.lastAccepted.Store(end.UnixNano())
	}
	if f.breaker.Observe(end, err) {
		f.halt(fleetFault(f.breaker.Cause()))
	}
}

// flowOutcome is what a call's end tells the controller about the hub's
// load: an answer of the device's, or a device-level error the hub
// answered (not found, not online, timed out), is a call the hub took.
func flowOutcome(err error) flow.Outcome {
	if err == nil {
		return flow.Accepted
	}
	he, ok := errors.AsType[*iothub.Error](err)
	if !ok {
		if _, ok := errors.AsType[*PayloadError](err); ok {
			return flow.Accepted
		}
		return flow.Failed
	}
	switch {
	case he.StatusCode == 429:
		return flow.Throttled
	case he.StatusCode == 503:
		return flow.Busy
	case he.StatusCode == 404 || he.Code == iothub.ErrorCodeGatewayTimeout:
		return flow.Accepted
	}
	return flow.Failed
}

// notInvoked is res reported not-delivered because the run stopped before
// the target was invoked (or tried again); a target an earlier call of
// which may have run stays unknown.
func (f *FanOut) notInvoked(res Result, cause error, ranBefore error) Result {
	err := error(&notInvokedError{cause: cause, retried: res.Attempts > 0})
	if ranBefore != nil {
		err = &ranEarlierError{last: err, earlier: ranBefore}
	}
	var zero MethodResult[json.RawMessage]
	f.classify(&res, zero, err)
	return res
}

// attempts counts the HTTP attempts an invocation made; answered is the
// count the pipeline reported for an answer, 0 when there was none.
func attempts(err error, answered int) int {
	if answered > 0 {
		return answered
	}
	switch e := err.(type) {
	case nil:
		return 1
	case *iothub.Error:
		return max(e.Attempts, 1)
	case *iothub.TransportError:
		return max(e.Attempts, 1)
	}
	return 1
}

func (f *FanOut) classify(res *Result, r MethodResult[json.RawMessage], err error) {
	defer f.tel.count(res)
	if err == nil {
		res.Status, res.Payload = r.Status, r.Payload
		if r.Status >= 200 && r.Status < 300 {
			res.Outcome = OutcomeSucceeded
		} else {
			res.Outcome = OutcomeDeviceError
		}
		return
	}
	res.Err = err
	if he, ok := errors.AsType[*iothub.Error](err); ok {
		res.ErrorCode, res.ErrorName, res.TrackingID = he.Code, he.CodeName, he.TrackingID
	}
	if iothub.MayHaveRun(err) {
		res.Outcome = OutcomeUnknown
	} else {
		res.Outcome = OutcomeNotDelivered
	}
}
