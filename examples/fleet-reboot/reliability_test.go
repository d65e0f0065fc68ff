package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/hubkit/iothub/examples/internal/simhub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/service"
)

// programEnv makes TestFleetRebootProgram run the program's main.
const programEnv = "FLEET_REBOOT_RELIABILITY_MAIN"

// TestFleetRebootProgram is the program itself, for the tests that run it
// as a separate process and interrupt it with a real signal.
func TestFleetRebootProgram(t *testing.T) {
	if os.Getenv(programEnv) != "1" {
		t.Skip("runs only as the subprocess of other tests")
	}
	i := slices.Index(os.Args, "--")
	if i < 0 {
		t.Fatal("no -- before the program's arguments")
	}
	os.Args = append([]string{name}, os.Args[i+1:]...)
	main() // exits
}

// tlsFleet serves n fleet devices that answer "reboot" after latency, on
// https://localhost:PORT, and returns the hub and a file holding its
// certificate, for a process that trusts it through SSL_CERT_FILE.
func tlsFleet(t *testing.T, n int, latency time.Duration) (*httpmock.Hub, string) {
	t.Helper()
	var lastErr error
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		h := httpmock.New(&httpmock.Options{HostName: "localhost:" + port})
		for i := 1; i <= n; i++ {
			h.AddDevice(FleetID(i), &httpmock.DeviceOptions{Latency: latency}).HandleMethod("reboot",
				func(context.Context, httpmock.MethodCall) httpmock.MethodResponse {
					return httpmock.MethodResponse{Status: 200, Payload: json.RawMessage(`{"rebooting":true}`)}
				})
		}
		srv, err := h.StartTLSOn("127.0.0.1:" + port)
		if err != nil {
			lastErr = err
			continue
		}
		t.Cleanup(srv.Close)
		certFile := filepath.Join(t.TempDir(), "hub.pem")
		if err := os.WriteFile(certFile, srv.CertPEM(), 0o600); err != nil {
			t.Fatal(err)
		}
		return h, certFile
	}
	t.Fatalf("start the hub: %v", lastErr)
	return nil, ""
}

