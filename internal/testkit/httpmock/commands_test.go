package httpmock

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

var requestIDFormat = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// commandAnswer checks a command's success answer and returns the device's
// status and the body.
func commandAnswer(t testing.TB, r result) (string, string) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("transport error: %v", r.err)
	}
	if r.status != http.StatusOK {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if id := r.header.Get(RequestIDHeader); !requestIDFormat.MatchString(id) {
		t.Errorf("%s = %q, want a GUID", RequestIDHeader, id)
	}
	return r.header.Get(CommandStatusHeader), string(r.body)
}

func TestCommandDelivery(t *testing.T) {
	t.Parallel()
	h := New(nil)
	d := h.AddDevice("d/1", nil)
	var got []MethodCall
	record := func(status int, payload string) MethodHandler {
		return func(_ context.Context, c MethodCall) MethodResponse {
			got = append(got, c)
			var p json.RawMessage
			if payload != "" {
				p = json.RawMessage(payload)
			}
			return MethodResponse{Status: status, Payload: p}
		}
	}
	d.HandleMethod("reboot", record(200, `{"rebooting":true}`))
	d.HandleMethod("thermostat1*getMaxMinReport", record(500, `"no data"`))
	d.HandleMethod("empty", record(204, ""))
	client := inProcess(h)
	tests := []struct {
		name        string
		c           call
		wantStatus  string
		wantBody    string
		wantMethod  string
		wantPayload string
		wantResp    time.Duration
		wantConnect time.Duration
	}{
		{"root, no body, no Content-Type", call{path: "/digitaltwins/d%2F1/commands/reboot", contentType: "-"}, "200", `{"rebooting":true}`, "reboot", "", 30 * time.Second, 0},
		{"component, payload, timeouts", call{path: "/digitaltwins/d%2F1/components/thermostat1/commands/getMaxMinReport",
			query: "api-version=" + testAPIVersion + "&connectTimeoutInSeconds=300&responseTimeoutInSeconds=5", body: ` "2026-01-01" `},
			"500", `"no data"`, "thermostat1*getMaxMinReport", `"2026-01-01"`, 5 * time.Second, 300 * time.Second},
		{"query names any case", call{path: "/digitaltwins/d%2F1/commands/reboot", query: "API-Version=" + testAPIVersion + "&ResponseTimeoutInSeconds=300", body: `{"delay":1}`},
			"200", `{"rebooting":true}`, "reboot", `{"delay":1}`, 300 * time.Second, 0},
		{"device answers no payload", call{path: "/digitaltwins/d%2F1/commands/empty"}, "204", "null", "empty", "", 30 * time.Second, 0},
	}
	for _, tt := range tests {
		got = nil
		status, body := commandAnswer(t, send(t.Context(), t, h, client, tt.c))
		if status != tt.wantStatus || body != tt.wantBody {
			t.Errorf("%s: answered %s %s, want %s %s", tt.name, status, body, tt.wantStatus, tt.wantBody)
		}
		if len(got) != 1 {
			t.Fatalf("%s: %d calls delivered", tt.name, len(got))
		}
		want := MethodCall{DeviceID: "d/1", Method: tt.wantMethod, ResponseTimeout: tt.wantResp, ConnectTimeout: tt.wantConnect}
		if tt.wantPayload != "" {
			want.Payload = json.RawMessage(tt.wantPayload)
		}
		if diff := cmp.Diff(want, got[0]); diff != "" {
			t.Errorf("%s: call (-want +got):\n%s", tt.name, diff)
		}
	}
	// Commands are recorded as method calls under their method name.
	if n := h.Deliveries("d/1", ""); n != len(tests) {
		t.Errorf("Deliveries = %d, want %d", n, len(tests))
	}
	if calls := h.Calls(); len(calls) != len(tests) || calls[1].Method != "thermostat1*getMaxMinReport" {
		t.Errorf("Calls = %+v", calls)
	}
}

