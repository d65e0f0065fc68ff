package iothubtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"time"

	"github.com/hubkit/iothub/internal/testkit/httpmock"
)

// MethodHandler is a device's (or module's) implementation of a direct
// method. The hub runs it on its own goroutine once it has delivered the
// call, after the target's latency. ctx is cancelled when the hub stops
// waiting for the answer: at the call's response timeout (the caller then
// gets 504 / 504101) or when the caller goes away. A handler must return
// soon after ctx is done.
type MethodHandler func(ctx context.Context, call MethodCall) MethodResponse

// MethodCall is a direct-method call as the device receives it.
type MethodCall struct {
	// DeviceID and ModuleID name the target; ModuleID is empty for a
	// device's own method.
	DeviceID, ModuleID string
	// Method is the method name.
	Method string
	// Payload is the request's payload exactly as sent, or nil when the
	// request had none. An explicit JSON null is "null".
	Payload json.RawMessage
	// ResponseTimeout and ConnectTimeout are the call's timeouts, with the
	// hub's defaults (30 s and 0) applied.
	ResponseTimeout, ConnectTimeout time.Duration
}

// MethodResponse is a device's answer to a direct method. The hub answers
// the caller HTTP 200 with {"status":Status,"payload":Payload}, whatever
// the status: the device's answer is data.
type MethodResponse struct {
	// Status is the device's status code, such as 200.
	Status int
	// Payload is marshalled with encoding/json (a json.RawMessage is sent
	// as it is); nil is sent as null. A payload that cannot be marshalled
	// makes the hub answer 500 / 500001 ServerError, as a device's invalid
	// JSON does.
	Payload any
}

// NotImplementedStatus is the status a device answers with when it has no
// handler for a method, as the device SDKs usually do; the payload is null.
const NotImplementedStatus = 501

// Answer returns a handler that answers every call with status and payload.
func Answer(status int, payload any) MethodHandler {
	return func(context.Context, MethodCall) MethodResponse {
		return MethodResponse{Status: status, Payload: payload}
	}
}

// Echo returns a handler that answers status 200 with the call's payload.
func Echo() MethodHandler {
	return func(_ context.Context, call MethodCall) MethodResponse {
		var p any
		if call.Payload != nil {
			p = call.Payload
		}
		return MethodResponse{Status: http.StatusOK, Payload: p}
	}
}

// engineHandler adapts a handler to the engine; nil stays nil.
func engineHandler(fn MethodHandler) httpmock.MethodHandler {
	if fn == nil {
		return nil
	}
	return func(ctx context.Context, c httpmock.MethodCall) httpmock.MethodResponse {
		r := fn(ctx, MethodCall(c))
		if r.Payload == nil {
			return httpmock.MethodResponse{Status: r.Status}
		}
		if raw, ok := r.Payload.(json.RawMessage); ok {
			// As it is: json.Marshal would escape its <, > and &. The
			// engine answers 500001 when it is not JSON.
			return httpmock.MethodResponse{Status: r.Status, Payload: raw}
		}
		b, err := json.Marshal(r.Payload)
		if err != nil {
			// Not JSON: the hub answers 500001, as for a device's invalid
			// payload.
			b = []byte("\x00")
		}
		return httpmock.MethodResponse{Status: r.Status, Payload: b}
	}
}

