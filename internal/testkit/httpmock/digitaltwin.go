package httpmock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hubkit/iothub"
)

// Plug and Play digital twins: GET and PATCH /digitaltwins/{id}, a view of
// the device twin (ServiceConnect; Entra twins/read and twins/write).
//
// The view is built from the device twin as IoT Hub documents it
// (concepts-digital-twin.md, concepts-convention.md): a desired or reported
// object carrying "__t": "c" is a component; a reported writable property
// in the convention's {"value","ac","av","ad"} form shows its value, and its
// ack code, version and description in $metadata; a desired value shows as
// desiredValue and desiredVersion (the desired $version of its last
// change); lastUpdateTime is when the device last reported the property.
// The root $metadata holds $model when the device announced a model id, and
// nothing else of the model: a device without one gets the same view
// without $model.

// Digital twin patch limits, as IoT Hub documents them (howto-manage-digital-twin.md).
const (
	// MaxDigitalTwinNameLen is the longest DTDL name of a component or
	// property.
	MaxDigitalTwinNameLen = 64
	// MaxDigitalTwinDepth is the deepest nesting of objects in a property
	// value (an object value is one level).
	MaxDigitalTwinDepth = 5
)

// componentMarker is the key and value that mark a component in a device
// twin.
const (
	componentMarkerKey   = "__t"
	componentMarkerValue = "c"
)

// isComponent reports whether a twin node is a component: an object with
// "__t": "c".
func isComponent(n *pnode) bool {
	if n == nil || n.kids == nil {
		return false
	}
	m := n.kids[componentMarkerKey]
	return m != nil && m.kids == nil && m.val == componentMarkerValue
}

// digitalTwinETag is the weak ETag header value of a twin.
func digitalTwinETag(t *twinState) string { return `W/"` + twinETagString(t.etag) + `"` }

// propView gathers one property of the view.
type propView struct {
	value    any
	reported bool
	meta     map[string]any
}

// section is the root or a component of the view.
type section map[string]*propView

func (s section) prop(name string) *propView {
	p := s[name]
	if p == nil {
		p = &propView{meta: map[string]any{}}
		s[name] = p
	}
	return p
}

// addReported records a reported property.
func (s section) addReported(name string, n *pnode) {
	p := s.prop(name)
	p.reported = true
	p.meta["lastUpdateTime"] = formatTime(n.updated)
	v := n.kids["value"]
	ac := n.kids["ac"]
	if n.kids == nil || v == nil || ac == nil {
		p.value = n.value()
		return
	}
	p.value = v.value()
	p.meta["ackCode"] = ac.value()
	if av := n.kids["av"]; av != nil {
		p.meta["ackVersion"] = av.value()
	}
	if ad := n.kids["ad"]; ad != nil {
		p.meta["ackDescription"] = ad.value()
	}
}

// addDesired records a desired property; fallback is the desired $version,
// for values older than version stamps.
func (s section) addDesired(name string, n *pnode, fallback int64) {
	p := s.prop(name)
	p.meta["desiredValue"] = n.value()
	ver := n.ver
	if ver == 0 {
		ver = fallback
	}
	p.meta["desiredVersion"] = ver
}

// wire writes the section's properties into obj and their metadata into
// meta.
func (s section) wire(obj, meta map[string]any) {
	for name, p := range s {
		if p.reported {
			obj[name] = p.value
		}
		meta[name] = p.meta
	}
}

