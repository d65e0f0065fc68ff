package httpmock

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// jobsHub returns a hub with jobs tuned for tests and its owner token.
func jobsHub(t *testing.T, opts *Options) (*Hub, *http.Client, string) {
	t.Helper()
	h := New(opts)
	t.Cleanup(h.Close)
	return h, inProcess(h), sasFor(t, h, "iothubowner")
}

// jobWireOf decodes a JobResponse answer.
func jobWireOf(t *testing.T, r result) jobWire {
	t.Helper()
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("status %d, err %v, body %s", r.status, r.err, r.body)
	}
	var j jobWire
	if err := json.Unmarshal(r.body, &j); err != nil {
		t.Fatalf("decode job: %v: %s", err, r.body)
	}
	return j
}

// deviceRows runs the devices.jobs query for a job and returns the rows by
// device id.
func deviceRows(t *testing.T, h *Hub, c *http.Client, auth, jobID string) map[string]deviceJobWire {
	t.Helper()
	r := send(t.Context(), t, h, c, call{path: "/devices/query", auth: auth,
		body: `{"query":"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '` + jobID + `'"}`})
	if r.status != http.StatusOK {
		t.Fatalf("query: %d %s", r.status, r.body)
	}
	if it := r.header.Get("x-ms-item-type"); it != "deviceJob" {
		t.Errorf("x-ms-item-type = %q", it)
	}
	var rows []deviceJobWire
	if err := json.Unmarshal(r.body, &rows); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]deviceJobWire)
	for _, row := range rows {
		out[row.DeviceID] = row
	}
	return out
}

func methodJobBody(id, cond string, extra string) string {
	return `{"jobId":"` + id + `","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"reboot","payload":{"delay":1},"responseTimeoutInSeconds":5},"queryCondition":"` + cond + `"` + extra + `}`
}

func TestJobMethodRun(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h, c, owner := jobsHub(t, nil)
		h.AddDevice("d1", &DeviceOptions{Handler: echo})
		h.AddDevice("d2", &DeviceOptions{Offline: true})
		h.AddDevice("d3", &DeviceOptions{Latency: time.Minute, Handler: echo})
		h.AddDevice("d4", &DeviceOptions{Handler: func(context.Context, MethodCall) MethodResponse {
			return MethodResponse{Status: 500, Payload: json.RawMessage(`{"err":"disk"}`)}
		}})
		h.AddDevice("other", &DeviceOptions{Handler: echo})

		r := send(t.Context(), t, h, c, call{method: http.MethodPut, path: "/jobs/v2/j1", auth: owner,
			body: methodJobBody("j1", "deviceId IN ['d1','d2','d3','d4']", `,"maxExecutionTimeInSeconds":600`)})
		j := jobWireOf(t, r)
		if j.Status != jobQueued || j.DeviceJobStatistics != nil || j.Type != jobTypeMethod {
			t.Errorf("created job = %+v", j)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		j = jobWireOf(t, send(t.Context(), t, h, c, call{method: http.MethodGet, path: "/jobs/v2/j1", auth: owner}))
		if diff := cmp.Diff(&jobStats{DeviceCount: 4, FailedCount: 1, SucceededCount: 2, RunningCount: 1}, j.DeviceJobStatistics); diff != "" {
			t.Errorf("stats mid-run (-want +got):\n%s", diff)
		}
		if j.Status != jobRunning {
			t.Errorf("status = %q, want running", j.Status)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		j = jobWireOf(t, send(t.Context(), t, h, c, call{method: http.MethodGet, path: "/jobs/v2/j1", auth: owner}))
		if j.Status != jobCompleted || j.EndTime == "" {
			t.Errorf("final job = %+v", j)
		}
		rows := deviceRows(t, h, c, owner, "j1")
		type got struct {
			Status, Code string
			Method       int
		}
		summary := make(map[string]got)
		for id, row := range rows {
			g := got{Status: row.Status}
			if row.Error != nil {
				g.Code = row.Error.Code
			}
			if row.Outcome != nil && row.Outcome.DeviceMethodResponse != nil {
				g.Method = row.Outcome.DeviceMethodResponse.Status
			}
			summary[id] = g
		}
		want := map[string]got{
			"d1": {Status: "completed", Method: 200},
			"d2": {Status: "failed", Code: "DeviceNotOnline"},
			"d3": {Status: "failed", Code: "GatewayTimeout"},
			"d4": {Status: "completed", Method: 500},
		}
		if diff := cmp.Diff(want, summary); diff != "" {
			t.Errorf("device rows (-want +got):\n%s", diff)
		}
		if p := string(rows["d1"].Outcome.DeviceMethodResponse.Payload); p != `{"delay":1}` {
			t.Errorf("d1 payload = %s", p)
		}
		for _, id := range []string{"d1", "d3", "d4"} {
			if n := h.Deliveries(id, ""); n != 1 {
				t.Errorf("Deliveries(%s) = %d, want 1", id, n)
			}
		}
		if n := h.Deliveries("other", ""); n != 0 {
			t.Errorf("Deliveries(other) = %d", n)
		}
	})
}

