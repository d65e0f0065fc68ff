package httpmock

import (
	"fmt"
	"time"
)

// Drop is how a fault breaks the connection instead of answering.
type Drop int

// The ways a fault can break the connection.
const (
	// DropNone answers normally.
	DropNone Drop = iota
	// DropBeforeWrite fails the connection before the request is written:
	// the hub never sees it and nothing is delivered. The in-process
	// transport reports a connection reset after GetConn and GotConn,
	// without WroteRequest. On the TLS server it is a connection-level
	// fault: see Hub.StartTLS.
	DropBeforeWrite
	// DropAfterRead reads the request in full, then breaks the connection
	// without delivering the method.
	DropAfterRead
	// DropAfterDelivery delivers the method (the device runs it) and then
	// breaks the connection instead of answering.
	DropAfterDelivery
)

// String returns the constant's name.
func (d Drop) String() string {
	switch d {
	case DropNone:
		return "DropNone"
	case DropBeforeWrite:
		return "DropBeforeWrite"
	case DropAfterRead:
		return "DropAfterRead"
	case DropAfterDelivery:
		return "DropAfterDelivery"
	}
	return fmt.Sprintf("Drop(%d)", int(d))
}

// ErrorShape selects one of the error-body shapes IoT Hub is known to emit.
type ErrorShape int

// The error-body shapes.
const (
	// ShapeEscapedJSON is the current shape: a JSON object escaped into the
	// string Message, and an empty ExceptionMessage:
	//
	//	{"Message":"{\"errorCode\":404103,\"trackingId\":\"…\",\"message\":\"…\",\"info\":{…},\"timestampUtc\":\"…\"}","ExceptionMessage":""}
	ShapeEscapedJSON ErrorShape = iota
	// ShapeLegacy is the older shape:
	//
	//	{"Message":"ErrorCode:DeviceNotFound;<text>","ExceptionMessage":"Tracking ID:<id>-G:11-TimeStamp:MM/dd/yyyy HH:mm:ss"}
	//
	// with the code's number after "ErrorCode:" when it has no name.
	ShapeLegacy
	// ShapeObject carries the same object as ShapeEscapedJSON unescaped:
	// {"Message":{"errorCode":…,"trackingId":…,"message":…,"timestampUtc":…}}.
	ShapeObject
	// ShapeRouting is ASP.NET's plain shape, with no code and no
	// iothub-errorcode header: {"Message":"<text>"}.
	ShapeRouting
)

// String returns the constant's name.
func (s ErrorShape) String() string {
	switch s {
	case ShapeEscapedJSON:
		return "ShapeEscapedJSON"
	case ShapeLegacy:
		return "ShapeLegacy"
	case ShapeObject:
		return "ShapeObject"
	case ShapeRouting:
		return "ShapeRouting"
	}
	return fmt.Sprintf("ErrorShape(%d)", int(s))
}

// Operation names the kind of request a Fault applies to.
type Operation string

// The operations faults can target.
const (
	// OperationMethod is direct-method invocations.
	OperationMethod Operation = "method"
	// OperationRegistry is the identity registry: device and module GET,
	// PUT and DELETE, module and device lists, statistics and bulk POST
	// /devices.
	OperationRegistry Operation = "registry"
	// OperationTwin is twin GET, PATCH and PUT, and digital twin GET and
	// PATCH.
	OperationTwin Operation = "twin"
	// OperationQuery is POST /devices/query.
	OperationQuery Operation = "query"
	// OperationAny is every operation, as is the zero Operation.
	OperationAny Operation = "*"
)

// covers reports whether a fault's Operation selects op.
func (o Operation) covers(op Operation) bool {
	return o == "" || o == OperationAny || o == op
}

