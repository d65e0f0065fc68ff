package service_test

import (
	"errors"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/service"
)

// observeJobs returns a fake hub, a client that records nothing (to set
// the scene) and an observed client on the same hub (for the calls under
// test), so that only those calls' spans and metrics are recorded.
func observeJobs(t *testing.T, hubOpts *httpmock.Options) (*httpmock.Hub, *service.Client, *observed) {
	t.Helper()
	hub, setup := setupJobs(t, hubOpts)
	o := &observed{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	o.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.spans))
	c, err := service.NewClientFromConnectionString(hub.ConnectionString("iothubowner"), &iothub.ClientOptions{
		Transport:      hub.RoundTripper(),
		Retry:          iothub.RetryOptions{MinDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond},
		TracerProvider: o.tp,
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader)),
	})
	if err != nil {
		t.Fatal(err)
	}
	o.client = c
	return hub, setup, o
}

// jobOp is the operation span of a call without a device, method or
// module (every job call), with end holding the attributes set when it
// ends ("status" is the span's status).
func jobOp(host, op string, end map[string]string, children ...span) span {
	a := map[string]string{
		"az.namespace":         "Microsoft.Devices",
		"az.client_request_id": "<set>",
		"iothub.hub.host":      host,
		"iothub.operation":     op,
	}
	status := ""
	for k, v := range end {
		if k == "status" {
			status = v
			continue
		}
		a[k] = v
	}
	return span{Name: op, Kind: "internal", Status: status, Attrs: a, Children: children}
}

// httpAttempt is the span of one HTTP attempt of method on path (with
// query, if any, after the api-version).
func httpAttempt(host, method, path, query string, resend int, end map[string]string) span {
	u := "https://" + host + path + "?api-version=" + iothub.APIVersion
	if query != "" {
		u += "&" + query
	}
	a := map[string]string{
		"http.request.method":  method,
		"url.full":             u,
		"server.address":       host,
		"server.port":          "443",
		"az.namespace":         "Microsoft.Devices",
		"az.client_request_id": "<set>",
	}
	if resend > 0 {
		a["http.request.resend_count"] = strconv.Itoa(resend)
	}
	status := ""
	for k, v := range end {
		if k == "status" {
			status = v
			continue
		}
		a[k] = v
	}
	return span{Name: method, Kind: "client", Status: status, Attrs: a}
}

var (
	succeeded1 = map[string]string{"iothub.outcome": "succeeded", "iothub.attempts": "1"}
	answered   = map[string]string{"http.response.status_code": "200"}
)

// hubError is the end of a span refused by the hub with code, for an
// operation span (op) or an attempt span (!op).
func hubError(op bool, status, code, name, outcome string) map[string]string {
	m := map[string]string{
		"status": "Error", "iothub.error.code": code, "iothub.error.name": name, "iothub.tracking_id": "<set>",
	}
	if op {
		m["iothub.outcome"], m["iothub.attempts"], m["error.type"] = outcome, "1", name
	} else {
		m["http.response.status_code"], m["error.type"] = status, status
	}
	return m
}

