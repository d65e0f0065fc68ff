package httpmock

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"
)

// MethodHandler is a simulated device's (or module's) implementation of a
// direct method. It runs on its own goroutine once the hub has delivered the
// call (after the target's latency). ctx is cancelled when the hub stops
// waiting for the answer: at the call's response timeout, or when the
// caller goes away. A handler must return soon after ctx is done; the hub
// answers the caller without waiting for it, and a handler that never
// returns leaks its goroutine.
type MethodHandler func(ctx context.Context, call MethodCall) MethodResponse

// MethodCall is a direct-method invocation as the device receives it.
type MethodCall struct {
	// DeviceID and ModuleID name the target; ModuleID is empty for a
	// device method.
	DeviceID, ModuleID string
	// Method is the method name.
	Method string
	// Payload is the request's payload exactly as sent, or nil when the
	// request had no payload field. An explicit JSON null is "null".
	Payload json.RawMessage
	// ResponseTimeout and ConnectTimeout are the call's timeouts, with the
	// hub's defaults (30 s and 0) applied.
	ResponseTimeout, ConnectTimeout time.Duration
}

// MethodResponse is a device's answer to a direct method.
type MethodResponse struct {
	// Status is the device's status code, returned in the body of an
	// HTTP 200 answer whatever its value.
	Status int
	// Payload is the device's JSON payload; nil or empty is sent as JSON
	// null. It must be valid JSON: an invalid payload makes the hub answer
	// 500 / 500001 ServerError.
	Payload json.RawMessage
}

// NotImplementedStatus is the status a simulated device answers with when it
// has no handler for a method (the device SDKs' usual answer); the payload
// is null.
const NotImplementedStatus = 501

// DeviceOptions configures a device added with Hub.AddDevice. The zero
// value, and nil, give an enabled, online device without latency or
// handlers.
type DeviceOptions struct {
	// Offline adds the device disconnected; see Device.SetOnline.
	Offline bool
	// Disabled adds the device disabled; the hub treats it as not found.
	Disabled bool
	// Latency is how long the device takes to receive a method before its
	// handler runs.
	Latency time.Duration
	// Handler answers the methods that have no handler of their own.
	Handler MethodHandler
	// Methods are the device's method handlers by name, as HandleMethod
	// sets them. The hub never modifies the map, so many devices can share
	// one (a fleet's devices then cost no handler state each): the first
	// HandleMethod on a device copies it. Do not modify the map once a
	// device has it.
	Methods map[string]MethodHandler
}

// endpoint is the connection state shared by devices and modules. It is
// guarded by Hub.mu.
//
// An idle endpoint holds no allocations of its own: handlers may be a map
// shared with other endpoints (shared true; setHandler copies it first),
// and changed is made only when someone waits for a change.
type endpoint struct {
	online   bool
	shared   bool // handlers belongs to DeviceOptions.Methods
	latency  time.Duration
	handlers map[string]MethodHandler // nil: none
	fallback MethodHandler
	changed  chan struct{} // nil until waited on; closed and replaced on every change
}

func newEndpoint(online bool, latency time.Duration, fallback MethodHandler, methods map[string]MethodHandler) endpoint {
	return endpoint{
		online:   online,
		shared:   methods != nil,
		latency:  latency,
		handlers: methods,
		fallback: fallback,
	}
}

// waitChan returns the channel the next change closes. The caller holds
// Hub.mu.
func (e *endpoint) waitChan() <-chan struct{} {
	if e.changed == nil {
		e.changed = make(chan struct{})
	}
	return e.changed
}

func (e *endpoint) handler(method string) MethodHandler {
	if fn, ok := e.handlers[method]; ok {
		return fn
	}
	return e.fallback
}

