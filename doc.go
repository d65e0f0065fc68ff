// Package iothub is the root of a Go SDK for the service side of Azure IoT
// Hub: a backend invokes direct methods on devices and modules, picks its
// fleet from the device registry, and runs methods across many devices.
//
// This package holds what every client of the module shares: the error
// type and its sentinels, error codes, ClientOptions and RetryOptions. The
// clients live in sub-packages:
//
//   - service: direct methods on devices and modules (service.Client).
//   - registry: devices, modules, twins, bulk operations and queries
//     (registry.Client).
//   - digitaltwin: Plug and Play digital twins, read and updated with JSON
//     Patch (digitaltwin.Client).
//   - auth: connection strings, SAS tokens and credentials, and the
//     Microsoft Entra adapter.
//
// # Errors
//
// Every failure is one of four types, each usable with errors.As:
//
//   - *Error: IoT Hub answered with an error. Its Code is the hub's
//     six-digit code; errors.Is matches the sentinels (ErrDeviceNotOnline,
//     ErrThrottled, …).
//   - *TransportError: no answer arrived (connection failure, deadline).
//   - *ArgumentError: the SDK refused an argument before sending anything.
//   - *BodyError: an answer arrived but could not be read.
//
// # Did it run?
//
// A direct method is not idempotent: a reboot that runs twice is a bug. So
// every error also says whether the method may have run. MayHaveRun(err) is
// false only when IoT Hub guarantees the request was not carried out
// (errors.Is(err, ErrNotDelivered)): it was refused, throttled, the device
// was offline, or the connection failed before the request was written. It
// is true when the outcome is unknown (errors.Is(err, ErrOutcomeUnknown)):
// 504101 (the device did not answer in time, but got the call), a
// connection that broke after the request was written, or a deadline that
// passed while waiting for the answer.
//
//	res, err := client.InvokeDeviceMethod(ctx, "dev-1", params, nil)
//	switch {
//	case err == nil:
//		// The device answered; res.Status is its own status.
//	case !iothub.MayHaveRun(err):
//		// Safe to try again later.
//	default:
//		// It may have run: check the device before you repeat it.
//	}
//
// The SDK's automatic retries follow the same rule: by default a method is
// retried only when it was not delivered.
package iothub
