package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/wire"
)

// Target is one device, or one module of a device, a fleet operation acts on.
type Target struct {
	DeviceID string
	ModuleID string // empty for the device itself
}

// Devices returns targets for a list of device ids.
func Devices(deviceIDs ...string) iter.Seq2[Target, error] {
	return func(yield func(Target, error) bool) {
		for _, id := range deviceIDs {
			if !yield(Target{DeviceID: id}, nil) {
				return
			}
		}
	}
}

// Identity is implemented by anything that names a device, or a module of
// one, such as registry.Twin, registry.Device and registry.Module. A
// module id of "" names the device itself.
type Identity interface {
	Identity() (deviceID, moduleID string)
}

// TargetsOf turns a sequence of identities, such as a registry query's
// twins, into targets: a twin of a module targets the module, any other
// the device. It reads the sequence only as fast as its targets are taken,
// so a query streams page by page into a fan-out:
//
//	twins := reg.QueryTwins(ctx, "SELECT * FROM devices WHERE tags.plant = '3'", nil)
//	run, err := client.StartFanOut(ctx, service.TargetsOf(twins), params, nil)
//
// An error from the sequence is passed on once and ends it.
func TargetsOf[T Identity](items iter.Seq2[T, error]) iter.Seq2[Target, error] {
	return func(yield func(Target, error) bool) {
		for it, err := range items {
			if err != nil {
				yield(Target{}, err)
				return
			}
			d, m := it.Identity()
			if !yield(Target{DeviceID: d, ModuleID: m}, nil) {
				return
			}
		}
	}
}

// FanOutOptions configures a fan-out. A nil *FanOutOptions gives the
// defaults.
type FanOutOptions struct {
	// Concurrency is the most calls in flight at once; default 16. It must
	// not be negative.
	Concurrency int
	// RatePerSecond caps how many calls start per second; 0 means no
	// client limit. Either way the fan-out adapts to throttling: on a 429
	// every worker pauses (for Retry-After when the hub sends one), the
	// concurrency window and the rate are halved, and both ramp back up as
	// calls succeed. MethodRateLimit derives a rate from the hub's tier.
	RatePerSecond float64
	// MaxThrottleRetries is how many times one target is tried again after
	// 429 before it is reported not-delivered; default 8. A 429 whose
	// Retry-After exceeds the client's RetryOptions.MaxRetryAfter is not
	// waited for: that target is reported not-delivered at once, with the
	// hub's error and its RetryAfter.
	MaxThrottleRetries int
	// Invoke are the options of each invocation.
	Invoke InvokeOptions
}

// Result is the outcome of one target of a fan-out.
type Result struct {
	Target
	// Outcome says what happened; see Outcome.
	Outcome Outcome
	// Status and Payload are the device's answer, when it answered.
	Status  int
	Payload json.RawMessage
	// Err is the failure, for not-delivered and unknown outcomes; the
	// fields below summarise it.
	Err        error
	ErrorCode  iothub.ErrorCode
	ErrorName  string
	TrackingID string
	// Attempts counts HTTP attempts, throttled ones included.
	Attempts int
	// Latency is the time from the first attempt to the result.
	Latency time.Duration
}

// FanOut is a running fan-out: one direct method invoked on many targets.
// Range Results to read every target's result as it completes; the fan-out
// ends when the targets run out and every call has finished.
type FanOut struct {
	c       *Client
	params  MethodParams[any]
	opts    FanOutOptions
	targets iter.Seq2[Target, error]

	stopCtx   context.Context // cancelled: start no new call
	fed       context.Context // cancelled: every target has been handed out
	stop      context.CancelFunc
	callCtx   context.Context // cancelled: abandon calls in flight
	abort     context.CancelFunc
	results   chan Result
	sourceErr error

	releaseConns func() // closes the fan-out's idle connections

	win     *window
	limiter *rate.Limiter // nil without a rate
	maxRate float64
	paused  atomic.Int64 // unix nanoseconds until which no call starts
	started atomic.Bool
}

