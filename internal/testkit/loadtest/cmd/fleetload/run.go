package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/service"
)

// policy is the shared access policy the fan-out signs with.
const policy = "service"

// fleet is a run's hub, its TLS server and its devices.
type fleet struct {
	hub *httpmock.Hub
	srv *httpmock.Server
	ids []string

	closeOnce sync.Once
}

var answer = json.RawMessage(`{"rebooting":true}`)

func reboot(context.Context, httpmock.MethodCall) httpmock.MethodResponse {
	return httpmock.MethodResponse{Status: 200, Payload: answer}
}

// newFleet starts a hub with the plan's throttle and one device per target.
func newFleet(p plan) (*fleet, error) {
	th := p.throttle
	hub := httpmock.New(&httpmock.Options{MaxRecorded: 1000, Throttle: &th})
	ids := make([]string, p.targets)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev-%06d", i)
		hub.AddDevice(ids[i], &httpmock.DeviceOptions{Handler: reboot, Latency: p.latency})
	}
	srv, err := hub.StartTLS()
	if err != nil {
		return nil, err
	}
	return &fleet{hub: hub, srv: srv, ids: ids}, nil
}

// close closes the server, once (the hubdown event closes it too).
func (f *fleet) close() { f.closeOnce.Do(f.srv.Close) }

// outcome is what a run measured.
type outcome struct {
	wall       time.Duration // from the start to the last result
	results    map[string]int
	total      int // results
	strangers  int // results for targets that were not asked for
	outcomes   map[service.Outcome]int
	firstErr   map[service.Outcome]string
	attempts   int
	throttle   httpmock.ThrottleStats
	delivered  int
	maxPerDev  int
	samples    []int           // deliveries at the end of each second
	eventTimes []time.Duration // when each event happened
	atEvent    []eventState
	refusals   httpmock.Refusals
	gaveUp     int // results when the run was aborted for taking too long; -1: it was not
}

// eventState is the hub's counters when an event happened.
type eventState struct {
	delivered int
	results   int
}

// execute runs one plan, prints its line and checks, and reports whether
// the fan-out kept its guarantees.
func execute(p plan, out io.Writer) bool {
	fl, err := newFleet(p)
	if err != nil {
		fmt.Fprintf(out, "FAIL %s %s: start the hub: %v\n", p.scenario, p.variant, err)
		return false
	}
	defer fl.close()
	o, err := drive(p, fl)
	if err != nil {
		fmt.Fprintf(out, "FAIL %s %s: %v\n", p.scenario, p.variant, err)
		return false
	}
	report(out, p, o)
	return check(out, p, fl, o)
}

// drive runs the fan-out over the fleet, doing the plan's events on time,
// and collects what happened.
func drive(p plan, fl *fleet) (*outcome, error) {
	client, err := service.NewClientFromConnectionString(fl.hub.ConnectionString(policy), &iothub.ClientOptions{
		Endpoint:  fl.srv.URL,
		Transport: fl.srv.Client().Transport,
	})
	if err != nil {
		return nil, err
	}
	params := service.MethodParams[any]{Name: "reboot", Payload: json.RawMessage(`{"delay":5}`), TimeoutInSeconds: 30}
	o := &outcome{results: make(map[string]int, p.targets), outcomes: map[service.Outcome]int{}, firstErr: map[service.Outcome]string{}}
	var counted sync.Mutex // guards o.results' size for the event goroutine
	start := time.Now()
	run, err := client.StartFanOut(context.Background(), service.Devices(fl.ids...), params, &service.FanOutOptions{Concurrency: p.conc})
	if err != nil {
		return nil, err
	}
	o.gaveUp = -1
	giveUp := time.AfterFunc(p.giveUp, func() {
		counted.Lock()
		o.gaveUp = o.total
		counted.Unlock()
		run.Abort()
	})
	defer giveUp.Stop()
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() { o.samples = sample(fl.hub, stop) })
	bg.Go(func() {
		o.eventTimes, o.atEvent = doEvents(p, fl, start, stop, func() int {
			counted.Lock()
			defer counted.Unlock()
			return o.total
		})
	})
	for r := range run.Results() {
		counted.Lock()
		o.add(r, fl)
		counted.Unlock()
	}
	o.wall = time.Since(start)
	close(stop)
	bg.Wait()
	o.finish(fl)
	return o, nil
}

