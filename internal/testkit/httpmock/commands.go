package httpmock

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
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

// Response headers of a Plug and Play command.
const (
	// CommandStatusHeader carries the device's status in a command's
	// answer.
	CommandStatusHeader = "x-ms-command-statuscode"
	// RequestIDHeader carries the hub's id of a command request.
	RequestIDHeader = "x-ms-request-id"
)

// CommandMethod is the direct-method name under which a Plug and Play
// command reaches the device: name for a root command (component empty),
// "{component}*{name}" for a component command.
func CommandMethod(component, name string) string {
	if component == "" {
		return name
	}
	return component + "*" + name
}

// commandTarget is the target and method name of a command route's
// parameters: [id, command] or [id, component, command].
func commandTarget(params []string) (target, string) {
	t := target{deviceID: params[0]}
	if len(params) == 3 {
		return t, CommandMethod(params[1], params[2])
	}
	return t, params[1]
}

// invokeCommand serves POST /digitaltwins/{id}/commands/{command} and
// POST /digitaltwins/{id}/components/{component}/commands/{command}: a
// direct method named CommandMethod(component, command), with the raw
// payload as the body and the timeouts in the query string. Past parsing
// it is the method path (runMethod); only the answer's format differs.
func (h *Hub) invokeCommand(w http.ResponseWriter, r *http.Request, rq *routed) {
	t, _ := commandTarget(rq.params)
	if e := h.throttle.methodsUnavailable(); e != nil {
		e.write(w, rq.now)
		return
	}
	mr, e := parseCommandRequest(r, rq)
	if e != nil {
		e.write(w, rq.now)
		return
	}
	h.runMethod(w, r, rq, t, mr, writeCommandAnswer)
}

// parseCommandRequest validates a command's names, query-string timeouts
// and body.
func parseCommandRequest(r *http.Request, rq *routed) (*methodRequest, *hubError) {
	var component string
	command := rq.params[len(rq.params)-1]
	if len(rq.params) == 3 {
		component = rq.params[1]
	}
	if !validCommandName(component) || !validCommandName(command) {
		return nil, newError(iothub.ErrorCodeArgumentInvalid,
			`Component and command names may contain only printable US-ASCII characters other than space, tab and $()<>@,;:\"/[]?={}*.`)
	}
	if len(rq.body) > 0 {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			return nil, newError(iothub.ErrorCodeGenericUnsupportedMediaType,
				"The request's Content-Type is not supported; use application/json.")
		}
	}
	mr := &methodRequest{name: CommandMethod(component, command), responseTimeout: DefaultResponseTimeout}
	n, ok, e := queryInt(r, "responseTimeoutInSeconds", MinResponseTimeoutSeconds, MaxResponseTimeoutSeconds)
	if e != nil {
		return nil, e
	}
	if ok {
		mr.responseTimeout = time.Duration(n) * time.Second
	}
	n, ok, e = queryInt(r, "connectTimeoutInSeconds", 0, MaxConnectTimeoutSeconds)
	if e != nil {
		return nil, e
	}
	if ok {
		mr.connectTimeout = time.Duration(n) * time.Second
	}
	body := bytes.TrimSpace(rq.body)
	if len(body) == 0 {
		return mr, nil // no payload: the device receives an empty one
	}
	if !json.Valid(body) {
		return nil, newError(iothub.ErrorCodeIotHubFormatError, "The request body is not valid JSON.")
	}
	if len(rq.body) > MaxPayloadSize {
		return nil, newError(iothub.ErrorCodeArgumentInvalid,
			fmt.Sprintf("'payload' size should be less than %d bytes", MaxPayloadSize))
	}
	mr.payload = slices.Clone(body)
	mr.size = len(rq.body)
	return mr, nil
}

// queryInt reads an optional integer query parameter in [lo, hi], matched
// case-insensitively as ASP.NET binds it. Out of range, not an int32, or
// given more than once: 400004 with the message methods use.
func queryInt(r *http.Request, name string, lo, hi int64) (int64, bool, *hubError) {
	var got []string
	for k, vs := range r.URL.Query() {
		if strings.EqualFold(k, name) {
			got = append(got, vs...)
		}
	}
	if len(got) == 0 {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(got[0], 10, 32)
	if len(got) > 1 || err != nil || n < lo || n > hi {
		return 0, false, newError(iothub.ErrorCodeArgumentInvalid, fmt.Sprintf("%s must be within [%d; %d].", name, lo, hi))
	}
	return n, true, nil
}

// validCommandName applies the method-name rule to one part of a command's
// method name, and also refuses '*', which joins component and command.
func validCommandName(name string) bool {
	return validMethodName(name) && !strings.Contains(name, "*")
}

// writeCommandAnswer sends a command's success answer: the device's
// payload as the body (null when it sent none), its status in
// x-ms-command-statuscode and a request id in x-ms-request-id.
func writeCommandAnswer(w http.ResponseWriter, resp MethodResponse) {
	body := []byte(resp.Payload)
	if len(body) == 0 {
		body = []byte("null")
	}
	hdr := w.Header()
	hdr.Set(CommandStatusHeader, strconv.Itoa(resp.Status))
	hdr.Set(RequestIDHeader, newRequestID())
	writeJSON(w, http.StatusOK, body)
}

// newRequestID returns a GUID in its usual textual form.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
