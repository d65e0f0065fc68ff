// Package httpmock is a simulated Azure IoT Hub: the service side of the
// hub's REST API, as strict as the real hub, for the SDK's tests and for the
// example programs' embedded hub.
//
// # What it simulates
//
// For now, direct methods on devices and modules:
//
//	POST /twins/{deviceId}/methods?api-version=…
//	POST /twins/{deviceId}/modules/{moduleId}/methods?api-version=…
//
// A request the real hub would reject is rejected with the real HTTP
// status, six-digit code and body shape. Checks happen in this order:
//
//  1. Routing. The escaped path is split on '/', each segment decoded once
//     ('+' stays '+', "%2F" inside an id is part of the id) and empty
//     segments dropped. An unknown path gets 404 and a known path with a
//     verb it does not support 405, both in ASP.NET's shape without code:
//     {"Message":"The requested resource does not support http method 'GET'."}.
//     Twin paths are known (so that POST to them is a 405, as real clients
//     that sent an empty module id saw) but not simulated yet: GET, PUT
//     and PATCH on them answer 501.
//  2. The api-version query parameter: required, once, and one of
//     Options.APIVersions, else 400 / 400001 InvalidProtocolVersion.
//  3. Authentication: a service SAS token (see VerifySAS) of a policy with
//     ServiceConnect, or a bearer token minted by a Credential of this hub
//     (see Hub.TokenCredential) whose role may invoke methods. Failures
//     are 401 / 401002 IotHubUnauthorizedAccess; a valid Entra principal
//     without the permission gets 401 / 401003. Messages never quote the
//     token.
//  4. The body: at most MaxRequestBody bytes (else 413 / 413000);
//     Content-Type application/json, parameters allowed (else 415 /
//     415000); a JSON object (else 400 / 400006 IotHubFormatError);
//     methodName a non-empty string (400005 ArgumentNull when missing,
//     null or empty) of printable US-ASCII other than space, tab and
//     $()<>@,;:\"/[]?={} (else 400004 ArgumentInvalid);
//     responseTimeoutInSeconds an integer in [5, 300], 30 when absent or
//     null; connectTimeoutInSeconds an integer in [0, 300], 0 when absent
//     or null (else 400004); payload absent, null, "" or any JSON value of
//     at most MaxPayloadSize bytes as compact JSON (else 400004). Field
//     names match case-insensitively and unknown fields are ignored, as
//     the hub's JSON binder does.
//  5. Faults (see Fault).
//  6. The target: a device that is not registered or is disabled gives
//     404 / 404001 DeviceNotFound, a module that is not registered 404 /
//     404010 ModuleNotFound. An offline target is waited for up to the
//     connect timeout (0: not at all), then 404 / 404103 DeviceNotOnline
//     "Timed out waiting for device to connect." with
//     "info":{"timeout":"hh:mm:ss"}.
//  7. Delivery: the call is counted (Hub.Deliveries, Hub.Calls), the
//     target's handler runs after its latency, and the hub waits for the
//     answer up to the response timeout, else 504 / 504101 GatewayTimeout
//     "Timed out waiting for the response from device." A target with no
//     handler for the method answers status 501 (NotImplementedStatus)
//     with a null payload, as device SDKs usually do.
//
// Success is HTTP 200 with Content-Type "application/json; charset=utf-8"
// and {"status":<device status>,"payload":<device payload or null>}, whatever
// the device's status.
//
// Errors use the escaped-JSON shape with an iothub-errorcode header naming
// the code (see ErrorShape); faults can ask for the other shapes.
//
// # Transports
//
// Hub is an http.Handler. Hub.RoundTripper serves it in-process, without
// sockets, and works inside testing/synctest bubbles, so time-dependent
// tests (offline devices, latency, timeouts, delays) run in virtual time.
// Hub.StartTLS serves it on a real TLS socket with HTTP/2.
//
// # Time
//
// The hub reads time.Now and uses timers directly; under testing/synctest
// they follow the bubble's fake clock. Create the Hub inside the bubble.
//
// The package does not depend on package testing, keeps no global state,
// and every exported method is safe for concurrent use.
package httpmock
