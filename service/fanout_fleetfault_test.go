package service_test

import (
	"encoding/json"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/service"
)

// TestFanOutFleetFaultStopsTheRun: a fault that hits every call from some
// point on (a revoked policy, the daily quota used up, a suspended hub)
// stops the run. The bound: after the fault starts, at most the calls in
// flight when the first refusal came back reach the hub (each is refused),
// so the hub refuses at most Concurrency calls; nothing is delivered after
// the fault; every target has exactly one result; every target not reached
// is reported not-delivered with the cause, ErrorCode and ErrorName of the
// refusal that tripped the run.
func TestFanOutFleetFaultStopsTheRun(t *testing.T) {
	t.Parallel()
	const (
		n           = 300
		concurrency = 8
		before      = 40 // deliveries before the fault
	)
	tests := []struct {
		name     string
		hub      *httpmock.Options
		fault    func(*httpmock.Hub)
		kind     service.Fault
		code     iothub.ErrorCode
		sentinel error
		refused  func(httpmock.Refusals) int64
	}{
		{
			name:     "revoked policy (401002)",
			fault:    func(h *httpmock.Hub) { h.RevokePolicy("service") },
			kind:     service.FaultUnauthorized,
			code:     401002,
			sentinel: iothub.ErrUnauthorized,
			refused:  func(r httpmock.Refusals) int64 { return r.Unauthorized },
		},
		{
			name:     "daily quota exceeded (403002)",
			hub:      &httpmock.Options{DailyMessages: 1 << 30},
			fault:    func(h *httpmock.Hub) { h.ExhaustQuota() },
			kind:     service.FaultQuotaExceeded,
			code:     iothub.ErrorCodeIotHubQuotaExceeded,
			sentinel: iothub.ErrForbidden,
			refused:  func(r httpmock.Refusals) int64 { return r.QuotaExceeded },
		},
		{
			name:     "suspended hub (403001)",
			fault:    func(h *httpmock.Hub) { h.Suspend() },
			kind:     service.FaultSuspended,
			code:     iothub.ErrorCodeIotHubSuspended,
			sentinel: iothub.ErrForbidden,
			refused:  func(r httpmock.Refusals) int64 { return r.Suspended },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub := httpmock.New(tt.hub)
				t.Cleanup(hub.Close)
				client, err := service.NewClientFromConnectionString(hub.ConnectionString("service"),
					&iothub.ClientOptions{Transport: hub.RoundTripper(), Retry: iothub.RetryOptions{MinDelay: time.Millisecond}})
				if err != nil {
					t.Fatal(err)
				}
				ts := addFleet(hub, n, &httpmock.DeviceOptions{Latency: 200 * time.Millisecond})
				faulted := make(chan int, 1) // the deliveries when the fault began
				go func() {
					for hub.TotalDeliveries() < before {
						time.Sleep(time.Millisecond)
					}
					tt.fault(hub)
					faulted <- hub.TotalDeliveries()
				}()
				run, err := client.StartFanOut(t.Context(), targetList(ts),
					service.MethodParams[any]{Name: "reboot", Payload: json.RawMessage(`{"delay":1}`), TimeoutInSeconds: 5},
					&service.FanOutOptions{Concurrency: concurrency, StartRate: 1000})
				if err != nil {
					t.Fatal(err)
				}
				got := make(map[service.Target]service.Result)
				for r := range run.Results() {
					if _, dup := got[r.Target]; dup {
						t.Errorf("%v reported twice", r.Target)
					}
					got[r.Target] = r
				}
				counts := checkTruth(t, hub, ts, got, true)
				atFault := <-faulted
				if d := hub.TotalDeliveries(); d != atFault {
					t.Errorf("%d deliveries, %d when the fault began: delivered after it", d, atFault)
				}
				if r := tt.refused(hub.Refusals()); r < 1 || r > concurrency {
					t.Errorf("the hub refused %d calls, want 1 to %d (the calls in flight at the trip)", r, concurrency)
				}
				if counts[service.OutcomeNotDelivered] != n-atFault {
					t.Errorf("outcomes %v, want %d not delivered", counts, n-atFault)
				}
				ff, ok := errors.AsType[*service.FleetFaultError](run.Err())
				if !ok || ff.Fault != tt.kind || !errors.Is(run.Err(), tt.sentinel) {
					t.Fatalf("Err = %v, want a *FleetFaultError of %q", run.Err(), tt.kind)
				}
				skipped := 0
				for tg, r := range got {
					if r.Outcome != service.OutcomeNotDelivered {
						continue
					}
					if r.ErrorCode != tt.code || r.ErrorName == "" || !errors.Is(r.Err, tt.sentinel) || iothub.MayHaveRun(r.Err) {
						t.Errorf("%v: code %d %q, %v; want the hub's %d, not delivered", tg, r.ErrorCode, r.ErrorName, r.Err, tt.code)
					}
					if r.Attempts == 0 {
						skipped++
						if !errors.Is(r.Err, service.ErrFleetFault) {
							t.Errorf("%v: %v, want ErrFleetFault", tg, r.Err)
						}
					}
				}
				if want := n - atFault - int(tt.refused(hub.Refusals())); skipped != want {
					t.Errorf("%d targets skipped, want %d", skipped, want)
				}
			})
		})
	}
}

