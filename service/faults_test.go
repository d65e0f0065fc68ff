package service_test

// The fault-injection suite: a fleet fan-out against the simulated hub while
// it misbehaves, checking every target's reported outcome against what the
// hub actually delivered. The promise, for every fault:
//
//   - every target gets exactly one result (none missing, none twice);
//   - succeeded or device-error: the method was delivered exactly once;
//   - not-delivered: it was not delivered at all;
//   - unknown: it was delivered at most once;
//   - no target is ever delivered twice (no call is Idempotent here).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/service"
)

// addFleet registers n echoing devices f000… and returns them as targets.
func addFleet(hub *httpmock.Hub, n int, opts *httpmock.DeviceOptions) []service.Target {
	var ts []service.Target
	for i := range n {
		id := fmt.Sprintf("f%03d", i)
		o := httpmock.DeviceOptions{Handler: echo}
		if opts != nil {
			o = *opts
			if o.Handler == nil {
				o.Handler = echo
			}
		}
		hub.AddDevice(id, &o)
		ts = append(ts, service.Target{DeviceID: id})
	}
	return ts
}

// targetList yields ts.
func targetList(ts []service.Target) func(func(service.Target, error) bool) {
	return func(yield func(service.Target, error) bool) {
		for _, t := range ts {
			if !yield(t, nil) {
				return
			}
		}
	}
}

// fanOut runs the "reboot" method over ts and collects the results by
// target, failing on a target reported twice.
func fanOut(t *testing.T, ctx context.Context, client *service.Client, ts []service.Target, opts *service.FanOutOptions) map[service.Target]service.Result {
	t.Helper()
	run, err := client.StartFanOut(ctx, targetList(ts), service.MethodParams[any]{Name: "reboot", Payload: json.RawMessage(`{"delay":1}`), TimeoutInSeconds: 5}, opts)
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
	if err := run.Err(); err != nil && !errors.Is(err, service.ErrFleetFault) {
		t.Errorf("source error: %v", err)
	}
	return got
}

// checkTruth checks every result against the hub's delivery counts and
// returns the outcomes counted. With complete, every target must have a
// result; otherwise every delivered target must.
func checkTruth(t *testing.T, hub *httpmock.Hub, ts []service.Target, got map[service.Target]service.Result, complete bool) map[service.Outcome]int {
	t.Helper()
	counts := make(map[service.Outcome]int)
	for _, tg := range ts {
		n := hub.Deliveries(tg.DeviceID, tg.ModuleID)
		r, ok := got[tg]
		if n > 1 {
			t.Errorf("%v delivered %d times", tg, n)
		}
		if !ok {
			if complete || n > 0 {
				t.Errorf("%v (%d deliveries) has no result", tg, n)
			}
			continue
		}
		counts[r.Outcome]++
		switch r.Outcome {
		case service.OutcomeSucceeded, service.OutcomeDeviceError:
			if n != 1 {
				t.Errorf("%v reported %s with %d deliveries", tg, r.Outcome, n)
			}
			if r.Err != nil {
				t.Errorf("%v reported %s with error %v", tg, r.Outcome, r.Err)
			}
		case service.OutcomeNotDelivered:
			if n != 0 {
				t.Errorf("%v reported not-delivered with %d deliveries: %v", tg, n, r.Err)
			}
			if r.Err == nil || iothub.MayHaveRun(r.Err) && !strings.Contains(r.Err.Error(), "before this target was invoked") {
				t.Errorf("%v not-delivered, but its error says it may have run: %v", tg, r.Err)
			}
		case service.OutcomeUnknown:
			if r.Err == nil || !iothub.MayHaveRun(r.Err) || !errors.Is(r.Err, iothub.ErrOutcomeUnknown) {
				t.Errorf("%v unknown, but its error does not say it may have run: %v", tg, r.Err)
			}
		default:
			t.Errorf("%v: outcome %q", tg, r.Outcome)
		}
	}
	for tg := range got {
		if _, ok := hubTargetsIndex(ts)[tg]; !ok {
			t.Errorf("result for %v, which was not a target", tg)
		}
	}
	return counts
}

func hubTargetsIndex(ts []service.Target) map[service.Target]bool {
	m := make(map[service.Target]bool, len(ts))
	for _, t := range ts {
		m[t] = true
	}
	return m
}