func TestJobRate(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h, c, owner := jobsHub(t, &Options{JobDeviceOpsPerSecond: 2})
		for _, id := range []string{"a", "b", "c", "d"} {
			h.AddDevice(id, &DeviceOptions{Handler: echo})
		}
		jobWireOf(t, send(t.Context(), t, h, c, call{method: http.MethodPut, path: "/jobs/v2/r", auth: owner, body: methodJobBody("r", "*", "")}))
		start := time.Now()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		var offsets []time.Duration
		rows := deviceRows(t, h, c, owner, "r")
		for _, row := range rows {
			st, _ := time.Parse(time.RFC3339Nano, row.StartTimeUTC)
			offsets = append(offsets, st.Sub(start))
		}
		sort.Slice(offsets, func(i, j int) bool { return offsets[i] < offsets[j] })
		want := []time.Duration{0, 500 * time.Millisecond, time.Second, 1500 * time.Millisecond}
		if diff := cmp.Diff(want, offsets); diff != "" {
			t.Errorf("start offsets at 2/s (-want +got):\n%s", diff)
		}
	})
}

func TestJobScheduleAndCancel(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h, c, owner := jobsHub(t, &Options{JobDeviceOpsPerSecond: 1})
		for _, id := range []string{"a", "b", "c"} {
			h.AddDevice(id, &DeviceOptions{Handler: echo})
		}
		start := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		jobWireOf(t, send(t.Context(), t, h, c, call{method: http.MethodPut, path: "/jobs/v2/later", auth: owner,
			body: methodJobBody("later", "*", `,"startTime":"`+start+`"`)}))
		synctest.Wait()
		j := jobWireOf(t, send(t.Context(), t, h, c, call{method: http.MethodGet, path: "/jobs/v2/later", auth: owner}))
		if j.Status != jobScheduled {
			t.Errorf("status before start = %q, want scheduled", j.Status)
		}
		time.Sleep(time.Hour + 500*time.Millisecond) // a started, b and c pending
		synctest.Wait()
		j = jobWireOf(t, send(t.Context(), t, h, c, call{method: http.MethodPost, path: "/jobs/v2/later/cancel", auth: owner}))
		if j.Status != jobCancelled {
			t.Errorf("status after cancel = %q, want cancelled", j.Status)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		got := map[string]string{}
		for id, row := range deviceRows(t, h, c, owner, "later") {
			got[id] = row.Status
		}
		if diff := cmp.Diff(map[string]string{"a": "completed", "b": "canceled", "c": "canceled"}, got); diff != "" {
			t.Errorf("device statuses (-want +got):\n%s", diff)
		}
		if n := h.Deliveries("b", ""); n != 0 {
			t.Errorf("b got %d deliveries after cancel", n)
		}
	})
}

