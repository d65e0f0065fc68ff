package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
)

// result is what one run of the program left behind.
type result struct {
	code           int
	stdout, stderr string
}

// runInProcess calls run with args and an environment that holds env only.
func runInProcess(t *testing.T, args []string, env map[string]string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, func(k string) string { return env[k] }, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// check compares a run with the expected exit code, exact stdout and
// fragments of stderr.
func check(t *testing.T, got result, wantCode int, wantStdout string, wantStderr []string) {
	t.Helper()
	if got.code != wantCode {
		t.Errorf("exit code %d, want %d; stderr:\n%s", got.code, wantCode, got.stderr)
	}
	if diff := cmp.Diff(wantStdout, got.stdout); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
	for _, w := range wantStderr {
		if !strings.Contains(got.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, got.stderr)
		}
	}
}

// TestRun runs the program in-process: against the embedded simulated hub
// when it has no credentials, and with bad input that it must refuse
// before it builds a client.
func TestRun(t *testing.T) {
	t.Parallel()
	const embedded = "no credentials given; using the embedded simulated hub"
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantStdout string
		wantStderr []string
	}{
		// The embedded simulated hub.
		{
			name:       "device method",
			args:       []string{"-device", "sim-device-1", "-method", "reboot"},
			wantStdout: `{"status":200,"payload":{"delay":0,"rebooting":true}}` + "\n",
			wantStderr: []string{embedded, "sim-device-1", "sim-edge-1"},
		},
		{
			name:       "payload and timeouts",
			args:       []string{"-device", "sim-device-2", "-method", "reboot", "-payload", `{"delay": 5}`, "-timeout", "5", "-connect-timeout", "300"},
			wantStdout: `{"status":200,"payload":{"delay":5,"rebooting":true}}` + "\n",
			wantStderr: []string{embedded},
		},
		{
			name:       "module method",
			args:       []string{"-device", "sim-edge-1", "-module", "$edgeAgent", "-method", "ping"},
			wantStdout: `{"status":200,"payload":null}` + "\n",
			wantStderr: []string{embedded},
		},
		{
			name:       "device answers 500",
			args:       []string{"-device", "sim-device-1", "-method", "fail"},
			wantStdout: `{"status":500,"payload":{"error":"simulated device failure"}}` + "\n",
			wantStderr: []string{embedded},
		},
		{
			name:       "device answers 400",
			args:       []string{"-device", "sim-device-3", "-method", "reboot", "-payload", `[1]`},
			wantStdout: `{"status":400,"payload":{"error":"payload must be an object such as {\"delay\":5}"}}` + "\n",
			wantStderr: []string{embedded},
		},
		{
			name:       "unknown method",
			args:       []string{"-device", "sim-device-1", "-method", "noSuchMethod"},
			wantStdout: `{"status":501,"payload":null}` + "\n",
			wantStderr: []string{embedded},
		},
		{
			// The payload is printed as the device sent it: compacted, but
			// with no HTML escaping and numbers untouched.
			name:       "payload as sent",
			args:       []string{"-device", "sim-device-1", "-method", "echo", "-payload", `{"a": "<b>&", "n": 1.50, "big": 123456789012345678901234567890}`},
			wantStdout: `{"status":200,"payload":{"a":"<b>&","n":1.50,"big":123456789012345678901234567890}}` + "\n",
			wantStderr: []string{embedded},
		},
		{
			name:       "device not online",
			args:       []string{"-device", "sim-device-offline", "-method", "reboot"},
			wantCode:   cli.ExitFailed,
			wantStderr: []string{"404103", "DeviceNotOnline", "tracking ID ", "the method did not run"},
		},
		{
			name:       "device not found",
			args:       []string{"-device", "no-such-device", "-method", "reboot"},
			wantCode:   cli.ExitFailed,
			wantStderr: []string{"404001", "DeviceNotFound", "tracking ID ", "the method did not run"},
		},
		{
			name:       "module not found",
			args:       []string{"-device", "sim-edge-1", "-module", "noSuchModule", "-method", "ping"},
			wantCode:   cli.ExitFailed,
			wantStderr: []string{"404010", "ModuleNotFound", "tracking ID "},
		},

		// Plug and Play commands on the embedded hub's sim-pnp-1.
		{
			name:       "component command",
			args:       []string{"-device", "sim-pnp-1", "-component", "thermostat1", "-command", "getMaxMinReport", "-payload", `"2026-03-01T00:00:00Z"`},
			wantStdout: `{"status":200,"payload":{"avgTemp":24.1,"endTime":"2026-03-02T00:00:00Z","maxTemp":31.5,"minTemp":18.25,"startTime":"2026-03-01T00:00:00Z"}}` + "\n",
			wantStderr: []string{embedded, "sim-pnp-1"},
		},
		{
			name:       "root command with timeouts",
			args:       []string{"-device", "sim-pnp-1", "-command", "reboot", "-payload", `{"delay":3}`, "-timeout", "5", "-connect-timeout", "10"},
			wantStdout: `{"status":200,"payload":{"delay":3,"rebooting":true}}` + "\n",
			wantStderr: []string{embedded},
		},
		{
			name:       "command the device answers 400",
			args:       []string{"-device", "sim-pnp-1", "-component", "thermostat2", "-command", "getMaxMinReport", "-payload", `5`},
			wantStdout: `{"status":400,"payload":{"error":"payload must be an RFC 3339 time such as \"2026-01-01T00:00:00Z\""}}` + "\n",
			wantStderr: []string{embedded},
		},
		{
			name:       "command of an unknown component",
			args:       []string{"-device", "sim-pnp-1", "-component", "thermostat9", "-command", "getMaxMinReport"},
			wantStdout: `{"status":501,"payload":null}` + "\n",
			wantStderr: []string{embedded},
		},
		{
			name:       "command on an offline device",
			args:       []string{"-device", "sim-device-offline", "-command", "reboot"},
			wantCode:   cli.ExitFailed,
			wantStderr: []string{"404103", "DeviceNotOnline", "tracking ID ", "the command did not run"},
		},
		{
			name:       "-method and -command",
			args:       []string{"-device", "sim-pnp-1", "-method", "reboot", "-command", "reboot"},
			wantCode:   cli.ExitUsage,
			wantStderr: []string{"invoke: -method and -command are exclusive"},
		},
		{
			name:       "-module with -command",
			args:       []string{"-device", "sim-edge-1", "-module", "$edgeAgent", "-command", "ping"},
			wantCode:   cli.ExitUsage,
			wantStderr: []string{"invoke: -module cannot be used with -command"},
		},
		{
			name:       "-component without -command",
			args:       []string{"-device", "sim-pnp-1", "-component", "thermostat1", "-method", "reboot"},
			wantCode:   cli.ExitUsage,
			wantStderr: []string{"invoke: -component needs -command"},
		},
		{
			name:       "command name not DTDL",
			args:       []string{"-device", "sim-pnp-1", "-command", "get-report"},
			wantCode:   cli.ExitUsage,
			wantStderr: []string{"CommandParams.Name", "DTDL"},
		},
		{
			name:       "component name not DTDL",
			args:       []string{"-device", "sim-pnp-1", "-component", "1st", "-command", "run"},
			wantCode:   cli.ExitUsage,
			wantStderr: []string{"CommandParams.Component"},
		},

		// Bad flags or input, refused before any client exists.
		{
			name:       "missing -device",
			args:       []string{"-method", "reboot"},
			wantCode:   cli.ExitUsage,
			wantStderr: []string{"invoke: -device is required"},
		},
		{
			name:       "missing -method",
			args:       []string{"-device", "sim-device-1"},
			wantCode:   cli.ExitUsage,
			wantStderr: []string{"invoke: -method is required"},
		},
		{
			name:       "invalid JSON payload",
			args:       []string{"-device", "sim-device-1", "-method", "reboot", "-payload", `{"delay":`},
			wantCode:   cli.ExitUsage,
			wantStderr: []string{`invoke: -payload is not valid JSON: {"delay":`},
		},
		{
			name:       "empty payload",
			args:       []string{"-device", "sim-device-1", "-method", "reboot", "-payload", ""},
			wantCode:   cli.ExitUsage,
			wantStderr: []string{"invoke: -payload is not valid JSON"},
		},
		{
			name:       "unexpected argument",
			args:       []string{"-device", "sim-device-1", "-method", "reboot", "now"},
			wantCode:   cli.ExitUsage,
			wantStderr: []string{`invoke: unexpected argument "now"`},
		},
		{
			name:       "unknown flag",
			args:       []string{"-device", "sim-device-1", "-method", "reboot", "-retries", "3"},
			wantCode:   cli.ExitUsage,
			wantStderr: []string{"flag provided but not defined: -retries", "usage: invoke"},
		},
		{
			name:       "timeout not a number",
			args:       []string{"-device", "sim-device-1", "-method", "reboot", "-timeout", "5s"},
			wantCode:   cli.ExitUsage,
			wantStderr: []string{`invalid value "5s" for flag -timeout`},
		},
		{
			name:       "help",
			args:       []string{"-h"},
			wantCode:   cli.ExitUsage,
			wantStderr: []string{"usage: invoke -device ID", "-connect-timeout"},
		},
		{
			name:       "both -connection-string and -hub",
			args:       []string{"-connection-string", "HostName=h.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=" + httpmock.NewKey(), "-hub", "h.azure-devices.net", "-device", "d1", "-method", "reboot"},
			wantCode:   cli.ExitUsage,
			wantStderr: []string{"not both"},
		},
		{
			// $IOTHUB_CONNECTION_STRING is read through getenv: with
			// nothing there the embedded hub would answer 200.
			name:       "connection string from getenv",
			args:       []string{"-device", "sim-device-1", "-method", "reboot"},
			env:        map[string]string{"IOTHUB_CONNECTION_STRING": "HostName=localhost:1;SharedAccessKeyName=service"},
			wantCode:   cli.ExitUsage,
			wantStderr: []string{"invalid connection string: neither SharedAccessKey nor SharedAccessSignature is present"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := runInProcess(t, tt.args, tt.env)
			check(t, got, tt.wantCode, tt.wantStdout, tt.wantStderr)
			if tt.wantCode == cli.ExitUsage && strings.Contains(got.stderr, embedded) {
				t.Errorf("started the embedded hub for bad input:\n%s", got.stderr)
			}
		})
	}
}

