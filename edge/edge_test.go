package edge_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/edge"
	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/service"
)

// t0 is the time of the seeded log lines.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// sasURL is a well-formed container SAS URL; its signature must never
// appear in errors or logs.
const sasURL = "https://acct.blob.core.windows.net/logs?sv=2024-01-01&sp=w&sig=SECRETSIGNATURE"

// setup returns a hub with Edge device "edge-1" (modules tempSensor and
// filter, with logs) and plain device "dev-1", and an edge client on it.
func setup(t *testing.T) (*iothubtest.Hub, *edge.Client) {
	t.Helper()
	hub := iothubtest.New(nil)
	t.Cleanup(hub.Close)
	hub.AddDevice("edge-1", &iothubtest.DeviceOptions{EdgeRuntime: &iothubtest.EdgeOptions{
		Modules: []string{"tempSensor", "filter"},
		Logs: map[string][]iothubtest.LogLine{
			"tempSensor": {
				{Time: t0, LogLevel: 6, Text: "sensor started"},
				{Time: t0.Add(time.Second), LogLevel: 3, Stream: "stderr", Text: "read failed"},
				{Time: t0.Add(2 * time.Second), LogLevel: 6, Text: "temperature 21.5"},
			},
			"filter": {{Time: t0, LogLevel: 7, Text: "filter ready"}},
		},
	}})
	hub.AddDevice("dev-1", nil)
	svc, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	return hub, edge.NewClient(svc)
}

// sent is a recorded method call: its path and body.
type sent struct {
	Path string
	Body map[string]any
}

func requests(t *testing.T, hub *iothubtest.Hub) []sent {
	t.Helper()
	var out []sent
	for _, r := range hub.Requests() {
		if r.RawQuery != "api-version=2021-04-12" {
			t.Errorf("%s: query %q, want api-version=2021-04-12", r.Path, r.RawQuery)
		}
		var b map[string]any
		if err := json.Unmarshal(r.Body, &b); err != nil {
			t.Fatalf("%s: body %s: %v", r.Path, r.Body, err)
		}
		out = append(out, sent{r.Path, b})
	}
	return out
}

const agentPath = "/twins/edge-1/modules/%24edgeAgent/methods"

