// Package iothubtest is a fake Azure IoT Hub for testing code that uses
// the hub's service API: your backend, through this module's clients, another
// SDK or plain net/http. It is named after net/http/httptest and used the
// same way.
//
// The fake hub speaks the real wire format and is as strict as the real
// hub: SAS signatures over the exact audience, expiry and policy rights,
// api-version, request bodies and their ranges, status codes, six-digit
// error codes in the real body shapes and the iothub-errorcode header. A
// request the real hub refuses is refused here, so a test that passes
// against it tells you something about production.
//
// # A complete test
//
//	func TestRebootEndpoint(t *testing.T) {
//		hub := iothubtest.NewServer(t, nil) // closed by t.Cleanup
//		dev := hub.AddDevice("dev-1", nil)
//		dev.HandleMethod("reboot", func(ctx context.Context, call iothubtest.MethodCall) iothubtest.MethodResponse {
//			return iothubtest.MethodResponse{Status: 200, Payload: map[string]bool{"rebooting": true}}
//		})
//
//		client, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
//		if err != nil {
//			t.Fatal(err)
//		}
//		res, err := client.InvokeDeviceMethod(t.Context(), "dev-1", service.MethodParams[any]{Name: "reboot"}, nil)
//		if err != nil || res.Status != 200 {
//			t.Fatalf("reboot: %+v, %v", res, err)
//		}
//		hub.ExpectDeliveries(t, map[iothubtest.Target]int{
//			{DeviceID: "dev-1", Method: "reboot"}: 1, // exactly once, and nothing else
//		})
//	}
//
// # Three ways to run it
//
// New returns a Hub that opens no socket. Hub.ClientOptions gives the
// clients of this module its in-process Hub.RoundTripper; Hub.Handler mounts
// it in a server of your own. Created inside a testing/synctest bubble, its
// timeouts, latencies and delays follow the bubble's fake clock, so a test
// of a 30-second timeout takes no time:
//
//	synctest.Test(t, func(t *testing.T) {
//		hub := iothubtest.New(nil)
//		defer hub.Close()
//		hub.AddDevice("dev-1", &iothubtest.DeviceOptions{Offline: true})
//		client, _ := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
//		_, err := client.InvokeDeviceMethod(t.Context(), "dev-1",
//			service.MethodParams[any]{Name: "reboot", ConnectTimeoutInSeconds: 30}, nil)
//		// err is 404103 DeviceNotOnline, 30 fake seconds later.
//	})
//
// NewServer serves a Hub over TLS (HTTP/2 and HTTP/1.1) on a loopback port:
// Server.ClientOptions trust its certificate and reach its address,
// Server.Client is an *http.Client for raw requests to Server.URL, and
// Server.CertificatePEM is for other programs' trust stores. A Server has
// every method of its Hub. Outside a test, Hub.ListenTLS serves a Hub on an
// address of your choice until Server.Close, as the standalone simulator
// cmd/iothubsim does.
//
// Both serve the same hub state: every device, fault and recorded call is
// the Hub's.
//
// # Credentials
//
// A hub has the policies of a new IoT Hub (PolicyIoTHubOwner,
// PolicyService, PolicyRegistryRead, PolicyRegistryReadWrite,
// PolicyDevice), each with a random key; Hub.TokenCredential stands for a
// Microsoft Entra principal holding one of the hub's roles. Hub.ConnectionString is the
// service policy's; Hub.ConnectionStringFor gives the others, and
// Hub.SASToken a ready Authorization header for raw requests:
//
//	req.Header.Set("Authorization", hub.SASToken(iothubtest.PolicyService))
//
// # Devices and modules
//
// Hub.AddDevice registers a device; its methods are Go functions set with
// Device.HandleMethod (or DeviceOptions.Handler for every method without
// its own). A method without a handler answers NotImplementedStatus.
// Ready behaviours:
//
//   - online: the default;
//   - offline: DeviceOptions.Offline, 404103 after the call's connect
//     timeout (at once when it is 0), or the call proceeds when
//     Device.SetOnline connects it in time;
//   - slow: DeviceOptions.Latency;
//   - disabled: DeviceOptions.Disabled, 404001;
//   - a lost answer: AddFault(LostAnswers(id, "")), 504101 after delivery;
//   - a handler that never answers in time: 504101 at the response timeout;
//   - a fixed answer: Answer(status, payload); an echo: Echo();
//   - IoT Edge: DeviceOptions.Edge adds $edgeAgent and $edgeHub, which
//     answer the runtime's built-in methods (restart, logs, upload tasks)
//     as a real agent does; DeviceOptions.EdgeRuntime adds the
//     deployment's modules and their logs (EdgeOptions), and how long a
//     restarted agent is away; Device.Edge seeds more logs and restarts
//     the agent.
//   - Plug and Play: DeviceOptions.ModelID. The hub serves commands
//     (POST /digitaltwins/{id}/commands/{command} and
//     /digitaltwins/{id}/components/{component}/commands/{command}) by
//     delivering them to the device as the direct method "{command}" for
//     a root command and "{component}*{command}" for a component command,
//     so a command's handler is a method handler under that name:
//     dev.HandleMethod("thermostat1*getMaxMinReport", fn). Commands take
//     the method path (faults, throttling, offline, latency) and are
//     counted and recorded as those method calls (Hub.Deliveries,
//     Hub.Calls); the answer carries the handler's payload as its body and
//     its status in the x-ms-command-statuscode header.
//
// Device.AddModule adds modules, with handlers of their own.
//
// # Registry, twins, queries, bulk operations and jobs
//
// The hub serves the identity registry (with ETags), twins, the query
// language's common subset with paging, bulk operations and IoT Hub jobs,
// as the real hub does. Seed a twin with DeviceOptions.Tags and Desired,
// let the device report with Device.SetReported, and read back what the
// code under test changed with Hub.Twin. Devices created through the
// registry API start disconnected; find them with Hub.Device and connect
// them with Device.SetOnline.
//
// # Faults and hub-wide states
//
// Hub.AddFault scripts failures as data (see Fault): "the next 2 calls get
// 503", "429 with Retry-After", "the answer is lost after delivery", "the
// connection breaks". Options.Throttle enforces a tier's throttles (or an
// explicit rate) and Options.DailyMessages a quota. Hub.RevokePolicy and
// Hub.RotateKey make tokens fail with 401, Hub.ExhaustQuota gives 403002
// and Hub.Suspend 403001.
//
// # Assertions
//
// Hub.Deliveries counts the calls of a method that were delivered to a
// target: handed to the device, whether or not its answer came back. That
// is what "rebooted exactly once" means, and Hub.ExpectDeliveries checks it
// for every target at once, failing the test with a -want +got diff.
// Hub.Calls and Hub.Requests return what was recorded (bounded by
// Options.MaxRecorded).
//
// # What it does not simulate
//
// The device side (MQTT, AMQP, device-to-cloud messages), cloud-to-device
// messages, file uploads, import and export jobs (bulk registry requests,
// POST /devices, are simulated), configurations and deployments of IoT
// Edge. Plug and Play is simulated: commands, and the digital twin view
// (GET and PATCH /digitaltwins/{id}) built from the device twin. The throttles of the
// registry and twin operations are not modelled.
//
// The package keeps no global state, and every method of its types is safe
// for concurrent use. Production code must not import it; this module's
// architecture test forbids its own packages to.
package iothubtest
