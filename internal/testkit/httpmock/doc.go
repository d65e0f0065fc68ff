// Package httpmock is a simulated Azure IoT Hub: the service side of the
// hub's REST API, as strict as the real hub, for the SDK's tests and for the
// example programs' embedded hub.
//
// # What it simulates
//
// Direct methods on devices and modules:
//
//	POST /twins/{deviceId}/methods?api-version=…
//	POST /twins/{deviceId}/modules/{moduleId}/methods?api-version=…
//
// Plug and Play commands, which are direct methods on the device under
// another wire format:
//
//	POST /digitaltwins/{deviceId}/commands/{command}?api-version=…
//	POST /digitaltwins/{deviceId}/components/{component}/commands/{command}?api-version=…
//
// The body is the raw payload (none, or any JSON value of at most
// MaxPayloadSize bytes as sent; Content-Type application/json when there is
// one), the timeouts are the query parameters responseTimeoutInSeconds
// ([5, 300], 30 when absent) and connectTimeoutInSeconds ([0, 300], 0 when
// absent), names matched case-insensitively; out of range, not an integer
// or given twice is 400004 with the methods' messages. Component and
// command names use the method-name characters and no '*' (else 400004).
// The command reaches the device's handler as the method "{command}" or
// "{component}*{command}" (CommandMethod) and, once these checks pass,
// takes the method path below: the daily quota (end of step 4), faults
// (matched by that method name), throttling, the target checks and
// delivery. It is counted and recorded as that method call
// (Hub.Deliveries, Hub.Calls). Success is HTTP 200 with the device's
// payload as the body (null when it sent none), its status in
// x-ms-command-statuscode and a GUID in x-ms-request-id; errors are the
// methods' errors.
// IoT Edge devices (Device.MakeEdge): the $edgeAgent and $edgeHub modules
// answer the runtime's built-in methods as device answers (see edge.go and
// iothub-facts.md §12): names matched case-insensitively; GetModuleLogs
// with regex module selection, tail/since/until/loglevel/regex filters,
// gzip or none, json (double-encoded records) or text, 400 over
// MaxEdgeLogsBytes; upload tasks NotStarted → Running → Completed or
// Failed, one state per GetTaskStatus; Unknown after an agent restart.
// A RestartModule of edgeAgent disconnects $edgeAgent for
// EdgeOptions.AgentRestartWindow (404103), then only ping and
// GetTaskStatus answer for EdgeOptions.AgentStartupWindow.
//
// The identity registry, with ETags (RegistryRead to read, RegistryWrite
// to write):
//
//	GET|PUT|DELETE /devices/{id}, GET /devices?top=N, POST /devices (bulk)
//	GET /devices/{id}/modules, GET|PUT|DELETE /devices/{id}/modules/{mid}
//	GET /statistics/devices, GET /statistics/service
//
// PUT without If-Match creates (409001, or 409301 for a module, when the
// id exists); with If-Match (*, "*" or the etag, quotes and W/ ignored) it
// replaces (404001 or 404010 when missing, 412001 on a mismatch). Read-only
// fields of the body are ignored; missing SAS keys are generated. Devices
// and modules created through the API start disconnected; tests connect
// them with Device.SetOnline (Hub.AddDevice, which skips the id rules,
// adds them connected unless told otherwise). Bulk
// POST /devices takes 1 to 100 ExportImportDevice items, applies each on
// its own and answers 200, or 400 with iothub-errorcode
// BulkRegistryOperationFailure and the same result body when any failed.
//
// Twins (ServiceConnect): GET, PATCH (merge; null deletes) and PUT
// (replace tags and desired) on /twins/{id} and
// /twins/{id}/modules/{mid}, with the twin's etag in If-Match and the
// twin rules (no arrays, key characters, depth, sizes) enforced with
// 400004. POST with X-HTTP-Method-Override: PATCH is a PATCH.
//
// Plug and Play digital twins (ServiceConnect): GET /digitaltwins/{id},
// the view of the device twin (components are the objects marked
// "__t": "c"; writable-property metadata from desired values and the
// convention's {"value","ac","av","ad"} reports; $model from the model id,
// absent without one) with a weak ETag; PATCH /digitaltwins/{id}, a JSON
// Patch of add, replace and remove on /prop, /component/prop and
// /component applied to the desired properties (a whole component needs
// "$metadata": {}; component properties get the "__t": "c" marker), with
// If-Match (412001), the rules of DTDL names, no arrays or nulls and depth
// 5 (400004 naming the property), answered 202 with ETag and Location and
// no body. Removing what has no desired value changes nothing.
//
// Queries (ServiceConnect): POST /devices/query with a subset of the IoT
// Hub query language (SELECT *, projections, COUNT() and GROUP BY, TOP,
// FROM devices or devices.modules, WHERE with AND, OR, NOT, comparisons,
// IN, NIN and IS_DEFINED). Answers are bare JSON arrays with
// x-ms-item-type; x-ms-continuation appears only when more pages exist.
// Pages follow device id, then module id, and a token names the last twin
// returned, so a scan sees every unchanged twin exactly once. Projections
// are named by their alias or the path's last name; an unnamed COUNT() is
// "$1". Aggregates are answered in one page.
//
// A request the real hub would reject is rejected with the real HTTP
// status, six-digit code and body shape. For direct methods, checks happen
// in this order (other operations follow the same first three steps):
//
//  1. Routing. The escaped path is split on '/', each segment decoded once
//     ('+' stays '+', "%2F" inside an id is part of the id) and empty
//     segments dropped. An unknown path gets 404 and a known path with a
//     verb it does not support 405, both in ASP.NET's shape without code:
//     {"Message":"The requested resource does not support http method 'GET'."}.
//     Twin paths are routes too, so a POST to them (as real clients that
//     sent an empty module id did) is a 405.
//  2. The api-version query parameter: required, once, and one of
//     Options.APIVersions, else 400 / 400001 InvalidProtocolVersion.
//  3. Authentication: a service SAS token (see VerifySAS) of a policy with
//     the operation's rights (ServiceConnect for methods), or a bearer
//     token minted by a Credential of this hub (see Hub.TokenCredential)
//     whose role allows the operation. Failures
//     are 401 / 401002 IotHubUnauthorizedAccess; a valid Entra principal
//     without the permission gets 401 / 401003. Messages never quote the
//     token. Hub.RevokePolicy and Hub.RotateKey make a policy's tokens
//     fail here. Then a suspended hub (Hub.Suspend) answers every
//     operation 403 / 403001 IotHubSuspended.
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
//     the hub's JSON binder does. Then, when the daily message quota is
//     used up (Options.DailyMessages, Hub.ExhaustQuota), 403 / 403002
//     IotHubQuotaExceeded. (See Hub.Suspend for these hub-wide states.)
//  5. Faults (see Fault).
//  6. The target: a device that is not registered or is disabled gives
//     404 / 404001 DeviceNotFound, a module that is not registered 404 /
//     404010 ModuleNotFound. An offline target is waited for up to the
//     connect timeout (0: not at all), then 404 / 404103 DeviceNotOnline
//     "Timed out waiting for device to connect." with
//     "info":{"timeout":"hh:mm:ss"}.
//  7. Delivery: the call is counted (Hub.Deliveries, Hub.TotalDeliveries,
//     Hub.Calls) and billed against the daily quota, the
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
