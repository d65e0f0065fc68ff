package service_test

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/service"
)

// TestEarlierAttemptMayHaveRun checks that iothub.Error.EarlierAttemptMayHaveRun
// says what its doc says, whatever the last answer: true exactly when an
// attempt before the answered one may have been carried out. The message
// and the sentinels must say the same.
func TestEarlierAttemptMayHaveRun(t *testing.T) {
	t.Parallel()
	idempotent := &service.InvokeOptions{Idempotent: true}
	tests := []struct {
		name   string
		faults []httpmock.Fault
		opts   *service.InvokeOptions
		want   errorFacts
		suffix string // the end of the message, from " after" or " ["
	}{{
		// A hub that loses every answer: each of the 4 attempts is
		// delivered, and each answer is 504101.
		name:   "idempotent, every answer lost",
		faults: []httpmock.Fault{{AfterDelivery: true, Times: -1}},
		opts:   idempotent,
		want:   errorFacts{Code: iothub.ErrorCodeGatewayTimeout, Attempts: 4, Earlier: true, Unknown: true, Deliveries: 4},
		suffix: " after 4 attempts [outcome unknown: it may have run, perhaps more than once]",
	}, {
		name:   "not idempotent, answer lost",
		faults: []httpmock.Fault{{AfterDelivery: true, Times: -1}},
		want:   errorFacts{Code: iothub.ErrorCodeGatewayTimeout, Attempts: 1, Unknown: true, Deliveries: 1},
		suffix: " [outcome unknown: it may have run]",
	}, {
		// The first attempt was refused before delivery: only the last
		// one may have run.
		name:   "server busy then answer lost",
		faults: []httpmock.Fault{{Code: 503005}, {AfterDelivery: true}},
		want:   errorFacts{Code: iothub.ErrorCodeGatewayTimeout, Attempts: 2, Unknown: true, Deliveries: 1},
		suffix: " after 2 attempts [outcome unknown: it may have run]",
	}, {
		// The last answer is a refusal, but the first attempt was
		// delivered.
		name:   "idempotent, answer lost then refused",
		faults: []httpmock.Fault{{AfterDelivery: true}, {Code: 403002}},
		opts:   idempotent,
		want:   errorFacts{Code: iothub.ErrorCodeIotHubQuotaExceeded, Attempts: 2, Earlier: true, Unknown: true, Deliveries: 1},
		suffix: " after 2 attempts [outcome unknown: an earlier attempt may have run]",
	}, {
		name:   "throttled on every attempt",
		faults: []httpmock.Fault{{Code: 429001, Times: -1}},
		want:   errorFacts{Code: iothub.ErrorCodeThrottlingException, Attempts: 4, Deliveries: 0},
		suffix: " after 4 attempts [not delivered]",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub, client := setup(t, nil)
				hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
				for _, f := range tt.faults {
					f.Operation = httpmock.OperationMethod
					f.DeviceID = "d1"
					hub.AddFault(f)
				}
				_, err := client.InvokeDeviceMethod(t.Context(), "d1", service.MethodParams[any]{Name: "reboot"}, tt.opts)
				he, ok := errors.AsType[*iothub.Error](err)
				if !ok {
					t.Fatalf("err = %v, want an *iothub.Error", err)
				}
				got := errorFacts{
					Code:       he.Code,
					Attempts:   he.Attempts,
					Earlier:    he.EarlierAttemptMayHaveRun,
					Unknown:    errors.Is(err, iothub.ErrOutcomeUnknown),
					Deliveries: hub.Deliveries("d1", ""),
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("error facts (-want +got):\n%s\nerr: %v", diff, err)
				}
				if errors.Is(err, iothub.ErrNotDelivered) == got.Unknown || iothub.MayHaveRun(err) != got.Unknown {
					t.Errorf("ErrNotDelivered = %v and MayHaveRun = %v disagree with ErrOutcomeUnknown = %v",
						errors.Is(err, iothub.ErrNotDelivered), iothub.MayHaveRun(err), got.Unknown)
				}
				if msg := err.Error(); !strings.HasSuffix(msg, tt.suffix) {
					t.Errorf("message %q\nwant it to end with %q", msg, tt.suffix)
				}
			})
		})
	}
}

// errorFacts are what TestEarlierAttemptMayHaveRun checks of an error.
type errorFacts struct {
	Code       iothub.ErrorCode
	Attempts   int
	Earlier    bool // EarlierAttemptMayHaveRun
	Unknown    bool // errors.Is(err, iothub.ErrOutcomeUnknown)
	Deliveries int  // calls the fake hub delivered to the device
}

// TestErrorSuffixes pins the end of iothub.Error's message for each
// combination of the answer's own outcome and EarlierAttemptMayHaveRun, as
// docs/errors-and-retries.md lists them.
func TestErrorSuffixes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  *iothub.Error
		want string
	}{
		{&iothub.Error{StatusCode: 404, Code: iothub.ErrorCodeDeviceNotFound}, " [not delivered]"},
		{&iothub.Error{StatusCode: 504, Code: iothub.ErrorCodeGatewayTimeout}, " [outcome unknown: it may have run]"},
		{&iothub.Error{StatusCode: 404, Code: iothub.ErrorCodeDeviceNotFound, EarlierAttemptMayHaveRun: true}, " [outcome unknown: an earlier attempt may have run]"},
		{&iothub.Error{StatusCode: 504, Code: iothub.ErrorCodeGatewayTimeout, EarlierAttemptMayHaveRun: true}, " [outcome unknown: it may have run, perhaps more than once]"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); !strings.HasSuffix(got, tt.want) {
			t.Errorf("%+v: message %q, want it to end with %q", *tt.err, got, tt.want)
		}
	}
}
