package httpmock

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFaultAnswers(t *testing.T) {
	t.Parallel()
	type want struct {
		status     int
		code       int    // escaped and object shapes
		header     string // iothub-errorcode
		message    string // as in the shape
		retryAfter string
	}
	tests := []struct {
		name  string
		fault Fault
		want  want
		check func(t *testing.T, r result) // shape-specific checks
	}{
		{
			name:  "escaped JSON with Retry-After",
			fault: Fault{Code: 429001, Message: "Too many requests", RetryAfter: "7"},
			want:  want{status: 429, code: 429001, header: "ThrottlingException", message: "Too many requests", retryAfter: "7"},
		},
		{
			name:  "status only",
			fault: Fault{Status: 503},
			want:  want{status: 503, code: 503000, header: "GenericServiceUnavailable", message: "GenericServiceUnavailable"},
		},
		{
			name:  "code only",
			fault: Fault{Code: 503005},
			want:  want{status: 503, code: 503005, header: "ServerBusy", message: "ServerBusy"},
		},
		{
			name:  "status and code disagree",
			fault: Fault{Status: 500, Code: 404103, Message: "odd"},
			want:  want{status: 500, code: 404103, header: "DeviceNotOnline", message: "odd"},
		},
		{
			name:  "unnamed code",
			fault: Fault{Code: 500999, Message: "new"},
			want:  want{status: 500, code: 500999, message: "new"},
		},
		{
			name:  "legacy",
			fault: Fault{Code: 409001, Message: "Conflict", Shape: ShapeLegacy},
			want:  want{status: 409, header: "DeviceAlreadyExists", message: "ErrorCode:DeviceAlreadyExists;Conflict"},
			check: func(t *testing.T, r result) {
				var b map[string]string
				if err := json.Unmarshal(r.body, &b); err != nil {
					t.Fatal(err)
				}
				tracking, ok := strings.CutPrefix(b["ExceptionMessage"], "Tracking ID:")
				if !ok || len(b) != 2 {
					t.Errorf("body %s", r.body)
				}
				checkTrackingID(t, tracking)
			},
		},
		{
			name:  "legacy with a numeric code",
			fault: Fault{Code: 400999, Message: "x", Shape: ShapeLegacy},
			want:  want{status: 400, message: "ErrorCode:400999;x"},
		},
		{
			name:  "object",
			fault: Fault{Code: 503001, Message: "down", Shape: ShapeObject},
			want:  want{status: 503, code: 503001, header: "ServiceUnavailable", message: "down"},
			check: func(t *testing.T, r result) {
				var b struct {
					Message struct {
						ErrorCode    int
						TrackingID   string
						Message      string
						TimestampUTC string
					}
				}
				if err := json.Unmarshal(r.body, &b); err != nil {
					t.Fatalf("%v: %s", err, r.body)
				}
				checkTrackingID(t, b.Message.TrackingID)
				if b.Message.ErrorCode != 503001 || b.Message.TimestampUTC == "" {
					t.Errorf("body %s", r.body)
				}
			},
		},
		{
			name:  "routing",
			fault: Fault{Status: 404, Message: "No HTTP resource was found.", Shape: ShapeRouting},
			want:  want{status: 404, message: "No HTTP resource was found."},
			check: func(t *testing.T, r result) {
				if diff := cmp.Diff(`{"Message":"No HTTP resource was found."}`, string(r.body)); diff != "" {
					t.Errorf("body (-want +got):\n%s", diff)
				}
			},
		},
		{
			name:  "raw HTML body",
			fault: Fault{Status: 502, Body: []byte("<html>Bad Gateway</html>"), ContentType: "text/html", RetryAfter: "Wed, 21 Oct 2015 07:28:00 GMT"},
			want:  want{status: 502, retryAfter: "Wed, 21 Oct 2015 07:28:00 GMT"},
			check: func(t *testing.T, r result) {
				if string(r.body) != "<html>Bad Gateway</html>" || r.header.Get("Content-Type") != "text/html" {
					t.Errorf("got %q %q", r.header.Get("Content-Type"), r.body)
				}
			},
		},
		{
			name:  "truncated body without content type",
			fault: Fault{Code: 404103, Body: []byte(`{"Message":"{\"errorCode\":4041`)},
			want:  want{status: 404},
			check: func(t *testing.T, r result) {
				if _, ok := r.header["Content-Type"]; ok || string(r.body) != `{"Message":"{\"errorCode\":4041` {
					t.Errorf("got %v %q", r.header, r.body)
				}
			},
		},
		{
			name:  "empty body",
			fault: Fault{Status: 500, Body: []byte{}},
			want:  want{status: 500},
			check: func(t *testing.T, r result) {
				if len(r.body) != 0 {
					t.Errorf("body %q", r.body)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := New(nil)
			h.AddDevice("d1", &DeviceOptions{Handler: echo})
			h.AddFault(tt.fault)
			r := send(t.Context(), t, h, inProcess(h), call{path: "/twins/d1/methods", body: methodBody("m", "")})
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.status != tt.want.status {
				t.Errorf("status %d, want %d", r.status, tt.want.status)
			}
			if got := r.header.Get("iothub-errorcode"); got != tt.want.header {
				t.Errorf("iothub-errorcode %q, want %q", got, tt.want.header)
			}
			if got := r.header.Get("Retry-After"); got != tt.want.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.want.retryAfter)
			}
			switch {
			case tt.fault.Body != nil:
			case tt.fault.Shape == ShapeEscapedJSON:
				got := decodeErr(t, r)
				if got.Code != tt.want.code || got.Message != tt.want.message {
					t.Errorf("got %+v", got)
				}
			default:
				var b struct{ Message json.RawMessage }
				_ = json.Unmarshal(r.body, &b)
				if !strings.Contains(string(b.Message), tt.want.message) {
					t.Errorf("Message %s, want %q in it", b.Message, tt.want.message)
				}
			}
			if tt.check != nil {
				tt.check(t, r)
			}
			if n := h.Deliveries("d1", ""); n != 0 {
				t.Errorf("Deliveries = %d", n)
			}
		})
	}
}