// TestFanOutHubKilled takes the hub away for good with 3,000 targets given
// as a list: the breaker trips on the third call in a row that cannot
// connect, and every target is reported, the ones never tried without a
// call. (Over TLS, in real time: the assertions are on outcomes and
// counts, not on time.)
func TestFanOutHubKilled(t *testing.T) {
	t.Parallel()
	const n = 3000
	hub, srv, client, _, ts := tlsHub(t, n, 10*time.Millisecond, iothub.RetryOptions{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond})
	go func() {
		for hub.TotalDeliveries() < 100 {
			time.Sleep(time.Millisecond)
		}
		srv.Close()
	}()
	run, err := client.StartFanOut(t.Context(), targetList(ts), service.MethodParams[any]{Name: "reboot", TimeoutInSeconds: 5}, &service.FanOutOptions{Concurrency: 32})
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[service.Target]service.Result)
	for r := range run.Results() {
		if _, dup := got[r.Target]; dup {
			t.Errorf("%v reported twice", r.Target)
		}
		got[r.Target] = r
	}
	counts := checkTruth(t, hub, ts, got, true)
	ff, ok := errors.AsType[*service.FleetFaultError](run.Err())
	if !ok || ff.Fault != service.FaultUnreachable {
		t.Fatalf("Err = %v, want FaultUnreachable", run.Err())
	}
	skipped := 0
	for _, r := range got {
		if r.Attempts == 0 && errors.Is(r.Err, service.ErrFleetFault) {
			skipped++
		}
	}
	if skipped < n/2 {
		t.Errorf("%d targets skipped without a call (outcomes %v); the run did not stop", skipped, counts)
	}
}

// TestFanOutBlipDoesNotStopTheRun: one reset connection, one 503 that
// outlasts the retries, or one device not found, fail that call only: the
// run goes on.
func TestFanOutBlipDoesNotStopTheRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		faults []httpmock.Fault
		want   map[service.Outcome]int
	}{
		{"one reset after the request was written", []httpmock.Fault{{Operation: httpmock.OperationMethod, Drop: httpmock.DropAfterRead, Skip: 5, Times: 1}},
			map[service.Outcome]int{service.OutcomeSucceeded: 29, service.OutcomeUnknown: 1}},
		{"one 503 on every attempt of a call", []httpmock.Fault{{Operation: httpmock.OperationMethod, Code: 503005, Skip: 5, Times: 4}},
			map[service.Outcome]int{service.OutcomeSucceeded: 29, service.OutcomeNotDelivered: 1}},
		{"one device not found (404001)", []httpmock.Fault{{Operation: httpmock.OperationMethod, Status: 404, Code: 404001, Skip: 5, Times: 1}},
			map[service.Outcome]int{service.OutcomeSucceeded: 29, service.OutcomeNotDelivered: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub, client := setup(t, &iothub.ClientOptions{Retry: iothub.RetryOptions{MaxAttempts: 4}})
				ts := addFleet(hub, 30, nil)
				for _, f := range tt.faults {
					hub.AddFault(f)
				}
				got := fanOut(t, t.Context(), client, ts, &service.FanOutOptions{Concurrency: 1})
				counts := checkTruth(t, hub, ts, got, true)
				if diff := cmp.Diff(tt.want, counts); diff != "" {
					t.Errorf("outcomes (-want +got):\n%s", diff)
				}
			})
		})
	}
}

// TestFanOutMayHaveRunStaysUnknown: with Invoke.Idempotent, a call answered
// 504101 (delivered, outcome unknown) is retried by the pipeline; when that
// retry and every later one is throttled until the run gives up, the
// target was still delivered once: it is reported unknown, not
// not-delivered.
func TestFanOutMayHaveRunStaysUnknown(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setup(t, nil)
		ts := addFleet(hub, 1, nil)
		hub.AddFault(httpmock.Fault{Operation: httpmock.OperationMethod, AfterDelivery: true, Times: 1})
		hub.AddFault(httpmock.Fault{Operation: httpmock.OperationMethod, Code: 429001, Times: -1}) // from the second request on
		got := fanOut(t, t.Context(), client, ts, &service.FanOutOptions{ThrottleGiveUp: 10 * time.Second, Invoke: service.InvokeOptions{Idempotent: true}})
		r := got[ts[0]]
		if r.Outcome != service.OutcomeUnknown || !errors.Is(r.Err, iothub.ErrOutcomeUnknown) || !iothub.MayHaveRun(r.Err) || r.Attempts < 3 {
			t.Errorf("%+v, want unknown after the 504101", r)
		}
		if d := hub.Deliveries(ts[0].DeviceID, ""); d != 1 {
			t.Errorf("%d deliveries", d)
		}
	})
}

