package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/service"
)

// recordQueries returns the queries over devices.jobs the hub received.
func recordQueries(t *testing.T, hub *httpmock.Hub) []httpmock.Request {
	t.Helper()
	var out []httpmock.Request
	for _, r := range hub.Requests() {
		if r.Method == "POST" && r.Path == "/devices/query" && strings.Contains(string(r.Body), "devices.jobs") {
			out = append(out, r)
		}
	}
	return out
}

// deviceRecord is what a test checks of a job's device record.
type deviceRecord struct {
	Status  service.DeviceJobStatus
	Outcome service.Outcome
}

// records reads a job's device records by device id.
func records(t *testing.T, client *service.Client, jobID string) map[string]deviceRecord {
	t.Helper()
	got := map[string]deviceRecord{}
	for r, err := range client.JobDeviceResults(t.Context(), jobID, nil) {
		if err != nil {
			t.Fatal(err)
		}
		got[r.DeviceID] = deviceRecord{r.Status, r.Outcome}
	}
	return got
}

// startAndCancel schedules a method job over a (whose call takes 20 s), b
// and c at one device operation a second, and cancels it half a second
// later: a's call is running, b and c were not reached.
func startAndCancel(t *testing.T, hub *httpmock.Hub, client *service.Client, jobID string, aLatency time.Duration) {
	t.Helper()
	hub.AddDevice("a", &httpmock.DeviceOptions{Latency: aLatency, Handler: respond(200, "")})
	hub.AddDevice("b", &httpmock.DeviceOptions{Handler: respond(200, "")})
	hub.AddDevice("c", &httpmock.DeviceOptions{Handler: respond(200, "")})
	spec := service.MethodJob{Method: service.MethodParams[any]{Name: "reboot", TimeoutInSeconds: 300}, DeviceIDs: []string{"a", "b", "c"}}
	if _, err := client.ScheduleMethodJob(t.Context(), jobID, spec, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	job, err := client.CancelJob(t.Context(), jobID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := job.Statistics; job.Status != service.JobStatusCancelled || s == nil || s.RunningCount != 1 {
		t.Fatalf("cancelled job = %+v, want it cancelled with one call running", job)
	}
}

// TestWaitJobRunningCalls cancels a job while one of its calls runs: by
// default WaitJob returns at once and the record still says running; with
// WaitForRunningCalls it returns only when no record is running, so the
// results tell how the call ended. It polls the records with one query of
// one record a poll, backing off.
func TestWaitJobRunningCalls(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		wait    bool
		want    map[string]deviceRecord
		queries int // at most; 0: none
	}{
		{"default", false, map[string]deviceRecord{
			"a": {service.DeviceJobStatusRunning, service.OutcomeUnknown},
			"b": {service.DeviceJobStatusCanceled, service.OutcomeNotDelivered},
			"c": {service.DeviceJobStatusCanceled, service.OutcomeNotDelivered},
		}, 0},
		// Polls 1, 2, 4, 4, 4 … s apart for the 20 s the call runs.
		{"WaitForRunningCalls", true, map[string]deviceRecord{
			"a": {service.DeviceJobStatusCompleted, service.OutcomeSucceeded},
			"b": {service.DeviceJobStatusCanceled, service.OutcomeNotDelivered},
			"c": {service.DeviceJobStatusCanceled, service.OutcomeNotDelivered},
		}, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub, client := setupJobs(t, &httpmock.Options{JobDeviceOpsPerSecond: 1})
				startAndCancel(t, hub, client, "j", 20*time.Second)
				var progress []service.JobStatus
				job, err := client.WaitJob(t.Context(), "j", &service.WaitOptions{
					MinPollInterval: time.Second, MaxPollInterval: 4 * time.Second, WaitForRunningCalls: tt.wait,
					OnProgress: func(j service.Job) { progress = append(progress, j.Status) },
				})
				if err != nil {
					t.Fatal(err)
				}
				if job.Status != service.JobStatusCancelled {
					t.Errorf("job = %+v, want it cancelled", job)
				}
				// OnProgress sees the job's polls, not the record queries.
				if diff := cmp.Diff([]service.JobStatus{service.JobStatusCancelled}, progress); diff != "" {
					t.Errorf("OnProgress (-want +got):\n%s", diff)
				}
				queries := recordQueries(t, hub)
				switch {
				case tt.queries == 0 && len(queries) != 0:
					t.Errorf("%d record queries, want none", len(queries))
				case tt.queries > 0 && (len(queries) < 2 || len(queries) > tt.queries):
					t.Errorf("%d record queries, want 2 to %d (one a poll, backing off)", len(queries), tt.queries)
				}
				for _, q := range queries {
					var body struct{ Query string }
					if err := json.Unmarshal(q.Body, &body); err != nil {
						t.Fatal(err)
					}
					want := "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'j' AND devices.jobs.status = 'running'"
					if body.Query != want || q.Header.Get("x-ms-max-item-count") != "1" || q.Header.Get("x-ms-continuation") != "" {
						t.Errorf("record query %q, headers %v; want %q, one record, one page", body.Query, q.Header, want)
					}
				}
				// Read at once, in the same instant of the bubble's clock.
				if diff := cmp.Diff(tt.want, records(t, client, "j")); diff != "" {
					t.Errorf("records on return (-want +got):\n%s", diff)
				}
				if n := hub.Deliveries("a", ""); n != 1 {
					t.Errorf("a: %d deliveries", n)
				}
			})
		})
	}
}

