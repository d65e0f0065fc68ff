package httpmock

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// jsonString returns a JSON string literal of exactly size bytes (size ≥ 2).
func jsonString(size int) string { return `"` + strings.Repeat("x", size-2) + `"` }

// invoke calls method "m" on d1 with a payload of size bytes as compact
// JSON.
func invoke(ctx context.Context, t testing.TB, h *Hub, client *http.Client, size int) result {
	t.Helper()
	return send(ctx, t, h, client, call{path: "/twins/d1/methods", body: methodBody("m", `,"payload":`+jsonString(size))})
}

// checkThrottled checks a 429 / 429001 answer and returns its Retry-After.
func checkThrottled(t testing.TB, r result) string {
	t.Helper()
	got := decodeErr(t, r)
	if got.Status != http.StatusTooManyRequests || got.Code != 429001 || got.Header != "ThrottlingException" {
		t.Errorf("got %+v, want 429 / 429001 ThrottlingException", got)
	}
	return r.header.Get("Retry-After")
}

func TestThrottleMethodRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    ThrottleOptions
		payload int // bytes
		offered int // calls a second, each from its own goroutine
		seconds int // how long they are offered
		rate    int // calls a second the tier allows
	}{
		{name: "S1 1KB", opts: ThrottleOptions{Tier: TierS1}, payload: 1024, offered: 200, seconds: 10, rate: 40},
		{name: "S1 8KB costs two meters", opts: ThrottleOptions{Tier: TierS1}, payload: 8192, offered: 200, seconds: 6, rate: 20},
		{name: "S1 2 units", opts: ThrottleOptions{Tier: TierS1, Units: 2}, payload: 1024, offered: 200, seconds: 6, rate: 80},
		{name: "S2 4KB", opts: ThrottleOptions{Tier: TierS2}, payload: 4096, offered: 200, seconds: 6, rate: 120},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := New(&Options{Throttle: &tt.opts})
				h.AddDevice("d1", &DeviceOptions{Handler: echo})
				client := inProcess(h)
				var (
					mu      sync.Mutex
					okAt    []time.Duration // when each 200 came back
					limited int
					withRA  int
				)
				start := time.Now()
				var wg sync.WaitGroup
				n := tt.offered * tt.seconds
				for range n {
					wg.Go(func() {
						r := invoke(t.Context(), t, h, client, tt.payload)
						mu.Lock()
						defer mu.Unlock()
						if r.err == nil && r.status == http.StatusOK {
							okAt = append(okAt, time.Since(start))
							return
						}
						limited++
						if checkThrottled(t, r) != "" {
							withRA++
						}
					})
					time.Sleep(time.Second / time.Duration(tt.offered))
				}
				wg.Wait()

				t.Logf("%d admitted, %d throttled; %+v", len(okAt), limited, h.ThrottleStats())
				// The bucket's second of budget, the backlog's second and
				// then the rate over the whole run.
				want := tt.rate * (tt.seconds + 2)
				if got := len(okAt); got < want-want/100-1 || got > want {
					t.Errorf("admitted %d of %d calls over %ds, want about %d", got, n, tt.seconds, want)
				}
				// Once the queue is full, calls are served at the rate.
				from, to := time.Duration(tt.seconds/2)*time.Second, time.Duration(tt.seconds)*time.Second
				inWindow := 0
				for _, at := range okAt {
					if at >= from && at < to {
						inWindow++
					}
				}
				if want := tt.rate * (tt.seconds - tt.seconds/2); inWindow < want-1 || inWindow > want+1 {
					t.Errorf("%d calls answered within [%v, %v), want %d", inWindow, from, to, want)
				}
				if len(okAt)+limited != n {
					t.Errorf("%d answered 200 and %d throttled of %d", len(okAt), limited, n)
				}
				if got := h.Deliveries("d1", ""); got != len(okAt) {
					t.Errorf("Deliveries = %d, want %d (throttled calls are not delivered)", got, len(okAt))
				}
				if withRA != limited/2 {
					t.Errorf("%d of %d 429s carry Retry-After, want every second one", withRA, limited)
				}
				st := h.ThrottleStats()
				if st.Admitted != int64(len(okAt)) || st.Throttled != int64(limited) {
					t.Errorf("ThrottleStats = %+v, want Admitted %d, Throttled %d", st, len(okAt), limited)
				}
				if st.Queued == 0 || st.Queued > st.Admitted || st.QueueDelay <= 0 {
					t.Errorf("ThrottleStats = %+v: want some queued calls", st)
				}
			})
		})
	}
}

