package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/service"
)

var guid = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestCommandWire(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		deviceID    string
		params      service.CommandParams[any]
		wantPath    string
		wantQuery   string
		wantBody    string // "" = no body
		wantMethod  string // the name the device sees
		wantPayload string // what the device sees; "" = nothing
		wantTimeout time.Duration
	}{
		{
			name: "root command, defaults, no payload", deviceID: "dev-1",
			params:   service.CommandParams[any]{Name: "reboot"},
			wantPath: "/digitaltwins/dev-1/commands/reboot", wantQuery: "api-version=2021-04-12",
			wantMethod: "reboot", wantTimeout: 30 * time.Second,
		},
		{
			name: "component command with timeouts and payload", deviceID: "dev-1",
			params:    service.CommandParams[any]{Component: "thermostat1", Name: "getMaxMinReport", Payload: "2026-01-01T00:00:00Z", TimeoutInSeconds: 60, ConnectTimeoutInSeconds: 10},
			wantPath:  "/digitaltwins/dev-1/components/thermostat1/commands/getMaxMinReport",
			wantQuery: "api-version=2021-04-12&connectTimeoutInSeconds=10&responseTimeoutInSeconds=60",
			wantBody:  `"2026-01-01T00:00:00Z"`, wantMethod: "thermostat1*getMaxMinReport", wantPayload: `"2026-01-01T00:00:00Z"`,
			wantTimeout: 60 * time.Second,
		},
		{
			name: "only a connect timeout", deviceID: "dev-1",
			params:    service.CommandParams[any]{Name: "reboot", ConnectTimeoutInSeconds: 5},
			wantPath:  "/digitaltwins/dev-1/commands/reboot",
			wantQuery: "api-version=2021-04-12&connectTimeoutInSeconds=5", wantMethod: "reboot", wantTimeout: 30 * time.Second,
		},
		{
			name: "escaped id, raw payload compacted", deviceID: "a+b%c#d",
			params:   service.CommandParams[any]{Component: "c_1", Name: "Set2", Payload: json.RawMessage(` { "delay" : 5 } `)},
			wantPath: "/digitaltwins/a%2Bb%25c%23d/components/c_1/commands/Set2", wantQuery: "api-version=2021-04-12",
			wantBody: `{"delay":5}`, wantMethod: "c_1*Set2", wantPayload: `{"delay":5}`, wantTimeout: 30 * time.Second,
		},
		{
			name: "explicit JSON null sends no body", deviceID: "dev-1",
			params:   service.CommandParams[any]{Name: "reboot", Payload: json.RawMessage(`null`)},
			wantPath: "/digitaltwins/dev-1/commands/reboot", wantQuery: "api-version=2021-04-12",
			wantMethod: "reboot", wantTimeout: 30 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hub, client := setup(t, nil)
			hub.AddDevice(tt.deviceID, &httpmock.DeviceOptions{Handler: respond(200, `{"ok":true}`)})
			res, err := client.InvokeCommand(t.Context(), tt.deviceID, tt.params, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != 200 || string(res.Payload) != `{"ok":true}` || !guid.MatchString(res.RequestID) {
				t.Errorf("result %+v", res)
			}
			reqs := hub.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			wantCT := ""
			if tt.wantBody != "" {
				wantCT = "application/json; charset=utf-8"
			}
			got := map[string]string{
				"method":       r.Method,
				"path":         r.Path,
				"query":        r.RawQuery,
				"body":         string(r.Body),
				"content-type": r.Header.Get("Content-Type"),
				"auth-scheme":  strings.SplitN(r.Header.Get("Authorization"), " ", 2)[0],
			}
			want := map[string]string{
				"method":       "POST",
				"path":         tt.wantPath,
				"query":        tt.wantQuery,
				"body":         tt.wantBody,
				"content-type": wantCT,
				"auth-scheme":  "SharedAccessSignature",
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			calls := hub.Calls()
			if len(calls) != 1 {
				t.Fatalf("%d calls delivered, want 1", len(calls))
			}
			c := calls[0]
			gotCall := []string{c.DeviceID, c.ModuleID, c.Method, string(c.Payload), c.ResponseTimeout.String()}
			wantCall := []string{tt.deviceID, "", tt.wantMethod, tt.wantPayload, tt.wantTimeout.String()}
			if diff := cmp.Diff(wantCall, gotCall); diff != "" {
				t.Errorf("delivered call (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCommandPayloadsTravelBothWays(t *testing.T) {
	t.Parallel()
	hub, client := setup(t, nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
	for _, payload := range []string{`{"a":[1,2,{"b":null}]}`, `[1,"two",3.5]`, `"just a string"`, `42`, `true`} {
		res, err := client.InvokeCommand(t.Context(), "d1", service.CommandParams[any]{Name: "echo", Payload: json.RawMessage(payload)}, nil)
		if err != nil {
			t.Fatalf("payload %s: %v", payload, err)
		}
		if diff := cmp.Diff(payload, string(res.Payload)); diff != "" || res.Status != 200 {
			t.Errorf("payload %s: status %d, (-want +got):\n%s", payload, res.Status, diff)
		}
	}
	// No payload: the device gets none and answers none; the result is null.
	res, err := client.InvokeCommand(t.Context(), "d1", service.CommandParams[any]{Name: "echo"}, nil)
	if err != nil || string(res.Payload) != "null" {
		t.Errorf("no payload: %+v, %v", res, err)
	}
}

func TestCommandDeviceStatusIsData(t *testing.T) {
	t.Parallel()
	hub, client := setup(t, nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: respond(500, `{"error":"disk full"}`)})
	hub.AddDevice("d2", nil) // no handler: 501
	res, err := client.InvokeCommand(t.Context(), "d1", service.CommandParams[any]{Component: "c1", Name: "run"}, nil)
	if err != nil {
		t.Fatalf("a device's 500 is a result, not an error: %v", err)
	}
	res.RequestID = strings.Repeat("x", len(res.RequestID))
	want := service.CommandResult[json.RawMessage]{Status: 500, Payload: json.RawMessage(`{"error":"disk full"}`), RequestID: strings.Repeat("x", 36)}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	res, err = client.InvokeCommand(t.Context(), "d2", service.CommandParams[any]{Name: "nope"}, nil)
	if err != nil || res.Status != 501 || string(res.Payload) != "null" {
		t.Errorf("unhandled command: %+v, %v", res, err)
	}
}

type maxMinReport struct {
	MaxTemp float64 `json:"maxTemp"`
	MinTemp float64 `json:"minTemp"`
}

func TestTypedCommand(t *testing.T) {
	t.Parallel()
	hub, client := setup(t, nil)
	d := hub.AddDevice("d1", nil)
	d.HandleMethod("thermostat1*getMaxMinReport", func(_ context.Context, c httpmock.MethodCall) httpmock.MethodResponse {
		var since time.Time
		if err := json.Unmarshal(c.Payload, &since); err != nil {
			return httpmock.MethodResponse{Status: 400}
		}
		return httpmock.MethodResponse{Status: 200, Payload: json.RawMessage(`{"maxTemp":31.5,"minTemp":18}`)}
	})
	d.HandleMethod("reboot", respond(202, `"rebooting soon"`))
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	res, err := service.InvokeCommand[maxMinReport](t.Context(), client, "d1",
		service.CommandParams[time.Time]{Component: "thermostat1", Name: "getMaxMinReport", Payload: since}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(maxMinReport{MaxTemp: 31.5, MinTemp: 18}, res.Payload); diff != "" || res.Status != 200 {
		t.Errorf("status %d (-want +got):\n%s", res.Status, diff)
	}
	if got := string(hub.Calls()[0].Payload); got != `"2026-01-01T00:00:00Z"` {
		t.Errorf("device got payload %s", got)
	}

	typed, err := service.InvokeCommand[maxMinReport](t.Context(), client, "d1", service.CommandParams[any]{Name: "reboot"}, nil)
	pe, ok := errors.AsType[*service.PayloadError](err)
	if !ok {
		t.Fatalf("want *PayloadError, got %v", err)
	}
	if typed.Status != 202 || pe.Status != 202 || string(pe.Payload) != `"rebooting soon"` || typed.RequestID == "" {
		t.Errorf("result %+v, error %+v", typed, pe)
	}
	if !iothub.MayHaveRun(err) {
		t.Errorf("a payload error must say the command ran: %v", err)
	}
}

func TestCommandValidationSendsNothing(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("a", service.MaxPayloadBytes)
	name64 := "a" + strings.Repeat("b", 63)
	tests := []struct {
		name   string
		device string
		params service.CommandParams[any]
		field  string
	}{
		{"empty device", "", service.CommandParams[any]{Name: "c"}, "deviceID"},
		{"bad device char", "a/b", service.CommandParams[any]{Name: "c"}, "deviceID"},
		{"empty name", "d1", service.CommandParams[any]{Component: "c1"}, "CommandParams.Name"},
		{"name with star", "d1", service.CommandParams[any]{Name: "a*b"}, "CommandParams.Name"},
		{"name with dash", "d1", service.CommandParams[any]{Name: "get-report"}, "CommandParams.Name"},
		{"name with leading digit", "d1", service.CommandParams[any]{Name: "1st"}, "CommandParams.Name"},
		{"name with leading underscore", "d1", service.CommandParams[any]{Name: "_x"}, "CommandParams.Name"},
		{"name with trailing underscore", "d1", service.CommandParams[any]{Name: "x_"}, "CommandParams.Name"},
		{"name of 65", "d1", service.CommandParams[any]{Name: name64 + "c"}, "CommandParams.Name"},
		{"name not ASCII", "d1", service.CommandParams[any]{Name: "réboot"}, "CommandParams.Name"},
		{"component with slash", "d1", service.CommandParams[any]{Component: "a/b", Name: "c"}, "CommandParams.Component"},
		{"component with space", "d1", service.CommandParams[any]{Component: "a b", Name: "c"}, "CommandParams.Component"},
		{"component of 65", "d1", service.CommandParams[any]{Component: name64 + "c", Name: "c"}, "CommandParams.Component"},
		{"timeout 4", "d1", service.CommandParams[any]{Name: "c", TimeoutInSeconds: 4}, "CommandParams.TimeoutInSeconds"},
		{"timeout 301", "d1", service.CommandParams[any]{Name: "c", TimeoutInSeconds: 301}, "CommandParams.TimeoutInSeconds"},
		{"connect timeout negative", "d1", service.CommandParams[any]{Name: "c", ConnectTimeoutInSeconds: -1}, "CommandParams.ConnectTimeoutInSeconds"},
		{"connect timeout 301", "d1", service.CommandParams[any]{Name: "c", ConnectTimeoutInSeconds: 301}, "CommandParams.ConnectTimeoutInSeconds"},
		{"payload does not marshal", "d1", service.CommandParams[any]{Name: "c", Payload: make(chan int)}, "CommandParams.Payload"},
		{"raw payload invalid", "d1", service.CommandParams[any]{Name: "c", Payload: json.RawMessage(`{"a":`)}, "CommandParams.Payload"},
		{"payload too big", "d1", service.CommandParams[any]{Name: "c", Payload: big}, "CommandParams.Payload"},
	}
	hub, client := setup(t, nil)
	hub.AddDevice("d1", nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.InvokeCommand(t.Context(), tt.device, tt.params, nil)
			ae, ok := errors.AsType[*iothub.ArgumentError](err)
			if !ok {
				t.Fatalf("want *iothub.ArgumentError, got %v", err)
			}
			if ae.Field != tt.field || !strings.Contains(err.Error(), tt.field) || ae.Rule == "" || ae.Operation != "InvokeCommand" {
				t.Errorf("error %q names field %q, want %q", err, ae.Field, tt.field)
			}
			if !errors.Is(err, iothub.ErrInvalidArgument) || iothub.MayHaveRun(err) {
				t.Errorf("want ErrInvalidArgument and not run: %v", err)
			}
			if tt.device == "d1" {
				verr := tt.params.Validate()
				vae, ok := errors.AsType[*iothub.ArgumentError](verr)
				if !ok || vae.Field != ae.Field || vae.Rule != ae.Rule {
					t.Errorf("Validate = %v; want the same field and rule as InvokeCommand's %v", verr, err)
				}
			}
		})
	}
	if n := len(hub.Requests()); n != 0 {
		t.Errorf("%d requests sent, want 0", n)
	}
	// The boundaries themselves are accepted.
	hub.AddDevice("d2", &httpmock.DeviceOptions{Handler: echo})
	for _, p := range []service.CommandParams[any]{
		{Component: name64, Name: name64, TimeoutInSeconds: 5},
		{Name: "A", TimeoutInSeconds: 300, ConnectTimeoutInSeconds: 300},
		{Name: "a_1", Payload: strings.Repeat("a", service.MaxPayloadBytes-2)},
	} {
		if err := p.Validate(); err != nil {
			t.Errorf("Validate %+v: %v", p.Name, err)
		}
		if _, err := client.InvokeCommand(t.Context(), "d2", p, nil); err != nil {
			t.Errorf("params %+v: %v", p.Name, err)
		}
	}
}

func TestCommandHubErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		setup     func(*httpmock.Hub)
		want      error
		code      iothub.ErrorCode
		delivered int
		unknown   bool
	}{
		{"not registered", func(*httpmock.Hub) {}, iothub.ErrDeviceNotFound, iothub.ErrorCodeDeviceNotFound, 0, false},
		{"disabled", func(h *httpmock.Hub) { h.AddDevice("d1", &httpmock.DeviceOptions{Disabled: true}) }, iothub.ErrDeviceNotFound, iothub.ErrorCodeDeviceNotFound, 0, false},
		{"offline", func(h *httpmock.Hub) { h.AddDevice("d1", &httpmock.DeviceOptions{Offline: true}) }, iothub.ErrDeviceNotOnline, iothub.ErrorCodeDeviceNotOnline, 0, false},
		{"slow device", func(h *httpmock.Hub) { h.AddDevice("d1", &httpmock.DeviceOptions{Latency: time.Minute}) }, iothub.ErrGatewayTimeout, iothub.ErrorCodeGatewayTimeout, 1, true},
		{"lost response", func(h *httpmock.Hub) {
			h.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
			h.AddFault(httpmock.Fault{DeviceID: "d1", Method: "c1*run", AfterDelivery: true, Times: -1})
		}, iothub.ErrGatewayTimeout, iothub.ErrorCodeGatewayTimeout, 1, true},
		{"throttled throughout", func(h *httpmock.Hub) {
			h.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
			h.AddFault(httpmock.Fault{Code: 429001, Times: -1})
		}, iothub.ErrThrottled, iothub.ErrorCodeThrottlingException, 0, false},
		{"server busy throughout", func(h *httpmock.Hub) {
			h.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
			h.AddFault(httpmock.Fault{Code: 503005, Times: -1})
		}, iothub.ErrNotDelivered, iothub.ErrorCodeServerBusy, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub, client := setup(t, nil)
				tt.setup(hub)
				_, err := client.InvokeCommand(t.Context(), "d1", service.CommandParams[any]{Component: "c1", Name: "run"}, nil)
				he, ok := errors.AsType[*iothub.Error](err)
				if !ok {
					t.Fatalf("want *iothub.Error, got %v", err)
				}
				if !errors.Is(err, tt.want) || he.Code != tt.code {
					t.Errorf("err = %v; want %v with code %d", err, tt.want, tt.code)
				}
				if he.TrackingID == "" || he.Operation != "InvokeCommand" || he.DeviceID != "d1" {
					t.Errorf("incomplete error: %+v", he)
				}
				if got := iothub.MayHaveRun(err); got != tt.unknown {
					t.Errorf("MayHaveRun = %v, want %v", got, tt.unknown)
				}
				if got := hub.Deliveries("d1", ""); got != tt.delivered {
					t.Errorf("deliveries = %d, want %d", got, tt.delivered)
				}
			})
		})
	}
}

