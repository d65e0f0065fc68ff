package iothub

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Sentinels for errors.Is. An *Error matches the sentinel of its code (or of
// its code's family); the SDK's other error types match ErrNotDelivered or
// ErrOutcomeUnknown as their cause warrants.
var (
	// ErrDeviceNotFound: the device is not registered, or is disabled (404001).
	ErrDeviceNotFound = errors.New("iothub: device not found")
	// ErrModuleNotFound: the module is not registered on the device (404010).
	ErrModuleNotFound = errors.New("iothub: module not found")
	// ErrDeviceNotOnline: the device was not connected, or not subscribed to
	// direct methods, within the connect timeout (404103).
	ErrDeviceNotOnline = errors.New("iothub: device not online")
	// ErrGatewayTimeout: the hub delivered the method but the device did not
	// answer within the response timeout (504101). The method may have run.
	ErrGatewayTimeout = errors.New("iothub: gateway timeout waiting for the device")
	// ErrThrottled: the hub throttled the request (any 429xxx code).
	ErrThrottled = errors.New("iothub: throttled")
	// ErrUnauthorized: the credential was refused (any 401xxx code).
	ErrUnauthorized = errors.New("iothub: unauthorized")
	// ErrForbidden: the hub refused the operation, e.g. a quota (any 403xxx code).
	ErrForbidden = errors.New("iothub: forbidden")
	// ErrPreconditionFailed: an ETag did not match (any 412xxx code).
	ErrPreconditionFailed = errors.New("iothub: precondition failed")
	// ErrConflict: the entity already exists (any 409xxx code).
	ErrConflict = errors.New("iothub: conflict")
	// ErrServerBusy: the hub is busy or unavailable (any 503xxx code).
	ErrServerBusy = errors.New("iothub: server busy")
	// ErrBadRequest: the hub rejected the request as malformed (any 400xxx code).
	ErrBadRequest = errors.New("iothub: bad request")

	// ErrInvalidArgument: the SDK rejected an argument before sending anything.
	ErrInvalidArgument = errors.New("iothub: invalid argument")

	// ErrNotDelivered: IoT Hub guarantees the request was not carried out: it
	// never left this process, or the hub refused it before acting on it
	// (validation, auth, not found, device offline, throttled, server busy).
	// Retrying cannot duplicate it.
	ErrNotDelivered = errors.New("iothub: not delivered")
	// ErrOutcomeUnknown: the request may have been carried out but its answer
	// was lost: 504101, a connection that broke after the request was
	// written, or a deadline that passed while waiting for the answer.
	// Retrying a method invocation could run it twice.
	ErrOutcomeUnknown = errors.New("iothub: outcome unknown")
)

// MayHaveRun reports whether the operation that returned err may have been
// carried out. It is the question to ask before retrying a method that is not
// idempotent, such as a reboot:
//
//   - nil: the call succeeded, so it ran; MayHaveRun(nil) is true.
//   - errors that match ErrNotDelivered: false; the hub guarantees the
//     request did not reach the device, and it is safe to try again.
//   - everything else, including ErrOutcomeUnknown and errors the SDK did not
//     produce: true.
func MayHaveRun(err error) bool {
	return !errors.Is(err, ErrNotDelivered)
}

// Error is a failure reported by IoT Hub: an HTTP status of 400 or above with
// the hub's error body. Use errors.Is with the sentinels above to test the
// kind of failure and errors.As to read the details.
type Error struct {
	// Operation names the SDK operation, such as "InvokeDeviceMethod".
	Operation string
	// DeviceID and ModuleID name the target, where the operation has one.
	DeviceID, ModuleID string
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is the hub's six-digit code, or 0 when the body carried none.
	Code ErrorCode
	// CodeName is the code's name as the hub sent it (in the body or the
	// iothub-errorcode header), or the SDK's name for Code.
	CodeName string
	// Message is the hub's message text.
	Message string
	// TrackingID identifies the request in the hub's logs; quote it to
	// Azure support.
	TrackingID string
	// RetryAfter is the delay the hub asked for in a Retry-After header, or 0.
	RetryAfter time.Duration
	// Attempts is how many HTTP attempts the SDK made, retries included.
	Attempts int
	// EarlierAttemptMayHaveRun is true when this is the answer to a retry
	// and an earlier attempt may have been carried out, whatever this
	// answer says of the last attempt (possible only for calls the SDK
	// retries after an unknown outcome: reads, registry writes, and method
	// invocations the caller declared idempotent). The error then matches
	// ErrOutcomeUnknown whatever its code.
	EarlierAttemptMayHaveRun bool
}

// Error names the operation, the target, the HTTP status, the code, the
// tracking ID and whether the request may have been carried out. It never
// includes a query string, a token or a key.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("iothub: ")
	writeOp(&b, e.Operation, e.DeviceID, e.ModuleID)
	b.WriteString(": ")
	if e.StatusCode != 0 {
		b.WriteString(strconv.Itoa(e.StatusCode))
	}
	if e.Code != 0 {
		b.WriteString(" ")
		b.WriteString(strconv.Itoa(int(e.Code)))
	}
	if n := e.name(); n != "" {
		b.WriteString(" ")
		b.WriteString(n)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.TrackingID != "" {
		b.WriteString(" (tracking ID ")
		b.WriteString(e.TrackingID)
		b.WriteString(")")
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	switch answer := e.answerOutcomeUnknown(); {
	case answer && e.EarlierAttemptMayHaveRun:
		b.WriteString(" [outcome unknown: it may have run, perhaps more than once]")
	case e.EarlierAttemptMayHaveRun:
		b.WriteString(" [outcome unknown: an earlier attempt may have run]")
	case answer:
		b.WriteString(" [outcome unknown: it may have run]")
	default:
		b.WriteString(" [not delivered]")
	}
	return b.String()
}

func (e *Error) name() string {
	if e.CodeName != "" {
		return e.CodeName
	}
	return e.Code.Name()
}

// family is the three-digit class of the error: the code's first digits, or
// the HTTP status when the body had no code.
func (e *Error) family() int {
	if s := e.Code.HTTPStatus(); s != 0 {
		return s
	}
	return e.StatusCode
}

// outcomeUnknown reports whether the failure leaves open that the hub acted
// on the request, on the answered attempt or an earlier one.
func (e *Error) outcomeUnknown() bool {
	return e.EarlierAttemptMayHaveRun || e.answerOutcomeUnknown()
}

// answerOutcomeUnknown reports whether the answer itself leaves open that
// the hub acted on the attempt it answers. Client errors (4xx) other than a
// device connection closed mid-call are refusals; throttling (429) and 503
// mean the hub shed the request before acting on it; any other 5xx may come
// after delivery.
func (e *Error) answerOutcomeUnknown() bool {
	switch e.Code {
	case ErrorCodeDeviceConnectionClosedRemotely, ErrorCodeConnectionForcefullyClosedOnNewConnection,
		ErrorCodeRequestTimeout, ErrorCodeClientClosedRequest:
		return true
	}
	f := e.family()
	switch {
	case f == 429 || f == 503:
		return false
	case f >= 400 && f < 500:
		return false
	}
	return true
}

// Is reports whether the error matches target: the sentinel of its code or
// code family, and ErrNotDelivered or ErrOutcomeUnknown.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrOutcomeUnknown:
		return e.outcomeUnknown()
	case ErrNotDelivered:
		return !e.outcomeUnknown()
	case ErrDeviceNotFound:
		return e.Code == ErrorCodeDeviceNotFound
	case ErrModuleNotFound:
		return e.Code == ErrorCodeModuleNotFound
	case ErrDeviceNotOnline:
		return e.Code == ErrorCodeDeviceNotOnline
	case ErrGatewayTimeout:
		return e.Code == ErrorCodeGatewayTimeout
	}
	var want int
	switch target {
	case ErrThrottled:
		want = 429
	case ErrUnauthorized:
		want = 401
	case ErrForbidden:
		want = 403
	case ErrPreconditionFailed:
		want = 412
	case ErrConflict:
		want = 409
	case ErrServerBusy:
		want = 503
	case ErrBadRequest:
		want = 400
	default:
		return false
	}
	return e.family() == want
}