// StartFanOut starts invoking params on every target, reading targets only
// as fast as calls can start, so that a query over a million devices never
// sits in memory. When the client's transport is an *http.Transport (the
// default one, or yours), the fan-out uses a clone of it with a pool of its
// own, of at most Concurrency connections, and closes them when it ends: a
// fan-out never holds more connections than calls in flight. A target the sequence yields twice is invoked twice: the
// fan-out keeps no set of the targets seen; deduplicate a sequence that may
// repeat one. It validates params and options first and returns an
// *iothub.ArgumentError without sending anything.
//
// Cancelling ctx stops the fan-out gracefully, like Stop: no new call
// starts, and calls in flight finish (bounded by their own timeouts) and
// are reported. Abort ends the calls in flight too. Either way every
// target taken from the sequence gets a Result.
func (c *Client) StartFanOut(ctx context.Context, targets iter.Seq2[Target, error], params MethodParams[any], options *FanOutOptions) (*FanOut, error) {
	const op = "FanOut"
	var o FanOutOptions
	if options != nil {
		o = *options
	}
	switch {
	case o.Concurrency < 0:
		return nil, &iothub.ArgumentError{Operation: op, Field: "FanOutOptions.Concurrency", Rule: fmt.Sprintf("must be 0 (default 16) or more; got %d", o.Concurrency)}
	case o.RatePerSecond < 0 || math.IsNaN(o.RatePerSecond) || math.IsInf(o.RatePerSecond, 0):
		return nil, &iothub.ArgumentError{Operation: op, Field: "FanOutOptions.RatePerSecond", Rule: "must be 0 (no limit) or a positive number"}
	case o.MaxThrottleRetries < 0:
		return nil, &iothub.ArgumentError{Operation: op, Field: "FanOutOptions.MaxThrottleRetries", Rule: "must not be negative"}
	case targets == nil:
		return nil, &iothub.ArgumentError{Operation: op, Field: "targets", Rule: "must not be nil"}
	}
	if o.Concurrency == 0 {
		o.Concurrency = 16
	}
	if o.MaxThrottleRetries == 0 {
		o.MaxThrottleRetries = 8
	}
	// Validate the parameters once with a placeholder target.
	if _, err := methodBody(op, "x", "", false, params); err != nil {
		return nil, err
	}
	// The fan-out's own connection pool, at most one connection per
	// worker, closed when the fan-out ends.
	limited, release := c.p.WithConnLimit(o.Concurrency)
	f := &FanOut{c: &Client{p: limited}, params: params, opts: o, targets: targets, releaseConns: release}
	f.stopCtx, f.stop = context.WithCancel(ctx)
	f.callCtx, f.abort = context.WithCancel(context.WithoutCancel(ctx))
	f.results = make(chan Result, o.Concurrency)
	f.win = newWindow(o.Concurrency)
	if o.RatePerSecond > 0 {
		f.maxRate = o.RatePerSecond
		f.limiter = rate.NewLimiter(rate.Limit(o.RatePerSecond), 1)
	}
	go f.run()
	return f, nil
}

// Stop asks the fan-out to start no new call; calls in flight finish and
// are reported. It does not wait.
func (f *FanOut) Stop() { f.stop() }

// Abort stops the fan-out and abandons the calls in flight: they are
// reported with Outcome unknown (they may have reached their devices),
// unless they had not been sent. It does not wait.
func (f *FanOut) Abort() {
	f.stop()
	f.abort()
}

// Results yields each target's result as it completes, and ends when the
// fan-out is done. Range it once. Breaking out of the loop stops the
// fan-out (as Stop) and discards the results still to come. A second range
// yields nothing.
func (f *FanOut) Results() iter.Seq[Result] {
	return func(yield func(Result) bool) {
		if !f.started.CompareAndSwap(false, true) {
			return // the results went to the first range
		}
		for r := range f.results {
			if !yield(r) {
				f.Stop()
				go func() {
					for range f.results {
					}
				}()
				return
			}
		}
	}
}

