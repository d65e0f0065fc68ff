package main

import (
	"fmt"
	"time"

	"github.com/hubkit/iothub/internal/testkit/httpmock"
)

// plan is one run: a fresh hub, one fan-out, and what happens to the hub
// while it runs.
type plan struct {
	scenario string
	variant  string // the run within the scenario, as in "c=64 retry-after=half"
	header   string // the scenario's description, printed before its first run
	targets  int
	conc     int
	latency  time.Duration
	throttle httpmock.ThrottleOptions
	limit    float64 // calls/s at the start
	events   []event
	series   bool // print the rate second by second
	fault    string
	giveUp   time.Duration
}

// event is something done to the hub at a moment of the run.
type event struct {
	at    time.Duration // from the fan-out's start
	what  string
	limit float64 // the limit from then on, in calls/s; 0: unchanged
	do    func(h *fleet)
}

// The fleet-wide faults of the fleetfault scenario.
const (
	faultRevoked   = "401 revoked policy"
	faultQuota     = "403002 quota exhausted"
	faultSuspended = "403001 hub suspended"
	faultHubDown   = "hub closed"
)

// plans returns the runs of a scenario.
func plans(name string, cfg config) []plan {
	switch name {
	case "limit":
		return matrix(cfg, name, 10_000, -1, fmt.Sprintf("hub limit %.0f calls/s (burst 50 ms), no traffic shaping", cfg.limit))
	case "shaping":
		return matrix(cfg, name, 10_000, cfg.backlog, fmt.Sprintf("hub limit %.0f calls/s (burst 50 ms), traffic shaping queues up to %v", cfg.limit, cfg.backlog))
	case "change":
		return []plan{changePlan(cfg)}
	case "s1":
		return []plan{s1Plan(cfg)}
	case "hubdown":
		return []plan{faultPlan(cfg, faultHubDown)}
	case "fleetfault":
		return []plan{faultPlan(cfg, faultRevoked), faultPlan(cfg, faultQuota), faultPlan(cfg, faultSuspended)}
	}
	return nil
}

// limitThrottle is the hub of the limit scenario: cfg.limit calls/s of
// small payloads, a bucket of 50 ms (50 calls at 1,000/s), backlog as
// given (negative: no traffic shaping).
func limitThrottle(cfg config, backlog time.Duration, retryAfter string) httpmock.ThrottleOptions {
	return httpmock.ThrottleOptions{
		MethodBytesPerSecond: int64(cfg.limit * httpmock.MethodMeterSize),
		MethodBurst:          50 * time.Millisecond,
		MethodBacklog:        backlog,
		RetryAfterEvery:      retryAfterEvery(retryAfter),
	}
}

// retryAfterEvery turns -retry-after into ThrottleOptions.RetryAfterEvery.
func retryAfterEvery(v string) int {
	if v == "none" {
		return -1
	}
	return 2
}

func targetsOr(cfg config, n int) int {
	if cfg.targets > 0 {
		return cfg.targets
	}
	return n
}

// matrix is every concurrency × every Retry-After choice.
func matrix(cfg config, name string, n int, backlog time.Duration, hub string) []plan {
	var out []plan
	for _, c := range cfg.concurrency {
		for _, ra := range cfg.retryAfter {
			p := base(cfg, name, n, c, ra)
			p.throttle = limitThrottle(cfg, backlog, ra)
			p.header = fmt.Sprintf("%s, device latency %v, no client rate", hub, cfg.latency)
			out = append(out, p)
		}
	}
	return out
}

// base is a run with the command line's first concurrency and
// Retry-After choice unless told otherwise.
func base(cfg config, name string, n, c int, ra string) plan {
	return plan{
		scenario: name,
		variant:  fmt.Sprintf("c=%d retry-after=%s", c, ra),
		targets:  targetsOr(cfg, n),
		conc:     c,
		latency:  cfg.latency,
		limit:    cfg.limit,
		giveUp:   cfg.giveUp,
	}
}

func changePlan(cfg config) plan {
	p := base(cfg, "change", 25_000, cfg.concurrency[0], cfg.retryAfter[0])
	p.throttle = limitThrottle(cfg, -1, cfg.retryAfter[0])
	p.series = true
	p.header = fmt.Sprintf("hub limit %.0f calls/s (burst 50 ms, no traffic shaping), halved at %v and doubled back at %v, device latency %v, no client rate",
		cfg.limit, cfg.changeAt[0], cfg.changeAt[1], cfg.latency)
	half := cfg.limit / 2
	p.events = []event{
		{at: cfg.changeAt[0], what: fmt.Sprintf("limit halved to %.0f/s", half), limit: half, do: setRate(half)},
		{at: cfg.changeAt[1], what: fmt.Sprintf("limit back to %.0f/s", cfg.limit), limit: cfg.limit, do: setRate(cfg.limit)},
	}
	return p
}

func setRate(callsPerSecond float64) func(*fleet) {
	return func(f *fleet) { f.hub.SetMethodRate(int64(callsPerSecond * httpmock.MethodMeterSize)) }
}

func s1Plan(cfg config) plan {
	p := base(cfg, "s1", 2_000, cfg.concurrency[0], cfg.retryAfter[0])
	p.throttle = httpmock.ThrottleOptions{Tier: httpmock.TierS1, Units: 1, RetryAfterEvery: retryAfterEvery(cfg.retryAfter[0])}
	p.limit = 40
	p.header = fmt.Sprintf("one S1 unit, small payloads: 40 calls/s (burst 1 s, traffic shaping up to 1 s), device latency %v, no client rate", cfg.latency)
	return p
}

// faultPlan is a run on the limit scenario's hub that a fleet-wide fault
// hits at cfg.faultAt.
func faultPlan(cfg config, fault string) plan {
	name := "fleetfault"
	if fault == faultHubDown {
		name = "hubdown"
	}
	p := base(cfg, name, 3_000, cfg.concurrency[0], cfg.retryAfter[0])
	p.throttle = limitThrottle(cfg, -1, cfg.retryAfter[0])
	p.variant = fault + " " + p.variant
	p.fault = fault
	p.header = fmt.Sprintf("targets given as a list; hub limit %.0f calls/s (burst 50 ms, no traffic shaping), device latency %v; at %v: ",
		cfg.limit, cfg.latency, cfg.faultAt)
	if fault == faultHubDown {
		p.header += "the hub closes"
	} else {
		p.header += "a fleet-wide fault, one run each"
	}
	p.events = []event{{at: cfg.faultAt, what: fault, do: faultAction(fault)}}
	return p
}

func faultAction(fault string) func(*fleet) {
	switch fault {
	case faultRevoked:
		return func(f *fleet) { f.hub.RevokePolicy(policy) }
	case faultQuota:
		return func(f *fleet) { f.hub.ExhaustQuota() }
	case faultSuspended:
		return func(f *fleet) { f.hub.Suspend() }
	}
	return func(f *fleet) { f.close() }
}