// digitalTwinWire returns the digital twin view of a device. The caller
// holds h.mu.
func digitalTwinWire(d *Device) map[string]any {
	t := &d.reg.twin
	root := section{}
	comps := map[string]section{}
	comp := func(name string) section {
		c := comps[name]
		if c == nil {
			c = section{}
			comps[name] = c
		}
		return c
	}
	for k, n := range t.reported.root.kids {
		if !isComponent(n) {
			root.addReported(k, n)
			continue
		}
		c := comp(k)
		for pk, pn := range n.kids {
			if pk != componentMarkerKey {
				c.addReported(pk, pn)
			}
		}
	}
	for k, n := range t.desired.root.kids {
		if !isComponent(n) {
			root.addDesired(k, n, t.desired.version)
			continue
		}
		c := comp(k)
		for pk, pn := range n.kids {
			if pk != componentMarkerKey {
				c.addDesired(pk, pn, t.desired.version)
			}
		}
	}
	out := map[string]any{"$dtId": d.id}
	meta := map[string]any{}
	if t.modelID != "" {
		meta["$model"] = t.modelID
	}
	root.wire(out, meta)
	for name, c := range comps {
		obj, cmeta := map[string]any{}, map[string]any{}
		c.wire(obj, cmeta)
		obj["$metadata"] = cmeta
		out[name] = obj
	}
	out["$metadata"] = meta
	return out
}

// DigitalTwin returns a snapshot of a device's digital twin, as GET
// /digitaltwins/{id} returns it, and false when there is no such device.
// Numbers are json.Number.
func (h *Hub) DigitalTwin(deviceID string) (map[string]any, bool) {
	h.mu.Lock()
	d := h.devices[deviceID]
	var body []byte
	if d != nil {
		body = marshal(digitalTwinWire(d))
	}
	h.mu.Unlock()
	if d == nil {
		return nil, false
	}
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	_ = dec.Decode(&out)
	return out, true
}

// getDigitalTwin serves GET /digitaltwins/{id}.
func (h *Hub) getDigitalTwin(w http.ResponseWriter, _ *http.Request, rq *routed) {
	h.mu.Lock()
	d := h.devices[rq.params[0]]
	var body []byte
	var etag string
	if d != nil {
		body = marshal(digitalTwinWire(d))
		etag = digitalTwinETag(&d.reg.twin)
	}
	h.mu.Unlock()
	if d == nil {
		deviceNotFound(rq.params[0]).write(w, rq.now)
		return
	}
	w.Header().Set("ETag", etag)
	writeJSON(w, http.StatusOK, body)
}

// dtOp is one validated operation of a digital twin patch.
type dtOp struct {
	op        string // add, replace or remove
	component string // the component of a component property or a whole component
	name      string // the property; "" for a whole component
	value     any    // the property's value, or a whole component's properties
	whole     bool
}

// notConformant is the hub's answer to a patch that breaks a digital twin
// rule: 400004 naming the property.
func notConformant(name, reason string) *hubError {
	return invalid("'%s' is not a digital twin conformant property: %s. Please refer to aka.ms/dtpatch to update this to be conformant.", name, reason)
}

// existingNotConformant is the hub's answer to a patch on a property whose
// desired value in the device twin breaks the rules.
func existingNotConformant(name string) *hubError {
	return invalid("'%s' exists within the device twin and is not digital twin conformant property. Please refer to aka.ms/dtpatch to update this to be conformant.", name)
}