// TestFaultsFleetTruth runs a fleet through each fault of the simulated hub
// in process (under testing/synctest, so that Retry-After pauses and
// attempt deadlines take no real time) and checks every target's outcome
// against the hub's delivery counts.
func TestFaultsFleetTruth(t *testing.T) {
	t.Parallel()
	const n = 40
	html := []byte("<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1><p>The proxy server received an invalid response.</p></body></html>")
	tests := []struct {
		name   string
		faults []httpmock.Fault
		// want, when set, is the exact count of each outcome.
		want map[service.Outcome]int
		// only lists the outcomes allowed, when want is not set.
		only []service.Outcome
		// check looks at the results further.
		check func(t *testing.T, got map[service.Target]service.Result)
		// opts are the fan-out's options; nil means concurrency 8.
		opts *service.FanOutOptions
		// attempts, when set, is the sum of every result's Attempts: one
		// per target plus one per fault hit.
		attempts int
	}{
		{
			// The throttle budget is the run's, not a target's: a storm of
			// 429s that ends before the budget does (ThrottleGiveUp, 2 min
			// without an accepted call) costs retries, never a target.
			name:     "throttling storm without Retry-After",
			faults:   []httpmock.Fault{{Operation: httpmock.OperationMethod, Code: 429001, Times: 30}},
			want:     map[service.Outcome]int{service.OutcomeSucceeded: n},
			attempts: n + 30,
		},
		{
			name:     "throttling storm with Retry-After",
			faults:   []httpmock.Fault{{Operation: httpmock.OperationMethod, Code: 429001, RetryAfter: "3", Times: 30}},
			want:     map[service.Outcome]int{service.OutcomeSucceeded: n},
			attempts: n + 30,
		},
		{
			name:     "throttling storm within the retry budget",
			faults:   []httpmock.Fault{{Operation: httpmock.OperationMethod, Code: 429001, RetryAfter: "1", Times: 30}},
			want:     map[service.Outcome]int{service.OutcomeSucceeded: n},
			attempts: n + 30,
		},
		{
			name:   "endless throttling",
			faults: []httpmock.Fault{{Operation: httpmock.OperationMethod, Code: 429001, RetryAfter: "1", Times: -1}},
			want:   map[service.Outcome]int{service.OutcomeNotDelivered: n},
			check: func(t *testing.T, got map[service.Target]service.Result) {
				for tg, r := range got {
					if !errors.Is(r.Err, iothub.ErrThrottled) || r.ErrorCode != 429001 {
						t.Errorf("%v: %v, want the hub's 429001", tg, r.Err)
					}
				}
			},
		},
		{
			name: "503 bursts",
			faults: []httpmock.Fault{
				{Operation: httpmock.OperationMethod, Code: 503005, Times: 3},
				{Operation: httpmock.OperationMethod, Code: 503000, RetryAfter: "2", Skip: 20, Times: 3},
			},
			want:     map[service.Outcome]int{service.OutcomeSucceeded: n},
			attempts: n + 6,
		},
		{
			name:   "lost responses (504101 after delivery)",
			faults: []httpmock.Fault{{Operation: httpmock.OperationMethod, AfterDelivery: true, Skip: 5, Times: 5}},
			want:   map[service.Outcome]int{service.OutcomeSucceeded: n - 5, service.OutcomeUnknown: 5},
			check: func(t *testing.T, got map[service.Target]service.Result) {
				for tg, r := range got {
					if r.Outcome == service.OutcomeUnknown && (r.ErrorCode != iothub.ErrorCodeGatewayTimeout || r.TrackingID == "") {
						t.Errorf("%v: %+v, want 504101 with a tracking ID", tg, r)
					}
				}
			},
		},
		{
			// Eight calls start at once (a start rate that paces nothing),
			// so that the ten resets spread over them and every call's
			// retries ride them out: at the default slow start the calls
			// start 20 ms apart and one call meets four resets in a row.
			name:     "connection reset before the request is written",
			faults:   []httpmock.Fault{{Operation: httpmock.OperationMethod, Drop: httpmock.DropBeforeWrite, Skip: 3, Times: 10}},
			only:     []service.Outcome{service.OutcomeSucceeded, service.OutcomeNotDelivered},
			opts:     &service.FanOutOptions{Concurrency: 8, StartRate: 1e6},
			attempts: n + 10,
		},
		{
			name:   "connection reset after the request is written",
			faults: []httpmock.Fault{{Operation: httpmock.OperationMethod, Drop: httpmock.DropAfterRead, Skip: 3, Times: 5}},
			want:   map[service.Outcome]int{service.OutcomeSucceeded: n - 5, service.OutcomeUnknown: 5},
		},
		{
			name:   "connection reset after delivery",
			faults: []httpmock.Fault{{Operation: httpmock.OperationMethod, Drop: httpmock.DropAfterDelivery, Skip: 3, Times: 5}},
			want:   map[service.Outcome]int{service.OutcomeSucceeded: n - 5, service.OutcomeUnknown: 5},
		},
		{
			name:   "hub stops answering mid-run",
			faults: []httpmock.Fault{{Operation: httpmock.OperationMethod, Delay: 24 * time.Hour, Skip: 10, Times: -1}},
			want:   map[service.Outcome]int{service.OutcomeSucceeded: 10, service.OutcomeUnknown: n - 10},
			check: func(t *testing.T, got map[service.Target]service.Result) {
				for tg, r := range got {
					if r.Outcome == service.OutcomeUnknown && !errors.Is(r.Err, context.DeadlineExceeded) {
						t.Errorf("%v: %v, want the attempt deadline", tg, r.Err)
					}
				}
			},
		},
		{
			name:   "truncated body after delivery",
			faults: []httpmock.Fault{{Operation: httpmock.OperationMethod, AfterDelivery: true, Status: 200, Body: []byte(`{"status":200,"payl`), ContentType: "application/json", Times: 3}},
			want:   map[service.Outcome]int{service.OutcomeSucceeded: n - 3, service.OutcomeUnknown: 3},
			check:  wantBodyError("unreadable 200 response", "decode method result"),
		},
		{
			name:   "non-JSON body after delivery",
			faults: []httpmock.Fault{{Operation: httpmock.OperationMethod, AfterDelivery: true, Status: 200, Body: []byte("OK"), ContentType: "text/plain", Times: 3}},
			want:   map[service.Outcome]int{service.OutcomeSucceeded: n - 3, service.OutcomeUnknown: 3},
			check:  wantBodyError("unreadable 200 response", "decode method result"),
		},
		{
			name:   "oversized body after delivery",
			faults: []httpmock.Fault{{Operation: httpmock.OperationMethod, AfterDelivery: true, Status: 200, Body: []byte(`{"status":200,"payload":"` + strings.Repeat("x", 3<<20) + `"}`), ContentType: "application/json", Times: 3}},
			want:   map[service.Outcome]int{service.OutcomeSucceeded: n - 3, service.OutcomeUnknown: 3},
			check:  wantBodyError("unreadable 200 response", "exceeds 1048576 bytes"),
		},
		{
			name:   "a proxy's HTML error page",
			faults: []httpmock.Fault{{Operation: httpmock.OperationMethod, Status: 502, Body: html, ContentType: "text/html", Times: 3}},
			want:   map[service.Outcome]int{service.OutcomeSucceeded: n - 3, service.OutcomeUnknown: 3},
			check: func(t *testing.T, got map[service.Target]service.Result) {
				for tg, r := range got {
					if r.Outcome != service.OutcomeUnknown {
						continue
					}
					he, ok := errors.AsType[*iothub.Error](r.Err)
					if !ok || he.StatusCode != 502 || strings.Contains(r.Err.Error(), "<") || !strings.Contains(r.Err.Error(), "HTML page: 502 Bad Gateway") {
						t.Errorf("%v: %v, want an *iothub.Error with status 502 and no HTML", tg, r.Err)
					}
				}
			},
		},
		{
			name: "everything at once",
			faults: []httpmock.Fault{
				{Operation: httpmock.OperationMethod, Code: 429001, RetryAfter: "1", Skip: 2, Times: 6},
				{Operation: httpmock.OperationMethod, Code: 503005, Skip: 4, Times: 4},
				{Operation: httpmock.OperationMethod, Drop: httpmock.DropBeforeWrite, Skip: 1, Times: 4},
				{Operation: httpmock.OperationMethod, Drop: httpmock.DropAfterRead, Skip: 7, Times: 2},
				{Operation: httpmock.OperationMethod, Drop: httpmock.DropAfterDelivery, Skip: 9, Times: 2},
				{Operation: httpmock.OperationMethod, AfterDelivery: true, Skip: 11, Times: 2},
				{Operation: httpmock.OperationMethod, AfterDelivery: true, Status: 200, Body: []byte("<html>"), Skip: 13, Times: 2},
				{Operation: httpmock.OperationMethod, Status: 502, Body: html, Skip: 15, Times: 2},
			},
			only: []service.Outcome{service.OutcomeSucceeded, service.OutcomeNotDelivered, service.OutcomeUnknown},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub, client := setup(t, nil)
				ts := addFleet(hub, n, nil)
				for _, f := range tt.faults {
					hub.AddFault(f)
				}
				opts := tt.opts
				if opts == nil {
					opts = &service.FanOutOptions{Concurrency: 8}
				}
				got := fanOut(t, t.Context(), client, ts, opts)
				counts := checkTruth(t, hub, ts, got, true)
				if tt.want != nil {
					for o, c := range counts {
						if tt.want[o] != c {
							t.Errorf("outcomes %v, want %v", counts, tt.want)
							for _, r := range got {
								if r.Outcome != service.OutcomeSucceeded {
									t.Logf("%v: %s attempts %d latency %v: %v", r.Target, r.Outcome, r.Attempts, r.Latency, r.Err)
								}
							}
							break
						}
					}
				}
				for o := range counts {
					if tt.only != nil && !containsOutcome(tt.only, o) {
						t.Errorf("outcome %s (%v) not allowed for this fault, want only %v", o, counts, tt.only)
					}
				}
				if tt.check != nil {
					tt.check(t, got)
				}
				if tt.attempts != 0 {
					sum := 0
					for _, r := range got {
						sum += r.Attempts
					}
					if sum != tt.attempts {
						t.Errorf("%d attempts in the results, want %d (%d requests reached the hub)", sum, tt.attempts, len(hub.Requests()))
					}
				}
			})
		})
	}
}