func TestFaultCounting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		faults []Fault
		calls  []string // "device/module method"
		want   []int    // statuses
	}{
		{
			name:   "once by default",
			faults: []Fault{{Code: 503005}},
			calls:  []string{"d1 m", "d1 m", "d1 m"},
			want:   []int{503, 200, 200},
		},
		{
			name:   "skip then times",
			faults: []Fault{{Skip: 1, Times: 2, Code: 503005}},
			calls:  []string{"d1 m", "d1 m", "d1 m", "d1 m", "d1 m"},
			want:   []int{200, 503, 503, 200, 200},
		},
		{
			name:   "every time",
			faults: []Fault{{Times: -1, Code: 429001}},
			calls:  []string{"d1 m", "d1 m", "d1 m", "d1 m"},
			want:   []int{429, 429, 429, 429},
		},
		{
			name:   "filters",
			faults: []Fault{{DeviceID: "d2", Times: -1, Code: 503005}, {Method: "reboot", Times: -1, Code: 500001}, {ModuleID: "m1", Times: -1, Code: 429001}},
			calls:  []string{"d1 m", "d2 m", "d1 reboot", "d1/m1 m", "d1/m1 reboot", "d2/m1 m"},
			want:   []int{200, 503, 500, 429, 500, 503},
		},
		{
			name:   "first hit wins and later faults do not count it",
			faults: []Fault{{DeviceID: "d1", Skip: 1, Code: 503005}, {Code: 429001}},
			calls:  []string{"d1 m", "d1 m", "d1 m"},
			want:   []int{429, 503, 200},
		},
		{
			name:   "skip counts only matching calls",
			faults: []Fault{{Method: "reboot", Skip: 1, Code: 503005}},
			calls:  []string{"d1 reboot", "d1 m", "d1 m", "d1 reboot"},
			want:   []int{200, 200, 200, 503},
		},
		{
			name:   "rejected requests do not count",
			faults: []Fault{{Code: 503005}},
			calls:  []string{"d1 bad$name", "d1 m"},
			want:   []int{400, 503},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := New(nil)
			for _, d := range []string{"d1", "d2"} {
				h.AddDevice(d, &DeviceOptions{Handler: echo}).AddModule("m1").SetDefaultHandler(echo)
			}
			for _, f := range tt.faults {
				h.AddFault(f)
			}
			client := inProcess(h)
			var got []int
			for _, c := range tt.calls {
				tgt, method, _ := strings.Cut(c, " ")
				dev, mod, _ := strings.Cut(tgt, "/")
				path := "/twins/" + dev + "/methods"
				if mod != "" {
					path = "/twins/" + dev + "/modules/" + mod + "/methods"
				}
				got = append(got, send(t.Context(), t, h, client, call{path: path, body: methodBody(method, "")}).status)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("statuses (-want +got):\n%s", diff)
			}
		})
	}

	// ClearFaults removes them.
	h := New(nil)
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	h.AddFault(Fault{Times: -1, Code: 503005})
	h.ClearFaults()
	methodResult(t, send(t.Context(), t, h, inProcess(h), call{path: "/twins/d1/methods", body: methodBody("m", "")}))
}

