package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/service"
)

func collect(t *testing.T, run *service.FanOut) map[string]service.Result {
	t.Helper()
	got := map[string]service.Result{}
	for r := range run.Results() {
		key := r.DeviceID + "/" + r.ModuleID
		if _, dup := got[key]; dup {
			t.Errorf("%s reported twice", key)
		}
		got[key] = r
	}
	return got
}

func TestFanOutOutcomes(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setup(t, nil)
		hub.AddDevice("ok-1", &httpmock.DeviceOptions{Handler: echo})
		hub.AddDevice("ok-2", &httpmock.DeviceOptions{Handler: echo}).AddModule("m1").SetDefaultHandler(echo)
		hub.AddDevice("fails", &httpmock.DeviceOptions{Handler: respond(500, `{"error":"disk"}`)})
		hub.AddDevice("offline", &httpmock.DeviceOptions{Offline: true})
		hub.AddDevice("slow", &httpmock.DeviceOptions{Latency: time.Minute, Handler: echo})
		targets := func(yield func(service.Target, error) bool) {
			for _, t := range []service.Target{{DeviceID: "ok-1"}, {DeviceID: "ok-2", ModuleID: "m1"}, {DeviceID: "fails"}, {DeviceID: "offline"}, {DeviceID: "slow"}, {DeviceID: "missing"}, {DeviceID: "bad id"}, {DeviceID: "ok-1", ModuleID: "bad id"}} {
				if !yield(t, nil) {
					return
				}
			}
		}
		run, err := client.StartFanOut(t.Context(), targets, service.MethodParams[any]{Name: "reboot", Payload: json.RawMessage(`{"n":1}`), TimeoutInSeconds: 10}, &service.FanOutOptions{Concurrency: 3})
		if err != nil {
			t.Fatal(err)
		}
		got := collect(t, run)
		want := map[string]service.Outcome{
			"ok-1/": service.OutcomeSucceeded, "ok-2/m1": service.OutcomeSucceeded, "fails/": service.OutcomeDeviceError,
			"offline/": service.OutcomeNotDelivered, "slow/": service.OutcomeUnknown, "missing/": service.OutcomeNotDelivered,
			"bad id/": service.OutcomeNotDelivered, "ok-1/bad id": service.OutcomeNotDelivered,
		}
		gotOutcomes := map[string]service.Outcome{}
		for k, r := range got {
			gotOutcomes[k] = r.Outcome
		}
		if diff := cmp.Diff(want, gotOutcomes); diff != "" {
			t.Errorf("outcomes (-want +got):\n%s", diff)
		}
		if r := got["fails/"]; r.Status != 500 || string(r.Payload) != `{"error":"disk"}` || r.Err != nil {
			t.Errorf("device error result: %+v", r)
		}
		if r := got["offline/"]; r.ErrorCode != iothub.ErrorCodeDeviceNotOnline || r.TrackingID == "" || r.ErrorName != "DeviceNotOnline" {
			t.Errorf("offline result: %+v", r)
		}
		if r := got["slow/"]; r.ErrorCode != iothub.ErrorCodeGatewayTimeout || r.Latency < 10*time.Second {
			t.Errorf("slow result: %+v", r)
		}
		// A bad id is refused before any call, naming the field.
		for key, field := range map[string]string{"bad id/": "Target.DeviceID", "ok-1/bad id": "Target.ModuleID"} {
			r := got[key]
			ae, ok := errors.AsType[*iothub.ArgumentError](r.Err)
			if !ok || ae.Field != field || r.Attempts != 0 {
				t.Errorf("%s: attempts %d, error %v; want an argument error on %s and no attempt", key, r.Attempts, r.Err, field)
			}
		}
		for _, id := range []string{"ok-1", "fails", "slow"} {
			if n := hub.Deliveries(id, ""); n != 1 {
				t.Errorf("%s delivered %d times", id, n)
			}
		}
		if run.Err() != nil {
			t.Errorf("Err = %v", run.Err())
		}
	})
}

func TestFanOutThrottlingBacksOffAndDeliversOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setup(t, nil)
		var ids []string
		for i := range 40 {
			id := fmt.Sprintf("d%02d", i)
			ids = append(ids, id)
			hub.AddDevice(id, &httpmock.DeviceOptions{Handler: echo})
		}
		hub.AddFault(httpmock.Fault{Code: 429001, Skip: 5, Times: 6, RetryAfter: "2"})
		start := time.Now()
		run, err := client.StartFanOut(t.Context(), service.Devices(ids...), service.MethodParams[any]{Name: "reboot"}, &service.FanOutOptions{Concurrency: 8})
		if err != nil {
			t.Fatal(err)
		}
		got := collect(t, run)
		if len(got) != 40 {
			t.Fatalf("%d results", len(got))
		}
		retried := 0
		for id, r := range got {
			if r.Outcome != service.OutcomeSucceeded {
				t.Errorf("%s: %+v", id, r)
			}
			if r.Attempts > 1 {
				retried++
			}
		}
		if retried == 0 {
			t.Error("no target was retried after throttling")
		}
		for _, id := range ids {
			if n := hub.Deliveries(id, ""); n != 1 {
				t.Errorf("%s delivered %d times", id, n)
			}
		}
		if el := time.Since(start); el < 2*time.Second {
			t.Errorf("finished in %v: the workers did not honour Retry-After", el)
		}
	})
}

