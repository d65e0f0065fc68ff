package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/pipeline"
	"github.com/hubkit/iothub/internal/wire"
)

// MaxCommandNameLength is the longest component or command name: a DTDL
// name of 1 to 64 characters.
const MaxCommandNameLength = 64

// Response headers of a Plug and Play command.
const (
	headerCommandStatus = "x-ms-command-statuscode"
	headerRequestID     = "x-ms-request-id"
)

// Operation names of commands, as errors and logs give them.
const (
	opCommand         = "InvokeCommand"
	opCommandValidate = "CommandParams.Validate"
)

// CommandParams describes one Plug and Play command invocation. P is the
// payload type; use any (or json.RawMessage for JSON you already hold) for
// the untyped form.
//
// On the device a command is a direct method: a root command (Component
// empty) arrives as the method Name, a component command as the method
// "{Component}*{Name}", such as "thermostat1*getMaxMinReport". Method
// gives those MethodParams, so that a fleet fan-out (StartFanOut) or an IoT
// Hub job (ScheduleMethodJob) runs a command the way it runs a method.
type CommandParams[P any] struct {
	// Component is the component the command belongs to, such as
	// "thermostat1"; empty for a command of the root (default) component.
	// When set, a DTDL name: letters, digits and '_', 1 to 64 characters,
	// starting with a letter and not ending with '_'.
	Component string
	// Name is the command name, such as "getMaxMinReport". Required; a
	// DTDL name, as Component.
	Name string
	// Payload is sent as the request body, as JSON: any JSON value. A
	// json.RawMessage is sent as is (compacted) and must be valid JSON. At
	// most MaxPayloadBytes once encoded. A null payload (nil, or JSON
	// null) sends no body at all, as the C# service SDK does; the device
	// receives an empty payload either way.
	Payload P
	// TimeoutInSeconds is how long the hub waits for the device's answer
	// (responseTimeoutInSeconds in the query string). 0 means the hub's
	// default of 30 and sends nothing; otherwise 5 to 300.
	TimeoutInSeconds int
	// ConnectTimeoutInSeconds is how long the hub waits for a disconnected
	// device to connect (connectTimeoutInSeconds). 0, the default, means
	// the device must already be connected and sends nothing; at most 300.
	ConnectTimeoutInSeconds int
}

// CommandResult is the device's answer to a command. As with methods, a
// device that answers with an error status (say 500) still gives a result:
// the invocation succeeded and the status is the device's own.
type CommandResult[R any] struct {
	// Status is the status the device answered with (the
	// x-ms-command-statuscode header).
	Status int
	// Payload is the device's JSON payload (the response body), decoded
	// into R. An empty body is JSON null.
	Payload R
	// RequestID is the hub's id of the request (the x-ms-request-id
	// header), or "" when the hub sent none.
	RequestID string
}

// Validate checks the parameters as InvokeCommand does before it sends
// anything, and returns the same *iothub.ArgumentError (same Field and
// Rule), or nil: Component and Name (DTDL names), TimeoutInSeconds,
// ConnectTimeoutInSeconds, and that Payload encodes as JSON within
// MaxPayloadBytes (so it encodes Payload once). It does no I/O.
//
// Call it before Method when a fan-out or a job is to run the command:
// the method-name rule those apply is looser than the DTDL rule.
func (p CommandParams[P]) Validate() error {
	_, err := commandBody(opCommandValidate, "validate", p)
	return err
}

// Method returns the direct method that delivers this command to the
// device, with the same payload and timeouts: its Name is p.Name for a
// root command and "{Component}*{Name}" for a component command. Hand it
// to StartFanOut or ScheduleMethodJob to run the command on a fleet:
//
//	cmd := service.CommandParams[any]{Component: "thermostat1", Name: "getMaxMinReport"}
//	if err := cmd.Validate(); err != nil {
//		return err
//	}
//	fan, err := client.StartFanOut(ctx, targets, cmd.Method(), nil)
//
// The device answers the method as it answers the command; a fan-out or a
// job reports its status and payload as for any method. Method does not
// validate; call Validate first.
func (p CommandParams[P]) Method() MethodParams[P] {
	return MethodParams[P]{
		Name:                    commandMethodName(p.Component, p.Name),
		Payload:                 p.Payload,
		TimeoutInSeconds:        p.TimeoutInSeconds,
		ConnectTimeoutInSeconds: p.ConnectTimeoutInSeconds,
	}
}

