package iothubtest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// Target names a direct method of a device (ModuleID empty) or of a
// module, the key of ExpectDeliveries.
type Target struct {
	DeviceID, ModuleID, Method string
}

// Deliveries returns how many calls of method reached the device (moduleID
// empty) or module since New: calls the hub handed to the target, whether
// or not it answered in time (a lost answer, DropAfterDelivery and a
// response timeout all count; a call refused before delivery does not).
// An empty method counts every method. Calls made by jobs count too.
func (h *Hub) Deliveries(deviceID, moduleID, method string) int {
	if method == "" {
		return h.engine.Deliveries(deviceID, moduleID)
	}
	n := 0
	for t, c := range h.engine.MethodDeliveries() {
		if t.DeviceID == deviceID && t.ModuleID == moduleID && t.Method == method {
			n += c
		}
	}
	return n
}

// ExpectDeliveries checks that the hub delivered exactly the calls in want
// since New, per target and method, and nothing else: a target missing
// from want must have received no call. Entries of want with 0 say "not
// delivered" and may be given for clarity. On a mismatch it reports a
// -want +got diff with t.Errorf.
//
//	hub.ExpectDeliveries(t, map[iothubtest.Target]int{
//		{DeviceID: "dev-1", Method: "reboot"}: 1, // rebooted exactly once
//	})
func (h *Hub) ExpectDeliveries(t testing.TB, want map[Target]int) {
	t.Helper()
	w := make(map[Target]int, len(want))
	for k, v := range want {
		if v != 0 {
			w[k] = v
		}
	}
	got := make(map[Target]int)
	for k, v := range h.engine.MethodDeliveries() {
		got[Target(k)] = v
	}
	if diff := deliveriesDiff(w, got); diff != "" {
		t.Errorf("iothubtest: deliveries of %s (-want +got):\n%s", h.HostName(), diff)
	}
}

// deliveriesDiff is a line per target whose count differs, in target
// order: "-" and the wanted count, "+" and the delivered one; "" when they
// agree. It is written here rather than with go-cmp so that a program
// embedding the hub does not link a diff library.
func deliveriesDiff(want, got map[Target]int) string {
	var keys []Target
	for k, v := range want {
		if got[k] != v {
			keys = append(keys, k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b Target) int {
		return cmp.Or(strings.Compare(a.DeviceID, b.DeviceID), strings.Compare(a.ModuleID, b.ModuleID), strings.Compare(a.Method, b.Method))
	})
	var b strings.Builder
	for _, k := range keys {
		name := fmt.Sprintf("{DeviceID: %q, ModuleID: %q, Method: %q}", k.DeviceID, k.ModuleID, k.Method)
		if n, ok := want[k]; ok {
			fmt.Fprintf(&b, "-\t%s: %d\n", name, n)
		}
		if n, ok := got[k]; ok {
			fmt.Fprintf(&b, "+\t%s: %d\n", name, n)
		}
	}
	return b.String()
}

// Calls returns the delivered method calls, in order of delivery (the most
// recent Options.MaxRecorded when that is set). The result is a copy.
func (h *Hub) Calls() []MethodCall {
	cs := h.engine.Calls()
	out := make([]MethodCall, len(cs))
	for i, c := range cs {
		out[i] = MethodCall(c)
	}
	return out
}

// Request is a request as the hub received it.
type Request struct {
	// Method is the HTTP verb.
	Method string
	// Path is the escaped path as sent, such as "/twins/a%2Fb/methods".
	Path string
	// RawQuery is the query string as sent, without '?'.
	RawQuery string
	// Header is a copy of the request's headers, Authorization included.
	Header http.Header
	// Body is the request body.
	Body []byte
	// Time is when the hub had read the request.
	Time time.Time
}

// Requests returns every request the hub received, the ones it refused
// included, in order (the most recent Options.MaxRecorded when that is
// set). Requests a DropBeforeWrite fault stopped never reached the hub and
// are absent. The result is a copy.
func (h *Hub) Requests() []Request {
	rs := h.engine.Requests()
	out := make([]Request, len(rs))
	for i, r := range rs {
		out[i] = Request{Method: r.Method, Path: r.Path, RawQuery: r.RawQuery, Header: r.Header, Body: r.Body, Time: r.Time}
	}
	return out
}

// Twin is a snapshot of a device or module twin's tags and properties.
// Values are as encoding/json decodes them into any: numbers are float64,
// objects map[string]any.
type Twin struct {
	// DeviceID and ModuleID name the twin; ModuleID is empty for a device.
	DeviceID, ModuleID string
	// ETag is the twin's etag, unquoted.
	ETag string
	// Tags are the twin's tags (nil when it has none).
	Tags map[string]any
	// Desired and Reported are the properties, without $metadata and
	// $version (nil when there are none).
	Desired, Reported map[string]any
	// DesiredVersion and ReportedVersion are the properties' $version.
	DesiredVersion, ReportedVersion int64
}

// Twin returns a snapshot of the device's twin, as GET /twins/{id} would
// return it now, and false when there is no such device.
func (h *Hub) Twin(deviceID string) (Twin, bool) { return h.twin(deviceID, "") }

// ModuleTwin returns a snapshot of the module's twin, and false when there
// is no such module.
func (h *Hub) ModuleTwin(deviceID, moduleID string) (Twin, bool) {
	return h.twin(deviceID, moduleID)
}

func (h *Hub) twin(deviceID, moduleID string) (Twin, bool) {
	snap, ok := h.engine.Twin(deviceID, moduleID)
	if !ok {
		return Twin{}, false
	}
	b, err := json.Marshal(snap)
	if err != nil {
		panic("iothubtest: Twin: " + err.Error()) // the engine's own JSON
	}
	var w struct {
		ETag       string         `json:"etag"`
		Tags       map[string]any `json:"tags"`
		Properties struct {
			Desired, Reported map[string]any
		} `json:"properties"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		panic("iothubtest: Twin: " + err.Error())
	}
	tw := Twin{DeviceID: deviceID, ModuleID: moduleID, ETag: w.ETag, Tags: w.Tags}
	tw.Desired, tw.DesiredVersion = properties(w.Properties.Desired)
	tw.Reported, tw.ReportedVersion = properties(w.Properties.Reported)
	if len(tw.Tags) == 0 {
		tw.Tags = nil
	}
	return tw, true
}

// properties splits $version off a property section and drops $metadata.
func properties(p map[string]any) (map[string]any, int64) {
	var v int64
	if f, ok := p["$version"].(float64); ok {
		v = int64(f)
	}
	delete(p, "$version")
	delete(p, "$metadata")
	if len(p) == 0 {
		p = nil
	}
	return p, v
}
