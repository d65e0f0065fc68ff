package iothubtest_test

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/registry"
	"github.com/hubkit/iothub/service"
)

// newClient returns a service client for the hub in process.
func newClient(t *testing.T, hub *iothubtest.Hub) *service.Client {
	t.Helper()
	c, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// outcome is what a test sees of one invocation.
type outcome struct {
	Status  int
	Payload string
	Code    iothub.ErrorCode // 0: no *iothub.Error
}

func outcomeOf(res service.MethodResult[json.RawMessage], err error) outcome {
	if err != nil {
		var e *iothub.Error
		if errors.As(err, &e) {
			return outcome{Code: e.Code}
		}
		return outcome{Payload: "error: " + err.Error()}
	}
	return outcome{Status: res.Status, Payload: string(res.Payload)}
}

func TestBehaviours(t *testing.T) {
	t.Parallel()
	okHandler := iothubtest.Answer(200, map[string]string{"ok": "yes"})
	tests := []struct {
		name      string
		opts      *iothubtest.DeviceOptions
		setup     func(hub *iothubtest.Hub, dev *iothubtest.Device)
		params    service.MethodParams[any]
		module    string
		want      outcome
		delivered int
		took      time.Duration // in the bubble's fake time
	}{
		{
			name:      "online with a handler",
			opts:      &iothubtest.DeviceOptions{Handler: okHandler},
			want:      outcome{Status: 200, Payload: `{"ok":"yes"}`},
			delivered: 1,
		},
		{
			name:      "no handler answers 501",
			want:      outcome{Status: iothubtest.NotImplementedStatus, Payload: "null"},
			delivered: 1,
		},
		{
			name:      "a fixed answer with an error status is data",
			opts:      &iothubtest.DeviceOptions{Handler: iothubtest.Answer(500, map[string]string{"error": "busy"})},
			want:      outcome{Status: 500, Payload: `{"error":"busy"}`},
			delivered: 1,
		},
		{
			name:      "echo",
			opts:      &iothubtest.DeviceOptions{Handler: iothubtest.Echo()},
			params:    service.MethodParams[any]{Payload: []int{1, 2}},
			want:      outcome{Status: 200, Payload: `[1,2]`},
			delivered: 1,
		},
		{
			name:   "offline after the connect timeout",
			opts:   &iothubtest.DeviceOptions{Offline: true, Handler: okHandler},
			params: service.MethodParams[any]{ConnectTimeoutInSeconds: 10},
			want:   outcome{Code: iothub.ErrorCodeDeviceNotOnline},
			took:   10 * time.Second,
		},
		{
			name: "offline, connecting in time",
			opts: &iothubtest.DeviceOptions{Offline: true, Handler: okHandler},
			setup: func(_ *iothubtest.Hub, dev *iothubtest.Device) {
				time.AfterFunc(4*time.Second, func() { dev.SetOnline(true) })
			},
			params:    service.MethodParams[any]{ConnectTimeoutInSeconds: 10},
			want:      outcome{Status: 200, Payload: `{"ok":"yes"}`},
			delivered: 1,
			took:      4 * time.Second,
		},
		{
			name:      "slow within the response timeout",
			opts:      &iothubtest.DeviceOptions{Latency: 3 * time.Second, Handler: okHandler},
			want:      outcome{Status: 200, Payload: `{"ok":"yes"}`},
			delivered: 1,
			took:      3 * time.Second,
		},
		{
			name:      "slower than the response timeout",
			opts:      &iothubtest.DeviceOptions{Latency: time.Minute, Handler: okHandler},
			params:    service.MethodParams[any]{TimeoutInSeconds: 5},
			want:      outcome{Code: iothub.ErrorCodeGatewayTimeout},
			delivered: 1,
			took:      5 * time.Second,
		},
		{
			name: "disabled",
			opts: &iothubtest.DeviceOptions{Disabled: true, Handler: okHandler},
			want: outcome{Code: iothub.ErrorCodeDeviceNotFound},
		},
		{
			name:      "lost answers",
			opts:      &iothubtest.DeviceOptions{Handler: okHandler},
			setup:     func(hub *iothubtest.Hub, _ *iothubtest.Device) { hub.AddFault(iothubtest.LostAnswers("dev", "")) },
			want:      outcome{Code: iothub.ErrorCodeGatewayTimeout},
			delivered: 1,
		},
		{
			name:      "a payload that is not JSON",
			opts:      &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, make(chan int))},
			want:      outcome{Code: iothub.ErrorCodeServerError},
			delivered: 1,
		},
		{
			name:      "an Edge device's $edgeAgent",
			opts:      &iothubtest.DeviceOptions{Edge: true},
			module:    "$edgeAgent",
			params:    service.MethodParams[any]{Name: "ping"},
			want:      outcome{Status: 200, Payload: "null"},
			delivered: 1,
		},
		{
			name:   "a module's own handler",
			module: "m1",
			setup: func(_ *iothubtest.Hub, dev *iothubtest.Device) {
				dev.AddModule("m1", &iothubtest.ModuleOptions{Handler: iothubtest.Echo()})
			},
			params:    service.MethodParams[any]{Payload: "hi"},
			want:      outcome{Status: 200, Payload: `"hi"`},
			delivered: 1,
		},
		{
			name:   "an offline module",
			module: "m1",
			setup: func(_ *iothubtest.Hub, dev *iothubtest.Device) {
				dev.AddModule("m1", &iothubtest.ModuleOptions{Offline: true})
			},
			want: outcome{Code: iothub.ErrorCodeDeviceNotOnline},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub := iothubtest.New(nil)
				defer hub.Close()
				dev := hub.AddDevice("dev", tt.opts)
				if tt.setup != nil {
					tt.setup(hub, dev)
				}
				client := newClient(t, hub)
				p := tt.params
				if p.Name == "" {
					p.Name = "reboot"
				}
				start := time.Now()
				var got outcome
				if tt.module == "" {
					got = outcomeOf(client.InvokeDeviceMethod(t.Context(), "dev", p, nil))
				} else {
					got = outcomeOf(client.InvokeModuleMethod(t.Context(), "dev", tt.module, p, nil))
				}
				took := time.Since(start)
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("outcome (-want +got):\n%s", diff)
				}
				if n := hub.Deliveries("dev", tt.module, p.Name); n != tt.delivered {
					t.Errorf("Deliveries = %d, want %d", n, tt.delivered)
				}
				if took != tt.took {
					t.Errorf("the call took %v of fake time, want %v", took, tt.took)
				}
			})
		})
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		fault     iothubtest.Fault
		want      outcome
		mayHave   bool
		requests  int
		delivered int
	}{
		{
			name:      "503 once is retried",
			fault:     iothubtest.Fault{Method: "reboot", Status: 503},
			want:      outcome{Status: 200, Payload: "null"},
			requests:  2,
			delivered: 1,
		},
		{
			name:      "429 with Retry-After is retried",
			fault:     iothubtest.Fault{DeviceID: "dev", Code: iothub.ErrorCodeThrottlingException, RetryAfter: 1500 * time.Millisecond, Times: 2},
			want:      outcome{Status: 200, Payload: "null"},
			requests:  3,
			delivered: 1,
		},
		{
			name:     "every call refused",
			fault:    iothubtest.Fault{Operation: iothubtest.OperationMethod, Code: iothub.ErrorCodeDeviceNotFound, Times: -1},
			want:     outcome{Code: iothub.ErrorCodeDeviceNotFound},
			requests: 1,
		},
		{
			name:      "an error after delivery",
			fault:     iothubtest.Fault{Method: "reboot", Status: 500, AfterDelivery: true},
			want:      outcome{Code: 500000},
			mayHave:   true,
			requests:  1,
			delivered: 1,
		},
		{
			name:      "a dropped connection after delivery",
			fault:     iothubtest.Fault{Method: "reboot", Drop: iothubtest.DropAfterDelivery},
			mayHave:   true,
			requests:  1,
			delivered: 1,
		},
		{
			name:     "a fault for another method",
			fault:    iothubtest.Fault{Method: "other", Status: 503, Times: -1},
			want:     outcome{Status: 200, Payload: "null"},
			requests: 1, delivered: 1,
		},
		{
			name:      "skip the first call",
			fault:     iothubtest.Fault{Method: "reboot", Skip: 1, Status: 503},
			want:      outcome{Status: 200, Payload: "null"},
			requests:  1,
			delivered: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub := iothubtest.New(nil)
				defer hub.Close()
				hub.AddDevice("dev", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, nil)})
				hub.AddFault(tt.fault)
				res, err := newClient(t, hub).InvokeDeviceMethod(t.Context(), "dev", service.MethodParams[any]{Name: "reboot"}, nil)
				got := outcomeOf(res, err)
				if tt.fault.Drop != iothubtest.DropNone {
					got.Payload = "" // a transport error; its text is the SDK's
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("outcome (-want +got):\n%s", diff)
				}
				if err != nil && iothub.MayHaveRun(err) != tt.mayHave {
					t.Errorf("MayHaveRun(%v) = %v, want %v", err, !tt.mayHave, tt.mayHave)
				}
				if n := len(hub.Requests()); n != tt.requests {
					t.Errorf("%d requests, want %d", n, tt.requests)
				}
				hub.ExpectDeliveries(t, map[iothubtest.Target]int{{DeviceID: "dev", Method: "reboot"}: tt.delivered})
			})
		})
	}
}