// TestFanOutStoppedTargetsWereNotDelivered: a target the fan-out never
// invoked because the caller stopped it says so to MayHaveRun.
func TestFanOutStoppedTargetsWereNotDelivered(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setup(t, nil)
		ts := addFleet(hub, 20, &httpmock.DeviceOptions{Latency: time.Second})
		run, err := client.StartFanOut(t.Context(), targetList(ts), service.MethodParams[any]{Name: "reboot", TimeoutInSeconds: 5}, &service.FanOutOptions{Concurrency: 2})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(1500 * time.Millisecond)
			run.Stop()
		}()
		notDelivered := 0
		for r := range run.Results() {
			if r.Outcome != service.OutcomeNotDelivered {
				continue
			}
			notDelivered++
			if iothub.MayHaveRun(r.Err) || !errors.Is(r.Err, iothub.ErrNotDelivered) || errors.Is(r.Err, service.ErrFleetFault) {
				t.Errorf("%v: %v, want not delivered, no fleet fault", r.Target, r.Err)
			}
		}
		if notDelivered == 0 {
			t.Error("no target was left when the run stopped")
		}
	})
}

func TestFanOutOptionsValidation(t *testing.T) {
	t.Parallel()
	hub, client := setup(t, nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
	nan := func() float64 { var z float64; return z / z }()
	inf := 1 / func() float64 { return 0 }()
	tests := map[string]struct {
		opts  service.FanOutOptions
		field string
	}{
		"negative MaxRate":        {service.FanOutOptions{MaxRate: -1}, "FanOutOptions.MaxRate"},
		"NaN MaxRate":             {service.FanOutOptions{MaxRate: nan}, "FanOutOptions.MaxRate"},
		"infinite MaxRate":        {service.FanOutOptions{MaxRate: inf}, "FanOutOptions.MaxRate"},
		"negative StartRate":      {service.FanOutOptions{StartRate: -5}, "FanOutOptions.StartRate"},
		"NaN StartRate":           {service.FanOutOptions{StartRate: nan}, "FanOutOptions.StartRate"},
		"StartRate and Tier":      {service.FanOutOptions{StartRate: 10, Tier: service.TierS1}, "FanOutOptions.StartRate"},
		"negative Units":          {service.FanOutOptions{Tier: service.TierS1, Units: -1}, "FanOutOptions.Units"},
		"Units without Tier":      {service.FanOutOptions{Units: 2}, "FanOutOptions.Units"},
		"Basic tier":              {service.FanOutOptions{Tier: service.TierB2}, "FanOutOptions.Tier"},
		"unknown tier":            {service.FanOutOptions{Tier: "S9"}, "FanOutOptions.Tier"},
		"negative ThrottleGiveUp": {service.FanOutOptions{ThrottleGiveUp: -time.Second}, "FanOutOptions.ThrottleGiveUp"},
	}
	for name, tt := range tests {
		_, err := client.StartFanOut(t.Context(), service.Devices("d1"), service.MethodParams[any]{Name: "m"}, &tt.opts)
		ae, ok := errors.AsType[*iothub.ArgumentError](err)
		if !ok || ae.Field != tt.field {
			t.Errorf("%s: %v, want an *iothub.ArgumentError naming %s", name, err, tt.field)
		}
	}
	for _, o := range []service.FanOutOptions{{Tier: service.TierS1}, {Tier: service.TierS3, Units: 10}, {StartRate: 100, MaxRate: 50}} {
		run, err := client.StartFanOut(t.Context(), service.Devices("d1"), service.MethodParams[any]{Name: "m"}, &o)
		if err != nil {
			t.Errorf("%+v: %v", o, err)
			continue
		}
		collect(t, run)
	}
	if n := hub.Deliveries("d1", ""); n != 3 {
		t.Errorf("%d deliveries, want 3 (the valid options only)", n)
	}
}

// TestFanOutStats reads the snapshot while a run is paced and after it.
func TestFanOutStats(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setup(t, nil)
		ts := addFleet(hub, 40, &httpmock.DeviceOptions{Latency: time.Second})
		run, err := client.StartFanOut(t.Context(), targetList(ts), service.MethodParams[any]{Name: "reboot", TimeoutInSeconds: 5}, &service.FanOutOptions{Concurrency: 4, MaxRate: 10})
		if err != nil {
			t.Fatal(err)
		}
		mids := make(chan service.FanOutStats, 1)
		go func() {
			time.Sleep(2500 * time.Millisecond)
			mids <- run.Stats()
		}()
		collect(t, run)
		mid := <-mids
		want := service.FanOutStats{Started: 12, Finished: 8, InFlight: 4, OldestInFlight: 500 * time.Millisecond, RateLimit: 10, AcceptedRate: 4, State: "capped at 10/s"}
		if diff := cmp.Diff(want, mid); diff != "" {
			t.Errorf("stats at 2.5 s (-want +got):\n%s", diff)
		}
		end := run.Stats()
		if end.Started != 40 || end.Finished != 40 || end.InFlight != 0 || end.OldestInFlight != 0 {
			t.Errorf("stats at the end: %+v", end)
		}
	})
}