// Device is a simulated device registered in a Hub. Its methods are safe for
// concurrent use, also while calls to it are in flight.
type Device struct {
	hub *Hub
	id  string

	// Guarded by hub.mu.
	ep       endpoint
	disabled bool
	removed  bool
	modules  map[string]*Module // nil until the first module
	reg      entry              // registry and twin state
	// Registry fields of devices only.
	statusReason  *string
	statusUpdated time.Time
	iotEdge       bool
	edge          *Edge   // the Edge runtime of MakeEdge, or nil
	deviceScope   *string // of a non-edge device: its parent's scope
	parentScopes  []string
}

// Module is a simulated module of a device. Its methods are safe for
// concurrent use.
type Module struct {
	hub    *Hub
	device *Device
	id     string

	// Guarded by hub.mu.
	ep        endpoint
	removed   bool
	reg       entry // registry and twin state
	managedBy *string
}

// AddDevice registers a device and returns it. opts may be nil.
//
// Unlike the registry API, AddDevice does not apply IoT Hub's id rules, so
// that tests can register ids such as "a/b" or "a b" to check how clients
// escape them. It panics when id is empty or already registered.
func (h *Hub) AddDevice(id string, opts *DeviceOptions) *Device {
	var o DeviceOptions
	if opts != nil {
		o = *opts
	}
	if id == "" {
		panic("iothubtest: AddDevice: empty device id")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.devices[id]; ok {
		panic(fmt.Sprintf("iothubtest: AddDevice: device %q already registered", id))
	}
	now := time.Now()
	d := &Device{
		hub:      h,
		id:       id,
		ep:       newEndpoint(!o.Offline, o.Latency, o.Handler, o.Methods),
		disabled: o.Disabled,
		reg:      h.newEntry(now),
	}
	if !o.Offline {
		d.reg.connUpdated, d.reg.lastActivity = now, now
	}
	h.addDeviceLocked(d)
	return d
}

// Device returns the registered device with the given id, or nil.
func (h *Hub) Device(id string) *Device {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.devices[id]
}

// RemoveDevice unregisters a device and its modules. Calls waiting for it to
// come online then fail with 404001 DeviceNotFound. It reports whether the
// device was registered.
func (h *Hub) RemoveDevice(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.devices[id]
	if !ok {
		return false
	}
	h.removeDeviceLocked(d)
	return true
}

// addDeviceLocked registers d. The caller holds h.mu.
func (h *Hub) addDeviceLocked(d *Device) {
	h.devices[d.id] = d
	h.sortedIDs = nil
}

// removeDeviceLocked unregisters d, its modules and their twins, and wakes
// the calls waiting for them. The caller holds h.mu.
func (h *Hub) removeDeviceLocked(d *Device) {
	delete(h.devices, d.id)
	h.sortedIDs = nil
	d.removed = true
	broadcast(&d.ep.changed)
	for _, m := range d.modules {
		m.removed = true
		broadcast(&m.ep.changed)
	}
}

// ID returns the device id.
func (d *Device) ID() string { return d.id }

// AddModule registers a module on the device and returns it. The module is
// online, with no latency and no handlers. Like AddDevice it does not apply
// the registry's id rules, and it panics when id is empty or already
// registered on the device.
func (d *Device) AddModule(id string) *Module {
	if id == "" {
		panic("iothubtest: AddModule: empty module id")
	}
	d.hub.mu.Lock()
	defer d.hub.mu.Unlock()
	if _, ok := d.modules[id]; ok {
		panic(fmt.Sprintf("iothubtest: AddModule: module %q already registered on device %q", id, d.id))
	}
	now := time.Now()
	m := &Module{hub: d.hub, device: d, id: id, ep: newEndpoint(true, 0, nil, nil), reg: d.hub.newEntry(now)}
	m.reg.connUpdated, m.reg.lastActivity = now, now
	d.addModuleLocked(m)
	return m
}

// addModuleLocked registers m on d, making d's module map on first use (an
// idle device has none). The caller holds hub.mu.
func (d *Device) addModuleLocked(m *Module) {
	if d.modules == nil {
		d.modules = make(map[string]*Module)
	}
	d.modules[m.id] = m
}

// Module returns the module with the given id, or nil.
func (d *Device) Module(id string) *Module {
	d.hub.mu.Lock()
	defer d.hub.mu.Unlock()
	return d.modules[id]
}

// HandleMethod sets the handler of the named method; a nil fn removes it.
func (d *Device) HandleMethod(name string, fn MethodHandler) {
	d.hub.mu.Lock()
	defer d.hub.mu.Unlock()
	setHandler(&d.ep, name, fn)
}

// SetDefaultHandler sets the handler for methods without their own, as
// DeviceOptions.Handler does; nil removes it.
func (d *Device) SetDefaultHandler(fn MethodHandler) {
	d.hub.mu.Lock()
	defer d.hub.mu.Unlock()
	d.ep.fallback = fn
}

// SetOnline connects (true) or disconnects (false) the device. Calls waiting
// within their connect timeout proceed as soon as it connects.
//
// The registry follows: connectionState becomes Connected or Disconnected
// and connectionStateUpdatedTime (and, on connecting, lastActivityTime)
// now.
func (d *Device) SetOnline(online bool) {
	d.hub.mu.Lock()
	defer d.hub.mu.Unlock()
	d.reg.setOnline(&d.ep, online, time.Now())
}

// Online reports whether the device is connected.
func (d *Device) Online() bool {
	d.hub.mu.Lock()
	defer d.hub.mu.Unlock()
	return d.ep.online
}

// SetDisabled disables (true) or enables (false) the device. The hub answers
// calls to a disabled device, and to its modules, with 404001 DeviceNotFound.
// In the registry the device's status becomes "disabled" (or "enabled"),
// which changes its etag and statusUpdatedTime when the status changes.
func (d *Device) SetDisabled(disabled bool) {
	d.hub.mu.Lock()
	defer d.hub.mu.Unlock()
	if d.disabled != disabled {
		d.disabled = disabled
		d.statusUpdated = time.Now()
		d.reg.etag = d.hub.nextETag()
	}
	broadcast(&d.ep.changed)
}

// SetLatency sets how long the device takes to receive a method before its
// handler runs. It applies to calls delivered afterwards.
func (d *Device) SetLatency(latency time.Duration) {
	d.hub.mu.Lock()
	defer d.hub.mu.Unlock()
	d.ep.latency = latency
}

// ID returns the module id.
func (m *Module) ID() string { return m.id }

// Device returns the device the module belongs to.
func (m *Module) Device() *Device { return m.device }

// HandleMethod sets the handler of the named method; a nil fn removes it.
func (m *Module) HandleMethod(name string, fn MethodHandler) {
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	setHandler(&m.ep, name, fn)
}

// SetDefaultHandler sets the handler for methods without their own; nil
// removes it. Modules do not inherit their device's handlers.
func (m *Module) SetDefaultHandler(fn MethodHandler) {
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	m.ep.fallback = fn
}

// SetOnline connects (true) or disconnects (false) the module, independently
// of its device.
func (m *Module) SetOnline(online bool) {
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	m.reg.setOnline(&m.ep, online, time.Now())
}

// Online reports whether the module is connected.
func (m *Module) Online() bool {
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	return m.ep.online
}

// SetLatency sets how long the module takes to receive a method before its
// handler runs.
func (m *Module) SetLatency(latency time.Duration) {
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	m.ep.latency = latency
}

func setHandler(e *endpoint, name string, fn MethodHandler) {
	if e.shared || e.handlers == nil {
		e.handlers = maps.Clone(e.handlers)
		if e.handlers == nil {
			e.handlers = make(map[string]MethodHandler)
		}
		e.shared = false
	}
	if fn == nil {
		delete(e.handlers, name)
		return
	}
	e.handlers[name] = fn
}
