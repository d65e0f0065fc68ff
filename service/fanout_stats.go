package service

import (
	"math"
	"sync"
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
		AcceptedRate: f.meter.acceptedRate(now),
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

// meterSlot is the resolution of AcceptedRate, over meterSlots slots.
const (
	meterSlot  = 100 * time.Millisecond
	meterSlots = 10
)

// meter counts what FanOutStats reports.
type meter struct {
	started, finished atomic.Int64
	inFlight          []atomic.Int64 // per worker: unix nanoseconds of its call's start, 0 idle

	mu    sync.Mutex
	slot  int64 // absolute index of the newest slot
	ring  [meterSlots]int64
	ready bool
}

func (m *meter) init(workers int) { m.inFlight = make([]atomic.Int64, workers) }

func (m *meter) start()                          { m.started.Add(1) }
func (m *meter) finish()                         { m.finished.Add(1) }
func (m *meter) callStarted(i int, at time.Time) { m.inFlight[i].Store(at.UnixNano()) }
func (m *meter) callEnded(i int)                 { m.inFlight[i].Store(0) }

// accepted counts an accepted call at now.
func (m *meter) accepted(now time.Time) {
	m.mu.Lock()
	m.advance(now)
	m.ring[m.slot%meterSlots]++
	m.mu.Unlock()
}

// acceptedRate is the accepted calls per second over the last second.
func (m *meter) acceptedRate(now time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now)
	var n int64
	for _, c := range m.ring {
		n += c
	}
	return float64(n) / (meterSlot * meterSlots).Seconds()
}

// advance moves the ring to now's slot, clearing the slots passed.
func (m *meter) advance(now time.Time) {
	s := now.UnixNano() / int64(meterSlot)
	if !m.ready {
		m.slot, m.ready = s, true
		return
	}
	for ; m.slot < s; m.slot++ {
		if s-m.slot > meterSlots {
			m.ring, m.slot = [meterSlots]int64{}, s
			return
		}
		m.ring[(m.slot+1)%meterSlots] = 0
	}
}
