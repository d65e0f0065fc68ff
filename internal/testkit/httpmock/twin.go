package httpmock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/hubkit/iothub"
)

// Twin limits, as IoT Hub enforces them.
const (
	// MaxTwinDepth is how deeply objects may nest in tags and in desired
	// and reported properties (the root not counted).
	MaxTwinDepth = 10
	// MaxTagsSize and MaxPropertiesSize bound the approximate size of the
	// tags and of each of desired and reported: the lengths of keys and
	// string values, numbers counting 8 bytes and booleans 4.
	MaxTagsSize       = 8 << 10
	MaxPropertiesSize = 32 << 10
	// MaxTwinStringSize bounds a string value.
	MaxTwinStringSize = 4 << 10
	// MaxTwinKeySize bounds a key, in bytes.
	MaxTwinKeySize = 1 << 10
)

// Safe integers of a twin value: IEEE-754 doubles hold them exactly.
const (
	minTwinInt = -4503599627370496
	maxTwinInt = 4503599627370495
)

// pnode is a node of a twin document: a leaf (kids nil) or an object. It
// records when it last changed, for $metadata.
type pnode struct {
	val     any // string, json.Number or bool, for leaves
	kids    map[string]*pnode
	updated time.Time
	ver     int64 // desired properties: the $version of the node's last change (0: not stamped)
}

func newObject(now time.Time) *pnode {
	return &pnode{kids: make(map[string]*pnode), updated: now}
}

// build makes a node of a JSON value (nulls inside objects dropped).
func build(v any, now time.Time) *pnode {
	obj, ok := v.(map[string]any)
	if !ok {
		return &pnode{val: v, updated: now}
	}
	n := newObject(now)
	for k, cv := range obj {
		if cv != nil {
			n.kids[k] = build(cv, now)
		}
	}
	return n
}

func (n *pnode) clone() *pnode {
	c := *n
	if n.kids != nil {
		c.kids = make(map[string]*pnode, len(n.kids))
		for k, kid := range n.kids {
			c.kids[k] = kid.clone()
		}
	}
	return &c
}

// merge applies a JSON merge patch to the object n; a null removes a key.
// It reports whether anything changed, and stamps what did.
func (n *pnode) merge(patch map[string]any, now time.Time) bool {
	changed := false
	for k, v := range patch {
		old, exists := n.kids[k]
		switch pv := v.(type) {
		case nil:
			if exists {
				delete(n.kids, k)
				changed = true
			}
		case map[string]any:
			if !exists || old.kids == nil {
				n.kids[k] = build(pv, now)
				changed = true
			} else if old.merge(pv, now) {
				changed = true
			}
		default:
			if !exists || old.kids != nil || !sameLeaf(old.val, pv) {
				n.kids[k] = &pnode{val: pv, updated: now}
				changed = true
			}
		}
	}
	if changed {
		n.updated = now
	}
	return changed
}

func sameLeaf(a, b any) bool {
	an, aok := a.(json.Number)
	bn, bok := b.(json.Number)
	if aok && bok {
		return an == bn
	}
	return a == b
}

// value returns the node as a JSON value.
func (n *pnode) value() any {
	if n.kids == nil {
		return n.val
	}
	m := make(map[string]any, len(n.kids))
	for k, kid := range n.kids {
		m[k] = kid.value()
	}
	return m
}

// metadata returns the node's $metadata: $lastUpdated at every level.
func (n *pnode) metadata() map[string]any {
	m := map[string]any{"$lastUpdated": formatTime(n.updated)}
	for k, kid := range n.kids {
		m[k] = kid.metadata()
	}
	return m
}

// size is the approximate size the hub counts.
func (n *pnode) size() int {
	if n.kids == nil {
		switch v := n.val.(type) {
		case string:
			return len(v)
		case bool:
			return 4
		}
		return 8
	}
	s := 0
	for k, kid := range n.kids {
		s += len(k) + kid.size()
	}
	return s
}

// propSet is a twin's desired or reported properties.
type propSet struct {
	root    *pnode
	version int64
}

func (p *propSet) wire() map[string]any {
	m := p.root.value().(map[string]any)
	m["$metadata"] = p.root.metadata()
	m["$version"] = p.version
	return m
}

// twinState is a device's or module's twin. It is guarded by Hub.mu.
type twinState struct {
	etag     uint64
	version  int64
	tags     *pnode
	desired  propSet
	reported propSet
	modelID  string
}

