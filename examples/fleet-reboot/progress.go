package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/hubkit/iothub/service"
)

// outcomes in the order progress and the summary show them.
var outcomes = []service.Outcome{
	service.OutcomeSucceeded,
	service.OutcomeDeviceError,
	service.OutcomeNotDelivered,
	service.OutcomeUnknown,
}

// progress counts results and shows them on stderr: a live bar redrawn in
// place on a terminal, a plain line every period otherwise.
type progress struct {
	display
	start time.Time

	mu             sync.Mutex
	counts         map[service.Outcome]int
	skipped        int // targets not invoked: they succeeded or may have run before
	skippedUnknown int // those of them that may have run
	total          int // -1: unknown
	drawn          bool
	recent         []sample                   // the draws of the last window, oldest first
	stats          func() service.FanOutStats // the fan-out's, once it runs
	stop           chan struct{}
	stopped        chan struct{}
}

// sample is the number of calls finished at a draw.
type sample struct {
	at    time.Time
	calls int
}

// display is where and how progress is shown.
type display struct {
	w io.Writer
	// terminal redraws a live bar in place.
	terminal bool
	// every is the period of the draws; 0 means 2 s, or 200 ms on a
	// terminal.
	every time.Duration
}

// newProgress starts reporting progress of total targets (-1: unknown) on
// d; rates and the wall time count from start.
func newProgress(d display, total int, start time.Time) *progress {
	if d.every <= 0 {
		d.every = 2 * time.Second
		if d.terminal {
			d.every = 200 * time.Millisecond
		}
	}
	p := &progress{display: d, start: start,
		counts: make(map[service.Outcome]int), total: total,
		stop: make(chan struct{}), stopped: make(chan struct{})}
	go p.loop()
	return p
}

func (p *progress) loop() {
	defer close(p.stopped)
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.mu.Lock()
			p.drawLocked()
			p.mu.Unlock()
		case <-p.stop:
			return
		}
	}
}

func (p *progress) add(o service.Outcome) {
	p.mu.Lock()
	p.counts[o]++
	p.mu.Unlock()
}

// watch shows the fan-out's own figures from now on: the rate the hub
// accepts, what limits it, and the calls the run waits on at its end.
func (p *progress) watch(stats func() service.FanOutStats) {
	p.mu.Lock()
	p.stats = stats
	p.mu.Unlock()
}

// skip counts a target not invoked because of its earlier outcome.
func (p *progress) skip(earlier service.Outcome) {
	p.mu.Lock()
	p.skipped++
	if earlier == service.OutcomeUnknown {
		p.skippedUnknown++
	}
	p.mu.Unlock()
}

// allSucceeded reports whether every target succeeded, in this run or
// before: none had another outcome and none was skipped as unknown.
func (p *progress) allSucceeded() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range outcomes[1:] {
		if p.counts[o] > 0 {
			return false
		}
	}
	return p.skippedUnknown == 0
}

// setTotal sets the number of targets once it is known.
func (p *progress) setTotal(n int) {
	p.mu.Lock()
	p.total = n
	p.mu.Unlock()
}

// printf prints a message on its own line, clearing the bar first.
func (p *progress) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintf(p.w, format, args...)
}

func (p *progress) clearLocked() {
	if p.terminal && p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
}

func (p *progress) doneLocked() int {
	n := p.skipped
	for _, c := range p.counts {
		n += c
	}
	return n
}

// drawLocked draws the progress line: counts, then pace. What the line
// shows is decided here, for the bar and the plain line alike.
func (p *progress) drawLocked() {
	var b strings.Builder
	done := p.doneLocked()
	if p.total >= 0 {
		fmt.Fprintf(&b, "%d/%d", done, p.total)
		if p.terminal {
			b.WriteString(" " + bar(done, p.total, 20))
		}
	} else {
		fmt.Fprintf(&b, "%d done", done)
	}
	for _, o := range outcomes {
		fmt.Fprintf(&b, "  %s %d", o, p.counts[o])
	}
	if p.skipped > 0 {
		fmt.Fprintf(&b, "  skipped %d", p.skipped)
	}
	p.paceLocked(&b, time.Now(), done)
	if p.terminal {
		fmt.Fprintf(p.w, "\r\x1b[K%s: %s", name, b.String())
		p.drawn = true
	} else {
		fmt.Fprintf(p.w, "%s: %s\n", name, b.String())
	}
}