func containsOutcome(os []service.Outcome, o service.Outcome) bool {
	return slices.Contains(os, o)
}

// wantBodyError checks that every unknown result is an
// *iothub.BodyError whose message holds each of parts and stays short.
func wantBodyError(parts ...string) func(t *testing.T, got map[service.Target]service.Result) {
	return func(t *testing.T, got map[service.Target]service.Result) {
		for tg, r := range got {
			if r.Outcome != service.OutcomeUnknown {
				continue
			}
			if _, ok := errors.AsType[*iothub.BodyError](r.Err); !ok {
				t.Errorf("%v: %T %v, want an *iothub.BodyError", tg, r.Err, r.Err)
				continue
			}
			msg := r.Err.Error()
			for _, p := range parts {
				if !strings.Contains(msg, p) {
					t.Errorf("%v: error %q lacks %q", tg, msg, p)
				}
			}
			if len(msg) > 400 {
				t.Errorf("%v: error is %d bytes; it must be bounded", tg, len(msg))
			}
		}
	}
}

// TestFaultInterruptAndResume cancels a fleet run mid-way (gracefully, and
// by abandoning the calls in flight), then resumes it over the targets that
// have no result or were not delivered: in the end every target was
// delivered exactly once, except those reported unknown, which are left for
// the caller to check and were delivered at most once.
func TestFaultInterruptAndResume(t *testing.T) {
	t.Parallel()
	for _, abort := range []bool{false, true} {
		t.Run(fmt.Sprintf("abort=%v", abort), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub, client := setup(t, nil)
				ts := addFleet(hub, 50, &httpmock.DeviceOptions{Latency: 2 * time.Second})
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				run, err := client.StartFanOut(ctx, targetList(ts), service.MethodParams[any]{Name: "reboot", TimeoutInSeconds: 10}, &service.FanOutOptions{Concurrency: 4})
				if err != nil {
					t.Fatal(err)
				}
				go func() {
					// Calls start every 2 s, 4 at a time: at 5 s, 8 are
					// done and 4 are in flight until 6 s.
					time.Sleep(5 * time.Second)
					cancel()
					if abort {
						time.Sleep(500 * time.Millisecond)
						run.Abort()
					}
				}()
				first := make(map[service.Target]service.Result)
				for r := range run.Results() {
					first[r.Target] = r
				}
				counts := checkTruth(t, hub, ts, first, false)
				if len(first) == len(ts) || counts[service.OutcomeSucceeded] == 0 {
					t.Fatalf("the run was not interrupted mid-way: %v", counts)
				}
				if abort && counts[service.OutcomeUnknown] == 0 {
					t.Errorf("abort left no call unknown: %v", counts)
				}

				// Resume: every target without a result, or not delivered.
				var rest []service.Target
				for _, tg := range ts {
					if r, ok := first[tg]; !ok || r.Outcome == service.OutcomeNotDelivered {
						rest = append(rest, tg)
					}
				}
				second := fanOut(t, t.Context(), client, rest, &service.FanOutOptions{Concurrency: 8})
				final := make(map[service.Target]service.Result)
				maps.Copy(final, first)
				maps.Copy(final, second)
				counts = checkTruth(t, hub, ts, final, true)
				if counts[service.OutcomeSucceeded]+counts[service.OutcomeUnknown] != len(ts) {
					t.Errorf("after resume: %v, want every target succeeded or left unknown", counts)
				}
				for _, tg := range ts {
					if final[tg].Outcome == service.OutcomeSucceeded && hub.Deliveries(tg.DeviceID, "") != 1 {
						t.Errorf("%v: %d deliveries", tg, hub.Deliveries(tg.DeviceID, ""))
					}
				}
			})
		})
	}
}