func TestFanOutGivesUpOnEndlessThrottling(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setup(t, nil)
		hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
		hub.AddFault(httpmock.Fault{Code: 429001, Times: -1})
		start := time.Now()
		run, err := client.StartFanOut(t.Context(), service.Devices("d1"), service.MethodParams[any]{Name: "m"}, &service.FanOutOptions{ThrottleGiveUp: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		r := collect(t, run)["d1/"]
		if r.Outcome != service.OutcomeNotDelivered || r.Attempts < 2 || !errors.Is(r.Err, iothub.ErrThrottled) || r.ErrorCode != 429001 {
			t.Errorf("result %+v", r)
		}
		if el := time.Since(start); el < 10*time.Second {
			t.Errorf("gave up after %v, want the 10 s budget spent", el)
		}
		ff, ok := errors.AsType[*service.FleetFaultError](run.Err())
		if !ok || ff.Fault != service.FaultThrottled || !errors.Is(run.Err(), iothub.ErrThrottled) {
			t.Errorf("Err = %v, want a *FleetFaultError of FaultThrottled", run.Err())
		}
		if n := hub.Deliveries("d1", ""); n != 0 {
			t.Errorf("%d deliveries", n)
		}
	})
}

func TestFanOutConcurrencyAndRate(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setup(t, nil)
		var inFlight, peak atomic.Int32
		slow := func(ctx context.Context, c httpmock.MethodCall) httpmock.MethodResponse {
			n := inFlight.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(100 * time.Millisecond)
			inFlight.Add(-1)
			return httpmock.MethodResponse{Status: 200}
		}
		var ids []string
		for i := range 100 {
			id := fmt.Sprintf("d%03d", i)
			ids = append(ids, id)
			hub.AddDevice(id, &httpmock.DeviceOptions{Handler: slow})
		}
		start := time.Now()
		run, err := client.StartFanOut(t.Context(), service.Devices(ids...), service.MethodParams[any]{Name: "m"}, &service.FanOutOptions{Concurrency: 7, StartRate: 1e6})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(collect(t, run)); n != 100 {
			t.Fatalf("%d results", n)
		}
		if p := peak.Load(); p != 7 {
			t.Errorf("peak concurrency %d, want 7", p)
		}
		// 100 calls of 100 ms at concurrency 7: 15 rounds. (A start rate
		// of a million per second paces nothing here.)
		if el := time.Since(start); el != 1500*time.Millisecond {
			t.Errorf("took %v, want 1.5s", el)
		}

		start = time.Now()
		run, err = client.StartFanOut(t.Context(), service.Devices(ids[:50]...), service.MethodParams[any]{Name: "m"}, &service.FanOutOptions{Concurrency: 50, MaxRate: 10})
		if err != nil {
			t.Fatal(err)
		}
		collect(t, run)
		if el := time.Since(start); el < 4900*time.Millisecond || el > 5200*time.Millisecond {
			t.Errorf("50 calls at 10/s took %v, want about 5s", el)
		}
	})
}

// listWithStop yields ids and calls stop after the n-th.
func listWithStop(ids []string, n int, stop func()) iter.Seq2[service.Target, error] {
	return func(yield func(service.Target, error) bool) {
		for i, id := range ids {
			if i == n {
				stop()
			}
			if !yield(service.Target{DeviceID: id}, nil) {
				return
			}
		}
	}
}