// program starts the program as a separate process against hub.
func program(t *testing.T, hub *httpmock.Hub, certFile string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], append([]string{"-test.run=^TestFleetRebootProgram$", "--"}, args...)...)
	gorace := "atexit_sleep_ms=0"
	for _, kv := range os.Environ() {
		switch k, v, _ := strings.Cut(kv, "="); k {
		case "IOTHUB_CONNECTION_STRING", "SSL_CERT_FILE", "SSL_CERT_DIR", programEnv:
		case "GORACE":
			gorace = v + " " + gorace
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, programEnv+"=1", "GORACE="+gorace, "SSL_CERT_DIR="+t.TempDir(), "SSL_CERT_FILE="+certFile,
		"IOTHUB_CONNECTION_STRING="+hub.ConnectionString("service"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &stderr
}

// exitCode waits for cmd and returns its exit code.
func exitCode(t *testing.T, cmd *exec.Cmd, stderr *bytes.Buffer) int {
	t.Helper()
	err := cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.Exited()) {
		t.Fatalf("run the program: %v; stderr:\n%s", err, stderr)
	}
	return cmd.ProcessState.ExitCode()
}

// TestSIGINTAndResume runs the program as a user would, interrupts it with
// SIGINT mid-run, then resumes it from its report: every device that was
// rebooted is in the first report, and after the resumed run every device
// was rebooted exactly once. A second SIGINT abandons the calls in flight:
// those are reported unknown and the resumed run leaves them alone.
func TestSIGINTAndResume(t *testing.T) {
	t.Parallel()
	for _, signals := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d interrupts", signals), func(t *testing.T) {
			t.Parallel()
			const n = 40
			hub, certFile := tlsFleet(t, n, 300*time.Millisecond)
			ids := make([]string, n)
			for i := range ids {
				ids[i] = FleetID(i + 1)
			}
			report := filepath.Join(t.TempDir(), "r.jsonl")
			args := []string{"-devices", strings.Join(ids, ","), "-report", report, "-concurrency", "4"}
			cmd, stderr := program(t, hub, certFile, args...)
			for len(hub.Calls()) < 8 {
				time.Sleep(5 * time.Millisecond)
			}
			for range signals {
				if err := cmd.Process.Signal(os.Interrupt); err != nil {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if code := exitCode(t, cmd, stderr); code != cli.ExitFailed || !strings.Contains(stderr.String(), "interrupted") {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, cli.ExitFailed, stderr)
			}
			first := byDevice(readReportFile(t, report))
			unknown := 0
			for _, id := range ids {
				d := hub.Deliveries(id, "")
				l, ok := first[id]
				switch {
				case d > 1:
					t.Errorf("%s rebooted %d times", id, d)
				case d == 1 && !ok:
					t.Errorf("%s was rebooted but is not in the report", id)
				case ok && l.Outcome == service.OutcomeSucceeded && d != 1:
					t.Errorf("%s reported succeeded with %d deliveries", id, d)
				case ok && l.Outcome == service.OutcomeNotDelivered && d != 0:
					t.Errorf("%s reported not-delivered with %d deliveries", id, d)
				}
				if l.Outcome == service.OutcomeUnknown {
					unknown++
				}
			}
			if len(first) == n {
				t.Fatalf("the run was not interrupted: %d report lines", len(first))
			}
			if signals == 2 && unknown == 0 {
				t.Errorf("the second interrupt abandoned no call; stderr:\n%s", stderr)
			}

			cmd, stderr = program(t, hub, certFile, append(args, "-resume", "-concurrency", "16")...)
			code := exitCode(t, cmd, stderr)
			final := byDevice(readReportFile(t, report))
			for _, id := range ids {
				d := hub.Deliveries(id, "")
				if first[id].Outcome == service.OutcomeUnknown {
					if d > 1 || final[id].Outcome != service.OutcomeUnknown {
						t.Errorf("%s: unknown before resume; now %d deliveries, %+v", id, d, final[id])
					}
					continue
				}
				if d != 1 || final[id].Outcome != service.OutcomeSucceeded {
					t.Errorf("%s: %d deliveries, last line %+v", id, d, final[id])
				}
			}
			// Every target the resumed run invoked succeeded; the unknown
			// ones it skipped are counted apart, and keep the exit at 1
			// until they are resolved.
			want := cli.ExitOK
			if unknown > 0 {
				want = cli.ExitFailed
				if !strings.Contains(stderr.String(), fmt.Sprintf("%d targets were skipped because an earlier run left their outcome unknown", unknown)) {
					t.Errorf("resume: stderr does not count the skipped unknown targets:\n%s", stderr)
				}
			}
			if code != want {
				t.Errorf("resume: exit %d, want %d; stderr:\n%s", code, want, stderr)
			}
		})
	}
}

// TestHubDisappearsWithListedTargets takes the hub away mid-run: with the
// targets given as a list, every one of them is still in the report, and
// none is reported delivered without having been.
func TestHubDisappearsWithListedTargets(t *testing.T) {
	t.Parallel()
	const n = 30
	sim := startSim(t, &simhub.Options{Fleet: n})
	mock := sim.Hub()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = FleetID(i + 1)
		mock.Device(ids[i]).SetLatency(50 * time.Millisecond)
	}
	go func() {
		for len(mock.Calls()) < 6 {
			time.Sleep(2 * time.Millisecond)
		}
		sim.Close()
	}()
	report := filepath.Join(t.TempDir(), "r.jsonl")
	got := runSim(t.Context(), sim, "-devices", strings.Join(ids, ","), "-report", report, "-concurrency", "30", "-rate", "100")
	if got.code != cli.ExitFailed {
		t.Errorf("exit %d; stderr:\n%s", got.code, got.stderr)
	}
	lines := readReportFile(t, report)
	m := byDevice(lines)
	if len(lines) != n || len(m) != n {
		t.Errorf("report has %d lines for %d devices, want %d each", len(lines), len(m), n)
	}
	notDelivered := 0
	for _, id := range ids {
		d := mock.Deliveries(id, "", "")
		l, ok := m[id]
		switch {
		case !ok:
			t.Errorf("%s is not in the report", id)
		case d > 1:
			t.Errorf("%s delivered %d times", id, d)
		case l.Outcome == service.OutcomeSucceeded && d != 1:
			t.Errorf("%s succeeded with %d deliveries", id, d)
		case l.Outcome == service.OutcomeNotDelivered && d != 0:
			t.Errorf("%s not-delivered with %d deliveries", id, d)
		}
		if l.Outcome == service.OutcomeNotDelivered {
			notDelivered++
		}
	}
	if notDelivered == 0 {
		t.Errorf("no target met the closed hub: %+v", m)
	}
}