// TestThrottleQueue sends bursts at one instant and checks which calls go
// at once, which wait in the queue (and how long) and which are rejected.
func TestThrottleQueue(t *testing.T) {
	t.Parallel()
	const step = 25 * time.Millisecond // one 4 KB meter on S1
	tests := []struct {
		name      string
		opts      ThrottleOptions
		burst     int
		wantWaits []time.Duration // sorted latencies of the 200 answers
	}{
		{name: "slightly over", opts: ThrottleOptions{}, burst: 45, wantWaits: waits(40, 5, step)},
		{name: "fills the backlog", opts: ThrottleOptions{}, burst: 85, wantWaits: waits(40, 40, step)},
		{name: "short backlog", opts: ThrottleOptions{MethodBacklog: 200 * time.Millisecond}, burst: 50, wantWaits: waits(40, 8, step)},
		{name: "no queueing", opts: ThrottleOptions{MethodBacklog: -1}, burst: 45, wantWaits: waits(40, 0, step)},
		{name: "half-second burst", opts: ThrottleOptions{MethodBurst: 500 * time.Millisecond}, burst: 70, wantWaits: waits(20, 40, step)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := New(&Options{Throttle: &tt.opts})
				h.AddDevice("d1", &DeviceOptions{Handler: echo})
				client := inProcess(h)
				var mu sync.Mutex
				var got []time.Duration
				limited := 0
				start := time.Now()
				var wg sync.WaitGroup
				for range tt.burst {
					wg.Go(func() {
						r := invoke(t.Context(), t, h, client, 100)
						mu.Lock()
						defer mu.Unlock()
						if r.err == nil && r.status == http.StatusOK {
							got = append(got, time.Since(start))
							return
						}
						checkThrottled(t, r)
						limited++
					})
				}
				wg.Wait()
				slices.Sort(got)
				if !slices.Equal(got, tt.wantWaits) {
					t.Errorf("latencies of the admitted calls:\n got %v\nwant %v", got, tt.wantWaits)
				}
				if want := tt.burst - len(tt.wantWaits); limited != want {
					t.Errorf("%d throttled, want %d", limited, want)
				}
				var delay time.Duration
				queued := 0
				for _, w := range tt.wantWaits {
					if w > 0 {
						delay += w
						queued++
					}
				}
				want := ThrottleStats{Admitted: int64(len(tt.wantWaits)), Queued: int64(queued), Throttled: int64(limited), QueueDelay: delay}
				if st := h.ThrottleStats(); st != want {
					t.Errorf("ThrottleStats = %+v, want %+v", st, want)
				}
			})
		})
	}
}

// waits returns now zeros then queued multiples of step.
func waits(now, queued int, step time.Duration) []time.Duration {
	out := make([]time.Duration, now, now+queued)
	for i := 1; i <= queued; i++ {
		out = append(out, time.Duration(i)*step)
	}
	return out
}

