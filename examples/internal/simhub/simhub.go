// Package simhub starts the embedded simulated hub the example programs use
// when they are given no credentials: the SDK's fake IoT Hub behind a real
// TLS listener on 127.0.0.1, with a few devices that answer methods.
package simhub

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/registry"
	"github.com/hubkit/iothub/service"
)

// Options configures the simulated hub.
type Options struct {
	// Fleet is how many devices to add besides the named ones.
	Fleet int
	// Troubled makes some fleet devices misbehave, chosen by their number
	// i so that every run is the same: i%10 == 3 is offline (404103),
	// i%10 == 7 answers every method with status 500, i%20 == 5 is slow
	// (SlowLatency), and i%25 == 11 loses its responses (the method runs,
	// the hub answers 504101). The others behave. False: every fleet
	// device behaves.
	Troubled bool
	// SlowLatency is the latency of Troubled's slow devices; 0 means 3 s.
	SlowLatency time.Duration
	// JobDeviceOpsPerSecond is the rate at which IoT Hub jobs reach their
	// devices; 0 means an S1 hub's 10 per second.
	JobDeviceOpsPerSecond float64
}

// Trouble is how a Troubled fleet device misbehaves.
type Trouble int

// The troubles of Options.Troubled.
const (
	Fine Trouble = iota
	Offline
	Failing
	Slow
	LosesResponse
)

// TroubleOf returns how fleet device number i (1 for sim-fleet-00001)
// misbehaves under Options.Troubled.
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

// Hub is a running simulated hub.
type Hub struct {
	hub     *httpmock.Hub
	srv     *httpmock.Server
	devices []string
}

// Start starts a simulated hub with these devices:
//
//   - sim-device-1 … sim-device-3: online;
//   - sim-device-slow: online, answers after 2 s;
//   - sim-device-offline: registered but not connected (404103);
//   - sim-edge-1: an IoT Edge device whose "$edgeAgent" module answers
//     "RestartModule" and "ping".
//
// Every device answers "reboot" (payload {"delay":N} or null), "getStatus",
// "echo" (its payload back), and "fail" with status 500, a device-side
// error: the invocation itself succeeds. A method a device or module does
// not know is answered with status 501.
//
// Options.Fleet adds that many more online devices, sim-fleet-00001 and
// on, for programs that work on a whole fleet, and Options.Troubled makes
// some of them offline, failing, slow or losing their responses. A nil
// *Options adds none.
func Start(opts *Options) (*Hub, error) {
	// A long run against a large simulated fleet must not keep every
	// request; tests of the programs look at a few recent ones at most.
	hopts := httpmock.Options{MaxRecorded: 10_000}
	if opts != nil {
		hopts.JobDeviceOpsPerSecond = opts.JobDeviceOpsPerSecond
	}
	h := httpmock.New(&hopts)
	var ids []string
	add := func(id string, opts *httpmock.DeviceOptions) *httpmock.Device {
		ids = append(ids, id)
		d := h.AddDevice(id, opts)
		d.HandleMethod("reboot", reboot)
		d.HandleMethod("getStatus", status(id))
		d.HandleMethod("echo", echo)
		d.HandleMethod("fail", fail)
		return d
	}
	for _, id := range []string{"sim-device-1", "sim-device-2", "sim-device-3"} {
		add(id, nil)
	}
	add("sim-device-slow", &httpmock.DeviceOptions{Latency: 2 * time.Second})
	add("sim-device-offline", &httpmock.DeviceOptions{Offline: true})
	edge := add("sim-edge-1", nil)
	if opts != nil {
		slow := opts.SlowLatency
		if slow <= 0 {
			slow = 3 * time.Second
		}
		for i := 1; i <= opts.Fleet; i++ {
			id := FleetID(i)
			trouble := Fine
			if opts.Troubled {
				trouble = TroubleOf(i)
			}
			switch trouble {
			case Offline:
				add(id, &httpmock.DeviceOptions{Offline: true})
			case Failing:
				d := add(id, nil)
				for _, m := range []string{"reboot", "getStatus", "echo"} {
					d.HandleMethod(m, fail)
				}
				d.SetDefaultHandler(fail)
			case Slow:
				add(id, &httpmock.DeviceOptions{Latency: slow})
			case LosesResponse:
				add(id, nil)
				h.AddFault(httpmock.Fault{Operation: httpmock.OperationMethod, DeviceID: id, AfterDelivery: true, Times: -1})
			default:
				add(id, nil)
			}
		}
	}
	agent := edge.AddModule("$edgeAgent")
	agent.HandleMethod("RestartModule", func(_ context.Context, call httpmock.MethodCall) httpmock.MethodResponse {
		return httpmock.MethodResponse{Status: 200, Payload: json.RawMessage(`null`)}
	})
	agent.HandleMethod("ping", func(context.Context, httpmock.MethodCall) httpmock.MethodResponse {
		return httpmock.MethodResponse{Status: 200, Payload: json.RawMessage(`null`)}
	})

	srv, err := h.StartTLS()
	if err != nil {
		return nil, err
	}
	return &Hub{hub: h, srv: srv, devices: ids}, nil
}