// String describes the fan-out without reading its running state, so
// that printing one while it runs (with %v or %+v) is safe.
func (f *FanOut) String() string {
	return fmt.Sprintf("service.FanOut{Method: %q, Concurrency: %d}", f.params.Name, f.opts.Concurrency)
}

// GoString is String, for %#v.
func (f *FanOut) GoString() string { return f.String() }

// Err returns the error that ended the target sequence early (a failed
// registry query, say), once Results is done; nil otherwise.
func (f *FanOut) Err() error { return f.sourceErr }

// run feeds targets to the workers and closes results when all are done.
func (f *FanOut) run() {
	defer f.abort()
	jobs := make(chan Target)
	// fed ends the workers' wait for the window once no target is left.
	fed, allFed := context.WithCancel(f.stopCtx)
	f.fed = fed
	var wg sync.WaitGroup
	for i := range f.opts.Concurrency {
		wg.Go(func() { f.worker(i, jobs) })
	}
	for t, err := range f.targets {
		if err != nil {
			f.sourceErr = err
			break
		}
		if f.stopCtx.Err() != nil {
			f.results <- f.notStarted(t, f.stopCtx.Err())
			break
		}
		select {
		case jobs <- t:
		case <-f.stopCtx.Done():
			f.results <- f.notStarted(t, f.stopCtx.Err())
		}
		if f.stopCtx.Err() != nil {
			break
		}
	}
	close(jobs)
	allFed()
	wg.Wait()
	f.releaseConns()
	close(f.results)
}

// notStarted is the result of a target taken from the sequence but never
// sent.
func (f *FanOut) notStarted(t Target, cause error) Result {
	return Result{Target: t, Outcome: OutcomeNotDelivered,
		Err: fmt.Errorf("fan-out stopped before this target was invoked: %w", cause)}
}

// worker takes targets while its index is within the concurrency window:
// a worker holding a target never waits on the window, so the window can
// shrink and grow without stranding a target.
func (f *FanOut) worker(i int, jobs <-chan Target) {
	for {
		if f.win.wait(f.fed, i) != nil {
			// Stopping, or no target left: take what is still handed out.
			for t := range jobs {
				f.results <- f.invokeOne(t)
			}
			return
		}
		t, ok := <-jobs
		if !ok {
			return
		}
		f.results <- f.invokeOne(t)
	}
}

// invokeOne invokes the method on one target, pausing and trying again
// after throttling, and classifies the outcome.
func (f *FanOut) invokeOne(t Target) Result {
	res := Result{Target: t}
	if rule := wire.CheckID(t.DeviceID); rule != "" {
		res.Outcome, res.Err = OutcomeNotDelivered, &iothub.ArgumentError{Operation: "FanOut", Field: "Target.DeviceID", Rule: rule}
		return res
	}
	start := time.Now()
	// The fan-out handles 429 itself, pausing every worker together.
	class, policy := f.opts.Invoke.policy()
	policy |= leaveThrottled
	op := opDevice
	if t.ModuleID != "" {
		op = opModule
	}
	for throttled := 0; ; throttled++ {
		if err := f.waitTurn(); err != nil {
			res.Outcome, res.Err = OutcomeNotDelivered, fmt.Errorf("fan-out stopped before this target was invoked: %w", err)
			break
		}
		r, answered, err := invoke[json.RawMessage](f.callCtx, f.c, op, t.DeviceID, t.ModuleID, f.params, class, policy)
		res.Attempts += attempts(err, answered)
		if errors.Is(err, iothub.ErrThrottled) && throttled < f.opts.MaxThrottleRetries && f.stopCtx.Err() == nil && !f.waitTooLong(err) {
			f.throttled(err)
			continue
		}
		f.classify(&res, r, err)
		if err == nil {
			f.succeeded()
		}
		break
	}
	res.Latency = time.Since(start)
	return res
}