// add counts one result.
func (o *outcome) add(r service.Result, fl *fleet) {
	if _, ok := slices.BinarySearch(fl.ids, r.DeviceID); !ok || r.ModuleID != "" {
		o.strangers++
	}
	o.results[r.DeviceID]++
	o.outcomes[r.Outcome]++
	o.attempts += r.Attempts
	if r.Err != nil && o.firstErr[r.Outcome] == "" {
		o.firstErr[r.Outcome] = r.Err.Error()
	}
	o.total++
}

// finish reads the hub's counters once the fan-out is done.
func (o *outcome) finish(fl *fleet) {
	o.throttle = fl.hub.ThrottleStats()
	o.delivered = fl.hub.TotalDeliveries()
	o.refusals = fl.hub.Refusals()
	for _, id := range fl.ids {
		o.maxPerDev = max(o.maxPerDev, fl.hub.Deliveries(id, ""))
	}
}

// sample records the hub's deliveries at the end of every second until
// stop, and once more at stop.
func sample(hub *httpmock.Hub, stop <-chan struct{}) []int {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var out []int
	for {
		select {
		case <-tick.C:
			out = append(out, hub.TotalDeliveries())
		case <-stop:
			return append(out, hub.TotalDeliveries())
		}
	}
}

// doEvents does the plan's events at their times, unless the run ends
// first, and returns when each happened and the counters then.
func doEvents(p plan, fl *fleet, start time.Time, stop <-chan struct{}, results func() int) ([]time.Duration, []eventState) {
	var times []time.Duration
	var states []eventState
	for _, e := range p.events {
		t := time.NewTimer(time.Until(start.Add(e.at)))
		select {
		case <-stop:
			t.Stop()
			return times, states
		case <-t.C:
		}
		times = append(times, time.Since(start))
		states = append(states, eventState{delivered: fl.hub.TotalDeliveries(), results: results()})
		e.do(fl)
	}
	return times, states
}

// limitAt is the plan's limit at elapsed, in calls/s.
func (p plan) limitAt(o *outcome, elapsed time.Duration) float64 {
	l := p.limit
	for i, at := range o.eventTimes {
		if at <= elapsed && p.events[i].limit > 0 {
			l = p.events[i].limit
		}
	}
	return l
}

// limitCalls is how many calls the hub's limit allowed over the run.
func (p plan) limitCalls(o *outcome) float64 {
	const step = 10 * time.Millisecond
	var sum float64
	for t := time.Duration(0); t < o.wall; t += step {
		sum += p.limitAt(o, t) * min(step, o.wall-t).Seconds()
	}
	return sum
}

// report prints the run's line and the scenario's extras.
func report(w io.Writer, p plan, o *outcome) {
	calls := o.throttle.Admitted + o.throttle.Throttled
	fmt.Fprintf(w, "  %-44s targets %6d  wall %8s  calls/s %6.0f  share of limit %5.1f%%  throttled %6d (%5.2f%% of calls)  %s\n",
		p.variant, p.targets, o.wall.Round(10*time.Millisecond), float64(o.delivered)/o.wall.Seconds(),
		100*float64(o.delivered)/p.limitCalls(o), o.throttle.Throttled, pct(o.throttle.Throttled, calls), outcomesLine(o))
	if o.gaveUp >= 0 {
		fmt.Fprintf(w, "    gave up after %v with %d of %d results: the fan-out was aborted (FanOut.Abort)\n", p.giveUp, o.gaveUp, p.targets)
	}
	if p.series {
		reportSeries(w, p, o)
	}
	if p.fault != "" {
		reportFault(w, p, o)
	}
}

func pct(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

// outcomesLine lists the outcomes and the first error of each failing one.
func outcomesLine(o *outcome) string {
	keys := make([]string, 0, len(o.outcomes))
	for k := range o.outcomes {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, o.outcomes[service.Outcome(k)])
	}
	fmt.Fprintf(&b, "attempts=%d", o.attempts)
	return b.String()
}