func reboot(_ context.Context, call httpmock.MethodCall) httpmock.MethodResponse {
	var req struct {
		Delay int `json:"delay"`
	}
	if len(call.Payload) > 0 && json.Unmarshal(call.Payload, &req) != nil {
		return httpmock.MethodResponse{Status: 400, Payload: json.RawMessage(`{"error":"payload must be an object such as {\"delay\":5}"}`)}
	}
	out, _ := json.Marshal(map[string]any{"rebooting": true, "delay": req.Delay})
	return httpmock.MethodResponse{Status: 200, Payload: out}
}

func status(id string) httpmock.MethodHandler {
	return func(context.Context, httpmock.MethodCall) httpmock.MethodResponse {
		out, _ := json.Marshal(map[string]any{"deviceId": id, "state": "running", "firmware": "1.4.2"})
		return httpmock.MethodResponse{Status: 200, Payload: out}
	}
}

func fail(context.Context, httpmock.MethodCall) httpmock.MethodResponse {
	return httpmock.MethodResponse{Status: 500, Payload: json.RawMessage(`{"error":"simulated device failure"}`)}
}

func echo(_ context.Context, call httpmock.MethodCall) httpmock.MethodResponse {
	return httpmock.MethodResponse{Status: 200, Payload: call.Payload}
}

// HostName returns the simulated hub's host name.
func (h *Hub) HostName() string { return h.hub.HostName() }

// DeviceIDs returns the ids of the simulated devices.
func (h *Hub) DeviceIDs() []string { return h.devices }

// Client returns a service client for the simulated hub, signed with the
// "service" policy, sending to its TLS listener.
func (h *Hub) Client() (*service.Client, error) {
	return service.NewClientFromConnectionString(h.hub.ConnectionString("service"), &iothub.ClientOptions{
		Endpoint:  h.srv.URL,
		Transport: h.srv.Client().Transport,
	})
}

// OwnerClient returns a service client signed with the "iothubowner"
// policy, which jobs need (ServiceConnect with registry rights).
func (h *Hub) OwnerClient() (*service.Client, error) {
	return service.NewClientFromConnectionString(h.hub.ConnectionString("iothubowner"), &iothub.ClientOptions{
		Endpoint:  h.srv.URL,
		Transport: h.srv.Client().Transport,
	})
}

// RegistryClient returns a registry client for the simulated hub, signed
// with the "iothubowner" policy (registry reads and writes, twins and
// queries), sending to its TLS listener.
func (h *Hub) RegistryClient() (*registry.Client, error) {
	return registry.NewClientFromConnectionString(h.hub.ConnectionString("iothubowner"), &iothub.ClientOptions{
		Endpoint:  h.srv.URL,
		Transport: h.srv.Client().Transport,
	})
}

// Mock returns the simulated hub itself, for tests that count what reached
// its devices or script faults.
func (h *Hub) Mock() *httpmock.Hub { return h.hub }

// Close stops the listener.
func (h *Hub) Close() { h.srv.Close() }
