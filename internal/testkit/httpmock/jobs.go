package httpmock

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/hubkit/iothub"
)

// Jobs v2 limits and defaults, as an S1 hub applies them.
const (
	// DefaultMaxActiveJobs is how many jobs may be active at once on a
	// hub whose Options.MaxActiveJobs is zero: 1, as on Free and S1 (S2
	// allows 5, S3 10).
	DefaultMaxActiveJobs = 1
	// DefaultJobDeviceOpsPerSecond is the device-operation rate of jobs
	// on a hub whose Options.JobDeviceOpsPerSecond is zero: 10/s, as on S1.
	DefaultJobDeviceOpsPerSecond = 10
	// DefaultJobMaxExecutionSeconds is the maximum execution time of a job
	// whose request leaves maxExecutionTimeInSeconds out or sets it to 0.
	DefaultJobMaxExecutionSeconds = 3600
	// MaxJobIDLength is the longest job id accepted.
	MaxJobIDLength = 128
)

// OperationJob is the jobs v2 REST operations (create, get, cancel,
// query), for faults. The method calls and twin updates a job makes on its
// devices are not requests, but OperationMethod faults apply to a job's
// method calls too, as they would to a direct call: an error answer fails
// the device record without delivering the method; AfterDelivery delivers
// it and then fails the record (504101 GatewayTimeout unless the fault
// names a code), as when the device's answer is lost; a Delay holds the
// call. Drop faults break connections, which a job's calls do not have,
// so they are left for REST requests.
const OperationJob Operation = "job"

// Job types and statuses on the wire.
const (
	jobTypeMethod = "scheduleDeviceMethod"
	jobTypeTwin   = "scheduleUpdateTwin"

	jobQueued    = "queued"
	jobScheduled = "scheduled"
	jobRunning   = "running"
	jobCompleted = "completed"
	jobFailed    = "failed"
	jobCancelled = "cancelled" // two Ls for jobs

	devPending   = "pending"
	devRunning   = "running"
	devCompleted = "completed"
	devFailed    = "failed"
	devCanceled  = "canceled" // one L for device records
)

// jobExecutionTimeExceeded is the error code of a device record a job never
// reached before its maximum execution time passed. The documentation does
// not name one; this simulator's choice.
const jobExecutionTimeExceeded = "JobExecutionTimeExceeded"

// Entra data actions of the jobs routes.
const actJobsWrite = "jobs/write"

// jobVerb is a jobs route verb: SAS needs ServiceConnect and registry
// rights (as the iothubowner policy grants), Entra the jobs data actions.
// The request is metered by the jobs-operations throttle (after faults).
func (h *Hub) jobVerb(method string, fn serveFunc) verb {
	metered := func(w http.ResponseWriter, r *http.Request, rq *routed) {
		if e := h.throttle.jobOp(); e != nil {
			e.write(w, rq.now)
			return
		}
		fn(w, r, rq)
	}
	v := verb{method: method, rights: ServiceConnect | RegistryRead, action: actJobsRead, op: OperationJob, serve: metered}
	if method != http.MethodGet {
		v.rights |= RegistryWrite
		v.action = actJobsWrite
	}
	return v
}

// jobEngine runs a hub's jobs. Its mutable fields are guarded by Hub.mu.
type jobEngine struct {
	maxActive int
	interval  time.Duration // between two device operations, hub-wide
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	jobs   map[string]*job
	order  []*job // in order of creation
	next   time.Time
	closed bool
}