// TestThrottleRetryAfter runs scripts of sequential calls and checks each
// answer, its Retry-After and, for admitted calls, how long it was queued.
func TestThrottleRetryAfter(t *testing.T) {
	t.Parallel()
	type step struct {
		sleep      time.Duration // before the calls
		n          int           // how many identical calls; 0 means 1
		status     int
		retryAfter string        // expected on the last of the n calls
		latency    time.Duration // of an admitted call
	}
	// 3000 B/s with a 3 s bucket: an 8 KB call costs 2.730666666 s.
	slow := ThrottleOptions{MethodBytesPerSecond: 3000, MethodBurst: 3 * time.Second, MethodBacklog: -1}
	slowQueued := slow
	slowQueued.MethodBacklog = 2 * time.Second
	every := func(o ThrottleOptions, n int) *ThrottleOptions { o.RetryAfterEvery = n; return &o }
	tests := []struct {
		name    string
		opts    *ThrottleOptions
		payload int
		steps   []step
	}{
		{
			name: "every second 429, rounded up", opts: &slow, payload: 8192,
			steps: []step{
				{status: 200},
				{status: 429, retryAfter: ""},
				{status: 429, retryAfter: "3"}, // 2.46 s
				{sleep: 2 * time.Second, status: 429, retryAfter: ""},
				{status: 429, retryAfter: "1"}, // 0.46 s
				{sleep: time.Second, status: 200},
			},
		},
		{
			name: "into the queue after Retry-After", opts: &slowQueued, payload: 8192,
			steps: []step{
				{status: 200},
				{status: 429},                  // would wait 2.46 s > 2 s
				{status: 429, retryAfter: "1"}, // 0.46 s until it fits the backlog
				{sleep: time.Second, status: 200, latency: 1461333332},
			},
		},
		{
			name: "every 429", opts: every(ThrottleOptions{MethodBacklog: -1}, 1), payload: 1024,
			steps: []step{
				{n: 40, status: 200},
				{n: 3, status: 429, retryAfter: "1"},
				{sleep: 25 * time.Millisecond, status: 200},
				{status: 429, retryAfter: "1"},
			},
		},
		{
			name: "every third 429", opts: every(ThrottleOptions{MethodBacklog: -1}, 3), payload: 1024,
			steps: []step{
				{n: 40, status: 200},
				{n: 2, status: 429, retryAfter: ""},
				{status: 429, retryAfter: "1"},
				{n: 2, status: 429, retryAfter: ""},
				{status: 429, retryAfter: "1"},
			},
		},
		{
			name: "never", opts: every(ThrottleOptions{MethodBacklog: -1}, -1), payload: 1024,
			steps: []step{
				{n: 40, status: 200},
				{n: 10, status: 429, retryAfter: ""},
			},
		},
		{
			name: "call above the bucket", payload: 8192, // 2 s of budget, the bucket holds 1 s
			opts: &ThrottleOptions{MethodBytesPerSecond: 4096, MethodBacklog: -1},
			steps: []step{
				{status: 200}, // at once: a full bucket lets it in
				{status: 429},
				{status: 429, retryAfter: "2"},
				{sleep: 2*time.Second - 1, status: 429},
				{sleep: 1, status: 200},
			},
		},
		{
			name: "queued sequential calls", opts: &ThrottleOptions{}, payload: 1024,
			steps: []step{
				{n: 40, status: 200},
				{n: 3, status: 200, latency: 25 * time.Millisecond}, // each waits its turn
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := New(&Options{Throttle: tt.opts})
				h.AddDevice("d1", &DeviceOptions{Handler: echo})
				client := inProcess(h)
				for i, s := range tt.steps {
					time.Sleep(s.sleep)
					for j := range max(s.n, 1) {
						start := time.Now()
						r := invoke(t.Context(), t, h, client, tt.payload)
						last := j == max(s.n, 1)-1
						if s.status == http.StatusOK {
							methodResult(t, r)
							if got := time.Since(start); got != s.latency {
								t.Errorf("step %d: latency %v, want %v", i, got, s.latency)
							}
							continue
						}
						ra := checkThrottled(t, r)
						if last && ra != s.retryAfter {
							t.Errorf("step %d: Retry-After %q, want %q", i, ra, s.retryAfter)
						}
					}
				}
			})
		})
	}
}

