package iothub_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub"
)

func TestErrorIs(t *testing.T) {
	t.Parallel()
	sentinels := []error{
		iothub.ErrDeviceNotFound, iothub.ErrModuleNotFound, iothub.ErrDeviceNotOnline,
		iothub.ErrGatewayTimeout, iothub.ErrThrottled, iothub.ErrUnauthorized, iothub.ErrForbidden,
		iothub.ErrPreconditionFailed, iothub.ErrConflict, iothub.ErrServerBusy, iothub.ErrBadRequest,
		iothub.ErrNotDelivered, iothub.ErrOutcomeUnknown, iothub.ErrInvalidArgument,
	}
	tests := []struct {
		name string
		err  *iothub.Error
		want []error
	}{
		{"device not found", &iothub.Error{StatusCode: 404, Code: iothub.ErrorCodeDeviceNotFound}, []error{iothub.ErrDeviceNotFound, iothub.ErrNotDelivered}},
		{"module not found", &iothub.Error{StatusCode: 404, Code: iothub.ErrorCodeModuleNotFound}, []error{iothub.ErrModuleNotFound, iothub.ErrNotDelivered}},
		{"not online", &iothub.Error{StatusCode: 404, Code: iothub.ErrorCodeDeviceNotOnline}, []error{iothub.ErrDeviceNotOnline, iothub.ErrNotDelivered}},
		{"gateway timeout", &iothub.Error{StatusCode: 504, Code: iothub.ErrorCodeGatewayTimeout}, []error{iothub.ErrGatewayTimeout, iothub.ErrOutcomeUnknown}},
		{"throttled", &iothub.Error{StatusCode: 429, Code: iothub.ErrorCodeThrottlingException}, []error{iothub.ErrThrottled, iothub.ErrNotDelivered}},
		{"throttled without code", &iothub.Error{StatusCode: 429}, []error{iothub.ErrThrottled, iothub.ErrNotDelivered}},
		{"unauthorized", &iothub.Error{StatusCode: 401, Code: iothub.ErrorCodeIotHubUnauthorizedAccess}, []error{iothub.ErrUnauthorized, iothub.ErrNotDelivered}},
		{"forbidden", &iothub.Error{StatusCode: 403, Code: iothub.ErrorCodeIotHubQuotaExceeded}, []error{iothub.ErrForbidden, iothub.ErrNotDelivered}},
		{"precondition", &iothub.Error{StatusCode: 412, Code: iothub.ErrorCodePreconditionFailed}, []error{iothub.ErrPreconditionFailed, iothub.ErrNotDelivered}},
		{"conflict", &iothub.Error{StatusCode: 409, Code: iothub.ErrorCodeDeviceAlreadyExists}, []error{iothub.ErrConflict, iothub.ErrNotDelivered}},
		{"server busy", &iothub.Error{StatusCode: 503, Code: iothub.ErrorCodeServerBusy}, []error{iothub.ErrServerBusy, iothub.ErrNotDelivered}},
		{"bad request", &iothub.Error{StatusCode: 400, Code: iothub.ErrorCodeArgumentInvalid}, []error{iothub.ErrBadRequest, iothub.ErrNotDelivered}},
		{"server error", &iothub.Error{StatusCode: 500, Code: iothub.ErrorCodeServerError}, []error{iothub.ErrOutcomeUnknown}},
		{"bad gateway no code", &iothub.Error{StatusCode: 502}, []error{iothub.ErrOutcomeUnknown}},
		{"connection closed mid-call", &iothub.Error{StatusCode: 404, Code: iothub.ErrorCodeDeviceConnectionClosedRemotely}, []error{iothub.ErrOutcomeUnknown}},
		{"retry after an unknown outcome", &iothub.Error{StatusCode: 429, Code: iothub.ErrorCodeThrottlingException, EarlierAttemptMayHaveRun: true}, []error{iothub.ErrThrottled, iothub.ErrOutcomeUnknown}},
		{"code family wins over status", &iothub.Error{StatusCode: 400, Code: iothub.ErrorCodeThrottlingException}, []error{iothub.ErrThrottled, iothub.ErrNotDelivered}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []error
			for _, s := range sentinels {
				if errors.Is(fmt.Errorf("wrapped: %w", tt.err), s) {
					got = append(got, s)
				}
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
				t.Errorf("matching sentinels (-want +got):\n%s", diff)
			}
			if want := errors.Is(tt.err, iothub.ErrOutcomeUnknown); iothub.MayHaveRun(tt.err) != want {
				t.Errorf("MayHaveRun = %v, want %v", !want, want)
			}
		})
	}
}

func TestMayHaveRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil: it ran", nil, true},
		{"foreign error is conservative", errors.New("boom"), true},
		{"argument", &iothub.ArgumentError{Field: "deviceID", Rule: "must not be empty"}, false},
		{"transport before write", &iothub.TransportError{Sent: false, Err: errors.New("refused")}, false},
		{"transport after write", &iothub.TransportError{Sent: true, Err: context.DeadlineExceeded}, true},
		{"unreadable answer", &iothub.BodyError{StatusCode: 200, Err: errors.New("bad json")}, true},
	}
	for _, tt := range tests {
		if got := iothub.MayHaveRun(tt.err); got != tt.want {
			t.Errorf("%s: MayHaveRun = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestErrorMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string
	}{
		{
			&iothub.Error{Operation: "InvokeDeviceMethod", DeviceID: "d1", StatusCode: 404, Code: iothub.ErrorCodeDeviceNotOnline, Message: "Timed out waiting for device to connect.", TrackingID: "abc"},
			`iothub: InvokeDeviceMethod device "d1": 404 404103 DeviceNotOnline: Timed out waiting for device to connect. (tracking ID abc) [not delivered]`,
		},
		{
			&iothub.Error{Operation: "InvokeModuleMethod", DeviceID: "d1", ModuleID: "$edgeAgent", StatusCode: 504, Code: iothub.ErrorCodeGatewayTimeout, Attempts: 1},
			`iothub: InvokeModuleMethod device "d1" module "$edgeAgent": 504 504101 GatewayTimeout [outcome unknown: it may have run]`,
		},
		{
			&iothub.Error{Operation: "InvokeDeviceMethod", DeviceID: "d1", StatusCode: 429, Code: iothub.ErrorCodeThrottlingException, Attempts: 4},
			`iothub: InvokeDeviceMethod device "d1": 429 429001 ThrottlingException after 4 attempts [not delivered]`,
		},
		{
			&iothub.TransportError{Operation: "InvokeDeviceMethod", DeviceID: "d1", Sent: true, Attempts: 1, Err: context.DeadlineExceeded},
			`iothub: InvokeDeviceMethod device "d1": no answer after the request was sent: context deadline exceeded [outcome unknown: it may have run]`,
		},
		{
			&iothub.TransportError{Operation: "InvokeDeviceMethod", DeviceID: "d1", Attempts: 3, Err: errors.New("connection refused")},
			`iothub: InvokeDeviceMethod device "d1": request not sent (3 attempts): connection refused [not delivered]`,
		},
		{
			&iothub.ArgumentError{Operation: "InvokeDeviceMethod", Field: "MethodParams.TimeoutInSeconds", Rule: "must be within [5, 300]"},
			`iothub: InvokeDeviceMethod: invalid MethodParams.TimeoutInSeconds: must be within [5, 300]`,
		},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() =\n%s\nwant\n%s", got, tt.want)
		}
	}
}

func TestErrorCodes(t *testing.T) {
	t.Parallel()
	if got, want := iothub.ErrorCodeDeviceNotOnline.String(), "404103 DeviceNotOnline"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := iothub.ErrorCode(499999).String(); got != "499999" {
		t.Errorf("unknown code String() = %q", got)
	}
	for _, in := range []string{"404103", "DeviceNotOnline"} {
		if c, ok := iothub.ParseErrorCode(in); !ok || c != iothub.ErrorCodeDeviceNotOnline {
			t.Errorf("ParseErrorCode(%q) = %v, %v", in, c, ok)
		}
	}
	for _, in := range []string{"", "42", "deviceNotOnline", "700000"} {
		if c, ok := iothub.ParseErrorCode(in); ok {
			t.Errorf("ParseErrorCode(%q) = %v, want not ok", in, c)
		}
	}
	if !strings.HasPrefix(iothub.ErrorCodeGatewayTimeout.Name(), "Gateway") || iothub.ErrorCodeGatewayTimeout.HTTPStatus() != 504 {
		t.Errorf("ErrorCodeGatewayTimeout: name %q status %d", iothub.ErrorCodeGatewayTimeout.Name(), iothub.ErrorCodeGatewayTimeout.HTTPStatus())
	}
}

func TestRetryOptionsWithDefaults(t *testing.T) {
	t.Parallel()
	if diff := cmp.Diff(iothub.DefaultRetryOptions(), iothub.RetryOptions{}.WithDefaults()); diff != "" {
		t.Errorf("zero value (-want +got):\n%s", diff)
	}
	got := iothub.RetryOptions{MaxAttempts: 1, MinDelay: 2e9, MaxDelay: 1e9}.WithDefaults()
	if got.MaxAttempts != 1 || got.MaxDelay != got.MinDelay {
		t.Errorf("WithDefaults kept %+v", got)
	}
}
