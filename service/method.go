package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/pipeline"
	"github.com/hubkit/iothub/internal/wire"
)

// Limits of a direct-method invocation, as IoT Hub enforces them.
const (
	// MaxPayloadBytes is the largest request payload, as JSON.
	MaxPayloadBytes = 128 << 10
	// DefaultTimeoutInSeconds is the response timeout the hub applies when
	// MethodParams.TimeoutInSeconds is 0.
	DefaultTimeoutInSeconds = 30
	// MinTimeoutInSeconds and MaxTimeoutInSeconds bound a non-zero
	// MethodParams.TimeoutInSeconds.
	MinTimeoutInSeconds = 5
	MaxTimeoutInSeconds = 300
	// MaxConnectTimeoutInSeconds bounds MethodParams.ConnectTimeoutInSeconds.
	MaxConnectTimeoutInSeconds = 300
)

// NetworkMargin is added to a method's connect and response timeouts to
// make the HTTP deadline of an attempt, so that the hub's own timeout
// (answered as 404103 or 504101) normally arrives before the client gives up.
const NetworkMargin = 15 * time.Second

// maxMethodResponseBytes bounds the hub's answer: a 128 KiB device payload
// with room for JSON escaping.
const maxMethodResponseBytes = 1 << 20

// MethodParams describes one direct-method invocation. P is the payload
// type; use any (or json.RawMessage for JSON you already hold) for the
// untyped form.
type MethodParams[P any] struct {
	// Name is the method name, such as "reboot". Required: printable ASCII
	// without spaces or any of $()<>@,;:\"/[]?={}.
	Name string
	// Payload is sent as the method's JSON payload: any JSON value,
	// including null. A json.RawMessage is sent as is and must be valid
	// JSON. At most MaxPayloadBytes once encoded.
	Payload P
	// TimeoutInSeconds is how long the hub waits for the device's answer
	// (responseTimeoutInSeconds on the wire). 0 means the hub's default of
	// 30; otherwise 5 to 300.
	TimeoutInSeconds int
	// ConnectTimeoutInSeconds is how long the hub waits for a disconnected
	// device to connect (connectTimeoutInSeconds). 0, the default, means
	// the device must already be connected; at most 300.
	ConnectTimeoutInSeconds int
}

// MethodResult is the device's answer. A device that answers with an error
// status (say 500) still gives a result: the invocation succeeded and the
// status is the device's own.
type MethodResult[R any] struct {
	// Status is the status code the device (or module) answered with.
	Status int
	// Payload is the device's JSON payload, decoded into R.
	Payload R
}

// InvokeOptions are the per-call options of an invocation. A nil
// *InvokeOptions gives the defaults.
type InvokeOptions struct {
	// Idempotent declares that running the method more than once is
	// harmless (a "getStatus", say). The SDK may then retry after answers
	// that leave delivery unknown: 504101, other 5xx, a connection broken
	// after the request was written, an attempt deadline. By default a
	// method is retried only where IoT Hub guarantees it was not delivered
	// (429xxx, 503xxx, a connection that failed before the request was
	// written), so a reboot never runs twice by accident.
	Idempotent bool
	// RetryDeviceNotOnline retries 404103 (device not online) with the
	// client's backoff. Usually ConnectTimeoutInSeconds is the better tool:
	// the hub then waits for the device itself.
	RetryDeviceNotOnline bool
}

// policy returns the retry class and policy the options ask for.
func (o *InvokeOptions) policy() (pipeline.RetryClass, callPolicy) {
	class, policy := pipeline.RetryNotDelivered, callPolicy(0)
	if o != nil {
		if o.Idempotent {
			class = pipeline.RetryIdempotent
		}
		if o.RetryDeviceNotOnline {
			policy |= retryNotOnline
		}
	}
	return class, policy
}

// callPolicy is the pipeline.Policy of this package's calls:
// pipeline.Default with the exceptions its flags name. Being a byte, it is
// stored in a pipeline.Request without an allocation.
type callPolicy uint8

const (
	// retryNotOnline retries 404103 (InvokeOptions.RetryDeviceNotOnline).
	retryNotOnline callPolicy = 1 << iota
	// leaveThrottled hands 429 back to the caller, which backs off on its
	// own: the fan-out, which paces its retries with its controller, and job
	// scheduling, to wait for a job slot.
	leaveThrottled
)

