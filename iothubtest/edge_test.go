package iothubtest_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/registry"
	"github.com/hubkit/iothub/service"
)

// The tests of this file call the Edge runtime of the fake with plain
// service.Client invocations, as code that does not use package edge
// would, and check what the runtime answers and what the accessors report.
// They run in a testing/synctest bubble, whose clock starts at
// 2000-01-01T00:00:00Z, so that log times are fixed.

// edgeHub returns a hub with the Edge device "edge-1" (custom modules
// tempSensor and filterModule, with logs relative to now), the plain
// device "plain-1", and a client on it.
func edgeHub(t *testing.T, opts *iothubtest.EdgeOptions) (*iothubtest.Hub, *service.Client) {
	t.Helper()
	now := time.Now()
	o := iothubtest.EdgeOptions{
		Modules: []string{"tempSensor", "filterModule"},
		Logs: map[string][]iothubtest.LogLine{
			"tempSensor": {
				{Time: now.Add(-3 * time.Hour), LogLevel: 6, Text: "sensor started"},
				{Time: now.Add(-time.Hour), LogLevel: 3, Stream: "stderr", Text: "read failed"},
				{Time: now.Add(-10 * time.Minute), LogLevel: 6, Text: "temperature 21.5"},
			},
			"filterModule": {{Time: now.Add(-2 * time.Hour), LogLevel: 7, Text: "filter ready"}},
		},
	}
	if opts != nil {
		o.AgentRestartWindow, o.AgentStartupWindow = opts.AgentRestartWindow, opts.AgentStartupWindow
	}
	hub := iothubtest.New(nil)
	t.Cleanup(hub.Close)
	hub.AddDevice("edge-1", &iothubtest.DeviceOptions{EdgeRuntime: &o})
	hub.AddDevice("plain-1", nil)
	return hub, newClient(t, hub)
}

// runtimeAnswer is what a test sees of one call to the runtime: the
// device status and payload (decoded JSON, with a log payload that is
// itself a JSON array decoded too), or the hub's error code.
type runtimeAnswer struct {
	Status  int
	Payload any
	Code    iothub.ErrorCode
}

// invoke calls method on a module of a device with payload, a JSON text
// ("" sends null).
func invoke(t *testing.T, c *service.Client, deviceID, moduleID, method, payload string, p service.MethodParams[any]) runtimeAnswer {
	t.Helper()
	p.Name = method
	if payload != "" {
		p.Payload = json.RawMessage(payload)
	}
	res, err := c.InvokeModuleMethod(t.Context(), deviceID, moduleID, p, nil)
	if err != nil {
		var he *iothub.Error
		if !errors.As(err, &he) {
			t.Fatalf("%s on %s/%s: %v, want an answer or an *iothub.Error", method, deviceID, moduleID, err)
		}
		return runtimeAnswer{Code: he.Code}
	}
	return runtimeAnswer{Status: res.Status, Payload: decodeAnswer(t, res.Payload)}
}

// decodeAnswer decodes a runtime payload; the "payload" strings of a logs
// answer that hold JSON (content type json, encoding none) are decoded as
// well, so that tests compare records rather than escaped text.
func decodeAnswer(t *testing.T, raw json.RawMessage) any {
	t.Helper()
	v := decodeJSON(t, string(raw))
	items, ok := v.([]any)
	if !ok {
		return v
	}
	for _, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		if s, ok := m["payload"].(string); ok && strings.HasPrefix(s, "[") {
			m["payload"] = decodeJSON(t, s)
		}
	}
	return v
}

func decodeJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return v
}

// message returns the "message" of a failure payload.
func message(p any) string {
	m, _ := p.(map[string]any)
	s, _ := m["message"].(string)
	return s
}

const allAgentMethods = "ping,RestartModule,GetModuleLogs,UploadModuleLogs,UploadSupportBundle,GetTaskStatus"

