package httpmock

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestContentType(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	client := inProcess(h)
	for ct, ok := range map[string]bool{
		"application/json":                  true,
		"application/json; charset=utf-8":   true,
		"Application/JSON; charset=UTF-8":   true,
		"application/json;odata=verbose":    true,
		"-":                                 false,
		"text/plain":                        false,
		"application/x-www-form-urlencoded": false,
		"application/jsonp":                 false,
		"application/json; charset":         false,
	} {
		t.Run(ct, func(t *testing.T) {
			t.Parallel()
			r := send(t.Context(), t, h, client, call{path: "/twins/d1/methods", contentType: ct, body: methodBody("m", "")})
			if ok {
				methodResult(t, r)
				return
			}
			got := decodeErr(t, r)
			if got.Status != 415 || got.Code != 415000 || got.Header != "GenericUnsupportedMediaType" {
				t.Errorf("got %+v", got)
			}
		})
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	client := inProcess(h)
	big := `"` + strings.Repeat("x", MaxPayloadSize-2) + `"`        // exactly the limit
	spaced := `[ "` + strings.Repeat("x", MaxPayloadSize-4) + `" ]` // over as sent, at the limit compact
	tests := []struct {
		name        string
		body        string
		wantCode    int    // 0: success
		wantMessage string // checked when set
		wantPayload string // on success: the payload echoed back
	}{
		{name: "not JSON", body: `{"methodName":`, wantCode: 400006},
		{name: "array", body: `[{"methodName":"m"}]`, wantCode: 400006},
		{name: "null", body: `null`, wantCode: 400006},
		{name: "string", body: `"m"`, wantCode: 400006},
		{name: "empty body", body: ``, wantCode: 400006},
		{name: "trailing data", body: methodBody("m", "") + `{}`, wantCode: 400006},
		{name: "missing methodName", body: `{"payload":1}`, wantCode: 400005},
		{name: "null methodName", body: `{"methodName":null}`, wantCode: 400005},
		{name: "empty methodName", body: `{"methodName":""}`, wantCode: 400005},
		{name: "numeric methodName", body: `{"methodName":5}`, wantCode: 400004},
		{name: "object methodName", body: `{"methodName":{}}`, wantCode: 400004},
		{name: "space in name", body: methodBody("re boot", ""), wantCode: 400004},
		{name: "tab in name", body: methodBody("re\tboot", ""), wantCode: 400004},
		{name: "dollar in name", body: methodBody("$reboot", ""), wantCode: 400004},
		{name: "slash in name", body: methodBody("a/b", ""), wantCode: 400004},
		{name: "braces in name", body: methodBody("a{b}", ""), wantCode: 400004},
		{name: "colon in name", body: methodBody("a:b", ""), wantCode: 400004},
		{name: "quote in name", body: methodBody(`a"b`, ""), wantCode: 400004},
		{name: "non-ASCII name", body: methodBody("redémarrer", ""), wantCode: 400004},
		{name: "DEL in name", body: `{"methodName":"a\u007fb"}`, wantCode: 400004},
		{name: "allowed punctuation", body: methodBody("a-b_c.d!#%&'*+^`|~", ""), wantPayload: "null"},
		{name: "case-insensitive field", body: `{"MethodName":"m","Payload":7}`, wantPayload: "7"},
		{name: "unknown field", body: methodBody("m", `,"extra":[1]`), wantPayload: "null"},
		{name: "responseTimeout 0", body: methodBody("m", `,"responseTimeoutInSeconds":0`), wantCode: 400004, wantMessage: "responseTimeoutInSeconds must be within [5; 300]."},
		{name: "responseTimeout 4", body: methodBody("m", `,"responseTimeoutInSeconds":4`), wantCode: 400004, wantMessage: "responseTimeoutInSeconds must be within [5; 300]."},
		{name: "responseTimeout 301", body: methodBody("m", `,"responseTimeoutInSeconds":301`), wantCode: 400004},
		{name: "responseTimeout -5", body: methodBody("m", `,"responseTimeoutInSeconds":-5`), wantCode: 400004},
		{name: "responseTimeout fraction", body: methodBody("m", `,"responseTimeoutInSeconds":30.5`), wantCode: 400004},
		{name: "responseTimeout exponent", body: methodBody("m", `,"responseTimeoutInSeconds":3e1`), wantCode: 400004},
		{name: "responseTimeout string", body: methodBody("m", `,"responseTimeoutInSeconds":"30"`), wantCode: 400004},
		{name: "responseTimeout huge", body: methodBody("m", `,"responseTimeoutInSeconds":4294967301`), wantCode: 400004},
		{name: "responseTimeout 5", body: methodBody("m", `,"responseTimeoutInSeconds":5`), wantPayload: "null"},
		{name: "responseTimeout 300", body: methodBody("m", `,"responseTimeoutInSeconds":300`), wantPayload: "null"},
		{name: "responseTimeout null", body: methodBody("m", `,"responseTimeoutInSeconds":null`), wantPayload: "null"},
		{name: "connectTimeout -1", body: methodBody("m", `,"connectTimeoutInSeconds":-1`), wantCode: 400004, wantMessage: "connectTimeoutInSeconds must be within [0; 300]."},
		{name: "connectTimeout 301", body: methodBody("m", `,"connectTimeoutInSeconds":301`), wantCode: 400004},
		{name: "connectTimeout fraction", body: methodBody("m", `,"connectTimeoutInSeconds":1.5`), wantCode: 400004},
		{name: "connectTimeout 0", body: methodBody("m", `,"connectTimeoutInSeconds":0`), wantPayload: "null"},
		{name: "connectTimeout 300", body: methodBody("m", `,"connectTimeoutInSeconds":300`), wantPayload: "null"},
		{name: "payload absent", body: methodBody("m", ""), wantPayload: "null"},
		{name: "payload null", body: methodBody("m", `,"payload":null`), wantPayload: "null"},
		{name: "payload empty string", body: methodBody("m", `,"payload":""`), wantPayload: `""`},
		{name: "payload object", body: methodBody("m", `,"payload":{"a":[1,{"b":null}]}`), wantPayload: `{"a":[1,{"b":null}]}`},
		{name: "payload array", body: methodBody("m", `,"payload":[1,2]`), wantPayload: `[1,2]`},
		{name: "payload number", body: methodBody("m", `,"payload":-1.5e3`), wantPayload: `-1.5e3`},
		{name: "payload at the limit", body: methodBody("m", `,"payload":`+big), wantPayload: big},
		{name: "payload over the limit", body: methodBody("m", `,"payload":"x`+big[1:]), wantCode: 400004, wantMessage: "'payload' size should be less than 131072 bytes"},
		{name: "payload size is compact", body: methodBody("m", `,"payload":`+spaced), wantPayload: strings.ReplaceAll(spaced, " ", "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := send(t.Context(), t, h, client, call{path: "/twins/d1/methods", body: tt.body})
			if tt.wantCode == 0 {
				status, payload := methodResult(t, r)
				if status != 200 || payload != tt.wantPayload {
					if len(payload) > 100 {
						payload = payload[:100] + "…"
					}
					t.Errorf("got status %d payload %s", status, payload)
				}
				return
			}
			got := decodeErr(t, r)
			if got.Status != tt.wantCode/1000 || got.Code != tt.wantCode {
				t.Errorf("got %+v, want code %d", got, tt.wantCode)
			}
			if tt.wantMessage != "" && got.Message != tt.wantMessage {
				t.Errorf("message %q, want %q", got.Message, tt.wantMessage)
			}
		})
	}
}

func TestOversizedBody(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	body := methodBody("m", `,"payload":"`+strings.Repeat("x", MaxRequestBody)+`"`)
	got := decodeErr(t, send(t.Context(), t, h, inProcess(h), call{path: "/twins/d1/methods", body: body}))
	if got.Status != 413 || got.Code != 413000 {
		t.Errorf("got %+v", got)
	}
}

func TestMethodCallAsDelivered(t *testing.T) {
	t.Parallel()
	h := New(nil)
	var got []MethodCall
	var mu sync.Mutex
	h.AddDevice("d1", nil).HandleMethod("reboot", func(ctx context.Context, c MethodCall) MethodResponse {
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
		return MethodResponse{Status: 500, Payload: json.RawMessage(` {"why": "busy"} `)}
	})
	client := inProcess(h)
	r := send(t.Context(), t, h, client, call{path: "/twins/d1/methods",
		body: `{"methodName":"reboot","payload": { "delay" : 5 },"responseTimeoutInSeconds":45,"connectTimeoutInSeconds":10}`})
	if diff := cmp.Diff(`{"status":500,"payload":{"why":"busy"}}`, string(r.body)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	r = send(t.Context(), t, h, client, call{path: "/twins/d1/methods", body: methodBody("reboot", "")})
	if r.status != 200 {
		t.Errorf("status %d", r.status)
	}
	want := []MethodCall{
		{DeviceID: "d1", Method: "reboot", Payload: json.RawMessage(`{ "delay" : 5 }`), ResponseTimeout: 45 * time.Second, ConnectTimeout: 10 * time.Second},
		{DeviceID: "d1", Method: "reboot", ResponseTimeout: 30 * time.Second},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("handler calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, h.Calls()); diff != "" {
		t.Errorf("Calls (-want +got):\n%s", diff)
	}
	if n := h.Deliveries("d1", ""); n != 2 {
		t.Errorf("Deliveries = %d", n)
	}
}

func TestHandlers(t *testing.T) {
	t.Parallel()
	h := New(nil)
	answer := func(status int, payload string) MethodHandler {
		return func(context.Context, MethodCall) MethodResponse {
			return MethodResponse{Status: status, Payload: json.RawMessage(payload)}
		}
	}
	d := h.AddDevice("d1", &DeviceOptions{Handler: answer(201, `"default"`)})
	d.HandleMethod("own", answer(202, `"own"`))
	m := d.AddModule("m1")
	m.HandleMethod("own", answer(203, `"module"`))
	bare := h.AddDevice("bare", nil)
	bare.HandleMethod("bad", answer(200, `{not json`))
	bare.HandleMethod("empty", answer(204, ``))
	client := inProcess(h)
	tests := []struct {
		path, method string
		want         string
	}{
		{"/twins/d1/methods", "own", `{"status":202,"payload":"own"}`},
		{"/twins/d1/methods", "other", `{"status":201,"payload":"default"}`},
		{"/twins/d1/modules/m1/methods", "own", `{"status":203,"payload":"module"}`},
		{"/twins/d1/modules/m1/methods", "other", `{"status":501,"payload":null}`},
		{"/twins/bare/methods", "nothing", `{"status":501,"payload":null}`},
		{"/twins/bare/methods", "empty", `{"status":204,"payload":null}`},
	}
	for _, tt := range tests {
		r := send(t.Context(), t, h, client, call{path: tt.path, body: methodBody(tt.method, "")})
		if diff := cmp.Diff(tt.want, string(r.body)); diff != "" || r.status != 200 {
			t.Errorf("%s %s: status %d (-want +got):\n%s", tt.path, tt.method, r.status, diff)
		}
	}
	got := decodeErr(t, send(t.Context(), t, h, client, call{path: "/twins/bare/methods", body: methodBody("bad", "")}))
	if got.Status != 500 || got.Code != 500001 {
		t.Errorf("invalid device payload: got %+v", got)
	}

	// Removing handlers.
	d.HandleMethod("own", nil)
	d.SetDefaultHandler(nil)
	r := send(t.Context(), t, h, client, call{path: "/twins/d1/methods", body: methodBody("own", "")})
	if diff := cmp.Diff(`{"status":501,"payload":null}`, string(r.body)); diff != "" {
		t.Errorf("after removal (-want +got):\n%s", diff)
	}
	if h.Deliveries("d1", "m1") != 2 || h.Deliveries("d1", "") != 3 || h.Deliveries("bare", "") != 3 {
		t.Errorf("deliveries d1 %d, d1/m1 %d, bare %d", h.Deliveries("d1", ""), h.Deliveries("d1", "m1"), h.Deliveries("bare", ""))
	}
}

func TestTargetStates(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("on", &DeviceOptions{Handler: echo}).AddModule("m1")
	h.AddDevice("off", &DeviceOptions{Offline: true, Handler: echo})
	h.AddDevice("disabled", &DeviceOptions{Disabled: true, Handler: echo}).AddModule("m1")
	h.AddDevice("gone", nil)
	h.RemoveDevice("gone")
	offModule := h.Device("on").AddModule("offm")
	offModule.SetOnline(false)
	client := inProcess(h)
	tests := []struct {
		path string
		want hubErr
	}{
		{"/twins/nobody/methods", hubErr{Status: 404, Code: 404001, Header: "DeviceNotFound"}},
		{"/twins/gone/methods", hubErr{Status: 404, Code: 404001, Header: "DeviceNotFound"}},
		{"/twins/disabled/methods", hubErr{Status: 404, Code: 404001, Header: "DeviceNotFound"}},
		{"/twins/disabled/modules/m1/methods", hubErr{Status: 404, Code: 404001, Header: "DeviceNotFound"}},
		{"/twins/nobody/modules/m1/methods", hubErr{Status: 404, Code: 404001, Header: "DeviceNotFound"}},
		{"/twins/on/modules/nomodule/methods", hubErr{Status: 404, Code: 404010, Header: "ModuleNotFound"}},
		{"/twins/ON/methods", hubErr{Status: 404, Code: 404001, Header: "DeviceNotFound"}}, // ids are case-sensitive
		{"/twins/off/methods", hubErr{Status: 404, Code: 404103, Header: "DeviceNotOnline",
			Message: "Timed out waiting for device to connect.", Info: map[string]string{"timeout": "00:00:00"}}},
		{"/twins/on/modules/offm/methods", hubErr{Status: 404, Code: 404103, Header: "DeviceNotOnline",
			Message: "Timed out waiting for device to connect.", Info: map[string]string{"timeout": "00:00:00"}}},
	}
	for _, tt := range tests {
		got := decodeErr(t, send(t.Context(), t, h, client, call{path: tt.path, body: methodBody("m", "")}))
		if tt.want.Message == "" {
			got.Message = ""
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.path, diff)
		}
	}
	if n := len(h.Calls()); n != 0 {
		t.Errorf("%d calls delivered", n)
	}

	// Enabling and connecting make them reachable.
	h.Device("disabled").SetDisabled(false)
	h.Device("off").SetOnline(true)
	for _, p := range []string{"/twins/disabled/methods", "/twins/off/methods"} {
		methodResult(t, send(t.Context(), t, h, client, call{path: p, body: methodBody("m", "")}))
	}
	if !h.Device("off").Online() || !h.Device("on").Module("m1").Online() || offModule.Online() {
		t.Error("Online reports the wrong state")
	}
}

func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		connect    int           // connectTimeoutInSeconds
		onlineAt   time.Duration // 0: never
		remove     bool          // remove the device at onlineAt instead
		wantStatus int
		wantCode   int
		wantAfter  time.Duration
		wantInfo   string
	}{
		{name: "comes online in time", connect: 10, onlineAt: 3 * time.Second, wantStatus: 200, wantAfter: 3 * time.Second},
		{name: "never comes online", connect: 10, wantStatus: 404, wantCode: 404103, wantAfter: 10 * time.Second, wantInfo: "00:00:10"},
		{name: "comes online too late", connect: 5, onlineAt: 6 * time.Second, wantStatus: 404, wantCode: 404103, wantAfter: 5 * time.Second, wantInfo: "00:00:05"},
		{name: "maximum", connect: 300, wantStatus: 404, wantCode: 404103, wantAfter: 300 * time.Second, wantInfo: "00:05:00"},
		{name: "removed while waiting", connect: 60, onlineAt: 2 * time.Second, remove: true, wantStatus: 404, wantCode: 404001, wantAfter: 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := New(nil)
				d := h.AddDevice("d1", &DeviceOptions{Offline: true, Handler: echo})
				if tt.onlineAt > 0 {
					time.AfterFunc(tt.onlineAt, func() {
						if tt.remove {
							h.RemoveDevice("d1")
						} else {
							d.SetOnline(true)
						}
					})
				}
				start := time.Now()
				r := send(t.Context(), t, h, inProcess(h), call{path: "/twins/d1/methods",
					body: methodBody("m", `,"connectTimeoutInSeconds":`+strconv.Itoa(tt.connect))})
				if elapsed := time.Since(start); elapsed != tt.wantAfter {
					t.Errorf("answered after %v, want %v", elapsed, tt.wantAfter)
				}
				if tt.wantStatus == 200 {
					methodResult(t, r)
					if n := h.Deliveries("d1", ""); n != 1 {
						t.Errorf("Deliveries = %d", n)
					}
					return
				}
				got := decodeErr(t, r)
				if got.Code != tt.wantCode || got.Info["timeout"] != tt.wantInfo {
					t.Errorf("got %+v", got)
				}
				if n := h.Deliveries("d1", ""); n != 0 {
					t.Errorf("Deliveries = %d", n)
				}
			})
		})
	}
}

func TestResponseTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		latency    time.Duration
		module     bool
		timeout    string // responseTimeoutInSeconds, "" for the default
		wantStatus int
		wantAfter  time.Duration
	}{
		{name: "within the timeout", latency: 29 * time.Second, wantStatus: 200, wantAfter: 29 * time.Second},
		{name: "beyond the default timeout", latency: 31 * time.Second, wantStatus: 504, wantAfter: 30 * time.Second},
		{name: "beyond a short timeout", latency: 6 * time.Second, timeout: "5", wantStatus: 504, wantAfter: 5 * time.Second},
		{name: "module latency", latency: 20 * time.Second, module: true, timeout: "10", wantStatus: 504, wantAfter: 10 * time.Second},
		{name: "module in time", latency: 9 * time.Second, module: true, timeout: "10", wantStatus: 200, wantAfter: 9 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := New(nil)
				var handlerErr error
				handler := func(ctx context.Context, c MethodCall) MethodResponse {
					handlerErr = ctx.Err()
					return MethodResponse{Status: 200}
				}
				d := h.AddDevice("d1", &DeviceOptions{Handler: handler})
				path, mod := "/twins/d1/methods", ""
				if tt.module {
					m := d.AddModule("m1")
					m.SetDefaultHandler(handler)
					m.SetLatency(tt.latency)
					path, mod = "/twins/d1/modules/m1/methods", "m1"
				} else {
					d.SetLatency(tt.latency)
				}
				extra := ""
				if tt.timeout != "" {
					extra = `,"responseTimeoutInSeconds":` + tt.timeout
				}
				start := time.Now()
				r := send(t.Context(), t, h, inProcess(h), call{path: path, body: methodBody("m", extra)})
				if elapsed := time.Since(start); elapsed != tt.wantAfter {
					t.Errorf("answered after %v, want %v", elapsed, tt.wantAfter)
				}
				if n := h.Deliveries("d1", mod); n != 1 {
					t.Errorf("Deliveries = %d, want 1 (a timed-out call was delivered)", n)
				}
				if tt.wantStatus == 200 {
					methodResult(t, r)
					if handlerErr != nil {
						t.Errorf("handler ctx: %v", handlerErr)
					}
					return
				}
				got := decodeErr(t, r)
				want := hubErr{Status: 504, Code: 504101, Header: "GatewayTimeout", Message: "Timed out waiting for the response from device."}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			})
		})
	}
}