// Decide applies pipeline.Default with p's exceptions.
func (p callPolicy) Decide(he *iothub.Error, class pipeline.RetryClass) pipeline.Decision {
	switch {
	case p&leaveThrottled != 0 && errors.Is(he, iothub.ErrThrottled):
		return pipeline.Fail
	case p&retryNotOnline != 0 && he.Code == iothub.ErrorCodeDeviceNotOnline:
		return pipeline.Retry
	}
	return pipeline.Default(he, class)
}

// PayloadError reports a device answer whose payload could not be decoded
// into the result type. The method ran: the result returned with it holds
// the device's status, and Payload holds the raw JSON.
type PayloadError struct {
	// DeviceID and ModuleID name the target.
	DeviceID, ModuleID string
	// Status is the device's status.
	Status int
	// Payload is the payload as the device sent it.
	Payload json.RawMessage
	// Err is the decoding error.
	Err error
}

// Error says the method ran and why its payload could not be decoded.
func (e *PayloadError) Error() string {
	target := "device " + strconv.Quote(e.DeviceID)
	if e.ModuleID != "" {
		target += " module " + strconv.Quote(e.ModuleID)
	}
	return fmt.Sprintf("iothub: %s answered status %d, but its payload does not decode: %v (the method ran)", target, e.Status, e.Err)
}

// Unwrap returns the decoding error.
func (e *PayloadError) Unwrap() error { return e.Err }

// InvokeDeviceMethod invokes a direct method on a device with an untyped
// payload and returns the device's answer with its payload as raw JSON
// (object, array, string, number or null, exactly as sent).
//
// Errors: an *iothub.ArgumentError before anything is sent; an *iothub.Error
// when the hub answers with an error (device not found, not online, gateway
// timeout, throttled, …); an *iothub.TransportError when no answer arrived.
// Use iothub.MayHaveRun(err) before trying again: it is false only when IoT
// Hub guarantees the method did not reach the device.
func (c *Client) InvokeDeviceMethod(ctx context.Context, deviceID string, params MethodParams[any], options *InvokeOptions) (MethodResult[json.RawMessage], error) {
	class, policy := options.policy()
	res, _, err := invoke[json.RawMessage](ctx, c, opDevice, deviceID, "", params, class, policy)
	return res, err
}

// InvokeModuleMethod invokes a direct method on a module of a device, such
// as "RestartModule" on "$edgeAgent", with an untyped payload. Results and
// errors are as for InvokeDeviceMethod.
func (c *Client) InvokeModuleMethod(ctx context.Context, deviceID, moduleID string, params MethodParams[any], options *InvokeOptions) (MethodResult[json.RawMessage], error) {
	class, policy := options.policy()
	res, _, err := invoke[json.RawMessage](ctx, c, opModule, deviceID, moduleID, params, class, policy)
	return res, err
}

// InvokeDevice invokes a direct method on a device with a typed payload and
// decodes the device's payload into R:
//
//	res, err := service.InvokeDevice[RebootStatus](ctx, client, "dev-1",
//		service.MethodParams[RebootRequest]{Name: "reboot", Payload: RebootRequest{Delay: 5}}, nil)
//
// A payload that does not decode into R returns the result (with the
// device's status) and a *PayloadError: the method ran. Other results and
// errors are as for Client.InvokeDeviceMethod.
func InvokeDevice[R, P any](ctx context.Context, c *Client, deviceID string, params MethodParams[P], options *InvokeOptions) (MethodResult[R], error) {
	class, policy := options.policy()
	res, _, err := invoke[R](ctx, c, opDevice, deviceID, "", params, class, policy)
	return res, err
}

// InvokeModule invokes a direct method on a module with a typed payload;
// see InvokeDevice.
func InvokeModule[R, P any](ctx context.Context, c *Client, deviceID, moduleID string, params MethodParams[P], options *InvokeOptions) (MethodResult[R], error) {
	class, policy := options.policy()
	res, _, err := invoke[R](ctx, c, opModule, deviceID, moduleID, params, class, policy)
	return res, err
}

// Operation names, as errors and logs give them.
const (
	opDevice = "InvokeDeviceMethod"
	opModule = "InvokeModuleMethod"
)

