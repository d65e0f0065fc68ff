package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func noEnv(string) string { return "" }

func runDevices(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, noEnv, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestQueryListsEveryDeviceOnce(t *testing.T) {
	t.Parallel()
	for _, size := range []string{"1", "7", "100", "1000"} {
		t.Run("page size "+size, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runDevices(t, "-simulate", "2494", "query", "-page-size", size, "SELECT * FROM devices")
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			seen := map[string]int{}
			for line := range strings.Lines(out) {
				var row struct {
					DeviceID string `json:"deviceId"`
				}
				if err := json.Unmarshal([]byte(line), &row); err != nil || row.DeviceID == "" {
					t.Fatalf("line %q: %v", line, err)
				}
				seen[row.DeviceID]++
			}
			if len(seen) != 2500 {
				t.Errorf("%d devices, want 2500", len(seen))
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("%s listed %d times", id, n)
				}
			}
		})
	}
}

func TestCommands(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    []string
		wantStderr []string
	}{
		{"stats", []string{"-simulate", "0", "stats"}, exitOK, []string{`"totalDeviceCount":6`, `"connectedDeviceCount":5`}, []string{"embedded simulated hub"}},
		{"get", []string{"-simulate", "0", "get", "sim-device-1"}, exitOK, []string{`"deviceId":"sim-device-1"`, `"etag":`}, nil},
		{"twin", []string{"-simulate", "0", "twin", "sim-edge-1"}, exitOK, []string{`"deviceId":"sim-edge-1"`, `"properties":`}, nil},
		{"create edge", []string{"-simulate", "0", "create", "new-1", "-edge"}, exitOK, []string{`"deviceId":"new-1"`, `"iotEdge":true`}, nil},
		{"create existing", []string{"-simulate", "0", "create", "sim-device-1"}, exitHubError, nil, []string{"409001", "DeviceAlreadyExists", "tracking ID"}},
		{"delete", []string{"-simulate", "0", "delete", "sim-device-2"}, exitOK, []string{`"deleted":true`}, nil},
		{"delete stale etag", []string{"-simulate", "0", "delete", "sim-device-2", "-etag", "MQ=="}, exitHubError, nil, []string{"412001", "PreconditionFailed"}},
		{"get missing", []string{"-simulate", "0", "get", "nope"}, exitHubError, nil, []string{"404001", "DeviceNotFound", "tracking ID"}},
		{"count", []string{"-simulate", "0", "query", "SELECT COUNT() AS n FROM devices"}, exitOK, []string{`{"n":6}`}, nil},
		{"bad query", []string{"-simulate", "0", "query", "SELECT * FROM nowhere"}, exitHubError, nil, []string{"400"}},
		{"no command", []string{}, exitUsage, nil, []string{"a command is required", "usage: devices"}},
		{"unknown command", []string{"frob"}, exitUsage, nil, []string{`unknown command "frob"`}},
		{"bad id", []string{"get", "a b"}, exitUsage, nil, []string{`device ID "a b"`}},
		{"two ids", []string{"get", "a", "b"}, exitUsage, nil, []string{"takes one device ID"}},
		{"flag for another command", []string{"get", "a", "-edge"}, exitUsage, nil, []string{"-edge does not apply to get"}},
		{"page size", []string{"query", "-page-size", "1001", "SELECT * FROM devices"}, exitUsage, nil, []string{"-page-size must be within"}},
		{"empty query", []string{"query", " "}, exitUsage, nil, []string{"the query is empty"}},
		{"both credentials", []string{"-connection-string", "x", "-hub", "h", "stats"}, exitUsage, nil, []string{"not both"}},
		{"device connection string", []string{"-connection-string", "HostName=h.azure-devices.net;DeviceId=d;SharedAccessKey=AAAA", "stats"}, exitUsage, nil, []string{"service"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runDevices(t, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, errOut)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %s:\n%s", w, out)
				}
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if tt.wantCode == exitUsage && strings.Contains(errOut, "embedded simulated hub") {
				t.Errorf("bad input must be refused before a hub is touched:\n%s", errOut)
			}
		})
	}
}