func TestCommandValidation(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	client := inProcess(h)
	q := "api-version=" + testAPIVersion
	root := "/digitaltwins/d1/commands/run"
	tests := []struct {
		name     string
		c        call
		status   int
		code     int // 0: ASP.NET routing shape, no code
		contains string
	}{
		{"no api-version", call{path: root, query: "-"}, 400, 400001, "api-version"},
		{"old api-version", call{path: root, query: "api-version=2016-11-14"}, 400, 400001, "not supported"},
		{"no auth", call{path: root, auth: noAuth}, 401, 401002, "missing"},
		{"GET", call{method: http.MethodGet, path: root}, 405, 0, "GET"},
		{"no command name", call{path: "/digitaltwins/d1/commands"}, 404, 0, "No HTTP resource"},
		{"command with star", call{path: "/digitaltwins/d1/commands/a*b"}, 400, 400004, "printable"},
		{"component with star", call{path: "/digitaltwins/d1/components/a*b/commands/c"}, 400, 400004, "printable"},
		{"command with space", call{path: "/digitaltwins/d1/commands/a%20b"}, 400, 400004, "printable"},
		{"response timeout 4", call{path: root, query: q + "&responseTimeoutInSeconds=4"}, 400, 400004, "responseTimeoutInSeconds must be within [5; 300]."},
		{"response timeout 0", call{path: root, query: q + "&responseTimeoutInSeconds=0"}, 400, 400004, "responseTimeoutInSeconds must be within [5; 300]."},
		{"response timeout 301", call{path: root, query: q + "&responseTimeoutInSeconds=301"}, 400, 400004, "responseTimeoutInSeconds"},
		{"response timeout not a number", call{path: root, query: q + "&responseTimeoutInSeconds=5s"}, 400, 400004, "responseTimeoutInSeconds"},
		{"response timeout twice", call{path: root, query: q + "&responseTimeoutInSeconds=5&responseTimeoutInSeconds=6"}, 400, 400004, "responseTimeoutInSeconds"},
		{"connect timeout -1", call{path: root, query: q + "&connectTimeoutInSeconds=-1"}, 400, 400004, "connectTimeoutInSeconds must be within [0; 300]."},
		{"connect timeout 301", call{path: root, query: q + "&connectTimeoutInSeconds=301"}, 400, 400004, "connectTimeoutInSeconds"},
		{"body not JSON", call{path: root, body: `{"a":`}, 400, 400006, "not valid JSON"},
		{"body too big", call{path: root, body: `"` + strings.Repeat("x", MaxPayloadSize-1) + `"`}, 400, 400004, "131072"},
		{"body without Content-Type", call{path: root, body: `1`, contentType: "-"}, 415, 415000, "Content-Type"},
		{"body as text", call{path: root, body: `1`, contentType: "text/plain"}, 415, 415000, "Content-Type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(t.Context(), t, h, client, tt.c)
			if tt.code == 0 {
				if r.status != tt.status || !strings.Contains(string(r.body), tt.contains) {
					t.Errorf("got %d %s, want %d with %q", r.status, r.body, tt.status, tt.contains)
				}
				return
			}
			got := decodeErr(t, r)
			if got.Status != tt.status || got.Code != tt.code || !strings.Contains(got.Message, tt.contains) {
				t.Errorf("got %+v, want %d / %d with %q", got, tt.status, tt.code, tt.contains)
			}
		})
	}
	if n := h.TotalDeliveries(); n != 0 {
		t.Errorf("%d calls delivered, want 0", n)
	}
	// The limits themselves are accepted.
	for _, c := range []call{
		{path: root, query: q + "&responseTimeoutInSeconds=5&connectTimeoutInSeconds=0"},
		{path: root, query: q + "&responseTimeoutInSeconds=300&connectTimeoutInSeconds=300"},
		{path: root, body: `"` + strings.Repeat("x", MaxPayloadSize-2) + `"`},
	} {
		if status, _ := commandAnswer(t, send(t.Context(), t, h, client, c)); status != "200" {
			t.Errorf("%s?%s: device status %s", c.path, c.query, status)
		}
	}
}

// TestCommandHubStates: a command meets the method path's target checks,
// faults and throttling.
func TestCommandHubStates(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := New(nil)
		defer h.Close()
		h.AddDevice("on", &DeviceOptions{Handler: echo})
		h.AddDevice("off", &DeviceOptions{Offline: true, Handler: echo})
		h.AddDevice("dis", &DeviceOptions{Disabled: true, Handler: echo})
		h.AddDevice("slow", &DeviceOptions{Latency: time.Minute, Handler: echo})
		h.AddFault(Fault{DeviceID: "on", Method: "c1*busy", Code: 429001, RetryAfter: "1"})
		h.AddFault(Fault{DeviceID: "on", Method: "lost", AfterDelivery: true})
		client := inProcess(h)
		tests := []struct {
			path      string
			status    int
			code      int
			delivered bool
		}{
			{"/digitaltwins/missing/commands/run", 404, 404001, false},
			{"/digitaltwins/dis/commands/run", 404, 404001, false},
			{"/digitaltwins/off/commands/run", 404, 404103, false},
			{"/digitaltwins/slow/commands/run", 504, 504101, true},
			{"/digitaltwins/on/components/c1/commands/busy", 429, 429001, false},
			{"/digitaltwins/on/commands/lost", 504, 504101, true},
		}
		for _, tt := range tests {
			before := h.TotalDeliveries()
			got := decodeErr(t, send(t.Context(), t, h, client, call{path: tt.path}))
			if got.Status != tt.status || got.Code != tt.code {
				t.Errorf("%s: got %+v, want %d / %d", tt.path, got, tt.status, tt.code)
			}
			if delivered := h.TotalDeliveries() > before; delivered != tt.delivered {
				t.Errorf("%s: delivered %v, want %v", tt.path, delivered, tt.delivered)
			}
		}
	})
}

func TestCommandDropBeforeWriteMatchesMethodName(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	h.AddFault(Fault{DeviceID: "d1", Method: "c1*run", Drop: DropBeforeWrite})
	client := inProcess(h)
	if r := send(t.Context(), t, h, client, call{path: "/digitaltwins/d1/commands/run"}); r.err != nil {
		t.Fatalf("a fault for c1*run hit the root command run: %v", r.err)
	}
	if r := send(t.Context(), t, h, client, call{path: "/digitaltwins/d1/components/c1/commands/run"}); r.err == nil {
		t.Fatalf("the fault for c1*run did not hit the component command: %d %s", r.status, r.body)
	}
	if n := len(h.Requests()); n != 1 {
		t.Errorf("%d requests reached the hub, want 1", n)
	}
}