// Running the program in a subprocess. Go reads SSL_CERT_FILE once per
// process, so the tests that need the system trust store to hold a test
// hub's certificate run the test binary again, as the program.

// mainProcessEnv marks the test binary run as the program.
const mainProcessEnv = "IOTHUB_INVOKE_TEST_MAIN_PROCESS"

// TestMainProcess is the program when the test binary runs as a
// subprocess: its arguments follow "--".
func TestMainProcess(t *testing.T) {
	if os.Getenv(mainProcessEnv) != "1" {
		t.Skip("runs only as the subprocess of other tests")
	}
	i := slices.Index(os.Args, "--")
	if i < 0 {
		t.Fatal("no -- before the program's arguments")
	}
	os.Args = append([]string{"invoke"}, os.Args[i+1:]...)
	main() // exits
}

// runSubprocess runs the program in a new process whose environment is
// ours without any credential or trust store setting, plus env. The
// certificate directories are replaced by an empty one, so that the
// system trust store is exactly SSL_CERT_FILE.
func runSubprocess(t *testing.T, args []string, env map[string]string) result {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], append([]string{"-test.run=^TestMainProcess$", "--"}, args...)...)
	// Under -race a process with several threads sleeps a second before it
	// exits, unless GORACE says otherwise.
	gorace := "atexit_sleep_ms=0"
	for _, kv := range os.Environ() {
		switch k, v, _ := strings.Cut(kv, "="); k {
		case "IOTHUB_CONNECTION_STRING", "SSL_CERT_FILE", "SSL_CERT_DIR", mainProcessEnv:
		case "GORACE":
			gorace = v + " " + gorace
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, mainProcessEnv+"=1", "SSL_CERT_DIR="+t.TempDir(), "GORACE="+gorace)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
	default:
		t.Fatalf("run the program: %v; stderr:\n%s", err, &stderr)
	}
	return result{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}
}

