package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/auth"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/service"
)

// setup returns a simulated hub and a client wired to it in process, signed
// with the hub's "service" policy. Inside a synctest bubble, call it inside
// the bubble.
func setup(t *testing.T, opts *iothub.ClientOptions) (*httpmock.Hub, *service.Client) {
	t.Helper()
	hub := httpmock.New(nil)
	o := iothub.ClientOptions{}
	if opts != nil {
		o = *opts
	}
	o.Transport = hub.RoundTripper()
	o.Retry.MinDelay = time.Millisecond
	client, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), &o)
	if err != nil {
		t.Fatal(err)
	}
	return hub, client
}

// respond answers every call with status and payload.
func respond(status int, payload string) httpmock.MethodHandler {
	return func(context.Context, httpmock.MethodCall) httpmock.MethodResponse {
		var p json.RawMessage
		if payload != "" {
			p = json.RawMessage(payload)
		}
		return httpmock.MethodResponse{Status: status, Payload: p}
	}
}

func echo(_ context.Context, c httpmock.MethodCall) httpmock.MethodResponse {
	return httpmock.MethodResponse{Status: 200, Payload: c.Payload}
}

func TestInvokeWire(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		deviceID string
		moduleID string
		params   service.MethodParams[any]
		wantPath string
		wantBody string
	}{
		{
			name: "device defaults", deviceID: "dev-1",
			params:   service.MethodParams[any]{Name: "reboot"},
			wantPath: "/twins/dev-1/methods",
			wantBody: `{"methodName":"reboot","payload":null}`,
		},
		{
			name: "device timeouts and payload", deviceID: "dev-1",
			params:   service.MethodParams[any]{Name: "firmwareUpdate", Payload: map[string]any{"url": "https://x/fw.bin", "force": true}, TimeoutInSeconds: 60, ConnectTimeoutInSeconds: 10},
			wantPath: "/twins/dev-1/methods",
			wantBody: `{"methodName":"firmwareUpdate","payload":{"force":true,"url":"https://x/fw.bin"},"responseTimeoutInSeconds":60,"connectTimeoutInSeconds":10}`,
		},
		{
			name: "escaped ids", deviceID: "a+b%c#d", moduleID: "$edgeAgent",
			params:   service.MethodParams[any]{Name: "RestartModule", Payload: json.RawMessage(` { "id" : "tempSensor" } `)},
			wantPath: "/twins/a%2Bb%25c%23d/modules/%24edgeAgent/methods",
			wantBody: `{"methodName":"RestartModule","payload":{"id":"tempSensor"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hub, client := setup(t, nil)
			d := hub.AddDevice(tt.deviceID, &httpmock.DeviceOptions{Handler: respond(200, `{}`)})
			var err error
			if tt.moduleID != "" {
				d.AddModule(tt.moduleID).SetDefaultHandler(respond(200, `{}`))
				_, err = client.InvokeModuleMethod(t.Context(), tt.deviceID, tt.moduleID, tt.params, nil)
			} else {
				_, err = client.InvokeDeviceMethod(t.Context(), tt.deviceID, tt.params, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			reqs := hub.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			got := map[string]string{
				"method":       r.Method,
				"path":         r.Path,
				"query":        r.RawQuery,
				"body":         string(r.Body),
				"content-type": r.Header.Get("Content-Type"),
				"user-agent":   strings.SplitN(r.Header.Get("User-Agent"), " ", 2)[0],
				"auth-scheme":  strings.SplitN(r.Header.Get("Authorization"), " ", 2)[0],
			}
			want := map[string]string{
				"method":       "POST",
				"path":         tt.wantPath,
				"query":        "api-version=2021-04-12",
				"body":         tt.wantBody,
				"content-type": "application/json; charset=utf-8",
				"user-agent":   "github.com/hubkit/iothub/" + iothub.Version,
				"auth-scheme":  "SharedAccessSignature",
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			if r.Header.Get("Request-Id") == "" {
				t.Error("no Request-Id header")
			}
			if n := hub.Deliveries(tt.deviceID, tt.moduleID); n != 1 {
				t.Errorf("deliveries = %d, want 1", n)
			}
		})
	}
}

func TestPayloadsTravelBothWays(t *testing.T) {
	t.Parallel()
	hub, client := setup(t, nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
	for _, payload := range []string{`{"a":[1,2,{"b":null}]}`, `[1,"two",3.5]`, `"just a string"`, `42`, `-1.5e3`, `true`, `null`} {
		res, err := client.InvokeDeviceMethod(t.Context(), "d1", service.MethodParams[any]{Name: "echo", Payload: json.RawMessage(payload)}, nil)
		if err != nil {
			t.Fatalf("payload %s: %v", payload, err)
		}
		if diff := cmp.Diff(payload, string(res.Payload)); diff != "" || res.Status != 200 {
			t.Errorf("payload %s: status %d, (-want +got):\n%s", payload, res.Status, diff)
		}
	}
}

func TestDeviceStatusIsData(t *testing.T) {
	t.Parallel()
	hub, client := setup(t, nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: respond(500, `{"error":"disk full"}`)})
	hub.AddDevice("d2", &httpmock.DeviceOptions{Handler: respond(404, ``)})
	res, err := client.InvokeDeviceMethod(t.Context(), "d1", service.MethodParams[any]{Name: "reboot"}, nil)
	if err != nil {
		t.Fatalf("a device's 500 is a result, not an error: %v", err)
	}
	if diff := cmp.Diff(service.MethodResult[json.RawMessage]{Status: 500, Payload: json.RawMessage(`{"error":"disk full"}`)}, res); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	res, err = client.InvokeDeviceMethod(t.Context(), "d2", service.MethodParams[any]{Name: "reboot"}, nil)
	if err != nil || res.Status != 404 || string(res.Payload) != "null" {
		t.Errorf("device answering 404 with no payload: %+v, %v", res, err)
	}
	// A method the device has no handler for: the simulated device answers 501.
	hub.AddDevice("d3", nil)
	res, err = client.InvokeDeviceMethod(t.Context(), "d3", service.MethodParams[any]{Name: "nope"}, nil)
	if err != nil || res.Status != 501 {
		t.Errorf("unhandled method: %+v, %v", res, err)
	}
}

type rebootRequest struct {
	Delay int    `json:"delay"`
	Mode  string `json:"mode,omitempty"`
}

type rebootStatus struct {
	Rebooting bool `json:"rebooting"`
	Delay     int  `json:"delay"`
}

func TestTypedInvoke(t *testing.T) {
	t.Parallel()
	hub, client := setup(t, nil)
	handler := func(_ context.Context, c httpmock.MethodCall) httpmock.MethodResponse {
		var req rebootRequest
		if err := json.Unmarshal(c.Payload, &req); err != nil {
			return httpmock.MethodResponse{Status: 400}
		}
		out, _ := json.Marshal(rebootStatus{Rebooting: true, Delay: req.Delay})
		return httpmock.MethodResponse{Status: 200, Payload: out}
	}
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: handler}).AddModule("m1").SetDefaultHandler(handler)

	res, err := service.InvokeDevice[rebootStatus](t.Context(), client, "d1", service.MethodParams[rebootRequest]{Name: "reboot", Payload: rebootRequest{Delay: 7}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(service.MethodResult[rebootStatus]{Status: 200, Payload: rebootStatus{Rebooting: true, Delay: 7}}, res); diff != "" {
		t.Errorf("device (-want +got):\n%s", diff)
	}
	mres, err := service.InvokeModule[rebootStatus](t.Context(), client, "d1", "m1", service.MethodParams[rebootRequest]{Name: "reboot", Payload: rebootRequest{Delay: 3}}, nil)
	if err != nil || mres.Payload.Delay != 3 {
		t.Errorf("module: %+v, %v", mres, err)
	}
	if got := string(hub.Calls()[0].Payload); got != `{"delay":7}` {
		t.Errorf("device got payload %s", got)
	}
}

func TestTypedPayloadThatDoesNotDecode(t *testing.T) {
	t.Parallel()
	hub, client := setup(t, nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: respond(202, `"rebooting soon"`)})
	res, err := service.InvokeDevice[rebootStatus](t.Context(), client, "d1", service.MethodParams[any]{Name: "reboot"}, nil)
	pe, ok := errors.AsType[*service.PayloadError](err)
	if !ok {
		t.Fatalf("want *PayloadError, got %v", err)
	}
	if res.Status != 202 || pe.Status != 202 || string(pe.Payload) != `"rebooting soon"` {
		t.Errorf("result %+v, error %+v", res, pe)
	}
	if !iothub.MayHaveRun(err) || !strings.Contains(err.Error(), "the method ran") {
		t.Errorf("a payload error must say the method ran: %v", err)
	}
	// The untyped form takes any JSON.
	raw, err := client.InvokeDeviceMethod(t.Context(), "d1", service.MethodParams[any]{Name: "reboot"}, nil)
	if err != nil || string(raw.Payload) != `"rebooting soon"` {
		t.Errorf("untyped: %+v, %v", raw, err)
	}
}

func TestValidationSendsNothing(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 129)
	big := strings.Repeat("a", service.MaxPayloadBytes)
	tests := []struct {
		name      string
		device    string
		module    string
		useModule bool
		params    service.MethodParams[any]
		field     string
	}{
		{"empty device", "", "", false, service.MethodParams[any]{Name: "m"}, "deviceID"},
		{"long device", long, "", false, service.MethodParams[any]{Name: "m"}, "deviceID"},
		{"bad device char", "a/b", "", false, service.MethodParams[any]{Name: "m"}, "deviceID"},
		{"empty module", "d1", "", true, service.MethodParams[any]{Name: "m"}, "moduleID"},
		{"long module", "d1", long, true, service.MethodParams[any]{Name: "m"}, "moduleID"},
		{"empty name", "d1", "", false, service.MethodParams[any]{}, "MethodParams.Name"},
		{"name with space", "d1", "", false, service.MethodParams[any]{Name: "re boot"}, "MethodParams.Name"},
		{"name with slash", "d1", "", false, service.MethodParams[any]{Name: "a/b"}, "MethodParams.Name"},
		{"timeout 4", "d1", "", false, service.MethodParams[any]{Name: "m", TimeoutInSeconds: 4}, "MethodParams.TimeoutInSeconds"},
		{"timeout 301", "d1", "", false, service.MethodParams[any]{Name: "m", TimeoutInSeconds: 301}, "MethodParams.TimeoutInSeconds"},
		{"timeout negative", "d1", "", false, service.MethodParams[any]{Name: "m", TimeoutInSeconds: -1}, "MethodParams.TimeoutInSeconds"},
		{"connect timeout negative", "d1", "", false, service.MethodParams[any]{Name: "m", ConnectTimeoutInSeconds: -1}, "MethodParams.ConnectTimeoutInSeconds"},
		{"connect timeout 301", "d1", "", false, service.MethodParams[any]{Name: "m", ConnectTimeoutInSeconds: 301}, "MethodParams.ConnectTimeoutInSeconds"},
		{"payload does not marshal", "d1", "", false, service.MethodParams[any]{Name: "m", Payload: make(chan int)}, "MethodParams.Payload"},
		{"raw payload invalid", "d1", "", false, service.MethodParams[any]{Name: "m", Payload: json.RawMessage(`{"a":`)}, "MethodParams.Payload"},
		{"payload too big", "d1", "", false, service.MethodParams[any]{Name: "m", Payload: big}, "MethodParams.Payload"},
	}
	hub, client := setup(t, nil)
	hub.AddDevice("d1", nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.useModule {
				_, err = client.InvokeModuleMethod(t.Context(), tt.device, tt.module, tt.params, nil)
			} else {
				_, err = client.InvokeDeviceMethod(t.Context(), tt.device, tt.params, nil)
			}
			ae, ok := errors.AsType[*iothub.ArgumentError](err)
			if !ok {
				t.Fatalf("want *iothub.ArgumentError, got %v", err)
			}
			if ae.Field != tt.field || !strings.Contains(err.Error(), tt.field) || ae.Rule == "" {
				t.Errorf("error %q names field %q, want %q", err, ae.Field, tt.field)
			}
			if !errors.Is(err, iothub.ErrInvalidArgument) || iothub.MayHaveRun(err) {
				t.Errorf("want ErrInvalidArgument and not run: %v", err)
			}
		})
	}
	if n := len(hub.Requests()); n != 0 {
		t.Errorf("%d requests sent, want 0", n)
	}
	// The boundaries themselves are accepted.
	hub.AddDevice(strings.Repeat("x", 128), &httpmock.DeviceOptions{Handler: echo})
	for _, p := range []service.MethodParams[any]{
		{Name: "m", TimeoutInSeconds: 5, ConnectTimeoutInSeconds: 0},
		{Name: "m", TimeoutInSeconds: 300, ConnectTimeoutInSeconds: 300},
		{Name: "m", Payload: strings.Repeat("a", service.MaxPayloadBytes-2)},
	} {
		if _, err := client.InvokeDeviceMethod(t.Context(), strings.Repeat("x", 128), p, nil); err != nil {
			t.Errorf("params %+v: %v", p.TimeoutInSeconds, err)
		}
	}
}

func TestHubErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		setup     func(*httpmock.Hub)
		module    string
		want      error
		code      iothub.ErrorCode
		delivered int
		unknown   bool
	}{
		{"not registered", func(*httpmock.Hub) {}, "", iothub.ErrDeviceNotFound, iothub.ErrorCodeDeviceNotFound, 0, false},
		{"disabled", func(h *httpmock.Hub) { h.AddDevice("d1", &httpmock.DeviceOptions{Disabled: true}) }, "", iothub.ErrDeviceNotFound, iothub.ErrorCodeDeviceNotFound, 0, false},
		{"module not registered", func(h *httpmock.Hub) { h.AddDevice("d1", nil) }, "m1", iothub.ErrModuleNotFound, iothub.ErrorCodeModuleNotFound, 0, false},
		{"offline", func(h *httpmock.Hub) { h.AddDevice("d1", &httpmock.DeviceOptions{Offline: true}) }, "", iothub.ErrDeviceNotOnline, iothub.ErrorCodeDeviceNotOnline, 0, false},
		{"slow device", func(h *httpmock.Hub) { h.AddDevice("d1", &httpmock.DeviceOptions{Latency: time.Minute}) }, "", iothub.ErrGatewayTimeout, iothub.ErrorCodeGatewayTimeout, 1, true},
		{"lost response", func(h *httpmock.Hub) {
			h.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
			h.AddFault(httpmock.Fault{DeviceID: "d1", AfterDelivery: true, Times: -1})
		}, "", iothub.ErrGatewayTimeout, iothub.ErrorCodeGatewayTimeout, 1, true},
		{"server error after delivery", func(h *httpmock.Hub) {
			h.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
			h.AddFault(httpmock.Fault{Code: 500001, AfterDelivery: true, Times: -1})
		}, "", iothub.ErrOutcomeUnknown, iothub.ErrorCodeServerError, 1, true},
		{"throttled throughout", func(h *httpmock.Hub) {
			h.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
			h.AddFault(httpmock.Fault{Code: 429001, Times: -1})
		}, "", iothub.ErrThrottled, iothub.ErrorCodeThrottlingException, 0, false},
		{"legacy error shape", func(h *httpmock.Hub) {
			h.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
			h.AddFault(httpmock.Fault{Code: 403002, Shape: httpmock.ShapeLegacy, Times: -1})
		}, "", iothub.ErrForbidden, iothub.ErrorCodeIotHubQuotaExceeded, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub, client := setup(t, nil)
				tt.setup(hub)
				var err error
				if tt.module != "" {
					_, err = client.InvokeModuleMethod(t.Context(), "d1", tt.module, service.MethodParams[any]{Name: "m"}, nil)
				} else {
					_, err = client.InvokeDeviceMethod(t.Context(), "d1", service.MethodParams[any]{Name: "m"}, nil)
				}
				he, ok := errors.AsType[*iothub.Error](err)
				if !ok {
					t.Fatalf("want *iothub.Error, got %v", err)
				}
				if !errors.Is(err, tt.want) || he.Code != tt.code {
					t.Errorf("err = %v; want %v with code %d", err, tt.want, tt.code)
				}
				if he.TrackingID == "" || he.CodeName != tt.code.Name() || he.Operation == "" || he.DeviceID != "d1" {
					t.Errorf("incomplete error: %+v", he)
				}
				if got := iothub.MayHaveRun(err); got != tt.unknown {
					t.Errorf("MayHaveRun = %v, want %v", got, tt.unknown)
				}
				if got := hub.Deliveries("d1", tt.module); got != tt.delivered {
					t.Errorf("deliveries = %d, want %d", got, tt.delivered)
				}
			})
		})
	}
}

func TestRetriesNeverDuplicate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		fault        httpmock.Fault
		opts         *service.InvokeOptions
		wantErr      bool
		wantRecorded int // requests that reached the hub
		wantDelivers int
	}{
		{"throttled twice then ok", httpmock.Fault{Code: 429001, Times: 2}, nil, false, 3, 1},
		{"throttled with Retry-After", httpmock.Fault{Code: 429001, RetryAfter: "2"}, nil, false, 2, 1},
		{"server busy then ok", httpmock.Fault{Code: 503005}, nil, false, 2, 1},
		{"connection reset before write", httpmock.Fault{Drop: httpmock.DropBeforeWrite}, nil, false, 1, 1},
		{"lost response is not retried", httpmock.Fault{AfterDelivery: true}, nil, true, 1, 1},
		{"connection broken after delivery is not retried", httpmock.Fault{Drop: httpmock.DropAfterDelivery}, nil, true, 1, 1},
		{"connection broken after read is not retried", httpmock.Fault{Drop: httpmock.DropAfterRead}, nil, true, 1, 0},
		{"500 is not retried", httpmock.Fault{Code: 500001}, nil, true, 1, 0},
		{"idempotent: lost response retried", httpmock.Fault{AfterDelivery: true}, &service.InvokeOptions{Idempotent: true}, false, 2, 2},
		{"idempotent: broken after delivery retried", httpmock.Fault{Drop: httpmock.DropAfterDelivery}, &service.InvokeOptions{Idempotent: true}, false, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub, client := setup(t, nil)
				hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
				f := tt.fault
				f.DeviceID = "d1"
				hub.AddFault(f)
				res, err := client.InvokeDeviceMethod(t.Context(), "d1", service.MethodParams[any]{Name: "reboot", Payload: json.RawMessage(`{"n":1}`)}, tt.opts)
				if (err != nil) != tt.wantErr {
					t.Fatalf("err = %v, want error %v", err, tt.wantErr)
				}
				if err == nil && (res.Status != 200 || string(res.Payload) != `{"n":1}`) {
					t.Errorf("result %+v", res)
				}
				if err != nil && !iothub.MayHaveRun(err) {
					t.Errorf("a failure after the request was sent must say it may have run: %v", err)
				}
				if got := len(hub.Requests()); got != tt.wantRecorded {
					t.Errorf("requests = %d, want %d", got, tt.wantRecorded)
				}
				if got := hub.Deliveries("d1", ""); got != tt.wantDelivers {
					t.Errorf("deliveries = %d, want %d", got, tt.wantDelivers)
				}
			})
		})
	}
}

func TestDeviceNotOnlineRetryOptIn(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setup(t, nil)
		d := hub.AddDevice("d1", &httpmock.DeviceOptions{Offline: true, Handler: echo})
		go func() {
			time.Sleep(time.Millisecond / 2)
			d.SetOnline(true)
		}()
		res, err := client.InvokeDeviceMethod(t.Context(), "d1", service.MethodParams[any]{Name: "m"}, &service.InvokeOptions{RetryDeviceNotOnline: true})
		if err != nil || res.Status != 200 {
			t.Fatalf("%+v, %v", res, err)
		}
		if got := hub.Deliveries("d1", ""); got != 1 {
			t.Errorf("deliveries = %d", got)
		}
	})
}

func TestConnectTimeoutWaitsForDevice(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setup(t, nil)
		d := hub.AddDevice("d1", &httpmock.DeviceOptions{Offline: true, Handler: echo})
		go func() {
			time.Sleep(20 * time.Second)
			d.SetOnline(true)
		}()
		start := time.Now()
		res, err := client.InvokeDeviceMethod(t.Context(), "d1", service.MethodParams[any]{Name: "m", ConnectTimeoutInSeconds: 60}, nil)
		if err != nil || res.Status != 200 {
			t.Fatalf("%+v, %v", res, err)
		}
		if got := time.Since(start); got != 20*time.Second {
			t.Errorf("took %v, want 20s", got)
		}
	})
}

func TestContextBoundsTheCall(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setup(t, nil)
		hub.AddDevice("d1", &httpmock.DeviceOptions{Latency: time.Minute, Handler: echo})
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err := client.InvokeDeviceMethod(ctx, "d1", service.MethodParams[any]{Name: "m", TimeoutInSeconds: 300}, nil)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, iothub.ErrOutcomeUnknown) {
			t.Fatalf("err = %v; want a deadline with an unknown outcome", err)
		}
		if got := hub.Deliveries("d1", ""); got != 1 {
			t.Errorf("deliveries = %d", got)
		}
	})
}

func TestUnreadableAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		want   error
	}{
		{"html page on 200", 200, "<html>proxy</html>", iothub.ErrOutcomeUnknown},
		{"no status field", 200, `{"payload":1}`, iothub.ErrOutcomeUnknown},
		{"truncated", 200, `{"status":200,"payl`, iothub.ErrOutcomeUnknown},
		{"oversized", 200, `{"status":200,"payload":"` + strings.Repeat("x", 2<<20) + `"}`, iothub.ErrOutcomeUnknown},
		{"html 502 from a proxy", 502, "<html><body>Bad Gateway</body></html>", iothub.ErrOutcomeUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hub, client := setup(t, nil)
			hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
			hub.AddFault(httpmock.Fault{DeviceID: "d1", Status: tt.status, Body: []byte(tt.body), ContentType: "text/html"})
			_, err := client.InvokeDeviceMethod(t.Context(), "d1", service.MethodParams[any]{Name: "m"}, nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if len(err.Error()) > 1200 {
				t.Errorf("error message is %d bytes; it should be bounded", len(err.Error()))
			}
		})
	}
}

func TestConstructors(t *testing.T) {
	t.Parallel()
	hub := httpmock.New(nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
	key, _ := hub.Policy("service")
	tests := []struct {
		name string
		make func() (*service.Client, error)
		want string // "" means success and a working call
	}{
		{"connection string", func() (*service.Client, error) {
			return service.NewClientFromConnectionString(hub.ConnectionString("service"), &iothub.ClientOptions{Transport: hub.RoundTripper()})
		}, ""},
		{"shared access key", func() (*service.Client, error) {
			cred, err := auth.NewSharedAccessKeyCredential("service", key.Key, nil)
			if err != nil {
				return nil, err
			}
			return service.NewClientWithSharedAccessKey(hub.HostName(), cred, &iothub.ClientOptions{Transport: hub.RoundTripper()})
		}, ""},
		{"entra", func() (*service.Client, error) {
			return service.NewClient(hub.HostName(), hub.TokenCredential(httpmock.DataContributor, nil), &iothub.ClientOptions{Transport: hub.RoundTripper()})
		}, ""},
		{"device connection string", func() (*service.Client, error) {
			return service.NewClientFromConnectionString("HostName=h.azure-devices.net;DeviceId=d1;SharedAccessKey="+key.Key, nil)
		}, "service"},
		{"nil token credential", func() (*service.Client, error) { return service.NewClient("h.azure-devices.net", nil, nil) }, "TokenCredential"},
		{"nil key credential", func() (*service.Client, error) {
			return service.NewClientWithSharedAccessKey("h.azure-devices.net", nil, nil)
		}, "SharedAccessKeyCredential"},
		{"host with scheme", func() (*service.Client, error) {
			return service.NewClient("https://h.azure-devices.net", hub.TokenCredential(httpmock.DataContributor, nil), nil)
		}, "scheme"},
		{"plain http endpoint", func() (*service.Client, error) {
			return service.NewClientFromConnectionString(hub.ConnectionString("service"), &iothub.ClientOptions{Endpoint: "http://127.0.0.1:9"})
		}, "InsecureAllowHTTP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, err := tt.make()
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.want)
				}
				if strings.Contains(err.Error(), key.Key) {
					t.Errorf("error leaks the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := client.InvokeDeviceMethod(t.Context(), "d1", service.MethodParams[any]{Name: "m"}, nil); err != nil {
				t.Errorf("call: %v", err)
			}
		})
	}
}

func TestAuthorizationFailures(t *testing.T) {
	t.Parallel()
	hub := httpmock.New(nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
	rt := &iothub.ClientOptions{Transport: hub.RoundTripper()}
	registryOnly, err := service.NewClientFromConnectionString(hub.ConnectionString("registryReadWrite"), rt)
	if err != nil {
		t.Fatal(err)
	}
	twinRole, err := service.NewClient(hub.HostName(), hub.TokenCredential(httpmock.TwinContributor, nil), rt)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey, err := service.NewClientFromConnectionString("HostName="+hub.HostName()+";SharedAccessKeyName=service;SharedAccessKey="+httpmock.NewKey(), rt)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*service.Client{"policy without ServiceConnect": registryOnly, "Twin Contributor": twinRole, "wrong key": wrongKey} {
		_, err := c.InvokeDeviceMethod(t.Context(), "d1", service.MethodParams[any]{Name: "m"}, nil)
		if !errors.Is(err, iothub.ErrUnauthorized) || iothub.MayHaveRun(err) {
			t.Errorf("%s: err = %v, want unauthorized and not run", name, err)
		}
	}
	if got := hub.Deliveries("d1", ""); got != 0 {
		t.Errorf("deliveries = %d", got)
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := httpmock.NewKey(), httpmock.NewKey()
	hubOld := httpmock.New(&httpmock.Options{Policies: []httpmock.Policy{{Name: "service", Key: oldKey, Rights: httpmock.ServiceConnect}}})
	hubNew := httpmock.New(&httpmock.Options{Policies: []httpmock.Policy{{Name: "service", Key: newKey, Rights: httpmock.ServiceConnect}}})
	for _, h := range []*httpmock.Hub{hubOld, hubNew} {
		h.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
	}
	cred, err := auth.NewSharedAccessKeyCredential("service", oldKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	onNew, err := service.NewClientWithSharedAccessKey(hubNew.HostName(), cred, &iothub.ClientOptions{Transport: hubNew.RoundTripper()})
	if err != nil {
		t.Fatal(err)
	}
	p := service.MethodParams[any]{Name: "m"}
	if _, err := onNew.InvokeDeviceMethod(t.Context(), "d1", p, nil); !errors.Is(err, iothub.ErrUnauthorized) {
		t.Fatalf("before rotation: %v", err)
	}
	if err := cred.Update("service", newKey); err != nil {
		t.Fatal(err)
	}
	if _, err := onNew.InvokeDeviceMethod(t.Context(), "d1", p, nil); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
}

func TestEntraTokenIsCached(t *testing.T) {
	t.Parallel()
	hub := httpmock.New(nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
	cred := hub.TokenCredential(httpmock.DataContributor, nil)
	client, err := service.NewClient(hub.HostName(), cred, &iothub.ClientOptions{Transport: hub.RoundTripper()})
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if _, err := client.InvokeDeviceMethod(t.Context(), "d1", service.MethodParams[any]{Name: "m"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := cred.Calls(); got != 1 {
		t.Errorf("GetToken called %d times for 20 calls, want 1", got)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	hub := httpmock.New(nil)
	pol, _ := hub.Policy("service")
	var logs strings.Builder
	opts := &iothub.ClientOptions{Transport: hub.RoundTripper(), Logger: newDebugLogger(&logs)}
	client, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), opts)
	if err != nil {
		t.Fatal(err)
	}
	hub.AddFault(httpmock.Fault{Code: 401002})
	_, callErr := client.InvokeDeviceMethod(t.Context(), "missing", service.MethodParams[any]{Name: "m"}, nil)
	var sigs []string
	for _, r := range hub.Requests() {
		a := r.Header.Get("Authorization")
		_, sig, _ := strings.Cut(a, "sig=")
		sig, _, _ = strings.Cut(sig, "&")
		sigs = append(sigs, sig)
	}
	outputs := []string{
		fmt.Sprintf("%v", client), fmt.Sprintf("%+v", client), fmt.Sprintf("%#v", client),
		fmt.Sprintf("%v", *client), fmt.Sprintf("%+v", *client), fmt.Sprintf("%#v", *client), client.String(),
		fmt.Sprintf("%+v", opts), callErr.Error(), fmt.Sprintf("%+v", callErr), logs.String(),
	}
	for _, out := range outputs {
		for _, secret := range append(sigs, pol.Key, "SharedAccessSignature") {
			if secret != "" && strings.Contains(out, secret) {
				t.Errorf("output leaks a secret: %q", out)
			}
		}
	}
}

func TestOverTLSWithHTTP2(t *testing.T) {
	t.Parallel()
	hub := httpmock.New(nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
	srv, err := hub.StartTLS()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	client, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), &iothub.ClientOptions{
		Endpoint: srv.URL, Transport: srv.Client().Transport,
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		res, err := client.InvokeDeviceMethod(t.Context(), "d1", service.MethodParams[any]{Name: "m", Payload: json.RawMessage(`[1]`)}, nil)
		if err != nil || string(res.Payload) != "[1]" {
			t.Fatalf("%+v, %v", res, err)
		}
	}
	for _, r := range hub.Requests() {
		if r.Proto != "HTTP/2.0" {
			t.Errorf("proto %s, want HTTP/2.0", r.Proto)
		}
	}
}

func TestAPIVersionOverride(t *testing.T) {
	t.Parallel()
	tests := []struct {
		version string
		code    iothub.ErrorCode // 0 means success
	}{
		{"", 0},
		{"2020-09-30", 0},
		{"2015-01-01", iothub.ErrorCodeInvalidProtocolVersion},
	}
	for _, tt := range tests {
		hub, client := setup(t, &iothub.ClientOptions{APIVersion: tt.version})
		hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
		_, err := client.InvokeDeviceMethod(t.Context(), "d1", service.MethodParams[any]{Name: "m"}, nil)
		he, _ := errors.AsType[*iothub.Error](err)
		if (tt.code == 0 && err != nil) || (tt.code != 0 && (he == nil || he.Code != tt.code)) {
			t.Errorf("api-version %q: err = %v, want code %d", tt.version, err, tt.code)
		}
		want := tt.version
		if want == "" {
			want = iothub.APIVersion
		}
		if got := hub.Requests()[0].RawQuery; got != "api-version="+want {
			t.Errorf("query = %q, want api-version=%s", got, want)
		}
	}
}
