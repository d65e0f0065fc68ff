package httpmock

import (
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// refusal is the part of an error answer the fleet-fault tests compare.
type refusal struct {
	Status int
	Code   int
	Header string
}

func refusalOf(t *testing.T, r result) refusal {
	t.Helper()
	e := decodeErr(t, r)
	return refusal{Status: e.Status, Code: e.Code, Header: e.Header}
}

var (
	suspended     = refusal{Status: http.StatusForbidden, Code: 403001, Header: "IotHubSuspended"}
	quotaExceeded = refusal{Status: http.StatusForbidden, Code: 403002, Header: "IotHubQuotaExceeded"}
	unauthorized  = refusal{Status: http.StatusUnauthorized, Code: 401002, Header: "IotHubUnauthorizedAccess"}
)

// fleetCalls are one request of each kind, signed by the iothubowner
// policy, which may do them all.
func fleetCalls(t *testing.T, h *Hub) map[string]call {
	owner := sasFor(t, h, "iothubowner")
	return map[string]call{
		"method":   {path: "/twins/d1/methods", body: methodBody("m", ""), auth: owner},
		"twin get": {method: http.MethodGet, path: "/twins/d1", auth: owner},
		"twin patch": {method: http.MethodPatch, path: "/twins/d1", auth: owner,
			body: `{"tags":{"a":1}}`, header: http.Header{"If-Match": {"*"}}},
		"registry get": {method: http.MethodGet, path: "/devices/d1", auth: owner},
		"query":        {path: "/devices/query", body: `{"query":"SELECT * FROM devices"}`, auth: owner},
		"job get":      {method: http.MethodGet, path: "/jobs/v2/nope", auth: owner},
	}
}

func TestSuspendRefusesEveryOperation(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	client := inProcess(h)
	h.Suspend()
	calls := fleetCalls(t, h)
	for name, c := range calls {
		r := send(t.Context(), t, h, client, c)
		if diff := cmp.Diff(suspended, refusalOf(t, r)); diff != "" {
			t.Errorf("%s while suspended (-want +got):\n%s", name, diff)
		}
	}
	// Authentication comes first: a bad token is still a 401.
	bad := send(t.Context(), t, h, client, call{path: "/twins/d1/methods", body: methodBody("m", ""), auth: "SharedAccessSignature sr=x"})
	if diff := cmp.Diff(unauthorized, refusalOf(t, bad)); diff != "" {
		t.Errorf("bad token while suspended (-want +got):\n%s", diff)
	}
	if got := h.Deliveries("d1", ""); got != 0 {
		t.Errorf("Deliveries while suspended = %d, want 0", got)
	}
	want := Refusals{Unauthorized: 1, Suspended: int64(len(calls))}
	if diff := cmp.Diff(want, h.Refusals()); diff != "" {
		t.Errorf("Refusals (-want +got):\n%s", diff)
	}

	h.Resume()
	if st, _ := methodResult(t, send(t.Context(), t, h, client, calls["method"])); st != 200 {
		t.Errorf("after Resume: device status %d, want 200", st)
	}
	if got := h.TotalDeliveries(); got != 1 {
		t.Errorf("TotalDeliveries after Resume = %d, want 1", got)
	}
}

func TestDailyQuota(t *testing.T) {
	t.Parallel()
	// Each call bills 2 messages (request and response, both under 4 KB),
	// so with a quota of 5 the third call exhausts it.
	h := New(&Options{HostName: "fleet-hub.azure-devices.net", DailyMessages: 5})
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	client := inProcess(h)
	for i := range 3 {
		if st, _ := methodResult(t, invoke(t.Context(), t, h, client, 100)); st != 200 {
			t.Fatalf("call %d: device status %d", i, st)
		}
	}
	if got := h.MessagesUsed(); got != 6 {
		t.Errorf("MessagesUsed = %d, want 6", got)
	}
	calls := fleetCalls(t, h)
	wantRefused := map[string]bool{"method": true, "twin get": true, "twin patch": true}
	for name, c := range calls {
		r := send(t.Context(), t, h, client, c)
		if !wantRefused[name] {
			if r.err != nil || r.status == http.StatusForbidden {
				t.Errorf("%s is not billed and must not be refused: %v %d %s", name, r.err, r.status, r.body)
			}
			continue
		}
		if diff := cmp.Diff(quotaExceeded, refusalOf(t, r)); diff != "" {
			t.Errorf("%s over quota (-want +got):\n%s", name, diff)
		}
	}
	msg := decodeErr(t, invoke(t.Context(), t, h, client, 100)).Message
	for _, want := range []string{"IotHub 'fleet-hub'", "Max allowed message count : '5', current message count : '6'", "until the next UTC day"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if got := h.Deliveries("d1", ""); got != 3 {
		t.Errorf("Deliveries = %d, want 3: nothing after the quota ran out", got)
	}
	if got := h.Refusals().QuotaExceeded; got != 4 {
		t.Errorf("Refusals().QuotaExceeded = %d, want 4", got)
	}

	h.ResetQuota()
	if st, _ := methodResult(t, invoke(t.Context(), t, h, client, 5000)); st != 200 {
		t.Errorf("after ResetQuota: device status %d", st)
	}
	// A 5,000-byte request is two messages, its echoed response two more.
	if got := h.MessagesUsed(); got != 4 {
		t.Errorf("MessagesUsed after ResetQuota and a 5 KB echo = %d, want 4", got)
	}
}

func TestQuotaBilling(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	h.AddDevice("off", &DeviceOptions{Offline: true})
	client := inProcess(h)
	steps := []struct {
		name string
		c    call
		want int64 // messages billed by this step
	}{
		{"method, small", call{path: "/twins/d1/methods", body: methodBody("m", `,"payload":1`)}, 2},
		{"method, 9 KB echoed", call{path: "/twins/d1/methods", body: methodBody("m", `,"payload":`+jsonString(9000))}, 6},
		{"method, offline device", call{path: "/twins/off/methods", body: methodBody("m", "")}, 1},
		{"method, unknown device", call{path: "/twins/nope/methods", body: methodBody("m", "")}, 0},
		{"twin get", call{method: http.MethodGet, path: "/twins/d1"}, 1},
		{"twin patch", call{method: http.MethodPatch, path: "/twins/d1", body: `{"tags":{"a":1}}`, header: http.Header{"If-Match": {"*"}}}, 1},
		{"query", call{path: "/devices/query", body: `{"query":"SELECT * FROM devices"}`}, 0},
	}
	for _, s := range steps {
		before := h.MessagesUsed()
		if r := send(t.Context(), t, h, client, s.c); r.err != nil {
			t.Fatalf("%s: %v", s.name, r.err)
		}
		if got := h.MessagesUsed() - before; got != s.want {
			t.Errorf("%s billed %d messages, want %d", s.name, got, s.want)
		}
	}

	// ExhaustQuota works without Options.DailyMessages.
	h.ExhaustQuota()
	if diff := cmp.Diff(quotaExceeded, refusalOf(t, invoke(t.Context(), t, h, client, 2))); diff != "" {
		t.Errorf("after ExhaustQuota (-want +got):\n%s", diff)
	}
}

func TestRevokePolicyAndRotateKey(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	client := inProcess(h)
	method := func(auth string) result {
		return send(t.Context(), t, h, client, call{path: "/twins/d1/methods", body: methodBody("m", ""), auth: auth})
	}

	oldService := sasFor(t, h, "service")
	oldKey, _ := h.Policy("service")
	newKey := h.RotateKey("service")
	if newKey == oldKey.Key {
		t.Fatal("RotateKey returned the old key")
	}
	if diff := cmp.Diff(unauthorized, refusalOf(t, method(oldService))); diff != "" {
		t.Errorf("token signed with the old key (-want +got):\n%s", diff)
	}
	if !strings.Contains(h.ConnectionString("service"), newKey) {
		t.Error("ConnectionString does not carry the new key")
	}
	if st, _ := methodResult(t, method(sasFor(t, h, "service"))); st != 200 {
		t.Errorf("token signed with the new key: device status %d", st)
	}

	owner := sasFor(t, h, "iothubowner")
	h.RevokePolicy("service")
	if _, ok := h.Policy("service"); ok {
		t.Error("Policy still finds the revoked policy")
	}
	svc := testSAS(h.HostName(), "service", newKey, time.Now().Add(time.Hour).Unix())
	if diff := cmp.Diff(unauthorized, refusalOf(t, method(svc))); diff != "" {
		t.Errorf("token of the revoked policy (-want +got):\n%s", diff)
	}
	if st, _ := methodResult(t, method(owner)); st != 200 {
		t.Errorf("another policy's token after the revocation: device status %d", st)
	}
	if got := h.Deliveries("d1", ""); got != 2 {
		t.Errorf("Deliveries = %d, want 2: the refused calls are not delivered", got)
	}
	if got := h.Refusals().Unauthorized; got != 2 {
		t.Errorf("Refusals().Unauthorized = %d, want 2", got)
	}

	for name, fn := range map[string]func(){
		"RevokePolicy": func() { h.RevokePolicy("service") },
		"RotateKey":    func() { h.RotateKey("nope") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s of an unknown policy did not panic", name)
				}
			}()
			fn()
		}()
	}
}

