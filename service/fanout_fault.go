package service

import (
	"errors"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/flow"
)

// ErrFleetFault is matched (errors.Is) by a *FleetFaultError, and so by
// FanOut.Err and the Err of every target a fleet-wide fault kept the
// fan-out from invoking.
var ErrFleetFault = errors.New("service: fleet-wide fault")

// Fault names a fleet-wide fault: one after which no further target of a
// fan-out can succeed now.
type Fault string

// The fleet-wide faults that stop a fan-out.
const (
	// FaultUnreachable: no connection to the hub could be made, on three
	// calls in a row (refused, the host name does not resolve, the
	// network is unreachable, the TLS certificate is not trusted).
	FaultUnreachable Fault = "hub unreachable"
	// FaultUnauthorized: the hub refused the credential (401xxx): a
	// rotated key, a deleted policy, a token for another hub.
	FaultUnauthorized Fault = "unauthorized"
	// FaultHubNotFound: the hub answered 401001 IotHubNotFound.
	FaultHubNotFound Fault = "hub not found"
	// FaultQuotaExceeded: the daily message quota is used up (403002); it
	// resets at midnight UTC.
	FaultQuotaExceeded Fault = "daily quota exceeded"
	// FaultSuspended: the hub is suspended (403001).
	FaultSuspended Fault = "hub suspended"
	// FaultNotAvailableInTier: the hub's tier has no direct methods
	// (403010).
	FaultNotAvailableInTier Fault = "not available in the hub's tier"
	// FaultThrottled: the hub throttled every call for
	// FanOutOptions.ThrottleGiveUp without accepting one, and the run gave
	// up.
	FaultThrottled Fault = "throttled"
)

// FleetFaultError is why a fleet-wide fault stopped a fan-out: the kind of
// fault and the error of the call that showed it. It matches ErrFleetFault,
// and through Unwrap the call error's own sentinels (iothub.ErrUnauthorized,
// iothub.ErrForbidden, iothub.ErrThrottled, …).
type FleetFaultError struct {
	// Fault is the kind of fault.
	Fault Fault
	// Err is the error of the call that showed it.
	Err error
}

// Error names the fault and the call error that showed it.
func (e *FleetFaultError) Error() string {
	return "fleet-wide fault, the fan-out stopped: " + string(e.Fault) + ": " + e.Err.Error()
}

// Unwrap returns the call error that showed the fault.
func (e *FleetFaultError) Unwrap() error { return e.Err }

// Is matches ErrFleetFault.
func (e *FleetFaultError) Is(target error) bool { return target == ErrFleetFault }

// fleetFault converts the breaker's cause.
func fleetFault(cause error) *FleetFaultError {
	ff, ok := errors.AsType[*flow.FleetFault](cause)
	if !ok {
		return &FleetFaultError{Fault: FaultUnreachable, Err: cause}
	}
	kinds := map[flow.Fault]Fault{
		flow.FaultUnreachable:        FaultUnreachable,
		flow.FaultUnauthorized:       FaultUnauthorized,
		flow.FaultHubNotFound:        FaultHubNotFound,
		flow.FaultQuotaExceeded:      FaultQuotaExceeded,
		flow.FaultSuspended:          FaultSuspended,
		flow.FaultNotAvailableInTier: FaultNotAvailableInTier,
	}
	return &FleetFaultError{Fault: kinds[ff.Fault], Err: ff.Err}
}

// throttleFault is the fault of a run that gave up on throttling, with
// the last 429: as the cause of targets that were never invoked it must
// not say an earlier attempt of another target may have run.
func throttleFault(err error) *FleetFaultError {
	if he, ok := errors.AsType[*iothub.Error](err); ok && he.EarlierAttemptMayHaveRun {
		c := *he
		c.EarlierAttemptMayHaveRun = false
		err = &c
	}
	return &FleetFaultError{Fault: FaultThrottled, Err: err}
}

// notInvokedError is the Err of a target the fan-out stopped before
// invoking it, or before trying it again after it was throttled: it was
// not delivered, whatever the cause.
type notInvokedError struct {
	cause   error
	retried bool // the target was throttled before
}

func (e *notInvokedError) Error() string {
	if e.retried {
		return "fan-out stopped before this target could be tried again after throttling: " + e.cause.Error()
	}
	return "fan-out stopped before this target was invoked: " + e.cause.Error()
}

func (e *notInvokedError) Unwrap() error { return e.cause }

// Is matches iothub.ErrNotDelivered.
func (e *notInvokedError) Is(target error) bool { return target == iothub.ErrNotDelivered }

// ranEarlierError is the final error of a target an earlier call of which
// may have run, although its last call was not delivered: the target's
// outcome stays unknown. It unwraps to the earlier error only, so that it
// never matches iothub.ErrNotDelivered.
type ranEarlierError struct {
	last, earlier error
}

func (e *ranEarlierError) Error() string {
	return e.last.Error() + " (an earlier call may have run: " + e.earlier.Error() + ")"
}

func (e *ranEarlierError) Unwrap() error { return e.earlier }

// Is matches iothub.ErrOutcomeUnknown.
func (e *ranEarlierError) Is(target error) bool { return target == iothub.ErrOutcomeUnknown }

// ranEarlier returns err, the last error of a target, marked as one whose
// target may have run, when earlier (an earlier call's error) says it may
// have and err does not.
func ranEarlier(err, earlier error) error {
	if earlier == nil || err == nil || iothub.MayHaveRun(err) {
		return err
	}
	if he, ok := err.(*iothub.Error); ok {
		c := *he
		c.EarlierAttemptMayHaveRun = true
		return &c
	}
	return &ranEarlierError{last: err, earlier: earlier}
}