// FuzzReadReport feeds arbitrary files to the report reader that -resume
// uses: it never panics, skips exactly the targets whose last complete line
// says succeeded (or unknown, unless retryUnknown), and a result appended
// after the file (as a resumed run appends) is read back.
func FuzzReadReport(f *testing.F) {
	f.Add([]byte(`{"deviceId":"d1","outcome":"succeeded","status":200,"attempts":1,"ms":3}`+"\n"), false)
	f.Add([]byte(`{"deviceId":"d1","outcome":"unknown","attempts":1,"ms":3}`+"\n"+`{"deviceId":"d2","moduleId":"m","outcome":"not-delivered","errorCode":404103,"attempts":1,"ms":1}`+"\n"), true)
	f.Add([]byte(`{"deviceId":"d1","outcome":"succeeded","attempts":1,"ms":3}`+"\n"+`{"deviceId":"d1","outcome":"not-delivered","attempts":1,"ms":3}`+"\n"), false)
	f.Add([]byte(`{"deviceId":"d3","outcome":"succ`), false)
	f.Add([]byte("\n\n  \nnot json\n[1,2]\n{}\n"), false)
	f.Add([]byte("{\"deviceId\":\"d\\u0000\",\"outcome\":\"succeeded\"}\r\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, retryUnknown bool) {
		file := filepath.Join(t.TempDir(), "r.jsonl")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		done, warn, err := readReport(file, retryUnknown)
		if err != nil {
			t.Fatal(err)
		}
		want := make(map[service.Target]service.Outcome)
		for raw := range bytes.Lines(data) {
			if !bytes.HasSuffix(raw, []byte("\n")) {
				break
			}
			var l line
			if json.Unmarshal(raw, &l) != nil || l.DeviceID == "" || l.Outcome == "" {
				continue
			}
			tg := service.Target{DeviceID: l.DeviceID, ModuleID: l.ModuleID}
			if l.Outcome == service.OutcomeSucceeded || (l.Outcome == service.OutcomeUnknown && !retryUnknown) {
				want[tg] = l.Outcome
			} else {
				delete(want, tg)
			}
		}
		if diff := cmp.Diff(want, done); diff != "" {
			t.Errorf("done (-want +got):\n%s", diff)
		}
		for _, w := range warn {
			if len(w) > len(file)+100 {
				t.Errorf("warning too long: %q", w)
			}
		}

		// Append one result as a resumed run does, and read it back.
		rw, err := openReport(file, true)
		if err != nil {
			t.Fatal(err)
		}
		rw.write(service.Result{Target: service.Target{DeviceID: "appended-device"}, Outcome: service.OutcomeSucceeded, Status: 200, Attempts: 1}, false)
		if err := rw.close(); err != nil {
			t.Fatal(err)
		}
		done, _, err = readReport(file, retryUnknown)
		if err != nil {
			t.Fatal(err)
		}
		if done[service.Target{DeviceID: "appended-device"}] != service.OutcomeSucceeded {
			t.Errorf("the appended result was not read back from %q", data)
		}
	})
}
