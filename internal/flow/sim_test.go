package flow

import (
	"container/heap"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// The simulation: a discrete-event model of a fan-out against a hub, in
// virtual time. Nothing sleeps and nothing runs concurrently; the
// controller sees exactly the calls, outcomes and times a fan-out would.

// limitStep is a change of the hub's limit at a time into the run.
type limitStep struct {
	at   time.Duration
	rate float64
}

type simConfig struct {
	limits  []limitStep // limits[0].at must be 0
	burst   float64     // the bucket's capacity, in calls
	backlog time.Duration
	shaping bool          // queue over-limit calls up to backlog
	latency time.Duration // the device's
	// spread, when set, gives target i a latency of latency times
	// 1 + (i*7919)%spread: a fleet of fast and slow devices.
	spread      int
	network     time.Duration // one way, client to hub
	retryAfter  bool          // Retry-After: 1 on every second 429
	workers     int
	targets     int
	policy      Policy
	config      Config
	sampleEvery time.Duration // for the rate timeline; 0: 500 ms
}

type simStats struct {
	makespan  time.Duration
	accepted  int
	throttled int
	paused    time.Duration
	// timeline holds accepted calls per sample, by the time the hub
	// admitted them.
	timeline []int
	sample   time.Duration
	states   []State
}

func (s simStats) throughput() float64 { return float64(s.accepted) / s.makespan.Seconds() }

func (s simStats) throttledShare() float64 {
	return float64(s.throttled) / float64(s.accepted+s.throttled)
}

// rateAt returns the admitted rate over [from, to).
func (s simStats) rateAt(from, to time.Duration) float64 {
	n := 0
	for i := int(from / s.sample); i < int(to/s.sample) && i < len(s.timeline); i++ {
		n += s.timeline[i]
	}
	return float64(n) / (to - from).Seconds()
}

// hub is a token bucket of burst calls refilled at the current limit,
// with traffic shaping: a call the bucket does not cover waits for the
// debt before it to be paid, unless the wait would pass backlog.
type hub struct {
	cfg    *simConfig
	tokens float64
	last   time.Duration
	n429   int
}

func (h *hub) limitAt(t time.Duration) float64 {
	r := h.cfg.limits[0].rate
	for _, l := range h.cfg.limits {
		if l.at <= t {
			r = l.rate
		}
	}
	return r
}

// admit returns the queueing delay of a call arriving at t, or ok false
// for a 429.
func (h *hub) admit(t time.Duration) (delay time.Duration, ok bool) {
	r := h.limitAt(t)
	h.tokens = min(h.cfg.burst, h.tokens+r*(t-h.last).Seconds())
	h.last = t
	if h.tokens >= 1 {
		h.tokens--
		return 0, true
	}
	if !h.cfg.shaping {
		return 0, false
	}
	wait := time.Duration((1 - h.tokens) / r * float64(time.Second))
	if wait > h.cfg.backlog {
		return 0, false
	}
	h.tokens--
	return wait, true
}

type evKind int

const (
	evReady    evKind = iota // a worker takes its next call
	evDispatch               // the dispatcher books the next start
	evStart                  // the call leaves the client
	evDone                   // the answer reaches the client
)

type event struct {
	at      time.Duration
	seq     int
	kind    evKind
	worker  int
	started time.Duration
	res     Outcome
	ra      time.Duration
}

type events []event

func (e events) Len() int { return len(e) }
func (e events) Less(i, j int) bool {
	if e[i].at != e[j].at {
		return e[i].at < e[j].at
	}
	return e[i].seq < e[j].seq
}
func (e events) Swap(i, j int) { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)   { *e = append(*e, x.(event)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

// simulate runs targets through workers, each worker invoking one target
// at a time and retrying it after a 429 (after its Retry-After, when it
// has one). As the fan-out will, one dispatcher asks the controller when
// each attempt may start and lets the longest-waiting ready worker start
// it then, so that no start is booked at an old rate.
func simulate(cfg simConfig) simStats {
	if cfg.network == 0 {
		cfg.network = 500 * time.Microsecond
	}
	if cfg.latency == 0 {
		cfg.latency = 10 * time.Millisecond
	}
	if cfg.backlog == 0 {
		cfg.backlog = 2 * time.Second
	}
	if cfg.sampleEvery == 0 {
		cfg.sampleEvery = 500 * time.Millisecond
	}
	base := time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC)
	ctl := NewController(cfg.policy, cfg.config)
	h := &hub{cfg: &cfg, tokens: cfg.burst}
	st := simStats{sample: cfg.sampleEvery}
	var q events
	seq := 0
	push := func(e event) {
		seq++
		e.seq = seq
		heap.Push(&q, e)
	}
	next := 0                          // next target to hand out
	retry := make([]bool, cfg.workers) // the worker holds a target to retry
	holds := make([]int, cfg.workers)  // the target a worker holds
	latencyOf := func(target int) time.Duration {
		if cfg.spread == 0 {
			return cfg.latency
		}
		return cfg.latency * time.Duration(1+(target*7919)%cfg.spread)
	}
	for w := range cfg.workers {
		push(event{kind: evReady, worker: w})
	}
	var ready []int // workers waiting for the dispatcher
	dispatching := false
	lastState := time.Duration(-1)
	for q.Len() > 0 {
		e := heap.Pop(&q).(event)
		now := base.Add(e.at)
		if s := e.at / st.sample; s > lastState {
			lastState = s
			st.states = append(st.states, ctl.State(now))
		}
		switch e.kind {
		case evReady:
			if !retry[e.worker] {
				if next == cfg.targets {
					continue
				}
				holds[e.worker] = next
				next++
			}
			ready = append(ready, e.worker)
			if !dispatching {
				dispatching = true
				push(event{at: e.at, kind: evDispatch})
			}
		case evDispatch:
			if len(ready) == 0 {
				dispatching = false
				continue
			}
			w := ready[0]
			ready = ready[1:]
			wait := ctl.Reserve(now)
			if ctl.State(now).Phase == BackingOff {
				st.paused += wait
			}
			push(event{at: e.at + wait, kind: evStart, worker: w})
			push(event{at: e.at + wait, kind: evDispatch})
		case evStart:
			arrive := e.at + cfg.network
			delay, ok := h.admit(arrive)
			d := event{kind: evDone, worker: e.worker, started: e.at}
			if ok {
				admitted := arrive + delay
				for i := int(admitted / st.sample); len(st.timeline) <= i; {
					st.timeline = append(st.timeline, 0)
				}
				st.timeline[admitted/st.sample]++
				d.at, d.res = admitted+latencyOf(holds[e.worker])+cfg.network, Accepted
			} else {
				h.n429++
				d.at, d.res = arrive+cfg.network, Throttled
				if cfg.retryAfter && h.n429%2 == 0 {
					d.ra = time.Second
				}
			}
			push(d)
		case evDone:
			ctl.Done(now, Result{Outcome: e.res, Latency: e.at - e.started, RetryAfter: e.ra})
			if e.res == Accepted {
				st.accepted++
				retry[e.worker] = false
				st.makespan = max(st.makespan, e.at)
				push(event{at: e.at, kind: evReady, worker: e.worker})
				continue
			}
			st.throttled++
			retry[e.worker] = true
			push(event{at: e.at + e.ra, kind: evReady, worker: e.worker})
		}
	}
	return st
}

func (s simStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d accepted in %v (%.0f/s), %d throttled (%.2f%%), paused %v\n", s.accepted, s.makespan.Round(time.Millisecond),
		s.throughput(), s.throttled, 100*s.throttledShare(), s.paused)
	for i, n := range s.timeline {
		st := ""
		if i < len(s.states) {
			st = s.states[i].String()
		}
		fmt.Fprintf(&b, "  %5.1fs %5.0f/s  %s\n", (time.Duration(i) * s.sample).Seconds(), float64(n)/s.sample.Seconds(), st)
	}
	return b.String()
}

// TestSimulation runs the fan-out against simulated hubs and checks the
// throughput and throttling targets.
func TestSimulation(t *testing.T) {
	t.Parallel()
	one := []limitStep{{0, 1000}}
	tests := []struct {
		name string
		cfg  simConfig
		// limit is the rate the run is measured against.
		limit float64
		// maxThrottled is the largest share of calls throttled.
		maxThrottled float64
	}{
		{"64 workers, no Retry-After", simConfig{limits: one, burst: 50, workers: 64, targets: 10000}, 1000, 0.02},
		{"64 workers, Retry-After", simConfig{limits: one, burst: 50, workers: 64, targets: 10000, retryAfter: true}, 1000, 0.02},
		{"256 workers, no Retry-After", simConfig{limits: one, burst: 50, workers: 256, targets: 10000}, 1000, 0.02},
		{"256 workers, Retry-After", simConfig{limits: one, burst: 50, workers: 256, targets: 10000, retryAfter: true}, 1000, 0.02},
		{"64 workers, shaping", simConfig{limits: one, burst: 50, workers: 64, targets: 10000, shaping: true, retryAfter: true}, 1000, 0.02},
		{"256 workers, shaping", simConfig{limits: one, burst: 50, workers: 256, targets: 10000, shaping: true, retryAfter: true}, 1000, 0.02},
		{"seeded at the limit", simConfig{limits: one, burst: 50, workers: 64, targets: 10000, retryAfter: true, config: Config{Seed: 1000}}, 1000, 0.02},
		{"seeded at half the limit", simConfig{limits: one, burst: 50, workers: 64, targets: 10000, retryAfter: true, config: Config{Seed: 500}}, 1000, 0.02},
		{"capped", simConfig{limits: one, burst: 50, workers: 64, targets: 5000, retryAfter: true, config: Config{Cap: 500}}, 500, 0},
		// Devices from 10 ms to 200 ms: the median is stable, so the
		// spread is not mistaken for a queue.
		{"slow and fast devices, 256 workers", simConfig{limits: one, burst: 50, workers: 256, targets: 10000, retryAfter: true, spread: 20}, 1000, 0.02},
		{"slow and fast devices, 256 workers, shaping", simConfig{limits: one, burst: 50, workers: 256, targets: 10000, retryAfter: true, spread: 20, shaping: true}, 1000, 0.02},
		{"40/s, 64 workers", simConfig{limits: []limitStep{{0, 40}}, burst: 40, workers: 64, targets: 1000, retryAfter: true}, 40, 0.02},
		{"40/s, 256 workers, shaping", simConfig{limits: []limitStep{{0, 40}}, burst: 40, workers: 256, targets: 1000, shaping: true, retryAfter: true}, 40, 0.02},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := simulate(tt.cfg)
			t.Logf("%v", st)
			if st.accepted != tt.cfg.targets {
				t.Fatalf("%d targets accepted, want %d", st.accepted, tt.cfg.targets)
			}
			if got := st.throughput(); got < 0.9*tt.limit {
				t.Errorf("throughput %.0f/s, want at least 90%% of %.0f/s", got, tt.limit)
			}
			if st.paused != 0 {
				t.Errorf("calls paused for %v in all, want no pause of every call", st.paused)
			}
			if got := st.throttledShare(); got > tt.maxThrottled {
				t.Errorf("%.2f%% of calls throttled, want at most %.0f%%", 100*got, 100*tt.maxThrottled)
			}
		})
	}
}

