package service

import (
	"testing"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/pipeline"
)

func TestCallPolicy(t *testing.T) {
	t.Parallel()
	throttled := &iothub.Error{StatusCode: 429, Code: 429001}
	busy := &iothub.Error{StatusCode: 503, Code: 503005}
	notOnline := &iothub.Error{StatusCode: 404, Code: iothub.ErrorCodeDeviceNotOnline}
	notFound := &iothub.Error{StatusCode: 404, Code: iothub.ErrorCodeDeviceNotFound}
	timeout := &iothub.Error{StatusCode: 504, Code: 504101}
	tests := []struct {
		name    string
		options *InvokeOptions
		extra   callPolicy // added as the fan-out adds leaveThrottled
		he      *iothub.Error
		want    pipeline.Decision
	}{
		{"default 429", nil, 0, throttled, pipeline.Retry},
		{"default 503", nil, 0, busy, pipeline.Retry},
		{"default 404103", nil, 0, notOnline, pipeline.Fail},
		{"default 504101", nil, 0, timeout, pipeline.Fail},
		{"idempotent 504101", &InvokeOptions{Idempotent: true}, 0, timeout, pipeline.Retry},
		{"opted in 404103", &InvokeOptions{RetryDeviceNotOnline: true}, 0, notOnline, pipeline.Retry},
		{"opted in 404001", &InvokeOptions{RetryDeviceNotOnline: true}, 0, notFound, pipeline.Fail},
		{"fan-out 429", nil, leaveThrottled, throttled, pipeline.Fail},
		{"fan-out 503", nil, leaveThrottled, busy, pipeline.Retry},
		{"fan-out opted in 404103", &InvokeOptions{RetryDeviceNotOnline: true}, leaveThrottled, notOnline, pipeline.Retry},
	}
	for _, tt := range tests {
		class, policy := tt.options.policy()
		if got := (policy | tt.extra).Decide(tt.he, class); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestCallPolicyCostsNoAllocation checks that storing a callPolicy in a
// pipeline.Request allocates nothing: every invocation does it.
func TestCallPolicyCostsNoAllocation(t *testing.T) {
	var req pipeline.Request
	p := retryNotOnline | leaveThrottled
	if n := testing.AllocsPerRun(100, func() { req.Policy = p; p ^= retryNotOnline }); n != 0 {
		t.Errorf("%v allocations, want 0", n)
	}
}
