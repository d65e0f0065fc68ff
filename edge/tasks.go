package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/service"
)

// TaskStatus is the state of an agent's background task. Values the SDK
// does not know are kept as sent.
type TaskStatus string

// The task states the agent reports.
const (
	TaskNotStarted TaskStatus = "NotStarted"
	TaskRunning    TaskStatus = "Running"
	TaskCompleted  TaskStatus = "Completed"
	TaskCancelled  TaskStatus = "Cancelled"
	TaskFailed     TaskStatus = "Failed"
	// TaskUnknown: the agent does not know the correlation id, usually
	// because it restarted since (its tasks live in its memory). The task
	// is lost, not pending.
	TaskUnknown TaskStatus = "Unknown"
)

// Done reports whether the task has ended: completed, failed or
// cancelled. It compares case-insensitively. TaskUnknown is not done: it
// is lost.
func (s TaskStatus) Done() bool {
	return strings.EqualFold(string(s), string(TaskCompleted)) || strings.EqualFold(string(s), string(TaskFailed)) ||
		strings.EqualFold(string(s), string(TaskCancelled))
}

// Task is a background task of the agent, an upload.
type Task struct {
	// CorrelationID names the task for GetTaskStatus and WaitTask.
	CorrelationID string
	// Status is the task's state.
	Status TaskStatus
	// Message explains a TaskFailed state (a storage signature in it is
	// redacted).
	Message string
}

// TaskError reports a task that did not complete: it failed, was
// cancelled, or was lost (TaskUnknown). It matches ErrTaskFailed or
// ErrTaskLost.
type TaskError struct {
	// DeviceID is the Edge device.
	DeviceID string
	// Task is the task as last reported.
	Task Task
}

// Error names the device, the task and its state.
func (e *TaskError) Error() string {
	if e.lost() {
		return fmt.Sprintf("edge: device %q task %s: lost: the agent no longer knows it (it restarted since)", e.DeviceID, e.Task.CorrelationID)
	}
	s := fmt.Sprintf("edge: device %q task %s: %s", e.DeviceID, e.Task.CorrelationID, e.Task.Status)
	if e.Task.Message != "" {
		s += ": " + e.Task.Message
	}
	return s
}

func (e *TaskError) lost() bool { return strings.EqualFold(string(e.Task.Status), string(TaskUnknown)) }

// Is matches ErrTaskLost for a lost task and ErrTaskFailed for a failed or
// cancelled one.
func (e *TaskError) Is(target error) bool {
	switch target {
	case ErrTaskLost:
		return e.lost()
	case ErrTaskFailed:
		return !e.lost()
	}
	return false
}

// decodeTask reads a task answer.
func decodeTask(deviceID, method string, payload json.RawMessage) (Task, error) {
	var w struct {
		Status        string `json:"status"`
		Message       string `json:"message"`
		CorrelationID string `json:"correlationId"`
	}
	if err := json.Unmarshal(payload, &w); err != nil || w.Status == "" {
		if err == nil {
			err = fmt.Errorf("the answer has no status")
		}
		return Task{}, &service.PayloadError{DeviceID: deviceID, ModuleID: AgentModuleID, Status: 200, Payload: payload, Err: fmt.Errorf("decode %s answer: %w", method, err)}
	}
	return Task{CorrelationID: w.CorrelationID, Status: TaskStatus(w.Status), Message: redactSAS(w.Message)}, nil
}

// SupportBundleRequest is UploadSupportBundle's request. A support bundle
// holds the runtime's and modules' logs and the device's configuration,
// which may include personal data.
type SupportBundleRequest struct {
	// SASURL is a blob container's SAS URL with write permission (https).
	// It is a secret: String, GoString and LogValue redact it.
	SASURL string
	// Since and Until bound the logs, as in LogFilter; empty leaves that
	// side open.
	Since, Until string
	// EdgeRuntimeOnly leaves the custom modules' logs out.
	EdgeRuntimeOnly bool
}

// String describes the request with its SAS URL redacted.
func (r SupportBundleRequest) String() string {
	return fmt.Sprintf("{SASURL:%s Since:%s Until:%s EdgeRuntimeOnly:%t}", redactURL(r.SASURL), r.Since, r.Until, r.EdgeRuntimeOnly)
}

// GoString is String, for %#v.
func (r SupportBundleRequest) GoString() string { return "edge.SupportBundleRequest" + r.String() }

// LogValue logs the request with its SAS URL redacted.
func (r SupportBundleRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("sasUrl", redactURL(r.SASURL)), slog.String("since", r.Since),
		slog.String("until", r.Until), slog.Bool("edgeRuntimeOnly", r.EdgeRuntimeOnly))
}

// UploadSupportBundle starts uploading a support bundle to a blob
// container and returns the agent's task; follow it with WaitTask.
func (c *Client) UploadSupportBundle(ctx context.Context, deviceID string, req SupportBundleRequest, options *CallOptions) (Task, error) {
	if err := checkCommon(opBundle, deviceID, options); err != nil {
		return Task{}, err
	}
	if err := checkSASURL(opBundle, "SASURL", req.SASURL); err != nil {
		return Task{}, err
	}
	payload := struct {
		SchemaVersion   string `json:"schemaVersion"`
		SASURL          string `json:"sasUrl"`
		Since           string `json:"since,omitempty"`
		Until           string `json:"until,omitempty"`
		EdgeRuntimeOnly bool   `json:"edgeRuntimeOnly"`
	}{SchemaVersion, req.SASURL, req.Since, req.Until, req.EdgeRuntimeOnly}
	answer, err := c.call(ctx, deviceID, AgentModuleID, MethodUploadSupportBundle, payload, options, false)
	if err != nil {
		return Task{}, err
	}
	return decodeTask(deviceID, MethodUploadSupportBundle, answer)
}