// TestFaultTokenExpiryMidRun runs a fleet for longer than its credentials
// live: SAS tokens are renewed and Entra tokens refreshed ahead of expiry,
// so no call is refused and every target is delivered once. The hub
// accepts no expired token at all (ClockSkew < 0).
func TestFaultTokenExpiryMidRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		client func(hub *httpmock.Hub) (*service.Client, func() int)
	}{
		{"SAS renewal", func(hub *httpmock.Hub) (*service.Client, func() int) {
			c, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), &iothub.ClientOptions{
				Transport: hub.RoundTripper(), SASTokenTTL: time.Minute,
			})
			if err != nil {
				t.Fatal(err)
			}
			return c, func() int { return distinctAuthorizations(hub) }
		}},
		{"Entra refresh", func(hub *httpmock.Hub) (*service.Client, func() int) {
			cred := hub.TokenCredential(httpmock.DataContributor, &httpmock.TokenOptions{Lifetime: 11 * time.Minute})
			c, err := service.NewClient(hub.HostName(), cred, &iothub.ClientOptions{Transport: hub.RoundTripper()})
			if err != nil {
				t.Fatal(err)
			}
			return c, cred.Calls
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub := httpmock.New(&httpmock.Options{ClockSkew: -1})
				ts := addFleet(hub, 60, &httpmock.DeviceOptions{Latency: 4 * time.Second})
				client, tokens := tt.client(hub)
				start := time.Now()
				got := fanOut(t, t.Context(), client, ts, &service.FanOutOptions{Concurrency: 1})
				counts := checkTruth(t, hub, ts, got, true)
				if counts[service.OutcomeSucceeded] != len(ts) {
					t.Errorf("outcomes %v, want all succeeded", counts)
				}
				if d := time.Since(start); d < 3*time.Minute {
					t.Fatalf("the run took %v; it must outlive the tokens", d)
				}
				if n := tokens(); n < 3 {
					t.Errorf("%d tokens over the run; want renewals", n)
				}
			})
		})
	}
}

