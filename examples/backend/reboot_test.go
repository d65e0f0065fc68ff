package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/service"
)

// rebootTarget is the key of ExpectDeliveries for dev-1's reboot.
var rebootTarget = iothubtest.Target{DeviceID: "dev-1", Method: "reboot"}

// rebooting is dev-1's "reboot": it answers 200 with the delay it was
// given, as a device would.
func rebooting(_ context.Context, call iothubtest.MethodCall) iothubtest.MethodResponse {
	var req rebootRequest
	if err := json.Unmarshal(call.Payload, &req); err != nil {
		return iothubtest.MethodResponse{Status: 400, Payload: map[string]string{"error": err.Error()}}
	}
	return iothubtest.MethodResponse{Status: 200, Payload: map[string]any{"rebooting": true, "delay": req.Delay}}
}

// startBackend wires the backend as production does, but to hub: the
// backend's handler behind httptest.NewServer, a service.Client that
// reaches the hub over TLS. It returns the backend's URL.
func startBackend(t *testing.T, hub *iothubtest.Server, to timeouts) string {
	t.Helper()
	client, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newHandler(client, to))
	t.Cleanup(srv.Close)
	return srv.URL
}

// reply is what the backend answered.
type reply struct {
	status     int
	retryAfter string
	answer     answer
}

// readReply reads the backend's answer, failing the test when it is not
// the backend's JSON.
func readReply(t *testing.T, resp *http.Response) reply {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if err := json.Unmarshal(body, &r.answer); err != nil {
		t.Fatalf("answer %d is not the backend's JSON: %v\n%s", resp.StatusCode, err, body)
	}
	return r
}

// checkReply compares the backend's answer with want, and the error text
// with the fragment wantError. The hub's tracking ID must be there exactly
// when a hub error is.
func checkReply(t *testing.T, got, want reply, wantError string) {
	t.Helper()
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(reply{}), cmpopts.IgnoreFields(answer{}, "Error", "TrackingID")); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	if !strings.Contains(got.answer.Error, wantError) {
		t.Errorf("error %q does not contain %q", got.answer.Error, wantError)
	}
	if (got.answer.TrackingID != "") != (got.answer.HubError != "") {
		t.Errorf("tracking ID %q with hub error %q: want both or neither", got.answer.TrackingID, got.answer.HubError)
	}
}