func TestSetMethodRate(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		// 10 calls a second, a bucket of one second, no queue.
		h := New(&Options{Throttle: &ThrottleOptions{MethodBytesPerSecond: 10 * MethodMeterSize, MethodBacklog: -1, RetryAfterEvery: -1}})
		h.AddDevice("d1", &DeviceOptions{Handler: echo})
		client := inProcess(h)
		// admitted makes calls one after the other until one is throttled
		// and returns how many went through.
		admitted := func() int {
			n := 0
			for {
				r := invoke(t.Context(), t, h, client, 100)
				if r.status == http.StatusTooManyRequests {
					checkThrottled(t, r)
					return n
				}
				methodResult(t, r)
				n++
			}
		}
		if got := admitted(); got != 10 {
			t.Errorf("at 10/s with a full bucket: %d admitted, want 10", got)
		}

		// Doubled: a second refills the one-second bucket at 20 a second.
		h.SetMethodRate(20 * MethodMeterSize)
		if got := h.MethodRate(); got != 20*MethodMeterSize {
			t.Errorf("MethodRate = %d, want %d", got, 20*MethodMeterSize)
		}
		time.Sleep(time.Second)
		if got := admitted(); got != 20 {
			t.Errorf("at 20/s after a second: %d admitted, want 20", got)
		}

		// Half a second at 20/s saves up 10 calls' worth of bytes; at 5/s
		// those bytes are two seconds, capped at the one-second bucket: 5.
		time.Sleep(500 * time.Millisecond)
		h.SetMethodRate(5 * MethodMeterSize)
		if got := admitted(); got != 5 {
			t.Errorf("saved-up budget rescaled to 5/s: %d admitted, want 5", got)
		}

		// Raised again with an empty bucket: half a second at 40/s is 20.
		h.SetMethodRate(40 * MethodMeterSize)
		time.Sleep(500 * time.Millisecond)
		if got := admitted(); got != 20 {
			t.Errorf("at 40/s after half a second: %d admitted, want 20", got)
		}
		if msg := decodeErr(t, invoke(t.Context(), t, h, client, 100)).Message; !strings.Contains(msg, "163840 bytes of payload per second") {
			t.Errorf("429 message %q does not name the new limit", msg)
		}
	})
}