func TestJobMaxExecutionTime(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h, c, owner := jobsHub(t, &Options{JobDeviceOpsPerSecond: 1})
		for _, id := range []string{"a", "b", "c"} {
			h.AddDevice(id, &DeviceOptions{Handler: echo})
		}
		jobWireOf(t, send(t.Context(), t, h, c, call{method: http.MethodPut, path: "/jobs/v2/short", auth: owner,
			body: methodJobBody("short", "*", `,"maxExecutionTimeInSeconds":1`)}))
		time.Sleep(5 * time.Second)
		synctest.Wait()
		j := jobWireOf(t, send(t.Context(), t, h, c, call{method: http.MethodGet, path: "/jobs/v2/short", auth: owner}))
		if j.Status != jobFailed {
			t.Errorf("status = %q, want failed", j.Status)
		}
		got := map[string]string{}
		for id, row := range deviceRows(t, h, c, owner, "short") {
			got[id] = row.Status
		}
		if diff := cmp.Diff(map[string]string{"a": "completed", "b": "failed", "c": "failed"}, got); diff != "" {
			t.Errorf("device statuses (-want +got):\n%s", diff)
		}
	})
}

func TestJobTwinUpdate(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h, c, owner := jobsHub(t, nil)
		h.AddDevice("a", nil)
		h.AddDevice("b", nil)
		body := `{"jobId":"tw","type":"scheduleUpdateTwin","updateTwin":{"tags":{"site":"x"},"properties":{"desired":{"fw":"2.0"}},"etag":"*"},"queryCondition":"deviceId = 'a'"}`
		jobWireOf(t, send(t.Context(), t, h, c, call{method: http.MethodPut, path: "/jobs/v2/tw", auth: owner, body: body}))
		time.Sleep(time.Second)
		synctest.Wait()
		tw, _ := h.Twin("a", "")
		if tags := tw["tags"].(map[string]any); tags["site"] != "x" {
			t.Errorf("a tags = %v", tags)
		}
		tb, _ := h.Twin("b", "")
		if tags, _ := tb["tags"].(map[string]any); tags["site"] != nil {
			t.Errorf("b was updated: %v", tags)
		}
		if row := deviceRows(t, h, c, owner, "tw")["a"]; row.Status != devCompleted || row.JobType != jobTypeTwin {
			t.Errorf("row = %+v", row)
		}
	})
}

func TestJobErrors(t *testing.T) {
	t.Parallel()
	h, c, owner := jobsHub(t, &Options{MaxActiveJobs: 1, JobDeviceOpsPerSecond: 0.001})
	h.AddDevice("a", nil)
	h.AddDevice("b", nil)
	if r := send(t.Context(), t, h, c, call{method: http.MethodPut, path: "/jobs/v2/first", auth: owner, body: methodJobBody("first", "*", "")}); r.status != 200 {
		t.Fatalf("first job: %d %s", r.status, r.body)
	}
	tests := []struct {
		name     string
		method   string
		path     string
		auth     string
		body     string
		wantCode int
	}{
		{"duplicate", http.MethodPut, "/jobs/v2/first", "", methodJobBody("first", "*", ""), 409104},
		{"active limit", http.MethodPut, "/jobs/v2/second", "", methodJobBody("second", "*", ""), 429004},
		{"not found", http.MethodGet, "/jobs/v2/nope", "", "", 404002},
		{"cancel not found", http.MethodPost, "/jobs/v2/nope/cancel", "", "", 404002},
		{"id too long", http.MethodPut, "/jobs/v2/" + strings.Repeat("x", 129), "", methodJobBody(strings.Repeat("x", 129), "*", ""), 400004},
		{"id mismatch", http.MethodPut, "/jobs/v2/x", "", methodJobBody("y", "*", ""), 400004},
		{"no type", http.MethodPut, "/jobs/v2/x", "", `{"queryCondition":"*"}`, 400005},
		{"bad type", http.MethodPut, "/jobs/v2/x", "", `{"type":"export","queryCondition":"*"}`, 400004},
		{"no condition", http.MethodPut, "/jobs/v2/x", "", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"}}`, 400005},
		{"bad condition", http.MethodPut, "/jobs/v2/x", "", methodJobBody("x", "deviceId ==", ""), 400004},
		{"no method", http.MethodPut, "/jobs/v2/x", "", `{"type":"scheduleDeviceMethod","queryCondition":"*"}`, 400005},
		{"bad timeout", http.MethodPut, "/jobs/v2/x", "", `{"type":"scheduleDeviceMethod","queryCondition":"*","cloudToDeviceMethod":{"methodName":"m","responseTimeoutInSeconds":0}}`, 400004},
		{"bad start", http.MethodPut, "/jobs/v2/x", "", methodJobBody("x", "*", `,"startTime":"tomorrow"`), 400004},
		{"twin without etag", http.MethodPut, "/jobs/v2/x", "", `{"type":"scheduleUpdateTwin","queryCondition":"*","updateTwin":{"tags":{"a":1}}}`, 400005},
		{"not json", http.MethodPut, "/jobs/v2/x", "", `[`, 400006},
		{"service policy", http.MethodGet, "/jobs/v2/first", sasFor(t, h, "service"), "", 401002},
		{"projection over jobs", http.MethodPost, "/devices/query", "", `{"query":"SELECT deviceId FROM devices.jobs"}`, 400004},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			auth := tt.auth
			if auth == "" {
				auth = owner
			}
			e := decodeErr(t, send(t.Context(), t, h, c, call{method: tt.method, path: tt.path, auth: auth, body: tt.body}))
			if e.Code != tt.wantCode {
				t.Errorf("code = %d (%s), want %d", e.Code, e.Message, tt.wantCode)
			}
		})
	}
}

