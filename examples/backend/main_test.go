package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/internal/testkit/syncbuf"
)

// TestRunFlags checks that bad flags exit 2 before anything starts.
func TestRunFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"timeout below the hub's range", []string{"-timeout", "2"}, "-timeout or -connect-timeout: iothub: MethodParams.Validate: invalid MethodParams.TimeoutInSeconds"},
		{"connect timeout above the hub's range", []string{"-connect-timeout", "301"}, "invalid MethodParams.ConnectTimeoutInSeconds"},
		{"unexpected argument", []string{"serve"}, `unexpected argument "serve"`},
		{"unknown flag", []string{"-port", "80"}, "flag provided but not defined: -port"},
		{"both credentials", []string{"-connection-string", "HostName=h.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=a2V5", "-hub", "h.azure-devices.net"}, "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, func(string) string { return "" }, &stdout, &stderr)
			if code != cli.ExitUsage {
				t.Errorf("exit code %d, want %d", code, cli.ExitUsage)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing: it must not serve", stdout.String())
			}
		})
	}
}

// TestRunServes runs the program on the embedded simulated hub: it prints
// its URL, serves a reboot, and stops cleanly when its context ends.
func TestRunServes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr syncbuf.Buffer
	var wg sync.WaitGroup
	code := -1
	wg.Go(func() {
		code = run(ctx, []string{"-addr", "127.0.0.1:0"}, func(string) string { return "" }, pw, &stderr)
		pw.Close()
	})

	url, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		wg.Wait()
		t.Fatalf("no URL on stdout (%v); exit code %d, stderr:\n%s", err, code, stderr.String())
	}
	url = strings.TrimSpace(url)
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	resp, err := http.Post(url+"/devices/sim-device-1/reboot", "application/json", strings.NewReader(`{"delay":5}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	const want = `{"deviceId":"sim-device-1","outcome":"answered","status":200,"payload":{"delay":5,"rebooting":true}}` + "\n"
	if resp.StatusCode != http.StatusOK || string(body) != want {
		t.Errorf("reboot: %d %s, want 200 %s", resp.StatusCode, body, want)
	}

	cancel()
	wg.Wait()
	if code != cli.ExitOK {
		t.Errorf("exit code %d after cancel, want %d; stderr:\n%s", code, cli.ExitOK, stderr.String())
	}
	if !strings.Contains(stderr.String(), "embedded simulated hub") {
		t.Errorf("stderr does not say it uses the embedded hub:\n%s", stderr.String())
	}
}