// TestThrottleTierRates checks each tier's direct-method rate: with no
// queueing, a full bucket takes its burst's worth of calls at once, and
// one burst later as many again. (Some S3 cases use a shorter burst to
// keep the test quick.)
func TestThrottleTierRates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    ThrottleOptions
		payload int
		want    int // calls a burst (default: a second)
	}{
		{name: "zero options are S1", payload: 1024, want: 40},
		{name: "Free", opts: ThrottleOptions{Tier: TierFree}, payload: 1024, want: 40},
		{name: "S1 4096 bytes is one meter", opts: ThrottleOptions{Tier: TierS1}, payload: 4096, want: 40},
		{name: "S1 4097 bytes is two meters", opts: ThrottleOptions{Tier: TierS1}, payload: 4097, want: 20},
		{name: "S1 156-160 KB", opts: ThrottleOptions{Tier: TierS1}, payload: MaxPayloadSize, want: 1},
		{name: "S1 3 units", opts: ThrottleOptions{Tier: TierS1, Units: 3}, payload: 1024, want: 120},
		{name: "S2", opts: ThrottleOptions{Tier: TierS2}, payload: 1024, want: 120},
		{name: "S2 2 units 8KB", opts: ThrottleOptions{Tier: TierS2, Units: 2}, payload: 8192, want: 120},
		{name: "S3", opts: ThrottleOptions{Tier: TierS3}, payload: 1024, want: 6144},
		{name: "S3 2 units 8KB", opts: ThrottleOptions{Tier: TierS3, Units: 2, MethodBurst: 100 * time.Millisecond}, payload: 8000, want: 614},
		{name: "S3 64KB", opts: ThrottleOptions{Tier: TierS3, MethodBurst: 250 * time.Millisecond}, payload: 65536, want: 96},
		{name: "override", opts: ThrottleOptions{Tier: TierS3, MethodBytesPerSecond: 5 * 4096}, payload: 10, want: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				opts := tt.opts
				opts.MethodBacklog = -1
				h := New(&Options{Throttle: &opts})
				h.AddDevice("d1", &DeviceOptions{Handler: func(context.Context, MethodCall) MethodResponse {
					return MethodResponse{Status: 200}
				}})
				client := inProcess(h)
				for round := range 2 {
					n := 0
					for {
						r := invoke(t.Context(), t, h, client, tt.payload)
						if r.status != http.StatusOK {
							checkThrottled(t, r)
							break
						}
						n++
					}
					if n != tt.want {
						t.Errorf("round %d: %d calls admitted, want %d", round, n, tt.want)
					}
					time.Sleep(cmp.Or(opts.MethodBurst, time.Second))
				}
			})
		})
	}
}

func TestThrottleBasicTier(t *testing.T) {
	t.Parallel()
	for _, tier := range []Tier{TierB1, TierB2, TierB3} {
		t.Run(string(tier), func(t *testing.T) {
			t.Parallel()
			h := New(&Options{Throttle: &ThrottleOptions{Tier: tier, Units: 2}})
			h.AddDevice("d1", &DeviceOptions{Handler: echo})
			client := inProcess(h)
			for _, body := range []string{methodBody("m", ""), `not JSON`} {
				r := send(t.Context(), t, h, client, call{path: "/twins/d1/methods", body: body})
				got := decodeErr(t, r)
				if got.Status != http.StatusForbidden || got.Code != 403010 || got.Header != "OperationNotAvailableInCurrentTier" {
					t.Errorf("got %+v", got)
				}
			}
			if n := h.Deliveries("d1", ""); n != 0 {
				t.Errorf("Deliveries = %d", n)
			}
			r := send(t.Context(), t, h, client, call{path: "/devices/query", body: `{"query":"SELECT * FROM devices"}`})
			if r.status != http.StatusOK {
				t.Errorf("query: status %d, body %s", r.status, r.body)
			}
		})
	}
}

func TestThrottleQueries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       ThrottleOptions
		perMinute  int
		interval   time.Duration // between queries once the bucket is empty
		retryAfter string
	}{
		{name: "S1", opts: ThrottleOptions{Tier: TierS1}, perMinute: 20, interval: 3 * time.Second, retryAfter: "3"},
		{name: "S1 3 units", opts: ThrottleOptions{Tier: TierS1, Units: 3}, perMinute: 60, interval: time.Second, retryAfter: "1"},
		{name: "S2", opts: ThrottleOptions{Tier: TierS2}, perMinute: 20, interval: 3 * time.Second, retryAfter: "3"},
		{name: "S3", opts: ThrottleOptions{Tier: TierS3}, perMinute: 1000, interval: 60 * time.Millisecond, retryAfter: "1"},
		{name: "B1", opts: ThrottleOptions{Tier: TierB1}, perMinute: 20, interval: 3 * time.Second, retryAfter: "3"},
		{name: "override", opts: ThrottleOptions{QueriesPerMinute: 6}, perMinute: 6, interval: 10 * time.Second, retryAfter: "10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := New(&Options{Throttle: &tt.opts})
				h.AddDevice("d1", nil)
				client := inProcess(h)
				query := func() result {
					return send(t.Context(), t, h, client, call{path: "/devices/query", body: `{"query":"SELECT * FROM devices"}`})
				}
				for i := range tt.perMinute {
					if r := query(); r.status != http.StatusOK {
						t.Fatalf("query %d: status %d, body %s", i, r.status, r.body)
					}
				}
				if ra := checkThrottled(t, query()); ra != "" {
					t.Errorf("first 429: Retry-After %q, want none", ra)
				}
				if ra := checkThrottled(t, query()); ra != tt.retryAfter {
					t.Errorf("second 429: Retry-After %q, want %q", ra, tt.retryAfter)
				}
				time.Sleep(tt.interval - time.Nanosecond)
				checkThrottled(t, query())
				time.Sleep(time.Nanosecond)
				if r := query(); r.status != http.StatusOK {
					t.Errorf("after %v: status %d", tt.interval, r.status)
				}
				checkThrottled(t, query())
				want := ThrottleStats{QueriesAdmitted: int64(tt.perMinute) + 1, QueriesThrottled: 4}
				if st := h.ThrottleStats(); st != want {
					t.Errorf("ThrottleStats = %+v, want %+v", st, want)
				}
			})
		})
	}
}

