package service

// Outcome is what happened to one target of a fleet operation.
type Outcome string

// The outcomes of a fleet operation's targets.
const (
	OutcomeSucceeded    Outcome = "succeeded"     // the device answered 2xx
	OutcomeDeviceError  Outcome = "device-error"  // the device answered another status
	OutcomeNotDelivered Outcome = "not-delivered" // IoT Hub guarantees the method did not reach the device
	OutcomeUnknown      Outcome = "unknown"       // it may have run
)