// InvokeCommand invokes a Plug and Play command on a device with an untyped
// payload and returns the device's answer with its payload as raw JSON:
//
//	res, err := client.InvokeCommand(ctx, "dev-1", service.CommandParams[any]{
//		Component: "thermostat1",
//		Name:      "getMaxMinReport",
//		Payload:   "2026-01-01T00:00:00Z",
//	}, nil)
//
// It sends POST /digitaltwins/{deviceId}/commands/{name}, or
// /digitaltwins/{deviceId}/components/{component}/commands/{name}, with the
// payload as the body and the timeouts in the query string. Commands on
// modules are not offered: IoT Hub's documentation does not confirm the
// "deviceId~moduleId" form some SDKs mention.
//
// A command is a direct method on the device, and shares everything of
// InvokeDeviceMethod: the options, what is retried (by default only where
// IoT Hub guarantees the command was not delivered), the error types and
// iothub.MayHaveRun. A hub answer of 200 without a readable
// x-ms-command-statuscode is an *iothub.BodyError (the command ran); a body
// that is not JSON, a *PayloadError.
func (c *Client) InvokeCommand(ctx context.Context, deviceID string, params CommandParams[any], options *InvokeOptions) (CommandResult[json.RawMessage], error) {
	return invokeCommand[json.RawMessage](ctx, c, deviceID, params, options)
}

// InvokeCommand invokes a Plug and Play command on a device with a typed
// payload and decodes the device's payload into R:
//
//	res, err := service.InvokeCommand[MaxMinReport](ctx, client, "dev-1",
//		service.CommandParams[time.Time]{Component: "thermostat1", Name: "getMaxMinReport", Payload: since}, nil)
//
// A payload that does not decode into R returns the result (with the
// device's status and the request id) and a *PayloadError: the command
// ran. Other results and errors are as for Client.InvokeCommand.
func InvokeCommand[R, P any](ctx context.Context, c *Client, deviceID string, params CommandParams[P], options *InvokeOptions) (CommandResult[R], error) {
	return invokeCommand[R](ctx, c, deviceID, params, options)
}

// commandMethodName is the direct method that delivers a command to the
// device: "{component}*{command}", or the command's name at the root.
func commandMethodName(component, name string) string {
	if component == "" {
		return name
	}
	return component + "*" + name
}

func invokeCommand[R, P any](ctx context.Context, c *Client, deviceID string, params CommandParams[P], options *InvokeOptions) (CommandResult[R], error) {
	var res CommandResult[R]
	body, err := commandBody(opCommand, deviceID, params)
	if err != nil {
		return res, err
	}
	path := "/digitaltwins/" + wire.EscapeID(deviceID)
	if params.Component != "" {
		path += "/components/" + wire.EscapeID(params.Component)
	}
	path += "/commands/" + wire.EscapeID(params.Name)
	var query string
	if t := params.ConnectTimeoutInSeconds; t != 0 {
		query = "connectTimeoutInSeconds=" + strconv.Itoa(t)
	}
	if t := params.TimeoutInSeconds; t != 0 {
		if query != "" {
			query += "&"
		}
		query += "responseTimeoutInSeconds=" + strconv.Itoa(t)
	}
	timeout := params.TimeoutInSeconds
	if timeout == 0 {
		timeout = DefaultTimeoutInSeconds
	}
	// Spans and metrics name the method the device sees; building the
	// component's name costs an allocation, so only when they are on.
	method := params.Name
	if params.Component != "" && c.p.Observed() {
		method = commandMethodName(params.Component, params.Name)
	}
	class, policy := options.policy()
	resp, err := c.p.Do(ctx, &pipeline.Request{
		Operation:        opCommand,
		DeviceID:         deviceID,
		Method:           http.MethodPost,
		Path:             path,
		Query:            query,
		Body:             body,
		AttemptTimeout:   time.Duration(params.ConnectTimeoutInSeconds+timeout)*time.Second + NetworkMargin,
		Retry:            class,
		Policy:           policy,
		MaxResponseBytes: maxMethodResponseBytes,
		MethodName:       method,
		ResultStatus:     commandStatus,
	})
	if err != nil {
		return res, err
	}
	return decodeCommandResult[R](deviceID, resp)
}

// commandStatus reads the device's status from the hub's answer to a
// command, for telemetry (pipeline.Request.ResultStatus).
func commandStatus(resp *pipeline.Response) (int, bool) {
	status, err := strconv.Atoi(resp.Header.Get(headerCommandStatus))
	return status, err == nil
}