// testHub is an httpmock hub whose HostName, localhost:PORT, is where it
// listens, so that its connection string alone reaches it, and whose
// certificate is in a PEM file for SSL_CERT_FILE.
type testHub struct {
	*httpmock.Hub
	certFile string
}

// startHub starts a test hub with device d1, which answers "reboot" and
// the command "getMaxMinReport" of its component "thermostat1". The
// port is picked before the hub exists; another process may take it
// meanwhile, so a second port is tried.
func startHub(t *testing.T) testHub {
	t.Helper()
	var lastErr error
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		l.Close()

		h := httpmock.New(&httpmock.Options{HostName: "localhost:" + port})
		d := h.AddDevice("d1", nil)
		d.HandleMethod("reboot", func(context.Context, httpmock.MethodCall) httpmock.MethodResponse {
			return httpmock.MethodResponse{Status: 200, Payload: json.RawMessage(`{"rebooting":true}`)}
		})
		d.HandleMethod("thermostat1*getMaxMinReport", func(context.Context, httpmock.MethodCall) httpmock.MethodResponse {
			return httpmock.MethodResponse{Status: 200, Payload: json.RawMessage(`{"maxTemp":31.5}`)}
		})
		srv, err := h.StartTLSOn("127.0.0.1:" + port)
		if err != nil {
			lastErr = err
			continue
		}
		t.Cleanup(srv.Close)
		if want := "https://localhost:" + port; srv.URL != want {
			t.Fatalf("hub URL %q, want %q", srv.URL, want)
		}
		certFile := filepath.Join(t.TempDir(), "hub.pem")
		if err := os.WriteFile(certFile, srv.CertPEM(), 0o600); err != nil {
			t.Fatal(err)
		}
		return testHub{h, certFile}
	}
	t.Fatalf("start the test hub: %v", lastErr)
	return testHub{}
}

