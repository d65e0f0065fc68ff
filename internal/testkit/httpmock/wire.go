package httpmock

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/hubkit/iothub"
)

// jsonContentType is the Content-Type of every JSON answer.
const jsonContentType = "application/json; charset=utf-8"

// hubError is an error answer of the hub.
type hubError struct {
	status  int
	code    int // six-digit IoT Hub code; 0 for none
	message string
	info    any // optional "info" object
	shape   ErrorShape
	header  http.Header // extra headers, such as Allow or Retry-After
}

// newError returns an error answer in the default shape, its status taken
// from the code.
func newError(code iothub.ErrorCode, message string) *hubError {
	return &hubError{status: code.HTTPStatus(), code: int(code), message: message}
}

// routingError returns an ASP.NET routing answer: no code, no
// iothub-errorcode header.
func routingError(status int, message string) *hubError {
	return &hubError{status: status, message: message, shape: ShapeRouting}
}

// errorPayload is the object inside Message in the escaped-JSON and object
// shapes.
type errorPayload struct {
	ErrorCode    int    `json:"errorCode"`
	TrackingID   string `json:"trackingId"`
	Message      string `json:"message"`
	Info         any    `json:"info,omitempty"`
	TimestampUTC string `json:"timestampUtc"`
}

// write sends the error. now stamps the tracking ID and timestampUtc.
func (e *hubError) write(w http.ResponseWriter, now time.Time) {
	now = now.UTC()
	tracking := trackingID(now)
	var body []byte
	switch e.shape {
	case ShapeRouting:
		body = marshal(struct {
			Message string `json:"Message"`
		}{e.message})
	case ShapeLegacy:
		name := iothub.ErrorCode(e.code).Name()
		if name == "" {
			name = strconv.Itoa(e.code)
		}
		body = marshal(struct {
			Message          string `json:"Message"`
			ExceptionMessage string `json:"ExceptionMessage"`
		}{"ErrorCode:" + name + ";" + e.message, "Tracking ID:" + tracking})
	case ShapeObject:
		body = marshal(struct {
			Message errorPayload `json:"Message"`
		}{e.payload(tracking, now)})
	default:
		body = marshal(struct {
			Message          string `json:"Message"`
			ExceptionMessage string `json:"ExceptionMessage"`
		}{string(marshal(e.payload(tracking, now))), ""})
	}
	hdr := w.Header()
	for k, v := range e.header {
		hdr[k] = v
	}
	hdr.Set("Content-Type", jsonContentType)
	if e.shape != ShapeRouting {
		if name := iothub.ErrorCode(e.code).Name(); name != "" {
			hdr.Set("iothub-errorcode", name)
		}
	}
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}

func (e *hubError) payload(tracking string, now time.Time) errorPayload {
	return errorPayload{
		ErrorCode:    e.code,
		TrackingID:   tracking,
		Message:      e.message,
		Info:         e.info,
		TimestampUTC: now.Format("2006-01-02T15:04:05.0000000Z"),
	}
}

// trackingID returns a tracking ID in the hub's format:
// <32 hex>-G:11-TimeStamp:MM/dd/yyyy HH:mm:ss.
func trackingID(now time.Time) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b) + "-G:11-TimeStamp:" + now.UTC().Format("01/02/2006 15:04:05")
}

// marshal encodes v as compact JSON without HTML escaping, as .NET does.
// It panics on values that cannot be encoded, which the package never
// passes.
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("iothubtest: " + err.Error())
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// writeJSON sends a 200-class JSON answer.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", jsonContentType)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// formatTimeout formats a duration as .NET's TimeSpan does: hh:mm:ss.
func formatTimeout(d time.Duration) string {
	s := int64(d / time.Second)
	h, m := s/3600, s/60%60
	s %= 60
	return pad2(h) + ":" + pad2(m) + ":" + pad2(s)
}

func pad2(n int64) string {
	if n < 10 {
		return "0" + strconv.FormatInt(n, 10)
	}
	return strconv.FormatInt(n, 10)
}