// distinctAuthorizations counts the distinct Authorization values the hub
// received.
func distinctAuthorizations(hub *httpmock.Hub) int {
	seen := make(map[string]bool)
	for _, r := range hub.Requests() {
		seen[r.Header.Get("Authorization")] = true
	}
	return len(seen)
}

// TestFaultClockOff runs against a hub whose clock is minutes off this
// machine's. SAS tokens (the shortest TTL, 1 min, renewed at half-life)
// keep working while the hub is ahead by less than its 5-minute tolerance;
// Entra tokens (an 11-minute lifetime, refreshed 10 minutes ahead) while it
// is ahead by less than the refresh margin. Beyond that every call is
// refused with 401 and reported not-delivered, never unknown. A hub clock
// behind ours is harmless.
func TestFaultClockOff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cred   string
		offset time.Duration
		want   service.Outcome
	}{
		{"SAS", -30 * time.Minute, service.OutcomeSucceeded},
		{"SAS", 4 * time.Minute, service.OutcomeSucceeded},
		{"SAS", 10 * time.Minute, service.OutcomeNotDelivered},
		{"Entra", -30 * time.Minute, service.OutcomeSucceeded},
		{"Entra", 9 * time.Minute, service.OutcomeSucceeded},
		{"Entra", 12 * time.Minute, service.OutcomeNotDelivered},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %v", tt.cred, tt.offset), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub := httpmock.New(&httpmock.Options{ClockOffset: tt.offset})
				ts := addFleet(hub, 20, &httpmock.DeviceOptions{Latency: 4 * time.Second})
				opts := &iothub.ClientOptions{Transport: hub.RoundTripper(), SASTokenTTL: time.Minute}
				var client *service.Client
				var err error
				if tt.cred == "SAS" {
					client, err = service.NewClientFromConnectionString(hub.ConnectionString("service"), opts)
				} else {
					client, err = service.NewClient(hub.HostName(), hub.TokenCredential(httpmock.DataContributor, &httpmock.TokenOptions{Lifetime: 11 * time.Minute}), opts)
				}
				if err != nil {
					t.Fatal(err)
				}
				got := fanOut(t, t.Context(), client, ts, &service.FanOutOptions{Concurrency: 1})
				counts := checkTruth(t, hub, ts, got, true)
				if counts[tt.want] != len(ts) {
					t.Errorf("outcomes %v, want all %s", counts, tt.want)
				}
				for tg, r := range got {
					if r.Outcome == service.OutcomeNotDelivered && !errors.Is(r.Err, iothub.ErrUnauthorized) {
						t.Errorf("%v: %v, want 401", tg, r.Err)
					}
				}
			})
		})
	}
}

