package service

// opValidate names the operation of MethodParams.Validate in its errors.
const opValidate = "MethodParams.Validate"

// Validate checks the parameters as an invocation does before it sends
// anything, and returns the same *iothub.ArgumentError (same Field and
// Rule) that InvokeDeviceMethod, StartFanOut or ScheduleMethodJob would
// return for them, or nil. It checks Name, TimeoutInSeconds,
// ConnectTimeoutInSeconds, and that Payload encodes as JSON within
// MaxPayloadBytes (so it encodes Payload once). It does no I/O.
//
// Use it to refuse bad input up front, before a program opens clients or
// lists its targets. The target ids are not part of MethodParams; each
// call checks its own.
func (p MethodParams[P]) Validate() error {
	_, err := encodeMethod(opValidate, p)
	return err
}
