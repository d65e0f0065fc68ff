package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/wire"
	"github.com/hubkit/iothub/service"
)

// The runtime's module ids, as method paths name them.
const (
	AgentModuleID = "$edgeAgent"
	HubModuleID   = "$edgeHub"
)

// AgentModuleName is the agent's name in its own deployment, as
// RestartModule and GetModuleLogs name modules (without the $ of its
// module id).
const AgentModuleName = "edgeAgent"

// SchemaVersion is the request schema version every call sends.
const SchemaVersion = "1.0"

// The built-in method names, as documented.
const (
	MethodPing                            = "ping"
	MethodRestartModule                   = "RestartModule"
	MethodGetModuleLogs                   = "GetModuleLogs"
	MethodUploadModuleLogs                = "UploadModuleLogs"
	MethodUploadSupportBundle             = "UploadSupportBundle"
	MethodGetTaskStatus                   = "GetTaskStatus"
	MethodRefreshDeviceScopeIdentityCache = "RefreshDeviceScopeIdentityCache"
)

var (
	// ErrLogsTooLarge is matched by the *AgentError of a GetModuleLogs
	// call whose logs exceed what the agent answers in one call
	// (MaxLogsBytes).
	ErrLogsTooLarge = errors.New("edge: logs over the agent's size cap")
	// ErrDecodedTooLarge is matched by the error of a GetModuleLogs call
	// whose logs, decoded, exceed LogsOptions.MaxDecodedBytes.
	ErrDecodedTooLarge = errors.New("edge: decoded logs over the limit")
	// ErrTaskLost is matched by the *TaskError of a task the agent no
	// longer knows (status TaskUnknown): it restarted and forgot it.
	ErrTaskLost = errors.New("edge: task lost")
	// ErrTaskFailed is matched by the *TaskError of a task that ended
	// TaskFailed or TaskCancelled.
	ErrTaskFailed = errors.New("edge: task failed")
)

// Client calls the IoT Edge runtime's built-in methods. It is immutable
// and safe for concurrent use.
type Client struct {
	svc *service.Client
}

// NewClient returns a client that invokes the runtime's methods through
// svc. It does no I/O. It panics when svc is nil.
func NewClient(svc *service.Client) *Client {
	if svc == nil {
		panic("edge: NewClient: nil *service.Client")
	}
	return &Client{svc: svc}
}

// CallOptions are the per-call options of every method. A nil *CallOptions
// gives the defaults.
type CallOptions struct {
	// TimeoutInSeconds is how long the hub waits for the runtime's answer:
	// 0 means the hub's default of 30, otherwise 5 to 300.
	TimeoutInSeconds int
	// ConnectTimeoutInSeconds is how long the hub waits for a
	// disconnected runtime to connect: 0 (the default) to 300.
	ConnectTimeoutInSeconds int
	// Idempotent lets RestartModule, UploadModuleLogs and
	// UploadSupportBundle be retried after an unknown outcome, as
	// service.InvokeOptions.Idempotent does. The other methods are always
	// retried so.
	Idempotent bool
	// RetryDeviceNotOnline retries 404103, as
	// service.InvokeOptions.RetryDeviceNotOnline does.
	RetryDeviceNotOnline bool
}

// AgentError is the runtime's own failure: the call reached the device's
// $edgeAgent (or $edgeHub) and it answered a status other than 2xx, with
// {"message":…}. See the package doc for what iothub.MayHaveRun says of
// it.
type AgentError struct {
	// DeviceID is the Edge device.
	DeviceID string
	// ModuleID is the runtime module that answered, AgentModuleID or
	// HubModuleID.
	ModuleID string
	// Method is the method called.
	Method string
	// Status is the runtime's status: 400 for a request it refused, 500
	// for a failure, 404 from edgeHub for a method it lacks.
	Status int
	// Message is the runtime's message (a storage signature in it is
	// redacted).
	Message string
}