// TestTelemetryJobs checks the spans and metrics of every job call: one
// operation span per call, internal, whose children are its HTTP attempts,
// of kind client; no device id on them (a job has none); the outcome and
// attempts at the end, and the hub's error code and name on a refusal. The
// scene is set with a client that records nothing, so each case sees only
// the calls under test, under virtual time.
func TestTelemetryJobs(t *testing.T) {
	t.Parallel()
	const jobPath = "/jobs/v2/job-1"
	sas1 := map[string]float64{"iothub.auth.token.renewals{iothub.auth.kind=sas}": 1}
	// called is the metrics of n calls of op that each succeeded with one
	// attempt of method.
	called := func(op, method string, n float64) map[string]float64 {
		m := map[string]float64{
			"iothub.client.call.duration{iothub.operation=" + op + ",iothub.outcome=succeeded}":              n,
			"http.client.request.duration{http.request.method=" + method + ",http.response.status_code=200}": n,
			"iothub.client.attempts{iothub.operation=" + op + "}":                                            n,
			"iothub.client.active_calls{iothub.operation=" + op + "}":                                        0,
		}
		for k, v := range sas1 {
			m[k] = v
		}
		return m
	}
	// scheduled schedules job-1 over a device whose call takes 3 s.
	scheduled := func(t *testing.T, hub *httpmock.Hub, c *service.Client) {
		t.Helper()
		hub.AddDevice("d1", &httpmock.DeviceOptions{Latency: 3 * time.Second, Handler: respond(200, "")})
		if _, err := c.ScheduleMethodJob(t.Context(), "job-1", reboot("d1"), nil); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		hubOpts *httpmock.Options
		setup   func(t *testing.T, hub *httpmock.Hub, c *service.Client)
		// run makes the observed calls; it returns an error to check
		// against wantCode (0: no error).
		run         func(t *testing.T, c *service.Client) error
		wantCode    iothub.ErrorCode
		wantSpans   func(host string) []span
		wantMetrics map[string]float64
	}{{
		name: "ScheduleMethodJob",
		setup: func(t *testing.T, hub *httpmock.Hub, _ *service.Client) {
			hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: respond(200, "")})
		},
		run: func(t *testing.T, c *service.Client) error {
			job, err := c.ScheduleMethodJob(t.Context(), "job-1", reboot("d1"), nil)
			if err == nil && job.ID != "job-1" {
				t.Errorf("job = %+v", job)
			}
			return err
		},
		wantSpans: func(host string) []span {
			return []span{jobOp(host, "ScheduleMethodJob", succeeded1, httpAttempt(host, "PUT", jobPath, "", 0, answered))}
		},
		wantMetrics: called("ScheduleMethodJob", "PUT", 1),
	}, {
		name: "ScheduleTwinJob",
		setup: func(t *testing.T, hub *httpmock.Hub, _ *service.Client) {
			hub.AddDevice("d1", nil)
		},
		run: func(t *testing.T, c *service.Client) error {
			_, err := c.ScheduleTwinJob(t.Context(), "job-1", service.TwinJob{Tags: map[string]any{"site": "a"}, DeviceIDs: []string{"d1"}}, nil)
			return err
		},
		wantSpans: func(host string) []span {
			return []span{jobOp(host, "ScheduleTwinJob", succeeded1, httpAttempt(host, "PUT", jobPath, "", 0, answered))}
		},
		wantMetrics: called("ScheduleTwinJob", "PUT", 1),
	}, {
		name:  "GetJob",
		setup: scheduled,
		run: func(t *testing.T, c *service.Client) error {
			_, err := c.GetJob(t.Context(), "job-1", nil)
			return err
		},
		wantSpans: func(host string) []span {
			return []span{jobOp(host, "GetJob", succeeded1, httpAttempt(host, "GET", jobPath, "", 0, answered))}
		},
		wantMetrics: called("GetJob", "GET", 1),
	}, {
		name:  "CancelJob",
		setup: scheduled,
		run: func(t *testing.T, c *service.Client) error {
			job, err := c.CancelJob(t.Context(), "job-1", nil)
			if err == nil && job.Status != service.JobStatusCancelled {
				t.Errorf("job = %+v, want it cancelled", job)
			}
			return err
		},
		wantSpans: func(host string) []span {
			return []span{jobOp(host, "CancelJob", succeeded1, httpAttempt(host, "POST", jobPath+"/cancel", "", 0, answered))}
		},
		wantMetrics: called("CancelJob", "POST", 1),
	}, {
		name:  "QueryJobs",
		setup: scheduled,
		run: func(t *testing.T, c *service.Client) error {
			n := 0
			for _, err := range c.QueryJobs(t.Context(), &service.JobQueryOptions{Type: service.JobTypeScheduleDeviceMethod}) {
				if err != nil {
					return err
				}
				n++
			}
			if n != 1 {
				t.Errorf("%d jobs, want 1", n)
			}
			return nil
		},
		wantSpans: func(host string) []span {
			return []span{jobOp(host, "QueryJobs", succeeded1, httpAttempt(host, "GET", "/jobs/v2/query", "jobType=scheduleDeviceMethod", 0, answered))}
		},
		wantMetrics: called("QueryJobs", "GET", 1),
	}, {
		name: "JobDeviceResults",
		setup: func(t *testing.T, hub *httpmock.Hub, c *service.Client) {
			scheduled(t, hub, c)
			if _, err := c.WaitJob(t.Context(), "job-1", nil); err != nil {
				t.Fatal(err)
			}
		},
		run: func(t *testing.T, c *service.Client) error {
			var got []string
			for r, err := range c.JobDeviceResults(t.Context(), "job-1", nil) {
				if err != nil {
					return err
				}
				got = append(got, r.DeviceID+" "+string(r.Outcome))
			}
			if diff := cmp.Diff([]string{"d1 " + string(service.OutcomeSucceeded)}, got); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
			return nil
		},
		wantSpans: func(host string) []span {
			return []span{jobOp(host, "JobDeviceResults", succeeded1, httpAttempt(host, "POST", "/devices/query", "", 0, answered))}
		},
		wantMetrics: called("JobDeviceResults", "POST", 1),
	}, {
		// The job's one call runs from 0 s to 3 s; WaitJob starts at
		// 0.5 s (no poll at the same instant as a change of the job) and
		// polls 1 s apart: running at 0.5, 1.5 and 2.5 s, completed at
		// 3.5 s. Each poll is a GetJob span (and call) of its own, with
		// its attempt.
		name: "WaitJob polls",
		setup: func(t *testing.T, hub *httpmock.Hub, c *service.Client) {
			scheduled(t, hub, c)
			time.Sleep(500 * time.Millisecond)
		},
		run: func(t *testing.T, c *service.Client) error {
			var seen []service.JobStatus
			job, err := c.WaitJob(t.Context(), "job-1", &service.WaitOptions{
				MinPollInterval: time.Second, MaxPollInterval: time.Second,
				OnProgress: func(j service.Job) { seen = append(seen, j.Status) },
			})
			if err == nil && job.Status != service.JobStatusCompleted {
				t.Errorf("job = %+v, want it completed", job)
			}
			want := []service.JobStatus{service.JobStatusRunning, service.JobStatusRunning, service.JobStatusRunning, service.JobStatusCompleted}
			if diff := cmp.Diff(want, seen); diff != "" {
				t.Errorf("polls (-want +got):\n%s", diff)
			}
			return err
		},
		wantSpans: func(host string) []span {
			poll := jobOp(host, "GetJob", succeeded1, httpAttempt(host, "GET", jobPath, "", 0, answered))
			return []span{poll, poll, poll, poll}
		},
		wantMetrics: called("GetJob", "GET", 4),
	}, {
		// Cancelled at 0.5 s, the job leaves a's call running until 2 s
		// (b is never reached at one device operation a second):
		// WaitForRunningCalls polls the job once, then queries the
		// running records at 0.5, 1.5 and 2.5 s, spans named WaitJob.
		name:    "WaitJob for running calls",
		hubOpts: &httpmock.Options{JobDeviceOpsPerSecond: 1},
		setup: func(t *testing.T, hub *httpmock.Hub, c *service.Client) {
			hub.AddDevice("a", &httpmock.DeviceOptions{Latency: 2 * time.Second, Handler: respond(200, "")})
			hub.AddDevice("b", &httpmock.DeviceOptions{Handler: respond(200, "")})
			if _, err := c.ScheduleMethodJob(t.Context(), "job-1", reboot("a", "b"), nil); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond)
			if _, err := c.CancelJob(t.Context(), "job-1", nil); err != nil {
				t.Fatal(err)
			}
		},
		run: func(t *testing.T, c *service.Client) error {
			_, err := c.WaitJob(t.Context(), "job-1", &service.WaitOptions{
				MinPollInterval: time.Second, MaxPollInterval: time.Second, WaitForRunningCalls: true,
			})
			return err
		},
		wantSpans: func(host string) []span {
			query := jobOp(host, "WaitJob", succeeded1, httpAttempt(host, "POST", "/devices/query", "", 0, answered))
			return []span{jobOp(host, "GetJob", succeeded1, httpAttempt(host, "GET", jobPath, "", 0, answered)), query, query, query}
		},
		wantMetrics: map[string]float64{
			"iothub.client.call.duration{iothub.operation=GetJob,iothub.outcome=succeeded}":        1,
			"iothub.client.call.duration{iothub.operation=WaitJob,iothub.outcome=succeeded}":       3,
			"http.client.request.duration{http.request.method=GET,http.response.status_code=200}":  1,
			"http.client.request.duration{http.request.method=POST,http.response.status_code=200}": 3,
			"iothub.client.attempts{iothub.operation=GetJob}":                                      1,
			"iothub.client.attempts{iothub.operation=WaitJob}":                                     3,
			"iothub.client.active_calls{iothub.operation=GetJob}":                                  0,
			"iothub.client.active_calls{iothub.operation=WaitJob}":                                 0,
			"iothub.auth.token.renewals{iothub.auth.kind=sas}":                                     1,
		},
	}, {
		name: "GetJob retried after 503",
		setup: func(t *testing.T, hub *httpmock.Hub, c *service.Client) {
			scheduled(t, hub, c)
			hub.AddFault(httpmock.Fault{Operation: httpmock.OperationJob, Code: int(iothub.ErrorCodeServiceUnavailable)})
		},
		run: func(t *testing.T, c *service.Client) error {
			_, err := c.GetJob(t.Context(), "job-1", nil)
			return err
		},
		wantSpans: func(host string) []span {
			return []span{jobOp(host, "GetJob", map[string]string{"iothub.outcome": "succeeded", "iothub.attempts": "2"},
				httpAttempt(host, "GET", jobPath, "", 0, hubError(false, "503", "503001", "ServiceUnavailable", "")),
				httpAttempt(host, "GET", jobPath, "", 1, answered))}
		},
		wantMetrics: map[string]float64{
			"iothub.client.call.duration{iothub.operation=GetJob,iothub.outcome=succeeded}":                      1,
			"http.client.request.duration{error.type=503,http.request.method=GET,http.response.status_code=503}": 1,
			"http.client.request.duration{http.request.method=GET,http.response.status_code=200}":                1,
			"iothub.client.attempts{iothub.operation=GetJob}":                                                    2,
			"iothub.client.retries{iothub.operation=GetJob}":                                                     1,
			"iothub.client.active_calls{iothub.operation=GetJob}":                                                0,
			"iothub.auth.token.renewals{iothub.auth.kind=sas}":                                                   1,
		},
	}, {
		name: "GetJob not found",
		run: func(t *testing.T, c *service.Client) error {
			_, err := c.GetJob(t.Context(), "job-1", nil)
			return err
		},
		wantCode: iothub.ErrorCodeJobNotFound,
		wantSpans: func(host string) []span {
			return []span{jobOp(host, "GetJob", hubError(true, "", "404002", "JobNotFound", "not-delivered"),
				httpAttempt(host, "GET", jobPath, "", 0, hubError(false, "404", "404002", "JobNotFound", "")))}
		},
		wantMetrics: map[string]float64{
			"iothub.client.call.duration{error.type=JobNotFound,iothub.operation=GetJob,iothub.outcome=not-delivered}": 1,
			"http.client.request.duration{error.type=404,http.request.method=GET,http.response.status_code=404}":       1,
			"iothub.client.attempts{iothub.operation=GetJob}":                                                          1,
			"iothub.client.active_calls{iothub.operation=GetJob}":                                                      0,
			"iothub.auth.token.renewals{iothub.auth.kind=sas}":                                                         1,
		},
	}, {
		name: "CancelJob not found",
		run: func(t *testing.T, c *service.Client) error {
			_, err := c.CancelJob(t.Context(), "job-1", nil)
			return err
		},
		wantCode: iothub.ErrorCodeJobNotFound,
		wantSpans: func(host string) []span {
			return []span{jobOp(host, "CancelJob", hubError(true, "", "404002", "JobNotFound", "not-delivered"),
				httpAttempt(host, "POST", jobPath+"/cancel", "", 0, hubError(false, "404", "404002", "JobNotFound", "")))}
		},
		wantMetrics: map[string]float64{
			"iothub.client.call.duration{error.type=JobNotFound,iothub.operation=CancelJob,iothub.outcome=not-delivered}": 1,
			"http.client.request.duration{error.type=404,http.request.method=POST,http.response.status_code=404}":         1,
			"iothub.client.attempts{iothub.operation=CancelJob}":                                                          1,
			"iothub.client.active_calls{iothub.operation=CancelJob}":                                                      0,
			"iothub.auth.token.renewals{iothub.auth.kind=sas}":                                                            1,
		},
	}, {
		// The hub's one active job is taken: the refusal is not retried
		// by the pipeline (no WaitForSlot) and is counted as throttled.
		name: "ScheduleMethodJob with no slot",
		setup: func(t *testing.T, hub *httpmock.Hub, c *service.Client) {
			scheduled(t, hub, c)
		},
		run: func(t *testing.T, c *service.Client) error {
			_, err := c.ScheduleMethodJob(t.Context(), "job-2", reboot("d1"), nil)
			return err
		},
		wantCode: iothub.ErrorCodeThrottlingMaxActiveJobCountExceeded,
		wantSpans: func(host string) []span {
			return []span{jobOp(host, "ScheduleMethodJob",
				hubError(true, "", "429004", "ThrottlingMaxActiveJobCountExceeded", "not-delivered"),
				httpAttempt(host, "PUT", "/jobs/v2/job-2", "", 0, hubError(false, "429", "429004", "ThrottlingMaxActiveJobCountExceeded", "")))}
		},
		wantMetrics: map[string]float64{
			"iothub.client.call.duration{error.type=ThrottlingMaxActiveJobCountExceeded,iothub.operation=ScheduleMethodJob,iothub.outcome=not-delivered}": 1,
			"http.client.request.duration{error.type=429,http.request.method=PUT,http.response.status_code=429}":                                          1,
			"iothub.client.attempts{iothub.operation=ScheduleMethodJob}":                                                                                  1,
			"iothub.client.throttled{iothub.operation=ScheduleMethodJob}":                                                                                 1,
			"iothub.client.active_calls{iothub.operation=ScheduleMethodJob}":                                                                              0,
			"iothub.auth.token.renewals{iothub.auth.kind=sas}":                                                                                            1,
		},
	}, {
		// WaitForSlot waits between requests of its own, outside the
		// pipeline's retries: each request is a ScheduleMethodJob call with
		// its span, the refused ones not-delivered. job-1 ends at 2.5 s;
		// the schedule is tried at 0, 1 (1 s backoff) and 3 s (2 s).
		name: "ScheduleMethodJob waiting for a slot",
		setup: func(t *testing.T, hub *httpmock.Hub, c *service.Client) {
			hub.AddDevice("d1", &httpmock.DeviceOptions{Latency: 2500 * time.Millisecond, Handler: respond(200, "")})
			if _, err := c.ScheduleMethodJob(t.Context(), "job-1", reboot("d1"), nil); err != nil {
				t.Fatal(err)
			}
		},
		run: func(t *testing.T, c *service.Client) error {
			_, err := c.ScheduleMethodJob(t.Context(), "job-2", reboot("d1"), &service.ScheduleJobOptions{WaitForSlot: true})
			return err
		},
		wantSpans: func(host string) []span {
			refused := jobOp(host, "ScheduleMethodJob",
				hubError(true, "", "429004", "ThrottlingMaxActiveJobCountExceeded", "not-delivered"),
				httpAttempt(host, "PUT", "/jobs/v2/job-2", "", 0, hubError(false, "429", "429004", "ThrottlingMaxActiveJobCountExceeded", "")))
			return []span{refused, refused, jobOp(host, "ScheduleMethodJob", succeeded1, httpAttempt(host, "PUT", "/jobs/v2/job-2", "", 0, answered))}
		},
		wantMetrics: map[string]float64{
			"iothub.client.call.duration{error.type=ThrottlingMaxActiveJobCountExceeded,iothub.operation=ScheduleMethodJob,iothub.outcome=not-delivered}": 2,
			"iothub.client.call.duration{iothub.operation=ScheduleMethodJob,iothub.outcome=succeeded}":                                                    1,
			"http.client.request.duration{error.type=429,http.request.method=PUT,http.response.status_code=429}":                                          2,
			"http.client.request.duration{http.request.method=PUT,http.response.status_code=200}":                                                         1,
			"iothub.client.attempts{iothub.operation=ScheduleMethodJob}":                                                                                  3,
			"iothub.client.throttled{iothub.operation=ScheduleMethodJob}":                                                                                 2,
			"iothub.client.active_calls{iothub.operation=ScheduleMethodJob}":                                                                              0,
			"iothub.auth.token.renewals{iothub.auth.kind=sas}":                                                                                            1,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub, setup, o := observeJobs(t, tt.hubOpts)
				if tt.setup != nil {
					tt.setup(t, hub, setup)
				}
				err := tt.run(t, o.client)
				switch he, ok := errors.AsType[*iothub.Error](err); {
				case tt.wantCode == 0 && err != nil:
					t.Fatalf("err = %v, want none", err)
				case tt.wantCode != 0 && (!ok || he.Code != tt.wantCode):
					t.Fatalf("err = %v, want the hub's %d", err, tt.wantCode)
				}
				if diff := cmp.Diff(tt.wantSpans(o.client.HostName()), o.tree()); diff != "" {
					t.Errorf("spans (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(tt.wantMetrics, o.metrics(t)); diff != "" {
					t.Errorf("metrics (-want +got):\n%s", diff)
				}
			})
		})
	}
}