func TestRetryAfterHeader(t *testing.T) {
	t.Parallel()
	hub := iothubtest.New(nil)
	defer hub.Close()
	hub.AddDevice("dev", nil)
	hub.AddFault(iothubtest.Fault{Code: iothub.ErrorCodeThrottlingException, RetryAfter: 1500 * time.Millisecond})
	resp := rawInvoke(t, &http.Client{Transport: hub.RoundTripper()}, "https://"+hub.HostName(), hub.SASToken(iothubtest.PolicyService), "dev")
	got := []string{resp.status, resp.header.Get("Retry-After"), resp.header.Get("iothub-errorcode")}
	if diff := cmp.Diff([]string{"429", "2", "ThrottlingException"}, got); diff != "" {
		t.Errorf("status, Retry-After, iothub-errorcode (-want +got):\n%s", diff)
	}
}

func TestHubWideStates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		act  func(hub *iothubtest.Hub)
		want iothub.ErrorCode
	}{
		{"revoked policy", func(hub *iothubtest.Hub) { hub.RevokePolicy(iothubtest.PolicyService) }, iothub.ErrorCodeIotHubUnauthorizedAccess},
		{"rotated key", func(hub *iothubtest.Hub) { hub.RotateKey(iothubtest.PolicyService) }, iothub.ErrorCodeIotHubUnauthorizedAccess},
		{"exhausted quota", (*iothubtest.Hub).ExhaustQuota, iothub.ErrorCodeIotHubQuotaExceeded},
		{"suspended", (*iothubtest.Hub).Suspend, iothub.ErrorCodeIotHubSuspended},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hub := iothubtest.New(nil)
			defer hub.Close()
			hub.AddDevice("dev", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, nil)})
			client := newClient(t, hub)
			tt.act(hub)
			_, err := client.InvokeDeviceMethod(t.Context(), "dev", service.MethodParams[any]{Name: "reboot"}, nil)
			if got := outcomeOf(service.MethodResult[json.RawMessage]{}, err); got.Code != tt.want {
				t.Errorf("after %s: %v, want code %v", tt.name, err, tt.want)
			}
			if iothub.MayHaveRun(err) {
				t.Errorf("MayHaveRun(%v) = true, want false", err)
			}
			hub.ExpectDeliveries(t, nil)
		})
	}
}

