// Package simfleet is the simulated fleet that the example programs'
// embedded hub (examples/internal/simhub) and the standalone simulator
// (cmd/iothubsim) both put on a fake hub: a few named devices, an IoT Edge
// device, a Plug and Play device, and any number of numbered fleet devices, some of which can be
// made to misbehave.
//
// The fleet is built through the public iothubtest API, so the hub it
// lives on is an *iothubtest.Hub. The method handlers are plain functions
// shared by every device (one iothubtest.DeviceOptions.Methods table per
// behaviour), so an idle fleet device costs the hub only its registry
// entry.
package simfleet

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/hubkit/iothub/iothubtest"
)

// Options configures the fleet. The zero value, and nil, give the named
// devices only.
type Options struct {
	// Fleet is how many devices to add besides the named ones.
	Fleet int
	// Troubled makes some fleet devices misbehave, chosen by their number
	// i so that every run is the same; see TroubleOf. False: every fleet
	// device behaves.
	Troubled bool
	// SlowLatency is the latency of Troubled's slow devices; 0 means 3 s.
	SlowLatency time.Duration
	// Edge is how many IoT Edge devices to add besides sim-edge-1:
	// sim-edge-00001 and on (EdgeID), each with an "$edgeAgent" module as
	// sim-edge-1 has.
	Edge int
}

// Trouble is how a Troubled fleet device misbehaves.
type Trouble int

// The troubles of Options.Troubled.
const (
	// Fine devices behave.
	Fine Trouble = iota
	// Offline devices are registered but not connected (404103).
	Offline
	// Failing devices answer every method with status 500.
	Failing
	// Slow devices answer after Options.SlowLatency.
	Slow
	// LosesResponse devices run the method, but the hub answers 504101.
	LosesResponse
)

// String returns the trouble's name, as in "offline".
func (t Trouble) String() string {
	switch t {
	case Fine:
		return "fine"
	case Offline:
		return "offline"
	case Failing:
		return "failing"
	case Slow:
		return "slow"
	case LosesResponse:
		return "loses-response"
	}
	return "Trouble(" + strconv.Itoa(int(t)) + ")"
}

// TroubleOf returns how fleet device number i (1 for sim-fleet-00001)
// misbehaves under Options.Troubled: i%10 == 3 is Offline, i%10 == 7
// Failing, i%20 == 5 Slow and i%25 == 11 LosesResponse; the others are Fine.
func TroubleOf(i int) Trouble {
	switch {
	case i%10 == 3:
		return Offline
	case i%10 == 7:
		return Failing
	case i%20 == 5:
		return Slow
	case i%25 == 11:
		return LosesResponse
	}
	return Fine
}

// FleetID returns the id of fleet device number i.
func FleetID(i int) string { return fmt.Sprintf("sim-fleet-%05d", i) }

// EdgeID returns the id of the Edge device number i that Options.Edge adds.
func EdgeID(i int) string { return fmt.Sprintf("sim-edge-%05d", i) }

// Named devices.
const (
	// EdgeDevice is the IoT Edge device whose runtime answers the
	// built-in methods of $edgeAgent and $edgeHub.
	EdgeDevice = "sim-edge-1"
	// EdgeAgent is the Edge device's agent module.
	EdgeAgent = "$edgeAgent"
	// PnPDevice is the Plug and Play device, a temperature controller
	// (PnPModelID) with the components "thermostat1" and "thermostat2".
	PnPDevice = "sim-pnp-1"
	// PnPModelID is the model the Plug and Play device announces.
	PnPModelID = "dtmi:com:example:TemperatureController;2"
)

// NamedIDs returns the ids of the named devices, in the order Add adds
// them.
func NamedIDs() []string {
	return []string{"sim-device-1", "sim-device-2", "sim-device-3", "sim-device-slow", "sim-device-offline", EdgeDevice, PnPDevice}
}

// DeviceIDs returns the ids of the devices Add adds with opts: the named
// ones, then the fleet in order, then the Edge devices of Options.Edge.
func DeviceIDs(opts *Options) []string {
	ids := NamedIDs()
	if opts != nil {
		ids = slices.Grow(ids, max(opts.Fleet, 0)+max(opts.Edge, 0))
		for i := 1; i <= opts.Fleet; i++ {
			ids = append(ids, FleetID(i))
		}
		for i := 1; i <= opts.Edge; i++ {
			ids = append(ids, EdgeID(i))
		}
	}
	return ids
}

