package iothubtest

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
)

// Operation names the kind of request a Fault applies to.
type Operation string

// The operations faults can target.
const (
	// OperationAny is every operation, as is the zero Operation.
	OperationAny Operation = ""
	// OperationMethod is direct-method calls, and the method calls of jobs.
	OperationMethod Operation = "method"
	// OperationRegistry is the identity registry: devices, modules,
	// statistics and bulk operations.
	OperationRegistry Operation = "registry"
	// OperationTwin is twin reads and updates.
	OperationTwin Operation = "twin"
	// OperationQuery is POST /devices/query.
	OperationQuery Operation = "query"
	// OperationJob is the jobs REST operations: create, get, cancel, query.
	OperationJob Operation = "job"
)

// Drop is how a fault breaks the connection instead of answering.
type Drop int

// The ways a fault can break the connection.
const (
	// DropNone answers normally.
	DropNone Drop = iota
	// DropBeforeWrite fails the connection before the request is written:
	// nothing reaches the hub. Through RoundTripper the request fails
	// with a connection reset. On a Server it is checked for each new
	// connection, before the TLS handshake, whatever the fault's DeviceID,
	// ModuleID and Method.
	DropBeforeWrite
	// DropAfterRead reads the whole request, then breaks the connection
	// without delivering anything.
	DropAfterRead
	// DropAfterDelivery delivers the method (the handler runs, the call
	// is counted) and then breaks the connection instead of answering:
	// the caller cannot know whether it ran.
	DropAfterDelivery
)

// Fault is a scripted failure of the hub, added with Hub.AddFault: "the
// next 2 calls of reboot on dev-1 get 503", "every call gets 429 with
// Retry-After: 1", "the answer of the next call is lost after delivery".
//
// Faults are checked in the order they were added, for each request that
// passed routing, api-version, authentication and (for methods) body
// validation, before the target is looked up. The first matching fault
// that has Skip used up and Times left hits; the later ones do not see
// the request. A hit does one of:
//
//   - Drop set: breaks the connection as Drop says.
//   - Status or Code set: answers that error, in the hub's exact shape,
//     without delivering the method; with AfterDelivery, after delivering
//     it.
//   - AfterDelivery alone: delivers the method and answers 504 / 504101
//     GatewayTimeout, a lost device answer.
//   - only Delay: waits, then serves the request normally.
type Fault struct {
	// Operation selects the kind of request; "" matches any.
	Operation Operation
	// DeviceID, ModuleID and Method select the requests; "" matches any
	// (so a DeviceID with an empty ModuleID matches the device and its
	// modules). A fault with a Method applies to direct methods only.
	DeviceID, ModuleID, Method string

	// Skip lets the first Skip matching requests through.
	Skip int
	// Times is how many matching requests the fault hits after Skip: 0
	// means 1, a negative value every one.
	Times int

	// Status is the HTTP status. Zero means the first three digits of
	// Code, or 500 when Code is zero too.
	Status int
	// Code is the six-digit IoT Hub error code, such as
	// iothub.ErrorCodeThrottlingException. Zero means Status × 1000.
	Code iothub.ErrorCode
	// Message is the error text; empty means the code's name.
	Message string
	// RetryAfter, when positive, is sent as a Retry-After header, in whole
	// seconds rounded up.
	RetryAfter time.Duration

	// AfterDelivery delivers the method before answering with the error.
	AfterDelivery bool
	// Drop breaks the connection instead of answering.
	Drop Drop
	// Delay is how long the hub waits before the fault takes effect (for
	// AfterDelivery, after the device answered).
	Delay time.Duration
}

// LostAnswers returns the fault of a device or module whose answers the hub
// loses: every method call to it is delivered (the handler runs, the call
// is counted) and answered 504 / 504101 GatewayTimeout. An empty moduleID
// covers the device and its modules.
func LostAnswers(deviceID, moduleID string) Fault {
	return Fault{Operation: OperationMethod, DeviceID: deviceID, ModuleID: moduleID, AfterDelivery: true, Times: -1}
}

// AddFault adds a scripted fault; see Fault. It panics on an unknown
// Operation or Drop.
func (h *Hub) AddFault(f Fault) {
	ef := httpmock.Fault{
		Operation:     httpmock.Operation(f.Operation),
		DeviceID:      f.DeviceID,
		ModuleID:      f.ModuleID,
		Method:        f.Method,
		Skip:          f.Skip,
		Times:         f.Times,
		Status:        f.Status,
		Code:          int(f.Code),
		Message:       f.Message,
		AfterDelivery: f.AfterDelivery,
		Delay:         f.Delay,
	}
	switch f.Operation {
	case OperationAny, OperationMethod, OperationRegistry, OperationTwin, OperationQuery, OperationJob:
	default:
		panic(fmt.Sprintf("iothubtest: AddFault: unknown Operation %q", f.Operation))
	}
	switch f.Drop {
	case DropNone:
	case DropBeforeWrite:
		ef.Drop = httpmock.DropBeforeWrite
	case DropAfterRead:
		ef.Drop = httpmock.DropAfterRead
	case DropAfterDelivery:
		ef.Drop = httpmock.DropAfterDelivery
	default:
		panic(fmt.Sprintf("iothubtest: AddFault: unknown Drop %d", f.Drop))
	}
	if f.RetryAfter > 0 {
		ef.RetryAfter = strconv.FormatInt(int64(math.Ceil(f.RetryAfter.Seconds())), 10)
	}
	h.engine.AddFault(ef)
}

// ClearFaults removes every fault, LostAnswers included.
func (h *Hub) ClearFaults() { h.engine.ClearFaults() }