func TestFanOutGracefulStopAndAbort(t *testing.T) {
	t.Parallel()
	for _, abort := range []bool{false, true} {
		t.Run(fmt.Sprintf("abort=%v", abort), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub, client := setup(t, nil)
				var ids []string
				for i := range 30 {
					id := fmt.Sprintf("d%02d", i)
					ids = append(ids, id)
					hub.AddDevice(id, &httpmock.DeviceOptions{Latency: 5 * time.Second, Handler: echo})
				}
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				runs := make(chan *service.FanOut, 1)
				var once sync.Once
				stop := func() {
					once.Do(func() {
						go func() {
							run := <-runs
							time.Sleep(time.Second) // the first calls are in flight
							cancel()
							if abort {
								run.Abort()
							}
						}()
					})
				}
				run, err := client.StartFanOut(ctx, listWithStop(ids, 4, stop), service.MethodParams[any]{Name: "m", TimeoutInSeconds: 30}, &service.FanOutOptions{Concurrency: 4})
				if err != nil {
					t.Fatal(err)
				}
				runs <- run
				got := collect(t, run)
				delivered, counts := 0, map[service.Outcome]int{}
				for _, id := range ids {
					d := hub.Deliveries(id, "")
					delivered += d
					r, reported := got[id+"/"]
					if d > 1 {
						t.Errorf("%s delivered %d times", id, d)
					}
					if d == 1 && !reported {
						t.Errorf("%s was delivered but not reported", id)
					}
					if !reported {
						continue
					}
					counts[r.Outcome]++
					if r.Outcome == service.OutcomeSucceeded && d != 1 {
						t.Errorf("%s succeeded with %d deliveries", id, d)
					}
					if r.Outcome == service.OutcomeNotDelivered && d != 0 {
						t.Errorf("%s not-delivered with %d deliveries", id, d)
					}
				}
				if abort {
					if counts[service.OutcomeUnknown] != 4 || counts[service.OutcomeSucceeded] != 0 {
						t.Errorf("abort outcomes %v, want the 4 calls in flight unknown", counts)
					}
				} else if counts[service.OutcomeSucceeded] != 4 || counts[service.OutcomeUnknown] != 0 {
					t.Errorf("graceful outcomes %v, want the 4 calls in flight to finish", counts)
				}
				if delivered != 4 {
					t.Errorf("%d deliveries, want 4", delivered)
				}
			})
		})
	}
}

func TestFanOutSourceErrorAndValidation(t *testing.T) {
	t.Parallel()
	hub, client := setup(t, nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
	boom := errors.New("query failed")
	src := func(yield func(service.Target, error) bool) {
		if yield(service.Target{DeviceID: "d1"}, nil) {
			yield(service.Target{}, boom)
		}
	}
	run, err := client.StartFanOut(t.Context(), src, service.MethodParams[any]{Name: "m"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, run); len(got) != 1 || got["d1/"].Outcome != service.OutcomeSucceeded {
		t.Errorf("results %v", got)
	}
	if !errors.Is(run.Err(), boom) {
		t.Errorf("Err = %v", run.Err())
	}
	for name, tc := range map[string]struct {
		params service.MethodParams[any]
		opts   *service.FanOutOptions
	}{
		"negative concurrency": {service.MethodParams[any]{Name: "m"}, &service.FanOutOptions{Concurrency: -1}},
		"negative rate":        {service.MethodParams[any]{Name: "m"}, &service.FanOutOptions{MaxRate: -1}},
		"no method":            {service.MethodParams[any]{}, nil},
		"bad timeout":          {service.MethodParams[any]{Name: "m", TimeoutInSeconds: 1}, nil},
	} {
		if _, err := client.StartFanOut(t.Context(), service.Devices("d1"), tc.params, tc.opts); !errors.Is(err, iothub.ErrInvalidArgument) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n := hub.Deliveries("d1", ""); n != 1 {
		t.Errorf("deliveries %d", n)
	}
}

func TestMethodRateLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		tier    service.Tier
		units   int
		payload int
		want    float64
	}{
		{service.TierS1, 1, 100, 40},
		{service.TierS1, 1, 4096, 40},
		{service.TierS1, 1, 4097, 20},
		{service.TierS1, 2, 100, 80},
		{service.TierS2, 1, 100, 120},
		{service.TierS3, 1, 100, 6144},
		{service.TierF1, 5, 100, 40},
		{service.TierB1, 1, 100, 0},
		{service.TierS1, 1, 160 * 1024, 1},
	}
	for _, tt := range tests {
		if got := service.MethodRateLimit(tt.tier, tt.units, tt.payload); got != tt.want {
			t.Errorf("MethodRateLimit(%s, %d, %d) = %v, want %v", tt.tier, tt.units, tt.payload, got, tt.want)
		}
	}
}

// TestFanOutBuffered counts the results ready to be read: all of them once
// every call has ended, one fewer for each result read.
func TestFanOutBuffered(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setup(t, nil)
		var ids []string
		for i := range 5 {
			ids = append(ids, fmt.Sprintf("dev-%d", i))
			hub.AddDevice(ids[i], &httpmock.DeviceOptions{Handler: echo})
		}
		run, err := client.StartFanOut(t.Context(), service.Devices(ids...), service.MethodParams[any]{Name: "reboot"}, &service.FanOutOptions{Concurrency: 5, StartRate: 1000})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // in the bubble: every call ends, its result queued
		synctest.Wait()
		got := []int{run.Buffered()}
		for range run.Results() {
			got = append(got, run.Buffered())
		}
		if diff := cmp.Diff([]int{5, 4, 3, 2, 1, 0}, got); diff != "" {
			t.Errorf("Buffered before and after each result (-want +got):\n%s", diff)
		}
	})
}