// Error names the device, the method, the status and the message; for logs
// over the cap it says how to get them.
func (e *AgentError) Error() string {
	s := fmt.Sprintf("edge: device %q %s %s: status %d", e.DeviceID, e.ModuleID, e.Method, e.Status)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.logsTooLarge() {
		s += fmt.Sprintf(" (the agent answers at most %d bytes of logs per call: narrow the request with LogFilter.Tail, Since or Until, use EncodingGzip, or UploadModuleLogs)", MaxLogsBytes)
	}
	return s
}

// Is matches ErrLogsTooLarge for a GetModuleLogs refused for its size.
func (e *AgentError) Is(target error) bool {
	return target == ErrLogsTooLarge && e.logsTooLarge()
}

func (e *AgentError) logsTooLarge() bool {
	return e.Method == MethodGetModuleLogs && strings.Contains(strings.ToLower(e.Message), "too large")
}

// sigParam matches the signature of a SAS URL quoted in a message.
var sigParam = regexp.MustCompile(`(?i)(sig=)[^&\s"']*`)

// redactSAS removes storage signatures from a message.
func redactSAS(s string) string { return sigParam.ReplaceAllString(s, "${1}REDACTED") }

// call invokes method on the runtime module moduleID of deviceID and
// returns the payload of a 2xx answer, or an *AgentError.
func (c *Client) call(ctx context.Context, deviceID, moduleID, method string, payload any, o *CallOptions, readOnly bool) (json.RawMessage, error) {
	var opts CallOptions
	if o != nil {
		opts = *o
	}
	params := service.MethodParams[any]{
		Name:                    method,
		Payload:                 payload,
		TimeoutInSeconds:        opts.TimeoutInSeconds,
		ConnectTimeoutInSeconds: opts.ConnectTimeoutInSeconds,
	}
	inv := &service.InvokeOptions{Idempotent: readOnly || opts.Idempotent, RetryDeviceNotOnline: opts.RetryDeviceNotOnline}
	res, err := c.svc.InvokeModuleMethod(ctx, deviceID, moduleID, params, inv)
	if err != nil {
		return nil, err
	}
	if res.Status < 200 || res.Status > 299 {
		return nil, agentError(deviceID, moduleID, method, res.Status, res.Payload)
	}
	return res.Payload, nil
}

// agentError reads the runtime's failure payload.
func agentError(deviceID, moduleID, method string, status int, payload json.RawMessage) *AgentError {
	e := &AgentError{DeviceID: deviceID, ModuleID: moduleID, Method: method, Status: status}
	var body struct {
		Message *string `json:"message"`
	}
	if json.Unmarshal(payload, &body) == nil && body.Message != nil {
		e.Message = *body.Message
	} else if p := bytes.TrimSpace(payload); len(p) > 0 && string(p) != "null" {
		const maxQuoted = 512
		if len(p) > maxQuoted {
			p = append(p[:maxQuoted:maxQuoted], "…"...)
		}
		e.Message = string(p)
	}
	e.Message = redactSAS(e.Message)
	return e
}

// checkCommon checks what every call shares: the device id and the
// options.
func checkCommon(op, deviceID string, o *CallOptions) error {
	if rule := wire.CheckID(deviceID); rule != "" {
		return &iothub.ArgumentError{Operation: op, Field: "deviceID", Rule: rule}
	}
	if o == nil {
		return nil
	}
	if t := o.TimeoutInSeconds; t != 0 && (t < service.MinTimeoutInSeconds || t > service.MaxTimeoutInSeconds) {
		return &iothub.ArgumentError{Operation: op, Field: "CallOptions.TimeoutInSeconds",
			Rule: fmt.Sprintf("must be 0 (the hub's default of %d) or %d to %d (got %d)", service.DefaultTimeoutInSeconds, service.MinTimeoutInSeconds, service.MaxTimeoutInSeconds, t)}
	}
	if t := o.ConnectTimeoutInSeconds; t < 0 || t > service.MaxConnectTimeoutInSeconds {
		return &iothub.ArgumentError{Operation: op, Field: "CallOptions.ConnectTimeoutInSeconds",
			Rule: fmt.Sprintf("must be 0 to %d (got %d)", service.MaxConnectTimeoutInSeconds, t)}
	}
	return nil
}