func TestSetMethodRateKeepsTheQueue(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		// 10 calls a second, a bucket of one call, a queue of one second.
		h := New(&Options{Throttle: &ThrottleOptions{MethodBytesPerSecond: 10 * MethodMeterSize,
			MethodBurst: 100 * time.Millisecond, MethodBacklog: time.Second, RetryAfterEvery: -1}})
		h.AddDevice("d1", &DeviceOptions{Handler: echo})
		client := inProcess(h)
		start := time.Now()
		done := make(chan time.Duration, 3)
		for range 3 { // one at once, two queued: at 100 ms and 200 ms
			go func() {
				if r := invoke(t.Context(), t, h, client, 100); r.err != nil || r.status != http.StatusOK {
					t.Errorf("a queued call: %v, status %d", r.err, r.status)
				}
				done <- time.Since(start)
			}()
			synctest.Wait()
		}
		h.SetMethodRate(20 * MethodMeterSize)
		methodResult(t, invoke(t.Context(), t, h, client, 100))
		// The queue drains as scheduled (done by 200 ms); the next call
		// waits behind it and pays 50 ms at the new rate, not 100 ms.
		if got, want := time.Since(start), 250*time.Millisecond; got != want {
			t.Errorf("the call after the change went at %v, want %v", got, want)
		}
		var last time.Duration
		for range 3 {
			last = max(last, <-done)
		}
		if last != 200*time.Millisecond {
			t.Errorf("the queued calls finished at %v, want 200ms", last)
		}
	})
}

func TestSetMethodRatePanics(t *testing.T) {
	t.Parallel()
	for name, fn := range map[string]func(){
		"no throttle": func() { New(nil).SetMethodRate(4096) },
		"zero rate":   func() { New(&Options{Throttle: &ThrottleOptions{}}).SetMethodRate(0) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: SetMethodRate did not panic", name)
				}
			}()
			fn()
		}()
	}
}

func TestQuotaFailsJobDeviceOperations(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h, c, owner := jobsHub(t, nil)
		h.AddDevice("d1", &DeviceOptions{Handler: echo})
		h.AddDevice("d2", &DeviceOptions{Handler: echo})
		h.ExhaustQuota()
		// Jobs requests are not billed: the job is created and runs.
		jobWireOf(t, send(t.Context(), t, h, c, call{method: http.MethodPut, path: "/jobs/v2/j1", auth: owner,
			body: methodJobBody("j1", "deviceId IN ['d1','d2']", "")}))
		time.Sleep(5 * time.Second)
		synctest.Wait()
		rows := deviceRows(t, h, c, owner, "j1")
		got := map[string]string{}
		for id, row := range rows {
			got[id] = row.Status
			if row.Error != nil {
				got[id] += " " + row.Error.Code
			}
		}
		want := map[string]string{"d1": "failed IotHubQuotaExceeded", "d2": "failed IotHubQuotaExceeded"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("device rows (-want +got):\n%s", diff)
		}
		if n := h.TotalDeliveries(); n != 0 {
			t.Errorf("TotalDeliveries = %d, want 0", n)
		}
	})
}
