package httpmock

import (
	"fmt"
	"maps"
	"time"
)

// What the public fake hub, package iothubtest, needs of the engine beyond
// what the SDK's own tests use: per-method delivery counts, service-side
// twin seeding and IoT Edge devices added directly.

// MethodTarget names a direct method of a device (ModuleID empty) or of a
// module.
type MethodTarget struct {
	DeviceID, ModuleID, Method string
}

// countDelivery counts a delivered call per method. The caller holds h.mu.
func (h *Hub) countDelivery(t target, method string) {
	if h.methodDeliveries == nil {
		h.methodDeliveries = make(map[MethodTarget]int)
	}
	h.methodDeliveries[MethodTarget{t.deviceID, t.moduleID, method}]++
}

// MethodDeliveries returns how many calls of each method reached each
// device or module since New, as Deliveries counts them: calls the hub
// handed to the target, whether or not it answered in time, direct calls
// and the calls of jobs alike. Targets that received nothing are absent
// (nil before the first delivery). The map is a copy.
func (h *Hub) MethodDeliveries() map[MethodTarget]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.methodDeliveries)
}

// PatchTwin applies patch, a JSON object such as
// {"tags":{"ring":"canary"},"properties":{"desired":{"interval":30}}},
// to the device's twin as PATCH /twins/{id} would: tags and desired
// properties are merged (a null removes a property), with the twin rules
// enforced. It returns an error, and changes nothing, when the patch
// breaks them. It needs no authorization and bills nothing: it is how a
// test seeds a twin.
func (d *Device) PatchTwin(patch string) error {
	d.hub.mu.Lock()
	defer d.hub.mu.Unlock()
	return d.hub.patchEntry(&d.reg, patch, d.id, "")
}

// PatchTwin applies patch to the module's twin; see Device.PatchTwin.
func (m *Module) PatchTwin(patch string) error {
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	return m.hub.patchEntry(&m.reg, patch, m.device.id, m.id)
}

// patchEntry applies a service-side twin patch. The caller holds h.mu.
func (h *Hub) patchEntry(e *entry, patch, deviceID, moduleID string) error {
	u, he := parseTwinUpdate([]byte(patch), deviceID, moduleID, true)
	if he == nil {
		he = h.applyTwinUpdate(e, u, true, time.Now())
	}
	if he != nil {
		return fmt.Errorf("iothubtest: PatchTwin: %s", he.message)
	}
	return nil
}

// SetEdge marks the device as an IoT Edge device (capabilities.iotEdge in
// the registry), or not, which changes its etag when it changes. It adds
// no modules: add $edgeAgent and $edgeHub with AddModule.
func (d *Device) SetEdge(edge bool) {
	d.hub.mu.Lock()
	defer d.hub.mu.Unlock()
	if d.iotEdge != edge {
		d.iotEdge = edge
		d.reg.etag = d.hub.nextETag()
	}
}
