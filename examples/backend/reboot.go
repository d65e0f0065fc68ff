package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/service"
)

// The outcomes of a reboot request, the "outcome" of its answer.
const (
	outcomeAnswered     = "answered"
	outcomeInvalid      = "invalid"
	outcomeNotFound     = "not-found"
	outcomeNotDelivered = "not-delivered"
	outcomeMayHaveRun   = "may-have-run"
)

// maxDelay bounds the delay a caller may ask the device to wait before it
// reboots; maxBodyBytes bounds the request body.
const (
	maxDelay     = 3600
	maxBodyBytes = 4 << 10
)

// timeouts are the direct method's timeouts, in seconds, as in
// service.MethodParams: 0 means the hub's default response timeout (30 s)
// and no wait for a disconnected device.
type timeouts struct {
	Response, Connect int
}

// rebootRequest is the optional body of POST /devices/{id}/reboot, and the
// payload of the "reboot" method.
type rebootRequest struct {
	Delay int `json:"delay"`
}

// answer is the JSON body of every answer of the backend.
type answer struct {
	DeviceID   string          `json:"deviceId"`
	Outcome    string          `json:"outcome"`
	Status     int             `json:"status,omitzero"`   // the device's status, when it answered
	Payload    json.RawMessage `json:"payload,omitempty"` // the device's payload, when it answered
	Error      string          `json:"error,omitempty"`
	HubError   string          `json:"hubError,omitempty"`   // the hub's code and name, such as "404103 DeviceNotOnline"
	TrackingID string          `json:"trackingId,omitempty"` // the hub's tracking ID, for Azure support
}

// newHandler returns the backend's HTTP API: POST /devices/{id}/reboot
// invokes "reboot" on the device through client, with the given timeouts.
func newHandler(client *service.Client, t timeouts) http.Handler {
	rb := &rebooter{client: client, timeouts: t}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /devices/{id}/reboot", rb.serveReboot)
	return mux
}

// rebooter serves the reboot endpoint.
type rebooter struct {
	client   *service.Client
	timeouts timeouts
}

func (rb *rebooter) serveReboot(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	req, err := readRebootRequest(w, r)
	if err != nil {
		writeAnswer(w, http.StatusBadRequest, answer{DeviceID: id, Outcome: outcomeInvalid, Error: err.Error()})
		return
	}
	res, err := rb.client.InvokeDeviceMethod(r.Context(), id, service.MethodParams[any]{
		Name:                    "reboot",
		Payload:                 req,
		TimeoutInSeconds:        rb.timeouts.Response,
		ConnectTimeoutInSeconds: rb.timeouts.Connect,
	}, nil)
	if err != nil {
		status, a := failure(id, err)
		if d := retryAfter(err); d > 0 && status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
		}
		writeAnswer(w, status, a)
		return
	}
	writeAnswer(w, http.StatusOK, answer{DeviceID: id, Outcome: outcomeAnswered, Status: res.Status, Payload: res.Payload})
}

// readRebootRequest reads the optional body: none, or {"delay": seconds}.
func readRebootRequest(w http.ResponseWriter, r *http.Request) (rebootRequest, error) {
	var req rebootRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return req, fmt.Errorf("read the body: %w", err)
	}
	if len(body) == 0 {
		return req, nil
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return req, fmt.Errorf(`the body must be empty or {"delay": seconds}: %w`, err)
	}
	if req.Delay < 0 || req.Delay > maxDelay {
		return req, fmt.Errorf("delay must be within [0, %d] seconds; got %d", maxDelay, req.Delay)
	}
	return req, nil
}

// failure maps a failed invocation to the backend's answer. The order
// matters: what was refused before sending, then what the hub guarantees
// was not delivered, and last what may have run.
func failure(id string, err error) (int, answer) {
	a := answer{DeviceID: id, Outcome: outcomeNotDelivered}
	if he, ok := errors.AsType[*iothub.Error](err); ok {
		a.HubError, a.TrackingID = he.Code.String(), he.TrackingID
	}
	switch {
	case errors.Is(err, iothub.ErrInvalidArgument):
		a.Outcome, a.Error = outcomeInvalid, err.Error()
		return http.StatusBadRequest, a
	case iothub.MayHaveRun(err):
		a.Outcome = outcomeMayHaveRun
		a.Error = "the reboot may have run, but its outcome is unknown: check the device before you repeat it"
		return http.StatusAccepted, a
	case errors.Is(err, iothub.ErrDeviceNotFound):
		a.Outcome, a.Error = outcomeNotFound, "no device "+strconv.Quote(id)+" is registered, or it is disabled"
		return http.StatusNotFound, a
	case errors.Is(err, iothub.ErrDeviceNotOnline):
		a.Error = "the device is not connected: the reboot was not delivered; try again when it is online"
		return http.StatusConflict, a
	case errors.Is(err, iothub.ErrThrottled), errors.Is(err, iothub.ErrServerBusy):
		a.Error = "IoT Hub is throttling or busy: the reboot was not delivered; try again later"
		return http.StatusServiceUnavailable, a
	case errors.As(err, new(*iothub.TransportError)):
		a.Error = "IoT Hub could not be reached: the reboot was not delivered; try again later"
		return http.StatusServiceUnavailable, a
	default: // refused by the hub: a credential, the quota, a suspended hub
		a.Error = "IoT Hub refused the call: the reboot was not delivered"
		return http.StatusBadGateway, a
	}
}

// retryAfter returns the delay the hub asked for, or 0.
func retryAfter(err error) time.Duration {
	if he, ok := errors.AsType[*iothub.Error](err); ok {
		return he.RetryAfter
	}
	return 0
}

// writeAnswer writes a as JSON with the given HTTP status.
func writeAnswer(w http.ResponseWriter, status int, a answer) {
	body, err := json.Marshal(a)
	if err != nil { // an answer always marshals; the device's payload is valid JSON
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