// invoke is every invocation: the public calls with the policy of their
// options, the fan-out with its own. It returns the HTTP attempts of a call
// the hub answered (0 when the pipeline returned an error, which counts
// them itself).
func invoke[R, P any](ctx context.Context, c *Client, op, deviceID, moduleID string, params MethodParams[P], class pipeline.RetryClass, policy callPolicy) (MethodResult[R], int, error) {
	if err := checkTarget(op, deviceID, moduleID, op == opModule); err != nil {
		return MethodResult[R]{}, 0, err
	}
	m, err := encodeMethod(op, params)
	if err != nil {
		return MethodResult[R]{}, 0, err
	}
	return invokeEncoded[R](ctx, c, op, deviceID, moduleID, m, class, policy)
}

// invokeEncoded sends an encoded invocation to a target whose ids were
// checked; see invoke.
func invokeEncoded[R any](ctx context.Context, c *Client, op, deviceID, moduleID string, m methodCall, class pipeline.RetryClass, policy callPolicy) (MethodResult[R], int, error) {
	var res MethodResult[R]
	path := "/twins/" + wire.EscapeID(deviceID) + "/methods"
	if op == opModule {
		path = "/twins/" + wire.EscapeID(deviceID) + "/modules/" + wire.EscapeID(moduleID) + "/methods"
	}
	req := &pipeline.Request{
		Operation:        op,
		DeviceID:         deviceID,
		ModuleID:         moduleID,
		Method:           http.MethodPost,
		Path:             path,
		Body:             m.body,
		AttemptTimeout:   m.attemptTimeout,
		Retry:            class,
		Policy:           policy,
		MaxResponseBytes: maxMethodResponseBytes,
		MethodName:       m.name,
		ResultStatus:     methodStatus,
	}
	resp, err := c.p.Do(ctx, req)
	if err != nil {
		return res, 0, err
	}
	res, err = decodeMethodResult[R](op, deviceID, moduleID, resp)
	return res, resp.Attempts, err
}

// methodStatus reads the device's status from the hub's answer to an
// invocation, for telemetry (pipeline.Request.ResultStatus).
func methodStatus(resp *pipeline.Response) (int, bool) {
	if status, _, ok := parseMethodAnswer(resp.Body); ok {
		return status, true
	}
	var wire struct {
		Status *int `json:"status"`
	}
	if json.Unmarshal(resp.Body, &wire) != nil || wire.Status == nil {
		return 0, false
	}
	return *wire.Status, true
}