func TestRecoveries(t *testing.T) {
	t.Parallel()
	hub := iothubtest.New(nil)
	defer hub.Close()
	hub.AddDevice("dev", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, nil)})
	invoke := func(cs string) error {
		c, err := service.NewClientFromConnectionString(cs, hub.ClientOptions())
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.InvokeDeviceMethod(t.Context(), "dev", service.MethodParams[any]{Name: "reboot"}, nil)
		return err
	}
	hub.RotateKey(iothubtest.PolicyService)
	if err := invoke(hub.ConnectionString()); err != nil {
		t.Errorf("with the rotated key: %v", err)
	}
	hub.Suspend()
	hub.Resume()
	hub.ExhaustQuota()
	hub.ResetQuota()
	if err := invoke(hub.ConnectionString()); err != nil {
		t.Errorf("after Resume and ResetQuota: %v", err)
	}
	hub.RevokePolicy(iothubtest.PolicyService)
	if err := invoke(hub.ConnectionStringFor(iothubtest.PolicyIoTHubOwner)); err != nil {
		t.Errorf("with iothubowner after revoking service: %v", err)
	}
	if err := invoke(hub.ConnectionStringFor(iothubtest.PolicyRegistryRead)); !errors.Is(err, iothub.ErrUnauthorized) {
		t.Errorf("with registryRead: %v, want iothub.ErrUnauthorized", err)
	}
	hub.ExpectDeliveries(t, map[iothubtest.Target]int{{DeviceID: "dev", Method: "reboot"}: 3})
}