func TestEdgeRuntimeAnswers(t *testing.T) {
	t.Parallel()
	const (
		agent = "$edgeAgent"
		hubM  = "$edgeHub"
	)
	// The log lines as the text content type writes them.
	const (
		started = "<6> 1999-12-31 21:00:00.000 +00:00 sensor started\n"
		failed  = "<3> 1999-12-31 23:00:00.000 +00:00 read failed\n"
		temp    = "<6> 1999-12-31 23:50:00.000 +00:00 temperature 21.5\n"
	)
	textLogs := func(id, payload string) string {
		b, _ := json.Marshal([]map[string]any{{"id": id, "payloadBytes": nil, "payload": payload}})
		return string(b)
	}
	tests := []struct {
		name            string
		device, module  string // "" means edge-1 and $edgeAgent
		method, payload string
		params          service.MethodParams[any]
		wantStatus      int
		want            string // the payload, JSON; "" with wantMessage
		wantMessage     string // the start of a failure's message
		wantCode        iothub.ErrorCode
		restarted       string // a module whose Restarts must read 1 after the call
	}{
		// Dispatch.
		{name: "ping", method: "ping", wantStatus: 200, want: "null"},
		{name: "names match case-insensitively", method: "PING", payload: `{}`, wantStatus: 200, want: "null"},
		{name: "unknown method", method: "Reboot", wantStatus: 400,
			want: `{"message":"Command 'Reboot' not found. The supported commands are - ` + allAgentMethods + `"}`},

		// RestartModule.
		{name: "restart a module", method: "RestartModule", payload: `{"schemaVersion":"1.0","id":"tempSensor"}`,
			wantStatus: 200, want: "null", restarted: "tempSensor"},
		{name: "restart edgeHub", method: "RestartModule", payload: `{"schemaVersion":"1.0","id":"edgeHub"}`,
			wantStatus: 200, want: "null", restarted: "edgeHub"},
		{name: "restart an unknown module", method: "RestartModule", payload: `{"schemaVersion":"1.0","id":"nope"}`,
			wantStatus: 500, want: `{"message":"Module nope not found in the current environment"}`},
		{name: "restart by module id, not name", method: "RestartModule", payload: `{"schemaVersion":"1.0","id":"$edgeHub"}`,
			wantStatus: 500, want: `{"message":"Module $edgeHub not found in the current environment"}`},
		{name: "restart without a payload", method: "RestartModule", wantStatus: 400, want: `{"message":"Request payload not found"}`},
		{name: "restart with a payload that is not an object", method: "RestartModule", payload: `"tempSensor"`,
			wantStatus: 400, wantMessage: "Request payload could not be parsed: "},
		{name: "restart without schemaVersion", method: "RestartModule", payload: `{"id":"tempSensor"}`,
			wantStatus: 400, want: `{"message":"The request has no schemaVersion."}`},
		{name: "restart with schema major 2", method: "RestartModule", payload: `{"schemaVersion":"2.0","id":"tempSensor"}`,
			wantStatus: 500, want: `{"message":"The request schema version 2.0 is not compatible with the expected version 1.0."}`},
		{name: "restart without id", method: "RestartModule", payload: `{"schemaVersion":"1.0"}`,
			wantStatus: 400, want: `{"message":"The request has no module id."}`},

		// GetModuleLogs and its filters.
		{name: "logs, tail", method: "GetModuleLogs",
			payload:    `{"schemaVersion":"1.0","items":[{"id":"tempSensor","filter":{"tail":1}}],"encoding":"none","contentType":"text"}`,
			wantStatus: 200, want: textLogs("tempSensor", temp)},
		{name: "logs, since a duration", method: "GetModuleLogs",
			payload:    `{"schemaVersion":"1.0","items":[{"id":"tempSensor","filter":{"since":"90m"}}],"encoding":"none","contentType":"text"}`,
			wantStatus: 200, want: textLogs("tempSensor", failed+temp)},
		{name: "logs, since Unix seconds as a number, until RFC 3339", method: "GetModuleLogs",
			payload:    `{"schemaVersion":"1.0","items":[{"id":"tempSensor","filter":{"since":946677600,"until":"1999-12-31T23:30:00Z"}}],"encoding":"none","contentType":"text"}`,
			wantStatus: 200, want: textLogs("tempSensor", failed)},
		{name: "logs, loglevel", method: "GetModuleLogs",
			payload:    `{"schemaVersion":"1.0","items":[{"id":"tempSensor","filter":{"loglevel":3}}],"encoding":"none","contentType":"text"}`,
			wantStatus: 200, want: textLogs("tempSensor", failed)},
		{name: "logs, regex on the text", method: "GetModuleLogs",
			payload:    `{"schemaVersion":"1.0","items":[{"id":"tempSensor","filter":{"regex":"^temp"}}],"encoding":"none","contentType":"text"}`,
			wantStatus: 200, want: textLogs("tempSensor", temp)},
		{name: "logs, items as one object", method: "GetModuleLogs",
			payload:    `{"schemaVersion":"1.0","items":{"id":"tempSensor","filter":{"tail":2}},"encoding":"none","contentType":"text"}`,
			wantStatus: 200, want: textLogs("tempSensor", failed+temp)},
		{name: "logs, json records", method: "GetModuleLogs",
			payload:    `{"schemaVersion":"1.0","items":[{"id":"tempSensor","filter":{"tail":1}}],"encoding":"none","contentType":"json"}`,
			wantStatus: 200, want: `[{"id":"tempSensor","payloadBytes":null,"payload":[{"iothub":"` + iothubtest.DefaultHostName +
				`","device":"edge-1","id":"tempSensor","stream":"stdout","loglevel":6,"text":"temperature 21.5","timestamp":"1999-12-31T23:50:00Z"}]}]`},
		{name: "logs, an id regex matching every module", method: "GetModuleLogs",
			payload:    `{"schemaVersion":"1.0","items":[{"id":".*","filter":{"tail":0}}],"encoding":"none","contentType":"text"}`,
			wantStatus: 200, want: `[{"id":"edgeAgent","payloadBytes":null,"payload":""},{"id":"edgeHub","payloadBytes":null,"payload":""},` +
				`{"id":"filterModule","payloadBytes":null,"payload":""},{"id":"tempSensor","payloadBytes":null,"payload":""}]`},
		{name: "logs of no module", method: "GetModuleLogs",
			payload:    `{"schemaVersion":"1.0","items":[{"id":"nope"}],"encoding":"none","contentType":"text"}`,
			wantStatus: 200, want: `[]`},
		{name: "logs without items", method: "GetModuleLogs", payload: `{"schemaVersion":"1.0","encoding":"none","contentType":"text"}`,
			wantStatus: 400, want: `{"message":"The request has no items."}`},
		{name: "logs, negative tail", method: "GetModuleLogs",
			payload:    `{"schemaVersion":"1.0","items":[{"id":"tempSensor","filter":{"tail":-1}}],"encoding":"none","contentType":"text"}`,
			wantStatus: 400, want: `{"message":"items[0].filter.tail must not be negative."}`},
		{name: "logs, an unknown encoding", method: "GetModuleLogs",
			payload:    `{"schemaVersion":"1.0","items":[{"id":"tempSensor"}],"encoding":"zip","contentType":"text"}`,
			wantStatus: 400, want: `{"message":"encoding \"zip\" is not one of gzip, none."}`},
		{name: "logs, a since that is no time", method: "GetModuleLogs",
			payload:    `{"schemaVersion":"1.0","items":[{"id":"tempSensor","filter":{"since":"yesterday"}}],"encoding":"none","contentType":"text"}`,
			wantStatus: 400, wantMessage: "items[0].filter.since: "},

		// Uploads and tasks (the life cycle is TestEdgeTaskLifeCycle's).
		{name: "upload without sasUrl", method: "UploadModuleLogs",
			payload:    `{"schemaVersion":"1.0","items":[{"id":"tempSensor"}],"encoding":"gzip","contentType":"json"}`,
			wantStatus: 400, want: `{"message":"The request has no sasUrl."}`},
		{name: "support bundle without sasUrl", method: "UploadSupportBundle", payload: `{"schemaVersion":"1.0"}`,
			wantStatus: 400, want: `{"message":"The request has no sasUrl."}`},
		{name: "status of an unknown task", method: "GetTaskStatus", payload: `{"schemaVersion":"1.0","correlationId":"nope"}`,
			wantStatus: 200, want: `{"status":"Unknown","message":"","correlationId":"nope"}`},
		{name: "status without correlationId", method: "GetTaskStatus", payload: `{"schemaVersion":"1.0"}`,
			wantStatus: 400, want: `{"message":"The request has no correlationId."}`},

		// $edgeHub.
		{name: "edgeHub refresh", module: hubM, method: "RefreshDeviceScopeIdentityCache", payload: `{"deviceIds":["child-1"]}`,
			wantStatus: 200, want: "null"},
		{name: "edgeHub refresh without deviceIds", module: hubM, method: "RefreshDeviceScopeIdentityCache", payload: `{}`,
			wantStatus: 400, want: `{"message":"The request has no deviceIds."}`},
		{name: "edgeHub refresh without a payload", module: hubM, method: "RefreshDeviceScopeIdentityCache",
			wantStatus: 400, want: `{"message":"Request payload not found"}`},
		{name: "edgeHub has no ping", module: hubM, method: "ping", wantStatus: 404, want: `{"message":"Method ping is not supported"}`},

		// The hub's answers.
		{name: "a plain device has no agent", device: "plain-1", method: "ping", wantCode: iothub.ErrorCodeModuleNotFound},
		{name: "a custom module is a module identity without handlers", module: "tempSensor", method: "ping",
			wantStatus: iothubtest.NotImplementedStatus, want: "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub, c := edgeHub(t, nil)
				device, module := tt.device, tt.module
				if device == "" {
					device = "edge-1"
				}
				if module == "" {
					module = agent
				}
				got := invoke(t, c, device, module, tt.method, tt.payload, tt.params)
				want := runtimeAnswer{Status: tt.wantStatus, Code: tt.wantCode}
				switch {
				case tt.wantMessage != "":
					if m := message(got.Payload); !strings.HasPrefix(m, tt.wantMessage) {
						t.Errorf("message %q, want it to start with %q", m, tt.wantMessage)
					}
					want.Payload = got.Payload
				case tt.want != "":
					want.Payload = decodeJSON(t, tt.want)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("answer (-want +got):\n%s", diff)
				}
				if tt.restarted != "" {
					if n := hub.Device("edge-1").Edge().Restarts(tt.restarted); n != 1 {
						t.Errorf("Restarts(%q) = %d, want 1", tt.restarted, n)
					}
				} else if n := hub.Device("edge-1").Edge().Restarts("tempSensor"); n != 0 {
					t.Errorf("Restarts(tempSensor) = %d, want 0", n)
				}
			})
		})
	}
}

