package main

import (
	"bufio"
	"context"
	"encoding/json"
	"github.com/google/go-cmp/cmp"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/examples/internal/simhub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/internal/testkit/syncbuf"
	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/service"
)

const embedded = "no credentials given; using the embedded simulated hub"

// result is what one run of the program left behind.
type result struct {
	code           int
	stdout, stderr string
}

// noEnv is an empty environment.
func noEnv(string) string { return "" }

// startSim starts a simulated hub for one test.
func startSim(t *testing.T, opts *simhub.Options) *simhub.Hub {
	t.Helper()
	sim, err := simhub.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

// runSim runs the program against sim, without credentials.
func runSim(ctx context.Context, sim *simhub.Hub, args ...string) result {
	var stdout, stderr syncbuf.Buffer
	code := runWith(ctx, args, deps{getenv: noEnv, stdout: &stdout, stderr: &stderr, sim: sim, progressEvery: 100 * time.Millisecond})
	return result{code, stdout.String(), stderr.String()}
}

// readReportFile reads a report written by the program.
func readReportFile(t *testing.T, file string) []line {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("report line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// byDevice indexes report lines by device id; the last line wins.
func byDevice(lines []line) map[string]line {
	m := make(map[string]line)
	for _, l := range lines {
		m[l.DeviceID] = l
	}
	return m
}

// TestOutcomes runs the whole troubled fleet: every outcome appears, for
// its cause, with one report line per target and at most one delivery.
func TestOutcomes(t *testing.T) {
	t.Parallel()
	sim := startSim(t, &simhub.Options{Fleet: 30, Troubled: true, SlowLatency: 300 * time.Millisecond})
	report := filepath.Join(t.TempDir(), "r.jsonl")
	got := runSim(t.Context(), sim, "-report", report, "-concurrency", "8", "-timeout", "5")
	if got.code != cli.ExitFailed {
		t.Errorf("exit %d, want %d; stderr:\n%s", got.code, cli.ExitFailed, got.stderr)
	}
	for _, w := range []string{embedded, "summary", "succeeded", "device-error", "not-delivered", "unknown", "calls/s", "-resume"} {
		if !strings.Contains(got.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, got.stderr)
		}
	}
	lines := readReportFile(t, report)
	ids := sim.DeviceIDs()
	if len(lines) != len(ids) {
		t.Errorf("report has %d lines, want %d (one per device)", len(lines), len(ids))
	}
	m := byDevice(lines)
	if len(m) != len(lines) {
		t.Errorf("report has %d lines for %d devices", len(lines), len(m))
	}
	mock := sim.Hub()
	for _, id := range ids {
		l, ok := m[id]
		if !ok {
			t.Errorf("%s: no report line", id)
			continue
		}
		n := mock.Deliveries(id, "", "")
		if n > 1 || (l.Outcome == service.OutcomeSucceeded && n != 1) {
			t.Errorf("%s: %s with %d deliveries", id, l.Outcome, n)
		}
		if l.Attempts < 1 {
			t.Errorf("%s: attempts %d", id, l.Attempts)
		}
	}
	want := map[string]struct {
		outcome service.Outcome
		status  int
		code    int
	}{
		"sim-device-1":       {service.OutcomeSucceeded, 200, 0},
		"sim-device-offline": {service.OutcomeNotDelivered, 0, 404103},
		FleetID(1):           {service.OutcomeSucceeded, 200, 0},
		FleetID(3):           {service.OutcomeNotDelivered, 0, 404103},
		FleetID(5):           {service.OutcomeSucceeded, 200, 0}, // slow
		FleetID(7):           {service.OutcomeDeviceError, 500, 0},
		FleetID(11):          {service.OutcomeUnknown, 0, 504101},
	}
	for id, w := range want {
		l := m[id]
		if l.Outcome != w.outcome || l.Status != w.status || l.ErrorCode != w.code {
			t.Errorf("%s: %+v, want outcome %s status %d errorCode %d", id, l, w.outcome, w.status, w.code)
		}
		if w.code != 0 && (l.Error == "" || l.TrackingID == "") {
			t.Errorf("%s: error %q, tracking ID %q", id, l.Error, l.TrackingID)
		}
		if w.status != 0 && len(l.Payload) == 0 {
			t.Errorf("%s: no payload", id)
		}
	}
	if n := mock.Deliveries(FleetID(11), "", ""); n != 1 {
		t.Errorf("the response-losing device got %d deliveries, want 1", n)
	}
	if l := m[FleetID(5)]; l.MS < 300 {
		t.Errorf("slow device took %d ms", l.MS)
	}
}

// FleetID is simhub.FleetID, shorter.
func FleetID(i int) string { return simhub.FleetID(i) }

// TestReportFields checks a report line's JSON field names.
func TestReportFields(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	report := filepath.Join(t.TempDir(), "r.jsonl")
	got := runSim(t.Context(), sim, "-devices", "sim-device-1,sim-device-offline", "-report", report)
	if got.code != cli.ExitFailed {
		t.Fatalf("exit %d; stderr:\n%s", got.code, got.stderr)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(rows) != 2 {
		t.Fatalf("report:\n%s", data)
	}
	keys := func(row string) []string {
		var m map[string]any
		if err := json.Unmarshal([]byte(row), &m); err != nil {
			t.Fatal(err)
		}
		var k []string
		for key := range m {
			k = append(k, key)
		}
		slices.Sort(k)
		return k
	}
	for _, row := range rows {
		var want []string
		if strings.Contains(row, `"sim-device-1"`) {
			want = []string{"attempts", "deviceId", "ms", "outcome", "payload", "status"}
		} else {
			want = []string{"attempts", "deviceId", "error", "errorCode", "ms", "outcome", "trackingId"}
		}
		if k := keys(row); !slices.Equal(k, want) {
			t.Errorf("fields %v, want %v: %s", k, want, row)
		}
	}
}

// TestDevicesFile reads targets from a file, with comments and blank lines.
func TestDevicesFile(t *testing.T) {
	t.Parallel()
	sim := startSim(t, &simhub.Options{Fleet: 5})
	file := filepath.Join(t.TempDir(), "ids.txt")
	content := "# plant 3\n" + FleetID(1) + "\n\n  " + FleetID(2) + "  \n# " + FleetID(3) + "\n" + FleetID(4) + "\n" + FleetID(1) + "\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	got := runSim(t.Context(), sim, "-devices", "@"+file)
	if got.code != cli.ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", got.code, got.stderr)
	}
	for i := 1; i <= 5; i++ {
		want := 1
		if i == 3 || i == 5 {
			want = 0
		}
		if n := sim.Hub().Deliveries(FleetID(i), "", ""); n != want {
			t.Errorf("%s: %d deliveries, want %d", FleetID(i), n, want)
		}
	}
	if !strings.Contains(got.stderr, "3/3") {
		t.Errorf("stderr lacks the 3/3 total:\n%s", got.stderr)
	}
}

// TestDryRun lists the targets and invokes nothing.
func TestDryRun(t *testing.T) {
	t.Parallel()
	sim := startSim(t, &simhub.Options{Fleet: 3, Troubled: true})
	got := runSim(t.Context(), sim, "-dry-run", "-query", "SELECT * FROM devices WHERE deviceId = 'sim-fleet-00002' OR deviceId = 'sim-device-1'")
	if got.code != cli.ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", got.code, got.stderr)
	}
	lines := strings.Fields(got.stdout)
	slices.Sort(lines)
	if want := []string{"sim-device-1", FleetID(2)}; !slices.Equal(lines, want) {
		t.Errorf("stdout %q, want %q", lines, want)
	}
	got = runSim(t.Context(), sim, "-dry-run")
	if n := len(strings.Fields(got.stdout)); got.code != cli.ExitOK || n != len(sim.DeviceIDs()) {
		t.Errorf("exit %d, %d targets; stderr:\n%s", got.code, n, got.stderr)
	}
	if calls := sim.Hub().Calls(); len(calls) != 0 {
		t.Errorf("%d method calls in a dry run", len(calls))
	}
}

// TestInterruptAndResume cancels a run mid-way, then resumes it: every
// delivered target is in the first report, and the resumed run invokes
// each of the others once.
func TestInterruptAndResume(t *testing.T) {
	t.Parallel()
	const fleet = 60
	sim := startSim(t, &simhub.Options{Fleet: fleet})
	mock := sim.Hub()
	for i := 1; i <= fleet; i++ {
		mock.Device(FleetID(i)).SetLatency(40 * time.Millisecond)
	}
	report := filepath.Join(t.TempDir(), "r.jsonl")
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for len(mock.Calls()) < 10 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	got := runSim(ctx, sim, "-report", report, "-concurrency", "4")
	cancel()
	if got.code != cli.ExitFailed || !strings.Contains(got.stderr, "interrupted") {
		t.Errorf("exit %d, want %d; stderr:\n%s", got.code, cli.ExitFailed, got.stderr)
	}
	first := byDevice(readReportFile(t, report))
	delivered := 0
	for _, id := range sim.DeviceIDs() {
		if mock.Deliveries(id, "", "") == 0 {
			continue
		}
		delivered++
		if l, ok := first[id]; !ok || l.Outcome != service.OutcomeSucceeded {
			t.Errorf("%s was delivered; report line %+v (present %v)", id, l, ok)
		}
	}
	if delivered >= len(sim.DeviceIDs())-1 {
		t.Fatalf("the run was not interrupted: %d delivered", delivered)
	}

	// Resume. The offline named device never succeeds: it is tried again.
	got = runSim(t.Context(), sim, "-report", report, "-resume", "-concurrency", "8")
	if got.code != cli.ExitFailed {
		t.Errorf("resume: exit %d; stderr:\n%s", got.code, got.stderr)
	}
	if !strings.Contains(got.stderr, "skipped (succeeded before)") {
		t.Errorf("resume: stderr lacks the skipped count:\n%s", got.stderr)
	}
	final := byDevice(readReportFile(t, report))
	for _, id := range sim.DeviceIDs() {
		n := mock.Deliveries(id, "", "")
		if id == "sim-device-offline" {
			if final[id].Outcome != service.OutcomeNotDelivered {
				t.Errorf("%s: %+v", id, final[id])
			}
			continue
		}
		if n != 1 || final[id].Outcome != service.OutcomeSucceeded {
			t.Errorf("%s: %d deliveries, last line %+v", id, n, final[id])
		}
	}

	// A third run has nothing left but the offline device.
	got = runSim(t.Context(), sim, "-report", report, "-resume", "-dry-run")
	if got.stdout != "sim-device-offline\n" {
		t.Errorf("dry run after resume lists %q", got.stdout)
	}
}

// TestResumeTruncatedReport resumes from a report whose last line was cut
// off: that target is invoked again and the file stays one JSON per line.
// A target whose outcome was unknown (it may have run) is skipped unless
// -retry-unknown asks for it.
func TestResumeTruncatedReport(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	report := filepath.Join(t.TempDir(), "r.jsonl")
	content := `{"deviceId":"sim-device-1","outcome":"succeeded","status":200,"attempts":1,"ms":3}` + "\n" +
		`{"deviceId":"sim-device-2","outcome":"unknown","attempts":1,"ms":3}` + "\n" +
		`{"deviceId":"sim-device-3","outcome":"succ`
	if err := os.WriteFile(report, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	got := runSim(t.Context(), sim, "-devices", "sim-device-1,sim-device-2,sim-device-3", "-report", report, "-resume")
	// sim-device-2 is left unknown, so not every target is known to
	// have succeeded: exit 1, and say why.
	if got.code != cli.ExitFailed || !strings.Contains(got.stderr, "1 targets were skipped because an earlier run left their outcome unknown") {
		t.Fatalf("exit %d; stderr:\n%s", got.code, got.stderr)
	}
	if !strings.Contains(got.stderr, "truncated last line") {
		t.Errorf("no warning about the truncated line:\n%s", got.stderr)
	}
	for id, want := range map[string]int{"sim-device-1": 0, "sim-device-2": 0, "sim-device-3": 1} {
		if n := sim.Hub().Deliveries(id, "", ""); n != want {
			t.Errorf("%s: %d deliveries, want %d", id, n, want)
		}
	}
	data, _ := os.ReadFile(report)
	rows := strings.Split(string(data), "\n")
	if last := rows[len(rows)-1]; last != "" {
		t.Errorf("report does not end with a newline: %q", last)
	}
	if n := len(rows); n != 5 { // 3 old (one truncated), 1 new, ""
		t.Errorf("report has %d rows:\n%s", n, data)
	}

	// The caller checked sim-device-2 and asks for it explicitly.
	got = runSim(t.Context(), sim, "-devices", "sim-device-1,sim-device-2,sim-device-3", "-report", report, "-resume", "-retry-unknown")
	if got.code != cli.ExitOK {
		t.Fatalf("-retry-unknown: exit %d; stderr:\n%s", got.code, got.stderr)
	}
	for id, want := range map[string]int{"sim-device-1": 0, "sim-device-2": 1, "sim-device-3": 1} {
		if n := sim.Hub().Deliveries(id, "", ""); n != want {
			t.Errorf("-retry-unknown: %s: %d deliveries, want %d", id, n, want)
		}
	}
}

// TestAbort abandons the calls in flight: they are reported unknown.
func TestAbort(t *testing.T) {
	t.Parallel()
	sim := startSim(t, &simhub.Options{Fleet: 8})
	mock := sim.Hub()
	for i := 1; i <= 8; i++ {
		mock.Device(FleetID(i)).SetLatency(10 * time.Second)
	}
	ids := make([]string, 8)
	for i := range ids {
		ids[i] = FleetID(i + 1)
	}
	report := filepath.Join(t.TempDir(), "r.jsonl")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	abort := make(chan struct{})
	go func() {
		for len(mock.Calls()) < 4 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		time.Sleep(50 * time.Millisecond)
		close(abort)
	}()
	var stdout, stderr syncbuf.Buffer
	start := time.Now()
	code := runWith(ctx, []string{"-devices", strings.Join(ids, ","), "-report", report, "-concurrency", "4"},
		deps{getenv: noEnv, stdout: &stdout, stderr: &stderr, sim: sim, abort: abort})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("abort took %s", d)
	}
	if code != cli.ExitFailed {
		t.Errorf("exit %d; stderr:\n%s", code, stderr.String())
	}
	m := byDevice(readReportFile(t, report))
	for _, id := range ids {
		if mock.Deliveries(id, "", "") == 1 && m[id].Outcome != service.OutcomeUnknown {
			t.Errorf("%s was delivered; report %+v", id, m[id])
		}
	}
	if !strings.Contains(stderr.String(), "abandoning") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}

// TestBadFlags refuses bad input with exit 2 and no request sent.
func TestBadFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.jsonl")
	if err := os.WriteFile(existing, []byte(`{"deviceId":"d","outcome":"succeeded","attempts":1,"ms":1}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.txt")
	if err := os.WriteFile(empty, []byte("# nothing\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"concurrency 0", []string{"-concurrency", "0"}, "-concurrency must be 1 or more"},
		{"negative rate", []string{"-rate", "-1"}, "-rate must be"},
		{"unknown mode", []string{"-mode", "cloud"}, `-mode must be client or job; got "cloud"`},
		{"NaN rate", []string{"-rate", "NaN"}, "-rate must be"},
		{"infinite rate", []string{"-rate", "+Inf"}, "-rate must be"},
		{"unknown tier", []string{"-tier", "S9"}, `-tier must be F1, S1, S2 or S3 (the basic tiers B1 to B3 have no direct methods); got "S9"`},
		{"basic tier", []string{"-tier", "B2"}, "the basic tiers B1 to B3 have no direct methods"},
		{"units without tier", []string{"-units", "2"}, "-units goes with -tier"},
		{"zero units", []string{"-tier", "S1", "-units", "0"}, "-units must be 1 or more; got 0"},
		{"negative units", []string{"-tier", "S1", "-units", "-3"}, "-units must be 1 or more; got -3"},
		{"unreadable devices file", []string{"-devices", "@" + filepath.Join(dir, "nope.txt")}, "-devices: open"},
		{"empty devices file", []string{"-devices", "@" + empty}, "lists no device"},
		{"empty device id", []string{"-devices", "a,,b"}, "empty device id"},
		{"resume without report", []string{"-resume"}, "-resume needs -report"},
		{"retry-unknown without resume", []string{"-retry-unknown"}, "-retry-unknown goes with -resume"},
		{"existing report", []string{"-report", existing}, "add -resume"},
		{"bad payload", []string{"-payload", `{"delay":`}, "-payload is not valid JSON"},
		{"timeout 3", []string{"-timeout", "3"}, "-timeout must be 0"},
		{"connect timeout 301", []string{"-connect-timeout", "301"}, "-connect-timeout must be within [0, 300]"},
		{"bad method name", []string{"-method", "re boot"}, "invalid MethodParams.Name"},
		{"query and devices", []string{"-query", "SELECT * FROM devices", "-devices", "a"}, "not both"},
		{"not a twin query", []string{"-query", "SELECT deviceId FROM devices"}, "-query must be SELECT * FROM devices"},
		{"unexpected argument", []string{"now"}, `unexpected argument "now"`},
		{"unknown flag", []string{"-retries", "3"}, "flag provided but not defined"},
		{"simulate with credentials", []string{"-simulate", "5", "-connection-string", "HostName=h;SharedAccessKeyName=s;SharedAccessKey=" + httpmock.NewKey()}, "-simulate is for"},
		{"invalid device id", []string{"-devices", "bad id"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, &simhub.Options{Fleet: 2})
			got := runSim(t.Context(), sim, tt.args...)
			if tt.want == "" { // not a flag error: refused per target
				if n := len(sim.Hub().Calls()); n != 0 {
					t.Errorf("%d calls", n)
				}
				return
			}
			if got.code != cli.ExitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", got.code, cli.ExitUsage, got.stderr)
			}
			if !strings.Contains(got.stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, got.stderr)
			}
			if n := len(sim.Hub().Requests()); n != 0 {
				t.Errorf("%d requests sent", n)
			}
		})
	}
}

// TestQueryAndCount runs a query's targets with a known total.
func TestQueryAndCount(t *testing.T) {
	t.Parallel()
	sim := startSim(t, &simhub.Options{Fleet: 10})
	for i := 1; i <= 10; i++ {
		sim.Hub().Device(FleetID(i)).SetLatency(30 * time.Millisecond)
	}
	got := runSim(t.Context(), sim, "-query", "SELECT * FROM devices WHERE deviceId = 'sim-fleet-00001' OR deviceId = 'sim-fleet-00002' OR deviceId = 'sim-fleet-00003' OR deviceId = 'sim-fleet-00004' OR deviceId = 'sim-fleet-00005' OR deviceId = 'sim-fleet-00006' OR deviceId = 'sim-fleet-00007' OR deviceId = 'sim-fleet-00008' OR deviceId = 'sim-fleet-00009' OR deviceId = 'sim-fleet-00010'", "-concurrency", "2")
	if got.code != cli.ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", got.code, got.stderr)
	}
	if !strings.Contains(got.stderr, "/10") {
		t.Errorf("no total of 10 in the progress:\n%s", got.stderr)
	}
	for i := 1; i <= 10; i++ {
		if n := sim.Hub().Deliveries(FleetID(i), "", ""); n != 1 {
			t.Errorf("%s: %d deliveries", FleetID(i), n)
		}
	}
	if n := sim.Hub().Deliveries("sim-device-1", "", ""); n != 0 {
		t.Errorf("sim-device-1 was not selected but got %d deliveries", n)
	}
}

// TestEmbeddedDefault runs with no simulated hub given, as a user would.
func TestEmbeddedDefault(t *testing.T) {
	t.Parallel()
	var stdout, stderr syncbuf.Buffer
	code := runWith(t.Context(), []string{"-simulate", "4", "-devices", "sim-device-1,sim-fleet-00001"}, deps{getenv: noEnv, stdout: &stdout, stderr: &stderr})
	if code != cli.ExitOK || !strings.Contains(stderr.String(), embedded) {
		t.Errorf("exit %d; stderr:\n%s", code, stderr.String())
	}
}

func TestBar(t *testing.T) {
	for _, tt := range []struct {
		done, total int
		want        string
	}{{0, 10, "[.....]"}, {5, 10, "[##...]"}, {10, 10, "[#####]"}, {0, 0, "[#####]"}} {
		if got := bar(tt.done, tt.total, 5); got != tt.want {
			t.Errorf("bar(%d, %d) = %q, want %q", tt.done, tt.total, got, tt.want)
		}
	}
}

// TestJobMode schedules a device-method job over a list and reports each
// device's result.
func TestJobMode(t *testing.T) {
	t.Parallel()
	sim := startSim(t, &simhub.Options{Fleet: 8, Troubled: true})
	report := filepath.Join(t.TempDir(), "r.jsonl")
	ids := []string{"sim-device-1", FleetID(1), FleetID(3), FleetID(7)}
	got := runSim(t.Context(), sim, "-mode", "job", "-devices", strings.Join(ids, ","), "-report", report, "-concurrency", "4")
	if got.code != cli.ExitFailed {
		t.Errorf("exit %d; stderr:\n%s", got.code, got.stderr)
	}
	if !strings.Contains(got.stderr, "do not apply to -mode job") || !strings.Contains(got.stderr, "scheduled job") {
		t.Errorf("stderr:\n%s", got.stderr)
	}
	m := byDevice(readReportFile(t, report))
	want := map[string]service.Outcome{
		"sim-device-1": service.OutcomeSucceeded, FleetID(1): service.OutcomeSucceeded,
		FleetID(3): service.OutcomeNotDelivered, FleetID(7): service.OutcomeDeviceError,
	}
	if len(m) != len(want) {
		t.Errorf("report has %d devices: %+v", len(m), m)
	}
	for id, o := range want {
		if m[id].Outcome != o {
			t.Errorf("%s: %+v, want %s", id, m[id], o)
		}
		if n := sim.Hub().Deliveries(id, "", ""); n > 1 {
			t.Errorf("%s: %d deliveries", id, n)
		}
	}
}

// TestJobModeInterruptAndResume interrupts a job-mode run: the job is
// cancelled, and the report holds every device the job reached, with a
// truthful outcome, and the rest as not-delivered. Resuming schedules a
// job over the devices left and reaches each of them once; the device
// whose answer was lost (unknown) is not invoked again.
func TestJobModeInterruptAndResume(t *testing.T) {
	t.Parallel()
	const fleet = 40
	sim := startSim(t, &simhub.Options{Fleet: fleet, JobDeviceOpsPerSecond: 50})
	mock := sim.Hub()
	lost := FleetID(30)
	mock.AddFault(iothubtest.Fault{Operation: iothubtest.OperationMethod, DeviceID: lost, AfterDelivery: true})
	report := filepath.Join(t.TempDir(), "r.jsonl")
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for len(mock.Calls()) < 8 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	got := runSim(ctx, sim, "-mode", "job", "-report", report)
	cancel()
	if got.code != cli.ExitFailed || !strings.Contains(got.stderr, "cancelling job") {
		t.Errorf("exit %d, want %d; stderr:\n%s", got.code, cli.ExitFailed, got.stderr)
	}
	first := byDevice(readReportFile(t, report))
	if len(first) != len(sim.DeviceIDs()) {
		t.Errorf("first report has %d devices, want %d", len(first), len(sim.DeviceIDs()))
	}
	reached := 0
	for _, id := range sim.DeviceIDs() {
		n, l := mock.Deliveries(id, "", ""), first[id]
		if n > 0 {
			reached++
		}
		switch {
		case n > 1:
			t.Errorf("%s: %d deliveries", id, n)
		case n == 1 && l.Outcome == service.OutcomeNotDelivered:
			t.Errorf("%s was delivered; report line %+v", id, l)
		case n == 0 && l.Outcome != service.OutcomeNotDelivered:
			t.Errorf("%s was not delivered; report line %+v", id, l)
		}
	}
	if reached >= len(sim.DeviceIDs())-2 {
		t.Fatalf("the job was not interrupted: %d devices reached", reached)
	}

	got = runSim(t.Context(), sim, "-mode", "job", "-report", report, "-resume")
	if got.code != cli.ExitFailed { // the offline device and the lost answer
		t.Errorf("resume: exit %d; stderr:\n%s", got.code, got.stderr)
	}
	final := byDevice(readReportFile(t, report))
	for _, id := range sim.DeviceIDs() {
		n, l := mock.Deliveries(id, "", ""), final[id]
		switch id {
		case "sim-device-offline":
			if n != 0 || l.Outcome != service.OutcomeNotDelivered {
				t.Errorf("%s: %d deliveries, last line %+v", id, n, l)
			}
		case lost:
			if n != 1 || l.Outcome != service.OutcomeUnknown {
				t.Errorf("%s: %d deliveries, last line %+v", id, n, l)
			}
		default:
			if n != 1 || l.Outcome != service.OutcomeSucceeded {
				t.Errorf("%s: %d deliveries, last line %+v", id, n, l)
			}
		}
	}
}

// TestETA checks the progress's ETA, from the rate of the last second
// (five draws 200 ms apart): steady progress gives remaining / rate; a
// tail of slow calls with nothing finishing gives "?", not the "<1s" the
// overall rate would promise.
func TestETA(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type draw struct {
		at    time.Duration
		calls int
	}
	tests := []struct {
		name      string
		draws     []draw // the last one is checked
		remaining int
		want      string
	}{
		{name: "steady 10/s", draws: []draw{{200 * time.Millisecond, 2}, {time.Second, 10}, {2 * time.Second, 20}}, remaining: 50, want: "5s"},
		{name: "fast", draws: []draw{{200 * time.Millisecond, 100}}, remaining: 5, want: "<1s"},
		{name: "stalled tail", draws: []draw{{200 * time.Millisecond, 100}, {time.Second, 100}, {1400 * time.Millisecond, 100}}, remaining: 5, want: "?"},
		{name: "tail moving again", draws: []draw{{200 * time.Millisecond, 100}, {2 * time.Second, 100}, {2200 * time.Millisecond, 101}}, remaining: 5, want: "10s"},
	}
	for _, tt := range tests {
		p := &progress{display: display{every: 200 * time.Millisecond}, start: t0}
		var got string
		for _, d := range tt.draws {
			got = p.etaLocked(t0.Add(d.at), d.calls, tt.remaining)
		}
		if got != tt.want {
			t.Errorf("%s: ETA %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestFleetWideFault: a fault that refuses the whole hub stops the run.
// The program says so once on stderr, writes every target to the report
// (those it never invoked as not-delivered, with the hub's code), exits 1,
// and nothing reaches a device after the fault.
func TestFleetWideFault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fault func(*simhub.Hub)
		kind  string
		code  int
	}{
		{"suspended", func(s *simhub.Hub) { s.Hub().Suspend() }, "hub suspended", 403001},
		// The hub refusing every call's credential, as after a key
		// rotation; the SDK's own tests revoke the policy itself.
		{"unauthorized", func(s *simhub.Hub) { s.Hub().AddFault(iothubtest.Fault{Code: 401002, Times: -1}) }, "unauthorized", 401002},
		{"quota exhausted", func(s *simhub.Hub) { s.Hub().ExhaustQuota() }, "daily quota exceeded", 403002},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, &simhub.Options{Fleet: 200})
			// Targets as a list: a target query would fail first on a
			// hub that refuses everyone.
			list := filepath.Join(t.TempDir(), "devices.txt")
			if err := os.WriteFile(list, []byte(strings.Join(sim.DeviceIDs(), "\n")), 0o600); err != nil {
				t.Fatal(err)
			}
			tt.fault(sim)
			report := filepath.Join(t.TempDir(), "r.jsonl")
			got := runSim(t.Context(), sim, "-devices", "@"+list, "-report", report, "-concurrency", "8")
			if got.code != cli.ExitFailed {
				t.Errorf("exit %d, want %d; stderr:\n%s", got.code, cli.ExitFailed, got.stderr)
			}
			if n := strings.Count(got.stderr, "fleet-wide fault"); n != 1 {
				t.Errorf("stderr names the fleet-wide fault %d times, want once:\n%s", n, got.stderr)
			}
			for _, w := range []string{tt.kind, "-resume"} {
				if !strings.Contains(got.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, got.stderr)
				}
			}
			lines := readReportFile(t, report)
			if m := byDevice(lines); len(lines) != len(sim.DeviceIDs()) || len(m) != len(lines) {
				t.Errorf("report has %d lines for %d devices, want one per device of %d", len(lines), len(m), len(sim.DeviceIDs()))
			}
			counts := map[service.Outcome]int{}
			for _, l := range lines {
				counts[l.Outcome]++
				if l.ErrorCode != tt.code {
					t.Errorf("%s: errorCode %d, want %d", l.DeviceID, l.ErrorCode, tt.code)
				}
			}
			want := map[service.Outcome]int{service.OutcomeNotDelivered: len(lines)}
			if diff := cmp.Diff(want, counts); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s", diff)
			}
			// Nothing delivered after the fault, to any target.
			sim.Hub().ExpectDeliveries(t, nil)
		})
	}
}

// TestProgressPace: the progress line shows the hub's accepted rate and
// the pacing's state while calls start, and the calls the run waits on
// once only calls in flight are left.
func TestProgressPace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		total int
		done  int
		stats service.FanOutStats
		want  string
	}{
		{"limited", 10000, 4000, service.FanOutStats{InFlight: 64, AcceptedRate: 981, RateLimit: 990, State: "limited by hub at ~980/s"}, "981 calls/s, limited by hub at ~980/s  ETA"},
		{"tail", 10000, 9969, service.FanOutStats{InFlight: 31, OldestInFlight: 2140 * time.Millisecond, AcceptedRate: 12}, "waiting on 31 calls in flight, the slowest 2.1s"},
		{"unknown total", -1, 10, service.FanOutStats{InFlight: 8, AcceptedRate: 40, RateLimit: 50, State: "probing at 50/s"}, "40 calls/s, probing at 50/s"},
		{"stalled on slow devices", 306, 275, service.FanOutStats{InFlight: 16, OldestInFlight: 2900 * time.Millisecond, RateLimit: 3200}, "waiting on 16 calls in flight, the slowest 2.9s; 15 targets to start"},
		{"held back by the devices", 10000, 5000, service.FanOutStats{InFlight: 64, AcceptedRate: 300, RateLimit: 6400, State: "probing at 6400/s"}, "300 calls/s, not held back by the hub (pacing allows ~6400/s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b strings.Builder
			p := &progress{display: display{w: &b}, start: time.Now().Add(-10 * time.Second),
				counts: map[service.Outcome]int{service.OutcomeSucceeded: tt.done}, total: tt.total}
			p.watch(func() service.FanOutStats { return tt.stats })
			p.drawLocked()
			if !strings.Contains(b.String(), tt.want) {
				t.Errorf("progress line %q lacks %q", b.String(), tt.want)
			}
		})
	}
}
