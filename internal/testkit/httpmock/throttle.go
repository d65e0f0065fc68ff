package httpmock

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hubkit/iothub"
)

// Tier is an IoT Hub pricing tier (SKU). It sets the throttles of a Hub
// whose Options.Throttle is set; the values are the SKU names Azure uses.
type Tier string

// The tiers. The Basic tiers have no direct methods.
const (
	TierFree Tier = "F1"
	TierB1   Tier = "B1"
	TierB2   Tier = "B2"
	TierB3   Tier = "B3"
	TierS1   Tier = "S1"
	TierS2   Tier = "S2"
	TierS3   Tier = "S3"
)

// MethodMeterSize is the unit in which the direct-method throttle charges a
// request's payload: a payload of 0 to 4 KB costs 4 KB, one of 4 KB plus a
// byte to 8 KB costs 8 KB, and so on.
const MethodMeterSize = 4096

// Defaults of ThrottleOptions.
const (
	// DefaultMethodBurst is the direct-method bucket's capacity, as time
	// at the throttle's rate.
	DefaultMethodBurst = time.Second
	// DefaultMethodBacklog is how much direct-method traffic, as time at
	// the throttle's rate, traffic shaping queues before it rejects.
	DefaultMethodBacklog = time.Second
	// DefaultRetryAfterEvery is which 429 answers carry Retry-After: every
	// second one.
	DefaultRetryAfterEvery = 2
)

// QueryBurst is the query bucket's capacity, as time at the throttle's rate:
// a minute's worth of queries may be sent at once.
const QueryBurst = time.Minute

// JobOpsBurst is the jobs-operation bucket's capacity, as time at the
// throttle's rate: a minute's worth of jobs requests may be sent at once.
const JobOpsBurst = time.Minute

// tierLimits are a tier's throttles per unit.
type tierLimits struct {
	methodBytesPerSecond int64 // 0: direct methods are not available
	queriesPerMinute     int64
	maxUnits             int   // 0: no limit here
	jobOpsPerMinute      int64 // 0: jobs are not available
	maxActiveJobs        int
	// jobDeviceOps is the jobs device-operation rate of n units.
	jobDeviceOps func(n int) float64
}

// Jobs device-operation rates by tier.
func s1JobDeviceOps(int) float64   { return 10 }
func s2JobDeviceOps(n int) float64 { return max(10, float64(n)) }
func s3JobDeviceOps(n int) float64 { return 50 * float64(n) }

// limitsOf returns the documented per-unit throttles of a tier.
func limitsOf(t Tier) (tierLimits, bool) {
	const kb = 1024
	switch t {
	case TierFree:
		return tierLimits{methodBytesPerSecond: 160 * kb, queriesPerMinute: 20, maxUnits: 1,
			jobOpsPerMinute: 100, maxActiveJobs: 1, jobDeviceOps: s1JobDeviceOps}, true
	case TierS1:
		return tierLimits{methodBytesPerSecond: 160 * kb, queriesPerMinute: 20,
			jobOpsPerMinute: 100, maxActiveJobs: 1, jobDeviceOps: s1JobDeviceOps}, true
	case TierS2:
		return tierLimits{methodBytesPerSecond: 480 * kb, queriesPerMinute: 20,
			jobOpsPerMinute: 100, maxActiveJobs: 5, jobDeviceOps: s2JobDeviceOps}, true
	case TierS3:
		return tierLimits{methodBytesPerSecond: 24 * kb * kb, queriesPerMinute: 1000,
			jobOpsPerMinute: 5000, maxActiveJobs: 10, jobDeviceOps: s3JobDeviceOps}, true
	case TierB1, TierB2:
		return tierLimits{queriesPerMinute: 20}, true
	case TierB3:
		return tierLimits{queriesPerMinute: 1000}, true
	}
	return tierLimits{}, false
}