// TestWire checks each call's request, field by field, and that the fake
// agent accepts it.
func TestWire(t *testing.T) {
	t.Parallel()
	level := 4
	tests := []struct {
		name string
		call func(context.Context, *edge.Client) error
		want sent
	}{
		{"ping", func(ctx context.Context, c *edge.Client) error { return c.Ping(ctx, "edge-1", nil) },
			sent{agentPath, map[string]any{"methodName": "ping", "payload": nil}}},
		{"restart", func(ctx context.Context, c *edge.Client) error {
			return c.RestartModule(ctx, "edge-1", "tempSensor", &edge.RestartOptions{CallOptions: edge.CallOptions{TimeoutInSeconds: 10}})
		}, sent{agentPath, map[string]any{"methodName": "RestartModule", "responseTimeoutInSeconds": 10.0,
			"payload": map[string]any{"schemaVersion": "1.0", "id": "tempSensor"}}}},
		{"logs defaults", func(ctx context.Context, c *edge.Client) error {
			_, err := c.GetModuleLogs(ctx, "edge-1", edge.LogsRequest{Items: []edge.LogsItem{{ID: "tempSensor"}}}, nil)
			return err
		}, sent{agentPath, map[string]any{"methodName": "GetModuleLogs", "payload": map[string]any{
			"schemaVersion": "1.0", "items": []any{map[string]any{"id": "tempSensor"}}, "encoding": "gzip", "contentType": "json"}}}},
		{"logs filter", func(ctx context.Context, c *edge.Client) error {
			_, err := c.GetModuleLogs(ctx, "edge-1", edge.LogsRequest{
				Items:    []edge.LogsItem{{ID: "temp.*", Filter: edge.LogFilter{Tail: 10, Since: "90m", Until: edge.Timestamp(t0), LogLevel: &level, Regex: "fail"}}},
				Encoding: edge.EncodingNone, ContentType: edge.ContentTypeText,
			}, nil)
			return err
		}, sent{agentPath, map[string]any{"methodName": "GetModuleLogs", "payload": map[string]any{
			"schemaVersion": "1.0", "encoding": "none", "contentType": "text", "items": []any{map[string]any{"id": "temp.*",
				"filter": map[string]any{"tail": 10.0, "since": "90m", "until": "2026-03-01T12:00:00Z", "loglevel": 4.0, "regex": "fail"}}}}}}},
		{"upload logs", func(ctx context.Context, c *edge.Client) error {
			_, err := c.UploadModuleLogs(ctx, "edge-1", edge.UploadLogsRequest{LogsRequest: edge.LogsRequest{Items: []edge.LogsItem{{ID: ".*"}}}, SASURL: sasURL}, nil)
			return err
		}, sent{agentPath, map[string]any{"methodName": "UploadModuleLogs", "payload": map[string]any{
			"schemaVersion": "1.0", "items": []any{map[string]any{"id": ".*"}}, "encoding": "gzip", "contentType": "json", "sasUrl": sasURL}}}},
		{"support bundle", func(ctx context.Context, c *edge.Client) error {
			_, err := c.UploadSupportBundle(ctx, "edge-1", edge.SupportBundleRequest{SASURL: sasURL, Since: "1d", EdgeRuntimeOnly: true}, nil)
			return err
		}, sent{agentPath, map[string]any{"methodName": "UploadSupportBundle", "payload": map[string]any{
			"schemaVersion": "1.0", "sasUrl": sasURL, "since": "1d", "edgeRuntimeOnly": true}}}},
		{"task status", func(ctx context.Context, c *edge.Client) error {
			_, err := c.GetTaskStatus(ctx, "edge-1", "abc", nil)
			return err
		}, sent{agentPath, map[string]any{"methodName": "GetTaskStatus", "payload": map[string]any{"schemaVersion": "1.0", "correlationId": "abc"}}}},
		{"refresh", func(ctx context.Context, c *edge.Client) error {
			return c.RefreshDeviceScopeIdentityCache(ctx, "edge-1", []string{"leaf-1", "leaf 2"}, nil)
		}, sent{"/twins/edge-1/modules/%24edgeHub/methods", map[string]any{"methodName": "RefreshDeviceScopeIdentityCache",
			"payload": map[string]any{"deviceIds": []any{"leaf-1", "leaf 2"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hub, c := setup(t)
			err := tt.call(t.Context(), c)
			if tt.name == "refresh" {
				// "leaf 2" is not a valid id: refused before sending.
				var ae *iothub.ArgumentError
				if !errors.As(err, &ae) || ae.Field != "deviceIDs[1]" {
					t.Fatalf("err = %v, want an ArgumentError on deviceIDs[1]", err)
				}
				if n := len(hub.Requests()); n != 0 {
					t.Fatalf("%d requests sent, want none", n)
				}
				err = c.RefreshDeviceScopeIdentityCache(t.Context(), "edge-1", []string{"leaf-1", "leaf-2"}, nil)
				tt.want.Body["payload"] = map[string]any{"deviceIds": []any{"leaf-1", "leaf-2"}}
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]sent{tt.want}, requests(t, hub)); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
		})
	}
}

// TestArgumentErrors checks that bad input is refused, naming the field,
// with nothing sent.
func TestArgumentErrors(t *testing.T) {
	t.Parallel()
	bad := -1
	items := []edge.LogsItem{{ID: "x"}}
	tests := []struct {
		name, field string
		call        func(context.Context, *edge.Client) error
	}{
		{"empty device", "deviceID", func(ctx context.Context, c *edge.Client) error { return c.Ping(ctx, "", nil) }},
		{"bad device", "deviceID", func(ctx context.Context, c *edge.Client) error { return c.Ping(ctx, "a/b", nil) }},
		{"timeout", "CallOptions.TimeoutInSeconds", func(ctx context.Context, c *edge.Client) error {
			return c.Ping(ctx, "edge-1", &edge.CallOptions{TimeoutInSeconds: 301})
		}},
		{"connect timeout", "CallOptions.ConnectTimeoutInSeconds", func(ctx context.Context, c *edge.Client) error {
			return c.Ping(ctx, "edge-1", &edge.CallOptions{ConnectTimeoutInSeconds: -1})
		}},
		{"empty module", "moduleName", func(ctx context.Context, c *edge.Client) error { return c.RestartModule(ctx, "edge-1", "", nil) }},
		{"module id", "moduleName", func(ctx context.Context, c *edge.Client) error {
			return c.RestartModule(ctx, "edge-1", "$edgeHub", nil)
		}},
		{"agent", "moduleName", func(ctx context.Context, c *edge.Client) error {
			return c.RestartModule(ctx, "edge-1", "edgeAgent", nil)
		}},
		{"no items", "Items", func(ctx context.Context, c *edge.Client) error {
			_, err := c.GetModuleLogs(ctx, "edge-1", edge.LogsRequest{}, nil)
			return err
		}},
		{"empty item id", "Items[1].ID", func(ctx context.Context, c *edge.Client) error {
			_, err := c.GetModuleLogs(ctx, "edge-1", edge.LogsRequest{Items: []edge.LogsItem{{ID: "a"}, {ID: " "}}}, nil)
			return err
		}},
		{"negative tail", "Items[0].Filter.Tail", func(ctx context.Context, c *edge.Client) error {
			_, err := c.GetModuleLogs(ctx, "edge-1", edge.LogsRequest{Items: []edge.LogsItem{{ID: "a", Filter: edge.LogFilter{Tail: -1}}}}, nil)
			return err
		}},
		{"log level", "Items[0].Filter.LogLevel", func(ctx context.Context, c *edge.Client) error {
			_, err := c.GetModuleLogs(ctx, "edge-1", edge.LogsRequest{Items: []edge.LogsItem{{ID: "a", Filter: edge.LogFilter{LogLevel: &bad}}}}, nil)
			return err
		}},
		{"encoding", "Encoding", func(ctx context.Context, c *edge.Client) error {
			_, err := c.GetModuleLogs(ctx, "edge-1", edge.LogsRequest{Items: items, Encoding: "zip"}, nil)
			return err
		}},
		{"content type", "ContentType", func(ctx context.Context, c *edge.Client) error {
			_, err := c.GetModuleLogs(ctx, "edge-1", edge.LogsRequest{Items: items, ContentType: "xml"}, nil)
			return err
		}},
		{"max decoded", "LogsOptions.MaxDecodedBytes", func(ctx context.Context, c *edge.Client) error {
			_, err := c.GetModuleLogs(ctx, "edge-1", edge.LogsRequest{Items: items}, &edge.LogsOptions{MaxDecodedBytes: -1})
			return err
		}},
		{"empty sas", "SASURL", func(ctx context.Context, c *edge.Client) error {
			_, err := c.UploadModuleLogs(ctx, "edge-1", edge.UploadLogsRequest{LogsRequest: edge.LogsRequest{Items: items}}, nil)
			return err
		}},
		{"http sas", "SASURL", func(ctx context.Context, c *edge.Client) error {
			_, err := c.UploadModuleLogs(ctx, "edge-1", edge.UploadLogsRequest{LogsRequest: edge.LogsRequest{Items: items},
				SASURL: "http://acct.blob.core.windows.net/logs?sig=SECRETSIGNATURE"}, nil)
			return err
		}},
		{"upload no items", "Items", func(ctx context.Context, c *edge.Client) error {
			_, err := c.UploadModuleLogs(ctx, "edge-1", edge.UploadLogsRequest{SASURL: sasURL}, nil)
			return err
		}},
		{"bundle sas", "SASURL", func(ctx context.Context, c *edge.Client) error {
			_, err := c.UploadSupportBundle(ctx, "edge-1", edge.SupportBundleRequest{SASURL: "relative?sig=SECRETSIGNATURE"}, nil)
			return err
		}},
		{"correlation id", "correlationID", func(ctx context.Context, c *edge.Client) error {
			_, err := c.GetTaskStatus(ctx, "edge-1", "", nil)
			return err
		}},
		{"wait correlation id", "correlationID", func(ctx context.Context, c *edge.Client) error {
			_, err := c.WaitTask(ctx, "edge-1", "", nil)
			return err
		}},
		{"wait intervals", "WaitOptions.MaxPollInterval", func(ctx context.Context, c *edge.Client) error {
			_, err := c.WaitTask(ctx, "edge-1", "x", &edge.WaitOptions{MinPollInterval: time.Minute, MaxPollInterval: time.Second})
			return err
		}},
		{"no device ids", "deviceIDs", func(ctx context.Context, c *edge.Client) error {
			return c.RefreshDeviceScopeIdentityCache(ctx, "edge-1", nil, nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hub, c := setup(t)
			err := tt.call(t.Context(), c)
			var ae *iothub.ArgumentError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want an *iothub.ArgumentError", err)
			}
			if ae.Field != tt.field {
				t.Errorf("Field = %q, want %q (%v)", ae.Field, tt.field, err)
			}
			if iothub.MayHaveRun(err) {
				t.Error("MayHaveRun = true for an argument error")
			}
			if strings.Contains(err.Error(), "SECRETSIGNATURE") {
				t.Errorf("error quotes the signature: %v", err)
			}
			if n := len(hub.Requests()); n != 0 {
				t.Errorf("%d requests sent, want none", n)
			}
		})
	}
}

func TestGetModuleLogs(t *testing.T) {
	t.Parallel()
	three := 3
	text := "<6> 2026-03-01 12:00:00.000 +00:00 sensor started\n<3> 2026-03-01 12:00:01.000 +00:00 read failed\n<6> 2026-03-01 12:00:02.000 +00:00 temperature 21.5\n"
	line := func(sec, level int, stream, msg string) edge.LogLine {
		return edge.LogLine{IoTHub: "test-hub.azure-devices.net", Device: "edge-1", ModuleID: "tempSensor", Stream: stream,
			LogLevel: level, Text: msg, Timestamp: t0.Add(time.Duration(sec) * time.Second)}
	}
	all := []edge.LogLine{line(0, 6, "stdout", "sensor started"), line(1, 3, "stderr", "read failed"), line(2, 6, "stdout", "temperature 21.5")}
	tests := []struct {
		name string
		req  edge.LogsRequest
		want []edge.ModuleLogs
	}{
		{"gzip json", edge.LogsRequest{Items: []edge.LogsItem{{ID: "tempSensor"}}}, []edge.ModuleLogs{{ModuleID: "tempSensor", Lines: all}}},
		{"none json", edge.LogsRequest{Items: []edge.LogsItem{{ID: "tempSensor"}}, Encoding: edge.EncodingNone}, []edge.ModuleLogs{{ModuleID: "tempSensor", Lines: all}}},
		{"gzip text", edge.LogsRequest{Items: []edge.LogsItem{{ID: "tempSensor"}}, ContentType: edge.ContentTypeText}, []edge.ModuleLogs{{ModuleID: "tempSensor", Text: text}}},
		{"none text", edge.LogsRequest{Items: []edge.LogsItem{{ID: "tempSensor"}}, Encoding: edge.EncodingNone, ContentType: edge.ContentTypeText},
			[]edge.ModuleLogs{{ModuleID: "tempSensor", Text: text}}},
		{"tail", edge.LogsRequest{Items: []edge.LogsItem{{ID: "tempSensor", Filter: edge.LogFilter{Tail: 1}}}}, []edge.ModuleLogs{{ModuleID: "tempSensor", Lines: all[2:]}}},
		{"level", edge.LogsRequest{Items: []edge.LogsItem{{ID: "tempSensor", Filter: edge.LogFilter{LogLevel: &three}}}}, []edge.ModuleLogs{{ModuleID: "tempSensor", Lines: all[1:2]}}},
		{"regex", edge.LogsRequest{Items: []edge.LogsItem{{ID: "tempSensor", Filter: edge.LogFilter{Regex: "^temp"}}}}, []edge.ModuleLogs{{ModuleID: "tempSensor", Lines: all[2:]}}},
		{"since until", edge.LogsRequest{Items: []edge.LogsItem{{ID: "tempSensor", Filter: edge.LogFilter{
			Since: edge.Timestamp(t0.Add(time.Second)), Until: fmt.Sprint(t0.Add(time.Second).Unix())}}}}, []edge.ModuleLogs{{ModuleID: "tempSensor", Lines: all[1:2]}}},
		{"regex on names", edge.LogsRequest{Items: []edge.LogsItem{{ID: "^(filter|edgeHub)$"}}}, []edge.ModuleLogs{{ModuleID: "edgeHub"}, {ModuleID: "filter",
			Lines: []edge.LogLine{{IoTHub: "test-hub.azure-devices.net", Device: "edge-1", ModuleID: "filter", Stream: "stdout", LogLevel: 7, Text: "filter ready", Timestamp: t0}}}}},
		{"no match", edge.LogsRequest{Items: []edge.LogsItem{{ID: "nothing"}}}, []edge.ModuleLogs{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, c := setup(t)
			got, err := c.GetModuleLogs(t.Context(), "edge-1", tt.req, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("logs (-want +got):\n%s", diff)
			}
		})
	}
}

// manyLines returns n distinct log lines.
func manyLines(n int) []iothubtest.LogLine {
	lines := make([]iothubtest.LogLine, n)
	for i := range lines {
		lines[i] = iothubtest.LogLine{Time: t0.Add(time.Duration(i) * time.Millisecond), LogLevel: 6, Text: fmt.Sprintf("reading %d: %x", i, i*7919)}
	}
	return lines
}

func TestLogsTooLarge(t *testing.T) {
	t.Parallel()
	hub, c := setup(t)
	hub.Device("edge-1").Edge().AddLogs("tempSensor", manyLines(3000)...)
	req := edge.LogsRequest{Items: []edge.LogsItem{{ID: "tempSensor"}}, Encoding: edge.EncodingNone}
	_, err := c.GetModuleLogs(t.Context(), "edge-1", req, nil)
	var ae *edge.AgentError
	if !errors.As(err, &ae) || ae.Status != 400 {
		t.Fatalf("err = %v, want an *edge.AgentError with status 400", err)
	}
	if !errors.Is(err, edge.ErrLogsTooLarge) {
		t.Errorf("err = %v does not match ErrLogsTooLarge", err)
	}
	for _, want := range []string{"127000", "Tail", "EncodingGzip"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if !iothub.MayHaveRun(err) {
		t.Error("MayHaveRun = false for a delivered call")
	}
	// A tail brings it under the cap.
	req.Items[0].Filter.Tail = 100
	got, err := c.GetModuleLogs(t.Context(), "edge-1", req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got[0].Lines); n != 100 {
		t.Errorf("%d lines, want 100", n)
	}
}

// gzipped returns data gzipped.
func gzipped(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDecodeBound checks that a gzip bomb is cut off at MaxDecodedBytes,
// and that answers that do not decode are PayloadErrors.
func TestDecodeBound(t *testing.T) {
	t.Parallel()
	bomb := gzipped(t, bytes.Repeat([]byte{' '}, 64<<20)) // 64 MiB of spaces, about 64 KiB gzipped
	tests := []struct {
		name    string
		payload any
		opts    *edge.LogsOptions
		is      error
	}{
		{"bomb default", []map[string]any{{"id": "tempSensor", "payloadBytes": bomb, "payload": nil}}, nil, edge.ErrDecodedTooLarge},
		{"bomb small limit", []map[string]any{{"id": "tempSensor", "payloadBytes": gzipped(t, make([]byte, 2048)), "payload": nil}},
			&edge.LogsOptions{MaxDecodedBytes: 1024}, edge.ErrDecodedTooLarge},
		{"not gzip", []map[string]any{{"id": "tempSensor", "payloadBytes": []byte("plain"), "payload": nil}}, nil, nil},
		{"not an array", map[string]any{"id": "x"}, nil, nil},
		{"bad records", []map[string]any{{"id": "tempSensor", "payload": "[{\"loglevel\":\"six\"}]"}}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hub, c := setup(t)
			hub.Device("edge-1").Module("$edgeAgent").HandleMethod("GetModuleLogs", iothubtest.Answer(200, tt.payload))
			_, err := c.GetModuleLogs(t.Context(), "edge-1", edge.LogsRequest{Items: []edge.LogsItem{{ID: "tempSensor"}}}, tt.opts)
			var pe *service.PayloadError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *service.PayloadError", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want it to match %v", err, tt.is)
			}
		})
	}
}

// TestLogsTooLargeInAnswer: agents that answer 200 with the size message
// in place of a module's logs give the same error as a 400.
func TestLogsTooLargeInAnswer(t *testing.T) {
	t.Parallel()
	hub, c := setup(t)
	msg := "The payload is too large for a direct method. GetModuleLogs supports up to 127000 bytes of logs."
	hub.Device("edge-1").Module("$edgeAgent").HandleMethod("GetModuleLogs", iothubtest.Answer(200, []map[string]any{{"id": "tempSensor", "payload": msg}}))
	_, err := c.GetModuleLogs(t.Context(), "edge-1", edge.LogsRequest{Items: []edge.LogsItem{{ID: "tempSensor"}}}, nil)
	if !errors.Is(err, edge.ErrLogsTooLarge) {
		t.Fatalf("err = %v, want ErrLogsTooLarge", err)
	}
}

// TestErrors checks that the agent's failures are AgentErrors and the
// hub's pass through unchanged.
func TestErrors(t *testing.T) {
	t.Parallel()
	hub, c := setup(t)
	hub.AddDevice("edge-off", &iothubtest.DeviceOptions{Edge: true, Offline: true})
	hub.Device("edge-off").Module("$edgeAgent").SetOnline(false)

	err := c.RestartModule(t.Context(), "edge-1", "nothere", nil)
	var ae *edge.AgentError
	if !errors.As(err, &ae) {
		t.Fatalf("unknown module: err = %v, want an *edge.AgentError", err)
	}
	want := &edge.AgentError{DeviceID: "edge-1", ModuleID: "$edgeAgent", Method: "RestartModule", Status: 500,
		Message: "Module nothere not found in the current environment"}
	if diff := cmp.Diff(want, ae); diff != "" {
		t.Errorf("AgentError (-want +got):\n%s", diff)
	}
	var he *iothub.Error
	if errors.As(err, &he) {
		t.Error("an agent failure matches *iothub.Error")
	}

	// A device that is not an Edge device: the hub's 404010.
	err = c.Ping(t.Context(), "dev-1", nil)
	if !errors.As(err, &he) || he.Code != iothub.ErrorCodeModuleNotFound {
		t.Fatalf("plain device: err = %v, want 404010 ModuleNotFound", err)
	}
	if errors.As(err, &ae) {
		t.Error("a hub error matches *edge.AgentError")
	}
	// An agent offline: 404103, not delivered.
	err = c.RestartModule(t.Context(), "edge-off", "tempSensor", nil)
	if !errors.As(err, &he) || he.Code != iothub.ErrorCodeDeviceNotOnline || iothub.MayHaveRun(err) {
		t.Fatalf("offline: err = %v, want 404103 not delivered", err)
	}
	// Restarting a module works and is counted once.
	if err := c.RestartModule(t.Context(), "edge-1", "tempSensor", nil); err != nil {
		t.Fatal(err)
	}
	if n := hub.Device("edge-1").Edge().Restarts("tempSensor"); n != 1 {
		t.Errorf("tempSensor restarted %d times, want 1", n)
	}
}

func TestWaitTask(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		sas     string
		restart bool // the agent restarts after the upload starts
		want    edge.TaskStatus
		is      error
	}{
		{"completed", sasURL, false, edge.TaskCompleted, nil},
		{"failed", "https://acct.blob.core.windows.net/logs?sv=1", false, edge.TaskFailed, edge.ErrTaskFailed},
		{"lost", sasURL, true, edge.TaskUnknown, edge.ErrTaskLost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub, c := setup(t)
				task, err := c.UploadModuleLogs(t.Context(), "edge-1", edge.UploadLogsRequest{
					LogsRequest: edge.LogsRequest{Items: []edge.LogsItem{{ID: ".*"}}}, SASURL: tt.sas}, nil)
				if err != nil {
					t.Fatal(err)
				}
				if task.Status != edge.TaskNotStarted || task.CorrelationID == "" {
					t.Fatalf("task = %+v, want NotStarted with an id", task)
				}
				if tt.restart {
					hub.Device("edge-1").Edge().RestartAgent()
				}
				start := time.Now()
				got, err := c.WaitTask(t.Context(), "edge-1", task.CorrelationID, &edge.WaitOptions{MinPollInterval: time.Second, MaxPollInterval: 4 * time.Second})
				if got.Status != tt.want {
					t.Errorf("status %s, want %s", got.Status, tt.want)
				}
				if tt.is == nil && err != nil || tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("err = %v, want %v", err, tt.is)
				}
				// Polls at +1 s (Running) and +3 s (the end); a lost task
				// ends at the first poll.
				wantWait := 3 * time.Second
				if tt.restart {
					wantWait = time.Second
				}
				if d := time.Since(start); d != wantWait {
					t.Errorf("waited %v, want %v", d, wantWait)
				}
			})
		})
	}
}

func TestWaitTaskContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, c := setup(t)
		hub.Device("edge-1").Module("$edgeAgent").HandleMethod("GetTaskStatus",
			iothubtest.Answer(200, map[string]string{"status": "Running", "correlationId": "t1", "message": ""}))
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		got, err := c.WaitTask(ctx, "edge-1", "t1", nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want DeadlineExceeded", err)
		}
		if got.Status != edge.TaskRunning {
			t.Errorf("last task %+v, want Running", got)
		}
	})
}

// TestRestartAgent: restarting the agent is refused by default; allowed,
// it ends with the hub's 504101, the agent is away for the fake's restart
// window (404103, not delivered: WaitTask says so too) and its tasks are
// lost.
func TestRestartAgent(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, c := setup(t)
		task, err := c.UploadSupportBundle(t.Context(), "edge-1", edge.SupportBundleRequest{SASURL: sasURL}, nil)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = c.RestartModule(t.Context(), "edge-1", "edgeAgent", &edge.RestartOptions{AllowAgent: true, CallOptions: edge.CallOptions{TimeoutInSeconds: 5}})
		if !errors.Is(err, iothub.ErrOutcomeUnknown) {
			t.Fatalf("err = %v, want an outcome-unknown error (504101)", err)
		}
		// Within the window: the agent is not connected.
		notOnline := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, iothub.ErrDeviceNotOnline) || iothub.MayHaveRun(err) {
				t.Errorf("%s in the restart window: err = %v, want 404103 not delivered", what, err)
			}
			var ae *edge.AgentError
			if errors.As(err, &ae) {
				t.Errorf("%s in the restart window: a hub error matches *edge.AgentError", what)
			}
		}
		_, err = c.GetTaskStatus(t.Context(), "edge-1", task.CorrelationID, nil)
		notOnline("GetTaskStatus", err)
		notOnline("Ping", c.Ping(t.Context(), "edge-1", nil))
		got, err := c.WaitTask(t.Context(), "edge-1", task.CorrelationID, &edge.WaitOptions{MinPollInterval: time.Second})
		notOnline("WaitTask", err)
		if got.CorrelationID != task.CorrelationID || got.Status != "" {
			t.Errorf("WaitTask in the restart window: %+v, want the id and no status", got)
		}
		// With a connect timeout the hub waits for the agent, which has
		// forgotten the task.
		got, err = c.WaitTask(t.Context(), "edge-1", task.CorrelationID, &edge.WaitOptions{MinPollInterval: time.Second,
			CallOptions: edge.CallOptions{ConnectTimeoutInSeconds: 30}})
		if !errors.Is(err, edge.ErrTaskLost) || got.Status != edge.TaskUnknown {
			t.Errorf("WaitTask across the window: %+v, %v; want Unknown and ErrTaskLost", got, err)
		}
		if d := time.Since(start); d != iothubtest.DefaultAgentRestartWindow {
			t.Errorf("the agent was back after %v, want %v", d, iothubtest.DefaultAgentRestartWindow)
		}
		if err := c.Ping(t.Context(), "edge-1", nil); err != nil {
			t.Errorf("Ping after the window: %v", err)
		}
		if n := hub.Device("edge-1").Edge().Restarts("edgeAgent"); n != 1 {
			t.Errorf("agent restarts %d, want 1", n)
		}
	})
}

