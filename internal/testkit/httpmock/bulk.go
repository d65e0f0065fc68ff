package httpmock

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hubkit/iothub"
)

// MaxBulkDevices is the most items a bulk registry request may carry.
const MaxBulkDevices = 100

// The import modes of a bulk registry item, as the wire spells them.
var importModes = []string{
	"create", "update", "updateIfMatchETag", "delete", "deleteIfMatchETag",
	"updateTwin", "updateTwinIfMatchETag", "createOrUpdate", "createOrUpdateIfMatchETag",
}

// bulkItem is an ExportImportDevice: note id (not deviceId) and eTag.
type bulkItem struct {
	ID             *string         `json:"id"`
	ModuleID       *string         `json:"moduleId"`
	ETag           *string         `json:"eTag"`
	ImportMode     *string         `json:"importMode"`
	Status         *string         `json:"status"`
	StatusReason   *string         `json:"statusReason"`
	Authentication *authInput      `json:"authentication"`
	TwinETag       *string         `json:"twinETag"`
	Tags           json.RawMessage `json:"tags"`
	Properties     *struct {
		Desired json.RawMessage `json:"desired"`
	} `json:"properties"`
	Capabilities *struct {
		IotEdge *bool `json:"iotEdge"`
	} `json:"capabilities"`
	DeviceScope  *string  `json:"deviceScope"`
	ParentScopes []string `json:"parentScopes"`
	ManagedBy    *string  `json:"managedBy"`
}

// bulkError is one failed item of a bulk result.
type bulkError struct {
	DeviceID    string `json:"deviceId"`
	ModuleID    string `json:"moduleId,omitempty"`
	ErrorCode   string `json:"errorCode"`
	ErrorStatus string `json:"errorStatus"`
}

// bulkResult is a BulkRegistryOperationResult.
type bulkResult struct {
	IsSuccessful bool        `json:"isSuccessful"`
	Errors       []bulkError `json:"errors"`
	Warnings     []any       `json:"warnings"`
}