// TestHandlerContext checks that a handler's context ends at the response
// timeout and when the caller goes away.
func TestHandlerContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := New(nil)
		ended := make(chan time.Duration, 2)
		start := time.Now()
		h.AddDevice("d1", &DeviceOptions{Handler: func(ctx context.Context, _ MethodCall) MethodResponse {
			<-ctx.Done()
			ended <- time.Since(start)
			return MethodResponse{}
		}})
		client := inProcess(h)

		r := send(t.Context(), t, h, client, call{path: "/twins/d1/methods", body: methodBody("m", `,"responseTimeoutInSeconds":7`)})
		if got := decodeErr(t, r); got.Code != 504101 {
			t.Errorf("got %+v", got)
		}
		if got := <-ended; got != 7*time.Second {
			t.Errorf("handler ctx ended after %v, want 7s", got)
		}

		start = time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		r = send(ctx, t, h, client, call{path: "/twins/d1/methods", body: methodBody("m", "")})
		if r.err == nil || !strings.Contains(r.err.Error(), context.DeadlineExceeded.Error()) {
			t.Errorf("err = %v, want the deadline", r.err)
		}
		if got := <-ended; got != 2*time.Second {
			t.Errorf("handler ctx ended after %v, want 2s", got)
		}
		if n := h.Deliveries("d1", ""); n != 2 {
			t.Errorf("Deliveries = %d", n)
		}
	})
}

