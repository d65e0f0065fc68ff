package flow

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hubkit/iothub"
)

// ErrFleetFault is matched (errors.Is) by every *FleetFault: a failure that
// means no further target of a fan-out can succeed now.
var ErrFleetFault = errors.New("flow: fleet-wide fault")

// Fault names a fleet-wide fault: one that makes every call to the hub
// fail, whatever its target.
type Fault int

// The fleet-wide faults a Breaker recognises.
const (
	// FaultNone: no fleet-wide fault.
	FaultNone Fault = iota
	// FaultUnreachable: no connection to the hub can be made: connection
	// refused, the host name does not resolve, the network or host is
	// unreachable, or the hub's TLS certificate is not trusted.
	FaultUnreachable
	// FaultUnauthorized: the hub refused the credential (any 401xxx code
	// but 401001): the key was rotated, the policy deleted, the token is
	// for another hub, or the identity lacks the permission.
	FaultUnauthorized
	// FaultHubNotFound: the hub answered 401001 IotHubNotFound.
	FaultHubNotFound
	// FaultQuotaExceeded: the hub's daily message quota is used up
	// (403002 IotHubQuotaExceeded); it resets at midnight UTC.
	FaultQuotaExceeded
	// FaultSuspended: the hub is suspended (403001 IotHubSuspended).
	FaultSuspended
	// FaultNotAvailableInTier: the hub's tier has no such operation
	// (403010 OperationNotAvailableInCurrentTier), as with direct methods
	// on a Basic-tier hub.
	FaultNotAvailableInTier
)