// tlsHub serves a fleet over TLS and returns a client with a transport of
// its own (trusting the hub's certificate) and that transport.
func tlsHub(t *testing.T, n int, latency time.Duration, retry iothub.RetryOptions) (*httpmock.Hub, *httpmock.Server, *service.Client, *http.Transport, []service.Target) {
	t.Helper()
	hub := httpmock.New(nil)
	ts := addFleet(hub, n, &httpmock.DeviceOptions{Latency: latency})
	srv, err := hub.StartTLS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CertPEM())
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 64,
	}
	t.Cleanup(tr.CloseIdleConnections)
	client, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), &iothub.ClientOptions{
		Endpoint: srv.URL, Transport: tr, Retry: retry,
	})
	if err != nil {
		t.Fatal(err)
	}
	return hub, srv, client, tr, ts
}

// TestFaultTLSConnectionResets breaks real connections: a reset before the
// TLS handshake (connection-level DropBeforeWrite), and HTTP/2 streams
// reset after the request was read or after delivery.
func TestFaultTLSConnectionResets(t *testing.T) {
	t.Parallel()
	hub, srv, client, tr, ts := tlsHub(t, 30, 0, iothub.RetryOptions{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond})
	hub.AddFault(httpmock.Fault{Drop: httpmock.DropBeforeWrite, Times: 2}) // the first two connections
	hub.AddFault(httpmock.Fault{Operation: httpmock.OperationMethod, Drop: httpmock.DropAfterRead, Skip: 4, Times: 2})
	hub.AddFault(httpmock.Fault{Operation: httpmock.OperationMethod, Drop: httpmock.DropAfterDelivery, Skip: 10, Times: 2})
	got := fanOut(t, t.Context(), client, ts[:15], &service.FanOutOptions{Concurrency: 4})
	// Fresh connections for the second half meet a reset before the handshake.
	tr.CloseIdleConnections()
	srv.CloseClientConnections()
	hub.AddFault(httpmock.Fault{Drop: httpmock.DropBeforeWrite, Times: 1})
	maps.Copy(got, fanOut(t, t.Context(), client, ts[15:], &service.FanOutOptions{Concurrency: 4}))
	counts := checkTruth(t, hub, ts, got, true)
	if counts[service.OutcomeUnknown] != 4 || counts[service.OutcomeSucceeded] != len(ts)-4 {
		t.Errorf("outcomes %v, want 4 unknown (the broken streams), the rest succeeded", counts)
	}
}