// TestSystemTrustStore runs the program against a hub whose certificate is
// trusted only through SSL_CERT_FILE, with a connection string naming
// localhost:PORT taken from $IOTHUB_CONNECTION_STRING.
func TestSystemTrustStore(t *testing.T) {
	t.Parallel()
	t.Run("trusted", func(t *testing.T) {
		t.Parallel()
		hub := startHub(t)
		got := runSubprocess(t, []string{"-device", "d1", "-method", "reboot"}, map[string]string{
			"SSL_CERT_FILE":            hub.certFile,
			"IOTHUB_CONNECTION_STRING": hub.ConnectionString("service"),
		})
		check(t, got, cli.ExitOK, `{"status":200,"payload":{"rebooting":true}}`+"\n", nil)
		if got.stderr != "" {
			t.Errorf("stderr:\n%s", got.stderr)
		}
		if n := hub.Deliveries("d1", ""); n != 1 {
			t.Errorf("d1 got %d deliveries, want 1", n)
		}
	})
	t.Run("untrusted", func(t *testing.T) {
		t.Parallel()
		hub := startHub(t)
		// The trust store holds another hub's certificate: not this one.
		other := startHub(t)
		got := runSubprocess(t, []string{"-device", "d1", "-method", "reboot"}, map[string]string{
			"SSL_CERT_FILE":            other.certFile,
			"IOTHUB_CONNECTION_STRING": hub.ConnectionString("service"),
		})
		check(t, got, cli.ExitFailed, "", []string{"certificate signed by unknown authority", "the method did not run"})
		if n := hub.Deliveries("d1", ""); n != 0 {
			t.Errorf("d1 got %d deliveries, want 0", n)
		}
		if n := len(hub.Requests()); n != 0 {
			t.Errorf("hub got %d requests, want 0", n)
		}
	})
}