// TestReboot is the integration test of the backend: every outcome of a
// reboot, through the backend's real HTTP server, against a fake hub over
// TLS. It checks the HTTP answer and that the reboot reached the device
// exactly as often as it should: once when the device answered or may have
// run, never when the hub refused it.
func TestReboot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		method string // the HTTP method; "" means POST
		id     string // the device id in the path; "" means dev-1
		body   string
		setup  func(hub *iothubtest.Server) // once the backend is wired to the hub
		dev    *iothubtest.DeviceOptions    // dev-1's options; nil means the defaults

		want           reply
		wantError      string
		wantDeliveries map[iothubtest.Target]int
	}{
		{
			name:           "answered",
			body:           `{"delay":5}`,
			want:           reply{status: 200, answer: answer{Outcome: outcomeAnswered, Status: 200, Payload: json.RawMessage(`{"delay":5,"rebooting":true}`)}},
			wantDeliveries: map[iothubtest.Target]int{rebootTarget: 1},
		},
		{
			name:           "answered without a body",
			want:           reply{status: 200, answer: answer{Outcome: outcomeAnswered, Status: 200, Payload: json.RawMessage(`{"delay":0,"rebooting":true}`)}},
			wantDeliveries: map[iothubtest.Target]int{rebootTarget: 1},
		},
		{
			name: "the device answers 500: its answer is data",
			setup: func(hub *iothubtest.Server) {
				hub.Device("dev-1").HandleMethod("reboot", iothubtest.Answer(500, map[string]string{"error": "flash busy"}))
			},
			want:           reply{status: 200, answer: answer{Outcome: outcomeAnswered, Status: 500, Payload: json.RawMessage(`{"error":"flash busy"}`)}},
			wantDeliveries: map[iothubtest.Target]int{rebootTarget: 1},
		},
		{
			name:      "unknown device",
			id:        "dev-unknown",
			want:      reply{status: 404, answer: answer{Outcome: outcomeNotFound, HubError: "404001 DeviceNotFound"}},
			wantError: `no device "dev-unknown"`,
		},
		{
			name:      "disabled device",
			dev:       &iothubtest.DeviceOptions{Disabled: true},
			want:      reply{status: 404, answer: answer{Outcome: outcomeNotFound, HubError: "404001 DeviceNotFound"}},
			wantError: "disabled",
		},
		{
			name:      "offline device",
			dev:       &iothubtest.DeviceOptions{Offline: true},
			want:      reply{status: 409, answer: answer{Outcome: outcomeNotDelivered, HubError: "404103 DeviceNotOnline"}},
			wantError: "not connected",
		},
		{
			// Retry-After beyond the SDK's MaxRetryAfter: the SDK gives
			// up at once and the backend passes the delay on.
			name: "throttled, with Retry-After",
			setup: func(hub *iothubtest.Server) {
				hub.AddFault(iothubtest.Fault{DeviceID: "dev-1", Method: "reboot", Code: iothub.ErrorCodeThrottlingException, RetryAfter: 2 * time.Minute, Times: -1})
			},
			want:      reply{status: 503, retryAfter: "120", answer: answer{Outcome: outcomeNotDelivered, HubError: "429001 ThrottlingException"}},
			wantError: "throttling or busy",
		},
		{
			name: "hub unavailable, with Retry-After",
			setup: func(hub *iothubtest.Server) {
				hub.AddFault(iothubtest.Fault{Code: iothub.ErrorCodeServiceUnavailable, RetryAfter: 90 * time.Second, Times: -1})
			},
			want:      reply{status: 503, retryAfter: "90", answer: answer{Outcome: outcomeNotDelivered, HubError: "503001 ServiceUnavailable"}},
			wantError: "throttling or busy",
		},
		{
			name:           "the answer is lost after delivery (504101)",
			setup:          func(hub *iothubtest.Server) { hub.AddFault(iothubtest.LostAnswers("dev-1", "")) },
			want:           reply{status: 202, answer: answer{Outcome: outcomeMayHaveRun, HubError: "504101 GatewayTimeout"}},
			wantError:      "check the device",
			wantDeliveries: map[iothubtest.Target]int{rebootTarget: 1},
		},
		{
			name: "the connection breaks after delivery",
			setup: func(hub *iothubtest.Server) {
				hub.AddFault(iothubtest.Fault{DeviceID: "dev-1", Method: "reboot", Drop: iothubtest.DropAfterDelivery})
			},
			want:           reply{status: 202, answer: answer{Outcome: outcomeMayHaveRun}},
			wantError:      "check the device",
			wantDeliveries: map[iothubtest.Target]int{rebootTarget: 1},
		},
		{
			// The backend cannot tell this from the case above: "may
			// have run" is not "ran". Nothing reached the device.
			name: "the connection breaks before delivery",
			setup: func(hub *iothubtest.Server) {
				hub.AddFault(iothubtest.Fault{DeviceID: "dev-1", Method: "reboot", Drop: iothubtest.DropAfterRead})
			},
			want:      reply{status: 202, answer: answer{Outcome: outcomeMayHaveRun}},
			wantError: "check the device",
		},
		{
			name:      "hub suspended (403001)",
			setup:     func(hub *iothubtest.Server) { hub.Suspend() },
			want:      reply{status: 502, answer: answer{Outcome: outcomeNotDelivered, HubError: "403001 IotHubSuspended"}},
			wantError: "refused",
		},
		{
			name:      "daily quota used up (403002)",
			setup:     func(hub *iothubtest.Server) { hub.ExhaustQuota() },
			want:      reply{status: 502, answer: answer{Outcome: outcomeNotDelivered, HubError: "403002 IotHubQuotaExceeded"}},
			wantError: "refused",
		},
		{
			name:      "the backend's policy was revoked (401)",
			setup:     func(hub *iothubtest.Server) { hub.RevokePolicy(iothubtest.PolicyService) },
			want:      reply{status: 502, answer: answer{Outcome: outcomeNotDelivered, HubError: "401002 IotHubUnauthorizedAccess"}},
			wantError: "refused",
		},
		{
			name:      "bad device id, refused before sending",
			id:        "dev 1",
			want:      reply{status: 400, answer: answer{Outcome: outcomeInvalid}},
			wantError: "invalid deviceID",
		},
		{
			name:      "body is not JSON",
			body:      "now",
			want:      reply{status: 400, answer: answer{Outcome: outcomeInvalid}},
			wantError: `{"delay": seconds}`,
		},
		{
			name:      "delay out of range",
			body:      `{"delay":-1}`,
			want:      reply{status: 400, answer: answer{Outcome: outcomeInvalid}},
			wantError: "delay must be within [0, 3600]",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hub := iothubtest.NewServer(t, nil)
			hub.AddDevice("dev-1", tt.dev).HandleMethod("reboot", rebooting)
			backend := startBackend(t, hub, timeouts{})
			if tt.setup != nil {
				tt.setup(hub)
			}

			id := tt.id
			if id == "" {
				id = "dev-1"
			}
			resp, err := http.Post(backend+"/devices/"+url.PathEscape(id)+"/reboot", "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			want := tt.want
			want.answer.DeviceID = id
			checkReply(t, readReply(t, resp), want, tt.wantError)
			hub.ExpectDeliveries(t, tt.wantDeliveries)
		})
	}
}