// TestSimulationLimitChange halves the hub's limit mid-run and later
// doubles it back: within 5 s of each change the rate must be within 15%
// of the new limit, and stay there.
func TestSimulationLimitChange(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		workers    int
		shaping    bool
		retryAfter bool
	}{
		{"64 workers", 64, false, true},
		{"256 workers", 256, false, true},
		{"256 workers, shaping", 256, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			steps := []limitStep{{0, 1000}, {8 * time.Second, 500}, {20 * time.Second, 1000}}
			st := simulate(simConfig{limits: steps, burst: 50, workers: tt.workers, targets: 30000,
				shaping: tt.shaping, retryAfter: tt.retryAfter})
			t.Logf("%v", st)
			if st.accepted != 30000 {
				t.Fatalf("%d accepted", st.accepted)
			}
			ends := []time.Duration{steps[1].at, steps[2].at, st.makespan.Truncate(time.Second) - time.Second}
			for i, s := range steps {
				for from := s.at + 4*time.Second; from+time.Second <= ends[i]; from += 500 * time.Millisecond {
					got := st.rateAt(from, from+time.Second)
					if math.Abs(got-s.rate) > 0.15*s.rate {
						t.Errorf("rate over [%v, %v) = %.0f/s, want within 15%% of %.0f/s", from, from+time.Second, got, s.rate)
					}
				}
			}
			if got := st.throttledShare(); got > 0.02 {
				t.Errorf("%.2f%% of calls throttled, want at most 2%%", 100*got)
			}
		})
	}
}
