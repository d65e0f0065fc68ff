package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/examples/internal/simhub"
	"github.com/hubkit/iothub/iothubtest"
)

// step is one run of the program in a test, and what it must leave behind.
// In args, "{etag:N}" stands for the first ETag (W/"…") that step N
// printed on stdout.
type step struct {
	args       []string
	wantCode   int
	wantStdout string   // a regular expression matched against the whole of stdout
	wantStderr []string // each must appear in stderr
	// wantRequests are the requests the step sent, as "METHOD path".
	wantRequests []string
}

// result is what one run of the program left behind.
type result struct {
	code           int
	stdout, stderr string
}

func runOn(t *testing.T, sim *simhub.Hub, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runWith(t.Context(), args, deps{getenv: func(string) string { return "" }, stdout: &stdout, stderr: &stderr, sim: sim})
	return result{code, stdout.String(), stderr.String()}
}

var etagRE = regexp.MustCompile(`W/"[^"]*"`)

const (
	ts      = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`
	twinOut = `^device sim-pnp-1\n` +
		`model  dtmi:com:example:TemperatureController;2\n` +
		`etag   W/"[^"]+"\n` +
		`root:\n` +
		`  serialNumber: "SIM-PNP-0001" \(reported ` + ts + `\)\n` +
		`thermostat1:\n` +
		`  maxTempSinceLastReboot: 23.25 \(reported ` + ts + `\)\n` +
		`  targetTemperature: 21.5 \(ack 203 v0 "initial value"; reported ` + ts + `\)\n` +
		`thermostat2:\n` +
		`  maxTempSinceLastReboot: 20.5 \(reported ` + ts + `\)\n` +
		`  targetTemperature: 19 \(ack 203 v0 "initial value"; reported ` + ts + `\)\n$`
	etagLine = `^W/"[^"]+"\n$`
	getReq   = "GET /digitaltwins/sim-pnp-1"
	patchReq = "PATCH /digitaltwins/sim-pnp-1"
)

