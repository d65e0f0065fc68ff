package service

import (
	"math"
	"sync/atomic"
	"time"
)

// FanOutStats is a snapshot of a running fan-out, for progress displays.
type FanOutStats struct {
	// Started counts the targets whose first call has started; Finished
	// the targets with a result, those never invoked included.
	Started, Finished int64
	// InFlight is the number of calls in flight, and OldestInFlight how
	// long the oldest of them has run (0 with none).
	InFlight       int
	OldestInFlight time.Duration
	// RateLimit is the pacing rate, in calls per second; 0 while the
	// calls are not paced.
	RateLimit float64
	// AcceptedRate is the rate, in calls per second, at which the hub
	// accepted calls over the last second.
	AcceptedRate float64
	// State says what limits the rate, as in "probing at 400/s",
	// "limited by hub at ~980/s", "backing off until 16:02:05" or
	// "capped at 500/s".
	State string
}

// Stats returns a snapshot of the fan-out's progress. It is cheap (it
// reads one counter per worker) and safe to call at any time, from any
// goroutine, while the fan-out runs or after.
func (f *FanOut) Stats() FanOutStats {
	now := time.Now()
	s := FanOutStats{
		Started:      f.meter.started.Load(),
		Finished:     f.meter.finished.Load(),
		AcceptedRate: f.ctl.AcceptedRate(now),
	}
	for i := range f.meter.inFlight {
		if at := f.meter.inFlight[i].Load(); at != 0 {
			s.InFlight++
			s.OldestInFlight = max(s.OldestInFlight, now.Sub(time.Unix(0, at)))
		}
	}
	st := f.ctl.State(now)
	if !math.IsInf(st.Rate, 1) {
		s.RateLimit = st.Rate
	}
	s.State = st.String()
	return s
}

// meter counts what FanOutStats reports.
type meter struct {
	started, finished atomic.Int64
	inFlight          []atomic.Int64 // per worker: unix nanoseconds of its call's start, 0 idle
}

func (m *meter) init(workers int) { m.inFlight = make([]atomic.Int64, workers) }

func (m *meter) start()                          { m.started.Add(1) }
func (m *meter) finish()                         { m.finished.Add(1) }
func (m *meter) callStarted(i int, at time.Time) { m.inFlight[i].Store(at.UnixNano()) }
func (m *meter) callEnded(i int)                 { m.inFlight[i].Store(0) }
