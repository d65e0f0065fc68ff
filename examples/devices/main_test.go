package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/registry"
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
			code, out, errOut := runDevices(t, "-simulate", "2493", "query", "-page-size", size, "SELECT * FROM devices")
			if code != cli.ExitOK {
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
		{"stats", []string{"-simulate", "0", "stats"}, cli.ExitOK, []string{`"totalDeviceCount":7`, `"connectedDeviceCount":6`}, []string{"embedded simulated hub"}},
		{"get", []string{"-simulate", "0", "get", "sim-device-1"}, cli.ExitOK, []string{`"deviceId":"sim-device-1"`, `"etag":`}, nil},
		{"twin", []string{"-simulate", "0", "twin", "sim-edge-1"}, cli.ExitOK, []string{`"deviceId":"sim-edge-1"`, `"properties":`}, nil},
		{"create edge", []string{"-simulate", "0", "create", "new-1", "-edge"}, cli.ExitOK, []string{`"deviceId":"new-1"`, `"iotEdge":true`}, nil},
		{"create existing", []string{"-simulate", "0", "create", "sim-device-1"}, cli.ExitFailed, nil, []string{"409001", "DeviceAlreadyExists", "tracking ID"}},
		{"delete", []string{"-simulate", "0", "delete", "sim-device-2"}, cli.ExitOK, []string{`"deleted":true`}, nil},
		{"delete stale etag", []string{"-simulate", "0", "delete", "sim-device-2", "-etag", "MQ=="}, cli.ExitFailed, nil, []string{"412001", "PreconditionFailed"}},
		{"get missing", []string{"-simulate", "0", "get", "nope"}, cli.ExitFailed, nil, []string{"404001", "DeviceNotFound", "tracking ID"}},
		{"count", []string{"-simulate", "0", "query", "SELECT COUNT() AS n FROM devices"}, cli.ExitOK, []string{`{"n":7}`}, nil},
		{"bad query", []string{"-simulate", "0", "query", "SELECT * FROM nowhere"}, cli.ExitFailed, nil, []string{"400"}},
		{"no command", []string{}, cli.ExitUsage, nil, []string{"a command is required", "usage: devices"}},
		{"unknown command", []string{"frob"}, cli.ExitUsage, nil, []string{`unknown command "frob"`}},
		{"bad id", []string{"get", "a b"}, cli.ExitUsage, nil, []string{`device ID "a b"`}},
		{"two ids", []string{"get", "a", "b"}, cli.ExitUsage, nil, []string{"takes one device ID"}},
		{"flag for another command", []string{"get", "a", "-edge"}, cli.ExitUsage, nil, []string{"-edge does not apply to get"}},
		{"show-keys for another command", []string{"twin", "a", "-show-keys"}, cli.ExitUsage, nil, []string{"-show-keys does not apply to twin"}},
		{"page size", []string{"query", "-page-size", "1001", "SELECT * FROM devices"}, cli.ExitUsage, nil, []string{"-page-size must be within"}},
		{"empty query", []string{"query", " "}, cli.ExitUsage, nil, []string{"the query is empty"}},
		{"both credentials", []string{"-connection-string", "x", "-hub", "h", "stats"}, cli.ExitUsage, nil, []string{"not both"}},
		{"device connection string", []string{"-connection-string", "HostName=h.azure-devices.net;DeviceId=d;SharedAccessKey=AAAA", "stats"}, cli.ExitUsage, nil, []string{"service"}},
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
			if tt.wantCode == cli.ExitUsage && strings.Contains(errOut, "embedded simulated hub") {
				t.Errorf("bad input must be refused before a hub is touched:\n%s", errOut)
			}
		})
	}
}

// TestGetKeys checks that get prints a device's SAS keys redacted, and in
// clear only with -show-keys.
func TestGetKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		wantKeys bool
	}{
		{"redacted by default", []string{"-simulate", "0", "get", "sim-device-1"}, false},
		{"shown when asked", []string{"-simulate", "0", "get", "sim-device-1", "-show-keys"}, true},
		{"shown when asked, flag first", []string{"-simulate", "0", "get", "-show-keys", "sim-device-1"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runDevices(t, tt.args...)
			if code != cli.ExitOK {
				t.Fatalf("exit %d; stderr:\n%s", code, errOut)
			}
			var d registry.Device
			if err := json.Unmarshal([]byte(out), &d); err != nil {
				t.Fatalf("stdout %q: %v", out, err)
			}
			if d.DeviceID != "sim-device-1" || d.Authentication == nil || d.Authentication.SymmetricKey == nil {
				t.Fatalf("no device with keys in stdout:\n%s", out)
			}
			keys := *d.Authentication.SymmetricKey
			if !tt.wantKeys {
				if diff := cmp.Diff(registry.SymmetricKey{PrimaryKey: "<redacted>", SecondaryKey: "<redacted>"}, keys); diff != "" {
					t.Errorf("keys (-want +got):\n%s", diff)
				}
				return
			}
			for _, k := range []string{keys.PrimaryKey, keys.SecondaryKey} {
				if k == "" || k == "<redacted>" {
					t.Errorf("keys not shown: %+v", keys)
				}
			}
		})
	}
}
