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
	"github.com/hubkit/iothub/internal/httpmock"
	"github.com/hubkit/iothub/registry"
	"github.com/hubkit/iothub/service"
)

// Options configures the simulated hub.
type Options struct {
	// Fleet is how many devices to add besides the named ones.
	Fleet int
}

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
// on, for programs that work on a whole fleet. A nil *Options adds none.
func Start(opts *Options) (*Hub, error) {
	h := httpmock.New(nil)
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
		for i := 1; i <= opts.Fleet; i++ {
			add(fmt.Sprintf("sim-fleet-%05d", i), nil)
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

// RegistryClient returns a registry client for the simulated hub, signed
// with the "iothubowner" policy (registry reads and writes, twins and
// queries), sending to its TLS listener.
func (h *Hub) RegistryClient() (*registry.Client, error) {
	return registry.NewClientFromConnectionString(h.hub.ConnectionString("iothubowner"), &iothub.ClientOptions{
		Endpoint:  h.srv.URL,
		Transport: h.srv.Client().Transport,
	})
}

// Close stops the listener.
func (h *Hub) Close() { h.srv.Close() }
