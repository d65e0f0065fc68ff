package flow

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC)

// drive runs calls at the controller's pace for d from start, each
// accepted after latency unless outcome says otherwise, and returns the
// time it stopped.
func drive(c *Controller, start time.Time, d, latency time.Duration, outcome func(time.Time) Result) time.Time {
	now := start
	for now.Before(start.Add(d)) {
		now = now.Add(c.Reserve(now))
		r := Result{Outcome: Accepted, Latency: latency}
		if outcome != nil {
			r = outcome(now)
			r.Latency = max(r.Latency, latency)
		}
		c.Done(now.Add(r.Latency), r)
	}
	return now
}

func TestControllerRules(t *testing.T) {
	t.Parallel()
	// rateBefore is the rate a run saw before its last step; the
	// subtests do not run in parallel, so that they can share it.
	rateBefore := map[*Controller]float64{}
	tests := []struct {
		name string
		cfg  Config
		run  func(c *Controller) time.Time
		want func(t *testing.T, c *Controller, now time.Time)
	}{
		{
			name: "starts at the initial rate, probing",
			run:  func(c *Controller) time.Time { return t0 },
			want: func(t *testing.T, c *Controller, now time.Time) {
				if diff := cmp.Diff(State{Phase: Probing, Rate: 50}, c.State(now)); diff != "" {
					t.Errorf("state (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "a seed starts there, limited by hub",
			cfg:  Config{Seed: 400},
			run:  func(c *Controller) time.Time { return t0 },
			want: func(t *testing.T, c *Controller, now time.Time) {
				if diff := cmp.Diff(State{Phase: LimitedByHub, Rate: 400, Limit: 400}, c.State(now)); diff != "" {
					t.Errorf("state (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "pacing spaces starts by 1/rate",
			cfg:  Config{Seed: 100},
			run:  func(c *Controller) time.Time { return t0 },
			want: func(t *testing.T, c *Controller, now time.Time) {
				var got []time.Duration
				for range 3 {
					got = append(got, c.Reserve(now))
				}
				c.Release(now)
				got = append(got, c.Reserve(now))
				want := []time.Duration{0, 10 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("waits (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "TryReserve books only a start the schedule has room for",
			cfg:  Config{Seed: 100},
			run:  func(c *Controller) time.Time { return t0 },
			want: func(t *testing.T, c *Controller, now time.Time) {
				type step struct {
					At     time.Duration
					Booked bool
				}
				var got []step
				for _, at := range []time.Duration{0, 0, 9500 * time.Microsecond, 10 * time.Millisecond, 15 * time.Millisecond} {
					got = append(got, step{at, c.TryReserve(now.Add(at), time.Millisecond)})
				}
				// A refused try booked nothing: the next slot is still 20 ms.
				got = append(got, step{-1, c.Reserve(now.Add(15*time.Millisecond)) == 5*time.Millisecond})
				want := []step{{0, true}, {0, false}, {9500 * time.Microsecond, true}, {10 * time.Millisecond, false}, {15 * time.Millisecond, false}, {-1, true}}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("tries (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "slow start doubles while the pacing binds",
			run: func(c *Controller) time.Time {
				return drive(c, t0, 400*time.Millisecond, 10*time.Millisecond, nil)
			},
			want: func(t *testing.T, c *Controller, now time.Time) {
				// Rounds of at least 8 calls: 160 ms at 50/s, 80 ms at
				// 100/s, then 50 ms.
				if got := c.Rate(); got < 200 || got > 1600 {
					t.Errorf("rate %v after 400 ms of slow start, want 200 to 1600", got)
				}
			},
		},
		{
			name: "no growth when the caller, not the pacing, limits the calls",
			run: func(c *Controller) time.Time {
				now := t0
				for range 100 {
					now = now.Add(100 * time.Millisecond) // far slower than 50/s
					c.Reserve(now)
					c.Done(now.Add(10*time.Millisecond), Result{Outcome: Accepted, Latency: 10 * time.Millisecond})
				}
				return now
			},
			want: func(t *testing.T, c *Controller, now time.Time) {
				if got := c.Rate(); got != 50 {
					t.Errorf("rate %v, want 50", got)
				}
			},
		},
		{
			name: "a 429 cuts to a fraction of the accepted rate, once per round trip",
			cfg:  Config{Seed: 1000},
			run: func(c *Controller) time.Time {
				now := drive(c, t0, time.Second, 10*time.Millisecond, nil)
				rateBefore[c] = c.Rate()
				// Three 429s of calls started before the first was seen.
				for i := range 3 {
					c.Done(now.Add(time.Duration(i)*time.Millisecond), Result{Outcome: Throttled, Latency: 5 * time.Millisecond})
				}
				return now.Add(3 * time.Millisecond)
			},
			want: func(t *testing.T, c *Controller, now time.Time) {
				got, was := c.Rate(), rateBefore[c]
				if got < 0.8*was || got > 0.96*was {
					t.Errorf("rate %v after %v, want one cut to 95%% of the accepted rate", got, was)
				}
				if s := c.State(now); s.Phase != LimitedByHub {
					t.Errorf("phase %v", s.Phase)
				}
			},
		},
		{
			name: "a single 429 with Retry-After pauses no one",
			cfg:  Config{Seed: 1000},
			run: func(c *Controller) time.Time {
				now := drive(c, t0, time.Second, 10*time.Millisecond, nil)
				c.Done(now, Result{Outcome: Throttled, Latency: time.Millisecond, RetryAfter: time.Second})
				return now
			},
			want: func(t *testing.T, c *Controller, now time.Time) {
				if s := c.State(now); s.Phase == BackingOff {
					t.Errorf("state %v", s)
				}
				if w := c.Reserve(now); w > 10*time.Millisecond {
					t.Errorf("wait %v after one 429", w)
				}
			},
		},
		{
			name: "most calls throttled with Retry-After pause every call",
			cfg:  Config{Seed: 100},
			run: func(c *Controller) time.Time {
				now := t0
				for range 30 {
					c.Reserve(now)
					c.Done(now.Add(time.Millisecond), Result{Outcome: Throttled, Latency: time.Millisecond, RetryAfter: 2 * time.Second})
					now = now.Add(10 * time.Millisecond)
				}
				return now
			},
			want: func(t *testing.T, c *Controller, now time.Time) {
				s := c.State(now)
				if s.Phase != BackingOff || !s.Until.After(now.Add(time.Second)) {
					t.Errorf("state %v, want backing off for about 2 s", s)
				}
				if w := c.Reserve(now); w < time.Second {
					t.Errorf("wait %v, want the pause", w)
				}
			},
		},
		{
			name: "a 503 cuts gently",
			cfg:  Config{Seed: 1000},
			run: func(c *Controller) time.Time {
				now := drive(c, t0, 100*time.Millisecond, 10*time.Millisecond, nil)
				c.Done(now, Result{Outcome: Busy, Latency: 10 * time.Millisecond})
				return now
			},
			want: func(t *testing.T, c *Controller, now time.Time) {
				if got := c.Rate(); math.Abs(got-900) > 1 {
					t.Errorf("rate %v, want 900", got)
				}
			},
		},
		{
			name: "other failures change nothing",
			cfg:  Config{Seed: 1000},
			run: func(c *Controller) time.Time {
				return drive(c, t0, 100*time.Millisecond, 10*time.Millisecond, func(time.Time) Result {
					return Result{Outcome: Failed, Latency: time.Millisecond}
				})
			},
			want: func(t *testing.T, c *Controller, now time.Time) {
				if got := c.Rate(); got != 1000 {
					t.Errorf("rate %v, want 1000", got)
				}
			},
		},
		{
			name: "rising latency cuts before any 429",
			cfg:  Config{Seed: 1000},
			run: func(c *Controller) time.Time {
				now := drive(c, t0, time.Second, 10*time.Millisecond, nil)
				rateBefore[c] = c.Rate()
				start := now
				return drive(c, now, time.Second, 10*time.Millisecond, func(at time.Time) Result {
					// A queue that grows by 100 ms a second.
					return Result{Outcome: Accepted, Latency: 10*time.Millisecond + at.Sub(start)/10}
				})
			},
			want: func(t *testing.T, c *Controller, now time.Time) {
				if got, was := c.Rate(), rateBefore[c]; got >= was {
					t.Errorf("rate %v, want below %v", got, was)
				}
			},
		},
		{
			name: "the cap holds",
			cfg:  Config{Cap: 120},
			run: func(c *Controller) time.Time {
				return drive(c, t0, 2*time.Second, 10*time.Millisecond, nil)
			},
			want: func(t *testing.T, c *Controller, now time.Time) {
				if diff := cmp.Diff(State{Phase: Capped, Rate: 120}, c.State(now)); diff != "" {
					t.Errorf("state (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "a cap below MinRate wins",
			cfg:  Config{Cap: 0.5},
			run:  func(c *Controller) time.Time { return t0 },
			want: func(t *testing.T, c *Controller, now time.Time) {
				if got := c.Rate(); got != 0.5 {
					t.Errorf("rate %v, want 0.5", got)
				}
			},
		},
		{
			name: "a seed above the cap starts at the cap",
			cfg:  Config{Cap: 10, Seed: 1000},
			run:  func(c *Controller) time.Time { return t0 },
			want: func(t *testing.T, c *Controller, now time.Time) {
				if got := c.Rate(); got != 10 {
					t.Errorf("rate %v, want 10", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewController(DefaultPolicy(), tt.cfg)
			now := tt.run(c)
			tt.want(t, c, now)
		})
	}
}

// TestSlowStartRounds doubles once a round trip from fastRoundRate on,
// when the round trip is short, and once SlowStartInterval otherwise.
func TestSlowStartRounds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		initial  float64
		latency  time.Duration
		min, max float64 // the rate after 100 ms
	}{
		// From 1,000/s with a 2 ms round trip: rounds of 8 calls (8 ms
		// at 1,000/s), then of 5 ms (minSlowStartRound): eight or more
		// doublings where 50 ms rounds make two.
		{"fast hub above 1,000/s", 1000, 2 * time.Millisecond, 64000, 1e7},
		// A 100 ms round trip is longer than SlowStartInterval: 50 ms.
		{"slow hub above 1,000/s", 1000, 100 * time.Millisecond, 2000, 4000},
		// Below 1,000/s the rounds stay at 50 ms however fast the hub
		// answers: 8 calls at 400/s take 20 ms.
		{"fast hub below 1,000/s", 400, 2 * time.Millisecond, 800, 1600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := NewController(Policy{InitialRate: tt.initial}, Config{})
			drive(c, t0, 100*time.Millisecond, tt.latency, nil)
			if got := c.Rate(); got < tt.min || got > tt.max {
				t.Errorf("rate %v after 100 ms, want %v to %v", got, tt.min, tt.max)
			}
		})
	}
}

func TestUnpacedStart(t *testing.T) {
	t.Parallel()
	c := NewController(Policy{InitialRate: -1}, Config{})
	if w := c.Reserve(t0); w != 0 {
		t.Errorf("wait %v", w)
	}
	if got := c.Rate(); !math.IsInf(got, 1) {
		t.Errorf("rate %v, want +Inf", got)
	}
	if got, want := c.State(t0).String(), "probing"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	c.Done(t0.Add(time.Millisecond), Result{Outcome: Throttled, Latency: time.Millisecond})
	if got := c.Rate(); math.IsInf(got, 1) {
		t.Errorf("rate still unpaced after a 429")
	}
}

func TestStateString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    State
		want string
	}{
		{State{Phase: Probing, Rate: 50}, "probing at 50/s"},
		{State{Phase: LimitedByHub, Rate: 950, Limit: 981.4}, "limited by hub at ~981/s"},
		{State{Phase: BackingOff, Until: t0}, "backing off until 16:00:00"},
		{State{Phase: Capped, Rate: 120}, "capped at 120/s"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
	for _, s := range []string{Probing.String(), Accepted.String(), Phase(9).String(), Outcome(9).String()} {
		if s == "" {
			t.Error("empty name")
		}
	}
}

func TestPolicyDefaults(t *testing.T) {
	t.Parallel()
	if diff := cmp.Diff(DefaultPolicy(), Policy{}.withDefaults()); diff != "" {
		t.Errorf("zero policy (-want +got):\n%s", diff)
	}
	bad := Policy{InitialRate: math.NaN(), Backoff: 2, MaxCut: -1, ProbeStep: math.Inf(1), QueueFactor: 0.5, PauseShare: 1}
	if diff := cmp.Diff(DefaultPolicy(), bad.withDefaults()); diff != "" {
		t.Errorf("invalid policy (-want +got):\n%s", diff)
	}
}

// BenchmarkController measures one call's cost: a Reserve and a Done.
func BenchmarkController(b *testing.B) {
	c := NewController(DefaultPolicy(), Config{Seed: 1000})
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(c.Reserve(now))
		c.Done(now.Add(10*time.Millisecond), Result{Outcome: Accepted, Latency: 10 * time.Millisecond})
	}
}

// BenchmarkControllerParallel is the same from many goroutines at once,
// as a fan-out's workers report their results.
func BenchmarkControllerParallel(b *testing.B) {
	c := NewController(DefaultPolicy(), Config{Seed: 1000})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		now := t0
		for pb.Next() {
			now = now.Add(time.Millisecond)
			c.Reserve(now)
			c.Done(now.Add(10*time.Millisecond), Result{Outcome: Accepted, Latency: 10 * time.Millisecond})
		}
	})
}

// BenchmarkBreaker measures Observe of a successful call.
func BenchmarkBreaker(b *testing.B) {
	br := NewBreaker(BreakerPolicy{})
	b.ReportAllocs()
	for b.Loop() {
		br.Observe(t0, nil)
	}
}

// TestConcurrentUse drives a controller and a breaker from many
// goroutines at once, for the race detector.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	c := NewController(DefaultPolicy(), Config{})
	b := NewBreaker(BreakerPolicy{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			now := t0.Add(time.Duration(g) * time.Microsecond)
			for i := range 500 {
				now = now.Add(c.Reserve(now))
				r := Result{Outcome: Accepted, Latency: 10 * time.Millisecond}
				if i%50 == 0 {
					r.Outcome, r.RetryAfter = Throttled, time.Second
				}
				c.Done(now.Add(r.Latency), r)
				b.Observe(now, nil)
				_ = c.State(now).String()
				_ = b.Tripped()
			}
		})
	}
	wg.Wait()
	if b.Cause() != nil {
		t.Errorf("breaker tripped on successes: %v", b.Cause())
	}
	if r := c.Rate(); !(r >= DefaultPolicy().MinRate) {
		t.Errorf("rate %v", r)
	}
}

// TestLateTimers drives the controller from a dispatcher whose timers wake
// late, as they do on a busy machine (or one whose poller sleeps in whole
// milliseconds): each wait of a millisecond or more is slept for a
// millisecond longer, and shorter waits are not slept at all, as the
// fan-out's pacer does. The pacing must make up the lateness, so that the
// rate holds and slow start still sees itself as the limit and grows.
func TestLateTimers(t *testing.T) {
	t.Parallel()
	const overshoot = time.Millisecond
	run := func(c *Controller, d time.Duration) (starts int, end time.Time) {
		now := t0
		for now.Before(t0.Add(d)) {
			if wait := c.Reserve(now); wait >= time.Millisecond {
				now = now.Add(wait + overshoot)
			}
			starts++
			c.Done(now.Add(200*time.Microsecond), Result{Outcome: Accepted, Latency: 200 * time.Microsecond})
			now = now.Add(time.Microsecond) // the dispatcher's own work
		}
		return starts, now
	}
	t.Run("capped rate holds", func(t *testing.T) {
		t.Parallel()
		c := NewController(Policy{}, Config{Cap: 5000, Seed: 5000})
		starts, end := run(c, 2*time.Second)
		if got := float64(starts) / end.Sub(t0).Seconds(); got < 0.97*5000 {
			t.Errorf("%d starts in %v: %.0f/s, want at least 97%% of the 5000/s cap", starts, end.Sub(t0), got)
		}
	})
	t.Run("slow start grows past the timers' lateness", func(t *testing.T) {
		t.Parallel()
		c := NewController(Policy{}, Config{})
		_, end := run(c, 2*time.Second)
		// Unhindered, slow start doubles every 50 ms from 50/s; with the
		// lateness made up it passes 20,000/s well within 2 s.
		if got := c.State(end); got.Phase != Probing || got.Rate < 20000 {
			t.Errorf("state after 2 s: %v (rate %.0f/s), want still probing above 20000/s", got, got.Rate)
		}
	})
}

// TestSlowStartRoundEnds checks when slow start's rounds end against a hub
// that answers in 2 ms: the first, at 50/s, with its eighth call (past the
// 50 ms minimum); the one at 100/s with its eighth too (80 ms), not at the
// next 50 ms tick; each round from 200/s after about 50 ms, with no round
// lost to the start booked at the old rate; the first round above
// 1,000/s still 50 ms, and rounds of 5 ms (minSlowStartRound) after it.
func TestSlowStartRoundEnds(t *testing.T) {
	t.Parallel()
	c := NewController(DefaultPolicy(), Config{})
	type growth struct {
		at   time.Duration // since the first reservation
		rate float64
	}
	var got []growth
	now, last := t0, c.Rate()
	saw := func(at time.Time) {
		if r := c.Rate(); r != last {
			got = append(got, growth{at.Sub(t0).Round(time.Millisecond), r})
			last = r
		}
	}
	for now.Before(t0.Add(500*time.Millisecond)) && len(got) < 8 {
		now = now.Add(c.Reserve(now))
		saw(now)
		end := now.Add(2 * time.Millisecond)
		c.Done(end, Result{Outcome: Accepted, Latency: 2 * time.Millisecond})
		saw(end)
	}
	// The eighth call at 50/s starts at 140 ms; its end, at 142 ms, ends
	// the round. At 100/s the eighth starts at 222 ms (the first at
	// 152 ms, one new interval after the doubling) and ends at 224 ms.
	want := []growth{
		{142 * time.Millisecond, 100},
		{224 * time.Millisecond, 200},
		{276 * time.Millisecond, 400},
		{328 * time.Millisecond, 800},
		{378 * time.Millisecond, 1600},
		{428 * time.Millisecond, 3200},
		{433 * time.Millisecond, 6400},
		{438 * time.Millisecond, 12800},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(growth{})); diff != "" {
		t.Errorf("rate changes (-want +got):\n%s", diff)
	}
}

// TestAcceptedRate counts the calls accepted within the last Window over
// Window, and only those: at 1,010 ms the window's slots (25 ms each)
// reach back to 25 ms, past the first three calls' ends.
func TestAcceptedRate(t *testing.T) {
	t.Parallel()
	c := NewController(DefaultPolicy(), Config{Seed: 1000})
	if got := c.AcceptedRate(t0); got != 0 {
		t.Errorf("before any call: %v, want 0", got)
	}
	for i := range 10 {
		at := t0.Add(time.Duration(i) * 10 * time.Millisecond)
		c.Reserve(at)
		outcome := Accepted
		if i%5 == 4 {
			outcome = Throttled // not counted
		}
		c.Done(at.Add(time.Millisecond), Result{Outcome: outcome, Latency: time.Millisecond})
	}
	for _, tt := range []struct {
		at   time.Duration
		want float64
	}{{500 * time.Millisecond, 8}, {1010 * time.Millisecond, 5}, {2 * time.Second, 0}} {
		if got := c.AcceptedRate(t0.Add(tt.at)); got != tt.want {
			t.Errorf("at %v: %v/s, want %v/s", tt.at, got, tt.want)
		}
	}
}