// TestEdgeTaskLifeCycle: an upload task reads NotStarted when it starts,
// then one state per GetTaskStatus: Running, then Completed (or Failed
// for a SAS URL without https or sig), where it stays; RestartAgent makes
// the agent forget it.
func TestEdgeTaskLifeCycle(t *testing.T) {
	t.Parallel()
	const logs = `"items":[{"id":"tempSensor"}],"encoding":"gzip","contentType":"json"`
	const failed = "Error uploading to the blob container: the SAS URL is not a valid https URL with a signature."
	type state struct{ Status, Message string }
	tests := []struct {
		name, method, payload string
		want                  []state // the states of the answers to the start and then each GetTaskStatus
	}{
		{"module logs", "UploadModuleLogs", `{"schemaVersion":"1.0",` + logs + `,"sasUrl":"https://acct.blob.core.windows.net/logs?sv=1&sig=S"}`,
			[]state{{"NotStarted", ""}, {"Running", ""}, {"Completed", ""}, {"Completed", ""}}},
		{"module logs to a URL without sig", "UploadModuleLogs", `{"schemaVersion":"1.0",` + logs + `,"sasUrl":"https://acct.blob.core.windows.net/logs?sv=1"}`,
			[]state{{"NotStarted", ""}, {"Running", ""}, {"Failed", failed}, {"Failed", failed}}},
		{"support bundle", "UploadSupportBundle", `{"schemaVersion":"1.0","sasUrl":"https://acct.blob.core.windows.net/b?sig=S","since":"1d","edgeRuntimeOnly":true}`,
			[]state{{"NotStarted", ""}, {"Running", ""}, {"Completed", ""}}},
		{"support bundle over http", "UploadSupportBundle", `{"schemaVersion":"1.0","sasUrl":"http://acct.blob.core.windows.net/b?sig=S"}`,
			[]state{{"NotStarted", ""}, {"Running", ""}, {"Failed", failed}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub, c := edgeHub(t, nil)
				task := func(a runtimeAnswer) (state, string) {
					t.Helper()
					m, ok := a.Payload.(map[string]any)
					if a.Status != 200 || !ok {
						t.Fatalf("answer %+v, want status 200 and a task", a)
					}
					id, _ := m["correlationId"].(string)
					s, _ := m["status"].(string)
					msg, _ := m["message"].(string)
					return state{s, msg}, id
				}
				first, id := task(invoke(t, c, "edge-1", "$edgeAgent", tt.method, tt.payload, service.MethodParams[any]{}))
				if len(id) != 32 {
					t.Errorf("correlation id %q, want 32 hex digits", id)
				}
				got := []state{first}
				status := `{"schemaVersion":"1.0","correlationId":"` + id + `"}`
				for range len(tt.want) - 1 {
					s, gotID := task(invoke(t, c, "edge-1", "$edgeAgent", "GetTaskStatus", status, service.MethodParams[any]{}))
					if gotID != id {
						t.Errorf("GetTaskStatus answered for %q, want %q", gotID, id)
					}
					got = append(got, s)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("task states (-want +got):\n%s", diff)
				}
				hub.Device("edge-1").Edge().RestartAgent()
				if s, _ := task(invoke(t, c, "edge-1", "$edgeAgent", "GetTaskStatus", status, service.MethodParams[any]{})); s != (state{"Unknown", ""}) {
					t.Errorf("after RestartAgent: %+v, want Unknown", s)
				}
				if n := hub.Device("edge-1").Edge().Restarts("edgeAgent"); n != 1 {
					t.Errorf("Restarts(edgeAgent) = %d, want 1", n)
				}
			})
		})
	}
}