// TestThrottleQueriesSteady offers one query a second for five minutes to
// an S1 hub: a minute's burst, then one every three seconds.
func TestThrottleQueriesSteady(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := New(&Options{Throttle: &ThrottleOptions{Tier: TierS1}})
		client := inProcess(h)
		ok := 0
		for range 300 {
			r := send(t.Context(), t, h, client, call{path: "/devices/query", body: `{"query":"SELECT * FROM devices"}`})
			if r.status == http.StatusOK {
				ok++
			} else {
				checkThrottled(t, r)
			}
			time.Sleep(time.Second)
		}
		// 20 at first, then 20 a minute for five minutes.
		if ok < 118 || ok > 120 {
			t.Errorf("%d queries admitted, want about 120", ok)
		}
	})
}

func TestThrottleNil(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]*Options{"nil options": nil, "nil Throttle": {}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := New(opts)
				h.AddDevice("d1", &DeviceOptions{Handler: echo})
				client := inProcess(h)
				start := time.Now()
				var wg sync.WaitGroup
				for range 300 {
					wg.Go(func() { methodResult(t, invoke(t.Context(), t, h, client, 8192)) })
				}
				wg.Wait()
				for range 100 {
					if r := send(t.Context(), t, h, client, call{path: "/devices/query", body: `{"query":"SELECT * FROM devices"}`}); r.status != http.StatusOK {
						t.Fatalf("query: status %d", r.status)
					}
				}
				if d := time.Since(start); d != 0 {
					t.Errorf("took %v of virtual time", d)
				}
				if n := h.Deliveries("d1", ""); n != 300 {
					t.Errorf("Deliveries = %d", n)
				}
				if st := h.ThrottleStats(); st != (ThrottleStats{}) {
					t.Errorf("ThrottleStats = %+v", st)
				}
			})
		})
	}
}

// TestThrottleQueuedCallerGone: a caller that gives up while its call is
// queued gets its context's error and the call is not delivered.
func TestThrottleQueuedCallerGone(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := New(&Options{Throttle: &ThrottleOptions{}})
		h.AddDevice("d1", &DeviceOptions{Handler: echo})
		client := inProcess(h)
		for range 40 {
			methodResult(t, invoke(t.Context(), t, h, client, 10))
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		defer cancel()
		if r := invoke(ctx, t, h, client, 10); !errors.Is(r.err, context.DeadlineExceeded) {
			t.Errorf("got status %d, err %v; want the deadline error", r.status, r.err)
		}
		synctest.Wait()
		if n := h.Deliveries("d1", ""); n != 40 {
			t.Errorf("Deliveries = %d, want 40", n)
		}
		if st := h.ThrottleStats(); st.Admitted != 41 || st.Queued != 1 {
			t.Errorf("ThrottleStats = %+v", st)
		}
	})
}

// TestThrottleAfterFaults: a call a fault answers is not metered.
func TestThrottleAfterFaults(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := New(&Options{Throttle: &ThrottleOptions{MethodBacklog: -1}})
		h.AddDevice("d1", &DeviceOptions{Handler: echo})
		h.AddFault(Fault{Operation: OperationMethod, Code: 500001, Times: 5})
		client := inProcess(h)
		faulted := 0
		for range 45 {
			r := invoke(t.Context(), t, h, client, 10)
			if r.status == http.StatusInternalServerError {
				faulted++
				continue
			}
			methodResult(t, r)
		}
		if faulted != 5 {
			t.Errorf("%d faulted", faulted)
		}
		checkThrottled(t, invoke(t.Context(), t, h, client, 10))
	})
}