// TestRun runs the program in-process against the embedded simulated hub,
// each case on a hub of its own, step after step: reads, updates and what
// a later read shows of them, the hub's refusals, and bad input that must
// be refused before anything is sent.
func TestRun(t *testing.T) {
	t.Parallel()
	const embedded = "no credentials given; using the embedded simulated hub"
	tests := []struct {
		name   string
		faults []iothubtest.Fault // added to the hub before the first step
		steps  []step
	}{
		{name: "get", steps: []step{{args: []string{"get", "sim-pnp-1"},
			wantStdout: twinOut, wantStderr: []string{embedded, "sim-pnp-1"}, wantRequests: []string{getReq}}}},
		{name: "get json", steps: []step{{args: []string{"get", "-json", "sim-pnp-1"},
			wantStdout: `^\{"\$dtId":"sim-pnp-1",.*"\$model":"dtmi:com:example:TemperatureController;2".*\}\n$`, wantRequests: []string{getReq}}}},
		{name: "get a device without a model", steps: []step{{args: []string{"get", "sim-device-1"},
			wantStdout: `^device sim-device-1\nmodel  \(none announced\)\netag   W/"[^"]+"\nroot:\n  \(no properties\)\n$`}}},
		{name: "set replaces a reported property, adds a new one, and get shows the desired values", steps: []step{
			{args: []string{"set", "sim-pnp-1", "-component", "thermostat1", "targetTemperature=22.5", `mode={"level":2,"eco":true}`},
				wantStdout:   etagLine,
				wantStderr:   []string{"sim-pnp-1: replace /thermostat1/targetTemperature = 22.5", `sim-pnp-1: add /thermostat1/mode = {"level":2,"eco":true}`},
				wantRequests: []string{getReq, patchReq}},
			{args: []string{"get", "sim-pnp-1"},
				wantStdout: `\nthermostat1:\n` +
					`  maxTempSinceLastReboot: 23.25 \(reported ` + ts + `\)\n` +
					`  mode: \(not reported\) \(desired \{"eco":true,"level":2\} v2, pending\)\n` +
					`  targetTemperature: 21.5 \(desired 22.5 v2, pending; ack 203 v0 "initial value"; reported ` + ts + `\)\n` +
					`thermostat2:\n`},
		}},
		{name: "set a root property, with flags after the assignment", steps: []step{
			{args: []string{"set", "sim-pnp-1", `label="lab \"A\""`, "serialNumber=7", "-if-match", "*"},
				wantStdout: etagLine, wantStderr: []string{`add /label = "lab \"A\""`, "replace /serialNumber = 7"}},
			{args: []string{"get", "sim-pnp-1"},
				wantStdout: `\nroot:\n  label: \(not reported\) \(desired "lab \\"A\\"" v2, pending\)\n  serialNumber: "SIM-PNP-0001" \(desired 7 v2, pending; reported ` + ts + `\)\nthermostat1:\n`},
		}},
		{name: "remove clears a desired value", steps: []step{
			{args: []string{"set", "sim-pnp-1", "-component", "thermostat2", "targetTemperature=18"}, wantStdout: etagLine},
			{args: []string{"remove", "sim-pnp-1", "-component", "thermostat2", "targetTemperature"},
				wantStdout: etagLine, wantStderr: []string{"sim-pnp-1: remove /thermostat2/targetTemperature"}, wantRequests: []string{patchReq}},
			{args: []string{"get", "sim-pnp-1"},
				wantStdout: `\nthermostat2:\n  maxTempSinceLastReboot: 20.5 \(reported ` + ts + `\)\n  targetTemperature: 19 \(ack 203 v0 "initial value"; reported ` + ts + `\)\n$`},
		}},
		{name: "if-match: the current ETag applies, a stale one fails with 412", steps: []step{
			{args: []string{"get", "sim-pnp-1"}, wantStdout: twinOut},
			{args: []string{"set", "sim-pnp-1", "-if-match", "{etag:0}", "-component", "thermostat1", "targetTemperature=23"}, wantStdout: etagLine},
			{args: []string{"set", "sim-pnp-1", "-if-match", "{etag:0}", "-component", "thermostat1", "targetTemperature=24"},
				wantCode: cli.ExitFailed, wantStdout: `^$`,
				wantStderr:   []string{"412001 PreconditionFailed", "tracking ID", "the twin changed since ETag W/", "nothing was changed; run get for the current ETag"},
				wantRequests: []string{getReq, patchReq}},
			{args: []string{"remove", "sim-pnp-1", "-if-match", "{etag:0}", "-component", "thermostat1", "targetTemperature"},
				wantCode: cli.ExitFailed, wantStdout: `^$`, wantStderr: []string{"412001"}},
			{args: []string{"set", "sim-pnp-1", "-if-match", "{etag:1}", "-component", "thermostat1", "targetTemperature=25"}, wantStdout: etagLine},
		}},

		// The hub's refusals: exit 1 with the code.
		{name: "unknown device", steps: []step{{args: []string{"get", "nothere"},
			wantCode: cli.ExitFailed, wantStdout: `^$`, wantStderr: []string{"404001 DeviceNotFound", "tracking ID"}}}},
		{name: "set on an unknown device", steps: []step{{args: []string{"set", "nothere", "a=1"},
			wantCode: cli.ExitFailed, wantStdout: `^$`, wantStderr: []string{"get nothere", "404001"}, wantRequests: []string{"GET /digitaltwins/nothere"}}}},

		{name: "an update whose outcome is unknown", faults: []iothubtest.Fault{{Operation: iothubtest.OperationTwin, DeviceID: "sim-pnp-1", Skip: 1, Times: -1, Status: 500}},
			steps: []step{{args: []string{"set", "sim-pnp-1", "-component", "thermostat1", "targetTemperature=22"},
				wantCode: cli.ExitFailed, wantStdout: `^$`,
				wantStderr:   []string{"update sim-pnp-1: IoT Hub error 500000", "may have been applied before the failure; run get to see whether it was"},
				wantRequests: []string{getReq, patchReq, patchReq, patchReq, patchReq}}}},

		// Bad input: exit 2, nothing sent.
		{name: "no command", steps: []step{{args: nil, wantCode: cli.ExitUsage, wantStderr: []string{"a command is required"}}}},
		{name: "unknown command", steps: []step{{args: []string{"patch", "sim-pnp-1"}, wantCode: cli.ExitUsage, wantStderr: []string{`unknown command "patch"`}}}},
		{name: "no device", steps: []step{{args: []string{"get"}, wantCode: cli.ExitUsage, wantStderr: []string{"get needs a DEVICE"}}}},
		{name: "flag of another command", steps: []step{{args: []string{"get", "sim-pnp-1", "-component", "thermostat1"}, wantCode: cli.ExitUsage, wantStderr: []string{"get does not take -component"}}}},
		{name: "get with an argument", steps: []step{{args: []string{"get", "sim-pnp-1", "x"}, wantCode: cli.ExitUsage, wantStderr: []string{`get: unexpected argument "x"`}}}},
		{name: "set without assignments", steps: []step{{args: []string{"set", "sim-pnp-1"}, wantCode: cli.ExitUsage, wantStderr: []string{"set needs at least one PATH=JSONVALUE"}}}},
		{name: "remove two paths", steps: []step{{args: []string{"remove", "sim-pnp-1", "a", "b"}, wantCode: cli.ExitUsage, wantStderr: []string{`unexpected argument "b"`}}}},
		{name: "not an assignment", steps: []step{{args: []string{"set", "sim-pnp-1", "a=1", "b"}, wantCode: cli.ExitUsage, wantStderr: []string{`argument "b": want PATH=JSONVALUE`}}}},
		{name: "value not JSON", steps: []step{{args: []string{"set", "sim-pnp-1", "name=lab"}, wantCode: cli.ExitUsage,
			wantStderr: []string{`argument "name=lab": the value "lab" is not JSON (quote a string: name='"text"')`}}}},
		{name: "empty value", steps: []step{{args: []string{"set", "sim-pnp-1", "a="}, wantCode: cli.ExitUsage, wantStderr: []string{`argument "a=": the value "" is not JSON`}}}},
		{name: "path not a DTDL name", steps: []step{{args: []string{"set", "sim-pnp-1", "1st=3"}, wantCode: cli.ExitUsage,
			wantStderr: []string{`argument "1st=3": property name "1st": must not start with a digit`}}}},
		{name: "path with a slash", steps: []step{{args: []string{"set", "sim-pnp-1", "thermostat1/targetTemperature=3"}, wantCode: cli.ExitUsage,
			wantStderr: []string{`argument "thermostat1/targetTemperature=3": property name "thermostat1/targetTemperature": must hold only ASCII letters, digits and '_'`}}}},
		{name: "empty path", steps: []step{{args: []string{"set", "sim-pnp-1", "=3"}, wantCode: cli.ExitUsage, wantStderr: []string{`argument "=3": property name "": must not be empty`}}}},
		{name: "an array", steps: []step{{args: []string{"set", "sim-pnp-1", `days={"on":[1,2]}`}, wantCode: cli.ExitUsage,
			wantStderr: []string{`argument "days={\"on\":[1,2]}": value.on must not be an array`}}}},
		{name: "null", steps: []step{{args: []string{"set", "sim-pnp-1", "a=null"}, wantCode: cli.ExitUsage, wantStderr: []string{`argument "a=null": value must not be null`}}}},
		{name: "a field name", steps: []step{{args: []string{"set", "sim-pnp-1", `a={"b_":1}`}, wantCode: cli.ExitUsage,
			wantStderr: []string{`argument "a={\"b_\":1}": value.b_ field name "b_": must not end with '_'`}}}},
		{name: "set twice", steps: []step{{args: []string{"set", "sim-pnp-1", "a=1", "a=2"}, wantCode: cli.ExitUsage, wantStderr: []string{`argument "a=2": a is set twice`}}}},
		{name: "component not a DTDL name", steps: []step{{args: []string{"set", "sim-pnp-1", "-component", "thermo-1", "a=1"}, wantCode: cli.ExitUsage,
			wantStderr: []string{`-component "thermo-1": component name "thermo-1": must hold only`}}}},
		{name: "remove path not a DTDL name", steps: []step{{args: []string{"remove", "sim-pnp-1", "-component", "thermostat1", "target_"}, wantCode: cli.ExitUsage,
			wantStderr: []string{`argument "target_": property name "target_": must not end with '_'`}}}},
		{name: "bad device id", steps: []step{{args: []string{"set", "sim/pnp", "a=1"}, wantCode: cli.ExitUsage, wantStderr: []string{"invalid digitalTwinID"}}}},
		{name: "bad connection string", steps: []step{{args: []string{"-connection-string", "HostName=h.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=SECRET!KEY", "set", "sim-pnp-1", "a=1"},
			wantCode: cli.ExitUsage, wantStderr: []string{"invalid connection string", "SharedAccessKey"}}}},
		{name: "both credentials", steps: []step{{args: []string{"-hub", "h.azure-devices.net", "-connection-string", "HostName=x", "get", "sim-pnp-1"},
			wantCode: cli.ExitUsage, wantStderr: []string{"not both"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, err := simhub.Start(nil)
			if err != nil {
				t.Fatal(err)
			}
			defer sim.Close()
			for _, f := range tt.faults {
				sim.Hub().AddFault(f)
			}
			var outs []string
			for i, s := range tt.steps {
				args := make([]string, len(s.args))
				for j, a := range s.args {
					for k, out := range outs {
						a = strings.ReplaceAll(a, "{etag:"+strconv.Itoa(k)+"}", etagRE.FindString(out))
					}
					args[j] = a
				}
				before := len(sim.Hub().Requests())
				got := runOn(t, sim, args...)
				outs = append(outs, got.stdout)
				if got.code != s.wantCode {
					t.Errorf("step %d %q: exit code %d, want %d; stderr:\n%s", i, args, got.code, s.wantCode, got.stderr)
				}
				wantStdout := s.wantStdout
				if wantStdout == "" {
					wantStdout = `^$`
				}
				if !regexp.MustCompile(wantStdout).MatchString(got.stdout) {
					t.Errorf("step %d %q: stdout\n%s\ndoes not match %q", i, args, got.stdout, wantStdout)
				}
				for _, w := range s.wantStderr {
					if !strings.Contains(got.stderr, w) {
						t.Errorf("step %d %q: stderr lacks %q:\n%s", i, args, w, got.stderr)
					}
				}
				if strings.Contains(got.stdout+got.stderr, "SECRET!KEY") {
					t.Errorf("step %d: the output shows the key:\n%s%s", i, got.stdout, got.stderr)
				}
				var sent []string
				for _, r := range sim.Hub().Requests()[before:] {
					sent = append(sent, r.Method+" "+r.Path)
				}
				switch {
				case s.wantCode == cli.ExitUsage && len(sent) > 0:
					t.Errorf("step %d %q: bad input, but sent %q", i, args, sent)
				case s.wantRequests != nil:
					if diff := cmp.Diff(s.wantRequests, sent); diff != "" {
						t.Errorf("step %d %q: requests (-want +got):\n%s", i, args, diff)
					}
				}
			}
		})
	}
}

// TestSetSendsOnePatch checks the body set sends: one JSON Patch with a
// replace for the property the twin has and an add for the one it has
// not, the values as given, and the If-Match header as given.
func TestSetSendsOnePatch(t *testing.T) {
	t.Parallel()
	sim, err := simhub.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	got := runOn(t, sim, "set", "sim-pnp-1", "-component", "thermostat1", "-if-match", "*", "targetTemperature=22.5", `schedule={"from":"08:00","eco":false}`)
	if got.code != cli.ExitOK {
		t.Fatalf("exit code %d; stderr:\n%s", got.code, got.stderr)
	}
	var patch *iothubtest.Request
	for _, r := range sim.Hub().Requests() {
		if r.Method == "PATCH" {
			patch = &r
		}
	}
	if patch == nil {
		t.Fatal("no PATCH sent")
	}
	var ops []map[string]any
	if err := json.Unmarshal(patch.Body, &ops); err != nil {
		t.Fatalf("patch body %s: %v", patch.Body, err)
	}
	want := []map[string]any{
		{"op": "replace", "path": "/thermostat1/targetTemperature", "value": 22.5},
		{"op": "add", "path": "/thermostat1/schedule", "value": map[string]any{"from": "08:00", "eco": false}},
	}
	if diff := cmp.Diff(want, ops); diff != "" {
		t.Errorf("patch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(`"*"`, patch.Header.Get("If-Match")); diff != "" {
		t.Errorf("If-Match (-want +got):\n%s", diff)
	}
	// The twin now holds the desired values.
	twin, _ := sim.Hub().Twin("sim-pnp-1")
	wantDesired := map[string]any{"thermostat1": map[string]any{"__t": "c", "targetTemperature": 22.5, "schedule": map[string]any{"from": "08:00", "eco": false}}}
	if diff := cmp.Diff(wantDesired, twin.Desired); diff != "" {
		t.Errorf("desired properties (-want +got):\n%s", diff)
	}
}

// TestUsage checks that -h prints the commands.
func TestUsage(t *testing.T) {
	t.Parallel()
	got := runOn(t, nil, "-h")
	if got.code != cli.ExitUsage {
		t.Errorf("exit code %d, want %d", got.code, cli.ExitUsage)
	}
	if !strings.Contains(got.stderr, "set DEVICE [-component NAME] [-if-match ETAG] PATH=JSONVALUE...") {
		t.Errorf("usage lacks set:\n%s", got.stderr)
	}
}