func TestThrottleBasicTier(t *testing.T) {
	t.Parallel()
	hub := iothubtest.New(&iothubtest.Options{Throttle: &iothubtest.Throttle{Tier: service.TierB1}})
	defer hub.Close()
	hub.AddDevice("dev", nil)
	_, err := newClient(t, hub).InvokeDeviceMethod(t.Context(), "dev", service.MethodParams[any]{Name: "reboot"}, nil)
	if got := outcomeOf(service.MethodResult[json.RawMessage]{}, err); got.Code != iothub.ErrorCodeOperationNotAvailableInCurrentTier {
		t.Errorf("a method on B1: %v, want 403010", err)
	}
}

func TestThrottleRate(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		// One 4 KB call a second, a burst of one and no queue beyond it:
		// of 5 raw calls at once, some are refused with 429.
		hub := iothubtest.New(&iothubtest.Options{Throttle: &iothubtest.Throttle{MethodBytesPerSecond: 4096}})
		defer hub.Close()
		hub.AddDevice("dev", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, nil)})
		client := &http.Client{Transport: hub.RoundTripper()}
		tok := hub.SASToken(iothubtest.PolicyService)
		var mu sync.Mutex
		statuses := map[string]int{}
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				r := rawInvoke(t, client, "https://"+hub.HostName(), tok, "dev")
				mu.Lock()
				statuses[r.status]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if statuses["429"] == 0 || statuses["200"] == 0 || statuses["200"] != hub.Deliveries("dev", "", "") {
			t.Errorf("statuses %v with %d deliveries, want some 200 (each delivered) and some 429", statuses, hub.Deliveries("dev", "", ""))
		}
	})
}

// rawResult is what rawInvoke got.
type rawResult struct {
	status string
	header http.Header
	body   string
}