// dtdlName reports whether s is a DTDL name: ASCII letters, digits and
// '_', 1 to 64 characters, not starting with a digit or '_', not ending
// with '_'.
func dtdlName(s string) bool {
	if s == "" || len(s) > MaxDigitalTwinNameLen || s[0] == '_' || s[len(s)-1] == '_' || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// dtValueRule returns what breaks the value rules in v, or "": no arrays,
// no nulls, objects at most MaxDigitalTwinDepth deep with DTDL field names.
// depth is the number of objects around v.
func dtValueRule(v any, depth int) string {
	switch x := v.(type) {
	case nil:
		return "null is not a digital twin value"
	case []any:
		return "arrays are not supported"
	case map[string]any:
		if depth+1 > MaxDigitalTwinDepth {
			return fmt.Sprintf("objects may be nested at most %d levels deep", MaxDigitalTwinDepth)
		}
		for k, kv := range x {
			if !dtdlName(k) {
				return fmt.Sprintf("the field name '%s' is not a DTDL name", k)
			}
			if r := dtValueRule(kv, depth+1); r != "" {
				return r
			}
		}
	}
	return ""
}

// parseDigitalTwinPatch validates a JSON Patch body against the digital
// twin rules.
func parseDigitalTwinPatch(body []byte) ([]dtOp, *hubError) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	var raw []map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if len(trimmed) == 0 || trimmed[0] != '[' || dec.Decode(&raw) != nil || dec.More() {
		return nil, newError(iothub.ErrorCodeIotHubFormatError, "The request body is not a valid JSON Patch document: a JSON array of operations is expected.")
	}
	if len(raw) == 0 {
		return nil, invalid("The patch must hold at least one operation.")
	}
	ops := make([]dtOp, 0, len(raw))
	for i, r := range raw {
		if r == nil {
			return nil, invalid("Operation %d of the patch is not an object.", i)
		}
		opName, _ := r["op"].(string)
		path, ok := r["path"].(string)
		if !ok || path == "" {
			return nil, invalid("Operation %d of the patch has no path.", i)
		}
		switch opName {
		case "add", "replace", "remove":
		default:
			return nil, invalid("Operation %d of the patch: op '%v' is not supported; use add, replace or remove.", i, r["op"])
		}
		segs := strings.Split(path, "/")
		if segs[0] != "" || len(segs) < 2 || len(segs) > 3 {
			return nil, invalid("Operation %d of the patch: the path '%s' must be /property, /component/property or /component.", i, path)
		}
		segs = segs[1:]
		for _, s := range segs {
			if !dtdlName(s) {
				return nil, notConformant(s, "names must be DTDL names (letters, digits and '_', 1 to 64 characters, not starting with a digit or '_', not ending with '_')")
			}
		}
		o := dtOp{op: opName, name: segs[len(segs)-1]}
		if len(segs) == 2 {
			o.component = segs[0]
		}
		if opName == "remove" {
			ops = append(ops, o) // on one segment, a root property or a whole component

			continue
		}
		v, has := r["value"]
		if !has {
			return nil, invalid("Operation %d of the patch: %s needs a value.", i, opName)
		}
		if obj, isObj := v.(map[string]any); isObj && len(segs) == 1 {
			if md, marked := obj["$metadata"]; marked {
				mdObj, isMD := md.(map[string]any)
				if !isMD || len(mdObj) != 0 {
					return nil, notConformant(segs[0], "the $metadata of a whole component must be an empty object")
				}
				props := make(map[string]any, len(obj)-1)
				for k, pv := range obj {
					if k == "$metadata" {
						continue
					}
					if !dtdlName(k) {
						return nil, notConformant(k, "names must be DTDL names")
					}
					if rule := dtValueRule(pv, 0); rule != "" {
						return nil, notConformant(k, rule)
					}
					props[k] = pv
				}
				o = dtOp{op: opName, component: segs[0], value: props, whole: true}
				ops = append(ops, o)
				continue
			}
		}
		if rule := dtValueRule(v, 0); rule != "" {
			return nil, notConformant(o.name, rule)
		}
		o.value = v
		ops = append(ops, o)
	}
	return ops, nil
}

// conformant reports whether a stored desired value follows the digital
// twin rules.
func conformant(n *pnode) bool {
	return n == nil || dtValueRule(n.value(), 0) == ""
}