// Add adds the fleet's devices to h:
//
//   - sim-device-1 … sim-device-3: online;
//   - sim-device-slow: online, answers after 2 s;
//   - sim-device-offline: registered but not connected (404103);
//   - sim-edge-1: an IoT Edge device (capabilities.iotEdge) whose
//     $edgeAgent and $edgeHub answer the runtime's built-in methods
//     (iothubtest.EdgeOptions), with the modules tempSensor and
//     filterModule and a few log lines of each from the last hour.
//   - sim-pnp-1: a Plug and Play temperature controller (PnPModelID) that
//     reports serialNumber and, in its components "thermostat1" and
//     "thermostat2", maxTempSinceLastReboot and the writable
//     targetTemperature (21.5 and 19, acknowledged with ack code 203); it
//     also answers the component commands "thermostat1*getMaxMinReport"
//     and "thermostat2*getMaxMinReport" (payload: an RFC 3339 time or
//     null), and the root command "reboot" as every device does.
//
// Every device answers "reboot" (payload {"delay":N} or null), "getStatus",
// "echo" (its payload back), and "fail" with status 500, a device-side
// error: the invocation itself succeeds. A method a device or module does
// not know is answered with status 501.
//
// Options.Fleet adds that many more online devices, sim-fleet-00001 and
// on, and Options.Troubled makes some of them misbehave (TroubleOf);
// Options.Edge adds more Edge devices like sim-edge-1. opts
// may be nil. Add panics, as iothubtest.Hub.AddDevice does, when one of
// the ids is already registered.
func Add(h *iothubtest.Hub, opts *Options) {
	var o Options
	if opts != nil {
		o = *opts
	}
	// One handler table per behaviour, shared by every device that has
	// it (DeviceOptions.Methods); neither is changed after this.
	deviceMethods := map[string]iothubtest.MethodHandler{"reboot": reboot, "getStatus": status, "echo": echo, "fail": fail}
	failingMethods := map[string]iothubtest.MethodHandler{"reboot": fail, "getStatus": fail, "echo": fail, "fail": fail}
	for _, id := range []string{"sim-device-1", "sim-device-2", "sim-device-3"} {
		h.AddDevice(id, &iothubtest.DeviceOptions{Methods: deviceMethods})
	}
	h.AddDevice("sim-device-slow", &iothubtest.DeviceOptions{Latency: 2 * time.Second, Methods: deviceMethods})
	h.AddDevice("sim-device-offline", &iothubtest.DeviceOptions{Offline: true, Methods: deviceMethods})
	h.AddDevice(EdgeDevice, &iothubtest.DeviceOptions{Methods: deviceMethods, EdgeRuntime: edgeRuntime(time.Now())})
	pnpMethods := maps.Clone(deviceMethods)
	pnpMethods["thermostat1*getMaxMinReport"] = maxMinReport
	pnpMethods["thermostat2*getMaxMinReport"] = maxMinReport
	pnp := h.AddDevice(PnPDevice, &iothubtest.DeviceOptions{ModelID: PnPModelID, Methods: pnpMethods})
	if err := pnp.SetReported(pnpReported()); err != nil {
		panic("simfleet: the Plug and Play device's reported properties: " + err.Error())
	}
	slow := o.SlowLatency
	if slow <= 0 {
		slow = 3 * time.Second
	}
	var (
		fine     = iothubtest.DeviceOptions{Methods: deviceMethods}
		offline  = iothubtest.DeviceOptions{Offline: true, Methods: deviceMethods}
		failing  = iothubtest.DeviceOptions{Methods: failingMethods, Handler: fail}
		slowOpts = iothubtest.DeviceOptions{Latency: slow, Methods: deviceMethods}
	)
	for i := 1; i <= o.Fleet; i++ {
		id := FleetID(i)
		trouble := Fine
		if o.Troubled {
			trouble = TroubleOf(i)
		}
		switch trouble {
		case Offline:
			h.AddDevice(id, &offline)
		case Failing:
			h.AddDevice(id, &failing)
		case Slow:
			h.AddDevice(id, &slowOpts)
		case LosesResponse:
			h.AddDevice(id, &fine)
			h.AddFault(iothubtest.LostAnswers(id, ""))
		default:
			h.AddDevice(id, &fine)
		}
	}
	if o.Edge > 0 {
		edgeOpts := iothubtest.DeviceOptions{Methods: deviceMethods, EdgeRuntime: edgeRuntime(time.Now())}
		for i := 1; i <= o.Edge; i++ {
			h.AddDevice(EdgeID(i), &edgeOpts)
		}
	}
}