// waitTooLong reports a Retry-After beyond RetryOptions.MaxRetryAfter: the
// fan-out does not wait that long, as a single call would not.
func (f *FanOut) waitTooLong(err error) bool {
	he, ok := errors.AsType[*iothub.Error](err)
	return ok && he.RetryAfter > f.c.p.MaxRetryAfter()
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

// waitTurn blocks until a call may start: after any throttling pause, and
// within the rate.
func (f *FanOut) waitTurn() error {
	for {
		until := time.Unix(0, f.paused.Load())
		d := time.Until(until)
		if d <= 0 {
			break
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-f.stopCtx.Done():
			t.Stop()
			return f.stopCtx.Err()
		}
	}
	if f.limiter != nil {
		return f.limiter.Wait(f.stopCtx)
	}
	return f.stopCtx.Err()
}

// throttled makes every worker back off together: a shared pause (the
// hub's Retry-After, or 1 s with jitter), a halved window and rate.
func (f *FanOut) throttled(err error) {
	pause := time.Second
	if he, ok := errors.AsType[*iothub.Error](err); ok && he.RetryAfter > 0 {
		pause = he.RetryAfter
	}
	pause += time.Duration(rand.Int64N(int64(pause/4) + 1))
	until := time.Now().Add(pause).UnixNano()
	for {
		cur := f.paused.Load()
		if cur >= until || f.paused.CompareAndSwap(cur, until) {
			break
		}
	}
	f.win.shrink()
	if f.limiter != nil {
		f.limiter.SetLimit(max(f.limiter.Limit()/2, rate.Limit(f.maxRate/64)))
	}
}

// succeeded ramps the window and the rate back up.
func (f *FanOut) succeeded() {
	f.win.grow()
	if f.limiter != nil {
		if l := f.limiter.Limit(); float64(l) < f.maxRate {
			f.limiter.SetLimit(min(l*1.05, rate.Limit(f.maxRate)))
		}
	}
}

// window is an adaptive concurrency limit: worker i runs only while i is
// below the limit. It halves on throttling and grows by one per window of
// successes (additive increase, multiplicative decrease).
type window struct {
	mu      sync.Mutex
	limit   float64
	max     float64
	changed chan struct{}
}

func newWindow(n int) *window {
	return &window{limit: float64(n), max: float64(n), changed: make(chan struct{})}
}

func (w *window) wait(ctx context.Context, i int) error {
	for {
		w.mu.Lock()
		if float64(i) < w.limit {
			w.mu.Unlock()
			return nil
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (w *window) shrink() {
	w.mu.Lock()
	w.limit = max(1, w.limit/2)
	w.mu.Unlock()
}

func (w *window) grow() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.limit >= w.max {
		return
	}
	before := int(w.limit)
	w.limit = min(w.max, w.limit+1/w.limit)
	if int(w.limit) > before {
		close(w.changed)
		w.changed = make(chan struct{})
	}
}

// MethodRateLimit returns the direct-method calls per second a hub allows
// for payloads of payloadBytes (as JSON), from its tier and units: IoT Hub
// meters method payloads in 4 KB steps, at 160 KB/s per unit on Free and
// S1, 480 KB/s on S2 and 24 MB/s on S3. It returns 0 for a tier without
// direct methods (the basic tiers) or an unknown one.
func MethodRateLimit(tier Tier, units, payloadBytes int) float64 {
	var perUnit float64 // KB per second
	switch tier {
	case TierF1, TierS1:
		perUnit = 160
	case TierS2:
		perUnit = 480
	case TierS3:
		perUnit = 24 * 1024
	default:
		return 0
	}
	units = max(units, 1)
	if tier == TierF1 {
		units = 1
	}
	steps := max(1, (payloadBytes+4095)/4096)
	return perUnit * float64(units) / float64(4*steps)
}

// Tier is an IoT Hub pricing tier.
type Tier string

// IoT Hub tiers.
const (
	TierF1 Tier = "F1" // the free tier
	TierB1 Tier = "B1"
	TierB2 Tier = "B2"
	TierB3 Tier = "B3"
	TierS1 Tier = "S1"
	TierS2 Tier = "S2"
	TierS3 Tier = "S3"
)