// TestRebootRoutes checks that the backend serves only POST
// /devices/{id}/reboot, and that it calls nothing for anything else.
func TestRebootRoutes(t *testing.T) {
	t.Parallel()
	hub := iothubtest.NewServer(t, nil)
	hub.AddDevice("dev-1", nil).HandleMethod("reboot", rebooting)
	backend := startBackend(t, hub, timeouts{})
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/devices/dev-1/reboot", http.StatusMethodNotAllowed},
		{http.MethodPost, "/devices/dev-1/restart", http.StatusNotFound},
		{http.MethodPost, "/devices/reboot", http.StatusNotFound},
	} {
		req, err := http.NewRequestWithContext(t.Context(), tt.method, backend+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
		}
	}
	hub.ExpectDeliveries(t, nil)
}

// TestRebootInVirtualTime covers what takes time: the hub waiting for an
// offline device within the connect timeout, and the SDK's retries of a
// throttled or busy hub. Each case runs in a testing/synctest bubble,
// with the hub in process (a TLS server cannot run in a bubble), so a
// 10-second wait takes no time. The handler is called directly, with
// httptest.NewRecorder.
func TestRebootInVirtualTime(t *testing.T) {
	t.Parallel()
	const connectTimeout = 10 // seconds
	tests := []struct {
		name  string
		dev   *iothubtest.DeviceOptions
		setup func(hub *iothubtest.Hub, dev *iothubtest.Device) // inside the bubble

		want           reply
		wantElapsed    time.Duration // 0: not checked (the SDK's backoff is jittered)
		wantRequests   int
		wantDeliveries map[iothubtest.Target]int
	}{
		{
			name:         "offline for the whole connect timeout",
			dev:          &iothubtest.DeviceOptions{Offline: true},
			want:         reply{status: 409, answer: answer{Outcome: outcomeNotDelivered, HubError: "404103 DeviceNotOnline"}},
			wantElapsed:  connectTimeout * time.Second,
			wantRequests: 1,
		},
		{
			name: "connects within the connect timeout",
			dev:  &iothubtest.DeviceOptions{Offline: true},
			setup: func(_ *iothubtest.Hub, dev *iothubtest.Device) {
				go func() {
					time.Sleep(4 * time.Second)
					dev.SetOnline(true)
				}()
			},
			want:           reply{status: 200, answer: answer{Outcome: outcomeAnswered, Status: 200, Payload: json.RawMessage(`{"delay":0,"rebooting":true}`)}},
			wantElapsed:    4 * time.Second,
			wantRequests:   1,
			wantDeliveries: map[iothubtest.Target]int{rebootTarget: 1},
		},
		{
			name: "throttled twice, then delivered once by the SDK's retries",
			setup: func(hub *iothubtest.Hub, _ *iothubtest.Device) {
				hub.AddFault(iothubtest.Fault{DeviceID: "dev-1", Method: "reboot", Code: iothub.ErrorCodeThrottlingException, Times: 2})
			},
			want:           reply{status: 200, answer: answer{Outcome: outcomeAnswered, Status: 200, Payload: json.RawMessage(`{"delay":0,"rebooting":true}`)}},
			wantRequests:   3,
			wantDeliveries: map[iothubtest.Target]int{rebootTarget: 1},
		},
		{
			name: "busy on every attempt",
			setup: func(hub *iothubtest.Hub, _ *iothubtest.Device) {
				hub.AddFault(iothubtest.Fault{Code: iothub.ErrorCodeServerBusy, Times: -1})
			},
			want:         reply{status: 503, answer: answer{Outcome: outcomeNotDelivered, HubError: "503005 ServerBusy"}},
			wantRequests: iothub.DefaultRetryOptions().MaxAttempts,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub := iothubtest.New(nil)
				defer hub.Close()
				dev := hub.AddDevice("dev-1", tt.dev)
				dev.HandleMethod("reboot", rebooting)
				if tt.setup != nil {
					tt.setup(hub, dev)
				}
				client, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
				if err != nil {
					t.Fatal(err)
				}
				h := newHandler(client, timeouts{Connect: connectTimeout})

				start := time.Now()
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/devices/dev-1/reboot", nil))
				elapsed := time.Since(start)

				want := tt.want
				want.answer.DeviceID = "dev-1"
				checkReply(t, readReply(t, rec.Result()), want, "")
				if tt.wantElapsed != 0 && elapsed != tt.wantElapsed {
					t.Errorf("answered after %v of virtual time, want %v", elapsed, tt.wantElapsed)
				}
				if got := len(hub.Requests()); got != tt.wantRequests {
					t.Errorf("the hub got %d requests, want %d", got, tt.wantRequests)
				}
				hub.ExpectDeliveries(t, tt.wantDeliveries)
			})
		})
	}
}