// newTwin returns an empty twin. The caller holds h.mu.
//
// The twin's trees are never modified once stored (updates clone, merge
// and replace them), so the three empty roots of a new twin are one node,
// whose children are the hub's one empty map: an idle twin costs a single
// small node.
func (h *Hub) newTwin(now time.Time) twinState {
	h.twinSeq++
	if h.emptyKids == nil {
		h.emptyKids = make(map[string]*pnode)
	}
	empty := &pnode{kids: h.emptyKids, updated: now}
	return twinState{
		etag:     h.twinSeq,
		version:  1,
		tags:     empty,
		desired:  propSet{root: empty, version: 1},
		reported: propSet{root: empty, version: 1},
	}
}

// twinWire returns a device's (m nil) or module's twin JSON. The caller
// holds h.mu.
func twinWire(d *Device, m *Module) map[string]any {
	e := &d.reg
	if m != nil {
		e = &m.reg
	}
	t := &e.twin
	thumb1, thumb2 := e.auth.thumbprints()
	out := map[string]any{
		"deviceId":                  d.id,
		"etag":                      twinETagString(t.etag),
		"deviceEtag":                etagString(e.etag),
		"status":                    statusString(d.disabled),
		"statusReason":              d.statusReason,
		"statusUpdateTime":          formatTime(d.statusUpdated),
		"connectionState":           connectionState(d.ep.online),
		"lastActivityTime":          formatTime(e.lastActivity),
		"cloudToDeviceMessageCount": e.c2dCount,
		"authenticationType":        e.auth.typ,
		"x509Thumbprint": map[string]any{
			"primaryThumbprint":   optString(thumb1),
			"secondaryThumbprint": optString(thumb2),
		},
		"modelId": t.modelID,
		"version": t.version,
		"tags":    t.tags.value(),
		"properties": map[string]any{
			"desired":  t.desired.wire(),
			"reported": t.reported.wire(),
		},
	}
	if m != nil {
		out["moduleId"] = m.id
		out["connectionState"] = connectionState(m.ep.online)
	} else {
		out["capabilities"] = map[string]any{"iotEdge": d.iotEdge}
		out["deviceScope"] = d.scope()
		out["parentScopes"] = append([]string{}, d.parentScopes...)
	}
	return out
}

// Twin returns a snapshot of the twin of a device (moduleID empty) or
// module, as GET /twins returns it, and false when there is no such device
// or module. Numbers are json.Number.
func (h *Hub) Twin(deviceID, moduleID string) (map[string]any, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.devices[deviceID]
	if d == nil {
		return nil, false
	}
	var m *Module
	if moduleID != "" {
		if m = d.modules[moduleID]; m == nil {
			return nil, false
		}
	}
	// Round-trip to share nothing with the hub's state.
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(marshal(twinWire(d, m))))
	dec.UseNumber()
	_ = dec.Decode(&out)
	return out, true
}

// SetReported merges patch, a JSON object, into the device's reported
// properties, as the device would: a null removes a property. It returns
// an error, and changes nothing, when patch breaks the twin rules.
func (d *Device) SetReported(patch string) error {
	d.hub.mu.Lock()
	defer d.hub.mu.Unlock()
	return d.reg.setReported(d.hub, patch, time.Now())
}

// SetReported merges patch into the module's reported properties; see
// Device.SetReported.
func (m *Module) SetReported(patch string) error {
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	return m.reg.setReported(m.hub, patch, time.Now())
}

// SetModelID sets the device's Plug and Play model id, shown as the
// twin's modelId.
func (d *Device) SetModelID(id string) {
	d.hub.mu.Lock()
	defer d.hub.mu.Unlock()
	d.reg.twin.modelID = id
}

func (e *entry) setReported(h *Hub, patch string, now time.Time) error {
	obj, he := decodeTwinObject([]byte(patch))
	if he != nil {
		return fmt.Errorf("iothubtest: SetReported: %s", he.message)
	}
	if he := validateTwinObject("properties.reported", obj, 0, true); he != nil {
		return fmt.Errorf("iothubtest: SetReported: %s", he.message)
	}
	root := e.twin.reported.root.clone()
	if !root.merge(obj, now) {
		return nil
	}
	if root.size() > MaxPropertiesSize {
		return fmt.Errorf("iothubtest: SetReported: reported properties exceed %d bytes", MaxPropertiesSize)
	}
	e.twin.reported.root = root
	e.twin.reported.version++
	e.twin.etag = h.nextTwinETag()
	e.lastActivity = now
	return nil
}

// nextTwinETag returns a new twin etag counter. The caller holds h.mu.
func (h *Hub) nextTwinETag() uint64 {
	h.twinSeq++
	return h.twinSeq
}

