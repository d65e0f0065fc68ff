package flow

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hubkit/iothub"
)

// Errors built as internal/pipeline builds them.

func hubErr(status int, code iothub.ErrorCode) error {
	return &iothub.Error{Operation: "InvokeDeviceMethod", DeviceID: "d1", StatusCode: status, Code: code, CodeName: code.Name(), Attempts: 1}
}

func transportErr(sent bool, cause error) error {
	return &iothub.TransportError{Operation: "InvokeDeviceMethod", DeviceID: "d1", Sent: sent, Attempts: 4, Err: cause}
}

func sysErr(op, syscallName string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Err: &os.SyscallError{Syscall: syscallName, Err: errno}}
}

var (
	errRefused = transportErr(false, sysErr("dial", "connect", syscall.ECONNREFUSED))
	errDNS     = transportErr(false, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{
		Err: "no such host", Name: "gone.azure-devices.net", IsNotFound: true}})
	errTLS            = transportErr(false, &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}})
	errTLSHost        = transportErr(false, x509.HostnameError{Certificate: &x509.Certificate{}, Host: "hub.azure-devices.net"})
	errUnreachable    = transportErr(false, sysErr("dial", "connect", syscall.EHOSTUNREACH))
	errReset          = transportErr(true, sysErr("read", "read", syscall.ECONNRESET))
	errResetUnsent    = transportErr(false, sysErr("write", "write", syscall.ECONNRESET))
	errEOF            = transportErr(true, io.ErrUnexpectedEOF)
	errAttemptTimeout = transportErr(false, fmt.Errorf("attempt 1 timed out after 30s: %w", context.DeadlineExceeded))
	errCanceled       = transportErr(false, context.Canceled)
	errDialTimeout    = transportErr(false, &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}})
	// errConnectTimeout is the pipeline's attempt deadline passing while
	// it connects: the deadline, with a dial error as its cause.
	errConnectTimeout = transportErr(false, fmt.Errorf("attempt 1 timed out after 30s connecting: %w (%w)", context.DeadlineExceeded, &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}))
	errDialCanceled   = transportErr(false, &net.OpError{Op: "dial", Net: "tcp", Err: context.Canceled})
)