// TestFaultSlowTLSHandshake: a slow handshake within the transport's
// TLSHandshakeTimeout only slows the calls; one beyond it fails before the
// request is written, so the call is retried and, when every attempt
// times out, reported not delivered with nothing sent.
func TestFaultSlowTLSHandshake(t *testing.T) {
	t.Parallel()
	hub, srv, client, tr, ts := tlsHub(t, 6, 0, iothub.RetryOptions{MaxAttempts: 2, MinDelay: time.Millisecond})
	tr.TLSHandshakeTimeout = 500 * time.Millisecond

	srv.SetHandshakeDelay(50 * time.Millisecond)
	got := fanOut(t, t.Context(), client, ts[:3], &service.FanOutOptions{Concurrency: 3})

	tr.CloseIdleConnections()
	srv.CloseClientConnections()
	srv.SetHandshakeDelay(2 * time.Second)
	before := len(hub.Requests())
	for tg, r := range fanOut(t, t.Context(), client, ts[3:], &service.FanOutOptions{Concurrency: 3}) {
		got[tg] = r
		if !errors.Is(r.Err, iothub.ErrNotDelivered) || !strings.Contains(r.Err.Error(), "handshake") {
			t.Errorf("%v: %v, want a handshake timeout, not delivered", tg, r.Err)
		}
	}
	if n := len(hub.Requests()) - before; n != 0 {
		t.Errorf("%d requests reached the hub through a handshake that timed out", n)
	}
	counts := checkTruth(t, hub, ts, got, true)
	if counts[service.OutcomeSucceeded] != 3 || counts[service.OutcomeNotDelivered] != 3 {
		t.Errorf("outcomes %v, want 3 succeeded (slow handshake) and 3 not delivered (handshake timeout)", counts)
	}
}

// TestFaultHubRestartsMidRun takes the hub away while a fleet run is in
// flight and brings it back on the same address. The calls the closing hub
// cut off are reported unknown (delivered at most once), the calls that met
// the closed port are retried and delivered once the hub is back, and
// nothing is delivered twice.
func TestFaultHubRestartsMidRun(t *testing.T) {
	t.Parallel()
	hub, srv, client, _, ts := tlsHub(t, 40, 100*time.Millisecond, iothub.RetryOptions{MaxAttempts: 30, MinDelay: 20 * time.Millisecond, MaxDelay: 50 * time.Millisecond})
	var callsAtRestart atomic.Int64
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		for len(hub.Calls()) < 8 {
			time.Sleep(2 * time.Millisecond)
		}
		srv.Close()
		time.Sleep(150 * time.Millisecond)
		callsAtRestart.Store(int64(len(hub.Calls())))
		ns, err := srv.Restart()
		if err != nil {
			t.Error(err)
			return
		}
		t.Cleanup(ns.Close)
	}()
	got := fanOut(t, t.Context(), client, ts, &service.FanOutOptions{Concurrency: 4})
	<-restarted
	counts := checkTruth(t, hub, ts, got, true)
	if counts[service.OutcomeUnknown] == 0 {
		t.Errorf("outcomes %v: closing the hub cut off no call", counts)
	}
	if n := int64(len(hub.Calls())); n <= callsAtRestart.Load() {
		t.Errorf("no call delivered after the restart (%d calls, %d at restart)", n, callsAtRestart.Load())
	}
	retried := 0
	for _, r := range got {
		if r.Outcome == service.OutcomeSucceeded && r.Attempts > 1 {
			retried++
		}
	}
	if retried == 0 {
		t.Errorf("no call that met the closed port was retried to success: %v", counts)
	}
}