// decodeTwinObject decodes a JSON object, numbers as json.Number.
func decodeTwinObject(body []byte) (map[string]any, *hubError) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if len(trimmed) == 0 || trimmed[0] != '{' || dec.Decode(&obj) != nil || dec.More() {
		return nil, newError(iothub.ErrorCodeIotHubFormatError, "The request body is not a valid JSON object.")
	}
	return obj, nil
}

// validKeyName applies the twin key rules: not empty, at most
// MaxTwinKeySize bytes, no '.', '$', space or control characters.
func validKeyName(k string) bool {
	if k == "" || len(k) > MaxTwinKeySize {
		return false
	}
	for _, r := range k {
		if r == '.' || r == '$' || r == ' ' || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// validateTwinObject checks an object of a twin document (its keys and
// values, recursively); depth is the nesting of obj below the section
// root. allowNull allows null values (deletions in a patch).
func validateTwinObject(where string, obj map[string]any, depth int, allowNull bool) *hubError {
	if depth > MaxTwinDepth {
		return invalid("%s: objects are nested deeper than %d levels.", where, MaxTwinDepth)
	}
	for k, v := range obj {
		if !validKeyName(k) {
			return invalid("%s: the key '%s' is not valid: keys may not be empty or contain '.', '$', spaces or control characters.", where, k)
		}
		path := where + "." + k
		switch x := v.(type) {
		case nil:
			if !allowNull {
				continue // dropped
			}
		case []any:
			return invalid("%s: arrays are not supported.", path)
		case map[string]any:
			if e := validateTwinObject(path, x, depth+1, allowNull); e != nil {
				return e
			}
		case string:
			if len(x) > MaxTwinStringSize {
				return invalid("%s: strings may not be longer than %d bytes.", path, MaxTwinStringSize)
			}
		case json.Number:
			if i, err := x.Int64(); err == nil {
				if i < minTwinInt || i > maxTwinInt {
					return invalid("%s: integers must be within [%d, %d].", path, int64(minTwinInt), int64(maxTwinInt))
				}
			} else if !strings.ContainsAny(string(x), ".eE") {
				return invalid("%s: integers must be within [%d, %d].", path, int64(minTwinInt), int64(maxTwinInt))
			}
		}
	}
	return nil
}

// twinUpdate is a validated twin PATCH or PUT body.
type twinUpdate struct {
	tags    map[string]any // nil: not given
	desired map[string]any // nil: not given
}

// parseTwinUpdate validates a twin body for a device (and module). Read-only
// fields are ignored; reported properties may not be written.
func parseTwinUpdate(body []byte, deviceID, moduleID string, patch bool) (*twinUpdate, *hubError) {
	obj, e := decodeTwinObject(body)
	if e != nil {
		return nil, e
	}
	var u twinUpdate
	for k, v := range obj {
		switch strings.ToLower(k) {
		case "deviceid":
			if s, ok := v.(string); v != nil && (!ok || s != deviceID) {
				return nil, invalid("The deviceId in the body does not match the deviceId in the path ('%s').", deviceID)
			}
		case "moduleid":
			if s, ok := v.(string); v != nil && moduleID != "" && (!ok || s != moduleID) {
				return nil, invalid("The moduleId in the body does not match the moduleId in the path ('%s').", moduleID)
			}
		case "tags":
			if v == nil {
				continue
			}
			t, ok := v.(map[string]any)
			if !ok {
				return nil, invalid("tags must be an object.")
			}
			u.tags = t
		case "properties":
			if v == nil {
				continue
			}
			p, ok := v.(map[string]any)
			if !ok {
				return nil, invalid("properties must be an object.")
			}
			for pk, pv := range p {
				switch strings.ToLower(pk) {
				case "desired":
					if pv == nil {
						continue
					}
					d, ok := pv.(map[string]any)
					if !ok {
						return nil, invalid("properties.desired must be an object.")
					}
					d = maps.Clone(d)
					delete(d, "$metadata")
					delete(d, "$version")
					u.desired = d
				case "reported":
					r, _ := pv.(map[string]any)
					for rk := range r {
						if rk != "$metadata" && rk != "$version" {
							return nil, invalid("Reported properties cannot be updated from the service side.")
						}
					}
					if pv != nil && r == nil {
						return nil, invalid("Reported properties cannot be updated from the service side.")
					}
				default:
					return nil, invalid("properties.%s is not a twin section; use desired.", pk)
				}
			}
		}
	}
	if u.tags != nil {
		if e := validateTwinObject("tags", u.tags, 0, patch); e != nil {
			return nil, e
		}
	}
	if u.desired != nil {
		if e := validateTwinObject("properties.desired", u.desired, 0, patch); e != nil {
			return nil, e
		}
	}
	return &u, nil
}

// applyTwinUpdate merges (patch) or replaces the twin's tags and desired
// properties, checking the size limits first. The caller holds Hub.mu.
func (h *Hub) applyTwinUpdate(e *entry, u *twinUpdate, patch bool, now time.Time) *hubError {
	t := &e.twin
	tags, desired := t.tags, t.desired.root
	tagsChanged, desiredChanged := false, false
	if u.tags != nil {
		if patch {
			tags = tags.clone()
			tagsChanged = tags.merge(u.tags, now)
		} else {
			tags = build(u.tags, now)
			tagsChanged = !bytes.Equal(marshal(tags.value()), marshal(t.tags.value()))
		}
	} else if !patch {
		tags = newObject(now)
		tagsChanged = len(t.tags.kids) > 0
	}
	if u.desired != nil {
		if patch {
			desired = desired.clone()
			desiredChanged = desired.merge(u.desired, now)
		} else {
			desired = build(u.desired, now)
			desiredChanged = !bytes.Equal(marshal(desired.value()), marshal(t.desired.root.value()))
		}
	} else if !patch {
		desired = newObject(now)
		desiredChanged = len(t.desired.root.kids) > 0
	}
	if tags.size() > MaxTagsSize {
		return invalid("tags exceed the maximum size of %d bytes.", MaxTagsSize)
	}
	if desired.size() > MaxPropertiesSize {
		return invalid("properties.desired exceed the maximum size of %d bytes.", MaxPropertiesSize)
	}
	if tagsChanged {
		t.tags = tags
	}
	if desiredChanged {
		t.desired.root = desired
		t.desired.version++
		stampDesiredVersion(desired, now, t.desired.version)
	}
	if tagsChanged || desiredChanged {
		t.version++
		t.etag = h.nextTwinETag()
	}
	return nil
}

// lookupTwin finds the entry and device of a twin route. The caller holds
// h.mu.
func (h *Hub) lookupTwin(params []string) (*Device, *Module, *hubError) {
	d := h.devices[params[0]]
	if d == nil {
		return nil, nil, deviceNotFound(params[0])
	}
	if len(params) < 2 {
		return d, nil, nil
	}
	m := d.modules[params[1]]
	if m == nil {
		return nil, nil, moduleNotFound(params[0], params[1])
	}
	return d, m, nil
}

// getTwin serves GET /twins/{id} and /twins/{id}/modules/{mid}.
func (h *Hub) getTwin(w http.ResponseWriter, _ *http.Request, rq *routed) {
	h.mu.Lock()
	d, m, e := h.lookupTwin(rq.params)
	var tw map[string]any
	if e == nil {
		tw = twinWire(d, m)
	}
	h.mu.Unlock()
	if e != nil {
		e.write(w, rq.now)
		return
	}
	writeEntity(w, tw["etag"].(string), tw)
}

// patchTwin serves PATCH (and POST with X-HTTP-Method-Override: PATCH).
func (h *Hub) patchTwin(w http.ResponseWriter, r *http.Request, rq *routed) {
	h.updateTwin(w, r, rq, true)
}

// replaceTwin serves PUT on a twin.
func (h *Hub) replaceTwin(w http.ResponseWriter, r *http.Request, rq *routed) {
	h.updateTwin(w, r, rq, false)
}

func (h *Hub) updateTwin(w http.ResponseWriter, r *http.Request, rq *routed, patch bool) {
	if e := checkJSONContentType(r, rq.body); e != nil {
		e.write(w, rq.now)
		return
	}
	mid := ""
	if len(rq.params) > 1 {
		mid = rq.params[1]
	}
	u, e := parseTwinUpdate(rq.body, rq.params[0], mid, patch)
	if e != nil {
		e.write(w, rq.now)
		return
	}
	im := parseIfMatch(r)
	h.mu.Lock()
	d, m, e := h.lookupTwin(rq.params)
	var tw map[string]any
	if e == nil {
		ent := &d.reg
		if m != nil {
			ent = &m.reg
		}
		if !im.matches(twinETagString(ent.twin.etag)) {
			e = preconditionFailed()
		} else {
			e = h.applyTwinUpdate(ent, u, patch, rq.now)
		}
	}
	if e == nil {
		tw = twinWire(d, m)
	}
	h.mu.Unlock()
	if e != nil {
		e.write(w, rq.now)
		return
	}
	writeEntity(w, tw["etag"].(string), tw)
}
