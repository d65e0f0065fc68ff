package httpmock

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hubkit/iothub"
)

// Direct-method limits, as IoT Hub enforces them.
const (
	// DefaultResponseTimeout is the response timeout of a call whose body
	// has no responseTimeoutInSeconds.
	DefaultResponseTimeout = 30 * time.Second
	// MinResponseTimeoutSeconds and MaxResponseTimeoutSeconds bound
	// responseTimeoutInSeconds.
	MinResponseTimeoutSeconds = 5
	MaxResponseTimeoutSeconds = 300
	// MaxConnectTimeoutSeconds bounds connectTimeoutInSeconds, whose
	// minimum (and default) is 0.
	MaxConnectTimeoutSeconds = 300
	// MaxPayloadSize is the largest accepted request payload, measured as
	// compact JSON.
	MaxPayloadSize = 131072
)

// methodRequest is a validated direct-method request body.
type methodRequest struct {
	name            string
	payload         json.RawMessage // nil when absent
	size            int             // payload size as compact JSON; 0 when absent
	responseTimeout time.Duration
	connectTimeout  time.Duration
}

// invokeMethod serves POST /twins/{id}/methods and
// POST /twins/{id}/modules/{mid}/methods.
func (h *Hub) invokeMethod(w http.ResponseWriter, r *http.Request, rq *routed) {
	t := target{deviceID: rq.params[0]}
	if len(rq.params) > 1 {
		t.moduleID = rq.params[1]
	}
	if e := h.throttle.methodsUnavailable(); e != nil {
		e.write(w, rq.now)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		newError(iothub.ErrorCodeGenericUnsupportedMediaType,
			"The request's Content-Type is not supported; use application/json.").write(w, rq.now)
		return
	}
	mr, e := parseMethodRequest(rq.body)
	if e != nil {
		e.write(w, rq.now)
		return
	}
	h.runMethod(w, r, rq, t, mr, writeMethodAnswer)
}

