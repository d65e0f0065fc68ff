package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/flow"
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
// defaults. StartFanOut checks every field before any call.
//
// The fan-out paces the starts of its calls at the rate the hub accepts,
// which it finds from what the hub signals (429s, Retry-After, latency
// rising under traffic shaping, 503s); see docs/fleet.md. Nothing needs to
// be set for it to converge: MaxRate caps it, and StartRate, or Tier with
// Units, seeds it.
type FanOutOptions struct {
	// Concurrency is the most calls in flight at once; default 16. It must
	// not be negative.
	Concurrency int
	// MaxRate caps how many calls start per second; 0 means no cap of the
	// caller's (the hub's limit still applies). It must not be negative,
	// NaN or infinite.
	MaxRate float64
	// StartRate is the rate, in calls per second, to start at instead of
	// a slow start from a low rate: the fan-out still probes above it and
	// backs off below it. 0 means none; it must not be negative, NaN or
	// infinite, nor set together with Tier.
	StartRate float64
	// Tier and Units seed the rate from the hub's documented limit,
	// MethodRateLimit(Tier, Units, the encoded payload's size), as
	// StartRate would. Tier must be one with direct methods (F1, S1, S2,
	// S3); Units defaults to 1 with a Tier, must not be negative, and
	// must be 0 without one.
	Tier  Tier
	Units int
	// ThrottleGiveUp is the run's throttle budget: how long the fan-out
	// goes on while the hub throttles (429) and accepts no call. Until
	// then a throttled target is tried again (after its Retry-After, or
	// when the pacing lets it) however many times. When no call has been
	// accepted for ThrottleGiveUp and a 429 arrives, the run stops: every
	// throttled target and every target not yet started is reported
	// not-delivered with the hub's 429 error, and Err returns a
	// *FleetFaultError of FaultThrottled. Default 2 minutes; it must not
	// be negative. A 429 whose Retry-After exceeds the client's
	// RetryOptions.MaxRetryAfter is not waited for: that target is
	// reported not-delivered at once, with the hub's error and its
	// RetryAfter.
	ThrottleGiveUp time.Duration
	// Invoke are the options of each invocation.
	Invoke InvokeOptions
}

// DefaultThrottleGiveUp is FanOutOptions.ThrottleGiveUp's default.
const DefaultThrottleGiveUp = 2 * time.Minute

// Result is the outcome of one target of a fan-out.
type Result struct {
	Target
	// Outcome says what happened; see Outcome.
	Outcome Outcome
	// Status and Payload are the device's answer, when it answered.
	Status  int
	Payload json.RawMessage
	// Err is the failure, for not-delivered and unknown outcomes; the
	// fields below summarise it. A target the fan-out never invoked (it
	// stopped first) has an Err that matches iothub.ErrNotDelivered and,
	// when a fleet-wide fault stopped it, ErrFleetFault.
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
	call    methodCall // params encoded, the same for every target
	opts    FanOutOptions
	targets iter.Seq2[Target, error]

	stopCtx   context.Context // cancelled: start no new call
	stop      context.CancelFunc
	callCtx   context.Context // cancelled: abandon calls in flight
	abort     context.CancelFunc
	results   chan Result
	sourceErr error

	releaseConns func() // closes the fan-out's idle connections

	ctl     *flow.Controller
	breaker *flow.Breaker
	jobs    chan Target   // targets handed to the workers
	permits chan struct{} // one per paced start, from the pacer
	demand  chan struct{} // a worker waits for a permit; room for one per worker
	idle    chan struct{} // closed when every worker has returned

	haltOnce sync.Once
	halted   chan struct{} // closed when a fleet-wide fault stops the run
	fault    atomic.Pointer[FleetFaultError]

	lastAccepted atomic.Int64 // unix nanoseconds of the last accepted call
	meter        meter        // the stats' counters
	started      atomic.Bool  // Results has been ranged
	tel          *fanOutTelemetry
}

