package pipeline

import (
	"errors"

	"github.com/hubkit/iothub"
)

// Decision is what a Policy makes of an error answer.
type Decision uint8

const (
	// Fail ends the call with the answer as an *iothub.Error.
	Fail Decision = iota
	// Retry tries again, within the retry budget (RetryOptions.MaxAttempts)
	// and only when the answer's Retry-After is within
	// RetryOptions.MaxRetryAfter.
	Retry
	// Accept ends the call with the answer as a Response: its body is a
	// result to decode rather than an error, such as a bulk registry call
	// that partly failed.
	Accept
)

// Policy decides, for one request, what an error answer (status 400 or
// more) means. The operation that builds the request chooses it, so that
// the pipeline knows no operation: the pipeline parses the answer into an
// *iothub.Error, asks the policy, and applies the generic limits (retry
// budget, MaxRetryAfter) to a Retry. Failures without an answer are not a
// policy's business: they follow the request's RetryClass.
//
// A policy must be safe for concurrent use and cheap: it runs on every
// error answer. A small value type (such as a uint8 of flags) stored in
// Request.Policy costs no allocation.
type Policy interface {
	Decide(he *iothub.Error, class RetryClass) Decision
}

// Default is the generic rule that policies compose: retry throttled
// (429xxx) and server-busy (503xxx) answers, which IoT Hub guarantees were
// not carried out; retry answers that leave the outcome unknown (504101,
// other 5xx) only when class is RetryIdempotent; fail on anything else.
func Default(he *iothub.Error, class RetryClass) Decision {
	switch {
	case errors.Is(he, iothub.ErrThrottled), errors.Is(he, iothub.ErrServerBusy):
		return Retry
	case errors.Is(he, iothub.ErrOutcomeUnknown):
		if class == RetryIdempotent {
			return Retry
		}
	}
	return Fail
}

// DefaultPolicy is the Policy that applies Default. A nil Request.Policy
// means DefaultPolicy.
type DefaultPolicy struct{}

// Decide applies Default.
func (DefaultPolicy) Decide(he *iothub.Error, class RetryClass) Decision { return Default(he, class) }