// decodeCommandResult reads the device's status and the request id from the
// headers and decodes the body, the device's payload.
func decodeCommandResult[R any](deviceID string, resp *pipeline.Response) (CommandResult[R], error) {
	var res CommandResult[R]
	raw := resp.Header.Get(headerCommandStatus)
	status, err := strconv.Atoi(raw)
	if err != nil {
		cause := fmt.Errorf("decode command result: the %s header is missing", headerCommandStatus)
		if raw != "" {
			cause = fmt.Errorf("decode command result: the %s header %q is not an integer", headerCommandStatus, raw)
		}
		return res, &iothub.BodyError{Operation: opCommand, DeviceID: deviceID, StatusCode: resp.StatusCode, Err: cause}
	}
	res.Status = status
	res.RequestID = resp.Header.Get(headerRequestID)
	payload := json.RawMessage(bytes.TrimSpace(resp.Body))
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	if !json.Valid(payload) {
		return res, &PayloadError{DeviceID: deviceID, Status: status, Payload: payload, Err: fmt.Errorf("the response body is not JSON")}
	}
	if p, ok := any(&res.Payload).(*json.RawMessage); ok {
		*p = payload
		return res, nil
	}
	if err := json.Unmarshal(payload, &res.Payload); err != nil {
		return res, &PayloadError{DeviceID: deviceID, Status: status, Payload: payload, Err: err}
	}
	return res, nil
}

// commandBody validates the device id and the parameters and encodes the
// request body once: nil for a null payload.
func commandBody[P any](op, deviceID string, params CommandParams[P]) ([]byte, error) {
	bad := func(field, rule string, err error) error {
		return &iothub.ArgumentError{Operation: op, Field: field, Rule: rule, Err: err}
	}
	if rule := wire.CheckID(deviceID); rule != "" {
		return nil, bad("deviceID", rule, nil)
	}
	if params.Component != "" {
		if rule := checkDTDLName(params.Component); rule != "" {
			return nil, bad("CommandParams.Component", rule, nil)
		}
	}
	if rule := checkDTDLName(params.Name); rule != "" {
		return nil, bad("CommandParams.Name", rule, nil)
	}
	if t := params.TimeoutInSeconds; t != 0 && (t < MinTimeoutInSeconds || t > MaxTimeoutInSeconds) {
		return nil, bad("CommandParams.TimeoutInSeconds", fmt.Sprintf("must be 0 (the hub default, %d) or within [%d, %d]; got %d", DefaultTimeoutInSeconds, MinTimeoutInSeconds, MaxTimeoutInSeconds, t), nil)
	}
	if t := params.ConnectTimeoutInSeconds; t < 0 || t > MaxConnectTimeoutInSeconds {
		return nil, bad("CommandParams.ConnectTimeoutInSeconds", fmt.Sprintf("must be within [0, %d]; got %d", MaxConnectTimeoutInSeconds, t), nil)
	}
	var b bytes.Buffer
	b.Grow(payloadSizeHint(params.Payload))
	if err := encodePayload(&b, params.Payload); err != nil {
		return nil, bad("CommandParams.Payload", "must encode as JSON", err)
	}
	if n := b.Len(); n > MaxPayloadBytes {
		return nil, bad("CommandParams.Payload", fmt.Sprintf("must be at most %d bytes as JSON; got %d", MaxPayloadBytes, n), nil)
	}
	if b.String() == "null" {
		return nil, nil
	}
	return b.Bytes(), nil
}

// checkDTDLName applies the DTDL rule for names: letters, digits and '_',
// 1 to 64 characters, starting with a letter and not ending with '_'.
func checkDTDLName(name string) string {
	const rule = "DTDL names use ASCII letters, digits and '_', start with a letter and do not end with '_'"
	switch {
	case name == "":
		return "must not be empty"
	case len(name) > MaxCommandNameLength:
		return fmt.Sprintf("must be at most %d characters (got %d)", MaxCommandNameLength, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		switch {
		case letter:
		case i == 0:
			return fmt.Sprintf("starts with %q; %s", rune(c), rule)
		case (c >= '0' && c <= '9') || c == '_':
		default:
			return fmt.Sprintf("has %q at byte %d; %s", rune(c), i, rule)
		}
	}
	if name[len(name)-1] == '_' {
		return "ends with '_'; " + rule
	}
	return ""
}