// StartFanOut starts invoking params on every target, reading targets only
// as fast as calls can start, so that a query over a million devices never
// sits in memory. When the client's transport is an *http.Transport (the
// default one, or yours), the fan-out uses a clone of it with a pool of its
// own, of at most Concurrency connections, and closes them when it ends: a
// fan-out never holds more connections than calls in flight. A target the
// sequence yields twice is invoked twice: the fan-out keeps no set of the
// targets seen; deduplicate a sequence that may repeat one. It validates
// params and options first and returns an *iothub.ArgumentError without
// sending anything. It encodes params once, here: every target gets the
// same request body, and a payload changed after StartFanOut returns
// changes nothing.
//
// One dispatcher paces the starts of calls (first attempts and retries
// after a 429 alike) at the rate the hub accepts; see FanOutOptions.
//
// A fleet-wide fault stops the run: the hub refusing the credential (any
// 401xxx), the daily quota used up (403002), a suspended hub (403001), a
// tier without direct methods (403010), or a hub that cannot be reached
// (three calls in a row that could not connect, each after the pipeline's
// own retries). No call starts after the call that shows it; the calls in
// flight then finish and report their own outcome, and every other target,
// those already taken and the rest of the sequence, which is read to its
// end without calling anyone, is reported not-delivered with the cause.
// Err then returns a *FleetFaultError. A single failure of one call (a
// reset connection, a 503) does not stop the run.
//
// Cancelling ctx stops the fan-out gracefully, like Stop: no new call
// starts, and calls in flight finish (bounded by their own timeouts) and
// are reported. Abort ends the calls in flight too. Either way every
// target taken from the sequence gets a Result.
func (c *Client) StartFanOut(ctx context.Context, targets iter.Seq2[Target, error], params MethodParams[any], options *FanOutOptions) (*FanOut, error) {
	o, cfg, m, err := fanOutConfig(targets, params, options)
	if err != nil {
		return nil, err
	}
	// The fan-out's own connection pool, at most one connection per
	// worker, closed when the fan-out ends.
	limited, release := c.p.WithConnLimit(o.Concurrency)
	ctx, tel := c.startFanOutTelemetry(ctx, params, o)
	f := &FanOut{
		c: &Client{p: limited}, params: params, call: m, opts: o, targets: targets, releaseConns: release,
		ctl:     flow.NewController(flow.DefaultPolicy(), cfg),
		breaker: flow.NewBreaker(flow.BreakerPolicy{}),
		jobs:    make(chan Target),
		permits: make(chan struct{}),
		demand:  make(chan struct{}, o.Concurrency),
		idle:    make(chan struct{}),
		halted:  make(chan struct{}),
		results: make(chan Result, o.Concurrency),
	}
	f.meter.init(o.Concurrency)
	f.lastAccepted.Store(time.Now().UnixNano())
	f.stopCtx, f.stop = context.WithCancel(ctx)
	f.callCtx, f.abort = context.WithCancel(context.WithoutCancel(ctx))
	f.tel = tel
	tel.begin(f)
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

// Buffered returns how many results are ready for Results to yield at
// once, without waiting for a call. A consumer that writes results out can
// use it to write those together: it holds a result back only while
// Buffered is above 0, and writes when it reaches 0, so no result waits
// for a call still running.
func (f *FanOut) Buffered() int { return len(f.results) }

// String describes the fan-out without reading its running state, so
// that printing one while it runs (with %v or %+v) is safe.
func (f *FanOut) String() string {
	return fmt.Sprintf("service.FanOut{Method: %q, Concurrency: %d}", f.params.Name, f.opts.Concurrency)
}

// GoString is String, for %#v.
func (f *FanOut) GoString() string { return f.String() }

// Err returns, once Results is done, why the run ended early: a
// *FleetFaultError (matching ErrFleetFault) when a fleet-wide fault, or
// the throttle budget running out, stopped it; the error that ended the
// target sequence early (a failed registry query, say); both joined, the
// fleet-wide fault first, when the sequence failed while the fan-out was
// reporting its remaining targets; nil otherwise.
func (f *FanOut) Err() error {
	if ff := f.fault.Load(); ff != nil {
		if f.sourceErr != nil {
			return errors.Join(ff, f.sourceErr)
		}
		return ff
	}
	return f.sourceErr
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