// String returns a short description of the fault, such as "hub
// unreachable".
func (f Fault) String() string {
	switch f {
	case FaultNone:
		return "none"
	case FaultUnreachable:
		return "hub unreachable"
	case FaultUnauthorized:
		return "unauthorized"
	case FaultHubNotFound:
		return "hub not found"
	case FaultQuotaExceeded:
		return "daily message quota exceeded"
	case FaultSuspended:
		return "hub suspended"
	case FaultNotAvailableInTier:
		return "operation not available in the hub's tier"
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// FleetFault is the cause a Breaker gives once it has tripped: which
// fleet-wide fault it found, and the call error that showed it. It
// matches ErrFleetFault, and through Unwrap the triggering error's own
// sentinels (iothub.ErrUnauthorized, iothub.ErrForbidden, …).
type FleetFault struct {
	// Fault is the kind of fault.
	Fault Fault
	// Calls is how many calls in a row showed it: 1 for a refusal by the
	// hub, the Breaker's UnreachableAfter for connectivity.
	Calls int
	// Err is the error of the call that tripped the breaker.
	Err error
}

// Error names the fault and the triggering error.
func (e *FleetFault) Error() string {
	s := "fleet-wide fault: " + e.Fault.String()
	if e.Calls > 1 {
		s += fmt.Sprintf(" (%d calls in a row)", e.Calls)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the triggering error.
func (e *FleetFault) Unwrap() error { return e.Err }

// Is matches ErrFleetFault.
func (e *FleetFault) Is(target error) bool { return target == ErrFleetFault }

// DefaultUnreachableAfter is BreakerPolicy.UnreachableAfter's default.
const DefaultUnreachableAfter = 3

// BreakerPolicy configures a Breaker. The zero value gives the defaults.
type BreakerPolicy struct {
	// UnreachableAfter is how many calls in a row must fail to connect,
	// with no answer from the hub in between, before the hub counts as
	// unreachable; 0 means DefaultUnreachableAfter. Each of those calls has
	// already been retried by the pipeline, so a short outage that the
	// retries ride out never counts.
	UnreachableAfter int
}

// Breaker decides when a call's failure means that no further target can
// succeed now. It is safe for concurrent use; it has no goroutines and
// reads no clock.
//
// It trips:
//   - on the first call answered with any 401xxx code (FaultUnauthorized,
//     or FaultHubNotFound for 401001), 403001 (FaultSuspended), 403002
//     (FaultQuotaExceeded) or 403010 (FaultNotAvailableInTier): the hub
//     refuses the whole hub, not one device;
//   - on the UnreachableAfter-th call in a row that could not connect
//     (Sent false, and the cause a refused connection, a DNS failure, any
//     other failed dial, a connect that timed out, or an untrusted TLS
//     certificate), with no answer from the hub in between
//     (FaultUnreachable). A blackholed hub shows as connects that time
//     out: the pipeline's attempt deadline keeps that cause.
//
// It never trips on device-level answers (404001 DeviceNotFound, 404010,
// 404103 DeviceNotOnline, 404104, 504101, a device's own status), on
// throttling (429), on 503 or other 5xx, on a connection that broke after
// the request was sent, or on a cancelled call or one that timed out
// once connected (waiting to send or for the answer). Any answer
// from the hub resets the count of connection failures; errors that are
// neither an answer nor a connection failure leave it as it is.
//
// Once tripped it stays tripped, with the first cause.
type Breaker struct {
	after int

	mu     sync.Mutex
	failed int // connection failures in a row
	cause  *FleetFault

	// clean is failed == 0 && cause == nil, for Observe to take an answer
	// without the lock when it changes nothing.
	clean atomic.Bool
}

// NewBreaker returns a Breaker with policy p.
func NewBreaker(p BreakerPolicy) *Breaker {
	if p.UnreachableAfter <= 0 {
		p.UnreachableAfter = DefaultUnreachableAfter
	}
	b := &Breaker{after: p.UnreachableAfter}
	b.clean.Store(true)
	return b
}

// Observe records the outcome of one call, err being the error the call
// returned (nil for an answer the caller treats as success, such as a
// device's reply). It reports whether the breaker is tripped, by this
// call or an earlier one. now is when the call ended; the current rules
// count calls, not time, so that a slow run confirms a fault as surely as
// a fast one.
func (b *Breaker) Observe(now time.Time, err error) (tripped bool) {
	kind, answered := classify(err)
	if kind == FaultNone && answered && b.clean.Load() {
		return false // an answer, and nothing to reset
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	defer func() { b.clean.Store(b.failed == 0 && b.cause == nil) }()
	if b.cause != nil {
		return true
	}
	switch {
	case kind == FaultUnreachable:
		b.failed++
		if b.failed >= b.after {
			b.cause = &FleetFault{Fault: FaultUnreachable, Calls: b.failed, Err: err}
		}
	case kind != FaultNone:
		b.cause = &FleetFault{Fault: kind, Calls: 1, Err: err}
	case answered:
		b.failed = 0
	}
	return b.cause != nil
}

// Tripped reports whether the breaker has tripped.
func (b *Breaker) Tripped() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cause != nil
}

// Cause returns the *FleetFault that tripped the breaker, or nil.
func (b *Breaker) Cause() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cause == nil {
		return nil
	}
	return b.cause
}

// Classify returns the fleet-wide fault err shows on its own: FaultNone
// for errors that are not one, FaultUnreachable for a failure to connect
// (which a Breaker counts towards its confirmation), or the hub's refusal.
func Classify(err error) Fault {
	f, _ := classify(err)
	return f
}

// classify returns the fault err shows, and whether err is (or stands
// for) an answer from the hub.
func classify(err error) (Fault, bool) {
	if err == nil {
		return FaultNone, true
	}
	if he, ok := errors.AsType[*iothub.Error](err); ok {
		return hubFault(he), true
	}
	if _, ok := errors.AsType[*iothub.BodyError](err); ok {
		return FaultNone, true // the hub answered, unreadably
	}
	if te, ok := errors.AsType[*iothub.TransportError](err); ok && !te.Sent && connectFailure(te.Err) {
		return FaultUnreachable, false
	}
	return FaultNone, false
}

// hubFault returns the fleet-wide fault of a hub's answer.
func hubFault(he *iothub.Error) Fault {
	switch he.Code {
	case iothub.ErrorCodeIotHubNotFound:
		return FaultHubNotFound
	case iothub.ErrorCodeIotHubSuspended:
		return FaultSuspended
	case iothub.ErrorCodeIotHubQuotaExceeded:
		return FaultQuotaExceeded
	case iothub.ErrorCodeOperationNotAvailableInCurrentTier:
		return FaultNotAvailableInTier
	}
	if errors.Is(he, iothub.ErrUnauthorized) {
		return FaultUnauthorized
	}
	return FaultNone
}

// connectFailure reports a cause that shows no connection to the hub
// could be made: a refused connection, a failed name lookup, any other
// failed dial (one that timed out too), or a TLS certificate the client
// does not trust. Resets, broken pipes, EOFs, timeouts once connected and
// cancelled dials are not: they happen to single connections, or are the
// caller's own doing.
func connectFailure(err error) bool {
	if err == nil {
		return false
	}
	if _, ok := errors.AsType[*net.DNSError](err); ok {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "dial" && !errors.Is(err, context.Canceled) {
		return true
	}
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid)
}
