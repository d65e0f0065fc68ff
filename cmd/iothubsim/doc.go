// Command iothubsim is a standalone simulated Azure IoT Hub: the SDK's strict
// fake hub served over TLS, with a fleet of simulated devices, for services
// written in other languages, docker-compose set-ups and manual trials.
//
// Usage:
//
//	go run github.com/hubkit/iothub/cmd/iothubsim [flags]
//
// It speaks IoT Hub's REST wire format (direct methods, the identity
// registry, twins, queries, bulk operations and jobs) with the real hub's
// authentication (SAS tokens over the exact resource URI, policy rights),
// api-version check, status codes, six-digit error codes and error bodies,
// so any client that trusts its certificate can use it: this SDK, the
// official service SDKs, curl.
//
// # Devices
//
// The hub has the example programs' named devices (sim-device-1 …
// sim-device-3 online; sim-device-slow, which answers after 2 s;
// sim-device-offline, registered but not connected; sim-edge-1, an IoT
// Edge device whose $edgeAgent and $edgeHub answer the runtime's built-in
// methods, with modules tempSensor and filterModule; sim-pnp-1, a Plug
// and Play temperature controller whose components report
// targetTemperature and maxTempSinceLastReboot and answer the command
// "getMaxMinReport"), plus -devices
// online fleet devices sim-fleet-00001 and on, and -edge more devices like
// sim-edge-1, sim-edge-00001 and on. Every device answers the direct
// methods "reboot" (payload {"delay":N} or null), "getStatus", "echo" (its
// payload back) and "fail" (status 500); other methods get status 501.
// With -troubled some fleet devices misbehave, chosen by their number i:
// i%10 == 3 is offline (404103), i%10 == 7 answers everything with status
// 500, i%20 == 5 is slow (-slow-latency), i%25 == 11 loses its answers (the
// method runs, the hub answers 504101).
//
// # Address and host name
//
// -addr is where it listens, 127.0.0.1:0 by default (port 0 picks a free
// port). -host is the host name clients use, localhost by default. The
// hub's host name, which goes in the connection string and is the audience
// (sr) of its SAS tokens, is -host when the port is 443, and
// -host:PORT otherwise, so a client that honours a port in HostName
// reaches it from the connection string alone. A client whose SDK always
// dials HostName:443 reaches it with
//
//	iothubsim -addr 127.0.0.1:443 -host localhost
//
// (listening on port 443 may need privileges). The TLS certificate is a
// new self-signed CA certificate (ECDSA P-256) valid for -host, localhost,
// 127.0.0.1 and ::1; trust it in the client (SSL_CERT_FILE,
// NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE, curl --cacert, …).
//
// # Ready lines
//
// Once it is listening and the certificate is written, it prints exactly
// two lines on standard output, and nothing else there:
//
//	HostName=localhost:41234;SharedAccessKeyName=iothubowner;SharedAccessKey=…
//	/path/to/ca.pem
//
// The first is the service connection string of the -policy policy
// (iothubowner, with every right, by default); the second is the path of
// the certificate in PEM form (-cert-out, or a file in a new temporary
// directory that is removed when the simulator stops). Scripts read the
// two lines and then use the hub. A line for people ("iothubsim: serving
// …") goes to standard error. SIGINT or SIGTERM stops it: it stops
// listening, cancels the calls in flight and exits with status 0. Errors
// go to standard error: status 2 for bad flags, 1 when it cannot start.
//
// # Flags
//
//	-addr HOST:PORT      where to listen (default 127.0.0.1:0)
//	-host NAME           the hub's host name (default localhost)
//	-devices N           fleet devices sim-fleet-00001 … (default 0)
//	-edge N              more Edge devices sim-edge-00001 … (default 0)
//	-troubled            some fleet devices misbehave (see above)
//	-slow-latency D      latency of -troubled's slow devices (default 3s)
//	-cert-out FILE       where to write the CA certificate (PEM)
//	-policy NAME         the connection string's policy: iothubowner,
//	                     service, registryRead or registryReadWrite
//	                     (default iothubowner)
//	-tier TIER           throttle as this tier does: F1, B1, B2, B3, S1, S2
//	                     or S3 (default: no throttling)
//	-units N             IoT Hub units of -tier (default 1)
//	-job-rate R          device operations per second of jobs (default:
//	                     the tier's, or 10)
//	-daily-messages N    the daily message quota; past it billable
//	                     operations get 403002 (default 0: none)
//	-max-recorded N      requests and calls kept for inspection
//	                     (default 10000)
//
// A fleet of a million idle devices fits in well under 1 GiB: an idle
// device costs the hub under 1 KB.
package main