func TestIDEscaping(t *testing.T) {
	t.Parallel()
	h := New(nil)
	for _, id := range []string{"a/b", "a+b", "a b", "a%2Fb", "a#b", "x"} {
		d := h.AddDevice(id, &DeviceOptions{Handler: echo})
		if id == "x" {
			d.AddModule("m/1")
			d.AddModule("m+1")
			d.Module("m/1").SetDefaultHandler(echo)
			d.Module("m+1").SetDefaultHandler(echo)
		}
	}
	client := inProcess(h)
	tests := []struct {
		path             string
		wantID, wantMod  string
		wantStatus       int
		wantRecordedPath string
	}{
		{path: "/twins/a%2Fb/methods", wantID: "a/b"},
		{path: "/twins/a%2fb/methods", wantID: "a/b"},
		{path: "/twins/a+b/methods", wantID: "a+b"},
		{path: "/twins/a%2Bb/methods", wantID: "a+b"},
		{path: "/twins/a%20b/methods", wantID: "a b"},
		{path: "/twins/a%252Fb/methods", wantID: "a%2Fb"},
		{path: "/twins/a%23b/methods", wantID: "a#b"},
		{path: "/twins/x/modules/m%2F1/methods", wantID: "x", wantMod: "m/1"},
		{path: "/twins/x/modules/m+1/methods", wantID: "x", wantMod: "m+1"},
		{path: "/twins/a/b/methods", wantStatus: 404},
	}
	for _, tt := range tests {
		r := send(t.Context(), t, h, client, call{path: tt.path, body: methodBody("m", "")})
		if tt.wantStatus != 0 {
			if r.status != tt.wantStatus {
				t.Errorf("%s: status %d, want %d", tt.path, r.status, tt.wantStatus)
			}
			continue
		}
		methodResult(t, r)
		calls := h.Calls()
		last := calls[len(calls)-1]
		if last.DeviceID != tt.wantID || last.ModuleID != tt.wantMod {
			t.Errorf("%s reached %q/%q, want %q/%q", tt.path, last.DeviceID, last.ModuleID, tt.wantID, tt.wantMod)
		}
		reqs := h.Requests()
		if got := reqs[len(reqs)-1].Path; got != tt.path {
			t.Errorf("recorded path %q, want %q", got, tt.path)
		}
	}
}

func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	h.AddFault(Fault{Method: "flaky", Skip: 3, Times: 5, Code: 503005})
	client := inProcess(h)
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for range 40 {
		wg.Go(func() {
			r := send(t.Context(), t, h, client, call{path: "/twins/d1/methods", body: methodBody("flaky", "")})
			mu.Lock()
			statuses[r.status]++
			mu.Unlock()
		})
		wg.Go(func() {
			h.Device("d1").SetLatency(0)
			_ = h.Requests()
		})
	}
	wg.Wait()
	if diff := cmp.Diff(map[int]int{200: 35, 503: 5}, statuses); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if n := h.Deliveries("d1", ""); n != 35 {
		t.Errorf("Deliveries = %d", n)
	}
}
