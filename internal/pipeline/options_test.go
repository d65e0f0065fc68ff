package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hubkit/iothub"
)

// TestClientAttemptTimeout checks that ClientOptions.AttemptTimeout caps an
// attempt below the request's own bound, and never raises it.
func TestClientAttemptTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		client time.Duration
		want   time.Duration
	}{
		{"below the request's bound", 3 * time.Second, 3 * time.Second},
		{"above the request's bound", time.Minute, 10 * time.Second},
		{"zero", 0, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				s := &script{steps: []step{{status: 200, body: `{}`, delay: time.Hour}}}
				p, err := New("test-hub.azure-devices.net", &countingAuth{}, &iothub.ClientOptions{
					Transport: s, AttemptTimeout: tt.client, Retry: iothub.RetryOptions{MaxAttempts: 1},
				})
				if err != nil {
					t.Fatal(err)
				}
				req := methodRequest(RetryNotDelivered)
				req.AttemptTimeout = 10 * time.Second
				start := time.Now()
				_, err = p.Do(t.Context(), req)
				if got := time.Since(start); got != tt.want {
					t.Errorf("gave up after %v, want %v", got, tt.want)
				}
				if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, iothub.ErrOutcomeUnknown) {
					t.Errorf("err = %v; want a deadline with an unknown outcome", err)
				}
			})
		})
	}
}

func TestNewRejectsNegativeAttemptTimeout(t *testing.T) {
	t.Parallel()
	_, err := New("hub", &countingAuth{}, &iothub.ClientOptions{AttemptTimeout: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "AttemptTimeout must be 0") {
		t.Errorf("err = %v, want it to name AttemptTimeout", err)
	}
}