// GetTaskStatus returns a task's current state. An id the agent does not
// know is not an error: the task comes back with TaskUnknown.
func (c *Client) GetTaskStatus(ctx context.Context, deviceID, correlationID string, options *CallOptions) (Task, error) {
	if err := checkCommon(opStatus, deviceID, options); err != nil {
		return Task{}, err
	}
	if err := checkCorrelationID(opStatus, correlationID); err != nil {
		return Task{}, err
	}
	return c.taskStatus(ctx, deviceID, correlationID, options)
}

func (c *Client) taskStatus(ctx context.Context, deviceID, correlationID string, options *CallOptions) (Task, error) {
	payload := struct {
		SchemaVersion string `json:"schemaVersion"`
		CorrelationID string `json:"correlationId"`
	}{SchemaVersion, correlationID}
	answer, err := c.call(ctx, deviceID, AgentModuleID, MethodGetTaskStatus, payload, options, true)
	if err != nil {
		return Task{}, err
	}
	t, err := decodeTask(deviceID, MethodGetTaskStatus, answer)
	if t.CorrelationID == "" {
		t.CorrelationID = correlationID
	}
	return t, err
}

func checkCorrelationID(op, id string) error {
	if strings.TrimSpace(id) == "" {
		return &iothub.ArgumentError{Operation: op, Field: "correlationID", Rule: "must not be empty: the CorrelationID of the Task an upload returned"}
	}
	return nil
}

// Default poll intervals of WaitTask.
const (
	DefaultMinPollInterval = time.Second
	DefaultMaxPollInterval = 15 * time.Second
)

// WaitOptions are the options of WaitTask. A nil *WaitOptions gives the
// defaults.
type WaitOptions struct {
	// CallOptions are the options of each GetTaskStatus.
	CallOptions
	// MinPollInterval is the wait before the first poll, doubled after
	// each poll up to MaxPollInterval. Zero means DefaultMinPollInterval
	// and DefaultMaxPollInterval; neither may be negative, and Max must
	// not be below Min.
	MinPollInterval, MaxPollInterval time.Duration
}

// WaitTask polls GetTaskStatus, backing off from MinPollInterval to
// MaxPollInterval, until the task ends, and returns it.
//
// A task that completed is returned with a nil error. One that failed or
// was cancelled is returned with a *TaskError matching ErrTaskFailed; one
// the agent no longer knows (TaskUnknown: the agent restarted) with a
// *TaskError matching ErrTaskLost, at once: it will never end. When ctx
// ends first WaitTask returns the last task seen and an error matching
// ctx.Err(); an error from a poll is returned at once (the client's retry
// policy retries polls first), with the last task seen. An agent that is
// not connected, as while it restarts, is such an error: 404103, not
// delivered; set ConnectTimeoutInSeconds in WaitOptions.CallOptions to
// have the hub wait for it instead.
func (c *Client) WaitTask(ctx context.Context, deviceID, correlationID string, options *WaitOptions) (Task, error) {
	var o WaitOptions
	if options != nil {
		o = *options
	}
	if err := checkCommon(opWait, deviceID, &o.CallOptions); err != nil {
		return Task{}, err
	}
	if err := checkCorrelationID(opWait, correlationID); err != nil {
		return Task{}, err
	}
	switch {
	case o.MinPollInterval < 0:
		return Task{}, &iothub.ArgumentError{Operation: opWait, Field: "WaitOptions.MinPollInterval", Rule: "must not be negative"}
	case o.MaxPollInterval < 0:
		return Task{}, &iothub.ArgumentError{Operation: opWait, Field: "WaitOptions.MaxPollInterval", Rule: "must not be negative"}
	}
	if o.MinPollInterval == 0 {
		o.MinPollInterval = DefaultMinPollInterval
	}
	if o.MaxPollInterval == 0 {
		o.MaxPollInterval = max(DefaultMaxPollInterval, o.MinPollInterval)
	}
	if o.MaxPollInterval < o.MinPollInterval {
		return Task{}, &iothub.ArgumentError{Operation: opWait, Field: "WaitOptions.MaxPollInterval", Rule: "must not be below MinPollInterval"}
	}
	last := Task{CorrelationID: correlationID}
	wait := o.MinPollInterval
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("edge: wait for task %s on device %q: %w", correlationID, deviceID, ctx.Err())
		case <-timer.C:
		}
		t, err := c.taskStatus(ctx, deviceID, correlationID, &o.CallOptions)
		if err != nil {
			return last, err
		}
		last = t
		switch {
		case strings.EqualFold(string(t.Status), string(TaskCompleted)):
			return t, nil
		case t.Status.Done(), strings.EqualFold(string(t.Status), string(TaskUnknown)):
			return t, &TaskError{DeviceID: deviceID, Task: t}
		}
		wait = min(2*wait, o.MaxPollInterval)
		timer.Reset(wait)
	}
}