// TestWaitJobRunningCallsContext: a call that outlasts ctx ends the wait
// with the cancelled job and ctx's error, after backed-off polls.
func TestWaitJobRunningCallsContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setupJobs(t, &httpmock.Options{JobDeviceOpsPerSecond: 1})
		startAndCancel(t, hub, client, "j", time.Hour) // the call runs for its 300 s timeout
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		job, err := client.WaitJob(ctx, "j", &service.WaitOptions{MinPollInterval: time.Second, MaxPollInterval: 8 * time.Second, WaitForRunningCalls: true})
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "still running") {
			t.Errorf("err = %v, want the deadline while calls still run", err)
		}
		if job.ID != "j" || job.Status != service.JobStatusCancelled {
			t.Errorf("job = %+v, want the cancelled job", job)
		}
		// 1+2+4+8+8+8+8+8+8 s: backoff, not one query a second.
		if n := len(recordQueries(t, hub)); n < 5 || n > 12 {
			t.Errorf("%d record queries in a minute", n)
		}
		if got := records(t, client, "j")["a"]; got.Status != service.DeviceJobStatusRunning {
			t.Errorf("a = %+v, want it still running", got)
		}
	})
}

// TestWaitJobRunningCallsCompleted: a completed job has no running calls,
// so no record is queried.
func TestWaitJobRunningCallsCompleted(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setupJobs(t, nil)
		hub.AddDevice("a", &httpmock.DeviceOptions{Latency: 3 * time.Second, Handler: respond(200, "")})
		if _, err := client.ScheduleMethodJob(t.Context(), "j", reboot("a"), nil); err != nil {
			t.Fatal(err)
		}
		job, err := client.WaitJob(t.Context(), "j", &service.WaitOptions{WaitForRunningCalls: true})
		if err != nil || job.Status != service.JobStatusCompleted {
			t.Fatalf("job %+v, err %v", job, err)
		}
		if n := len(recordQueries(t, hub)); n != 0 {
			t.Errorf("%d record queries for a completed job", n)
		}
	})
}

// TestWaitJobRunningCallsQueryError: a query the hub refuses ends the wait
// at once with the ended job and the hub's error, which says what failed.
func TestWaitJobRunningCallsQueryError(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setupJobs(t, &httpmock.Options{JobDeviceOpsPerSecond: 1})
		startAndCancel(t, hub, client, "j", 20*time.Second)
		hub.AddFault(httpmock.Fault{Operation: httpmock.OperationQuery, Code: int(iothub.ErrorCodeArgumentInvalid)})
		job, err := client.WaitJob(t.Context(), "j", &service.WaitOptions{WaitForRunningCalls: true})
		he, ok := errors.AsType[*iothub.Error](err)
		if !ok || he.Code != iothub.ErrorCodeArgumentInvalid || !strings.Contains(err.Error(), "ended cancelled") {
			t.Errorf("err = %v, want the hub's 400004 after the job ended", err)
		}
		if job.Status != service.JobStatusCancelled {
			t.Errorf("job = %+v, want the cancelled job", job)
		}
		if n := len(recordQueries(t, hub)); n != 1 {
			t.Errorf("%d record queries, want the one refused", n)
		}
	})
}
