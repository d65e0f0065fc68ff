package service

import (
	"fmt"
	"iter"
	"math"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/flow"
)

// fanOutConfig validates a fan-out's arguments and returns its options
// with the defaults filled in and the flow controller's configuration.
func fanOutConfig(targets iter.Seq2[Target, error], params MethodParams[any], options *FanOutOptions) (FanOutOptions, flow.Config, methodCall, error) {
	const op = "FanOut"
	var o FanOutOptions
	if options != nil {
		o = *options
	}
	bad := func(field, rule string) (FanOutOptions, flow.Config, methodCall, error) {
		return o, flow.Config{}, methodCall{}, &iothub.ArgumentError{Operation: op, Field: "FanOutOptions." + field, Rule: rule}
	}
	switch {
	case o.Concurrency < 0:
		return bad("Concurrency", fmt.Sprintf("must be 0 (default 16) or more; got %d", o.Concurrency))
	case !validRate(o.MaxRate):
		return bad("MaxRate", "must be 0 (no cap) or a positive number")
	case !validRate(o.StartRate):
		return bad("StartRate", "must be 0 (slow start) or a positive number")
	case o.StartRate > 0 && o.Tier != "":
		return bad("StartRate", "must be 0 when Tier is set: set a starting rate or a tier, not both")
	case o.Units < 0:
		return bad("Units", fmt.Sprintf("must be 0 (1 with a Tier) or more; got %d", o.Units))
	case o.Units > 0 && o.Tier == "":
		return bad("Units", "must be 0 without a Tier: units seed the rate only with a tier")
	case o.ThrottleGiveUp < 0:
		return bad("ThrottleGiveUp", fmt.Sprintf("must be 0 (default %v) or more; got %v", DefaultThrottleGiveUp, o.ThrottleGiveUp))
	case targets == nil:
		return o, flow.Config{}, methodCall{}, &iothub.ArgumentError{Operation: op, Field: "targets", Rule: "must not be nil"}
	}
	if rule := checkTier(o.Tier); rule != "" {
		return bad("Tier", rule)
	}
	// Every target gets the same request body: encoded once, here.
	m, err := encodeMethod(op, params)
	if err != nil {
		return o, flow.Config{}, methodCall{}, err
	}
	if o.Concurrency == 0 {
		o.Concurrency = 16
	}
	if o.ThrottleGiveUp == 0 {
		o.ThrottleGiveUp = DefaultThrottleGiveUp
	}
	cfg := flow.Config{Cap: o.MaxRate, Seed: o.StartRate}
	if o.Tier != "" {
		cfg.Seed = MethodRateLimit(o.Tier, max(o.Units, 1), m.payloadBytes)
	}
	return o, cfg, m, nil
}

// validRate reports a rate that is 0 or a positive finite number.
func validRate(r float64) bool { return r >= 0 && !math.IsInf(r, 0) }

// checkTier returns the rule a fan-out's tier breaks, or "" for none or a
// tier with direct methods.
func checkTier(t Tier) string {
	switch t {
	case "", TierF1, TierS1, TierS2, TierS3:
		return ""
	case TierB1, TierB2, TierB3:
		return fmt.Sprintf("%s is a Basic tier, which has no direct methods; use F1, S1, S2 or S3", t)
	}
	return fmt.Sprintf("unknown tier %q; use F1, S1, S2 or S3", string(t))
}
