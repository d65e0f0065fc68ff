// Command backend is a small HTTP service of the kind a team puts in front
// of IoT Hub, and the pattern for testing one with iothubtest. It serves
//
//	POST /devices/{id}/reboot        body: optional {"delay": seconds}
//
// by invoking the device's "reboot" direct method through service.Client,
// and maps each outcome to an HTTP answer with a JSON body
// {"deviceId", "outcome", "status", "payload", "error", "hubError", "trackingId"}:
//
//	200 answered       the device answered; status and payload are its own (a device's 500 is data)
//	400 invalid        bad input, refused before anything was sent (an *iothub.ArgumentError, or a bad body)
//	404 not-found      no such device, or it is disabled (404001)
//	409 not-delivered  the device is not connected (404103); the reboot did not run, try again later
//	503 not-delivered  the hub is throttling or busy (429xxx, 503xxx) or unreachable; Retry-After when the hub gave one
//	502 not-delivered  the hub refused the call otherwise (401, 403: a credential, quota or suspension problem)
//	202 may-have-run   the outcome is unknown (iothub.MayHaveRun): check the device before repeating
//
// Run it against the embedded simulated hub (no Azure account needed) and
// call it:
//
//	go run ./examples/backend -addr 127.0.0.1:8080
//	curl -i -X POST localhost:8080/devices/sim-device-1/reboot -d '{"delay":5}'
//	curl -i -X POST localhost:8080/devices/sim-device-offline/reboot
//
// Against a real hub, pass -connection-string (or set
// IOTHUB_CONNECTION_STRING) with a policy that has ServiceConnect, or -hub
// HOST to sign in with Microsoft Entra ID. -timeout and -connect-timeout
// set the method's response and connect timeouts, in seconds.
//
// Its tests (reboot_test.go) are the part to copy: the backend's handler
// behind httptest.NewServer, an iothubtest hub behind the backend, one
// table over every outcome that checks the HTTP answer and how many times
// the reboot reached the device (Hub.ExpectDeliveries), and tests of time
// (an offline device within its connect timeout, a busy hub and the
// SDK's retries) in testing/synctest bubbles, in virtual time. Run them
// with
//
//	go test ./examples/backend
package main