// applyDigitalTwinPatch applies ops to a clone of the desired properties
// and returns it, and whether anything changed.
func applyDigitalTwinPatch(desired *pnode, ops []dtOp, now time.Time) (*pnode, bool, *hubError) {
	root := desired.clone()
	before := marshal(root.value())
	for _, o := range ops {
		switch {
		case o.op == "remove" && o.component == "":
			// A root property or a whole component.
			if n := root.kids[o.name]; n != nil {
				if !isComponent(n) && !conformant(n) {
					return nil, false, existingNotConformant(o.name)
				}
				delete(root.kids, o.name)
			}
		case o.op == "remove":
			c := root.kids[o.component]
			if c == nil || !isComponent(c) {
				continue // nothing desired to clear
			}
			if _, ok := c.kids[o.name]; ok {
				delete(c.kids, o.name)
				c.updated = now
				if len(c.kids) == 1 {
					delete(root.kids, o.component) // only the marker is left
				}
			}
		case o.whole:
			props := o.value.(map[string]any)
			obj := make(map[string]any, len(props)+1)
			for k, v := range props {
				obj[k] = v
			}
			obj[componentMarkerKey] = componentMarkerValue
			if old := root.kids[o.component]; old != nil && !isComponent(old) {
				return nil, false, existingNotConformant(o.component)
			}
			root.kids[o.component] = build(obj, now)
		case o.component != "":
			c := root.kids[o.component]
			switch {
			case c == nil:
				c = build(map[string]any{componentMarkerKey: componentMarkerValue}, now)
				root.kids[o.component] = c
			case !isComponent(c):
				return nil, false, existingNotConformant(o.component)
			}
			if !conformant(c.kids[o.name]) {
				return nil, false, existingNotConformant(o.name)
			}
			c.kids[o.name] = build(o.value, now)
			c.updated = now
		default:
			if old := root.kids[o.name]; old != nil && (isComponent(old) || !conformant(old)) {
				return nil, false, existingNotConformant(o.name)
			}
			root.kids[o.name] = build(o.value, now)
		}
	}
	changed := !bytes.Equal(before, marshal(root.value()))
	if changed {
		root.updated = now
	}
	return root, changed, nil
}

// patchDigitalTwin serves PATCH /digitaltwins/{id} (and POST with
// X-HTTP-Method-Override: PATCH): 202 with the new weak ETag and the
// twin's Location, no body.
func (h *Hub) patchDigitalTwin(w http.ResponseWriter, r *http.Request, rq *routed) {
	if e := checkJSONContentType(r, rq.body); e != nil {
		e.write(w, rq.now)
		return
	}
	ops, e := parseDigitalTwinPatch(rq.body)
	if e != nil {
		e.write(w, rq.now)
		return
	}
	im := parseIfMatch(r)
	h.mu.Lock()
	d := h.devices[rq.params[0]]
	var etag string
	switch {
	case d == nil:
		e = deviceNotFound(rq.params[0])
	case !im.matches(twinETagString(d.reg.twin.etag)):
		e = preconditionFailed()
	default:
		t := &d.reg.twin
		var desired *pnode
		var changed bool
		desired, changed, e = applyDigitalTwinPatch(t.desired.root, ops, rq.now)
		switch {
		case e != nil:
		case desired.size() > MaxPropertiesSize:
			e = invalid("properties.desired exceed the maximum size of %d bytes.", MaxPropertiesSize)
		case changed:
			t.desired.root = desired
			t.desired.version++
			stampDesiredVersion(desired, rq.now, t.desired.version)
			t.version++
			t.etag = h.nextTwinETag()
		}
		etag = digitalTwinETag(t)
	}
	h.mu.Unlock()
	if e != nil {
		e.write(w, rq.now)
		return
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Location", "https://"+h.hostName+"/digitaltwins/"+url.PathEscape(rq.params[0]))
	w.WriteHeader(http.StatusAccepted)
}

// stampDesiredVersion records version as the desired version of every node
// of a new desired tree that changed at now (new nodes, and objects merged
// into at now), for the digital twin's desiredVersion. The tree is the
// caller's fresh clone, not yet shared.
func stampDesiredVersion(n *pnode, now time.Time, version int64) {
	if n.ver == 0 || n.updated.Equal(now) {
		n.ver = version
	}
	for _, k := range n.kids {
		stampDesiredVersion(k, now, version)
	}
}