// pnpReported is what the Plug and Play device reports when it connects,
// the Plug and Play way: the root property serialNumber, and in each
// thermostat component (marked "__t": "c") the read-only
// maxTempSinceLastReboot and the writable targetTemperature with the
// acknowledgement of a value the device chose itself (ack code 203, ack
// version 0), as the convention has a device report a writable property no
// one has set yet.
func pnpReported() map[string]any {
	thermostat := func(target, maxTemp float64) map[string]any {
		return map[string]any{
			"__t":                    "c",
			"targetTemperature":      map[string]any{"value": target, "ac": 203, "av": 0, "ad": "initial value"},
			"maxTempSinceLastReboot": maxTemp,
		}
	}
	return map[string]any{
		"serialNumber": "SIM-PNP-0001",
		"thermostat1":  thermostat(21.5, 23.25),
		"thermostat2":  thermostat(19, 20.5),
	}
}

// Modules of the Edge devices' deployment, besides edgeAgent and edgeHub.
const (
	TempSensorModule = "tempSensor"
	FilterModule     = "filterModule"
)

// edgeRuntime is the runtime of the simulated Edge devices: the modules
// tempSensor and filterModule, and a few log lines of each module in the
// hour before now.
func edgeRuntime(now time.Time) *iothubtest.EdgeOptions {
	at := func(minutesAgo int) time.Time {
		return now.Add(-time.Duration(minutesAgo) * time.Minute).Truncate(time.Millisecond)
	}
	return &iothubtest.EdgeOptions{
		Modules: []string{TempSensorModule, FilterModule},
		Logs: map[string][]iothubtest.LogLine{
			TempSensorModule: {
				{Time: at(55), LogLevel: 6, Text: "Starting simulated temperature sensor"},
				{Time: at(40), LogLevel: 6, Text: "Sent message 1: temperature 21.3"},
				{Time: at(25), LogLevel: 4, Stream: "stderr", Text: "Sensor read took 2.1 s, retrying"},
				{Time: at(10), LogLevel: 6, Text: "Sent message 2: temperature 21.6"},
			},
			FilterModule: {
				{Time: at(50), LogLevel: 6, Text: "Filter ready: threshold 25"},
				{Time: at(5), LogLevel: 3, Stream: "stderr", Text: "Dropped a malformed message"},
			},
			"edgeAgent": {{Time: at(58), LogLevel: 6, Text: "Starting module management agent"}},
			"edgeHub":   {{Time: at(57), LogLevel: 6, Text: "Starting Edge Hub"}},
		},
	}
}

func reboot(_ context.Context, call iothubtest.MethodCall) iothubtest.MethodResponse {
	var req struct {
		Delay int `json:"delay"`
	}
	if len(call.Payload) > 0 && json.Unmarshal(call.Payload, &req) != nil {
		return iothubtest.MethodResponse{Status: 400, Payload: json.RawMessage(`{"error":"payload must be an object such as {\"delay\":5}"}`)}
	}
	out, _ := json.Marshal(map[string]any{"rebooting": true, "delay": req.Delay})
	return iothubtest.MethodResponse{Status: 200, Payload: json.RawMessage(out)}
}

// maxMinReport is a thermostat component's getMaxMinReport command: the
// payload is the start of the period (an RFC 3339 time, or null for all
// of it).
func maxMinReport(_ context.Context, call iothubtest.MethodCall) iothubtest.MethodResponse {
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if p := string(call.Payload); p != "" && p != "null" {
		if err := json.Unmarshal(call.Payload, &since); err != nil {
			return iothubtest.MethodResponse{Status: 400, Payload: json.RawMessage(`{"error":"payload must be an RFC 3339 time such as \"2026-01-01T00:00:00Z\""}`)}
		}
	}
	out, _ := json.Marshal(map[string]any{
		"maxTemp": 31.5, "minTemp": 18.25, "avgTemp": 24.1,
		"startTime": since.UTC().Format(time.RFC3339), "endTime": since.UTC().Add(24 * time.Hour).Format(time.RFC3339),
	})
	return iothubtest.MethodResponse{Status: 200, Payload: json.RawMessage(out)}
}

func status(_ context.Context, call iothubtest.MethodCall) iothubtest.MethodResponse {
	out, _ := json.Marshal(map[string]any{"deviceId": call.DeviceID, "state": "running", "firmware": "1.4.2"})
	return iothubtest.MethodResponse{Status: 200, Payload: json.RawMessage(out)}
}

func fail(context.Context, iothubtest.MethodCall) iothubtest.MethodResponse {
	return iothubtest.MethodResponse{Status: 500, Payload: json.RawMessage(`{"error":"simulated device failure"}`)}
}

func echo(_ context.Context, call iothubtest.MethodCall) iothubtest.MethodResponse {
	return iothubtest.MethodResponse{Status: 200, Payload: call.Payload}
}
