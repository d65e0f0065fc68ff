package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/pipeline"
	"github.com/hubkit/iothub/internal/wire"
)

// MaxJobIDLength is the longest job id IoT Hub accepts.
const MaxJobIDLength = 128

// MaxJobPageSize is the largest page size the SDK asks for in job queries.
const MaxJobPageSize = wire.MaxPageSize

// JobType is the kind of a jobs v2 job. Values the SDK does not know are
// kept as sent.
type JobType string

// The job types this package schedules.
const (
	// JobTypeScheduleDeviceMethod invokes a direct method on every
	// matching device.
	JobTypeScheduleDeviceMethod JobType = "scheduleDeviceMethod"
	// JobTypeScheduleUpdateTwin updates the twin (tags and desired
	// properties) of every matching device.
	JobTypeScheduleUpdateTwin JobType = "scheduleUpdateTwin"
)

// JobStatus is the status of a job. Values the SDK does not know are kept
// as sent. Note the spelling JobStatusCancelled (two Ls), unlike
// DeviceJobStatusCanceled.
type JobStatus string

// The job statuses IoT Hub reports.
const (
	JobStatusUnknown   JobStatus = "unknown"
	JobStatusEnqueued  JobStatus = "enqueued"
	JobStatusQueued    JobStatus = "queued"
	JobStatusScheduled JobStatus = "scheduled"
	JobStatusRunning   JobStatus = "running"
	JobStatusCompleted JobStatus = "completed"
	JobStatusFailed    JobStatus = "failed"
	JobStatusCancelled JobStatus = "cancelled"
)

// Done reports whether the job has ended: completed, failed or cancelled.
// It compares case-insensitively.
func (s JobStatus) Done() bool {
	for _, d := range []JobStatus{JobStatusCompleted, JobStatusFailed, JobStatusCancelled} {
		if strings.EqualFold(string(s), string(d)) {
			return true
		}
	}
	return false
}

// DeviceJobStatus is the status of one device's part in a job. Values the
// SDK does not know are kept as sent. Note the spelling DeviceJobStatusCanceled
// (one L), unlike JobStatusCancelled.
type DeviceJobStatus string

// The per-device statuses IoT Hub reports.
const (
	DeviceJobStatusPending   DeviceJobStatus = "pending"
	DeviceJobStatusScheduled DeviceJobStatus = "scheduled"
	DeviceJobStatusRunning   DeviceJobStatus = "running"
	DeviceJobStatusCompleted DeviceJobStatus = "completed"
	DeviceJobStatusFailed    DeviceJobStatus = "failed"
	DeviceJobStatusCanceled  DeviceJobStatus = "canceled"
)

// JobStatistics counts a job's devices by state (deviceJobStatistics on
// the wire).
type JobStatistics struct {
	DeviceCount    int `json:"deviceCount"`
	FailedCount    int `json:"failedCount"`
	SucceededCount int `json:"succeededCount"`
	RunningCount   int `json:"runningCount"`
	PendingCount   int `json:"pendingCount"`
}

// JobMethod is the direct method a job invokes (cloudToDeviceMethod on the
// wire).
type JobMethod struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload,omitempty"`
	ResponseTimeoutInSeconds int             `json:"responseTimeoutInSeconds,omitempty"`
	ConnectTimeoutInSeconds  int             `json:"connectTimeoutInSeconds,omitempty"`
}

// Job is a jobs v2 job as IoT Hub reports it (JobResponse on the wire).
type Job struct {
	// ID is the job id (jobId).
	ID string
	// Type is the job's kind.
	Type JobType
	// Status is the job's status.
	Status JobStatus
	// QueryCondition selects the job's devices.
	QueryCondition string
	// CreatedTime, StartTime and EndTime are zero when the hub did not
	// report them (EndTime until the job ends).
	CreatedTime, StartTime, EndTime time.Time
	// MaxExecutionTime bounds the job's run.
	MaxExecutionTime time.Duration
	// Method is the method a JobTypeScheduleDeviceMethod job invokes.
	Method *JobMethod
	// UpdateTwin is the twin patch of a JobTypeScheduleUpdateTwin job, as JSON.
	UpdateTwin json.RawMessage
	// FailureReason and StatusMessage explain a failed job.
	FailureReason, StatusMessage string
	// Statistics counts the devices by state; nil until the hub reports
	// them (it may not before the job runs).
	Statistics *JobStatistics
}