// bulkDevices serves POST /devices: up to MaxBulkDevices items, each
// applied on its own. All succeeded: 200; any failed: 400 with the
// iothub-errorcode BulkRegistryOperationFailure and the same result body.
func (h *Hub) bulkDevices(w http.ResponseWriter, r *http.Request, rq *routed) {
	if e := checkJSONContentType(r, rq.body); e != nil {
		e.write(w, rq.now)
		return
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(rq.body, &raw); err != nil {
		newError(iothub.ErrorCodeIotHubFormatError, "The request body is not a valid JSON array of devices.").write(w, rq.now)
		return
	}
	switch {
	case len(raw) == 0:
		invalid("The request must contain at least one device.").write(w, rq.now)
		return
	case len(raw) > MaxBulkDevices:
		newError(iothub.ErrorCodeTooManyDevices, fmt.Sprintf("Too many devices: at most %d are allowed in one bulk operation.", MaxBulkDevices)).write(w, rq.now)
		return
	}
	items := make([]bulkItem, len(raw))
	modes := make([]string, len(raw))
	seen := make(map[target]bool)
	for i, b := range raw {
		if e := decodeObject(b, &items[i]); e != nil {
			e.message = fmt.Sprintf("Device %d: %s", i, e.message)
			e.write(w, rq.now)
			return
		}
		it := &items[i]
		if it.ImportMode == nil {
			invalid("Device %d: importMode is required.", i).write(w, rq.now)
			return
		}
		for _, m := range importModes {
			if strings.EqualFold(*it.ImportMode, m) {
				modes[i] = m
			}
		}
		if modes[i] == "" {
			invalid("Device %d: importMode '%s' is not valid.", i, *it.ImportMode).write(w, rq.now)
			return
		}
		t := target{deviceID: deref(it.ID), moduleID: deref(it.ModuleID)}
		if seen[t] {
			newError(iothub.ErrorCodeDeviceDefinedMultipleTimes, fmt.Sprintf("The device '%s' is defined more than once.", t.deviceID)).write(w, rq.now)
			return
		}
		seen[t] = true
	}

	res := bulkResult{IsSuccessful: true, Errors: []bulkError{}, Warnings: []any{}}
	h.mu.Lock()
	for i := range items {
		if e := h.applyBulkItem(&items[i], modes[i], rq.now); e != nil {
			res.IsSuccessful = false
			res.Errors = append(res.Errors, bulkError{
				DeviceID:    deref(items[i].ID),
				ModuleID:    deref(items[i].ModuleID),
				ErrorCode:   iothub.ErrorCode(e.code).Name(),
				ErrorStatus: e.message,
			})
		}
	}
	h.mu.Unlock()
	if res.IsSuccessful {
		writeJSON(w, http.StatusOK, marshal(res))
		return
	}
	name := iothub.ErrorCodeBulkRegistryOperationFailure.Name()
	w.Header().Set("iothub-errorcode", name)
	w.Header().Set("IotHubErrorCode", name)
	writeJSON(w, http.StatusBadRequest, marshal(res))
}

// applyBulkItem applies one item. The caller holds h.mu.
func (h *Hub) applyBulkItem(it *bulkItem, mode string, now time.Time) *hubError {
	id := deref(it.ID)
	if !validID(id) {
		return invalid("The id '%s' is not valid.", id)
	}
	if it.ModuleID != nil {
		return h.applyBulkModule(it, mode, now)
	}
	d := h.devices[id]
	etagOK := func() bool {
		return d != nil && it.ETag != nil && strings.Trim(*it.ETag, `"`) == etagString(d.reg.etag)
	}

	var tw *twinUpdate
	if it.Tags != nil || it.Properties != nil && it.Properties.Desired != nil {
		body := map[string]any{"tags": it.Tags}
		if it.Properties != nil {
			body["properties"] = map[string]any{"desired": it.Properties.Desired}
		}
		var e *hubError
		if tw, e = parseTwinUpdate(marshal(body), id, "", true); e != nil {
			return e
		}
	}
	spec := func() (*deviceSpec, *hubError) {
		return parseDevice(id, &deviceInput{
			Status: it.Status, StatusReason: it.StatusReason, Authentication: it.Authentication,
			Capabilities: it.Capabilities, DeviceScope: it.DeviceScope, ParentScopes: it.ParentScopes,
		})
	}
	switch mode {
	case "delete", "deleteIfMatchETag":
		switch {
		case d == nil:
			return deviceNotFound(id)
		case mode == "deleteIfMatchETag" && !etagOK():
			return preconditionFailed()
		}
		h.removeDeviceLocked(d)
		return nil
	case "updateTwin", "updateTwinIfMatchETag":
		switch {
		case d == nil:
			return deviceNotFound(id)
		case mode == "updateTwinIfMatchETag" && (it.TwinETag == nil || strings.Trim(*it.TwinETag, `"`) != twinETagString(d.reg.twin.etag)):
			return preconditionFailed()
		}
		if tw == nil {
			return nil
		}
		return h.applyTwinUpdate(&d.reg, tw, true, now)
	}
	s, e := spec()
	if e != nil {
		return e
	}
	switch {
	case mode == "create" && d != nil:
		return newError(iothub.ErrorCodeDeviceAlreadyExists, fmt.Sprintf("A device with ID '%s' is already registered.", id))
	case (mode == "update" || mode == "updateIfMatchETag") && d == nil:
		return deviceNotFound(id)
	case strings.HasSuffix(mode, "IfMatchETag") && d != nil && !etagOK():
		return preconditionFailed()
	}
	if tw != nil {
		// Check the twin before changing anything.
		var probe entry
		if d != nil {
			probe.twin = d.reg.twin
			probe.twin.tags, probe.twin.desired.root = d.reg.twin.tags.clone(), d.reg.twin.desired.root.clone()
		} else {
			probe.twin = twinState{tags: newObject(now), desired: propSet{root: newObject(now)}}
		}
		saved := h.twinSeq
		if e := h.applyTwinUpdate(&probe, tw, true, now); e != nil {
			return e
		}
		h.twinSeq = saved
	}
	if d == nil {
		d = h.createDevice(id, s, now)
	} else {
		d.apply(s, now)
	}
	if tw != nil {
		return h.applyTwinUpdate(&d.reg, tw, true, now)
	}
	return nil
}

// applyBulkModule applies an item with a moduleId. The caller holds h.mu.
func (h *Hub) applyBulkModule(it *bulkItem, mode string, now time.Time) *hubError {
	id, mid := deref(it.ID), *it.ModuleID
	if !validID(mid) {
		return invalid("The moduleId '%s' is not valid.", mid)
	}
	d := h.devices[id]
	if d == nil {
		return deviceNotFound(id)
	}
	m := d.modules[mid]
	etagOK := m != nil && it.ETag != nil && strings.Trim(*it.ETag, `"`) == etagString(m.reg.etag)
	switch mode {
	case "delete", "deleteIfMatchETag":
		switch {
		case m == nil:
			return moduleNotFound(id, mid)
		case mode == "deleteIfMatchETag" && !etagOK:
			return preconditionFailed()
		}
		delete(d.modules, mid)
		m.removed = true
		broadcast(&m.ep.changed)
		return nil
	case "updateTwin", "updateTwinIfMatchETag":
		return invalid("importMode %s is not supported for modules by this simulator.", mode)
	}
	auth, e := parseAuth(it.Authentication)
	if e != nil {
		return e
	}
	switch {
	case mode == "create" && m != nil:
		return newError(iothub.ErrorCodeModuleAlreadyExistsOnDevice, fmt.Sprintf("A module with ID '%s' is already registered on device '%s'.", mid, id))
	case (mode == "update" || mode == "updateIfMatchETag") && m == nil:
		return moduleNotFound(id, mid)
	case strings.HasSuffix(mode, "IfMatchETag") && m != nil && !etagOK:
		return preconditionFailed()
	case m == nil:
		h.createModule(d, mid, it.ManagedBy, auth, now)
	default:
		m.managedBy, m.reg.auth = it.ManagedBy, storeAuth(auth)
		m.reg.etag = h.nextETag()
	}
	return nil
}