// TestTelemetryJobsUnderCallerSpan: a caller's span around WaitJob holds
// its polls, each a GetJob span with its attempt. The job's call runs
// from 0 s to 1.2 s; the polls at 0.5 s and 1.5 s see it running, then
// completed.
func TestTelemetryJobsUnderCallerSpan(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, setup, o := observeJobs(t, nil)
		hub.AddDevice("d1", &httpmock.DeviceOptions{Latency: 1200 * time.Millisecond, Handler: respond(200, "")})
		if _, err := setup.ScheduleMethodJob(t.Context(), "job-1", reboot("d1"), nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		ctx, caller := o.tp.Tracer("test").Start(t.Context(), "caller")
		_, err := o.client.WaitJob(ctx, "job-1", &service.WaitOptions{MinPollInterval: time.Second, MaxPollInterval: time.Second})
		caller.End()
		if err != nil {
			t.Fatal(err)
		}
		host := o.client.HostName()
		poll := jobOp(host, "GetJob", succeeded1, httpAttempt(host, "GET", "/jobs/v2/job-1", "", 0, answered))
		want := []span{{Name: "caller", Kind: "internal", Attrs: map[string]string{}, Children: []span{poll, poll}}}
		if diff := cmp.Diff(want, o.tree()); diff != "" {
			t.Errorf("spans (-want +got):\n%s", diff)
		}
	})
}