// jobWire is Job with its wire names.
type jobWire struct {
	JobID                     string          `json:"jobId"`
	Type                      JobType         `json:"type"`
	Status                    JobStatus       `json:"status"`
	QueryCondition            string          `json:"queryCondition,omitempty"`
	CreatedTime               hubTime         `json:"createdTime,omitzero"`
	StartTime                 hubTime         `json:"startTime,omitzero"`
	EndTime                   hubTime         `json:"endTime,omitzero"`
	MaxExecutionTimeInSeconds int64           `json:"maxExecutionTimeInSeconds,omitempty"`
	CloudToDeviceMethod       *JobMethod      `json:"cloudToDeviceMethod,omitempty"`
	UpdateTwin                json.RawMessage `json:"updateTwin,omitempty"`
	FailureReason             string          `json:"failureReason,omitempty"`
	StatusMessage             string          `json:"statusMessage,omitempty"`
	DeviceJobStatistics       *JobStatistics  `json:"deviceJobStatistics,omitempty"`
}

// UnmarshalJSON reads a JobResponse.
func (j *Job) UnmarshalJSON(b []byte) error {
	var w jobWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*j = Job{
		ID: w.JobID, Type: w.Type, Status: w.Status, QueryCondition: w.QueryCondition,
		CreatedTime: w.CreatedTime.Time, StartTime: w.StartTime.Time, EndTime: w.EndTime.Time,
		MaxExecutionTime: time.Duration(w.MaxExecutionTimeInSeconds) * time.Second,
		Method:           w.CloudToDeviceMethod, UpdateTwin: w.UpdateTwin,
		FailureReason: w.FailureReason, StatusMessage: w.StatusMessage, Statistics: w.DeviceJobStatistics,
	}
	return nil
}

// MarshalJSON writes the job as a JobResponse.
func (j Job) MarshalJSON() ([]byte, error) {
	return json.Marshal(jobWire{
		JobID: j.ID, Type: j.Type, Status: j.Status, QueryCondition: j.QueryCondition,
		CreatedTime: hubTime{j.CreatedTime}, StartTime: hubTime{j.StartTime}, EndTime: hubTime{j.EndTime},
		MaxExecutionTimeInSeconds: int64(j.MaxExecutionTime / time.Second),
		CloudToDeviceMethod:       j.Method, UpdateTwin: j.UpdateTwin,
		FailureReason: j.FailureReason, StatusMessage: j.StatusMessage, DeviceJobStatistics: j.Statistics,
	})
}

// hubTime is a time.Time that reads and writes IoT Hub timestamps as
// registry.Time does (internal/wire): "never" is the zero time.
type hubTime struct{ time.Time }