// TestEdgeAccessors: what the Go side of the public API reports of Edge
// devices: which devices have a runtime and modules, logs added while the
// test runs, the size cap those hit, and the restart counts.
func TestEdgeAccessors(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, c := edgeHub(t, nil)
		hub.AddDevice("bare-edge", &iothubtest.DeviceOptions{Edge: true})

		type modules struct{ Agent, Hub, Custom bool }
		tests := []struct {
			device   string
			edge     bool
			want     modules
			edgeFlag bool
		}{
			{"edge-1", true, modules{true, true, true}, true},
			{"bare-edge", true, modules{true, true, false}, true},
			{"plain-1", false, modules{}, false},
		}
		for _, tt := range tests {
			d := hub.Device(tt.device)
			if got := d.Edge() != nil; got != tt.edge {
				t.Errorf("%s: Edge() != nil is %v, want %v", tt.device, got, tt.edge)
			}
			got := modules{d.Module("$edgeAgent") != nil, d.Module("$edgeHub") != nil, d.Module("tempSensor") != nil}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s: modules (-want +got):\n%s", tt.device, diff)
			}
		}

		e := hub.Device("edge-1").Edge()
		// AddLogs appends to a module's log (here edgeAgent's own).
		e.AddLogs("edgeAgent", iothubtest.LogLine{Time: time.Now(), LogLevel: 4, Text: "agent warning"})
		got := invoke(t, c, "edge-1", "$edgeAgent", "GetModuleLogs",
			`{"schemaVersion":"1.0","items":[{"id":"^edgeAgent$"}],"encoding":"none","contentType":"text"}`, service.MethodParams[any]{})
		want := runtimeAnswer{Status: 200, Payload: decodeJSON(t, `[{"id":"edgeAgent","payloadBytes":null,"payload":"<4> 2000-01-01 00:00:00.000 +00:00 agent warning\n"}]`)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("logs after AddLogs (-want +got):\n%s", diff)
		}

		// Logs over 127,000 bytes: 400, and a tail brings them under.
		line := strings.Repeat("x", 1000)
		for range 130 {
			e.AddLogs("filterModule", iothubtest.LogLine{Time: time.Now(), LogLevel: 6, Text: line})
		}
		big := invoke(t, c, "edge-1", "$edgeAgent", "GetModuleLogs",
			`{"schemaVersion":"1.0","items":[{"id":"filterModule"}],"encoding":"none","contentType":"text"}`, service.MethodParams[any]{})
		if big.Status != 400 || !strings.HasPrefix(message(big.Payload), "The payload is too large for a direct method. GetModuleLogs supports up to 127000 bytes") {
			t.Errorf("logs over the cap: %+v, want 400 and the size message", big)
		}
		tail := invoke(t, c, "edge-1", "$edgeAgent", "GetModuleLogs",
			`{"schemaVersion":"1.0","items":[{"id":"filterModule","filter":{"tail":10}}],"encoding":"none","contentType":"text"}`, service.MethodParams[any]{})
		if tail.Status != 200 {
			t.Errorf("logs with a tail: %+v, want 200", tail)
		}

		// Restarts counts RestartModule per module name, and RestartAgent.
		for _, m := range []string{"tempSensor", "tempSensor", "edgeHub"} {
			if a := invoke(t, c, "edge-1", "$edgeAgent", "RestartModule", `{"schemaVersion":"1.0","id":"`+m+`"}`, service.MethodParams[any]{}); a.Status != 200 {
				t.Fatalf("RestartModule %s: %+v", m, a)
			}
		}
		e.RestartAgent()
		restarts := map[string]int{}
		for _, m := range []string{"tempSensor", "edgeHub", "edgeAgent", "filterModule", "nope"} {
			restarts[m] = e.Restarts(m)
		}
		if diff := cmp.Diff(map[string]int{"tempSensor": 2, "edgeHub": 1, "edgeAgent": 1, "filterModule": 0, "nope": 0}, restarts); diff != "" {
			t.Errorf("Restarts (-want +got):\n%s", diff)
		}
		if n := hub.Deliveries("edge-1", "$edgeAgent", "RestartModule"); n != 3 {
			t.Errorf("Deliveries of RestartModule = %d, want 3", n)
		}
	})
}