// writeMethodAnswer sends a direct method's success answer: the device's
// status and payload in a JSON envelope.
func writeMethodAnswer(w http.ResponseWriter, resp MethodResponse) {
	writeJSON(w, http.StatusOK, marshal(struct {
		Status  int             `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}{resp.Status, resp.Payload}))
}

// runMethod is what a direct method and a Plug and Play command share once
// the request is parsed: the daily quota, faults, throttling, delivery to
// the target and the hub's error answers. answer writes the success answer
// in the operation's own format.
func (h *Hub) runMethod(w http.ResponseWriter, r *http.Request, rq *routed, t target, mr *methodRequest, answer func(http.ResponseWriter, MethodResponse)) {
	ctx := r.Context()
	if e := h.quotaError(); e != nil {
		e.write(w, rq.now)
		return
	}

	f := h.takeFault(OperationMethod, t, mr.name, false)
	if f != nil && !f.afterDelivery() {
		if !sleep(ctx, f.Delay) {
			abort()
		}
		switch {
		case f.Drop != DropNone:
			panic(http.ErrAbortHandler)
		case f.answers():
			writeFault(w, f)
			return
		}
		// A delay-only fault: carry on.
	}
	if e := h.throttle.method(ctx, mr.size); e != nil {
		e.write(w, time.Now())
		return
	}

	d, ok := h.deliver(ctx, t, mr)
	h.billMethod(mr, d)
	if !ok {
		abort()
	}
	if f != nil && f.afterDelivery() && d.delivered {
		if !sleep(ctx, f.Delay) {
			abort()
		}
		if f.Drop != DropNone {
			panic(http.ErrAbortHandler)
		}
		writeFault(w, f)
		return
	}
	if d.err != nil {
		d.err.write(w, time.Now())
		return
	}
	answer(w, d.resp)
}

// abort ends a request whose caller went away (or whose server is closing)
// without an answer: the connection is broken rather than answered with an
// implicit 200.
func abort() { panic(http.ErrAbortHandler) }

// parseMethodRequest validates a CloudToDeviceMethod body.
func parseMethodRequest(body []byte) (*methodRequest, *hubError) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	var fields map[string]json.RawMessage
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(body, &fields) != nil {
		return nil, newError(iothub.ErrorCodeIotHubFormatError, "The request body is not a valid JSON object.")
	}
	mr := &methodRequest{responseTimeout: DefaultResponseTimeout}

	raw, ok := lookup(fields, "methodName")
	if !ok || isNull(raw) {
		return nil, newError(iothub.ErrorCodeArgumentNull, "methodName cannot be null or empty.")
	}
	if raw[0] != '"' || json.Unmarshal(raw, &mr.name) != nil {
		return nil, newError(iothub.ErrorCodeArgumentInvalid, "methodName must be a string.")
	}
	if mr.name == "" {
		return nil, newError(iothub.ErrorCodeArgumentNull, "methodName cannot be null or empty.")
	}
	if !validMethodName(mr.name) {
		return nil, newError(iothub.ErrorCodeArgumentInvalid,
			`methodName may contain only printable US-ASCII characters other than space, tab and $()<>@,;:\"/[]?={}.`)
	}

	if raw, ok := lookup(fields, "responseTimeoutInSeconds"); ok && !isNull(raw) {
		n, ok := parseInt32(raw)
		if !ok || n < MinResponseTimeoutSeconds || n > MaxResponseTimeoutSeconds {
			return nil, newError(iothub.ErrorCodeArgumentInvalid, "responseTimeoutInSeconds must be within [5; 300].")
		}
		mr.responseTimeout = time.Duration(n) * time.Second
	}
	if raw, ok := lookup(fields, "connectTimeoutInSeconds"); ok && !isNull(raw) {
		n, ok := parseInt32(raw)
		if !ok || n < 0 || n > MaxConnectTimeoutSeconds {
			return nil, newError(iothub.ErrorCodeArgumentInvalid, "connectTimeoutInSeconds must be within [0; 300].")
		}
		mr.connectTimeout = time.Duration(n) * time.Second
	}

	if raw, ok := lookup(fields, "payload"); ok {
		var compact bytes.Buffer
		if err := json.Compact(&compact, raw); err != nil || compact.Len() > MaxPayloadSize {
			return nil, newError(iothub.ErrorCodeArgumentInvalid,
				fmt.Sprintf("'payload' size should be less than %d bytes", MaxPayloadSize))
		}
		mr.payload = slices.Clone(raw)
		mr.size = compact.Len()
	}
	return mr, nil
}

// lookup finds a body field, preferring an exact name and falling back to a
// case-insensitive match, as the hub's JSON binder does.
func lookup(fields map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	if v, ok := fields[name]; ok {
		return v, true
	}
	for k, v := range fields {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// parseInt32 accepts a JSON integer literal (no fraction, no exponent) that
// fits an int32.
func parseInt32(raw json.RawMessage) (int64, bool) {
	n, err := strconv.ParseInt(string(raw), 10, 32)
	return n, err == nil
}

// validMethodName applies the documented rule: printable US-ASCII other
// than space, tab and $ ( ) < > @ , ; : \ " / [ ] ? = { }.
func validMethodName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c > '~' || strings.IndexByte(`$()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// writeFault sends a fault's answer.
func writeFault(w http.ResponseWriter, f *Fault) {
	status := f.Status
	if status == 0 {
		status = http.StatusInternalServerError
		if f.Code != 0 {
			status = f.Code / 1000
		}
	}
	if f.Body != nil {
		hdr := w.Header()
		if f.ContentType != "" {
			hdr.Set("Content-Type", f.ContentType)
		} else {
			hdr["Content-Type"] = nil // no header, and no sniffing either
		}
		if f.RetryAfter != "" {
			hdr.Set("Retry-After", f.RetryAfter)
		}
		w.WriteHeader(status)
		_, _ = w.Write(f.Body)
		return
	}
	var e *hubError
	if !f.answers() {
		e = newError(iothub.ErrorCodeGatewayTimeout, "Timed out waiting for the response from device.")
	} else {
		code := f.Code
		if code == 0 && f.Shape != ShapeRouting {
			code = status * 1000
		}
		msg := f.Message
		if msg == "" {
			if msg = iothub.ErrorCode(code).Name(); msg == "" {
				msg = http.StatusText(status)
			}
		}
		e = &hubError{status: status, code: code, message: msg, shape: f.Shape}
	}
	if f.RetryAfter != "" {
		e.header = http.Header{"Retry-After": {f.RetryAfter}}
	}
	e.write(w, time.Now())
}

// delivery is the outcome of handing a call to its target.
type delivery struct {
	resp      MethodResponse
	err       *hubError // the hub's error answer, if any
	delivered bool      // the target received the call
}

// deliver waits (up to the connect timeout) for the target to be online,
// delivers the call and waits (up to the response timeout) for the answer.
// It reports false when ctx ended first: the caller went away.
func (h *Hub) deliver(ctx context.Context, t target, mr *methodRequest) (delivery, bool) {
	var expired <-chan time.Time
	if mr.connectTimeout > 0 {
		timer := time.NewTimer(mr.connectTimeout)
		defer timer.Stop()
		expired = timer.C
	}
	for {
		h.mu.Lock()
		ep, e := h.resolve(t)
		if e != nil {
			h.mu.Unlock()
			return delivery{err: e}, true
		}
		if ep.online {
			call := MethodCall{
				DeviceID:        t.deviceID,
				ModuleID:        t.moduleID,
				Method:          mr.name,
				Payload:         mr.payload,
				ResponseTimeout: mr.responseTimeout,
				ConnectTimeout:  mr.connectTimeout,
			}
			h.deliveries[t]++
			h.delivered++
			h.countDelivery(t, mr.name)
			h.calls = record(h.calls, call, h.maxRecorded)
			fn, latency := ep.handler(mr.name), ep.latency
			h.mu.Unlock()
			return runDevice(ctx, fn, latency, call)
		}
		changed := ep.waitChan()
		h.mu.Unlock()
		if expired == nil {
			return delivery{err: notOnline(mr.connectTimeout)}, true
		}
		select {
		case <-changed:
		case <-expired:
			return delivery{err: notOnline(mr.connectTimeout)}, true
		case <-ctx.Done():
			return delivery{}, false
		}
	}
}

func notOnline(connectTimeout time.Duration) *hubError {
	e := newError(iothub.ErrorCodeDeviceNotOnline, "Timed out waiting for device to connect.")
	e.info = map[string]string{"timeout": formatTimeout(connectTimeout)}
	return e
}

// resolve finds the endpoint of a registered, enabled target. The caller
// holds h.mu.
func (h *Hub) resolve(t target) (*endpoint, *hubError) {
	d := h.devices[t.deviceID]
	if d == nil || d.disabled {
		return nil, newError(iothub.ErrorCodeDeviceNotFound, fmt.Sprintf("Device %s not found.", t.deviceID))
	}
	if t.moduleID == "" {
		return &d.ep, nil
	}
	m := d.modules[t.moduleID]
	if m == nil {
		return nil, newError(iothub.ErrorCodeModuleNotFound, fmt.Sprintf("Module %s not found on device %s.", t.moduleID, t.deviceID))
	}
	return &m.ep, nil
}

// runDevice runs the target's handler after its latency and waits for the
// answer until the call's response timeout. The handler's context ends at
// that timeout, or when ctx does.
func runDevice(ctx context.Context, fn MethodHandler, latency time.Duration, call MethodCall) (delivery, bool) {
	hctx, cancel := context.WithTimeout(ctx, call.ResponseTimeout)
	defer cancel()
	done := make(chan MethodResponse, 1)
	go func() {
		if !sleep(hctx, latency) {
			return
		}
		if fn == nil {
			done <- MethodResponse{Status: NotImplementedStatus}
			return
		}
		c := call
		c.Payload = slices.Clone(call.Payload)
		done <- fn(hctx, c)
	}()
	select {
	case resp := <-done:
		if len(resp.Payload) == 0 {
			resp.Payload = nil
		} else if !json.Valid(resp.Payload) {
			return delivery{delivered: true, err: newError(iothub.ErrorCodeServerError,
				"The device's response payload is not valid JSON.")}, true
		}
		return delivery{resp: resp, delivered: true}, true
	case <-hctx.Done():
		if ctx.Err() != nil {
			return delivery{delivered: true}, false
		}
		return delivery{delivered: true, err: newError(iothub.ErrorCodeGatewayTimeout,
			"Timed out waiting for the response from device.")}, true
	}
}

// sleep waits for d, reporting false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