func newJobEngine(maxActive int, rate float64) *jobEngine {
	if maxActive <= 0 {
		maxActive = DefaultMaxActiveJobs
	}
	if rate <= 0 {
		rate = DefaultJobDeviceOpsPerSecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &jobEngine{
		maxActive: maxActive,
		interval:  time.Duration(float64(time.Second) / rate),
		ctx:       ctx,
		cancel:    cancel,
		jobs:      make(map[string]*job),
	}
}

// reserve returns when the next device operation may start. The caller
// holds Hub.mu.
func (e *jobEngine) reserve(now time.Time) time.Time {
	slot := e.next
	if slot.Before(now) {
		slot = now
	}
	e.next = slot.Add(e.interval)
	return slot
}

// job is one jobs v2 job. Its mutable fields are guarded by Hub.mu.
type job struct {
	id      string
	typ     string
	cond    string
	where   expr // nil: every device
	method  *methodRequest
	update  *twinUpdate
	etag    string          // updateTwin.etag
	twinRaw json.RawMessage // updateTwin as sent, compacted
	maxExec time.Duration
	created time.Time
	start   time.Time

	status    string
	failure   string
	end       time.Time
	running   bool // the device records exist
	devices   []*deviceJob
	cancelled chan struct{} // closed by cancel
}

// active reports whether the job counts against the active-job limit.
func (j *job) active() bool {
	switch j.status {
	case jobQueued, jobScheduled, jobRunning:
		return true
	}
	return false
}

// deviceJob is one device's record of a job; guarded by Hub.mu.
type deviceJob struct {
	deviceID    string
	status      string
	created     time.Time
	updated     time.Time
	start, end  time.Time
	hasResponse bool
	respStatus  int
	respPayload json.RawMessage
	errCode     string
	errDesc     string
}

// jobStats is deviceJobStatistics.
type jobStats struct {
	DeviceCount    int `json:"deviceCount"`
	FailedCount    int `json:"failedCount"`
	SucceededCount int `json:"succeededCount"`
	RunningCount   int `json:"runningCount"`
	PendingCount   int `json:"pendingCount"`
}

// jobWire is a JobResponse.
type jobWire struct {
	JobID                     string          `json:"jobId"`
	QueryCondition            string          `json:"queryCondition,omitempty"`
	CreatedTime               string          `json:"createdTime"`
	StartTime                 string          `json:"startTime"`
	EndTime                   string          `json:"endTime,omitempty"`
	MaxExecutionTimeInSeconds int64           `json:"maxExecutionTimeInSeconds"`
	Type                      string          `json:"type"`
	CloudToDeviceMethod       any             `json:"cloudToDeviceMethod,omitempty"`
	UpdateTwin                json.RawMessage `json:"updateTwin,omitempty"`
	Status                    string          `json:"status"`
	FailureReason             string          `json:"failureReason,omitempty"`
	DeviceJobStatistics       *jobStats       `json:"deviceJobStatistics,omitempty"`
}

// methodWire is cloudToDeviceMethod as the hub echoes it.
type methodWire struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds int64           `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  int64           `json:"connectTimeoutInSeconds"`
}

// wire is the job's JobResponse. The caller holds Hub.mu.
func (j *job) wire() jobWire {
	w := jobWire{
		JobID:                     j.id,
		QueryCondition:            j.cond,
		CreatedTime:               formatTime(j.created),
		StartTime:                 formatTime(j.start),
		MaxExecutionTimeInSeconds: int64(j.maxExec / time.Second),
		Type:                      j.typ,
		UpdateTwin:                j.twinRaw,
		Status:                    j.status,
		FailureReason:             j.failure,
	}
	if !j.end.IsZero() {
		w.EndTime = formatTime(j.end)
	}
	if m := j.method; m != nil {
		p := m.payload
		if p == nil {
			p = json.RawMessage("null")
		}
		w.CloudToDeviceMethod = methodWire{m.name, p, int64(m.responseTimeout / time.Second), int64(m.connectTimeout / time.Second)}
	}
	if j.running {
		s := &jobStats{DeviceCount: len(j.devices)}
		for _, d := range j.devices {
			switch d.status {
			case devCompleted:
				s.SucceededCount++
			case devFailed:
				s.FailedCount++
			case devRunning:
				s.RunningCount++
			case devPending:
				s.PendingCount++
			}
		}
		w.DeviceJobStatistics = s
	}
	return w
}

// deviceJobWire is a devices.jobs row.
type deviceJobWire struct {
	DeviceID               string             `json:"deviceId"`
	JobID                  string             `json:"jobId"`
	JobType                string             `json:"jobType"`
	Status                 string             `json:"status"`
	StartTimeUTC           string             `json:"startTimeUtc"`
	EndTimeUTC             string             `json:"endTimeUtc"`
	CreatedDateTimeUTC     string             `json:"createdDateTimeUtc"`
	LastUpdatedDateTimeUTC string             `json:"lastUpdatedDateTimeUtc"`
	Outcome                *deviceOutcomeWire `json:"outcome,omitempty"`
	Error                  *deviceErrorWire   `json:"error,omitempty"`
}

type deviceOutcomeWire struct {
	DeviceMethodResponse *struct {
		Status  int             `json:"status"`
		Payload json.RawMessage `json:"payload"`
	} `json:"deviceMethodResponse,omitempty"`
}

type deviceErrorWire struct {
	Code        string `json:"code"`
	Description string `json:"description"`
}

// wire is the device record's devices.jobs row. The caller holds Hub.mu.
func (d *deviceJob) wire(j *job) deviceJobWire {
	w := deviceJobWire{
		DeviceID:               d.deviceID,
		JobID:                  j.id,
		JobType:                j.typ,
		Status:                 d.status,
		StartTimeUTC:           formatTime(d.start),
		EndTimeUTC:             formatTime(d.end),
		CreatedDateTimeUTC:     formatTime(d.created),
		LastUpdatedDateTimeUTC: formatTime(d.updated),
	}
	if d.hasResponse {
		p := d.respPayload
		if p == nil {
			p = json.RawMessage("null")
		}
		w.Outcome = &deviceOutcomeWire{DeviceMethodResponse: &struct {
			Status  int             `json:"status"`
			Payload json.RawMessage `json:"payload"`
		}{d.respStatus, p}}
	}
	if d.errCode != "" {
		w.Error = &deviceErrorWire{Code: d.errCode, Description: d.errDesc}
	}
	return w
}

// Close stops the hub's background work: the jobs in progress stop where
// they are (calls in flight end as if the caller went away) and Close
// waits for them. Requests are still served afterwards, but new jobs are
// refused with 503. Close may be called more than once; inside a
// testing/synctest bubble, call it before the bubble ends.
func (h *Hub) Close() {
	h.mu.Lock()
	h.jobs.closed = true
	h.mu.Unlock()
	h.jobs.cancel()
	h.jobs.wg.Wait()
}

// validJobID checks a job id from the path: 1 to 128 characters, no
// control characters.
func validJobID(id string) *hubError {
	switch {
	case id == "":
		return newError(iothub.ErrorCodeArgumentNull, "The jobId cannot be null or empty.")
	case len(id) > MaxJobIDLength:
		return invalid("The jobId must be at most %d characters long.", MaxJobIDLength)
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return invalid("The jobId must not contain control characters.")
	}
	return nil
}

// parseJobRequest validates a JobRequest body for the job id of the path.
func parseJobRequest(id string, body []byte, now time.Time) (*job, *hubError) {
	var fields map[string]json.RawMessage
	if e := decodeObject(body, &fields); e != nil {
		return nil, e
	}
	str := func(name string) (string, bool, *hubError) {
		raw, ok := lookup(fields, name)
		if !ok || isNull(raw) {
			return "", false, nil
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false, invalid("%s must be a string.", name)
		}
		return s, true, nil
	}
	j := &job{id: id, created: now, start: now, maxExec: DefaultJobMaxExecutionSeconds * time.Second, status: jobQueued, cancelled: make(chan struct{})}

	if bodyID, ok, e := str("jobId"); e != nil {
		return nil, e
	} else if ok && bodyID != id {
		return nil, invalid("The jobId in the body ('%s') does not match the jobId in the path ('%s').", bodyID, id)
	}
	typ, ok, e := str("type")
	switch {
	case e != nil:
		return nil, e
	case !ok || typ == "":
		return nil, newError(iothub.ErrorCodeArgumentNull, "type cannot be null or empty.")
	case strings.EqualFold(typ, jobTypeMethod):
		j.typ = jobTypeMethod
	case strings.EqualFold(typ, jobTypeTwin):
		j.typ = jobTypeTwin
	default:
		return nil, invalid("The job type '%s' is not supported here; use scheduleDeviceMethod or scheduleUpdateTwin.", typ)
	}

	cond, ok, e := str("queryCondition")
	if e != nil {
		return nil, e
	}
	if !ok || strings.TrimSpace(cond) == "" {
		return nil, newError(iothub.ErrorCodeArgumentNull, "queryCondition cannot be null or empty.")
	}
	j.cond = cond
	if strings.TrimSpace(cond) != "*" {
		q, err := parseQuery("SELECT * FROM devices WHERE " + cond)
		if err != nil {
			return nil, invalid("Invalid queryCondition: %v.", err)
		}
		j.where = q.where
	}

	if s, ok, e := str("startTime"); e != nil {
		return nil, e
	} else if ok {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, invalid("startTime must be an ISO 8601 date and time.")
		}
		if t.After(now) {
			j.start = t
		}
	}
	if raw, ok := lookup(fields, "maxExecutionTimeInSeconds"); ok && !isNull(raw) {
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || n < 0 || n > 1<<31 {
			return nil, invalid("maxExecutionTimeInSeconds must be a non-negative integer.")
		}
		if n > 0 {
			j.maxExec = time.Duration(n) * time.Second
		}
	}

	switch j.typ {
	case jobTypeMethod:
		raw, ok := lookup(fields, "cloudToDeviceMethod")
		if !ok || isNull(raw) {
			return nil, newError(iothub.ErrorCodeArgumentNull, "cloudToDeviceMethod cannot be null for a scheduleDeviceMethod job.")
		}
		mr, e := parseMethodRequest(raw)
		if e != nil {
			return nil, e
		}
		j.method = mr
	case jobTypeTwin:
		raw, ok := lookup(fields, "updateTwin")
		if !ok || isNull(raw) {
			return nil, newError(iothub.ErrorCodeArgumentNull, "updateTwin cannot be null for a scheduleUpdateTwin job.")
		}
		u, e := parseTwinUpdate(raw, "", "", true)
		if e != nil {
			return nil, e
		}
		if u.tags == nil && u.desired == nil {
			return nil, invalid("updateTwin must set tags or properties.desired.")
		}
		var tw map[string]json.RawMessage
		_ = json.Unmarshal(raw, &tw) // parseTwinUpdate checked it is an object
		etagRaw, ok := lookup(tw, "etag")
		var etag string
		if !ok || isNull(etagRaw) || json.Unmarshal(etagRaw, &etag) != nil || etag == "" {
			return nil, newError(iothub.ErrorCodeArgumentNull, "updateTwin.etag cannot be null or empty; use \"*\" to update whatever the twin's etag.")
		}
		j.update, j.etag = u, etag
		j.twinRaw = marshal(json.RawMessage(raw))
	}
	return j, nil
}

// createJob serves PUT /jobs/v2/{jobId}.
func (h *Hub) createJob(w http.ResponseWriter, r *http.Request, rq *routed) {
	id := rq.params[0]
	if e := validJobID(id); e != nil {
		e.write(w, rq.now)
		return
	}
	if e := checkJSONContentType(r, rq.body); e != nil {
		e.write(w, rq.now)
		return
	}
	j, e := parseJobRequest(id, rq.body, rq.now)
	if e != nil {
		e.write(w, rq.now)
		return
	}
	eng := h.jobs
	h.mu.Lock()
	active := 0
	for _, o := range eng.order {
		if o.active() {
			active++
		}
	}
	switch {
	case eng.closed:
		e = newError(iothub.ErrorCodeServiceUnavailable, "The hub is shutting down.")
	case eng.jobs[id] != nil:
		e = newError(iothub.ErrorCodeJobAlreadyExists, fmt.Sprintf("A job with id '%s' already exists.", id))
	case active >= eng.maxActive:
		e = newError(iothub.ErrorCodeThrottlingMaxActiveJobCountExceeded,
			fmt.Sprintf("The number of active jobs (%d) has reached the hub's limit of %d.", active, eng.maxActive))
	}
	if e != nil {
		h.mu.Unlock()
		e.write(w, rq.now)
		return
	}
	eng.jobs[id] = j
	eng.order = append(eng.order, j)
	body := marshal(j.wire())
	eng.wg.Add(1)
	h.mu.Unlock()
	go h.runJob(j)
	writeJSON(w, http.StatusOK, body)
}

// getJob serves GET /jobs/v2/{jobId}.
func (h *Hub) getJob(w http.ResponseWriter, _ *http.Request, rq *routed) {
	h.mu.Lock()
	j := h.jobs.jobs[rq.params[0]]
	var body []byte
	if j != nil {
		body = marshal(j.wire())
	}
	h.mu.Unlock()
	if j == nil {
		jobNotFound(rq.params[0]).write(w, rq.now)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func jobNotFound(id string) *hubError {
	return newError(iothub.ErrorCodeJobNotFound, fmt.Sprintf("Job %s not found.", id))
}

// cancelJob serves POST /jobs/v2/{jobId}/cancel. Cancelling a finished job
// answers it unchanged. Device records not yet started become canceled;
// calls in flight run to their end.
func (h *Hub) cancelJob(w http.ResponseWriter, _ *http.Request, rq *routed) {
	h.mu.Lock()
	j := h.jobs.jobs[rq.params[0]]
	var body []byte
	if j != nil {
		if j.active() {
			j.status = jobCancelled
			j.end = time.Now()
			for _, d := range j.devices {
				if d.status == devPending {
					d.status, d.updated = devCanceled, j.end
				}
			}
			close(j.cancelled)
		}
		body = marshal(j.wire())
	}
	h.mu.Unlock()
	if j == nil {
		jobNotFound(rq.params[0]).write(w, rq.now)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// wait sleeps until t, reporting false when the job was cancelled or the
// hub closed first.
func (h *Hub) waitJob(j *job, t time.Time) bool {
	ctx := h.jobs.ctx
	d := time.Until(t)
	if d <= 0 {
		select {
		case <-j.cancelled:
			return false
		case <-ctx.Done():
			return false
		default:
			return true
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-j.cancelled:
		return false
	case <-ctx.Done():
		return false
	}
}

// runJob runs a job in the background: it waits for the start time,
// selects the devices, then runs the device operations at the hub's jobs
// rate until every device is done, the job is cancelled, its maximum
// execution time passes or the hub closes.
func (h *Hub) runJob(j *job) {
	eng := h.jobs
	defer eng.wg.Done()

	h.mu.Lock()
	if time.Now().Before(j.start) && j.status == jobQueued {
		j.status = jobScheduled
	}
	start := j.start
	h.mu.Unlock()
	if !h.waitJob(j, start) {
		return
	}

	h.mu.Lock()
	if !j.active() {
		h.mu.Unlock()
		return
	}
	now := time.Now()
	j.status, j.running = jobRunning, true
	for _, id := range h.sortedDeviceIDs() {
		d := h.devices[id]
		if j.where != nil && !j.where.eval(twinWire(d, nil)).truthy() {
			continue
		}
		j.devices = append(j.devices, &deviceJob{deviceID: id, status: devPending, created: now, updated: now})
	}
	deadline := j.start.Add(j.maxExec)
	recs := slices.Clone(j.devices)
	h.mu.Unlock()

	var wg sync.WaitGroup
	expired := false
	for _, rec := range recs {
		h.mu.Lock()
		slot := eng.reserve(time.Now())
		h.mu.Unlock()
		if !h.waitJob(j, slot) {
			break
		}
		now := time.Now()
		h.mu.Lock()
		if !now.Before(deadline) {
			expired = true
			for _, d := range j.devices {
				if d.status == devPending {
					d.status, d.updated, d.end = devFailed, now, now
					d.errCode = jobExecutionTimeExceeded
					d.errDesc = "The job's maximum execution time passed before the device was reached."
				}
			}
			h.mu.Unlock()
			break
		}
		if rec.status != devPending { // cancelled meanwhile
			h.mu.Unlock()
			break
		}
		rec.status, rec.start, rec.updated = devRunning, now, now
		h.mu.Unlock()
		wg.Go(func() { h.runDeviceOp(j, rec) })
	}
	wg.Wait()

	h.mu.Lock()
	defer h.mu.Unlock()
	if j.status != jobRunning || eng.ctx.Err() != nil {
		return
	}
	j.end = time.Now()
	j.status = jobCompleted
	if expired {
		j.status = jobFailed
		j.failure = "The job exceeded its maximum execution time."
	}
}

// runDeviceOp runs the job's operation on one device and records its
// result.
func (h *Hub) runDeviceOp(j *job, rec *deviceJob) {
	ctx := h.jobs.ctx
	finish := func(fn func()) {
		h.mu.Lock()
		defer h.mu.Unlock()
		now := time.Now()
		rec.end, rec.updated = now, now
		fn()
	}
	failWith := func(code int, msg string) {
		finish(func() {
			rec.status = devFailed
			rec.errCode = iothub.ErrorCode(code).Name()
			if rec.errCode == "" {
				rec.errCode = strconv.Itoa(code)
			}
			rec.errDesc = msg
		})
	}
	t := target{deviceID: rec.deviceID}
	if e := h.fleetRefusal(); e != nil {
		failWith(e.code, e.message) // suspended, or out of quota
		return
	}

	if j.typ == jobTypeTwin {
		var e *hubError
		h.mu.Lock()
		d := h.devices[rec.deviceID]
		switch {
		case d == nil:
			e = deviceNotFound(rec.deviceID)
		case j.etag != "*" && strings.Trim(j.etag, `"`) != twinETagString(d.reg.twin.etag):
			e = preconditionFailed()
		default:
			e = h.applyTwinUpdate(&d.reg, j.update, true, time.Now())
		}
		h.mu.Unlock()
		if e != nil {
			failWith(e.code, e.message)
			return
		}
		h.bill(1) // a job's twin update: small, one message
		finish(func() { rec.status = devCompleted })
		return
	}

	f := h.takeJobFault(t, j.method.name)
	if f != nil && !f.afterDelivery() {
		if !sleep(ctx, f.Delay) {
			return
		}
		if f.answers() {
			failWith(f.jobError())
			return
		}
		f = nil // a Delay-only fault: run the call normally
	}
	d, ok := h.deliver(ctx, t, j.method)
	h.billMethod(j.method, d)
	if !ok {
		return // the hub closed
	}
	if d.err == nil && d.delivered && f != nil {
		// The device ran the method; the hub lost or replaced its answer.
		if !sleep(ctx, f.Delay) {
			return
		}
		failWith(f.jobError())
		return
	}
	if d.err != nil {
		failWith(d.err.code, d.err.message)
		return
	}
	finish(func() {
		rec.status = devCompleted
		rec.hasResponse = true
		rec.respStatus, rec.respPayload = d.resp.Status, d.resp.Payload
	})
}

// takeJobFault returns the OperationMethod fault that hits a job's method
// call on t, or nil. Drop faults are connection faults and are neither
// counted nor taken.
func (h *Hub) takeJobFault(t target, method string) *Fault {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, fs := range h.faults {
		if fs.f.Drop != DropNone || !fs.matches(OperationMethod, t, method) {
			continue
		}
		if fs.count() {
			f := fs.f
			return &f
		}
	}
	return nil
}

// jobError is the code and message a fault records on a job's device
// record: the fault's code (or its status's generic code), else 504101
// GatewayTimeout for an AfterDelivery fault without one.
func (f *Fault) jobError() (int, string) {
	code := f.Code
	if code == 0 {
		code = f.Status * 1000
	}
	if code == 0 {
		code = int(iothub.ErrorCodeGatewayTimeout)
	}
	msg := f.Message
	if msg == "" {
		msg = iothub.ErrorCode(code).Name()
	}
	return code, msg
}
