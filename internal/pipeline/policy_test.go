package pipeline

import (
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hubkit/iothub"
)

func TestDefaultPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		code   iothub.ErrorCode
		class  RetryClass
		want   Decision
	}{
		{429, 429001, RetryNotDelivered, Retry},
		{503, 503005, RetryNotDelivered, Retry},
		{504, 504101, RetryNotDelivered, Fail},
		{504, 504101, RetryIdempotent, Retry},
		{500, 500001, RetryNotDelivered, Fail},
		{500, 500001, RetryIdempotent, Retry},
		{404, 404103, RetryIdempotent, Fail},
		{404, 404001, RetryIdempotent, Fail},
		{400, 400013, RetryIdempotent, Fail},
	}
	for _, tt := range tests {
		he := &iothub.Error{StatusCode: tt.status, Code: tt.code}
		if got := Default(he, tt.class); got != tt.want {
			t.Errorf("Default(%d %d, class %d) = %d, want %d", tt.status, tt.code, tt.class, got, tt.want)
		}
		if got := (DefaultPolicy{}).Decide(he, tt.class); got != tt.want {
			t.Errorf("DefaultPolicy.Decide(%d %d, class %d) = %d, want %d", tt.status, tt.code, tt.class, got, tt.want)
		}
	}
}

// failPolicy leaves every error answer to the caller, as a fan-out does
// with 429.
type failPolicy struct{}

func (failPolicy) Decide(*iothub.Error, RetryClass) Decision { return Fail }

// TestPolicyLimits checks what the pipeline does with a policy's decision:
// a Retry stays within the retry budget and MaxRetryAfter, an Accept
// returns the answer whatever its Retry-After, a Fail is not retried.
func TestPolicyLimits(t *testing.T) {
	t.Parallel()
	throttled := hubErr(429, 429001, "ThrottlingException")
	longWait := hubErr(429, 429001, "ThrottlingException")
	longWait.header = longWait.header.Clone()
	longWait.header.Set("Retry-After", "3600")
	ok := step{status: 200, body: `{}`}
	tests := []struct {
		name         string
		policy       Policy
		steps        []step
		wantAttempts int
		wantErr      error
	}{
		{"retry within the budget", nil, []step{throttled}, 3, iothub.ErrThrottled},
		{"retry then ok", nil, []step{throttled, ok}, 2, nil},
		{"retry-after beyond MaxRetryAfter", nil, []step{longWait, ok}, 1, iothub.ErrThrottled},
		{"fail", failPolicy{}, []step{throttled, ok}, 1, iothub.ErrThrottled},
		{"accept whatever the retry-after", codePolicy{accept: 429001}, []step{longWait, ok}, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				s := &script{steps: tt.steps}
				p := newTestPipeline(t, s, iothub.RetryOptions{MaxAttempts: 3, MaxRetryAfter: time.Minute})
				req := &Request{Operation: "Op", Method: http.MethodGet, Path: "/x", Retry: RetryIdempotent, Policy: tt.policy}
				resp, err := p.Do(t.Context(), req)
				if got := s.count(); got != tt.wantAttempts {
					t.Errorf("attempts = %d, want %d", got, tt.wantAttempts)
				}
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Errorf("err = %v, want %v", err, tt.wantErr)
					}
					return
				}
				if err != nil || resp.Attempts != tt.wantAttempts {
					t.Errorf("Do = %+v, %v; want an answer after %d attempts", resp, err, tt.wantAttempts)
				}
			})
		})
	}
}