func TestFaultAfterDelivery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		fault         Fault
		offline       bool
		wantStatus    int
		wantCode      int
		wantDelivered int
	}{
		{name: "lost response", fault: Fault{AfterDelivery: true}, wantStatus: 504, wantCode: 504101, wantDelivered: 1},
		{name: "server error after running", fault: Fault{AfterDelivery: true, Code: 500001}, wantStatus: 500, wantCode: 500001, wantDelivered: 1},
		{name: "not deliverable", fault: Fault{AfterDelivery: true, Code: 500001}, offline: true, wantStatus: 404, wantCode: 404103},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := New(nil)
			ran := make(chan struct{}, 1)
			h.AddDevice("d1", &DeviceOptions{Offline: tt.offline, Handler: func(context.Context, MethodCall) MethodResponse {
				ran <- struct{}{}
				return MethodResponse{Status: 200}
			}})
			h.AddFault(tt.fault)
			got := decodeErr(t, send(t.Context(), t, h, inProcess(h), call{path: "/twins/d1/methods", body: methodBody("m", "")}))
			if got.Status != tt.wantStatus || got.Code != tt.wantCode {
				t.Errorf("got %+v", got)
			}
			if n := h.Deliveries("d1", ""); n != tt.wantDelivered {
				t.Errorf("Deliveries = %d, want %d", n, tt.wantDelivered)
			}
			if tt.wantDelivered > 0 {
				<-ran
			}
		})
	}
}

func TestFaultDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		fault         Fault
		latency       time.Duration
		clientTimeout time.Duration
		wantStatus    int // 0: the client gave up
		wantAfter     time.Duration
		wantDelivered int
	}{
		{name: "error after a delay", fault: Fault{Code: 503005, Delay: 3 * time.Second}, wantStatus: 503, wantAfter: 3 * time.Second},
		{name: "delay only", fault: Fault{Delay: 2 * time.Second}, latency: time.Second, wantStatus: 200, wantAfter: 3 * time.Second, wantDelivered: 1},
		{name: "after delivery", fault: Fault{AfterDelivery: true, Code: 500001, Delay: 2 * time.Second}, latency: time.Second, wantStatus: 500, wantAfter: 3 * time.Second, wantDelivered: 1},
		{name: "client gives up during the delay", fault: Fault{Delay: 10 * time.Second}, clientTimeout: 4 * time.Second, wantAfter: 4 * time.Second},
		{name: "client gives up during an error delay", fault: Fault{Code: 503005, Delay: 10 * time.Second}, clientTimeout: 4 * time.Second, wantAfter: 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := New(nil)
				h.AddDevice("d1", &DeviceOptions{Handler: echo, Latency: tt.latency})
				h.AddFault(tt.fault)
				ctx := t.Context()
				if tt.clientTimeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.clientTimeout)
					defer cancel()
				}
				start := time.Now()
				r := send(ctx, t, h, inProcess(h), call{path: "/twins/d1/methods", body: methodBody("m", "")})
				if elapsed := time.Since(start); elapsed != tt.wantAfter {
					t.Errorf("answered after %v, want %v", elapsed, tt.wantAfter)
				}
				if tt.wantStatus == 0 {
					if r.err == nil || !strings.Contains(r.err.Error(), context.DeadlineExceeded.Error()) {
						t.Errorf("err = %v, want the deadline", r.err)
					}
				} else if r.status != tt.wantStatus {
					t.Errorf("status %d, want %d", r.status, tt.wantStatus)
				}
				if n := h.Deliveries("d1", ""); n != tt.wantDelivered {
					t.Errorf("Deliveries = %d, want %d", n, tt.wantDelivered)
				}
			})
		})
	}
}