// Fault is a scripted hub-side failure, added with Hub.AddFault. It
// applies to every operation (direct methods, registry, twins, queries)
// unless Operation narrows it; a fault with a Method matches only direct
// methods.
//
// Faults are checked in the order they were added, for every request of
// their Operation that passed routing, api-version, authentication and (for
// methods) body validation. Each
// fault that matches the request counts it; the first fault whose Skip is
// used up and whose Times is not hits, and the later faults do not see the
// request. (DropBeforeWrite faults are checked apart: by the in-process
// transport before the request reaches the hub, and by the TLS server per
// new connection.)
//
// What a hit does:
//
//   - Drop set: the connection breaks as Drop describes.
//   - Status, Code or Body set: the hub answers with that error instead of
//     delivering the method; with AfterDelivery, after delivering it.
//   - AfterDelivery alone: the method is delivered and the hub then answers
//     504 / 504101 GatewayTimeout, the answer of a lost device response.
//   - only Delay: the hub waits, then handles the request normally.
//
// Delay is waited before the fault's effect: before answering or breaking,
// after the device answered for AfterDelivery and DropAfterDelivery. When
// an AfterDelivery or DropAfterDelivery fault hits a call that cannot be
// delivered (device not found, offline) the hub answers that error instead.
type Fault struct {
	// Operation selects the kind of request; "" matches any.
	Operation Operation

	// DeviceID, ModuleID and Method select the requests the fault applies
	// to; "" matches any. DeviceID and ModuleID are matched against the
	// path's ids (a request without them, such as a query, matches only
	// when they are empty). Method is the direct-method name; a fault with
	// a Method matches no other operation.
	DeviceID, ModuleID, Method string

	// Skip lets the first Skip matching calls through.
	Skip int
	// Times is how many matching calls the fault hits after Skip: 0 means
	// 1, a negative value means every one.
	Times int

	// Status is the HTTP status. Zero means the first three digits of
	// Code, or 500 when Code is zero too.
	Status int
	// Code is the six-digit IoT Hub error code. Zero means Status × 1000
	// (the generic code of the status) except in ShapeRouting.
	Code int
	// Message is the error text. Empty means the code's name.
	Message string
	// RetryAfter is the raw Retry-After header value; "" sends none.
	RetryAfter string

	// AfterDelivery delivers the method to the device (it is counted and
	// its handler runs) and answers with the error instead of the result.
	AfterDelivery bool
	// Drop breaks the connection instead of answering.
	Drop Drop
	// Delay is how long the hub waits before the fault takes effect.
	Delay time.Duration

	// Body, when non-nil, is the exact answer body (with Status), for
	// truncated, HTML, oversized or otherwise malformed answers. No
	// iothub-errorcode header is sent.
	Body []byte
	// ContentType is the Content-Type of Body; empty sends none.
	ContentType string

	// Shape is the error-body shape; see ErrorShape.
	Shape ErrorShape
}

// answers reports whether the fault replaces the hub's answer with its own.
func (f *Fault) answers() bool { return f.Status != 0 || f.Code != 0 || f.Body != nil }

// afterDelivery reports whether the fault takes effect once the method was
// delivered.
func (f *Fault) afterDelivery() bool { return f.AfterDelivery || f.Drop == DropAfterDelivery }

// faultState is a fault and its counters; guarded by Hub.mu.
type faultState struct {
	f    Fault
	seen int
	hits int
}

func (fs *faultState) matches(op Operation, t target, method string) bool {
	return fs.f.Operation.covers(op) &&
		(fs.f.Method == "" || op == OperationMethod) &&
		(fs.f.DeviceID == "" || fs.f.DeviceID == t.deviceID) &&
		(fs.f.ModuleID == "" || fs.f.ModuleID == t.moduleID) &&
		(fs.f.Method == "" || fs.f.Method == method)
}

// count counts a matching event and reports whether the fault hits it.
func (fs *faultState) count() bool {
	fs.seen++
	if fs.seen <= fs.f.Skip {
		return false
	}
	times := fs.f.Times
	if times == 0 {
		times = 1
	}
	if times > 0 && fs.hits >= times {
		return false
	}
	fs.hits++
	return true
}

// AddFault adds a scripted fault; see Fault.
func (h *Hub) AddFault(f Fault) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults = append(h.faults, &faultState{f: f})
}

// ClearFaults removes every fault.
func (h *Hub) ClearFaults() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults = nil
}

// takeFault returns the fault that hits a request of op, or nil. When
// beforeWrite is true only DropBeforeWrite faults are considered, otherwise
// only the others.
func (h *Hub) takeFault(op Operation, t target, method string, beforeWrite bool) *Fault {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, fs := range h.faults {
		if (fs.f.Drop == DropBeforeWrite) != beforeWrite || !fs.matches(op, t, method) {
			continue
		}
		if fs.count() {
			f := fs.f
			return &f
		}
	}
	return nil
}

// takeConnDrop reports whether a DropBeforeWrite fault hits a newly accepted
// connection of the TLS server. Connection-level faults cannot see the
// request, so DeviceID, ModuleID and Method are ignored and Skip and Times
// count connections.
func (h *Hub) takeConnDrop() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, fs := range h.faults {
		if fs.f.Drop == DropBeforeWrite && fs.count() {
			return true
		}
	}
	return false
}