func TestCommandMissingStatusHeader(t *testing.T) {
	t.Parallel()
	hub, client := setup(t, nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
	// A 200 without x-ms-command-statuscode, as a proxy or a broken hub
	// could answer.
	hub.AddFault(httpmock.Fault{DeviceID: "d1", Status: 200, Body: []byte(`{"maxTemp":1}`), ContentType: "application/json"})
	_, err := client.InvokeCommand(t.Context(), "d1", service.CommandParams[any]{Name: "run"}, nil)
	be, ok := errors.AsType[*iothub.BodyError](err)
	if !ok {
		t.Fatalf("want *iothub.BodyError, got %v", err)
	}
	if be.StatusCode != 200 || be.Operation != "InvokeCommand" || !strings.Contains(err.Error(), "x-ms-command-statuscode") {
		t.Errorf("error %+v: %v", be, err)
	}
	if !iothub.MayHaveRun(err) || !errors.Is(err, iothub.ErrOutcomeUnknown) {
		t.Errorf("a 200 without a status may have run: %v", err)
	}
	if n := len(hub.Requests()); n != 1 {
		t.Errorf("%d requests, want 1 (never retried)", n)
	}
}

func TestCommandRetriesNeverDuplicate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		fault        httpmock.Fault
		opts         *service.InvokeOptions
		wantErr      bool
		wantRecorded int
		wantDelivers int
	}{
		{"throttled twice then ok", httpmock.Fault{Code: 429001, Times: 2}, nil, false, 3, 1},
		{"server busy then ok", httpmock.Fault{Code: 503005}, nil, false, 2, 1},
		{"connection reset before write", httpmock.Fault{Drop: httpmock.DropBeforeWrite}, nil, false, 1, 1},
		{"lost response is not retried", httpmock.Fault{AfterDelivery: true}, nil, true, 1, 1},
		{"connection broken after delivery is not retried", httpmock.Fault{Drop: httpmock.DropAfterDelivery}, nil, true, 1, 1},
		{"500 is not retried", httpmock.Fault{Code: 500001}, nil, true, 1, 0},
		{"idempotent: lost response retried", httpmock.Fault{AfterDelivery: true}, &service.InvokeOptions{Idempotent: true}, false, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub, client := setup(t, nil)
				hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
				f := tt.fault
				f.DeviceID, f.Method = "d1", "thermostat1*set"
				hub.AddFault(f)
				res, err := client.InvokeCommand(t.Context(), "d1", service.CommandParams[any]{Component: "thermostat1", Name: "set", Payload: json.RawMessage(`{"n":1}`)}, tt.opts)
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

func TestCommandConnectTimeoutWaitsForDevice(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setup(t, nil)
		d := hub.AddDevice("d1", &httpmock.DeviceOptions{Offline: true, Handler: echo})
		go func() {
			time.Sleep(20 * time.Second)
			d.SetOnline(true)
		}()
		start := time.Now()
		res, err := client.InvokeCommand(t.Context(), "d1", service.CommandParams[any]{Name: "m", ConnectTimeoutInSeconds: 60}, nil)
		if err != nil || res.Status != 200 {
			t.Fatalf("%+v, %v", res, err)
		}
		if got := time.Since(start); got != 20*time.Second {
			t.Errorf("took %v, want 20s", got)
		}
	})
}

