package wire

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub"
)

func TestParseError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   string
		header string
		want   ErrorInfo
	}{
		{
			name: "legacy name",
			body: `{"Message":"ErrorCode:DeviceAlreadyExists;Conflict","ExceptionMessage":"Tracking ID:e4cb4b6c18f4462fbe2c1a2d02d7dbe4-G:11-TimeStamp:07/16/2016 00:12:41"}`,
			want: ErrorInfo{Code: iothub.ErrorCodeDeviceAlreadyExists, CodeName: "DeviceAlreadyExists", Message: "Conflict", TrackingID: "e4cb4b6c18f4462fbe2c1a2d02d7dbe4-G:11-TimeStamp:07/16/2016 00:12:41"},
		},
		{
			name: "legacy number",
			body: `{"Message":"ErrorCode:404001;Device not found","ExceptionMessage":""}`,
			want: ErrorInfo{Code: iothub.ErrorCodeDeviceNotFound, Message: "Device not found"},
		},
		{
			name:   "escaped json with header",
			body:   `{"Message":"{\"errorCode\":404103,\"trackingId\":\"dde6cb7b025443d0a26e370e517d43db-G:11-TimeStamp:11/07/2018 09:22:57\",\"message\":\"Timed out waiting for device to connect.\",\"info\":{\"timeout\":\"00:01:00\"},\"timestampUtc\":\"2018-11-07T09:22:57.6054134Z\"}","ExceptionMessage":""}`,
			header: "DeviceNotOnline",
			want:   ErrorInfo{Code: iothub.ErrorCodeDeviceNotOnline, CodeName: "DeviceNotOnline", Message: "Timed out waiting for device to connect.", TrackingID: "dde6cb7b025443d0a26e370e517d43db-G:11-TimeStamp:11/07/2018 09:22:57"},
		},
		{
			name: "message object",
			body: `{"Message":{"errorCode":504101,"trackingId":"abc","message":"Timed out waiting for the response from device.","timestampUtc":"2020-01-01T00:00:00Z"}}`,
			want: ErrorInfo{Code: iothub.ErrorCodeGatewayTimeout, Message: "Timed out waiting for the response from device.", TrackingID: "abc"},
		},
		{
			name: "routing",
			body: `{"Message":"The requested resource does not support http method 'GET'."}`,
			want: ErrorInfo{Message: "The requested resource does not support http method 'GET'."},
		},
		{
			name:   "bare inner object",
			body:   `{"errorCode":429001,"trackingId":"t1","message":"Throttled"}`,
			header: "ThrottlingException",
			want:   ErrorInfo{Code: iothub.ErrorCodeThrottlingException, CodeName: "ThrottlingException", Message: "Throttled", TrackingID: "t1"},
		},
		{
			name:   "header only",
			body:   ``,
			header: "ServerBusy",
			want:   ErrorInfo{Code: iothub.ErrorCodeServerBusy, CodeName: "ServerBusy"},
		},
		{
			name:   "unknown header name kept",
			body:   `{"Message":"x"}`,
			header: "SomethingNew",
			want:   ErrorInfo{CodeName: "SomethingNew", Message: "x"},
		},
		{
			name: "html proxy page",
			body: "<html><body>502 Bad Gateway</body></html>",
			want: ErrorInfo{Message: "HTML page: 502 Bad Gateway"},
		},
		{
			name: "html page with a title",
			body: "<!DOCTYPE html>\n<HTML><head><TITLE>\n  503 Service\tUnavailable </title><style>p{}</style></head><body><p>No server is available.</p></body></html>",
			want: ErrorInfo{Message: "HTML page: 503 Service Unavailable"},
		},
		{
			name: "truncated json",
			body: `{"Message":"{\"errorCode\":4041`,
			want: ErrorInfo{Message: `{"Message":"{\"errorCode\":4041`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := ParseError([]byte(tt.body), tt.header)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseError mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrorClipsLongText(t *testing.T) {
	t.Parallel()
	got := ParseError([]byte(strings.Repeat("é", 2000)), "")
	if len(got.Message) > maxMessage+len("…") {
		t.Errorf("message is %d bytes, want at most %d", len(got.Message), maxMessage+len("…"))
	}
	if !strings.HasSuffix(got.Message, "…") {
		t.Errorf("clipped message should end with an ellipsis: %q", got.Message[len(got.Message)-8:])
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 2 ", 2 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := ParseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func FuzzParseError(f *testing.F) {
	f.Add([]byte(`{"Message":"ErrorCode:DeviceAlreadyExists;Conflict","ExceptionMessage":"Tracking ID:x"}`), "")
	f.Add([]byte(`{"Message":"{\"errorCode\":404103,\"trackingId\":\"t\",\"message\":\"m\"}","ExceptionMessage":""}`), "DeviceNotOnline")
	f.Add([]byte(`{"Message":{"errorCode":"504101"}}`), "")
	f.Add([]byte(`<html>`), "429001")
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		info := ParseError(body, header)
		if info.Code != 0 && info.Code.HTTPStatus() == 0 {
			t.Errorf("code %d has no HTTP status", info.Code)
		}
		if len(info.Message) > len(body)+maxMessage+8 {
			t.Errorf("message longer than the body")
		}
	})
}