// TestRunSendsNothing runs bad input that gets as far as a client (or its
// construction) against a hub the program trusts and can reach: it must
// exit 2 with no request sent. The first case, valid, shows that a request
// would have been seen.
func TestRunSendsNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// args follow -connection-string; "{host}" and "{key}" are the
		// hub's host name and service key.
		connectionString string
		args             []string
		wantCode         int
		wantStdout       string
		wantStderr       []string
		wantRequests     int
	}{
		{
			name:             "valid (control)",
			connectionString: "HostName={host};SharedAccessKeyName=service;SharedAccessKey={key}",
			args:             []string{"-device", "d1", "-method", "reboot"},
			wantStdout:       `{"status":200,"payload":{"rebooting":true}}` + "\n",
			wantRequests:     1,
		},
		{
			name:             "timeout below 5",
			connectionString: "HostName={host};SharedAccessKeyName=service;SharedAccessKey={key}",
			args:             []string{"-device", "d1", "-method", "reboot", "-timeout", "3"},
			wantCode:         cli.ExitUsage,
			wantStderr:       []string{"-timeout must be 0", "within [5, 300]; got 3"},
		},
		{
			name:             "connect timeout above 300",
			connectionString: "HostName={host};SharedAccessKeyName=service;SharedAccessKey={key}",
			args:             []string{"-device", "d1", "-method", "reboot", "-connect-timeout", "301"},
			wantCode:         cli.ExitUsage,
			wantStderr:       []string{"-connect-timeout must be within [0, 300]; got 301"},
		},
		{
			name:             "invalid method name",
			connectionString: "HostName={host};SharedAccessKeyName=service;SharedAccessKey={key}",
			args:             []string{"-device", "d1", "-method", "re boot"},
			wantCode:         cli.ExitUsage,
			wantStderr:       []string{"invalid MethodParams.Name"},
		},
		{
			name:             "malformed connection string",
			connectionString: "HostName={host};SharedAccessKeyName=service;SharedAccessKey",
			args:             []string{"-device", "d1", "-method", "reboot"},
			wantCode:         cli.ExitUsage,
			wantStderr:       []string{"invoke: auth: invalid connection string"},
		},
		{
			name:             "command (control)",
			connectionString: "HostName={host};SharedAccessKeyName=service;SharedAccessKey={key}",
			args:             []string{"-device", "d1", "-component", "thermostat1", "-command", "getMaxMinReport"},
			wantStdout:       `{"status":200,"payload":{"maxTemp":31.5}}` + "\n",
			wantRequests:     1,
		},
		{
			name:             "command on a module",
			connectionString: "HostName={host};SharedAccessKeyName=service;SharedAccessKey={key}",
			args:             []string{"-device", "d1", "-module", "m1", "-command", "getMaxMinReport"},
			wantCode:         cli.ExitUsage,
			wantStderr:       []string{"-module cannot be used with -command"},
		},
		{
			name:             "invalid command name",
			connectionString: "HostName={host};SharedAccessKeyName=service;SharedAccessKey={key}",
			args:             []string{"-device", "d1", "-component", "thermo*stat1", "-command", "getMaxMinReport"},
			wantCode:         cli.ExitUsage,
			wantStderr:       []string{"invalid CommandParams.Component"},
		},
		{
			name:             "device connection string",
			connectionString: "HostName={host};DeviceId=d1;SharedAccessKey={key}",
			args:             []string{"-device", "d1", "-method", "reboot"},
			wantCode:         cli.ExitUsage,
			wantStderr:       []string{"this is a device connection string (it has DeviceId)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t)
			p, _ := hub.Policy("service")
			cs := strings.NewReplacer("{host}", hub.HostName(), "{key}", p.Key).Replace(tt.connectionString)
			got := runSubprocess(t, append([]string{"-connection-string", cs}, tt.args...), map[string]string{"SSL_CERT_FILE": hub.certFile})
			check(t, got, tt.wantCode, tt.wantStdout, tt.wantStderr)
			if n := len(hub.Requests()); n != tt.wantRequests {
				t.Errorf("hub got %d requests, want %d", n, tt.wantRequests)
			}
			if strings.Contains(got.stderr, p.Key) {
				t.Errorf("stderr quotes the key:\n%s", got.stderr)
			}
		})
	}
}