// TestSecrets checks that a SAS URL's signature stays out of String,
// GoString, %v, slog and the agent's messages.
func TestSecrets(t *testing.T) {
	t.Parallel()
	up := edge.UploadLogsRequest{LogsRequest: edge.LogsRequest{Items: []edge.LogsItem{{ID: ".*"}}}, SASURL: sasURL}
	bundle := edge.SupportBundleRequest{SASURL: sasURL}
	var logBuf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logBuf, nil))
	logger.Info("upload", "req", up, "bundle", bundle)
	outputs := []string{fmt.Sprint(up), fmt.Sprintf("%+v", up), fmt.Sprintf("%#v", up), fmt.Sprint(bundle), fmt.Sprintf("%#v", bundle), logBuf.String()}
	for _, s := range outputs {
		if strings.Contains(s, "SECRETSIGNATURE") {
			t.Errorf("the signature leaks: %s", s)
		}
		if !strings.Contains(s, "acct.blob.core.windows.net") {
			t.Errorf("the host is missing: %s", s)
		}
	}

	hub, c := setup(t)
	hub.Device("edge-1").Module("$edgeAgent").HandleMethod("UploadModuleLogs",
		iothubtest.Answer(500, map[string]string{"message": "Invalid URI " + sasURL}))
	_, err := c.UploadModuleLogs(t.Context(), "edge-1", up, nil)
	var ae *edge.AgentError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an AgentError", err)
	}
	if strings.Contains(err.Error(), "SECRETSIGNATURE") {
		t.Errorf("the agent's message leaks the signature: %v", err)
	}
}
