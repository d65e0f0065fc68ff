package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub/examples/internal/cli"
)

// result is what one run of the program left behind.
type result struct {
	code           int
	stdout, stderr string
}

func runInProcess(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, func(string) string { return "" }, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// TestRun runs the program in-process against the embedded simulated hub,
// and with bad input that it must refuse before sending.
func TestRun(t *testing.T) {
	t.Parallel()
	const embedded = "no credentials given; using the embedded simulated hub"
	const sas = "https://acct.blob.core.windows.net/logs?sv=1&sig=SECRETSIG"
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // a regular expression matched against the whole of stdout
		wantStderr []string
	}{
		{name: "ping", args: []string{"-device", "sim-edge-1", "ping"},
			wantStdout: `^sim-edge-1: the agent answered\n$`, wantStderr: []string{embedded}},
		{name: "restart", args: []string{"-device", "sim-edge-1", "restart", "tempSensor"},
			wantStdout: `^sim-edge-1: restarted tempSensor\n$`},
		{name: "logs tail", args: []string{"-device", "sim-edge-1", "logs", "tempSensor", "-tail", "2"},
			wantStdout: `^\S+Z tempSensor <4> stderr Sensor read took 2.1 s, retrying\n\S+Z tempSensor <6> stdout Sent message 2: temperature 21.6\n$`},
		{name: "logs since and level", args: []string{"-device", "sim-edge-1", "-timeout", "10", "logs", "-since", "30m", "-level", "4", ".*"},
			wantStdout: `^\S+Z filterModule <3> stderr Dropped a malformed message\n\S+Z tempSensor <4> stderr Sensor read took 2.1 s, retrying\n$`},
		{name: "upload and wait", args: []string{"-device", "sim-edge-1", "upload-logs", "tempSensor", "-sas-url", sas, "-wait"},
			wantStdout: `^task (\w+) NotStarted\ntask \w+ Completed\n$`},
		{name: "upload fails", args: []string{"-device", "sim-edge-1", "upload-logs", "tempSensor", "-sas-url", "https://acct.blob.core.windows.net/logs", "-wait"},
			wantCode: cli.ExitFailed, wantStdout: `^task \w+ NotStarted\n$`, wantStderr: []string{"Failed", "SAS URL"}},
		{name: "upload no wait", args: []string{"-device", "sim-edge-1", "upload-logs", "tempSensor", "-sas-url", sas},
			wantStdout: `^task \w+ NotStarted\n$`},

		// The agent's and the hub's failures: exit 1 with the message.
		{name: "unknown module", args: []string{"-device", "sim-edge-1", "restart", "nothere"},
			wantCode: cli.ExitFailed, wantStdout: `^$`, wantStderr: []string{"status 500", "Module nothere not found in the current environment"}},
		{name: "not an Edge device", args: []string{"-device", "sim-device-1", "ping"},
			wantCode: cli.ExitFailed, wantStdout: `^$`, wantStderr: []string{"404010", "ModuleNotFound", "tracking ID"}},
		{name: "offline", args: []string{"-device", "sim-device-offline", "restart", "x"},
			wantCode: cli.ExitFailed, wantStdout: `^$`, wantStderr: []string{"404010"}},

		// Bad input: exit 2, nothing sent.
		{name: "no device", args: []string{"ping"}, wantCode: cli.ExitUsage, wantStdout: `^$`, wantStderr: []string{"-device is required"}},
		{name: "no command", args: []string{"-device", "sim-edge-1"}, wantCode: cli.ExitUsage, wantStdout: `^$`, wantStderr: []string{"a command is required"}},
		{name: "unknown command", args: []string{"-device", "sim-edge-1", "reboot"}, wantCode: cli.ExitUsage, wantStdout: `^$`, wantStderr: []string{`unknown command "reboot"`}},
		{name: "no module", args: []string{"-device", "sim-edge-1", "restart"}, wantCode: cli.ExitUsage, wantStdout: `^$`, wantStderr: []string{"restart needs a MODULE"}},
		{name: "flag of another command", args: []string{"-device", "sim-edge-1", "restart", "x", "-tail", "3"}, wantCode: cli.ExitUsage, wantStdout: `^$`, wantStderr: []string{"restart does not take -tail"}},
		{name: "no sas url", args: []string{"-device", "sim-edge-1", "upload-logs", "x"}, wantCode: cli.ExitUsage, wantStdout: `^$`, wantStderr: []string{"needs -sas-url"}},
		{name: "http sas url", args: []string{"-device", "sim-edge-1", "upload-logs", "x", "-sas-url", "http://acct/c?sig=SECRETSIG"},
			wantCode: cli.ExitUsage, wantStdout: `^$`, wantStderr: []string{"https"}},
		{name: "negative tail", args: []string{"-device", "sim-edge-1", "logs", "x", "-tail", "-1"}, wantCode: cli.ExitUsage, wantStdout: `^$`, wantStderr: []string{"Filter.Tail"}},
		{name: "agent restart", args: []string{"-device", "sim-edge-1", "restart", "edgeAgent"}, wantCode: cli.ExitUsage, wantStdout: `^$`, wantStderr: []string{"AllowAgent"}},
		{name: "module id", args: []string{"-device", "sim-edge-1", "restart", "$edgeHub"}, wantCode: cli.ExitUsage, wantStdout: `^$`, wantStderr: []string{"not a module id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := runInProcess(t, tt.args...)
			if got.code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", got.code, tt.wantCode, got.stderr)
			}
			if !regexp.MustCompile(tt.wantStdout).MatchString(got.stdout) {
				t.Errorf("stdout %q does not match %q", got.stdout, tt.wantStdout)
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(got.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, got.stderr)
				}
			}
			if strings.Contains(got.stdout+got.stderr, "SECRETSIG") {
				t.Errorf("output shows the SAS signature:\n%s%s", got.stdout, got.stderr)
			}
		})
	}
}

// TestUsage checks that -h prints the commands.
func TestUsage(t *testing.T) {
	t.Parallel()
	got := runInProcess(t, "-h")
	if got.code != cli.ExitUsage {
		t.Errorf("exit code %d, want %d", got.code, cli.ExitUsage)
	}
	if diff := cmp.Diff(true, strings.Contains(got.stderr, "upload-logs MODULE -sas-url URL [-wait]")); diff != "" {
		t.Errorf("usage lacks upload-logs:\n%s", got.stderr)
	}
}