// ThrottleOptions turns on IoT Hub's throttles for direct methods and
// queries; see Options.Throttle. The zero value is an S1 hub of one unit.
//
// # Direct methods
//
// The hub meters the request payload only, measured as compact JSON (an
// absent payload is empty) and charged in MethodMeterSize units,
// against the tier's rate times Units: 160 KB/s per unit on Free and S1,
// 480 KB/s on S2, 24 MB/s on S3 (KB = 1024 bytes). One unit of S1 thus
// takes 40 calls a second with payloads up to 4 KB and 20 a second with
// payloads up to 8 KB.
//
// The meter is a token bucket holding MethodBurst of budget, full at first
// and refilled at the rate, in front of the hub's traffic shaping:
//
//   - A call the bucket covers goes through at once.
//   - A call it does not cover is queued: the bucket goes into debt by the
//     call's cost and the call waits until the debt is paid back at the
//     rate, so queued calls proceed one after the other at the limit rate.
//     At most MethodBacklog of debt is allowed.
//   - A call that would take the debt past MethodBacklog is answered 429 /
//     429001 ThrottlingException and not delivered: it is not counted in
//     Hub.Deliveries or Hub.Calls, and it costs nothing.
//
// A call costing more than MethodBurst of budget (possible only with a
// small MethodBytesPerSecond or MethodBurst) goes through when the bucket
// is full and leaves it in debt by the rest, which later calls wait or
// are rejected for; otherwise it could never pass.
//
// A queued call whose caller goes away while it waits is dropped without an
// answer (the connection breaks); its budget is not given back.
//
// Throttling comes after body validation and after faults (see Fault): a
// call a fault answers or drops before delivery is not metered. A throttled
// call is not delivered, so an AfterDelivery fault that hit it does not
// take effect.
//
// On the Basic tiers direct methods do not exist: every call is answered
// 403 / 403010 OperationNotAvailableInCurrentTier, before its body is
// looked at.
//
// # Queries
//
// Each POST /devices/query request (each page) costs one query against a
// token bucket of QueryBurst (a minute) of budget refilled at the tier's
// rate times Units: 20 a minute per unit on Free, Basic B1 and B2, S1 and
// S2, 1,000 on B3 and S3. There is no queueing: a query the bucket does not
// cover is answered 429 / 429001. Faults come first here too.
//
// # Jobs
//
// Each jobs v2 request (create, get, cancel, query) costs one operation
// against a bucket of JobOpsBurst (a minute) of budget refilled at 100 a
// minute per unit on Free, S1 and S2, 5,000 on S3; one the bucket does not
// cover is answered 429 / 429001, without queueing. Unless
// Options.MaxActiveJobs and Options.JobDeviceOpsPerSecond say otherwise,
// the tier also sets how many jobs may be active (1 on Free and S1, 5 on
// S2, 10 on S3) and how fast jobs reach their devices (10 a second on Free
// and S1, the larger of 10 and 1 per unit on S2, 50 per unit on S3). On
// the Basic tiers jobs do not exist: every jobs request is answered 403 /
// 403010 OperationNotAvailableInCurrentTier.
//
// Not metered: queries over devices.jobs (they are free) and the registry
// and twin operations, whose throttles this simulation does not model.
//
// # Retry-After
//
// The real hub's Retry-After is not documented and no SDK relies on it, so
// the simulation sends it on some 429 answers only, by a fixed rule: the
// RetryAfterEvery-th, 2×RetryAfterEvery-th, … 429 answer of each throttle
// (direct methods and queries count apart) carries it. With the default,
// 2, that is every second 429. Its value is the whole number of seconds,
// rounded up, until the bucket would let the same request in (at once or
// into the queue) if nothing else were sent meanwhile.
type ThrottleOptions struct {
	// Tier is the hub's pricing tier; "" means TierS1. New panics on an
	// unknown tier.
	Tier Tier
	// Units is the number of IoT Hub units; 0 means 1. New panics when it
	// is negative, or above 1 on TierFree.
	Units int

	// MethodBytesPerSecond, when positive, replaces the direct-method rate
	// of the tier and units: it is the hub's whole rate in bytes of
	// metered payload per second. It does not make methods available on
	// the Basic tiers.
	MethodBytesPerSecond int64
	// MethodBurst is the direct-method bucket's capacity, as time at the
	// rate; 0 means DefaultMethodBurst.
	MethodBurst time.Duration
	// MethodBacklog bounds the queue of traffic shaping, as time at the
	// rate: a call that would wait longer is rejected. 0 means
	// DefaultMethodBacklog; a negative value turns queueing off.
	MethodBacklog time.Duration

	// QueriesPerMinute, when positive, replaces the query rate of the tier
	// and units.
	QueriesPerMinute int

	// RetryAfterEvery selects the 429 answers that carry Retry-After:
	// every RetryAfterEvery-th of each throttle. 0 means
	// DefaultRetryAfterEvery, 1 every 429, a negative value none.
	RetryAfterEvery int
}

