// Package service invokes direct methods on IoT Hub devices and modules, and
// Plug and Play commands on devices.
//
// Create one Client per hub and share it; it is safe for concurrent use:
//
//	client, err := service.NewClientFromConnectionString(os.Getenv("IOTHUB_CONNECTION_STRING"), nil)
//
// or, with Microsoft Entra ID:
//
//	cred, err := azidentity.NewDefaultAzureCredential(nil)
//	client, err := service.NewClient("myhub.azure-devices.net", cred, nil)
//
// Invoke a method with an untyped payload (the answer's payload is raw
// JSON):
//
//	res, err := client.InvokeDeviceMethod(ctx, "dev-1", service.MethodParams[any]{
//		Name:             "reboot",
//		Payload:          map[string]int{"delay": 5},
//		TimeoutInSeconds: 30,
//	}, nil)
//
// or with types of your own, decoded for you:
//
//	res, err := service.InvokeDevice[RebootStatus](ctx, client, "dev-1",
//		service.MethodParams[RebootRequest]{Name: "reboot", Payload: RebootRequest{Delay: 5}}, nil)
//
// The device's answer is data: a device that answers status 500 gives a
// result with Status 500 and no error. Errors are the hub's (device not
// found, not online, gateway timeout, throttled, …) or the network's; see
// package iothub for the error types and for iothub.MayHaveRun, which says
// whether a failed invocation may nevertheless have run.
//
// # Plug and Play commands
//
// A Plug and Play device's commands are direct methods on the device, sent
// through the digital-twin API:
//
//	res, err := client.InvokeCommand(ctx, "dev-1", service.CommandParams[any]{
//		Component: "thermostat1",
//		Name:      "getMaxMinReport",
//		Payload:   "2026-01-01T00:00:00Z",
//	}, nil)
//
// with the generic InvokeCommand for types of your own. They share the
// methods' options, retries, errors and outcome model; the result adds the
// hub's request id. On the device, a root command arrives as the method of
// its name, a component command as the method "{component}*{command}"; a
// fan-out or a job runs a command on a fleet with CommandParams.Method.
//
// # Wire
//
// Invocations are POST /twins/{deviceId}/methods and
// POST /twins/{deviceId}/modules/{moduleId}/methods with api-version
// 2021-04-12. Commands are POST /digitaltwins/{deviceId}/commands/{command}
// and POST /digitaltwins/{deviceId}/components/{component}/commands/{command},
// with the raw payload as the body (none for a null payload), the timeouts
// in the query string (connectTimeoutInSeconds, responseTimeoutInSeconds;
// each only when not 0) and the device's status in the answer's
// x-ms-command-statuscode header. Each attempt's HTTP deadline is the
// connect timeout plus the response timeout plus NetworkMargin, and never
// outlives ctx.
//
// # Retries
//
// A method is retried automatically only where IoT Hub guarantees it was not
// delivered: throttling (429xxx), server busy or unavailable (503xxx), and
// connection failures before the request was written. Never after 504101,
// a broken connection after writing, or other 5xx, unless the call says
// InvokeOptions.Idempotent. 404103 (device not online) is retried only with
// InvokeOptions.RetryDeviceNotOnline.
package service
