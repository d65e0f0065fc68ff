package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/service"
)

// setupJobs returns a simulated hub with the given options and a client
// signed with its iothubowner policy (jobs need registry rights). Inside a
// synctest bubble, call it inside the bubble.
func setupJobs(t *testing.T, opts *httpmock.Options) (*httpmock.Hub, *service.Client) {
	t.Helper()
	hub := httpmock.New(opts)
	t.Cleanup(hub.Close)
	client, err := service.NewClientFromConnectionString(hub.ConnectionString("iothubowner"),
		&iothub.ClientOptions{Transport: hub.RoundTripper(), Retry: iothub.RetryOptions{MinDelay: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return hub, client
}

func reboot(ids ...string) service.MethodJob {
	return service.MethodJob{Method: service.MethodParams[any]{Name: "reboot", TimeoutInSeconds: 5}, DeviceIDs: ids}
}

func TestJobOutcomes(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setupJobs(t, nil)
		hub.AddDevice("ok", &httpmock.DeviceOptions{Handler: respond(200, `{"done":true}`)})
		hub.AddDevice("offline", &httpmock.DeviceOptions{Offline: true})
		hub.AddDevice("slow", &httpmock.DeviceOptions{Latency: time.Minute, Handler: respond(200, "")})
		hub.AddDevice("broken", &httpmock.DeviceOptions{Handler: respond(500, `"disk"`)})
		hub.AddDevice("busy", &httpmock.DeviceOptions{Handler: respond(200, "")})
		hub.AddFault(httpmock.Fault{Operation: httpmock.OperationMethod, DeviceID: "busy", Code: 429001})
		// The device runs the method but its answer is lost.
		hub.AddDevice("lost", &httpmock.DeviceOptions{Handler: respond(200, "")})
		hub.AddFault(httpmock.Fault{Operation: httpmock.OperationMethod, DeviceID: "lost", AfterDelivery: true})
		// Connection faults do not apply to a job's calls.
		hub.AddDevice("wired", &httpmock.DeviceOptions{Handler: respond(200, "")})
		hub.AddFault(httpmock.Fault{Operation: httpmock.OperationMethod, DeviceID: "wired", Drop: httpmock.DropAfterRead})

		job, err := client.ScheduleMethodJob(t.Context(), "j1", reboot("ok", "offline", "slow", "broken", "busy", "lost", "wired", "missing"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if job.ID != "j1" || job.Status != service.JobStatusQueued || job.Statistics != nil {
			t.Errorf("scheduled job = %+v", job)
		}
		var progress []service.JobStatistics
		job, err = client.WaitJob(t.Context(), "j1", &service.WaitOptions{MinPollInterval: time.Second, OnProgress: func(j service.Job) {
			if j.Statistics != nil {
				progress = append(progress, *j.Statistics)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		if job.Status != service.JobStatusCompleted || job.EndTime.IsZero() {
			t.Errorf("final job = %+v", job)
		}
		// The first poll comes as the job starts: whether its first device
		// is still running then depends on scheduling, but the others are
		// pending.
		if len(progress) < 2 || progress[0].RunningCount+progress[0].PendingCount == 0 {
			t.Errorf("progress = %+v, want a poll of the unfinished job then the final one", progress)
		}
		want := service.JobStatistics{DeviceCount: 7, FailedCount: 4, SucceededCount: 3}
		if diff := cmp.Diff(&want, job.Statistics); diff != "" {
			t.Errorf("statistics (-want +got):\n%s", diff)
		}

		type row struct {
			Status  service.DeviceJobStatus
			Outcome service.Outcome
			Code    iothub.ErrorCode
			Name    string
			Answer  int
		}
		got := map[string]row{}
		for r, err := range client.JobDeviceResults(t.Context(), "j1", &service.QueryOptions{PageSize: 2}) {
			if err != nil {
				t.Fatal(err)
			}
			g := row{Status: r.Status, Outcome: r.Outcome, Code: r.ErrorCode, Name: r.ErrorName}
			if r.Response != nil {
				g.Answer = r.Response.Status
			}
			got[r.DeviceID] = g
		}
		wantRows := map[string]row{
			"ok":      {service.DeviceJobStatusCompleted, service.OutcomeSucceeded, 0, "", 200},
			"offline": {service.DeviceJobStatusFailed, service.OutcomeNotDelivered, iothub.ErrorCodeDeviceNotOnline, "DeviceNotOnline", 0},
			"slow":    {service.DeviceJobStatusFailed, service.OutcomeUnknown, iothub.ErrorCodeGatewayTimeout, "GatewayTimeout", 0},
			"broken":  {service.DeviceJobStatusCompleted, service.OutcomeDeviceError, 0, "", 500},
			"busy":    {service.DeviceJobStatusFailed, service.OutcomeNotDelivered, iothub.ErrorCodeThrottlingException, "ThrottlingException", 0},
			"lost":    {service.DeviceJobStatusFailed, service.OutcomeUnknown, iothub.ErrorCodeGatewayTimeout, "GatewayTimeout", 0},
			"wired":   {service.DeviceJobStatusCompleted, service.OutcomeSucceeded, 0, "", 200},
		}
		if diff := cmp.Diff(wantRows, got); diff != "" {
			t.Errorf("device results (-want +got):\n%s", diff)
		}
		// Each outcome tells the truth about delivery: succeeded and
		// device-error were delivered exactly once, not-delivered never,
		// unknown at most once.
		for id, r := range got {
			n := hub.Deliveries(id, "")
			switch {
			case r.Outcome == service.OutcomeNotDelivered && n != 0,
				r.Outcome == service.OutcomeUnknown && n > 1,
				(r.Outcome == service.OutcomeSucceeded || r.Outcome == service.OutcomeDeviceError) && n != 1:
				t.Errorf("%s: outcome %s with %d deliveries", id, r.Outcome, n)
			}
		}
	})
}

func TestJobCancel(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setupJobs(t, &httpmock.Options{JobDeviceOpsPerSecond: 1})
		for _, id := range []string{"a", "b", "c"} {
			hub.AddDevice(id, &httpmock.DeviceOptions{Handler: respond(200, "")})
		}
		if _, err := client.ScheduleMethodJob(t.Context(), "c1", reboot("a", "b", "c"), nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		job, err := client.CancelJob(t.Context(), "c1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if job.Status != service.JobStatusCancelled || !job.Status.Done() {
			t.Errorf("status = %q, want cancelled", job.Status)
		}
		time.Sleep(3 * time.Second)
		got := map[string]service.DeviceJobStatus{}
		for r, err := range client.JobDeviceResults(t.Context(), "c1", nil) {
			if err != nil {
				t.Fatal(err)
			}
			got[r.DeviceID] = r.Status
			if r.Status == service.DeviceJobStatusCanceled && r.Outcome != service.OutcomeNotDelivered {
				t.Errorf("%s: outcome %s", r.DeviceID, r.Outcome)
			}
		}
		want := map[string]service.DeviceJobStatus{"a": "completed", "b": "canceled", "c": "canceled"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

func TestJobActiveLimit(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setupJobs(t, &httpmock.Options{JobDeviceOpsPerSecond: 1})
		hub.AddDevice("a", &httpmock.DeviceOptions{Handler: respond(200, "")})
		hub.AddDevice("b", &httpmock.DeviceOptions{Handler: respond(200, "")})
		if _, err := client.ScheduleMethodJob(t.Context(), "first", reboot("a", "b"), nil); err != nil {
			t.Fatal(err)
		}
		_, err := client.ScheduleMethodJob(t.Context(), "second", reboot("a"), nil)
		if !errors.Is(err, iothub.ErrThrottled) || !errors.Is(err, iothub.ErrNotDelivered) || !strings.Contains(err.Error(), "limit of active jobs") {
			t.Fatalf("err = %v, want the active-job limit", err)
		}
		if he, ok := errors.AsType[*iothub.Error](err); !ok || he.Code != iothub.ErrorCodeThrottlingMaxActiveJobCountExceeded {
			t.Errorf("err = %#v", err)
		}
		start := time.Now()
		job, err := client.ScheduleMethodJob(t.Context(), "second", reboot("a"), &service.ScheduleJobOptions{WaitForSlot: true})
		if err != nil {
			t.Fatal(err)
		}
		if job.ID != "second" || time.Since(start) < time.Second {
			t.Errorf("job %+v scheduled after %v", job, time.Since(start))
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		hub.AddDevice("c", &httpmock.DeviceOptions{Latency: time.Hour})
		_, err = client.ScheduleMethodJob(ctx, "third", reboot("a"), &service.ScheduleJobOptions{WaitForSlot: true})
		if err != nil {
			// "second" ends within a second, so a slot frees.
			t.Fatalf("third: %v", err)
		}
		_, err = client.ScheduleMethodJob(ctx, "fourth", service.MethodJob{Method: service.MethodParams[any]{Name: "x", TimeoutInSeconds: 300}, DeviceIDs: []string{"c"}}, &service.ScheduleJobOptions{WaitForSlot: true})
		if err == nil {
			// third is done; fourth holds the slot now.
			_, err = client.ScheduleMethodJob(ctx, "fifth", reboot("a"), &service.ScheduleJobOptions{WaitForSlot: true})
		}
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, iothub.ErrThrottled) {
			t.Errorf("err = %v, want the deadline while waiting for a slot", err)
		}
	})
}

func TestJobDuplicateAndIdempotentRetry(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setupJobs(t, &httpmock.Options{MaxActiveJobs: 5})
		hub.AddDevice("a", &httpmock.DeviceOptions{Handler: respond(200, "")})
		if _, err := client.ScheduleMethodJob(t.Context(), "dup", reboot("a"), nil); err != nil {
			t.Fatal(err)
		}
		_, err := client.ScheduleMethodJob(t.Context(), "dup", reboot("a"), nil)
		if he, ok := errors.AsType[*iothub.Error](err); !ok || he.Code != iothub.ErrorCodeJobAlreadyExists || !errors.Is(err, iothub.ErrConflict) {
			t.Errorf("duplicate: %v", err)
		}

		// The hub creates the job, then the answer is lost; the retry
		// meets 409104 and finds the same job.
		hub.AddFault(httpmock.Fault{Operation: httpmock.OperationJob, Drop: httpmock.DropAfterDelivery})
		job, err := client.ScheduleMethodJob(t.Context(), "lost", reboot("a"), nil)
		if err != nil || job.ID != "lost" || job.Method == nil || job.Method.MethodName != "reboot" {
			t.Errorf("lost answer: %+v, %v", job, err)
		}
		// The same, but another job already had the id: the conflict stays.
		if _, err := client.ScheduleTwinJob(t.Context(), "other", service.TwinJob{Tags: map[string]any{"x": 1}, DeviceIDs: []string{"a"}}, nil); err != nil {
			t.Fatal(err)
		}
		hub.AddFault(httpmock.Fault{Operation: httpmock.OperationJob, Drop: httpmock.DropAfterRead})
		_, err = client.ScheduleMethodJob(t.Context(), "other", reboot("a"), nil)
		if !errors.Is(err, iothub.ErrConflict) {
			t.Errorf("mismatched retry: %v", err)
		}
	})
}

func TestJobValidation(t *testing.T) {
	t.Parallel()
	hub, client := setupJobs(t, nil)
	tests := []struct {
		name  string
		id    string
		spec  service.MethodJob
		field string
	}{
		{"empty id", "", reboot("a"), "jobID"},
		{"long id", strings.Repeat("j", 129), reboot("a"), "jobID"},
		{"control id", "a\nb", reboot("a"), "jobID"},
		{"no method", "j", service.MethodJob{DeviceIDs: []string{"a"}}, "MethodParams.Name"},
		{"bad timeout", "j", service.MethodJob{Method: service.MethodParams[any]{Name: "m", TimeoutInSeconds: 1}, DeviceIDs: []string{"a"}}, "MethodParams.TimeoutInSeconds"},
		{"neither", "j", service.MethodJob{Method: service.MethodParams[any]{Name: "m"}}, "QueryCondition"},
		{"both", "j", service.MethodJob{Method: service.MethodParams[any]{Name: "m"}, QueryCondition: "*", DeviceIDs: []string{"a"}}, "QueryCondition"},
		{"WHERE kept", "j", service.MethodJob{Method: service.MethodParams[any]{Name: "m"}, QueryCondition: "WHERE deviceId = 'a'"}, "QueryCondition"},
		{"bad device id", "j", reboot("a", "b c"), "DeviceIDs[1]"},
		{"negative max", "j", service.MethodJob{Method: service.MethodParams[any]{Name: "m"}, QueryCondition: "*", MaxExecutionTime: -time.Second}, "MaxExecutionTime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := client.ScheduleMethodJob(t.Context(), tt.id, tt.spec, nil)
			ae, ok := errors.AsType[*iothub.ArgumentError](err)
			if !ok || ae.Field != tt.field || !errors.Is(err, iothub.ErrInvalidArgument) {
				t.Errorf("err = %v, want an ArgumentError on %s", err, tt.field)
			}
		})
	}
	if _, err := client.ScheduleTwinJob(t.Context(), "t", service.TwinJob{QueryCondition: "*"}, nil); !errors.Is(err, iothub.ErrInvalidArgument) {
		t.Errorf("empty twin patch: %v", err)
	}
	t.Cleanup(func() {
		if n := len(hub.Requests()); n != 0 {
			t.Errorf("%d requests sent for invalid arguments", n)
		}
	})
}

func TestJobWireRequest(t *testing.T) {
	t.Parallel()
	hub, client := setupJobs(t, nil)
	start := time.Date(2030, 5, 4, 15, 53, 0, 77e6, time.UTC)
	_, err := client.ScheduleMethodJob(t.Context(), "w1", service.MethodJob{
		Method:    service.MethodParams[any]{Name: "reboot", Payload: map[string]int{"delay": 1}, TimeoutInSeconds: 30},
		DeviceIDs: []string{"d1", "it's"}, StartTime: start, MaxExecutionTime: time.Hour,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reqs := hub.Requests()
	last := reqs[len(reqs)-1]
	if last.Method != "PUT" || last.Path != "/jobs/v2/w1" {
		t.Errorf("%s %s", last.Method, last.Path)
	}
	var got map[string]any
	if err := json.Unmarshal(last.Body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"jobId": "w1", "type": "scheduleDeviceMethod",
		"cloudToDeviceMethod": map[string]any{"methodName": "reboot", "payload": map[string]any{"delay": 1.0}, "responseTimeoutInSeconds": 30.0},
		"queryCondition":      `deviceId IN ['d1','it\'s']`,
		"startTime":           "2030-05-04T15:53:00.077Z", "maxExecutionTimeInSeconds": 3600.0,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

func TestQueryJobs(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setupJobs(t, &httpmock.Options{MaxActiveJobs: 10})
		hub.AddDevice("a", &httpmock.DeviceOptions{Handler: respond(200, "")})
		for _, id := range []string{"m1", "m2", "m3"} {
			if _, err := client.ScheduleMethodJob(t.Context(), id, reboot("a"), nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := client.ScheduleTwinJob(t.Context(), "t1", service.TwinJob{Desired: map[string]any{"fw": "2"}, QueryCondition: "*"}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := client.ScheduleMethodJob(t.Context(), "later", service.MethodJob{Method: service.MethodParams[any]{Name: "m"}, QueryCondition: "*", StartTime: time.Now().Add(time.Hour)}, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		tests := []struct {
			opts *service.JobQueryOptions
			want []string
		}{
			{nil, []string{"m1", "m2", "m3", "t1", "later"}},
			{&service.JobQueryOptions{Type: service.JobTypeScheduleDeviceMethod, Status: service.JobStatusCompleted, PageSize: 2}, []string{"m1", "m2", "m3"}},
			{&service.JobQueryOptions{Type: "ScheduleUpdateTwin"}, []string{"t1"}},
			{&service.JobQueryOptions{Status: "Scheduled", PageSize: 1}, []string{"later"}},
		}
		for _, tt := range tests {
			seq := client.QueryJobs(t.Context(), tt.opts)
			for range 2 { // restartable
				var got []string
				for j, err := range seq {
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, j.ID)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("%+v (-want +got):\n%s", tt.opts, diff)
				}
			}
		}
		var errs int
		for _, err := range client.QueryJobs(t.Context(), &service.JobQueryOptions{PageSize: -1}) {
			if err != nil {
				errs++
			}
		}
		if errs != 1 {
			t.Errorf("%d errors yielded, want 1", errs)
		}
	})
}

func TestWaitJobContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setupJobs(t, nil)
		hub.AddDevice("a", &httpmock.DeviceOptions{Handler: respond(200, "")})
		if _, err := client.ScheduleMethodJob(t.Context(), "w", service.MethodJob{Method: service.MethodParams[any]{Name: "m"}, QueryCondition: "*", StartTime: time.Now().Add(time.Hour)}, nil); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		var mu sync.Mutex
		polls := 0
		job, err := client.WaitJob(ctx, "w", &service.WaitOptions{MinPollInterval: time.Second, MaxPollInterval: 8 * time.Second, OnProgress: func(service.Job) {
			mu.Lock()
			polls++
			mu.Unlock()
		}})
		if !errors.Is(err, context.DeadlineExceeded) || job.Status != service.JobStatusScheduled {
			t.Errorf("job %q, err %v", job.Status, err)
		}
		// 1+2+4+8+8+8+8+8+8 s: backoff, not one poll a second.
		if polls < 5 || polls > 12 {
			t.Errorf("%d polls in a minute", polls)
		}
		if _, err := client.GetJob(t.Context(), "nope", nil); !errors.Is(err, iothub.ErrNotDelivered) {
			t.Errorf("missing job: %v", err)
		} else if he, _ := errors.AsType[*iothub.Error](err); he.Code != iothub.ErrorCodeJobNotFound {
			t.Errorf("missing job code: %v", err)
		}
	})
}

func TestJobJSON(t *testing.T) {
	t.Parallel()
	// A JobResponse as IoT Hub sends it, with a status this SDK does not know.
	const sample = `{"jobId":"job01","queryCondition":"deviceId IN ['d1','d2']","createdTime":"2019-05-04T15:53:00.0770000Z","startTime":"2019-05-04T15:53:00.077Z","endTime":"0001-01-01T00:00:00","maxExecutionTimeInSeconds":3600,"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"reboot","payload":{},"responseTimeoutInSeconds":30},"status":"paused","deviceJobStatistics":{"deviceCount":2,"failedCount":0,"succeededCount":1,"runningCount":1,"pendingCount":0}}`
	var j service.Job
	if err := json.Unmarshal([]byte(sample), &j); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2019, 5, 4, 15, 53, 0, 77e6, time.UTC)
	want := service.Job{
		ID: "job01", Type: service.JobTypeScheduleDeviceMethod, Status: "paused", QueryCondition: "deviceId IN ['d1','d2']",
		CreatedTime: at, StartTime: at, MaxExecutionTime: time.Hour,
		Method:     &service.JobMethod{MethodName: "reboot", Payload: json.RawMessage(`{}`), ResponseTimeoutInSeconds: 30},
		Statistics: &service.JobStatistics{DeviceCount: 2, SucceededCount: 1, RunningCount: 1},
	}
	if diff := cmp.Diff(want, j); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if j.Status.Done() {
		t.Error("an unknown status is not done")
	}
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	var again service.Job
	if err := json.Unmarshal(b, &again); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(j, again); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}