// rawInvoke invokes "reboot" on a device with plain net/http.
func rawInvoke(t *testing.T, client *http.Client, base, authz, deviceID string) rawResult {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/twins/"+deviceID+"/methods?api-version=2021-04-12",
		strings.NewReader(`{"methodName":"reboot","responseTimeoutInSeconds":5}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Authorization", authz)
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("raw invoke: %v", err)
		return rawResult{}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("raw invoke: read: %v", err)
	}
	return rawResult{status: fmt.Sprint(resp.StatusCode), header: resp.Header, body: string(b)}
}

func TestRawHTTP(t *testing.T) {
	t.Parallel()
	hub := iothubtest.New(nil)
	defer hub.Close()
	hub.AddDevice("dev", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(201, map[string]int{"n": 1})})
	client := &http.Client{Transport: hub.RoundTripper()}
	base := "https://" + hub.HostName()
	tests := []struct {
		name, authz, device string
		want                rawResult
	}{
		{"service policy", hub.SASToken(iothubtest.PolicyService), "dev", rawResult{status: "200", body: `{"status":201,"payload":{"n":1}}`}},
		{"owner policy", hub.SASToken(iothubtest.PolicyIoTHubOwner), "dev", rawResult{status: "200", body: `{"status":201,"payload":{"n":1}}`}},
		{"registry policy lacks ServiceConnect", hub.SASToken(iothubtest.PolicyRegistryReadWrite), "dev", rawResult{status: "401"}},
		{"no token", "", "dev", rawResult{status: "401"}},
		{"unknown device", hub.SASToken(iothubtest.PolicyService), "nobody", rawResult{status: "404"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := rawInvoke(t, client, base, tt.authz, tt.device)
			got.header = nil
			if tt.want.body == "" {
				got.body = ""
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(rawResult{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestServer(t *testing.T) {
	t.Parallel()
	srv := iothubtest.NewServer(t, nil)
	srv.AddDevice("dev", &iothubtest.DeviceOptions{Handler: iothubtest.Echo()})

	c, err := service.NewClientFromConnectionString(srv.ConnectionString(), srv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.InvokeDeviceMethod(t.Context(), "dev", service.MethodParams[any]{Name: "reboot", Payload: 7}, nil)
	if got := outcomeOf(res, err); got != (outcome{Status: 200, Payload: "7"}) {
		t.Errorf("through service.Client over TLS: %+v", got)
	}
	raw := rawInvoke(t, srv.Client(), srv.URL, srv.SASToken(iothubtest.PolicyService), "dev")
	if raw.status != "200" {
		t.Errorf("raw over TLS: %s %s", raw.status, raw.body)
	}
	// The in-process transport serves the same hub state.
	res, err = newClient(t, srv.Hub).InvokeDeviceMethod(t.Context(), "dev", service.MethodParams[any]{Name: "reboot"}, nil)
	if got := outcomeOf(res, err); got.Status != 200 {
		t.Errorf("in process: %+v", got)
	}
	srv.ExpectDeliveries(t, map[iothubtest.Target]int{{DeviceID: "dev", Method: "reboot"}: 3})

	block, _ := pem.Decode(srv.CertificatePEM())
	if block == nil {
		t.Fatal("CertificatePEM holds no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Equal(srv.Certificate()) {
		t.Error("CertificatePEM is not Certificate")
	}
	if err := cert.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if !strings.HasPrefix(srv.URL, "https://127.0.0.1:") {
		t.Errorf("URL = %q, want https://127.0.0.1:port", srv.URL)
	}
}

func TestHandler(t *testing.T) {
	t.Parallel()
	hub := iothubtest.New(nil)
	defer hub.Close()
	hub.AddDevice("dev", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, nil)})
	ts := httptest.NewTLSServer(hub.Handler())
	defer ts.Close()
	c, err := service.NewClientFromConnectionString(hub.ConnectionString(), &iothub.ClientOptions{Endpoint: ts.URL, Transport: ts.Client().Transport})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.InvokeDeviceMethod(t.Context(), "dev", service.MethodParams[any]{Name: "reboot"}, nil); err != nil {
		t.Fatal(err)
	}
	hub.ExpectDeliveries(t, map[iothubtest.Target]int{{DeviceID: "dev", Method: "reboot"}: 1})
}

// fakeTB records what ExpectDeliveries reports.
type fakeTB struct {
	testing.TB
	errors []string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

func TestExpectDeliveries(t *testing.T) {
	t.Parallel()
	hub := iothubtest.New(nil)
	defer hub.Close()
	hub.AddDevice("a", nil)
	hub.AddDevice("b", nil).AddModule("m", nil)
	client := newClient(t, hub)
	for _, call := range []struct{ dev, mod, method string }{{"a", "", "reboot"}, {"a", "", "reboot"}, {"b", "m", "ping"}} {
		var err error
		if call.mod == "" {
			_, err = client.InvokeDeviceMethod(t.Context(), call.dev, service.MethodParams[any]{Name: call.method}, nil)
		} else {
			_, err = client.InvokeModuleMethod(t.Context(), call.dev, call.mod, service.MethodParams[any]{Name: call.method}, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		want map[iothubtest.Target]int
		diff string // the report's lines, "" for none
	}{
		{"exact", map[iothubtest.Target]int{{DeviceID: "a", Method: "reboot"}: 2, {DeviceID: "b", ModuleID: "m", Method: "ping"}: 1}, ""},
		{"zeros are ignored", map[iothubtest.Target]int{{DeviceID: "a", Method: "reboot"}: 2, {DeviceID: "b", ModuleID: "m", Method: "ping"}: 1, {DeviceID: "c", Method: "x"}: 0}, ""},
		{"wrong count", map[iothubtest.Target]int{{DeviceID: "a", Method: "reboot"}: 1, {DeviceID: "b", ModuleID: "m", Method: "ping"}: 1},
			"-\t{DeviceID: \"a\", ModuleID: \"\", Method: \"reboot\"}: 1\n+\t{DeviceID: \"a\", ModuleID: \"\", Method: \"reboot\"}: 2\n"},
		{"an unexpected delivery", map[iothubtest.Target]int{{DeviceID: "a", Method: "reboot"}: 2},
			"+\t{DeviceID: \"b\", ModuleID: \"m\", Method: \"ping\"}: 1\n"},
		{"a missing delivery, and targets in order", map[iothubtest.Target]int{{DeviceID: "c", Method: "x"}: 1},
			"+\t{DeviceID: \"a\", ModuleID: \"\", Method: \"reboot\"}: 2\n" +
				"+\t{DeviceID: \"b\", ModuleID: \"m\", Method: \"ping\"}: 1\n" +
				"-\t{DeviceID: \"c\", ModuleID: \"\", Method: \"x\"}: 1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeTB{TB: t}
			hub.ExpectDeliveries(f, tt.want)
			var want []string
			if tt.diff != "" {
				want = []string{"iothubtest: deliveries of " + hub.HostName() + " (-want +got):\n" + tt.diff}
			}
			if diff := cmp.Diff(want, f.errors); diff != "" {
				t.Errorf("ExpectDeliveries reported (-want +got):\n%s", diff)
			}
		})
	}
	for _, c := range []struct {
		dev, mod, method string
		want             int
	}{{"a", "", "reboot", 2}, {"a", "", "", 2}, {"b", "", "", 0}, {"b", "m", "", 1}, {"b", "m", "reboot", 0}} {
		if got := hub.Deliveries(c.dev, c.mod, c.method); got != c.want {
			t.Errorf("Deliveries(%q, %q, %q) = %d, want %d", c.dev, c.mod, c.method, got, c.want)
		}
	}
	calls := hub.Calls()
	var got []string
	for _, c := range calls {
		got = append(got, c.DeviceID+"/"+c.ModuleID+"/"+c.Method)
	}
	if diff := cmp.Diff([]string{"a//reboot", "a//reboot", "b/m/ping"}, got); diff != "" {
		t.Errorf("Calls (-want +got):\n%s", diff)
	}
}

func TestMaxRecorded(t *testing.T) {
	t.Parallel()
	hub := iothubtest.New(&iothubtest.Options{MaxRecorded: 2})
	defer hub.Close()
	hub.AddDevice("dev", nil)
	client := newClient(t, hub)
	for range 5 {
		if _, err := client.InvokeDeviceMethod(t.Context(), "dev", service.MethodParams[any]{Name: "reboot"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := []int{len(hub.Calls()), len(hub.Requests()), hub.Deliveries("dev", "", "reboot")}; !cmp.Equal(got, []int{2, 2, 5}) {
		t.Errorf("calls, requests, deliveries = %v, want [2 2 5]", got)
	}
	r := hub.Requests()[1]
	if r.Method != http.MethodPost || r.Path != "/twins/dev/methods" || r.RawQuery != "api-version=2021-04-12" || !strings.Contains(string(r.Body), `"reboot"`) {
		t.Errorf("recorded request %+v", r)
	}
}

func TestTwins(t *testing.T) {
	t.Parallel()
	hub := iothubtest.New(nil)
	defer hub.Close()
	dev := hub.AddDevice("dev", &iothubtest.DeviceOptions{
		Tags:    map[string]any{"ring": "canary", "site": map[string]any{"id": 7}},
		Desired: map[string]any{"interval": 60},
		ModelID: "dtmi:com:example:Thermostat;1",
	})
	dev.AddModule("m", &iothubtest.ModuleOptions{Tags: map[string]any{"role": "agent"}})
	if err := dev.SetReported(map[string]any{"firmware": "1.0"}); err != nil {
		t.Fatal(err)
	}
	if err := dev.SetReported(map[string]any{"bad": []int{1}}); err == nil {
		t.Error("SetReported with an array: nil error")
	}

	reg, err := registry.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	// The code under test reads the seeded twin and patches it.
	rt, err := reg.GetTwin(t.Context(), "dev", nil)
	if err != nil {
		t.Fatal(err)
	}
	if rt.Tags["ring"] != "canary" {
		t.Errorf("registry sees tags %v", rt.Tags)
	}
	if rt.ModelID != "dtmi:com:example:Thermostat;1" {
		t.Errorf("registry sees modelId %q", rt.ModelID)
	}
	if _, err := reg.UpdateTwin(t.Context(), "dev", registry.TwinPatch{Tags: map[string]any{"ring": nil, "wave": 2}, Desired: map[string]any{"interval": 30}}, nil); err != nil {
		t.Fatal(err)
	}

	got, ok := hub.Twin("dev")
	if !ok {
		t.Fatal("Twin(dev): not found")
	}
	if got.ETag == "" {
		t.Error("Twin has no ETag")
	}
	got.ETag = ""
	want := iothubtest.Twin{
		DeviceID:        "dev",
		Tags:            map[string]any{"site": map[string]any{"id": 7.0}, "wave": 2.0},
		Desired:         map[string]any{"interval": 30.0},
		Reported:        map[string]any{"firmware": "1.0"},
		DesiredVersion:  3,
		ReportedVersion: 2,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Twin (-want +got):\n%s", diff)
	}
	mt, ok := hub.ModuleTwin("dev", "m")
	if !ok || !cmp.Equal(mt.Tags, map[string]any{"role": "agent"}) || mt.ModuleID != "m" {
		t.Errorf("ModuleTwin = %+v, %v", mt, ok)
	}
	if _, ok := hub.Twin("nobody"); ok {
		t.Error("Twin(nobody) found")
	}
	if _, ok := hub.ModuleTwin("dev", "nobody"); ok {
		t.Error("ModuleTwin(dev, nobody) found")
	}
}

func TestRegistryCreatedDevice(t *testing.T) {
	t.Parallel()
	hub := iothubtest.New(nil)
	defer hub.Close()
	reg, err := registry.NewClientFromConnectionString(hub.ConnectionStringFor(iothubtest.PolicyIoTHubOwner), hub.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateDevice(t.Context(), registry.Device{DeviceID: "new-1"}, nil); err != nil {
		t.Fatal(err)
	}
	dev := hub.Device("new-1")
	if dev == nil {
		t.Fatal("Device(new-1) = nil after CreateDevice")
	}
	if diff := cmp.Diff([]string{"new-1"}, hub.DeviceIDs()); diff != "" {
		t.Errorf("DeviceIDs (-want +got):\n%s", diff)
	}
	client := newClient(t, hub)
	_, err = client.InvokeDeviceMethod(t.Context(), "new-1", service.MethodParams[any]{Name: "reboot"}, nil)
	if !errors.Is(err, iothub.ErrDeviceNotOnline) {
		t.Errorf("a device created through the registry: %v, want not online", err)
	}
	dev.SetOnline(true)
	dev.HandleMethod("reboot", iothubtest.Answer(200, nil))
	if _, err := client.InvokeDeviceMethod(t.Context(), "new-1", service.MethodParams[any]{Name: "reboot"}, nil); err != nil {
		t.Errorf("after SetOnline: %v", err)
	}
	if !hub.RemoveDevice("new-1") || hub.Device("new-1") != nil {
		t.Error("RemoveDevice did not remove new-1")
	}
}

func TestPanics(t *testing.T) {
	t.Parallel()
	hub := iothubtest.New(nil)
	defer hub.Close()
	hub.AddDevice("dup", nil)
	tests := []struct {
		name string
		fn   func()
	}{
		{"duplicate device", func() { hub.AddDevice("dup", nil) }},
		{"empty device id", func() { hub.AddDevice("", nil) }},
		{"tags with an array", func() { hub.AddDevice("x", &iothubtest.DeviceOptions{Tags: map[string]any{"a": []int{1}}}) }},
		{"unknown operation", func() { hub.AddFault(iothubtest.Fault{Operation: "c2d"}) }},
		{"unknown drop", func() { hub.AddFault(iothubtest.Fault{Drop: 9}) }},
		{"unknown policy", func() { hub.ConnectionStringFor("nobody") }},
		{"unknown policy token", func() { hub.SASToken("nobody") }},
		{"duplicate module", func() { hub.Device("dup").AddModule("m", nil); hub.Device("dup").AddModule("m", nil) }},
		{"empty module id", func() { hub.Device("dup").AddModule("", nil) }},
		{"unknown tier", func() { iothubtest.New(&iothubtest.Options{Throttle: &iothubtest.Throttle{Tier: "X9"}}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatalf("%s did not panic", tt.name)
				}
				// Users never import the engine: the message names this
				// package, never the internal one.
				if msg := fmt.Sprint(r); !strings.HasPrefix(msg, "iothubtest: ") || strings.Contains(msg, "httpmock") {
					t.Errorf("panic %q, want it to start with \"iothubtest: \" and not name httpmock", msg)
				}
			}()
			tt.fn()
		})
	}
}

// TestErrorTextsNameThisPackage: the errors and answers of the fake that a
// user reads name iothubtest, never the internal engine.
func TestErrorTextsNameThisPackage(t *testing.T) {
	t.Parallel()
	hub := iothubtest.New(nil)
	defer hub.Close()
	hub.AddDevice("d1", &iothubtest.DeviceOptions{Handler: iothubtest.Echo()})
	hub.AddFault(iothubtest.Fault{Operation: iothubtest.OperationMethod, Drop: iothubtest.DropAfterDelivery})
	client := &http.Client{Transport: hub.RoundTripper()}
	do := func(method, path, body string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(t.Context(), method, "https://"+hub.HostName()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", hub.SASToken(iothubtest.PolicyService))
		req.Header.Set("Content-Type", "application/json")
		return client.Do(req)
	}

	// A connection the fault breaks.
	_, err := do(http.MethodPost, "/twins/d1/methods?api-version=2021-04-12", `{"methodName":"m"}`)
	if err == nil {
		t.Fatal("the dropped call succeeded")
	}
	if msg := err.Error(); !strings.Contains(msg, "iothubtest: connection broken") || strings.Contains(msg, "httpmock") {
		t.Errorf("broken connection: %q, want it to say \"iothubtest: connection broken\" and not name httpmock", msg)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("broken connection: %v, want it to match io.ErrUnexpectedEOF", err)
	}
}

func TestClientOptionsAreFresh(t *testing.T) {
	t.Parallel()
	hub := iothubtest.New(nil)
	defer hub.Close()
	a := hub.ClientOptions()
	a.APIVersion = "changed"
	if hub.ClientOptions().APIVersion != "" {
		t.Error("ClientOptions shares its value between calls")
	}
	hub.Close() // Close twice is fine.
}

func TestTokenCredential(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		role iothubtest.Role
		want outcome
	}{
		{"data contributor", iothubtest.RoleDataContributor, outcome{Status: 200, Payload: "null"}},
		{"twin contributor", iothubtest.RoleTwinContributor, outcome{Code: 401003}},
		{"data reader", iothubtest.RoleDataReader, outcome{Code: 401003}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hub := iothubtest.New(nil)
			defer hub.Close()
			hub.AddDevice("dev", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, nil)})
			c, err := service.NewClient(hub.HostName(), hub.TokenCredential(tt.role), hub.ClientOptions())
			if err != nil {
				t.Fatal(err)
			}
			got := outcomeOf(c.InvokeDeviceMethod(t.Context(), "dev", service.MethodParams[any]{Name: "reboot"}, nil))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestPlugAndPlayCommand sends a component command as another SDK would,
// over raw net/http: the device's handler for "thermostat1*getMaxMinReport"
// answers it, the answer carries the status in x-ms-command-statuscode and
// the payload as the body, and the hub records it as that method call.
func TestPlugAndPlayCommand(t *testing.T) {
	t.Parallel()
	hub := iothubtest.New(nil)
	defer hub.Close()
	hub.AddDevice("tc-1", &iothubtest.DeviceOptions{ModelID: "dtmi:com:example:TemperatureController;2"}).
		HandleMethod("thermostat1*getMaxMinReport", iothubtest.Echo())
	raw := &http.Client{Transport: hub.RoundTripper()}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
		"https://"+hub.HostName()+"/digitaltwins/tc-1/components/thermostat1/commands/getMaxMinReport?api-version=2021-04-12&responseTimeoutInSeconds=10",
		strings.NewReader(`"2026-01-01T00:00:00Z"`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", hub.SASToken(iothubtest.PolicyService))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := raw.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{resp.Status, resp.Header.Get("x-ms-command-statuscode"), string(body)}
	if diff := cmp.Diff([]string{"200 OK", "200", `"2026-01-01T00:00:00Z"`}, got); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	if resp.Header.Get("x-ms-request-id") == "" {
		t.Error("no x-ms-request-id")
	}
	hub.ExpectDeliveries(t, map[iothubtest.Target]int{{DeviceID: "tc-1", Method: "thermostat1*getMaxMinReport"}: 1})
	if calls := hub.Calls(); len(calls) != 1 || calls[0].ResponseTimeout != 10*time.Second {
		t.Errorf("calls = %+v", calls)
	}
}