func TestThrottleOptionsInvalid(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]ThrottleOptions{
		"unknown tier":   {Tier: "S4"},
		"negative units": {Units: -1},
		"Free 2 units":   {Tier: TierFree, Units: 2},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if recover() == nil {
					t.Error("New did not panic")
				}
			}()
			New(&Options{Throttle: &o})
		})
	}
}

// TestThrottleJobs checks the jobs throttles of each tier: the jobs
// operations bucket (a minute's worth at once, then the rate; Basic tiers
// have no jobs), how many jobs may be active, and how fast a job reaches
// its devices.
func TestThrottleJobs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      ThrottleOptions
		perMinute int           // jobs operations
		interval  time.Duration // between operations once the bucket is empty
		active    int           // jobs that may be active at once
		devices   int           // device operations in the first second of a job
	}{
		{name: "Free", opts: ThrottleOptions{Tier: TierFree}, perMinute: 100, interval: 600 * time.Millisecond, active: 1, devices: 10},
		{name: "S1", opts: ThrottleOptions{Tier: TierS1}, perMinute: 100, interval: 600 * time.Millisecond, active: 1, devices: 10},
		{name: "S1 2 units", opts: ThrottleOptions{Tier: TierS1, Units: 2}, perMinute: 200, interval: 300 * time.Millisecond, active: 1, devices: 10},
		{name: "S2 20 units", opts: ThrottleOptions{Tier: TierS2, Units: 20}, perMinute: 2000, interval: 30 * time.Millisecond, active: 5, devices: 20},
		{name: "S3", opts: ThrottleOptions{Tier: TierS3}, perMinute: 5000, interval: 12 * time.Millisecond, active: 10, devices: 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h, c, owner := jobsHub(t, &Options{Throttle: &tt.opts})
				for i := range 60 {
					h.AddDevice(fmt.Sprintf("d%02d", i), &DeviceOptions{Handler: echo})
				}
				get := func() result {
					return send(t.Context(), t, h, c, call{method: http.MethodGet, path: "/jobs/v2/query", auth: owner})
				}

				// Active jobs: tt.active start an hour from now; one more
				// is refused.
				later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
				for i := range tt.active + 1 {
					id := fmt.Sprintf("j%d", i)
					r := send(t.Context(), t, h, c, call{method: http.MethodPut, path: "/jobs/v2/" + id, auth: owner,
						body: methodJobBody(id, "*", `,"startTime":"`+later+`"`)})
					if i < tt.active {
						jobWireOf(t, r)
					} else if got := decodeErr(t, r); got.Code != 429004 {
						t.Errorf("job %d: %+v, want 429004", i, got)
					}
				}

				// Jobs operations: the rest of the minute's budget passes,
				// then one per interval.
				for i := range tt.perMinute - tt.active - 1 {
					if r := get(); r.status != http.StatusOK {
						t.Fatalf("operation %d: status %d, body %s", i, r.status, r.body)
					}
				}
				checkThrottled(t, get())
				time.Sleep(tt.interval)
				if r := get(); r.status != http.StatusOK {
					t.Errorf("after %v: status %d", tt.interval, r.status)
				}
				checkThrottled(t, get())
				st := h.ThrottleStats()
				if st.JobOpsAdmitted != int64(tt.perMinute)+1 || st.JobOpsThrottled != 2 {
					t.Errorf("ThrottleStats = %+v", st)
				}

				// Device operations: at the hour, the first job reaches
				// tt.devices devices in its first second.
				time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Hour)))
				time.Sleep(time.Second - time.Nanosecond)
				synctest.Wait()
				if n := len(h.Calls()); n != tt.devices {
					t.Errorf("%d device operations in the first second, want %d", n, tt.devices)
				}
			})
		})
	}
}

func TestThrottleJobsBasicTier(t *testing.T) {
	t.Parallel()
	h, c, owner := jobsHub(t, &Options{Throttle: &ThrottleOptions{Tier: TierB3}})
	for _, cl := range []call{
		{method: http.MethodGet, path: "/jobs/v2/query"},
		{method: http.MethodPut, path: "/jobs/v2/j", body: methodJobBody("j", "*", "")},
	} {
		cl.auth = owner
		got := decodeErr(t, send(t.Context(), t, h, c, cl))
		if got.Status != http.StatusForbidden || got.Code != 403010 {
			t.Errorf("%s %s: %+v, want 403 / 403010", cl.method, cl.path, got)
		}
	}
}