type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o timeout" }
func (timeoutErr) Timeout() bool { return true }

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want Fault
	}{
		{"success", nil, FaultNone},
		{"401000 GenericUnauthorized", hubErr(401, iothub.ErrorCodeGenericUnauthorized), FaultUnauthorized},
		{"401002 IotHubUnauthorizedAccess", hubErr(401, iothub.ErrorCodeIotHubUnauthorizedAccess), FaultUnauthorized},
		{"401003 IotHubUnauthorized", hubErr(401, iothub.ErrorCodeIotHubUnauthorized), FaultUnauthorized},
		{"401 without a code", hubErr(401, 0), FaultUnauthorized},
		{"401001 IotHubNotFound", hubErr(401, iothub.ErrorCodeIotHubNotFound), FaultHubNotFound},
		{"403001 IotHubSuspended", hubErr(403, iothub.ErrorCodeIotHubSuspended), FaultSuspended},
		{"403002 IotHubQuotaExceeded", hubErr(403, iothub.ErrorCodeIotHubQuotaExceeded), FaultQuotaExceeded},
		{"403010 OperationNotAvailableInCurrentTier", hubErr(403, iothub.ErrorCodeOperationNotAvailableInCurrentTier), FaultNotAvailableInTier},
		{"wrapped 401", fmt.Errorf("fan-out: %w", hubErr(401, iothub.ErrorCodeIotHubUnauthorizedAccess)), FaultUnauthorized},
		{"refused", errRefused, FaultUnreachable},
		{"DNS", errDNS, FaultUnreachable},
		{"TLS unknown authority", errTLS, FaultUnreachable},
		{"TLS host name", errTLSHost, FaultUnreachable},
		{"host unreachable", errUnreachable, FaultUnreachable},

		// Not fleet-wide.
		{"404001 DeviceNotFound", hubErr(404, iothub.ErrorCodeDeviceNotFound), FaultNone},
		{"404010 ModuleNotFound", hubErr(404, iothub.ErrorCodeModuleNotFound), FaultNone},
		{"404103 DeviceNotOnline", hubErr(404, iothub.ErrorCodeDeviceNotOnline), FaultNone},
		{"404104 DeviceConnectionClosedRemotely", hubErr(404, iothub.ErrorCodeDeviceConnectionClosedRemotely), FaultNone},
		{"504101 GatewayTimeout", hubErr(504, iothub.ErrorCodeGatewayTimeout), FaultNone},
		{"429001 ThrottlingException", hubErr(429, iothub.ErrorCodeThrottlingException), FaultNone},
		{"503005 ServerBusy", hubErr(503, iothub.ErrorCodeServerBusy), FaultNone},
		{"500001 ServerError", hubErr(500, iothub.ErrorCodeServerError), FaultNone},
		{"400004 ArgumentInvalid", hubErr(400, iothub.ErrorCodeArgumentInvalid), FaultNone},
		{"403000 GenericForbidden", hubErr(403, iothub.ErrorCodeGenericForbidden), FaultNone},
		{"403003 JobQuotaExceeded", hubErr(403, iothub.ErrorCodeJobQuotaExceeded), FaultNone},
		{"403004 DeviceMaximumQueueDepthExceeded", hubErr(403, iothub.ErrorCodeDeviceMaximumQueueDepthExceeded), FaultNone},
		{"403800 DeviceMaximumInflightMethodExceeded", hubErr(403, iothub.ErrorCodeDeviceMaximumInflightMethodExceeded), FaultNone},
		{"403 without a code", hubErr(403, 0), FaultNone},
		{"reset after sending", errReset, FaultNone},
		{"reset before sending", errResetUnsent, FaultNone},
		{"unexpected EOF", errEOF, FaultNone},
		{"attempt timeout", errAttemptTimeout, FaultNone},
		{"dial timeout", errDialTimeout, FaultUnreachable},
		{"attempt timeout while connecting", errConnectTimeout, FaultUnreachable},
		{"cancelled dial", errDialCanceled, FaultNone},
		{"cancelled", errCanceled, FaultNone},
		{"refused but sent", transportErr(true, sysErr("dial", "connect", syscall.ECONNREFUSED)), FaultNone},
		{"unreadable answer", &iothub.BodyError{Operation: "InvokeDeviceMethod", StatusCode: 200, Err: io.ErrUnexpectedEOF}, FaultNone},
		{"argument", &iothub.ArgumentError{Operation: "FanOut", Field: "Target.DeviceID", Rule: "must not be empty"}, FaultNone},
		{"bare refused, not from the pipeline", sysErr("dial", "connect", syscall.ECONNREFUSED), FaultNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestBreaker(t *testing.T) {
	t.Parallel()
	ok := error(nil)
	deviceOffline := hubErr(404, iothub.ErrorCodeDeviceNotOnline)
	tests := []struct {
		name   string
		policy BreakerPolicy
		errs   []error
		// tripAt is the index of the call that trips the breaker, -1 for
		// none.
		tripAt    int
		wantFault Fault
		wantCalls int
	}{
		{"401 trips on the first", BreakerPolicy{}, []error{ok, hubErr(401, iothub.ErrorCodeIotHubUnauthorizedAccess), ok}, 1, FaultUnauthorized, 1},
		{"401001 hub not found", BreakerPolicy{}, []error{hubErr(401, iothub.ErrorCodeIotHubNotFound)}, 0, FaultHubNotFound, 1},
		{"403002 trips on the first", BreakerPolicy{}, []error{deviceOffline, hubErr(403, iothub.ErrorCodeIotHubQuotaExceeded)}, 1, FaultQuotaExceeded, 1},
		{"403001 trips on the first", BreakerPolicy{}, []error{hubErr(403, iothub.ErrorCodeIotHubSuspended)}, 0, FaultSuspended, 1},
		{"403010 trips on the first", BreakerPolicy{}, []error{hubErr(403, iothub.ErrorCodeOperationNotAvailableInCurrentTier)}, 0, FaultNotAvailableInTier, 1},
		{"three refused in a row", BreakerPolicy{}, []error{ok, errRefused, errRefused, errRefused, errRefused}, 3, FaultUnreachable, 3},
		{"DNS, TLS and refused mixed", BreakerPolicy{}, []error{errDNS, errTLS, errRefused}, 2, FaultUnreachable, 3},
		{"neutral errors do not break the run of failures", BreakerPolicy{}, []error{errRefused, errReset, errRefused, errCanceled, errRefused}, 4, FaultUnreachable, 3},
		{"five with UnreachableAfter 5", BreakerPolicy{UnreachableAfter: 5}, []error{errRefused, errRefused, errRefused, errRefused, errRefused}, 4, FaultUnreachable, 5},
		{"one with UnreachableAfter 1", BreakerPolicy{UnreachableAfter: 1}, []error{ok, errDNS}, 1, FaultUnreachable, 1},
		{"first cause wins", BreakerPolicy{}, []error{hubErr(403, iothub.ErrorCodeIotHubSuspended), hubErr(401, 0)}, 0, FaultSuspended, 1},

		{"a success resets the count", BreakerPolicy{}, []error{errRefused, errRefused, ok, errRefused, errRefused, ok}, -1, FaultNone, 0},
		{"a device answer resets the count", BreakerPolicy{}, []error{errRefused, errRefused, deviceOffline, errRefused, errRefused}, -1, FaultNone, 0},
		{"a 503 resets the count", BreakerPolicy{}, []error{errRefused, errRefused, hubErr(503, iothub.ErrorCodeServerBusy), errRefused, errRefused}, -1, FaultNone, 0},
		{"one blip", BreakerPolicy{}, []error{ok, errReset, ok, hubErr(503, iothub.ErrorCodeServerBusy), ok, errRefused, ok}, -1, FaultNone, 0},
		{"many resets", BreakerPolicy{}, []error{errReset, errReset, errReset, errReset, errEOF, errResetUnsent}, -1, FaultNone, 0},
		{"device-level errors only", BreakerPolicy{}, []error{
			hubErr(404, iothub.ErrorCodeDeviceNotFound), deviceOffline, hubErr(404, iothub.ErrorCodeModuleNotFound),
			hubErr(504, iothub.ErrorCodeGatewayTimeout), hubErr(429, iothub.ErrorCodeThrottlingException),
			hubErr(403, iothub.ErrorCodeDeviceMaximumInflightMethodExceeded), hubErr(400, iothub.ErrorCodeArgumentInvalid),
		}, -1, FaultNone, 0},
		{"timeouts once connected never", BreakerPolicy{}, []error{errAttemptTimeout, errAttemptTimeout, errAttemptTimeout, errAttemptTimeout}, -1, FaultNone, 0},
		{"connect timeouts count", BreakerPolicy{}, []error{errDialTimeout, errAttemptTimeout, errConnectTimeout, errDialTimeout}, 3, FaultUnreachable, 3},
	}
	now := time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := NewBreaker(tt.policy)
			tripAt := -1
			for i, err := range tt.errs {
				if b.Observe(now.Add(time.Duration(i)*time.Millisecond), err) && tripAt < 0 {
					tripAt = i
				}
			}
			if tripAt != tt.tripAt {
				t.Fatalf("tripped at call %d, want %d", tripAt, tt.tripAt)
			}
			if got := b.Tripped(); got != (tt.tripAt >= 0) {
				t.Errorf("Tripped() = %v", got)
			}
			cause := b.Cause()
			if tt.tripAt < 0 {
				if cause != nil {
					t.Errorf("Cause() = %v, want nil", cause)
				}
				return
			}
			if !errors.Is(cause, ErrFleetFault) {
				t.Errorf("Cause() %v does not match ErrFleetFault", cause)
			}
			ff, ok := errors.AsType[*FleetFault](cause)
			if !ok {
				t.Fatalf("Cause() is %T, want *FleetFault", cause)
			}
			type got struct {
				Fault Fault
				Calls int
			}
			if diff := cmp.Diff(got{tt.wantFault, tt.wantCalls}, got{ff.Fault, ff.Calls}); diff != "" {
				t.Errorf("cause (-want +got):\n%s", diff)
			}
			if ff.Err != tt.errs[tt.tripAt] {
				t.Errorf("cause wraps %v, want the triggering error %v", ff.Err, tt.errs[tt.tripAt])
			}
		})
	}
}

