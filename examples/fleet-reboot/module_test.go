package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/examples/internal/simhub"
	"github.com/hubkit/iothub/internal/testkit/syncbuf"
	"github.com/hubkit/iothub/service"
)

// TestModuleRestart restarts a module on every Edge device a query
// selects: one call per device on its $edgeAgent, a report keyed by device
// and module, a resume that calls nobody again, and an agent's failure
// reported as the device's answer.
func TestModuleRestart(t *testing.T) {
	t.Parallel()
	sim := startSim(t, &simhub.Options{Fleet: 5, Edge: 3})
	mock := sim.Hub()
	report := filepath.Join(t.TempDir(), "r.jsonl")
	args := []string{"-query", "SELECT * FROM devices WHERE capabilities.iotEdge = true", "-module", "$edgeAgent",
		"-method", "RestartModule", "-payload", `{"schemaVersion":"1.0","id":"tempSensor"}`, "-report", report}
	got := runSim(t.Context(), sim, args...)
	if got.code != cli.ExitOK {
		t.Fatalf("exit %d, want 0; stderr:\n%s", got.code, got.stderr)
	}
	edgeIDs := []string{"sim-edge-1", "sim-edge-00001", "sim-edge-00002", "sim-edge-00003"}
	var want, gotLines []line
	for _, id := range edgeIDs {
		want = append(want, line{DeviceID: id, ModuleID: "$edgeAgent", Outcome: service.OutcomeSucceeded, Status: 200, Payload: []byte("null"), Attempts: 1})
	}
	for _, l := range readReportFile(t, report) {
		l.MS = 0
		gotLines = append(gotLines, l)
	}
	byKey := func(a, b line) bool { return a.DeviceID < b.DeviceID }
	if diff := cmp.Diff(want, gotLines, cmpSortLines(byKey)); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	for _, id := range edgeIDs {
		if n := mock.Deliveries(id, "$edgeAgent", "RestartModule"); n != 1 {
			t.Errorf("%s: %d RestartModule deliveries, want 1", id, n)
		}
		if n := mock.Device(id).Edge().Restarts("tempSensor"); n != 1 {
			t.Errorf("%s: tempSensor restarted %d times, want 1", id, n)
		}
	}
	if n := mock.Deliveries("sim-device-1", "", ""); n != 0 {
		t.Errorf("a device that is not an Edge device got %d calls", n)
	}

	// Resumed: every target succeeded, nobody is called again.
	got = runSim(t.Context(), sim, append(args, "-resume")...)
	if got.code != cli.ExitOK {
		t.Fatalf("resume: exit %d, want 0; stderr:\n%s", got.code, got.stderr)
	}
	for _, id := range edgeIDs {
		if n := mock.Deliveries(id, "$edgeAgent", "RestartModule"); n != 1 {
			t.Errorf("after resume, %s: %d deliveries, want 1", id, n)
		}
	}

	// A module the deployments lack: the agents answer 500, a device error.
	report2 := filepath.Join(t.TempDir(), "r2.jsonl")
	got = runSim(t.Context(), sim, "-devices", "sim-edge-1,sim-edge-00001", "-module", "$edgeAgent", "-method", "RestartModule",
		"-payload", `{"schemaVersion":"1.0","id":"nothere"}`, "-report", report2)
	if got.code != cli.ExitFailed {
		t.Errorf("exit %d, want 1; stderr:\n%s", got.code, got.stderr)
	}
	for _, l := range readReportFile(t, report2) {
		if l.Outcome != service.OutcomeDeviceError || l.Status != 500 || !strings.Contains(string(l.Payload), "not found in the current environment") {
			t.Errorf("line %+v, want device-error with the agent's 500", l)
		}
	}
}

// TestModuleFlags checks what -module refuses.
func TestModuleFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-module", "$edgeAgent", "-mode", "job"}, "-module goes with -mode client"},
		{[]string{"-module", "$edgeAgent", "-query", "SELECT * FROM devices.modules"}, "-module needs a query FROM devices"},
		{[]string{"-module", "bad module"}, `-module "bad module"`},
	}
	for _, tt := range tests {
		var stderr syncbuf.Buffer
		code := runWith(t.Context(), tt.args, deps{getenv: noEnv, stdout: &stderr, stderr: &stderr})
		if code != cli.ExitUsage || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tt.args, code, stderr.String(), tt.want)
		}
	}
}

// cmpSortLines sorts report lines before comparing them.
func cmpSortLines(less func(a, b line) bool) cmp.Option {
	return cmpopts.SortSlices(less)
}