// DeviceOptions configures a device added with Hub.AddDevice. The zero
// value, and nil, give an enabled device, connected, without latency, whose
// methods all answer NotImplementedStatus until handlers are set.
type DeviceOptions struct {
	// Offline adds the device disconnected: calls wait for it up to their
	// connect timeout, then get 404 / 404103 DeviceNotOnline. See
	// Device.SetOnline.
	Offline bool
	// Disabled adds the device disabled: the hub answers calls to it, and
	// to its modules, 404 / 404001 DeviceNotFound.
	Disabled bool
	// Latency is how long the device takes to receive a call before its
	// handler runs: a slow device.
	Latency time.Duration
	// Handler answers the methods that have no handler of their own; nil
	// means NotImplementedStatus. Answer and Echo make common ones.
	Handler MethodHandler
	// Methods are handlers by method name, as Device.HandleMethod sets
	// them. The map is shared, not copied: every device of a Hub given the
	// same map uses one table, so that a large simulated fleet costs little
	// memory per device. Do not change the map after passing it to
	// AddDevice; Device.HandleMethod changes only that device's handlers.
	Methods map[string]MethodHandler
	// Edge makes it an IoT Edge device (capabilities.iotEdge) with the
	// modules $edgeAgent and $edgeHub, which answer the runtime's built-in
	// methods as a real agent does (see Edge).
	Edge bool
	// EdgeRuntime, when not nil, makes it an Edge device as Edge does,
	// with the deployment's modules and their logs.
	EdgeRuntime *EdgeOptions
	// ModelID makes it a Plug and Play device announcing this model id
	// (a DTMI such as "dtmi:com:example:Thermostat;1"), shown as the
	// twin's modelId.
	ModelID string
	// Tags and Desired seed the device twin's tags and desired properties.
	// They must follow the twin rules (no arrays, at most 10 levels, …);
	// AddDevice panics when they do not.
	Tags, Desired map[string]any
}

// ModuleOptions configures a module added with Device.AddModule. The zero
// value, and nil, give a connected module without latency or handlers.
type ModuleOptions struct {
	// Offline adds the module disconnected; see DeviceOptions.Offline.
	Offline bool
	// Latency is how long the module takes to receive a call.
	Latency time.Duration
	// Handler answers the methods that have no handler of their own.
	// Modules do not inherit their device's handlers.
	Handler MethodHandler
	// Tags and Desired seed the module twin, as for DeviceOptions.
	Tags, Desired map[string]any
}

// Device is a device registered in a Hub. Its methods are safe for
// concurrent use, also while calls to it are in flight.
type Device struct {
	d *httpmock.Device
}

// Module is a module of a device. Its methods are safe for concurrent use.
type Module struct {
	m *httpmock.Module
}

// AddDevice registers a device with SAS authentication and generated keys
// and returns it; opts may be nil.
//
// AddDevice does not apply IoT Hub's id rules, so that a test can register
// ids such as "a/b" to check how the code under test escapes them. It
// panics when id is empty or already registered, or when opts breaks the
// twin rules: a broken fixture fails loudly.
func (h *Hub) AddDevice(id string, opts *DeviceOptions) *Device {
	var o DeviceOptions
	if opts != nil {
		o = *opts
	}
	d := h.engine.AddDevice(id, &httpmock.DeviceOptions{
		Offline:  o.Offline,
		Disabled: o.Disabled,
		Latency:  o.Latency,
		Handler:  engineHandler(o.Handler),
		Methods:  h.methodTable(o.Methods),
	})
	if err := seedTwin(d.PatchTwin, o.Tags, o.Desired); err != nil {
		panic(fmt.Sprintf("iothubtest: AddDevice %q: %v", id, err))
	}
	if o.ModelID != "" {
		d.SetModelID(o.ModelID)
	}
	if o.Edge || o.EdgeRuntime != nil {
		d.MakeEdge(o.EdgeRuntime.engine())
	}
	return &Device{d: d}
}

// methodTable returns the engine's table for a DeviceOptions.Methods map:
// converted on its first use, then shared by every device given the same
// map. The cache keeps the map, so that its address names it for the
// Hub's life.
func (h *Hub) methodTable(m map[string]MethodHandler) map[string]httpmock.MethodHandler {
	if len(m) == 0 {
		return nil
	}
	key := reflect.ValueOf(m).Pointer()
	h.tablesMu.Lock()
	defer h.tablesMu.Unlock()
	if t, ok := h.tables[key]; ok {
		return t.engine
	}
	t := methodTable{src: m, engine: make(map[string]httpmock.MethodHandler, len(m))}
	for name, fn := range m {
		if fn != nil {
			t.engine[name] = engineHandler(fn)
		}
	}
	if h.tables == nil {
		h.tables = make(map[uintptr]methodTable)
	}
	h.tables[key] = t
	return t.engine
}

// methodTable is a DeviceOptions.Methods map and the engine's table made
// of it.
type methodTable struct {
	src    map[string]MethodHandler
	engine map[string]httpmock.MethodHandler
}