// TestFaultHubGoesAway takes the hub away for good mid-run: every target
// still gets a result, and the ones that met the closed port are reported
// not delivered.
func TestFaultHubGoesAway(t *testing.T) {
	t.Parallel()
	hub, srv, client, _, ts := tlsHub(t, 30, 50*time.Millisecond, iothub.RetryOptions{MaxAttempts: 2, MinDelay: time.Millisecond})
	go func() {
		for len(hub.Calls()) < 6 {
			time.Sleep(2 * time.Millisecond)
		}
		srv.Close()
	}()
	got := fanOut(t, t.Context(), client, ts, &service.FanOutOptions{Concurrency: 3})
	counts := checkTruth(t, hub, ts, got, true)
	// The calls a closing hub cut off are unknown (how many depends on how
	// long closing takes); the ones after it met a refused connection.
	if counts[service.OutcomeNotDelivered] == 0 {
		t.Errorf("outcomes %v: no target met the closed hub", counts)
	}
}

// TestFaultRetryAfterBeyondCap: a hub (or a proxy) asking for a Retry-After
// longer than RetryOptions.MaxRetryAfter does not stall the fan-out: the
// targets it throttles are reported not delivered at once, with the hub's
// Retry-After, for the caller to decide.
func TestFaultRetryAfterBeyondCap(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setup(t, &iothub.ClientOptions{Retry: iothub.RetryOptions{MaxRetryAfter: time.Minute}})
		ts := addFleet(hub, 6, nil)
		hub.AddFault(httpmock.Fault{Operation: httpmock.OperationMethod, Code: 429001, RetryAfter: "7200", Skip: 2, Times: -1})
		start := time.Now()
		got := fanOut(t, t.Context(), client, ts, &service.FanOutOptions{Concurrency: 1})
		if d := time.Since(start); d > time.Minute {
			t.Errorf("the fan-out took %v; a Retry-After beyond the 1 min cap must not be waited for", d)
		}
		counts := checkTruth(t, hub, ts, got, true)
		if counts[service.OutcomeSucceeded] != 2 || counts[service.OutcomeNotDelivered] != 4 {
			t.Errorf("outcomes %v, want 2 succeeded and 4 not delivered", counts)
		}
		for tg, r := range got {
			if r.Outcome != service.OutcomeNotDelivered {
				continue
			}
			if he, ok := errors.AsType[*iothub.Error](r.Err); !ok || he.RetryAfter != 2*time.Hour {
				t.Errorf("%v: %v, want the hub's 429 with its 2 h Retry-After", tg, r.Err)
			}
		}
	})
}

// failingAfter is a TokenCredential that works for its first n tokens and
// then fails, as an identity provider that goes down mid-run.
type failingAfter struct {
	cred  azcore.TokenCredential
	n     int32
	calls atomic.Int32
}

func (f *failingAfter) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if f.calls.Add(1) > f.n {
		return azcore.AccessToken{}, errors.New("identity provider unavailable")
	}
	return f.cred.GetToken(ctx, o)
}

// TestFaultIdentityProviderFails: when Entra stops issuing tokens mid-run,
// the cached token is used until it expires; after that every call fails
// before anything is sent and is reported not delivered, naming the
// credential.
func TestFaultIdentityProviderFails(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub := httpmock.New(&httpmock.Options{ClockSkew: -1})
		ts := addFleet(hub, 200, &httpmock.DeviceOptions{Latency: 4 * time.Second})
		cred := &failingAfter{cred: hub.TokenCredential(httpmock.DataContributor, &httpmock.TokenOptions{Lifetime: 11 * time.Minute}), n: 1}
		client, err := service.NewClient(hub.HostName(), cred, &iothub.ClientOptions{Transport: hub.RoundTripper()})
		if err != nil {
			t.Fatal(err)
		}
		got := fanOut(t, t.Context(), client, ts, &service.FanOutOptions{Concurrency: 1})
		counts := checkTruth(t, hub, ts, got, true)
		if counts[service.OutcomeSucceeded] == 0 || counts[service.OutcomeNotDelivered] == 0 || counts[service.OutcomeUnknown] != 0 {
			t.Errorf("outcomes %v, want successes while the token lived, then not delivered", counts)
		}
		for tg, r := range got {
			if r.Outcome == service.OutcomeNotDelivered && !strings.Contains(r.Err.Error(), "identity provider unavailable") {
				t.Errorf("%v: %v, want the credential's error", tg, r.Err)
			}
		}
		if n := len(hub.Requests()); n != counts[service.OutcomeSucceeded] {
			t.Errorf("%d requests reached the hub for %d successes; a call without a token must send nothing", n, counts[service.OutcomeSucceeded])
		}
	})
}