// Operation names, as argument errors give them.
const (
	opPing    = "edge.Ping"
	opRestart = "edge.RestartModule"
	opLogs    = "edge.GetModuleLogs"
	opUpload  = "edge.UploadModuleLogs"
	opBundle  = "edge.UploadSupportBundle"
	opStatus  = "edge.GetTaskStatus"
	opWait    = "edge.WaitTask"
	opRefresh = "edge.RefreshDeviceScopeIdentityCache"
)

// Ping checks that the device's agent answers. It returns nil when it
// does.
func (c *Client) Ping(ctx context.Context, deviceID string, options *CallOptions) error {
	if err := checkCommon(opPing, deviceID, options); err != nil {
		return err
	}
	_, err := c.call(ctx, deviceID, AgentModuleID, MethodPing, nil, options, true)
	return err
}

// RestartOptions are the options of RestartModule. A nil *RestartOptions
// gives the defaults.
type RestartOptions struct {
	CallOptions
	// AllowAgent lets RestartModule restart the agent itself
	// (AgentModuleName). The agent restarts before it answers, so the call
	// ends with the hub's 504101 (an error matching
	// iothub.ErrOutcomeUnknown) after CallOptions.TimeoutInSeconds, and
	// every task the agent ran reads TaskUnknown afterwards. Without it,
	// such a call is refused before sending.
	AllowAgent bool
}

// RestartModule restarts a module of the device's deployment, such as
// "tempSensor" or "edgeHub" (module names, not module ids: no $). A module
// the deployment lacks is an *AgentError with status 500. Restarting the
// agent itself needs RestartOptions.AllowAgent (see there).
func (c *Client) RestartModule(ctx context.Context, deviceID, moduleName string, options *RestartOptions) error {
	var o RestartOptions
	if options != nil {
		o = *options
	}
	if err := checkCommon(opRestart, deviceID, &o.CallOptions); err != nil {
		return err
	}
	if err := checkModuleName(opRestart, "moduleName", moduleName); err != nil {
		return err
	}
	if moduleName == AgentModuleName && !o.AllowAgent {
		return &iothub.ArgumentError{Operation: opRestart, Field: "moduleName",
			Rule: "is the agent itself, which restarts before it answers (the call would end 504101 and its tasks be lost); set RestartOptions.AllowAgent to do it anyway"}
	}
	payload := struct {
		SchemaVersion string `json:"schemaVersion"`
		ID            string `json:"id"`
	}{SchemaVersion, moduleName}
	_, err := c.call(ctx, deviceID, AgentModuleID, MethodRestartModule, payload, &o.CallOptions, false)
	return err
}

// checkModuleName checks a deployment module name.
func checkModuleName(op, field, name string) error {
	if strings.HasPrefix(name, "$") {
		return &iothub.ArgumentError{Operation: op, Field: field,
			Rule: fmt.Sprintf("must be a module name of the deployment, such as %q, not a module id such as %q", strings.TrimPrefix(name, "$"), name)}
	}
	if rule := wire.CheckID(name); rule != "" {
		return &iothub.ArgumentError{Operation: op, Field: field, Rule: rule}
	}
	return nil
}

// RefreshDeviceScopeIdentityCache asks the device's edgeHub to refresh the
// identities of the listed devices (children in its scope) from the hub.
func (c *Client) RefreshDeviceScopeIdentityCache(ctx context.Context, deviceID string, deviceIDs []string, options *CallOptions) error {
	if err := checkCommon(opRefresh, deviceID, options); err != nil {
		return err
	}
	if len(deviceIDs) == 0 {
		return &iothub.ArgumentError{Operation: opRefresh, Field: "deviceIDs", Rule: "must not be empty"}
	}
	for i, id := range deviceIDs {
		if rule := wire.CheckID(id); rule != "" {
			return &iothub.ArgumentError{Operation: opRefresh, Field: "deviceIDs[" + strconv.Itoa(i) + "]", Rule: rule}
		}
	}
	payload := struct {
		DeviceIDs []string `json:"deviceIds"`
	}{deviceIDs}
	_, err := c.call(ctx, deviceID, HubModuleID, MethodRefreshDeviceScopeIdentityCache, payload, options, true)
	return err
}
