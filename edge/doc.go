// Package edge calls the built-in methods of the IoT Edge runtime on an
// Edge device, typed: the agent's (module $edgeAgent) ping,
// RestartModule, GetModuleLogs, UploadModuleLogs, UploadSupportBundle and
// GetTaskStatus, and the hub module's (module $edgeHub)
// RefreshDeviceScopeIdentityCache.
//
// A Client is built on a *service.Client and invokes these methods as
// module methods through it, so it shares its pipeline, credentials,
// retries and outcome model:
//
//	svc, err := service.NewClientFromConnectionString(os.Getenv("IOTHUB_CONNECTION_STRING"), nil)
//	…
//	ec := edge.NewClient(svc)
//	err = ec.RestartModule(ctx, "edge-1", "tempSensor", nil)
//
// # Errors
//
// Three kinds, told apart with errors.As:
//
//   - *iothub.ArgumentError: a bad argument, refused before anything is
//     sent (it matches iothub.ErrNotDelivered).
//   - *iothub.Error and *iothub.TransportError: the hub's or the network's
//     failure, passed through unchanged from package service, so that
//     iothub.MayHaveRun answers as for any invocation (a device offline is
//     404103 and not delivered; 504101 may have run).
//   - *AgentError: the call reached the runtime and it answered with a
//     failure status (400 or 500 from the agent, 404 from edgeHub for a
//     method it lacks) and {"message":…}.
//
// iothub.MayHaveRun reports true for an *AgentError: the call was
// delivered. What the agent did is in its Status: 400 means it refused the
// request before acting on it (an unknown method, a payload it cannot
// read, logs over its size cap); 500 means it tried and failed, possibly
// part-way (a restart of a module it does not know is a 500 that did
// nothing, but the SDK cannot tell that apart from other 500s).
//
// # Retries
//
// The read-only calls (Ping, GetModuleLogs, GetTaskStatus) and
// RefreshDeviceScopeIdentityCache, which is harmless to repeat, are
// retried like idempotent invocations (service.InvokeOptions.Idempotent).
// RestartModule, UploadModuleLogs and UploadSupportBundle are retried only
// where the hub guarantees the call was not delivered, unless
// CallOptions.Idempotent says otherwise: a repeated upload starts a second
// task, a repeated restart restarts twice.
//
// # Logs
//
// GetModuleLogs returns the logs decoded, whatever the encoding asked for:
// gzip answers (base64 of a gzip stream) are gunzipped, and the json
// content type's double-encoded records are parsed into LogLine values.
// The agent answers at most MaxLogsBytes (127,000) bytes of logs in one
// call; over that it refuses the call, and the error matches
// ErrLogsTooLarge: narrow the request (LogFilter.Tail, Since, Until,
// LogLevel), ask for gzip (the default), or upload the logs instead.
// Decompression is bounded by LogsOptions.MaxDecodedBytes
// (DefaultMaxDecodedBytes, 16 MiB) so that a hostile answer cannot exhaust
// memory.
//
// # Tasks
//
// Uploads run as background tasks on the device: UploadModuleLogs and
// UploadSupportBundle return a Task, and WaitTask polls GetTaskStatus with
// backoff until it ends. The agent keeps its tasks in memory: after it
// restarts every earlier task reads TaskUnknown, which WaitTask reports as
// lost (ErrTaskLost), not as pending.
//
// # Secrets
//
// A SAS URL carries a storage signature. The request types redact it in
// String, GoString and LogValue, and the sig parameter of any URL an agent
// quotes back is redacted from error and task messages.
//
// # Wire
//
// Every call is POST /twins/{deviceId}/modules/$edgeAgent/methods (or
// $edgeHub) with api-version 2021-04-12, the documented method names, and
// a payload with "schemaVersion":"1.0". GetModuleLogs and UploadModuleLogs
// always send "encoding" and "contentType" (the agent's own defaults
// disagree); since and until are strings.
package edge
