// Package simhub starts the embedded simulated hub the example programs use
// when they are given no credentials: the public fake IoT Hub
// (iothubtest) behind a real TLS listener on 127.0.0.1, with a few devices
// that answer methods.
package simhub

import (
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/digitaltwin"
	"github.com/hubkit/iothub/internal/testkit/simfleet"
	"github.com/hubkit/iothub/iothubtest"
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
	// the hub answers 504101); see simfleet.TroubleOf. The others behave.
	// False: every fleet device behaves.
	Troubled bool
	// SlowLatency is the latency of Troubled's slow devices; 0 means 3 s.
	SlowLatency time.Duration
	// Edge is how many IoT Edge devices to add besides sim-edge-1:
	// sim-edge-00001 and on, each like sim-edge-1.
	Edge int
	// JobDeviceOpsPerSecond is the rate at which IoT Hub jobs reach their
	// devices; 0 means an S1 hub's 10 per second.
	JobDeviceOpsPerSecond float64
}

// Trouble is how a Troubled fleet device misbehaves.
type Trouble = simfleet.Trouble

// The troubles of Options.Troubled.
const (
	Fine          = simfleet.Fine
	Offline       = simfleet.Offline
	Failing       = simfleet.Failing
	Slow          = simfleet.Slow
	LosesResponse = simfleet.LosesResponse
)

// TroubleOf returns how fleet device number i (1 for sim-fleet-00001)
// misbehaves under Options.Troubled.
func TroubleOf(i int) Trouble { return simfleet.TroubleOf(i) }

// FleetID returns the id of fleet device number i.
func FleetID(i int) string { return simfleet.FleetID(i) }

// Hub is a running simulated hub.
type Hub struct {
	srv   *iothubtest.Server
	fleet simfleet.Options
}

// Start starts a simulated hub with these devices:
//
//   - sim-device-1 … sim-device-3: online;
//   - sim-device-slow: online, answers after 2 s;
//   - sim-device-offline: registered but not connected (404103);
//   - sim-edge-1: an IoT Edge device whose $edgeAgent and $edgeHub answer
//     the runtime's built-in methods, with the modules tempSensor and
//     filterModule and a few log lines of each from the last hour.
//   - sim-pnp-1: a Plug and Play temperature controller
//     (dtmi:com:example:TemperatureController;2) that reports serialNumber,
//     and whose components "thermostat1" and "thermostat2" report
//     targetTemperature (writable) and maxTempSinceLastReboot and answer
//     the command "getMaxMinReport".
//
// Every device answers "reboot" (payload {"delay":N} or null), "getStatus",
// "echo" (its payload back), and "fail" with status 500, a device-side
// error: the invocation itself succeeds. A method a device or module does
// not know is answered with status 501.
//
// Options.Fleet adds that many more online devices, sim-fleet-00001 and
// on, for programs that work on a whole fleet, and Options.Troubled makes
// some of them offline, failing, slow or losing their responses. A nil
// *Options adds none. The devices are simfleet's, which the standalone
// simulator (cmd/iothubsim) serves too.
func Start(opts *Options) (*Hub, error) {
	// A long run against a large simulated fleet must not keep every
	// request; tests of the programs look at a few recent ones at most.
	hopts := iothubtest.Options{MaxRecorded: 10_000}
	var fleet simfleet.Options
	if opts != nil {
		hopts.JobDeviceOpsPerSecond = opts.JobDeviceOpsPerSecond
		fleet = simfleet.Options{Fleet: opts.Fleet, Troubled: opts.Troubled, SlowLatency: opts.SlowLatency, Edge: opts.Edge}
	}
	h := iothubtest.New(&hopts)
	simfleet.Add(h, &fleet)
	srv, err := h.ListenTLS("127.0.0.1:0")
	if err != nil {
		h.Close()
		return nil, err
	}
	return &Hub{srv: srv, fleet: fleet}, nil
}

// HostName returns the simulated hub's host name.
func (h *Hub) HostName() string { return h.srv.HostName() }

// DeviceIDs returns the ids of the simulated devices: the named ones, then
// the fleet in order. Each call builds a new slice.
func (h *Hub) DeviceIDs() []string { return simfleet.DeviceIDs(&h.fleet) }

// Client returns a service client for the simulated hub, signed with the
// "service" policy, sending to its TLS listener.
func (h *Hub) Client(with ...func(*iothub.ClientOptions)) (*service.Client, error) {
	return service.NewClientFromConnectionString(h.srv.ConnectionStringFor(iothubtest.PolicyService), h.options(with))
}

// OwnerClient returns a service client signed with the "iothubowner"
// policy, which jobs need (ServiceConnect with registry rights).
func (h *Hub) OwnerClient(with ...func(*iothub.ClientOptions)) (*service.Client, error) {
	return service.NewClientFromConnectionString(h.srv.ConnectionStringFor(iothubtest.PolicyIoTHubOwner), h.options(with))
}

// RegistryClient returns a registry client for the simulated hub, signed
// with the "iothubowner" policy (registry reads and writes, twins and
// queries), sending to its TLS listener.
func (h *Hub) RegistryClient(with ...func(*iothub.ClientOptions)) (*registry.Client, error) {
	return registry.NewClientFromConnectionString(h.srv.ConnectionStringFor(iothubtest.PolicyIoTHubOwner), h.options(with))
}

// DigitalTwinClient returns a digital twin client for the simulated hub,
// signed with the "service" policy (ServiceConnect), sending to its TLS
// listener.
func (h *Hub) DigitalTwinClient(with ...func(*iothub.ClientOptions)) (*digitaltwin.Client, error) {
	return digitaltwin.NewClientFromConnectionString(h.srv.ConnectionStringFor(iothubtest.PolicyService), h.options(with))
}

// options are the options of a client of the hub, changed by each of with
// (such as the telemetry of otelsetup).
func (h *Hub) options(with []func(*iothub.ClientOptions)) *iothub.ClientOptions {
	o := h.srv.ClientOptions()
	for _, f := range with {
		if f != nil {
			f(o)
		}
	}
	return o
}

// Hub returns the simulated hub itself, for tests that count what reached
// its devices or script faults.
func (h *Hub) Hub() *iothubtest.Hub { return h.srv.Hub }

// Close stops the listener and the hub.
func (h *Hub) Close() { h.srv.Close() }