// TestFleetFaultWraps checks that the cause keeps the triggering error's
// sentinels and says what happened without the error's secrets.
func TestFleetFaultWraps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		errs     []error
		sentinel error
		text     string
	}{
		{"unauthorized", []error{hubErr(401, iothub.ErrorCodeIotHubUnauthorizedAccess)}, iothub.ErrUnauthorized,
			`fleet-wide fault: unauthorized: iothub: InvokeDeviceMethod device "d1": 401 401002 IotHubUnauthorizedAccess [not delivered]`},
		{"quota", []error{hubErr(403, iothub.ErrorCodeIotHubQuotaExceeded)}, iothub.ErrForbidden,
			`fleet-wide fault: daily message quota exceeded: iothub: InvokeDeviceMethod device "d1": 403 403002 IotHubQuotaExceeded [not delivered]`},
		{"unreachable", []error{errRefused, errRefused, errRefused}, iothub.ErrNotDelivered,
			`fleet-wide fault: hub unreachable (3 calls in a row): iothub: InvokeDeviceMethod device "d1": request not sent (4 attempts): dial tcp: connect: connection refused [not delivered]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := NewBreaker(BreakerPolicy{})
			for _, err := range tt.errs {
				b.Observe(time.Time{}, err)
			}
			cause := b.Cause()
			if !errors.Is(cause, tt.sentinel) {
				t.Errorf("%v does not match %v", cause, tt.sentinel)
			}
			if iothub.MayHaveRun(cause) {
				t.Errorf("MayHaveRun(%v) = true", cause)
			}
			if diff := cmp.Diff(tt.text, cause.Error()); diff != "" {
				t.Errorf("Error() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFaultString(t *testing.T) {
	t.Parallel()
	for f := FaultNone; f <= FaultNotAvailableInTier; f++ {
		if s := f.String(); s == "" || s[0] == 'F' {
			t.Errorf("Fault(%d).String() = %q", int(f), s)
		}
	}
	if got, want := Fault(99).String(), "Fault(99)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