// decodeMethodResult decodes the hub's answer to an invocation.
func decodeMethodResult[R any](op, deviceID, moduleID string, resp *pipeline.Response) (MethodResult[R], error) {
	var res MethodResult[R]
	// An answer of the form {"status":N,"payload":V} is read directly
	// (parseMethodAnswer); its payload is a slice of the body, which
	// belongs to this call alone.
	status, raw, ok := parseMethodAnswer(resp.Body)
	if !ok {
		var wire struct {
			Status  *int            `json:"status"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(resp.Body, &wire); err != nil || wire.Status == nil {
			if err == nil {
				err = fmt.Errorf("answer has no status field")
			}
			return res, &iothub.BodyError{Operation: op, DeviceID: deviceID, ModuleID: moduleID, StatusCode: resp.StatusCode, Err: fmt.Errorf("decode method result: %w", err)}
		}
		status, raw = *wire.Status, wire.Payload
	}
	res.Status = status
	if len(raw) == 0 {
		raw = json.RawMessage("null")
	}
	if p, ok := any(&res.Payload).(*json.RawMessage); ok {
		*p = raw
		return res, nil
	}
	if err := json.Unmarshal(raw, &res.Payload); err != nil {
		return res, &PayloadError{DeviceID: deviceID, ModuleID: moduleID, Status: res.Status, Payload: raw, Err: err}
	}
	return res, nil
}

// checkTarget checks an invocation's device id and, on a module, its
// module id.
func checkTarget(op, deviceID, moduleID string, onModule bool) error {
	if rule := wire.CheckID(deviceID); rule != "" {
		return &iothub.ArgumentError{Operation: op, Field: "deviceID", Rule: rule}
	}
	if onModule {
		if rule := wire.CheckID(moduleID); rule != "" {
			return &iothub.ArgumentError{Operation: op, Field: "moduleID", Rule: rule}
		}
	}
	return nil
}

// methodCall is an invocation as sent, whatever its target: the request
// body, encoded once (a fan-out sends the same bytes to every target; the
// pipeline only reads them), and what the pipeline needs besides.
type methodCall struct {
	name           string
	body           []byte
	payloadBytes   int           // the payload's size as JSON, which the hub meters
	attemptTimeout time.Duration // the response (and connect) timeout plus NetworkMargin
}

// encodeMethod validates the parameters and encodes the request body.
func encodeMethod[P any](op string, params MethodParams[P]) (methodCall, error) {
	bad := func(field, rule string, err error) error {
		return &iothub.ArgumentError{Operation: op, Field: field, Rule: rule, Err: err}
	}
	if rule := checkMethodName(params.Name); rule != "" {
		return methodCall{}, bad("MethodParams.Name", rule, nil)
	}
	if t := params.TimeoutInSeconds; t != 0 && (t < MinTimeoutInSeconds || t > MaxTimeoutInSeconds) {
		return methodCall{}, bad("MethodParams.TimeoutInSeconds", fmt.Sprintf("must be 0 (the hub default, %d) or within [%d, %d]; got %d", DefaultTimeoutInSeconds, MinTimeoutInSeconds, MaxTimeoutInSeconds, t), nil)
	}
	if t := params.ConnectTimeoutInSeconds; t < 0 || t > MaxConnectTimeoutInSeconds {
		return methodCall{}, bad("MethodParams.ConnectTimeoutInSeconds", fmt.Sprintf("must be within [0, %d]; got %d", MaxConnectTimeoutInSeconds, t), nil)
	}
	// The name was checked to hold no character that JSON escapes. The
	// payload is encoded (or, when it is raw JSON, checked and compacted)
	// straight into the body.
	var b bytes.Buffer
	b.Grow(payloadSizeHint(params.Payload) + len(params.Name) + 96)
	b.WriteString(`{"methodName":"`)
	b.WriteString(params.Name)
	b.WriteString(`","payload":`)
	start := b.Len()
	if err := encodePayload(&b, params.Payload); err != nil {
		return methodCall{}, bad("MethodParams.Payload", "must encode as JSON", err)
	}
	n := b.Len() - start
	if n > MaxPayloadBytes {
		return methodCall{}, bad("MethodParams.Payload", fmt.Sprintf("must be at most %d bytes as JSON; got %d", MaxPayloadBytes, n), nil)
	}
	if params.TimeoutInSeconds != 0 {
		b.WriteString(`,"responseTimeoutInSeconds":`)
		b.WriteString(strconv.Itoa(params.TimeoutInSeconds))
	}
	if params.ConnectTimeoutInSeconds != 0 {
		b.WriteString(`,"connectTimeoutInSeconds":`)
		b.WriteString(strconv.Itoa(params.ConnectTimeoutInSeconds))
	}
	b.WriteByte('}')
	timeout := params.TimeoutInSeconds
	if timeout == 0 {
		timeout = DefaultTimeoutInSeconds
	}
	return methodCall{
		name:           params.Name,
		body:           b.Bytes(),
		payloadBytes:   n,
		attemptTimeout: time.Duration(params.ConnectTimeoutInSeconds+timeout)*time.Second + NetworkMargin,
	}, nil
}

// payloadSizeHint guesses the encoded size of a payload, to size the body
// once.
func payloadSizeHint(p any) int {
	if raw, ok := p.(json.RawMessage); ok {
		return len(raw)
	}
	return 64
}

// encodePayload appends the payload's JSON to b, once. A json.RawMessage
// must be valid JSON; it is compacted so that its size is what the hub
// meters.
func encodePayload(b *bytes.Buffer, p any) error {
	switch v := p.(type) {
	case nil:
		b.WriteString("null")
		return nil
	case json.RawMessage:
		if v == nil {
			b.WriteString("null")
			return nil
		}
		if err := json.Compact(b, v); err != nil {
			return fmt.Errorf("json.RawMessage is not valid JSON: %w", err)
		}
		return nil
	}
	// Encode as json.Marshal would, without the copy; on error nothing is
	// written.
	if err := json.NewEncoder(b).Encode(p); err != nil {
		return err
	}
	b.Truncate(b.Len() - 1) // the newline Encode ends with
	return nil
}

// methodNameForbidden lists the printable ASCII characters IoT Hub does not
// allow in a method name.
const methodNameForbidden = "$()<>@,;:\\\"/[]?={}"

func checkMethodName(name string) string {
	if name == "" {
		return "must not be empty"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(methodNameForbidden, c) >= 0 {
			return fmt.Sprintf("has %q at byte %d; method names use printable ASCII without spaces or any of %s", rune(c), i, methodNameForbidden)
		}
	}
	return ""
}
