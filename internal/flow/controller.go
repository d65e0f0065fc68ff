package flow

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// Outcome is what a call's end tells the Controller about the hub's load.
type Outcome int

// The outcomes.
const (
	// Accepted: the hub took the call and answered it: a success, a
	// device's own error status, or a device-level error such as 404103.
	Accepted Outcome = iota
	// Throttled: the hub answered 429.
	Throttled
	// Busy: the hub answered 503.
	Busy
	// Failed: anything else (no answer, a fleet-wide fault, a cancelled
	// call). It tells nothing about the load and only ends the call.
	Failed
)

// String returns the outcome's name.
func (o Outcome) String() string {
	switch o {
	case Accepted:
		return "accepted"
	case Throttled:
		return "throttled"
	case Busy:
		return "busy"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Result is the end of one call, as the Controller needs it.
type Result struct {
	// Outcome classifies the call's end.
	Outcome Outcome
	// Latency is the time from the call's start (the time Reserve said
	// it could start) to its end.
	Latency time.Duration
	// RetryAfter is the Retry-After of a 429, or 0.
	RetryAfter time.Duration
}

// Config is what the caller of a fan-out sets.
type Config struct {
	// Cap is a rate, in calls per second, the Controller never exceeds;
	// 0 means none.
	Cap float64
	// Seed is the rate to start at, in calls per second, such as the
	// hub's documented limit for its tier and units; 0 means slow start
	// from Policy.InitialRate. The Controller still probes above a seed
	// and backs off below it: it is a starting point, not a promise.
	Seed float64
}

// Phase is what currently limits the Controller's rate.
type Phase int

// The phases.
const (
	// Probing: no sign of the hub's limit yet; the rate grows quickly.
	Probing Phase = iota
	// LimitedByHub: the hub's signals set the rate; State.Limit is the
	// estimated limit.
	LimitedByHub
	// BackingOff: no call starts until State.Until, because the hub
	// throttled most recent calls with Retry-After.
	BackingOff
	// Capped: the rate is the caller's cap.
	Capped
)

// String returns the phase's name.
func (p Phase) String() string {
	switch p {
	case Probing:
		return "probing"
	case LimitedByHub:
		return "limited by hub"
	case BackingOff:
		return "backing off"
	case Capped:
		return "capped"
	}
	return fmt.Sprintf("Phase(%d)", int(p))
}

// State is the Controller's state, for display.
type State struct {
	Phase Phase
	// Rate is the pacing rate in calls per second; +Inf when calls are
	// not paced.
	Rate float64
	// Limit is the estimated limit of the hub in calls per second, 0
	// while unknown.
	Limit float64
	// Until is the end of a BackingOff pause.
	Until time.Time
}

// String describes the state, as in "limited by hub at ~980/s".
func (s State) String() string {
	switch s.Phase {
	case LimitedByHub:
		return fmt.Sprintf("limited by hub at ~%.0f/s", s.Limit)
	case BackingOff:
		return fmt.Sprintf("backing off until %s", s.Until.Format(time.TimeOnly))
	case Capped:
		return fmt.Sprintf("capped at %.0f/s", s.Rate)
	}
	if math.IsInf(s.Rate, 1) {
		return "probing"
	}
	return fmt.Sprintf("probing at %.0f/s", s.Rate)
}

// Policy holds the Controller's constants. DefaultPolicy gives the tuned
// values; a Policy with a zero or invalid field takes that field's
// default.
type Policy struct {
	// InitialRate is where slow start begins, in calls per second. A
	// negative value starts unpaced, until the first congestion signal.
	InitialRate float64
	// SlowStartGrowth multiplies the rate every SlowStartInterval of
	// slow start in which the pacing, not the caller, limited the calls.
	// A round lasts at least SlowStartCalls calls (or Window).
	SlowStartGrowth   float64
	SlowStartInterval time.Duration
	SlowStartCalls    float64

	// ProbeInterval is how often, after slow start, the rate may grow.
	ProbeInterval time.Duration
	// ProbeStep is the first relative step after a congestion event; it
	// doubles with each interval without one, up to MaxProbeStep.
	ProbeStep    float64
	MaxProbeStep float64
	// Hold is how long the rate stays at the estimated limit before it
	// probes above it: Hold, or the time HoldCalls calls take at the
	// rate, whichever is longer. Each probe above the limit costs a 429
	// or a few when the limit has not moved, so HoldCalls bounds their
	// share at low rates.
	Hold      time.Duration
	HoldCalls float64

	// Backoff is the fraction of the measured accepted rate the rate
	// drops to on a 429 or on queueing; BusyBackoff the fraction of the
	// current rate on a 503. MaxCut bounds one event's cut: the rate
	// never drops below MaxCut times what it was.
	Backoff     float64
	BusyBackoff float64
	MaxCut      float64

	// Window is how far back the accepted rate and the share of 429s are
	// measured.
	Window time.Duration

	// QueueFactor and QueueMargin define queueing: the lowest latency of
	// a ProbeInterval's accepted calls above QueueFactor times the
	// baseline plus QueueMargin (a negative QueueMargin means none). The
	// baseline is the lowest latency of the last BaselineWindow. The
	// queue counts as growing when the lowest latency is more than half
	// of QueueMargin above the last interval's.
	QueueFactor    float64
	QueueMargin    time.Duration
	BaselineWindow time.Duration

	// PauseShare and PauseMin decide a pause of every call: when, within
	// Window, at least PauseMin calls and PauseShare of all calls were
	// throttled with a Retry-After, no call starts until that
	// Retry-After has passed. A single 429 never pauses anyone.
	PauseShare float64
	PauseMin   int

	// PacedShare decides whether the pacing, rather than the caller,
	// held the calls back in an interval: most starts waited for their
	// turn, and the starts reached PacedShare of the rate. Only then does
	// the rate grow, and only then is rising latency the hub's queue
	// rather than slow devices.
	PacedShare float64

	// MinRate is the lowest rate, in calls per second.
	MinRate float64

	// Slack is how far behind its schedule the pacing may fall and still
	// catch up: a start the dispatcher could make only late (a timer that
	// woke late, a dispatcher descheduled for a moment) is made up by the
	// next starts, which then go at once, so the rate holds on average.
	// A start later than Slack behind is the caller's doing (its workers
	// were all busy), and the schedule restarts from it. Starts that
	// catch up count as held back by the pacing. Slack bounds the burst a
	// catch-up makes: Slack times the rate, in calls.
	Slack time.Duration
}

// DefaultPolicy returns the tuned policy; see the package documentation.
func DefaultPolicy() Policy {
	return Policy{
		InitialRate:       50,
		SlowStartGrowth:   2,
		SlowStartInterval: 50 * time.Millisecond,
		SlowStartCalls:    8,
		ProbeInterval:     250 * time.Millisecond,
		ProbeStep:         0.02,
		MaxProbeStep:      0.25,
		Hold:              time.Second,
		HoldCalls:         250,
		Backoff:           0.95,
		BusyBackoff:       0.9,
		MaxCut:            0.5,
		Window:            time.Second,
		QueueFactor:       2,
		QueueMargin:       5 * time.Millisecond,
		BaselineWindow:    10 * time.Second,
		PauseShare:        0.5,
		PauseMin:          20,
		PacedShare:        0.8,
		MinRate:           1,
		Slack:             4 * time.Millisecond,
	}
}

// withDefaults fills the fields of p that are zero or invalid.
func (p Policy) withDefaults() Policy {
	d := DefaultPolicy()
	pos := func(v *float64, def float64) {
		if !(*v > 0) || math.IsInf(*v, 0) {
			*v = def
		}
	}
	posD := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	if p.InitialRate == 0 || math.IsNaN(p.InitialRate) || math.IsInf(p.InitialRate, 0) {
		p.InitialRate = d.InitialRate
	}
	if !(p.SlowStartGrowth > 1) {
		p.SlowStartGrowth = d.SlowStartGrowth
	}
	posD(&p.SlowStartInterval, d.SlowStartInterval)
	pos(&p.SlowStartCalls, d.SlowStartCalls)
	posD(&p.ProbeInterval, d.ProbeInterval)
	pos(&p.ProbeStep, d.ProbeStep)
	pos(&p.MaxProbeStep, d.MaxProbeStep)
	posD(&p.Hold, d.Hold)
	pos(&p.HoldCalls, d.HoldCalls)
	frac := func(v *float64, def float64) {
		if !(*v > 0 && *v < 1) {
			*v = def
		}
	}
	frac(&p.Backoff, d.Backoff)
	frac(&p.BusyBackoff, d.BusyBackoff)
	frac(&p.MaxCut, d.MaxCut)
	posD(&p.Window, d.Window)
	if !(p.QueueFactor >= 1) {
		p.QueueFactor = d.QueueFactor
	}
	switch {
	case p.QueueMargin == 0:
		p.QueueMargin = d.QueueMargin
	case p.QueueMargin < 0:
		p.QueueMargin = 0
	}
	posD(&p.BaselineWindow, d.BaselineWindow)
	frac(&p.PauseShare, d.PauseShare)
	frac(&p.PacedShare, d.PacedShare)
	if p.PauseMin <= 0 {
		p.PauseMin = d.PauseMin
	}
	pos(&p.MinRate, d.MinRate)
	posD(&p.Slack, d.Slack)
	return p
}

// slots is the resolution of the Window measurements.
const slots = 40

type slot struct {
	accepted, throttled, withRetryAfter, ended int32
	reserved, paced                            int32
}

// Controller paces the starts of a fan-out's calls at the rate the hub
// accepts. It is safe for concurrent use; it has no goroutines and reads
// no clock: every method takes the current time.
type Controller struct {
	p   Policy
	cap float64 // 0: none

	mu sync.Mutex

	// Pacing.
	rate     float64       // calls per second; +Inf: unpaced
	interval time.Duration // 1/rate
	next     time.Time     // earliest start of the next call
	pause    time.Time     // no call starts before

	// Control.
	slowStart   bool
	limit       float64   // estimated hub limit; 0: unknown
	step        float64   // next relative growth step
	nextGrow    time.Time // next growth decision
	holdUntil   time.Time // no growth above limit before
	lastCut     time.Time // calls started before it belong to the last event
	episodeFrom time.Time // first 429 of the current run of 429s
	episodeAcc  int64     // accepted calls since episodeFrom
	inEpisode   bool
	episodeSlow bool // the episode began in slow start
	episodeCuts int  // cuts in the episode so far

	// Measurements over Window.
	epoch    time.Time
	slotDur  time.Duration
	cur      int64 // absolute index of the current slot
	ring     [slots]slot
	growFrom int64 // slot at the last growth decision

	// The current round of slow start, counted exactly: its rounds may be
	// shorter than a slot.
	roundFrom                 time.Time
	roundReserved, roundPaced int32

	// Lowest latencies per ProbeInterval.
	intervalMin    time.Duration
	intervalN      int32
	baseline       time.Duration // lowest latency within BaselineWindow; 0 unknown
	baselinePrev   time.Duration
	baselineRotate time.Time
	lastLow        time.Duration // the last interval's lowest latency
}

// NewController returns a Controller with policy p (zero fields take
// DefaultPolicy's values) and the caller's configuration c. A negative,
// NaN or infinite Cap or Seed counts as none; validating them is the
// caller's job.
func NewController(p Policy, c Config) *Controller {
	p = p.withDefaults()
	ctl := &Controller{p: p, step: p.ProbeStep, slotDur: p.Window / slots}
	if ctl.slotDur <= 0 {
		ctl.slotDur = 1
	}
	if c.Cap > 0 && !math.IsInf(c.Cap, 0) {
		ctl.cap = c.Cap
	}
	switch {
	case c.Seed > 0 && !math.IsInf(c.Seed, 0):
		ctl.limit = c.Seed
		ctl.setRate(c.Seed)
	case p.InitialRate < 0:
		ctl.slowStart = true
		ctl.setRate(math.Inf(1))
	default:
		ctl.slowStart = true
		ctl.setRate(p.InitialRate)
	}
	return ctl
}

// setRate sets the pacing rate: at least MinRate, at most the cap (which
// wins when it is lower).
func (c *Controller) setRate(r float64) {
	r = max(r, c.p.MinRate)
	if c.cap > 0 && r > c.cap {
		r = c.cap
	}
	c.rate = r
	if math.IsInf(r, 1) {
		c.interval = 0
		return
	}
	c.interval = time.Duration(float64(time.Second) / r)
}

// Reserve books the start of one call and returns how long the caller
// must wait before starting it; 0 means start now. Every reservation is
// a start: call Done when the call ends, or Release if it never starts.
//
// A reservation is made at the rate of its moment. Call it from one
// dispatcher that asks for the next start only once the last one's wait
// is over: reservations booked far ahead would hold to a rate the
// controller has since changed.
func (c *Controller) Reserve(now time.Time) (wait time.Duration) {
	wait, _ = c.reserve(now, -1)
	return wait
}

// TryReserve books the start of one call only if it may begin within d of
// now, and reports whether it did. It lets a caller that is free to start
// skip the dispatcher when the schedule has room: it books nothing when
// the next slot is later, which is where the dispatcher's one-at-a-time
// booking matters. A booked start is as from Reserve: call Done or
// Release.
func (c *Controller) TryReserve(now time.Time, d time.Duration) bool {
	_, ok := c.reserve(now, d)
	return ok
}

// reserve is Reserve, and TryReserve when within is not negative.
func (c *Controller) reserve(now time.Time, within time.Duration) (wait time.Duration, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.advance(now)
	c.maybeGrow(now)
	t := now
	if t.Before(c.pause) {
		t = c.pause
	}
	paced := false
	base := c.next
	if c.interval > 0 {
		if base.Before(now.Add(-c.p.Slack)) {
			// Too far behind: the caller held the starts back, and
			// the schedule restarts from now.
			base = now
		} else if !base.After(now) {
			// Behind by less than Slack: the pacing's own lateness,
			// made up by starting now and booking the next from the
			// schedule, not from now.
			paced = true
		}
		if t.Before(base) {
			t = base
		}
	}
	wait = t.Sub(now)
	if within >= 0 && wait >= within {
		return 0, false
	}
	if c.interval > 0 {
		if t.After(now) {
			c.next = t.Add(c.interval)
		} else {
			c.next = base.Add(c.interval)
		}
	}
	s.reserved++
	c.roundReserved++
	if wait > 0 || paced {
		s.paced++
		c.roundPaced++
	}
	return wait, true
}

// Release gives back a reservation whose call did not start.
func (c *Controller) Release(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance(now)
	if c.interval > 0 && c.next.After(now) {
		c.next = c.next.Add(-c.interval)
	}
}

// Done records the end of a call that started after a Reserve.
func (c *Controller) Done(now time.Time, r Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.advance(now)
	started := now.Add(-r.Latency)
	switch r.Outcome {
	case Accepted:
		s.accepted++
		s.ended++
		if c.inEpisode {
			c.episodeAcc++
		}
		if !started.Before(c.lastCut) {
			// Only calls started since the last cut show its effect.
			c.observeLatency(r.Latency)
		}
	case Throttled:
		s.throttled++
		s.ended++
		if r.RetryAfter > 0 {
			s.withRetryAfter++
			c.maybePause(now, r.RetryAfter)
		}
		if !c.inEpisode {
			c.inEpisode, c.episodeFrom, c.episodeAcc, c.episodeSlow, c.episodeCuts = true, now, 0, c.slowStart, 0
		}
		if !started.Before(c.lastCut) {
			c.congested(now, c.p.Backoff)
		}
	case Busy:
		s.ended++
		if !started.Before(c.lastCut) {
			c.cut(now, c.rate*c.p.BusyBackoff)
		}
	default:
		s.ended++
	}
	c.maybeGrow(now)
}

// congested handles a 429 or queueing: the rate drops to factor times
// the rate the hub accepted.
func (c *Controller) congested(now time.Time, factor float64) {
	// The accepted rate over the last ProbeInterval, while the rate was
	// within one step of what it is now: biased high by what the hub's
	// burst let through, an error the next 429 corrects within a round
	// trip, where a low estimate would cost throughput until probing
	// makes it up.
	win := c.p.ProbeInterval
	if c.slowStart || c.episodeSlow {
		// Slow start's rate doubled within the last interval: only the
		// last two tell what the hub took.
		win = 2 * c.p.SlowStartInterval
	}
	est, sure := c.acceptedRate(now, win), false
	if c.inEpisode {
		// While the 429s go on the hub's bucket is empty, so the calls
		// it accepted since the first of them are exactly its rate.
		if d := now.Sub(c.episodeFrom); d >= 2*c.slotDur {
			est, sure = float64(c.episodeAcc)/d.Seconds(), true
		}
	}
	wasSlowStart := c.slowStart
	if wasSlowStart && !math.IsInf(c.rate, 1) {
		// Accepted calls are counted when they end, a latency after
		// they started, so while the rate doubles they trail it; the
		// previous round's rate passed (as TCP's slow start halves its
		// window on its first loss). A rate still too high is cut again
		// within a round trip.
		est = max(est, c.rate/c.p.SlowStartGrowth)
	} else if c.episodeSlow && !sure && !math.IsInf(c.rate, 1) {
		// Still slow start's overshoot: the accepted rate still trails,
		// so cut from the rate, deeper with each further cut.
		est = max(est, c.rate)
	}
	if !math.IsInf(c.rate, 1) {
		est = min(est, c.rate)
	}
	if c.inEpisode {
		// Each further cut of one run of 429s is a sign that the
		// estimates are high (the hub's burst inflates them): cut
		// deeper each time.
		for range c.episodeCuts {
			factor *= c.p.Backoff
		}
		c.episodeCuts++
	}
	// Slow start overshoots by up to its growth factor per round: go to
	// the estimate at once.
	c.cutTo(now, factor*est, c.episodeSlow)
	c.limit = max(est, c.rate)
	if wasSlowStart && !sure {
		// The first estimate of slow start mixes in the ramp: probe
		// again at once, in large steps, rather than hold at it.
		c.holdUntil = now
		c.step = c.p.MaxProbeStep
		c.limit = c.rate
	}
}

// cut lowers the rate to r, by at most MaxCut, and starts a new event.
func (c *Controller) cut(now time.Time, r float64) { c.cutTo(now, r, false) }

// cutTo lowers the rate to r, by at most MaxCut unless unbounded, and
// starts a new event.
func (c *Controller) cutTo(now time.Time, r float64, unbounded bool) {
	if unbounded {
		r = min(r, c.rate)
	} else if !math.IsInf(c.rate, 1) {
		r = min(max(r, c.rate*c.p.MaxCut), c.rate)
	}
	c.setRate(r)
	if c.limit == 0 {
		c.limit = c.rate
	}
	c.slowStart = false
	c.lastCut = now
	c.step = c.p.ProbeStep
	c.holdUntil = now.Add(max(c.p.Hold, time.Duration(c.p.HoldCalls/c.rate*float64(time.Second))))
	c.nextGrow = now.Add(c.p.ProbeInterval)
	c.growFrom = c.cur
	c.resetInterval()
}

// maybePause pauses every call when most recent calls were throttled
// with a Retry-After.
func (c *Controller) maybePause(now time.Time, ra time.Duration) {
	var ended, with int32
	for i := range c.ring {
		ended += c.ring[i].ended
		with += c.ring[i].withRetryAfter
	}
	if int(with) >= c.p.PauseMin && float64(with) >= c.p.PauseShare*float64(ended) {
		if u := now.Add(ra); u.After(c.pause) {
			c.pause = u
		}
	}
}

// maybeGrow takes the growth decision once per interval.
func (c *Controller) maybeGrow(now time.Time) {
	if now.Before(c.nextGrow) {
		return
	}
	iv := c.p.ProbeInterval
	if c.slowStart {
		iv = c.slowStartRound()
	}
	if c.roundFrom.IsZero() {
		c.roundFrom = now
	}
	from := c.growFrom
	if c.slowStart && !math.IsInf(c.rate, 1) {
		// A round of slow start lasts at least SlowStartCalls calls,
		// so that a low rate does not double on no evidence.
		// Short of calls at its end, the round ends with the start that
		// makes up its count: the decision is taken again at the next
		// reservation or end of a call, not an interval later.
		if float64(c.roundReserved) < c.p.SlowStartCalls && now.Sub(c.roundFrom) < c.p.Window {
			c.nextGrow = c.roundFrom.Add(iv)
			return
		}
	}
	roundReserved, roundPaced, roundSpan := c.roundReserved, c.roundPaced, now.Sub(c.roundFrom)
	c.roundFrom, c.roundReserved, c.roundPaced = now, 0, 0
	c.nextGrow, c.growFrom = now.Add(iv), c.cur
	queueing, rising := c.queueing()
	if c.slowStart {
		// The round trip may be known now. The length is that of the
		// rate this round leaves: the first round at or above
		// fastRoundRate still lasts SlowStartInterval (package doc).
		c.nextGrow = now.Add(c.slowStartRound())
	}
	c.resetInterval()
	if now.Before(c.pause) {
		return
	}
	// Whether the pacing held calls back in this interval, not the caller
	// (its concurrency, slow devices, or no targets left).
	var reserved, paced int32
	first := max(from, c.cur-slots+1)
	for i := first; i <= c.cur; i++ {
		s := &c.ring[i%slots]
		reserved += s.reserved
		paced += s.paced
	}
	// Held back means: most starts waited for their turn, and the starts
	// came at close to the pacing's rate. A start that waited a moment
	// behind a burst of others (a worker pool freeing up at once) is not
	// evidence while the starts as a whole fall short of the rate.
	span := now.Sub(c.epoch.Add(time.Duration(first) * c.slotDur)) // from the first counted slot's start
	if c.slowStart {
		// Slow start's rounds may be shorter than a slot: its own
		// exact counts.
		reserved, paced, span = roundReserved, roundPaced, roundSpan
	}
	pacingLimited := !math.IsInf(c.rate, 1) && reserved > 0 && 2*paced >= reserved &&
		float64(reserved) >= c.p.PacedShare*c.rate*span.Seconds()
	// Latency rising is the hub's queue only while calls go out at the
	// pacing's rate: when the caller holds them back, it is its devices
	// that are slow (a tail of slow devices at the end of a run), and the
	// hub is not asked for more than it served.
	if queueing && pacingLimited {
		// The hub queues calls. A queue that grows means more is sent
		// than the hub serves; one that holds or drains only means no
		// more should be.
		if rising && !c.inEpisode {
			c.congested(now, c.p.Backoff)
		}
		return
	}
	if c.inEpisode && now.Sub(c.lastCut) > c.p.ProbeInterval {
		c.inEpisode, c.episodeSlow = false, false
	}
	// Grow only when the pacing held calls back: a caller limited by its
	// concurrency or its targets gives no evidence that more would pass.
	if !pacingLimited {
		return
	}
	if c.cap > 0 && c.rate >= c.cap {
		return
	}
	switch {
	case c.slowStart:
		c.setRate(c.rate * c.p.SlowStartGrowth)
		// The start booked at the old rate's interval moves up to the
		// new one: otherwise the first round at a rate falls one start
		// short of it and does not count as held back.
		if c.interval > 0 && c.next.After(now.Add(c.interval)) {
			c.next = now.Add(c.interval)
		}
	case c.rate < c.limit:
		c.setRate(min(c.limit, c.rate*(1+c.step)))
		c.step = min(2*c.step, c.p.MaxProbeStep)
		if c.rate >= c.limit {
			c.step = c.p.ProbeStep
		}
	case now.Before(c.holdUntil):
	default:
		// The hub took what was sent: the limit is at least that.
		c.limit = max(c.limit, c.acceptedRate(now, c.p.Window))
		c.setRate(c.rate * (1 + c.step))
		c.step = min(2*c.step, c.p.MaxProbeStep)
	}
}

// advance moves the measurement ring to now and returns its slot.
func (c *Controller) advance(now time.Time) *slot {
	if c.epoch.IsZero() {
		c.epoch = now
		c.baselineRotate = now.Add(c.p.BaselineWindow / 2)
	}
	idx := int64(now.Sub(c.epoch) / c.slotDur)
	if idx > c.cur {
		for i := max(c.cur+1, idx-slots+1); i <= idx; i++ {
			c.ring[i%slots] = slot{}
		}
		c.cur = idx
	}
	return &c.ring[c.cur%slots]
}

// acceptedRate is the rate of accepted calls over the last d, at most
// Window (or since the first call, when that is shorter).
func (c *Controller) acceptedRate(now time.Time, d time.Duration) float64 {
	k := min(int64(d/c.slotDur), slots)
	n := c.acceptedIn(k)
	// The current slot is partly over.
	span := time.Duration(k-1)*c.slotDur + now.Sub(c.epoch.Add(time.Duration(c.cur)*c.slotDur))
	span = max(min(span, now.Sub(c.epoch)), c.slotDur)
	return float64(n) / span.Seconds()
}

// acceptedIn counts the accepted calls of the last k slots, the current
// one included.
func (c *Controller) acceptedIn(k int64) int32 {
	var n int32
	for i := max(c.cur-k+1, 0); i <= c.cur; i++ {
		n += c.ring[i%slots].accepted
	}
	return n
}

// slowStartRound is how long a round of slow start lasts at least:
// SlowStartInterval below fastRoundRate, or while the hub's round trip is
// not known; above it, that round trip (the lowest latency of the baseline
// window) when it is shorter, but no less than minSlowStartRound.
//
// A 429 or a queue comes back within one round trip, so doubling once a
// round trip never outruns the hub's answer, and a hub that already took
// fastRoundRate calls a second with no sign of congestion (an S3 hub, or
// many units of S2) is not made to wait 50 ms a doubling. Below that rate
// the longer rounds keep slow start's overshoot into a small hub's bucket
// (S1 allows 40 calls a second a unit) to a few calls.
func (c *Controller) slowStartRound() time.Duration {
	if c.rate < fastRoundRate {
		return c.p.SlowStartInterval
	}
	rtt := c.baseline
	if c.baselinePrev != 0 && (rtt == 0 || c.baselinePrev < rtt) {
		rtt = c.baselinePrev
	}
	if rtt <= 0 {
		return c.p.SlowStartInterval
	}
	return min(max(rtt, minSlowStartRound), c.p.SlowStartInterval)
}

// minSlowStartRound is the shortest round of slow start, and
// fastRoundRate the rate from which its rounds follow the round trip.
const (
	minSlowStartRound = 5 * time.Millisecond
	fastRoundRate     = 1000
)

// observeLatency adds an accepted call's latency to the interval's
// minimum.
func (c *Controller) observeLatency(d time.Duration) {
	if c.intervalN == 0 || d < c.intervalMin {
		c.intervalMin = d
	}
	c.intervalN++
}

func (c *Controller) resetInterval() { c.intervalN, c.intervalMin = 0, 0 }

// minSamples is how many latencies an interval needs for its minimum to
// count.
const minSamples = 8

// queueing reports whether the interval's lowest latency shows the hub
// queueing calls, and whether it rose since the last interval; it updates
// the baseline.
//
// The lowest latency, not the median: a queue at the hub delays every
// call, the fastest device's too, while the median moves with the mix of
// devices that happen to answer (fast ones first, at the start of a
// run), which would read as a queue that is not there.
func (c *Controller) queueing() (queueing, rising bool) {
	if c.intervalN < minSamples {
		return false, false
	}
	low := c.intervalMin
	now := c.epoch.Add(time.Duration(c.cur) * c.slotDur)
	if !now.Before(c.baselineRotate) {
		c.baselinePrev, c.baseline = c.baseline, 0
		c.baselineRotate = now.Add(c.p.BaselineWindow / 2)
	}
	if c.baseline == 0 || low < c.baseline {
		c.baseline = low
	}
	base := c.baseline
	if c.baselinePrev != 0 && c.baselinePrev < base {
		base = c.baselinePrev
	}
	last := c.lastLow
	c.lastLow = low
	queueing = float64(low) > c.p.QueueFactor*float64(base)+float64(c.p.QueueMargin)
	return queueing, last != 0 && low > last+c.p.QueueMargin/2
}

// AcceptedRate returns, for display, the calls that ended Accepted within
// the last Window (its slots, the current one included) divided by
// Window: 4 calls in the last second are 4/s.
func (c *Controller) AcceptedRate(now time.Time) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch.IsZero() {
		return 0
	}
	c.advance(now)
	return float64(c.acceptedIn(slots)) / c.p.Window.Seconds()
}

// Rate returns the pacing rate in calls per second; +Inf when calls are
// not paced.
func (c *Controller) Rate() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rate
}

// State returns the controller's state at now, for display.
func (c *Controller) State(now time.Time) State {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := State{Rate: c.rate, Limit: c.limit}
	switch {
	case now.Before(c.pause):
		s.Phase, s.Until = BackingOff, c.pause
	case c.cap > 0 && c.rate >= c.cap:
		s.Phase = Capped
	case c.slowStart:
		s.Phase, s.Limit = Probing, 0
	default:
		s.Phase = LimitedByHub
	}
	return s
}