// TestEdgeAgentRestartWindow: a RestartModule of edgeAgent ends 504101,
// then the agent is away for AgentRestartWindow (404103, not delivered, or
// delivered once it is back to a call with a connect timeout) and answers
// only ping and GetTaskStatus for AgentStartupWindow; all in the hub's
// fake clock.
func TestEdgeAgentRestartWindow(t *testing.T) {
	t.Parallel()
	const (
		logs   = `{"schemaVersion":"1.0","items":[{"id":"tempSensor","filter":{"tail":0}}],"encoding":"none","contentType":"text"}`
		status = `{"schemaVersion":"1.0","correlationId":"t1"}`
	)
	starting := func(method string) runtimeAnswer {
		return runtimeAnswer{Status: 400, Payload: map[string]any{"message": "Command '" + method + "' not found. The supported commands are - ping,GetTaskStatus"}}
	}
	var (
		notOnline = runtimeAnswer{Code: iothub.ErrorCodeDeviceNotOnline}
		pong      = runtimeAnswer{Status: 200}
		lost      = runtimeAnswer{Status: 200, Payload: map[string]any{"status": "Unknown", "message": "", "correlationId": "t1"}}
		logsOK    = runtimeAnswer{Status: 200, Payload: []any{map[string]any{"id": "tempSensor", "payloadBytes": nil, "payload": ""}}}
	)
	// A probe is a call made at a time after the restart was delivered
	// (the call itself ends 504101 at +5 s), and when its answer comes.
	type probe struct {
		at              time.Duration
		restartAgent    bool // call Edge.RestartAgent first
		method, payload string
		connect         int // ConnectTimeoutInSeconds
		want            runtimeAnswer
		online          bool // the registry shows $edgeAgent connected after the answer
		doneAt          time.Duration
	}
	tests := []struct {
		name   string
		opts   *iothubtest.EdgeOptions
		probes []probe
	}{
		{
			name: "the default window",
			probes: []probe{
				{at: 5 * time.Second, method: "ping", want: notOnline, doneAt: 5 * time.Second},
				{at: 5 * time.Second, method: "GetTaskStatus", payload: status, want: notOnline, doneAt: 5 * time.Second},
				{at: 9 * time.Second, method: "GetModuleLogs", payload: logs, want: notOnline, doneAt: 9 * time.Second},
				{at: 9 * time.Second, method: "ping", connect: 30, want: pong, online: true, doneAt: iothubtest.DefaultAgentRestartWindow},
				{at: 10 * time.Second, method: "GetModuleLogs", payload: logs, want: logsOK, online: true, doneAt: 10 * time.Second},
			},
		},
		{
			name: "a short window, then a startup window",
			opts: &iothubtest.EdgeOptions{AgentRestartWindow: 3 * time.Second, AgentStartupWindow: 4 * time.Second},
			probes: []probe{
				{at: 5 * time.Second, method: "ping", want: pong, online: true, doneAt: 5 * time.Second},
				{at: 5 * time.Second, method: "gettaskstatus", payload: status, want: lost, online: true, doneAt: 5 * time.Second},
				{at: 5 * time.Second, method: "GetModuleLogs", payload: logs, want: starting("GetModuleLogs"), online: true, doneAt: 5 * time.Second},
				{at: 6 * time.Second, method: "RestartModule", payload: `{"schemaVersion":"1.0","id":"tempSensor"}`, want: starting("RestartModule"), online: true, doneAt: 6 * time.Second},
				{at: 7 * time.Second, method: "GetModuleLogs", payload: logs, want: logsOK, online: true, doneAt: 7 * time.Second},
			},
		},
		{
			name: "a call waiting through the window lands in the startup window",
			opts: &iothubtest.EdgeOptions{AgentStartupWindow: 5 * time.Second},
			probes: []probe{
				{at: 5 * time.Second, method: "GetModuleLogs", payload: logs, connect: 60, want: starting("GetModuleLogs"), online: true, doneAt: 10 * time.Second},
				{at: 14 * time.Second, method: "GetModuleLogs", payload: logs, want: starting("GetModuleLogs"), online: true, doneAt: 14 * time.Second},
				{at: 15 * time.Second, method: "GetModuleLogs", payload: logs, want: logsOK, online: true, doneAt: 15 * time.Second},
			},
		},
		{
			name: "no window",
			opts: &iothubtest.EdgeOptions{AgentRestartWindow: -1},
			probes: []probe{
				{at: 5 * time.Second, method: "GetModuleLogs", payload: logs, want: logsOK, online: true, doneAt: 5 * time.Second},
			},
		},
		{
			name: "RestartAgent ends the window",
			probes: []probe{
				{at: 5 * time.Second, method: "ping", want: notOnline, doneAt: 5 * time.Second},
				{at: 6 * time.Second, restartAgent: true, method: "GetModuleLogs", payload: logs, want: logsOK, online: true, doneAt: 6 * time.Second},
				{at: 11 * time.Second, method: "ping", want: pong, online: true, doneAt: 11 * time.Second},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub, c := edgeHub(t, tt.opts)
				dev := hub.Device("edge-1")
				reg, err := registry.NewClientFromConnectionString(hub.ConnectionStringFor(iothubtest.PolicyIoTHubOwner), hub.ClientOptions())
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				_, err = c.InvokeModuleMethod(t.Context(), "edge-1", "$edgeAgent", service.MethodParams[any]{
					Name: "RestartModule", Payload: json.RawMessage(`{"schemaVersion":"1.0","id":"edgeAgent"}`), TimeoutInSeconds: 5}, nil)
				if !errors.Is(err, iothub.ErrGatewayTimeout) || !iothub.MayHaveRun(err) {
					t.Fatalf("restart of the agent: %v, want 504101 that may have run", err)
				}
				for i, p := range tt.probes {
					time.Sleep(time.Until(start.Add(p.at)))
					if p.restartAgent {
						dev.Edge().RestartAgent()
					}
					params := service.MethodParams[any]{Name: p.method, ConnectTimeoutInSeconds: p.connect}
					if p.payload != "" {
						params.Payload = json.RawMessage(p.payload)
					}
					res, err := c.InvokeModuleMethod(t.Context(), "edge-1", "$edgeAgent", params, nil)
					got := runtimeAnswer{Status: res.Status}
					if err != nil {
						var he *iothub.Error
						if !errors.As(err, &he) {
							t.Fatalf("probe %d (%s): %v", i, p.method, err)
						}
						got = runtimeAnswer{Code: he.Code}
						if he.Code == iothub.ErrorCodeDeviceNotOnline && (iothub.MayHaveRun(err) || !errors.Is(err, iothub.ErrDeviceNotOnline)) {
							t.Errorf("probe %d (%s): %v, want ErrDeviceNotOnline, not delivered", i, p.method, err)
						}
					} else {
						got.Payload = decodeAnswer(t, res.Payload)
					}
					if diff := cmp.Diff(p.want, got); diff != "" {
						t.Errorf("probe %d (%s at +%v): answer (-want +got):\n%s", i, p.method, p.at, diff)
					}
					if d := time.Since(start); d != p.doneAt {
						t.Errorf("probe %d (%s): answered at +%v, want +%v", i, p.method, d, p.doneAt)
					}
					m, err := reg.GetModule(t.Context(), "edge-1", "$edgeAgent", nil)
					if err != nil {
						t.Fatal(err)
					}
					if on := m.ConnectionState == registry.ConnectionStateConnected; on != p.online {
						t.Errorf("probe %d (%s): $edgeAgent %s in the registry, want connected %v", i, p.method, m.ConnectionState, p.online)
					}
				}
				if n := dev.Edge().Restarts("edgeAgent"); n < 1 {
					t.Errorf("Restarts(edgeAgent) = %d, want at least 1", n)
				}
			})
		})
	}
}