// TransportError reports a request that got no HTTP answer from IoT Hub: the
// connection could not be made, it broke, or a deadline passed. Sent tells
// whether the request may have reached the hub; when it did, the error
// matches ErrOutcomeUnknown, otherwise ErrNotDelivered.
type TransportError struct {
	// Operation names the SDK operation, such as "InvokeDeviceMethod".
	Operation string
	// DeviceID and ModuleID name the target, where the operation has one.
	DeviceID, ModuleID string
	// Sent is true when the request may have been written to the hub in
	// full before the failure.
	Sent bool
	// Attempts is how many HTTP attempts the SDK made, retries included.
	Attempts int
	// Err is the underlying cause, such as a *net.OpError,
	// context.DeadlineExceeded or context.Canceled.
	Err error
}

// Error describes the failure, whether the request was sent, and the cause.
func (e *TransportError) Error() string {
	var b strings.Builder
	b.WriteString("iothub: ")
	writeOp(&b, e.Operation, e.DeviceID, e.ModuleID)
	if e.Sent {
		b.WriteString(": no answer after the request was sent")
	} else {
		b.WriteString(": request not sent")
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (%d attempts)", e.Attempts)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.Sent {
		b.WriteString(" [outcome unknown: it may have run]")
	} else {
		b.WriteString(" [not delivered]")
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *TransportError) Unwrap() error { return e.Err }

// Is matches ErrOutcomeUnknown when the request was sent and ErrNotDelivered
// when it was not.
func (e *TransportError) Is(target error) bool {
	switch target {
	case ErrOutcomeUnknown:
		return e.Sent
	case ErrNotDelivered:
		return !e.Sent
	}
	return false
}

// ArgumentError reports an argument the SDK rejected before sending
// anything. It matches ErrInvalidArgument and ErrNotDelivered.
type ArgumentError struct {
	// Operation names the SDK operation.
	Operation string
	// Field names the argument or field, such as "deviceID" or
	// "MethodParams.TimeoutInSeconds".
	Field string
	// Rule says what the value must be.
	Rule string
	// Err is an underlying cause, such as a JSON marshalling error, or nil.
	Err error
}

// Error names the operation, the field and the rule.
func (e *ArgumentError) Error() string {
	s := "iothub: " + e.Operation + ": invalid " + e.Field + ": " + e.Rule
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying cause, if any.
func (e *ArgumentError) Unwrap() error { return e.Err }

// Is matches ErrInvalidArgument and ErrNotDelivered.
func (e *ArgumentError) Is(target error) bool {
	return target == ErrInvalidArgument || target == ErrNotDelivered
}

// BodyError reports an answer from the hub that arrived but could not be
// read: a body that is not the documented JSON, or one over the size limit.
// The request reached the hub, so it matches ErrOutcomeUnknown. An error
// answer the hub sent (what azcore.ResponseError means in the Azure SDK) is
// an *Error, not a BodyError.
type BodyError struct {
	// Operation names the SDK operation.
	Operation string
	// DeviceID and ModuleID name the target, where the operation has one.
	DeviceID, ModuleID string
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Err is the cause.
	Err error
}

// Error names the operation, the status and the cause.
func (e *BodyError) Error() string {
	var b strings.Builder
	b.WriteString("iothub: ")
	writeOp(&b, e.Operation, e.DeviceID, e.ModuleID)
	fmt.Fprintf(&b, ": unreadable %d response", e.StatusCode)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	b.WriteString(" [outcome unknown: it may have run]")
	return b.String()
}

// Unwrap returns the cause.
func (e *BodyError) Unwrap() error { return e.Err }

// Is matches ErrOutcomeUnknown.
func (e *BodyError) Is(target error) bool { return target == ErrOutcomeUnknown }

func writeOp(b *strings.Builder, op, deviceID, moduleID string) {
	b.WriteString(op)
	if deviceID != "" {
		b.WriteString(" device ")
		b.WriteString(strconv.Quote(deviceID))
	}
	if moduleID != "" {
		b.WriteString(" module ")
		b.WriteString(strconv.Quote(moduleID))
	}
}