// Device returns the registered device with the given id, or nil. Devices
// created through the registry API are found too. Each call returns a new
// *Device for the same device: compare IDs, not pointers.
func (h *Hub) Device(id string) *Device {
	d := h.engine.Device(id)
	if d == nil {
		return nil
	}
	return &Device{d: d}
}

// RemoveDevice unregisters a device and its modules, as deleting it does;
// calls waiting for it then fail with 404001. It reports whether the device
// was registered.
func (h *Hub) RemoveDevice(id string) bool { return h.engine.RemoveDevice(id) }

// DeviceIDs returns the ids of the registered devices, sorted.
func (h *Hub) DeviceIDs() []string { return h.engine.DeviceIDs() }

// seedTwin applies the tags and desired properties of an options struct.
func seedTwin(patch func(string) error, tags, desired map[string]any) error {
	if tags == nil && desired == nil {
		return nil
	}
	body := map[string]any{}
	if tags != nil {
		body["tags"] = tags
	}
	if desired != nil {
		body["properties"] = map[string]any{"desired": desired}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return patch(string(b))
}

// ID returns the device id.
func (d *Device) ID() string { return d.d.ID() }

// HandleMethod sets the handler of the named method; nil removes it.
func (d *Device) HandleMethod(name string, fn MethodHandler) {
	d.d.HandleMethod(name, engineHandler(fn))
}

// SetOnline connects (true) or disconnects (false) the device. Calls
// waiting within their connect timeout proceed as soon as it connects.
func (d *Device) SetOnline(online bool) { d.d.SetOnline(online) }

// SetDisabled disables (true) or enables (false) the device; see
// DeviceOptions.Disabled.
func (d *Device) SetDisabled(disabled bool) { d.d.SetDisabled(disabled) }

// SetLatency sets how long the device takes to receive later calls.
func (d *Device) SetLatency(latency time.Duration) { d.d.SetLatency(latency) }

// SetReported merges patch into the device's reported properties, as the
// device would: a nil value removes a property. It returns an error, and
// changes nothing, when patch breaks the twin rules.
func (d *Device) SetReported(patch map[string]any) error {
	b, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("iothubtest: SetReported: %w", err)
	}
	return d.d.SetReported(string(b))
}

// AddModule registers a module on the device and returns it; opts may be
// nil. Like AddDevice it does not apply the id rules, and it panics when
// id is empty or already registered on the device, or when opts breaks the
// twin rules.
func (d *Device) AddModule(id string, opts *ModuleOptions) *Module {
	var o ModuleOptions
	if opts != nil {
		o = *opts
	}
	m := d.d.AddModule(id)
	if o.Offline {
		m.SetOnline(false)
	}
	if o.Latency != 0 {
		m.SetLatency(o.Latency)
	}
	if o.Handler != nil {
		m.SetDefaultHandler(engineHandler(o.Handler))
	}
	if err := seedTwin(m.PatchTwin, o.Tags, o.Desired); err != nil {
		panic(fmt.Sprintf("iothubtest: AddModule %q on %q: %v", id, d.ID(), err))
	}
	return &Module{m: m}
}

// Module returns the device's module with the given id, or nil (a new
// *Module on each call, as for Hub.Device).
func (d *Device) Module(id string) *Module {
	m := d.d.Module(id)
	if m == nil {
		return nil
	}
	return &Module{m: m}
}

// ID returns the module id.
func (m *Module) ID() string { return m.m.ID() }

// DeviceID returns the id of the module's device.
func (m *Module) DeviceID() string { return m.m.Device().ID() }

// HandleMethod sets the handler of the named method; nil removes it.
func (m *Module) HandleMethod(name string, fn MethodHandler) {
	m.m.HandleMethod(name, engineHandler(fn))
}

// SetOnline connects or disconnects the module, independently of its
// device.
func (m *Module) SetOnline(online bool) { m.m.SetOnline(online) }

// SetLatency sets how long the module takes to receive later calls.
func (m *Module) SetLatency(latency time.Duration) { m.m.SetLatency(latency) }

// SetReported merges patch into the module's reported properties; see
// Device.SetReported.
func (m *Module) SetReported(patch map[string]any) error {
	b, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("iothubtest: SetReported: %w", err)
	}
	return m.m.SetReported(string(b))
}