func (t *hubTime) UnmarshalJSON(b []byte) error {
	v, err := wire.ParseTime(b)
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

func (t hubTime) MarshalJSON() ([]byte, error) {
	return wire.AppendTime(make([]byte, 0, 30), t.Time), nil
}

// MethodJob describes a job that invokes a direct method on many devices.
// Give exactly one of QueryCondition and DeviceIDs.
type MethodJob struct {
	// Method is the method to invoke, validated as for
	// Client.InvokeDeviceMethod.
	Method MethodParams[any]
	// QueryCondition selects the devices: the body of a WHERE clause
	// without the WHERE keyword ("tags.building = '43'"), or "*" for all.
	QueryCondition string
	// DeviceIDs lists the devices; it becomes deviceId IN ['…', …].
	DeviceIDs []string
	// StartTime is when the job starts; zero means now.
	StartTime time.Time
	// MaxExecutionTime bounds the job's run, in whole seconds; zero
	// leaves it to the hub.
	MaxExecutionTime time.Duration
}

// TwinJob describes a job that updates the twins of many devices: their
// tags and desired properties are patched (merged; a nil value removes a
// property). Give exactly one of QueryCondition and DeviceIDs.
type TwinJob struct {
	// Tags and Desired are the patch; at least one must be non-empty.
	Tags, Desired map[string]any
	// QueryCondition and DeviceIDs select the devices; see MethodJob.
	QueryCondition string
	DeviceIDs      []string
	// StartTime is when the job starts; zero means now.
	StartTime time.Time
	// MaxExecutionTime bounds the job's run; zero leaves it to the hub.
	MaxExecutionTime time.Duration
}

// ScheduleJobOptions are the options of ScheduleMethodJob and
// ScheduleTwinJob. A nil *ScheduleJobOptions gives the defaults.
type ScheduleJobOptions struct {
	// WaitForSlot retries scheduling, with backoff, while the hub refuses
	// it because its active-job limit is reached (429004), until a slot
	// frees or ctx ends. By default that refusal is returned at once.
	WaitForSlot bool
}

// Backoff of WaitForSlot.
const (
	slotMinDelay = time.Second
	slotMaxDelay = 30 * time.Second
	// throttleRetries is how many more times a job operation throttled for
	// another reason than the active-job limit is tried.
	throttleRetries = 4
)

// Operation names of jobs, as errors and logs give them.
const (
	opScheduleMethodJob = "ScheduleMethodJob"
	opScheduleTwinJob   = "ScheduleTwinJob"
	opGetJob            = "GetJob"
	opCancelJob         = "CancelJob"
	opQueryJobs         = "QueryJobs"
	opWaitJob           = "WaitJob"
	opJobDeviceResults  = "JobDeviceResults"
)

// ScheduleMethodJob schedules a job that invokes spec.Method on the devices
// spec selects, from spec.StartTime, and returns the job as the hub
// accepted it (status queued). Follow it with WaitJob and
// JobDeviceResults. The credential needs ServiceConnect and registry
// rights (the iothubowner policy) or IoT Hub Data Contributor.
//
// Scheduling is idempotent by jobID: when a retry after a lost answer finds
// the job already there (409104) and it is the same kind of job with the
// same method, that job is returned. Errors: an *iothub.ArgumentError before
// anything is sent; an error matching iothub.ErrThrottled when the hub's
// active-job limit is reached (see ScheduleJobOptions.WaitForSlot); an error
// matching iothub.ErrConflict when another job has the id.
func (c *Client) ScheduleMethodJob(ctx context.Context, jobID string, spec MethodJob, options *ScheduleJobOptions) (Job, error) {
	const op = opScheduleMethodJob
	if err := checkJobID(op, jobID); err != nil {
		return Job{}, err
	}
	m, err := encodeMethod(op, spec.Method)
	if err != nil {
		return Job{}, err
	}
	cond, err := jobCondition(op, spec.QueryCondition, spec.DeviceIDs)
	if err != nil {
		return Job{}, err
	}
	body, err := jobRequest(op, jobID, JobTypeScheduleDeviceMethod, cond, spec.StartTime, spec.MaxExecutionTime, "cloudToDeviceMethod", m.body)
	if err != nil {
		return Job{}, err
	}
	return c.schedule(ctx, op, jobID, body, JobTypeScheduleDeviceMethod, spec.Method.Name, options)
}

// ScheduleTwinJob schedules a job that patches the twins of the devices
// spec selects, whatever their etag. Results and errors are as for
// ScheduleMethodJob.
func (c *Client) ScheduleTwinJob(ctx context.Context, jobID string, spec TwinJob, options *ScheduleJobOptions) (Job, error) {
	const op = opScheduleTwinJob
	if err := checkJobID(op, jobID); err != nil {
		return Job{}, err
	}
	if len(spec.Tags) == 0 && len(spec.Desired) == 0 {
		return Job{}, &iothub.ArgumentError{Operation: op, Field: "TwinJob.Tags", Rule: "Tags or Desired must not be empty"}
	}
	cond, err := jobCondition(op, spec.QueryCondition, spec.DeviceIDs)
	if err != nil {
		return Job{}, err
	}
	type props struct {
		Desired map[string]any `json:"desired,omitempty"`
	}
	patch := struct {
		Tags       map[string]any `json:"tags,omitempty"`
		Properties *props         `json:"properties,omitempty"`
		ETag       string         `json:"etag"`
	}{Tags: spec.Tags, ETag: "*"}
	if len(spec.Desired) > 0 {
		patch.Properties = &props{spec.Desired}
	}
	twin, err := json.Marshal(patch)
	if err != nil {
		return Job{}, &iothub.ArgumentError{Operation: op, Field: "TwinJob.Tags", Rule: "Tags and Desired must encode as JSON", Err: err}
	}
	body, err := jobRequest(op, jobID, JobTypeScheduleUpdateTwin, cond, spec.StartTime, spec.MaxExecutionTime, "updateTwin", twin)
	if err != nil {
		return Job{}, err
	}
	return c.schedule(ctx, op, jobID, body, JobTypeScheduleUpdateTwin, "", options)
}

// checkJobID applies IoT Hub's rule: 1 to 128 characters, none of them
// control characters.
func checkJobID(op, id string) error {
	rule := ""
	switch {
	case id == "":
		rule = "must not be empty"
	case len(id) > MaxJobIDLength:
		rule = fmt.Sprintf("must be at most %d characters (got %d)", MaxJobIDLength, len(id))
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		rule = "must not contain control characters"
	}
	if rule != "" {
		return &iothub.ArgumentError{Operation: op, Field: "jobID", Rule: rule}
	}
	return nil
}

// jobCondition returns the queryCondition: the caller's, or deviceId IN
// [...] built from ids with each quoted and ' escaped.
func jobCondition(op, cond string, deviceIDs []string) (string, error) {
	bad := func(field, rule string) error { return &iothub.ArgumentError{Operation: op, Field: field, Rule: rule} }
	cond = strings.TrimSpace(cond)
	switch {
	case cond != "" && len(deviceIDs) > 0:
		return "", bad("QueryCondition", "give QueryCondition or DeviceIDs, not both")
	case cond == "" && len(deviceIDs) == 0:
		return "", bad("QueryCondition", "give QueryCondition (\"*\" for every device) or DeviceIDs")
	case cond != "":
		if len(cond) >= 6 && strings.EqualFold(cond[:6], "WHERE ") {
			return "", bad("QueryCondition", "must leave out the WHERE keyword")
		}
		return cond, nil
	}
	var b strings.Builder
	b.WriteString("deviceId IN [")
	for i, id := range deviceIDs {
		if rule := wire.CheckID(id); rule != "" {
			return "", bad(fmt.Sprintf("DeviceIDs[%d]", i), rule)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(id, "'", `\'`))
		b.WriteByte('\'')
	}
	b.WriteByte(']')
	return b.String(), nil
}

// jobRequest encodes a JobRequest.
func jobRequest(op, jobID string, typ JobType, cond string, start time.Time, maxExec time.Duration, field string, spec json.RawMessage) ([]byte, error) {
	if maxExec < 0 {
		return nil, &iothub.ArgumentError{Operation: op, Field: "MaxExecutionTime", Rule: fmt.Sprintf("must not be negative; got %v", maxExec)}
	}
	if start.IsZero() {
		start = time.Now()
	}
	req := map[string]any{
		"jobId":          jobID,
		"type":           typ,
		field:            spec,
		"queryCondition": cond,
		"startTime":      start.UTC().Format("2006-01-02T15:04:05.000Z"),
	}
	if maxExec > 0 {
		req["maxExecutionTimeInSeconds"] = int64((maxExec + time.Second - 1) / time.Second)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(req); err != nil {
		return nil, &iothub.ArgumentError{Operation: op, Field: "job", Rule: "must encode as JSON", Err: err}
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// schedule sends the PUT, waiting for a slot if asked, and resolves a
// 409104 met after an attempt whose outcome is unknown.
func (c *Client) schedule(ctx context.Context, op, jobID string, body []byte, typ JobType, method string, options *ScheduleJobOptions) (Job, error) {
	var opts ScheduleJobOptions
	if options != nil {
		opts = *options
	}
	mayHaveRun := false
	throttled := 0
	delay := slotMinDelay
	for {
		resp, err := c.p.Do(ctx, &pipeline.Request{
			Operation: op,
			Method:    http.MethodPut,
			Path:      "/jobs/v2/" + wire.EscapeID(jobID),
			Body:      body,
			Retry:     pipeline.RetryIdempotent,
			Policy:    leaveThrottled, // a full job queue is waited for below
		})
		if err == nil {
			return decodeJob(op, resp)
		}
		he, ok := errors.AsType[*iothub.Error](err)
		switch {
		case ok && he.Code == iothub.ErrorCodeJobAlreadyExists && (mayHaveRun || he.EarlierAttemptMayHaveRun):
			job, gerr := c.GetJob(ctx, jobID, nil)
			if gerr == nil && job.Type == typ && (method == "" || job.Method != nil && job.Method.MethodName == method) {
				return job, nil
			}
			return Job{}, err
		case ok && he.Code == iothub.ErrorCodeThrottlingMaxActiveJobCountExceeded:
			if !opts.WaitForSlot {
				return Job{}, fmt.Errorf("iothub: %s %q: the hub's limit of active jobs is reached (Free and S1 allow 1 at a time, S2 5, S3 10); wait for a job to end, cancel one, or set ScheduleJobOptions.WaitForSlot: %w", op, jobID, err)
			}
		case ok && errors.Is(he, iothub.ErrThrottled) && throttled < throttleRetries:
			throttled++
		default:
			return Job{}, err
		}
		if errors.Is(err, iothub.ErrOutcomeUnknown) {
			mayHaveRun = true
		}
		if he.RetryAfter > delay {
			delay = he.RetryAfter
		}
		if !sleepCtx(ctx, delay) {
			return Job{}, fmt.Errorf("iothub: %s %q: gave up waiting to schedule: %w (last answer: %w)", op, jobID, ctx.Err(), err)
		}
		delay = min(2*delay, slotMaxDelay)
	}
}

// sleepCtx waits for d, reporting false when ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func decodeJob(op string, resp *pipeline.Response) (Job, error) {
	var j Job
	if err := json.Unmarshal(resp.Body, &j); err != nil {
		return Job{}, &iothub.BodyError{Operation: op, StatusCode: resp.StatusCode, Err: fmt.Errorf("decode job: %w", err)}
	}
	return j, nil
}

// GetJob returns a job. When there is none the error is an *iothub.Error
// with Code iothub.ErrorCodeJobNotFound (404002).
func (c *Client) GetJob(ctx context.Context, jobID string, options *ReadOptions) (Job, error) {
	if err := checkJobID(opGetJob, jobID); err != nil {
		return Job{}, err
	}
	resp, err := c.p.Do(ctx, &pipeline.Request{Operation: opGetJob, Method: http.MethodGet, Path: "/jobs/v2/" + wire.EscapeID(jobID), Retry: pipeline.RetryIdempotent})
	if err != nil {
		return Job{}, err
	}
	return decodeJob(opGetJob, resp)
}

// CancelJob cancels a job and returns it (status JobStatusCancelled).
// Devices the job has not reached yet are not called (their records become
// DeviceJobStatusCanceled); calls in flight run to their end. Cancelling a
// job that already ended returns it unchanged.
func (c *Client) CancelJob(ctx context.Context, jobID string, options *CancelJobOptions) (Job, error) {
	if err := checkJobID(opCancelJob, jobID); err != nil {
		return Job{}, err
	}
	resp, err := c.p.Do(ctx, &pipeline.Request{Operation: opCancelJob, Method: http.MethodPost, Path: "/jobs/v2/" + wire.EscapeID(jobID) + "/cancel", Retry: pipeline.RetryIdempotent})
	if err != nil {
		return Job{}, err
	}
	return decodeJob(opCancelJob, resp)
}

// CancelJobOptions are the options of CancelJob. It is reserved for future
// options; nil is the default.
type CancelJobOptions struct{}

// JobQueryOptions filter and page QueryJobs. A nil *JobQueryOptions lists
// every job.
type JobQueryOptions struct {
	// Type and Status, when not empty, select the jobs of that type and
	// status.
	Type   JobType
	Status JobStatus
	// PageSize is the number of jobs asked for per page, 0 to
	// MaxJobPageSize; 0 lets the hub choose.
	PageSize int
}

// QueryJobs lists jobs, newest history included (IoT Hub keeps 30 days),
// and yields each as its page arrives. Nothing is read until the loop
// starts, and the sequence can be ranged again to rerun the query. An error
// is yielded once, and ends the sequence.
func (c *Client) QueryJobs(ctx context.Context, options *JobQueryOptions) iter.Seq2[Job, error] {
	var opts JobQueryOptions
	if options != nil {
		opts = *options
	}
	return func(yield func(Job, error) bool) {
		if rule := wire.CheckPageSize(opts.PageSize); rule != "" {
			yield(Job{}, &iothub.ArgumentError{Operation: opQueryJobs, Field: "JobQueryOptions.PageSize", Rule: rule})
			return
		}
		q := url.Values{}
		if opts.Type != "" {
			q.Set("jobType", string(opts.Type))
		}
		if opts.Status != "" {
			q.Set("jobStatus", string(opts.Status))
		}
		req := pipeline.Request{Operation: opQueryJobs, Method: http.MethodGet, Path: "/jobs/v2/query", Query: q.Encode(), Retry: pipeline.RetryIdempotent}
		pages(ctx, c, req, opts.PageSize, "", yield)
	}
}

// pages runs a paged request and yields its items decoded as T.
func pages[T any](ctx context.Context, c *Client, req pipeline.Request, pageSize int, token string, yield func(T, error) bool) {
	fetch := func(ctx context.Context, h http.Header) (int, http.Header, []byte, error) {
		r := req
		r.Header = h
		resp, err := c.p.Do(ctx, &r)
		if err != nil {
			return 0, nil, nil, err
		}
		return resp.StatusCode, resp.Header, resp.Body, nil
	}
	decodeErr := func(page wire.Page, err error) error {
		return &iothub.BodyError{Operation: req.Operation, StatusCode: page.StatusCode, Err: fmt.Errorf("decode answer: %w", err)}
	}
	wire.Items(ctx, wire.NewPager(fetch, pageSize, token), decodeErr, yield)
}

// WaitOptions are the options of WaitJob. A nil *WaitOptions gives the
// defaults.
type WaitOptions struct {
	// MinPollInterval is the first wait between two polls; it doubles up
	// to MaxPollInterval. Defaults 1 s and 15 s.
	MinPollInterval, MaxPollInterval time.Duration
	// WaitForRunningCalls, when set, makes WaitJob wait, after the job
	// ends cancelled or failed, until none of the device calls the job had
	// started is still running. Such an end stops the job from starting
	// calls, but those already started run to their end (up to the
	// method's connect and response timeouts), and until then their device
	// records say DeviceJobStatusRunning (OutcomeUnknown in
	// JobDeviceResults). With this option, JobDeviceResults read after
	// WaitJob returns tells how each of those calls ended.
	//
	// Only running records are waited for: pending, scheduled and canceled
	// records were not started (JobDeviceResults reports them
	// OutcomeNotDelivered), and an ended job starts no more calls. A
	// completed job is returned at once, as without this option.
	//
	// It costs one query per poll (POST /devices/query over devices.jobs,
	// asking for one record of the job still running), counted against the
	// hub's query throttle (20 a minute per unit on S1 and S2) though not
	// billed as messages. The polls start again at MinPollInterval and
	// back off as the job's polls do. The wait is bounded only by ctx (and
	// by how long the hub takes to end the calls): when ctx ends first,
	// WaitJob returns the ended job and an error matching ctx.Err().
	WaitForRunningCalls bool
	// OnProgress, when set, is called with the job after every poll of
	// the job, including the last; Job.Statistics carries the device
	// counts once the hub reports them. The queries of WaitForRunningCalls
	// do not call it.
	OnProgress func(Job)
}

// Default poll intervals of WaitJob.
const (
	DefaultMinPollInterval = time.Second
	DefaultMaxPollInterval = 15 * time.Second
)

// WaitJob polls a job until it ends (completed, failed or cancelled) and
// returns it; with WaitOptions.WaitForRunningCalls, a job that ended
// cancelled or failed is returned once none of the calls it started is
// still running. When ctx ends first it returns the last job seen and an
// error matching ctx.Err(); an error from a poll is returned at once (reads
// are retried by the client's retry policy first), with the last job seen.
func (c *Client) WaitJob(ctx context.Context, jobID string, options *WaitOptions) (Job, error) {
	var opts WaitOptions
	if options != nil {
		opts = *options
	}
	if opts.MinPollInterval <= 0 {
		opts.MinPollInterval = DefaultMinPollInterval
	}
	if opts.MaxPollInterval <= 0 {
		opts.MaxPollInterval = DefaultMaxPollInterval
	}
	if opts.MaxPollInterval < opts.MinPollInterval {
		return Job{}, &iothub.ArgumentError{Operation: opWaitJob, Field: "WaitOptions.MaxPollInterval", Rule: "must not be below MinPollInterval"}
	}
	delay := opts.MinPollInterval
	var last Job
	for {
		job, err := c.GetJob(ctx, jobID, nil)
		if err != nil {
			return last, err
		}
		last = job
		if opts.OnProgress != nil {
			opts.OnProgress(job)
		}
		if job.Status.Done() {
			if !opts.WaitForRunningCalls || strings.EqualFold(string(job.Status), string(JobStatusCompleted)) {
				return job, nil
			}
			return job, c.waitRunningCalls(ctx, job, opts)
		}
		if !sleepCtx(ctx, delay) {
			return last, fmt.Errorf("iothub: %s %q: stopped waiting with the job %s: %w", opWaitJob, jobID, last.Status, ctx.Err())
		}
		delay = min(2*delay, opts.MaxPollInterval)
	}
}

// waitRunningCalls polls the ended job's device records, one query a poll,
// until none is running.
func (c *Client) waitRunningCalls(ctx context.Context, job Job, opts WaitOptions) error {
	for delay := opts.MinPollInterval; ; delay = min(2*delay, opts.MaxPollInterval) {
		running, err := c.anyRunning(ctx, job.ID)
		if err != nil {
			return fmt.Errorf("iothub: %s %q: the job ended %s; reading whether its calls still run: %w", opWaitJob, job.ID, job.Status, err)
		}
		if !running {
			return nil
		}
		if !sleepCtx(ctx, delay) {
			return fmt.Errorf("iothub: %s %q: stopped waiting with the job %s and device calls it started still running: %w", opWaitJob, job.ID, job.Status, ctx.Err())
		}
	}
}

// anyRunning reports whether a device record of the job is running. It
// asks for the running records one per page and stops at the first, so a
// poll is one request unless the hub answers empty pages with a
// continuation. The status is checked here too, in any case, so a hub that
// ignored the condition would cost more pages, not a wrong answer.
func (c *Client) anyRunning(ctx context.Context, jobID string) (bool, error) {
	req := jobRecordsRequest(opWaitJob, jobID, " AND devices.jobs.status = '"+string(DeviceJobStatusRunning)+"'")
	running := false
	var qerr error
	pages(ctx, c, req, 1, "", func(w deviceJobWire, err error) bool {
		if err != nil {
			qerr = err
			return false
		}
		running = strings.EqualFold(string(w.Status), string(DeviceJobStatusRunning))
		return !running
	})
	return running, qerr
}

// QueryOptions are the options of a query. A nil *QueryOptions gives the
// defaults.
type QueryOptions struct {
	// PageSize is the number of items asked for per page
	// (x-ms-max-item-count), 0 to MaxJobPageSize; 0 lets the hub choose
	// (100). The hub may return fewer.
	PageSize int
	// ContinuationToken resumes a query where an earlier one stopped.
	ContinuationToken string
}

// DeviceJobResult is one device's part in a job (a devices.jobs row),
// with its Outcome in the fan-out model.
type DeviceJobResult struct {
	DeviceID string
	JobID    string
	JobType  JobType
	Status   DeviceJobStatus
	// Outcome classifies the result; see JobDeviceResults.
	Outcome Outcome
	// Response is the device's answer to a method job's call; nil when it
	// did not answer.
	Response *MethodResult[json.RawMessage]
	// ErrorCode is the hub's code for a failed device, such as
	// iothub.ErrorCodeDeviceNotOnline; 0 when it gave none or one the SDK
	// does not know. The hub sends it as a name or a number.
	ErrorCode iothub.ErrorCode
	// ErrorName is the code's name, such as "DeviceNotOnline": as the hub
	// sent it, or the SDK's name for a number. Some codes have a name only,
	// such as "JobExecutionTimeExceeded".
	ErrorName string
	// ErrorDescription is the hub's description of the failure.
	ErrorDescription string
	// The record's times; zero when the hub reports "never".
	StartTime, EndTime, CreatedTime, LastUpdatedTime time.Time
}

// deviceJobWire is a devices.jobs row.
type deviceJobWire struct {
	DeviceID               string          `json:"deviceId"`
	JobID                  string          `json:"jobId"`
	JobType                JobType         `json:"jobType"`
	Status                 DeviceJobStatus `json:"status"`
	StartTimeUTC           hubTime         `json:"startTimeUtc"`
	EndTimeUTC             hubTime         `json:"endTimeUtc"`
	CreatedDateTimeUTC     hubTime         `json:"createdDateTimeUtc"`
	LastUpdatedDateTimeUTC hubTime         `json:"lastUpdatedDateTimeUtc"`
	Outcome                *struct {
		DeviceMethodResponse *struct {
			Status  int             `json:"status"`
			Payload json.RawMessage `json:"payload"`
		} `json:"deviceMethodResponse"`
	} `json:"outcome"`
	Error *struct {
		Code        json.RawMessage `json:"code"`
		Description string          `json:"description"`
	} `json:"error"`
}

// result maps the row to a DeviceJobResult.
func (w deviceJobWire) result() DeviceJobResult {
	r := DeviceJobResult{
		DeviceID: w.DeviceID, JobID: w.JobID, JobType: w.JobType, Status: w.Status,
		StartTime: w.StartTimeUTC.Time, EndTime: w.EndTimeUTC.Time,
		CreatedTime: w.CreatedDateTimeUTC.Time, LastUpdatedTime: w.LastUpdatedDateTimeUTC.Time,
	}
	if w.Outcome != nil && w.Outcome.DeviceMethodResponse != nil {
		p := w.Outcome.DeviceMethodResponse.Payload
		if len(p) == 0 {
			p = json.RawMessage("null")
		}
		r.Response = &MethodResult[json.RawMessage]{Status: w.Outcome.DeviceMethodResponse.Status, Payload: p}
	}
	if w.Error != nil {
		r.ErrorCode, r.ErrorName = wire.ParseCode(w.Error.Code)
		r.ErrorDescription = w.Error.Description
	}
	r.Outcome = deviceJobOutcome(r)
	return r
}

// notDeliveredCodes are the device-record error codes after which IoT Hub
// guarantees the device was not reached or not changed.
var notDeliveredCodes = map[iothub.ErrorCode]bool{
	iothub.ErrorCodeDeviceNotFound:  true,
	iothub.ErrorCodeModuleNotFound:  true,
	iothub.ErrorCodeDeviceNotOnline: true,
	// Twin jobs: the patch was refused.
	iothub.ErrorCodePreconditionFailed: true,
	iothub.ErrorCodeArgumentInvalid:    true,
}

// deviceJobOutcome classifies a device record.
func deviceJobOutcome(r DeviceJobResult) Outcome {
	switch DeviceJobStatus(strings.ToLower(string(r.Status))) {
	case DeviceJobStatusCompleted:
		if r.Response == nil || r.Response.Status >= 200 && r.Response.Status < 300 {
			return OutcomeSucceeded // a twin update, or a 2xx answer
		}
		return OutcomeDeviceError
	case DeviceJobStatusPending, DeviceJobStatusScheduled, DeviceJobStatusCanceled:
		return OutcomeNotDelivered
	case DeviceJobStatusFailed:
		if r.ErrorName == "JobExecutionTimeExceeded" {
			return OutcomeNotDelivered // never started before the deadline
		}
		if code := r.ErrorCode; code != 0 && (notDeliveredCodes[code] || code.HTTPStatus() == http.StatusTooManyRequests) {
			return OutcomeNotDelivered
		}
	}
	return OutcomeUnknown
}

// JobDeviceResults yields the per-device results of a job (the
// devices.jobs rows) as their pages arrive, each with its Outcome:
//
//   - OutcomeSucceeded: completed, and the device answered 2xx (or, for a
//     twin job, the twin was updated);
//   - OutcomeDeviceError: completed with another device status;
//   - OutcomeNotDelivered: not reached (pending or canceled), or failed
//     with DeviceNotFound, DeviceNotOnline, a throttling code, or (twin
//     jobs) a refused patch;
//   - OutcomeUnknown: failed with GatewayTimeout (504101: the method may
//     have run) or a code the SDK cannot place, or still running.
//
// Nothing is read until the loop starts, and the sequence can be ranged
// again. An error is yielded once, and ends the sequence.
func (c *Client) JobDeviceResults(ctx context.Context, jobID string, options *QueryOptions) iter.Seq2[DeviceJobResult, error] {
	var opts QueryOptions
	if options != nil {
		opts = *options
	}
	return func(yield func(DeviceJobResult, error) bool) {
		if err := checkJobID(opJobDeviceResults, jobID); err != nil {
			yield(DeviceJobResult{}, err)
			return
		}
		if rule := wire.CheckPageSize(opts.PageSize); rule != "" {
			yield(DeviceJobResult{}, &iothub.ArgumentError{Operation: opJobDeviceResults, Field: "QueryOptions.PageSize", Rule: rule})
			return
		}
		req := jobRecordsRequest(opJobDeviceResults, jobID, "")
		pages(ctx, c, req, opts.PageSize, opts.ContinuationToken, func(w deviceJobWire, err error) bool {
			if err != nil {
				return yield(DeviceJobResult{}, err)
			}
			return yield(w.result(), nil)
		})
	}
}

// jobRecordsRequest is the query of a job's device records (the
// devices.jobs rows), with and, when not empty, appended to its condition
// (" AND …").
func jobRecordsRequest(op, jobID, and string) pipeline.Request {
	q := "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(jobID) + "'" + and
	body, _ := json.Marshal(struct {
		Query string `json:"query"`
	}{q})
	return pipeline.Request{Operation: op, Method: http.MethodPost, Path: "/devices/query", Body: body, Retry: pipeline.RetryIdempotent}
}