func TestJobQuery(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h, c, owner := jobsHub(t, &Options{MaxActiveJobs: 5})
		h.AddDevice("a", &DeviceOptions{Handler: echo})
		for _, id := range []string{"m1", "m2", "m3"} {
			jobWireOf(t, send(t.Context(), t, h, c, call{method: http.MethodPut, path: "/jobs/v2/" + id, auth: owner, body: methodJobBody(id, "*", "")}))
		}
		jobWireOf(t, send(t.Context(), t, h, c, call{method: http.MethodPut, path: "/jobs/v2/t1", auth: owner,
			body: `{"type":"scheduleUpdateTwin","queryCondition":"*","updateTwin":{"tags":{"a":1},"etag":"*"}}`}))
		time.Sleep(time.Second)
		synctest.Wait()
		tests := []struct {
			query string
			want  []string
		}{
			{"", []string{"m1", "m2", "m3", "t1"}},
			{"jobType=ScheduleDeviceMethod&jobStatus=Completed", []string{"m1", "m2", "m3"}},
			{"jobType=scheduleUpdateTwin", []string{"t1"}},
			{"JOBSTATUS=running", nil},
		}
		for _, tt := range tests {
			var got []string
			tok := ""
			for range 10 {
				hdr := http.Header{"X-Ms-Max-Item-Count": {"2"}}
				if tok != "" {
					hdr.Set("x-ms-continuation", tok)
				}
				r := send(t.Context(), t, h, c, call{method: http.MethodGet, path: "/jobs/v2/query", auth: owner, query: "api-version=" + testAPIVersion + "&" + tt.query, header: hdr})
				if r.status != 200 || r.header.Get("x-ms-item-type") != "jobResponse" {
					t.Fatalf("%s: %d %v %s", tt.query, r.status, r.header, r.body)
				}
				var page []jobWire
				if err := json.Unmarshal(r.body, &page); err != nil {
					t.Fatal(err)
				}
				for _, j := range page {
					got = append(got, j.JobID)
				}
				if tok = r.header.Get("x-ms-continuation"); tok == "" {
					break
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%q (-want +got):\n%s", tt.query, diff)
			}
		}
	})
}

func TestCloseStopsJobs(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := New(&Options{JobDeviceOpsPerSecond: 0.01})
		h.AddDevice("a", &DeviceOptions{Latency: time.Hour, Handler: echo})
		h.AddDevice("b", nil)
		r := send(t.Context(), t, h, inProcess(h), call{method: http.MethodPut, path: "/jobs/v2/x", auth: sasFor(t, h, "iothubowner"), body: methodJobBody("x", "*", "")})
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		synctest.Wait()
		h.Close()
		h.Close()
		// The bubble ending without a deadlock shows no goroutine is left.
	})
}