// ThrottleStats counts what the throttles did; see Hub.ThrottleStats.
type ThrottleStats struct {
	// Admitted is how many direct-method calls the throttle let through,
	// at once or after queueing.
	Admitted int64
	// Queued is how many of the admitted calls traffic shaping delayed.
	Queued int64
	// Throttled is how many direct-method calls were answered 429.
	Throttled int64
	// QueueDelay is the sum of the delays of the queued calls.
	QueueDelay time.Duration

	// QueriesAdmitted and QueriesThrottled count query requests let
	// through and answered 429.
	QueriesAdmitted  int64
	QueriesThrottled int64

	// JobOpsAdmitted and JobOpsThrottled count jobs v2 requests let
	// through and answered 429.
	JobOpsAdmitted  int64
	JobOpsThrottled int64
}

// ThrottleStats returns the throttles' counters since New. They are all
// zero when Options.Throttle was nil.
func (h *Hub) ThrottleStats() ThrottleStats {
	t := h.throttle
	if t == nil {
		return ThrottleStats{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// throttler is a hub's throttle state. A nil *throttler throttles nothing.
type throttler struct {
	// Immutable after newThrottler.
	tier       Tier
	noMethods  bool  // a Basic tier
	queryRate  int64 // queries per minute
	retryEvery int   // 0: never
	queryLimit string
	jobRate    int64 // jobs operations per minute; 0: no jobs
	jobLimit   string
	maxJobs    int     // active jobs
	jobDevRate float64 // job device operations per second

	mu          sync.Mutex
	methodRate  int64 // bytes per second; SetMethodRate changes it
	methodLimit string
	methods     bucket
	queries     bucket
	jobs        bucket
	stats       ThrottleStats
}

// newThrottler checks opts and returns the throttle state, nil when opts is
// nil. It panics on invalid options, as New does.
func newThrottler(opts *ThrottleOptions) *throttler {
	if opts == nil {
		return nil
	}
	o := *opts
	if o.Tier == "" {
		o.Tier = TierS1
	}
	lim, ok := limitsOf(o.Tier)
	if !ok {
		panic(fmt.Sprintf("iothubtest: New: unknown tier %q", o.Tier))
	}
	switch {
	case o.Units == 0:
		o.Units = 1
	case o.Units < 0:
		panic(fmt.Sprintf("iothubtest: New: %d units", o.Units))
	case lim.maxUnits > 0 && o.Units > lim.maxUnits:
		panic(fmt.Sprintf("iothubtest: New: tier %s has at most %d unit(s), not %d", o.Tier, lim.maxUnits, o.Units))
	}
	t := &throttler{
		tier:       o.Tier,
		noMethods:  lim.methodBytesPerSecond == 0,
		methodRate: lim.methodBytesPerSecond * int64(o.Units),
		queryRate:  lim.queriesPerMinute * int64(o.Units),
		jobRate:    lim.jobOpsPerMinute * int64(o.Units),
		maxJobs:    lim.maxActiveJobs,
		retryEvery: o.RetryAfterEvery,
	}
	if lim.jobDeviceOps != nil {
		t.jobDevRate = lim.jobDeviceOps(o.Units)
	}
	if o.MethodBytesPerSecond > 0 {
		t.methodRate = o.MethodBytesPerSecond
	}
	if o.QueriesPerMinute > 0 {
		t.queryRate = int64(o.QueriesPerMinute)
	}
	switch {
	case t.retryEvery == 0:
		t.retryEvery = DefaultRetryAfterEvery
	case t.retryEvery < 0:
		t.retryEvery = 0
	}
	t.methods.burst = o.MethodBurst
	if t.methods.burst <= 0 {
		t.methods.burst = DefaultMethodBurst
	}
	switch {
	case o.MethodBacklog == 0:
		t.methods.backlog = DefaultMethodBacklog
	case o.MethodBacklog > 0:
		t.methods.backlog = o.MethodBacklog
	}
	t.queries.burst = QueryBurst
	t.jobs.burst = JobOpsBurst
	t.jobLimit = fmt.Sprintf("%d jobs operations per minute", t.jobRate)
	t.methodLimit = methodLimit(t.methodRate)
	t.queryLimit = fmt.Sprintf("%d queries per minute", t.queryRate)
	return t
}

// methodCost is how long the bucket takes to earn a call's metered payload
// of size bytes; see costOf. The caller holds t.mu.
func (t *throttler) methodCost(size int) time.Duration {
	units := max(1, (int64(size)+MethodMeterSize-1)/MethodMeterSize)
	return costOf(units*MethodMeterSize, t.methodRate, time.Second)
}

// costOf is how long a bucket earning rate per period takes to earn n,
// rounded down to the nanosecond (but at least 1 ns), so that a whole
// period's budget takes exactly rate requests of cost 1 even when the
// period does not divide evenly.
func costOf(n, rate int64, period time.Duration) time.Duration {
	return max(1, time.Duration(n*int64(period)/rate))
}

// methodsUnavailable returns the answer to a direct method on a Basic
// tier, else nil.
func (t *throttler) methodsUnavailable() *hubError {
	if t == nil || !t.noMethods {
		return nil
	}
	return newError(iothub.ErrorCodeOperationNotAvailableInCurrentTier, fmt.Sprintf(
		"Direct methods are not available in the %s tier; they need a Free or Standard tier IoT hub.", t.tier))
}

// method meters a direct-method call whose payload is size bytes as compact
// JSON. It returns nil when the call may proceed, after waiting in the
// queue if traffic shaping delays it, and the 429 answer when it is
// throttled. When ctx ends while the call waits it breaks the connection
// (see abort).
func (t *throttler) method(ctx context.Context, size int) *hubError {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	cost := t.methodCost(size)
	delay, retry, ok := t.methods.take(time.Now(), cost)
	if !ok {
		t.stats.Throttled++
		e := t.reject(&t.methods, retry, t.methodLimit)
		t.mu.Unlock()
		return e
	}
	t.stats.Admitted++
	if delay > 0 {
		t.stats.Queued++
		t.stats.QueueDelay += delay
	}
	t.mu.Unlock()
	if !sleep(ctx, delay) {
		abort()
	}
	return nil
}

// query meters a query request. It returns the 429 answer when the request
// is throttled, else nil.
func (t *throttler) query() *hubError {
	if t == nil {
		return nil
	}
	return t.perMinute(&t.queries, t.queryRate, t.queryLimit, &t.stats.QueriesAdmitted, &t.stats.QueriesThrottled)
}

// jobOp meters a jobs v2 request. It returns the answer when the request
// is refused (403010 on a Basic tier, 429 when throttled), else nil.
func (t *throttler) jobOp() *hubError {
	if t == nil {
		return nil
	}
	if t.jobRate == 0 {
		return newError(iothub.ErrorCodeOperationNotAvailableInCurrentTier, fmt.Sprintf(
			"Jobs are not available in the %s tier; they need a Free or Standard tier IoT hub.", t.tier))
	}
	return t.perMinute(&t.jobs, t.jobRate, t.jobLimit, &t.stats.JobOpsAdmitted, &t.stats.JobOpsThrottled)
}

// perMinute charges one request to b, a bucket without queueing refilled
// at rate a minute, and counts it in admitted or throttled. It returns the
// 429 answer when b does not cover the request, else nil.
func (t *throttler) perMinute(b *bucket, rate int64, limit string, admitted, throttled *int64) *hubError {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, retry, ok := b.take(time.Now(), costOf(1, rate, time.Minute))
	if !ok {
		*throttled++
		return t.reject(b, retry, limit)
	}
	*admitted++
	return nil
}

// reject counts a 429 of bucket b and returns it, with Retry-After when the
// rule says so (see ThrottleOptions). The caller holds t.mu.
func (t *throttler) reject(b *bucket, retry time.Duration, limit string) *hubError {
	b.rejected++
	e := newError(iothub.ErrorCodeThrottlingException, fmt.Sprintf(
		"IoT Hub throttling limits have been exceeded for the requested operation (limit: %s).", limit))
	if t.retryEvery > 0 && b.rejected%int64(t.retryEvery) == 0 {
		secs := int64((retry + time.Second - 1) / time.Second)
		e.header = http.Header{"Retry-After": {strconv.FormatInt(max(secs, 1), 10)}}
	}
	return e
}

// bucket is a token bucket kept as the instant its balance is zero: at now
// it holds now-zero of budget (as time at its rate), at most burst; a zero
// in the future is debt, the queue of traffic shaping. The throttler's
// mutex guards it.
type bucket struct {
	burst    time.Duration // capacity
	backlog  time.Duration // most debt allowed; 0: no queueing
	zero     time.Time     // when the balance is (or was) zero
	rejected int64         // 429 answers, for the Retry-After rule
}

// take charges cost to the bucket at now. When the request may go it
// returns ok and how long it must first wait in the queue (0: not at all).
// Otherwise it returns retry, how long until the bucket would take it if
// nothing else were charged meanwhile. A cost above burst needs only a full
// bucket, and waits only for that: the rest is debt later requests wait
// for.
func (b *bucket) take(now time.Time, cost time.Duration) (delay, retry time.Duration, ok bool) {
	z := b.zero
	if full := now.Add(-b.burst); z.Before(full) {
		z = full
	}
	wait := z.Add(min(cost, b.burst)).Sub(now)
	if over := wait - b.backlog; over > 0 {
		return 0, over, false
	}
	b.zero = z.Add(cost)
	return max(0, wait), 0, true
}

// methodLimit is how a 429's message names the direct-method limit.
func methodLimit(rate int64) string { return fmt.Sprintf("%d bytes of payload per second", rate) }

// SetMethodRate changes the hub's direct-method rate to bytesPerSecond of
// metered payload (MethodMeterSize × calls a second for small payloads), as
// when units are added or removed or other traffic starts sharing the
// hub's limit. It takes effect for the next call. MethodBurst and
// MethodBacklog stay the same time at the new rate.
//
// The bucket keeps its state in bytes: budget saved up at the old rate is
// worth the same bytes at the new one (up to MethodBurst at the new rate),
// and calls already queued keep their turn, so the queue drains as it was
// scheduled and the next call waits behind it and pays at the new rate.
//
// It panics when bytesPerSecond is not positive or the hub has no
// throttle (Options.Throttle is nil).
func (h *Hub) SetMethodRate(bytesPerSecond int64) {
	t := h.throttle
	switch {
	case t == nil:
		panic("iothubtest: SetMethodRate: the hub has no throttle (Options.Throttle is nil)")
	case bytesPerSecond <= 0:
		panic(fmt.Sprintf("iothubtest: SetMethodRate: %d bytes per second", bytesPerSecond))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.methods.rescale(time.Now(), t.methodRate, bytesPerSecond)
	t.methodRate = bytesPerSecond
	t.methodLimit = methodLimit(bytesPerSecond)
}

// MethodRate returns the hub's direct-method rate in bytes of metered
// payload per second (see SetMethodRate), or 0 when the hub has no
// throttle.
func (h *Hub) MethodRate() int64 {
	t := h.throttle
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.methodRate
}

// rescale converts the bucket's saved-up budget, as time at rate from, to
// the same bytes as time at rate to, capped at burst. Debt (the queue) is
// left as it is: the calls in it were admitted and keep their turn.
func (b *bucket) rescale(now time.Time, from, to int64) {
	credit := now.Sub(b.zero)
	if credit <= 0 {
		return
	}
	credit = min(credit, b.burst)
	scaled := time.Duration(float64(credit) * float64(from) / float64(to))
	b.zero = now.Add(-min(scaled, b.burst))
}