// reportSeries prints the delivered rate second by second and how long the
// rate took to come within 15% of each new limit.
func reportSeries(w io.Writer, p plan, o *outcome) {
	fmt.Fprintf(w, "    %6s %8s %8s %7s\n", "second", "limit/s", "calls/s", "share")
	prev := 0
	rates := make([]float64, len(o.samples))
	for i, n := range o.samples {
		rates[i] = float64(n - prev)
		prev = n
		lim := p.limitAt(o, time.Duration(i)*time.Second+time.Second/2) // the limit for most of the second
		if i == len(o.samples)-1 {
			break // the last sample is a partial second
		}
		fmt.Fprintf(w, "    %6d %8.0f %8.0f %6.0f%%\n", i+1, lim, rates[i], 100*rates[i]/lim)
	}
	for i, at := range o.eventTimes {
		fmt.Fprintf(w, "    %s at %v: %s\n", p.events[i].what, at.Round(10*time.Millisecond), within15(p, rates, at))
	}
	for i := len(o.eventTimes); i < len(p.events); i++ {
		fmt.Fprintf(w, "    %s at %v: the run ended first\n", p.events[i].what, p.events[i].at)
	}
}

// within15 says after how many whole seconds, from at, a second's rate was
// first within 15% of the limit then in force.
func within15(p plan, rates []float64, at time.Duration) string {
	lim := 0.0
	for _, e := range p.events {
		if e.at <= at {
			lim = e.limit
		}
	}
	first := int((at + time.Second - 1) / time.Second) // the first whole second after at
	for i := first; i < len(rates)-1; i++ {
		if rates[i] >= 0.85*lim && rates[i] <= 1.15*lim {
			return fmt.Sprintf("rate within 15%% of %.0f/s in second %d, %.1f s after the change", lim, i+1, float64(i+1)-at.Seconds())
		}
	}
	return fmt.Sprintf("rate never within 15%% of %.0f/s before the run ended", lim)
}

// reportFault prints what happened after the fault began.
func reportFault(w io.Writer, p plan, o *outcome) {
	if len(o.eventTimes) == 0 {
		fmt.Fprintf(w, "    %s at %v: the run ended first\n", p.fault, p.events[0].at)
		return
	}
	at, st := o.eventTimes[0], o.atEvent[0]
	total := o.total
	fmt.Fprintf(w, "    %s at %v: %d results by then, %d after; last result %v after the fault\n",
		p.fault, at.Round(10*time.Millisecond), st.results, total-st.results, (o.wall - at).Round(10*time.Millisecond))
	if refused, ok := refusedCalls(p.fault, o.refusals); ok {
		fmt.Fprintf(w, "    calls made after the fault started (refused by the hub): %d; delivered after the fault: %d (calls already in flight)\n",
			refused, o.delivered-st.delivered)
	} else {
		fmt.Fprintf(w, "    HTTP attempts in all: %d; delivered after the hub closed: %d\n", o.attempts, o.delivered-st.delivered)
	}
}

// refusedCalls is the hub's count of calls refused for the fault.
func refusedCalls(fault string, r httpmock.Refusals) (int64, bool) {
	switch fault {
	case faultRevoked:
		return r.Unauthorized, true
	case faultQuota:
		return r.QuotaExceeded, true
	case faultSuspended:
		return r.Suspended, true
	}
	return 0, false
}

// check prints a FAIL line for each broken guarantee.
func check(w io.Writer, p plan, fl *fleet, o *outcome) bool {
	var missing, dup int
	for _, id := range fl.ids {
		switch n := o.results[id]; {
		case n == 0:
			missing++
		case n > 1:
			dup++
		}
	}
	var fails []string
	if o.gaveUp >= 0 {
		// Abort stops taking targets from the sequence, so those never
		// taken have no result by design; the run failed by not ending.
		fails = append(fails, fmt.Sprintf("did not end within -give-up %v; %d targets were never taken from the sequence", p.giveUp, missing))
		missing = 0
	}
	if missing > 0 || dup > 0 || o.strangers > 0 {
		fails = append(fails, fmt.Sprintf("%d targets without a result, %d with more than one, %d results for targets not asked for", missing, dup, o.strangers))
	}
	if o.maxPerDev > 1 {
		fails = append(fails, fmt.Sprintf("a device got %d calls: a duplicate invocation", o.maxPerDev))
	}
	for _, f := range fails {
		fmt.Fprintf(w, "FAIL %s %s: %s\n", p.scenario, p.variant, f)
	}
	return len(fails) == 0
}