// paceLocked writes how fast the run goes and what holds it back: the
// rate the hub accepts and the pacing's state ("limited by hub at
// ~980/s") with an ETA; once every remaining target is a call in flight,
// the calls it waits on instead, since a rate and an ETA say nothing
// about a tail of slow devices. Without the fan-out's figures (job mode)
// it shows the run's average rate.
func (p *progress) paceLocked(b *strings.Builder, now time.Time, done int) {
	calls := done - p.skipped
	remaining := p.total - done
	if p.stats == nil {
		fmt.Fprintf(b, "  %.1f calls/s", float64(calls)/now.Sub(p.start).Seconds())
	} else {
		st := p.stats()
		// Only calls in flight left, or none of them finished in the last
		// second (slow devices hold every worker): say what the run waits
		// on, not a rate of 0 and an ETA.
		tail := p.total >= 0 && remaining <= st.InFlight
		if st.InFlight > 0 && (tail || st.AcceptedRate == 0) {
			fmt.Fprintf(b, "  waiting on %d calls in flight, the slowest %s", st.InFlight, st.OldestInFlight.Round(100*time.Millisecond))
			if p.total >= 0 && !tail {
				fmt.Fprintf(b, "; %d targets to start", remaining-st.InFlight)
			}
			return
		}
		fmt.Fprintf(b, "  %.0f calls/s", st.AcceptedRate)
		switch {
		case st.RateLimit > 0 && st.AcceptedRate < st.RateLimit/2:
			// The workers or the devices hold the calls back, not the
			// hub: the pacing's own state would mislead.
			fmt.Fprintf(b, ", not held back by the hub (pacing allows ~%.0f/s)", st.RateLimit)
		case st.State != "":
			fmt.Fprintf(b, ", %s", st.State)
		}
	}
	if p.total >= 0 && calls > 0 && done < p.total {
		b.WriteString("  ETA " + p.etaLocked(now, calls, remaining))
	}
}

// etaLocked estimates the time left for the remaining targets from the
// rate of the last five draws (one to ten seconds), and says "?" when
// nothing finished in them: the overall rate would promise "<1s" while the
// slowest calls of the tail are still running.
func (p *progress) etaLocked(now time.Time, calls, remaining int) string {
	window := min(max(5*p.every, time.Second), 10*time.Second)
	p.recent = append(p.recent, sample{now, calls})
	for len(p.recent) > 2 && now.Sub(p.recent[1].at) >= window {
		p.recent = p.recent[1:]
	}
	first := sample{p.start, 0}
	if now.Sub(p.start) > window {
		first = p.recent[0]
	}
	span := now.Sub(first.at)
	if calls == first.calls || span <= 0 {
		return "?"
	}
	rate := float64(calls-first.calls) / span.Seconds()
	eta := time.Duration(float64(remaining) / rate * float64(time.Second))
	if eta < time.Second {
		return "<1s"
	}
	return eta.Round(time.Second).String()
}

// bar draws [#####.....] for done out of total.
func bar(done, total, width int) string {
	filled := width
	if total > 0 {
		filled = min(width, done*width/total)
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", width-filled) + "]"
}

// finish stops the live display and prints the summary table.
func (p *progress) finish(interrupted bool) {
	close(p.stop)
	<-p.stopped
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drawLocked() // the final state
	if p.terminal {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
	elapsed := time.Since(p.start)
	calls := p.doneLocked() - p.skipped
	fmt.Fprintf(p.w, "%s: summary\n", name)
	fmt.Fprintf(p.w, "  %-28s %8s\n", "outcome", "targets")
	for _, o := range outcomes {
		fmt.Fprintf(p.w, "  %-28s %8d\n", o, p.counts[o])
	}
	if n := p.skipped - p.skippedUnknown; n > 0 {
		fmt.Fprintf(p.w, "  %-28s %8d\n", "skipped (succeeded before)", n)
	}
	if p.skippedUnknown > 0 {
		fmt.Fprintf(p.w, "  %-28s %8d\n", "skipped (unknown before)", p.skippedUnknown)
	}
	if left := p.total - p.doneLocked(); p.total >= 0 && left > 0 {
		fmt.Fprintf(p.w, "  %-28s %8d\n", "not reached", left)
	}
	fmt.Fprintf(p.w, "  %-28s %8d\n", "total", max(p.total, p.doneLocked()))
	fmt.Fprintf(p.w, "  wall time %s, %.1f calls/s\n", elapsed.Round(time.Millisecond), float64(calls)/elapsed.Seconds())
	if p.counts[service.OutcomeUnknown] > 0 {
		fmt.Fprintf(p.w, "%s: %d targets may or may not have run the method (outcome unknown); check them before invoking it again\n",
			name, p.counts[service.OutcomeUnknown])
	}
	if p.skippedUnknown > 0 {
		fmt.Fprintf(p.w, "%s: %d targets were skipped because an earlier run left their outcome unknown; check them, then add -retry-unknown to invoke them again\n",
			name, p.skippedUnknown)
	}
	if interrupted {
		fmt.Fprintf(p.w, "%s: interrupted\n", name)
	}
}