func TestCommandMethod(t *testing.T) {
	t.Parallel()
	tests := []struct {
		params service.CommandParams[any]
		want   service.MethodParams[any]
	}{
		{service.CommandParams[any]{Name: "reboot"}, service.MethodParams[any]{Name: "reboot"}},
		{
			service.CommandParams[any]{Component: "thermostat1", Name: "getMaxMinReport", Payload: "x", TimeoutInSeconds: 10, ConnectTimeoutInSeconds: 20},
			service.MethodParams[any]{Name: "thermostat1*getMaxMinReport", Payload: "x", TimeoutInSeconds: 10, ConnectTimeoutInSeconds: 20},
		},
	}
	for _, tt := range tests {
		got := tt.params.Method()
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%+v.Method() (-want +got):\n%s", tt.params, diff)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("the method of a valid command must be a valid method: %v", err)
		}
	}
}

// TestCommandOnAFleet runs a component command through a fan-out and
// through an IoT Hub job: the device handler sees the method
// "thermostat1*getMaxMinReport" either way.
func TestCommandOnAFleet(t *testing.T) {
	t.Parallel()
	cmd := service.CommandParams[any]{Component: "thermostat1", Name: "getMaxMinReport", Payload: "2026-01-01T00:00:00Z", TimeoutInSeconds: 10}
	if err := cmd.Validate(); err != nil {
		t.Fatal(err)
	}
	report := json.RawMessage(`{"maxTemp":31.5}`)
	addThermostats := func(hub *httpmock.Hub, ids ...string) {
		for _, id := range ids {
			d := hub.AddDevice(id, nil)
			d.HandleMethod("thermostat1*getMaxMinReport", func(_ context.Context, c httpmock.MethodCall) httpmock.MethodResponse {
				if string(c.Payload) != `"2026-01-01T00:00:00Z"` {
					return httpmock.MethodResponse{Status: 400}
				}
				return httpmock.MethodResponse{Status: 200, Payload: report}
			})
		}
	}
	t.Run("fan-out", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			hub, client := setup(t, nil)
			addThermostats(hub, "t1", "t2", "t3")
			fan, err := client.StartFanOut(t.Context(), service.Devices("t1", "t2", "t3"), cmd.Method(), nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for r := range fan.Results() {
				got = append(got, r.DeviceID+" "+string(r.Outcome)+" "+string(r.Payload))
			}
			slices.Sort(got)
			want := []string{`t1 succeeded {"maxTemp":31.5}`, `t2 succeeded {"maxTemp":31.5}`, `t3 succeeded {"maxTemp":31.5}`}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
			var methods []string
			for _, c := range hub.Calls() {
				methods = append(methods, c.Method)
			}
			if diff := cmp.Diff([]string{"thermostat1*getMaxMinReport", "thermostat1*getMaxMinReport", "thermostat1*getMaxMinReport"}, methods); diff != "" {
				t.Errorf("methods delivered (-want +got):\n%s", diff)
			}
		})
	})
	t.Run("job", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			hub, client := setupJobs(t, nil)
			addThermostats(hub, "t1", "t2")
			if _, err := client.ScheduleMethodJob(t.Context(), "pnp", service.MethodJob{Method: cmd.Method(), DeviceIDs: []string{"t1", "t2"}}, nil); err != nil {
				t.Fatal(err)
			}
			job, err := client.WaitJob(t.Context(), "pnp", nil)
			if err != nil || job.Status != service.JobStatusCompleted {
				t.Fatalf("job %+v, %v", job, err)
			}
			var got []string
			for r, err := range client.JobDeviceResults(t.Context(), "pnp", nil) {
				if err != nil {
					t.Fatal(err)
				}
				if r.Response == nil {
					t.Fatalf("device %s: no response (%s)", r.DeviceID, r.Status)
				}
				got = append(got, r.DeviceID+" "+string(r.Outcome)+" "+string(r.Response.Payload))
			}
			slices.Sort(got)
			want := []string{`t1 succeeded {"maxTemp":31.5}`, `t2 succeeded {"maxTemp":31.5}`}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("device results (-want +got):\n%s", diff)
			}
			var methods []string
			for _, c := range hub.Calls() {
				methods = append(methods, c.Method)
			}
			if diff := cmp.Diff([]string{"thermostat1*getMaxMinReport", "thermostat1*getMaxMinReport"}, methods); diff != "" {
				t.Errorf("methods delivered (-want +got):\n%s", diff)
			}
		})
	})
}
