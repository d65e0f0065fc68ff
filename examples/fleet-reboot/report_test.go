package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/service"
)

// lineOf is a result's report line, the reference appendLine's output is
// checked against.
func lineOf(r service.Result) line {
	l := line{
		DeviceID:   r.DeviceID,
		ModuleID:   r.ModuleID,
		Outcome:    r.Outcome,
		Status:     r.Status,
		Payload:    r.Payload,
		ErrorCode:  int(r.ErrorCode),
		TrackingID: r.TrackingID,
		Attempts:   r.Attempts,
		MS:         r.Latency.Milliseconds(),
	}
	if r.Err != nil {
		l.Error = r.Err.Error()
	}
	return l
}

// referenceLine is what encoding/json writes for r's line without HTML
// escaping.
func referenceLine(r service.Result) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(lineOf(r))
	return b.Bytes(), err
}

func TestAppendLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		r    service.Result
	}{
		{"succeeded", service.Result{
			Target: service.Target{DeviceID: "sim-fleet-00042"}, Outcome: service.OutcomeSucceeded,
			Status: 200, Payload: json.RawMessage(`{"rebooting":true}`), Attempts: 1, Latency: 25 * time.Millisecond,
		}},
		{"module, payload with white space and newlines", service.Result{
			Target: service.Target{DeviceID: "edge-1", ModuleID: "$edgeAgent"}, Outcome: service.OutcomeDeviceError,
			Status: 500, Payload: json.RawMessage("{\n  \"a\": [1, 2],\n\t\"b\": \"x y\"\n}\n"), Attempts: 2, Latency: 1500 * time.Millisecond,
		}},
		{"not delivered, with error fields", service.Result{
			Target: service.Target{DeviceID: "dev-offline"}, Outcome: service.OutcomeNotDelivered,
			Err: errors.New(`hub answered 404103 "DeviceNotOnline" <&> [not delivered]`), ErrorCode: iothub.ErrorCode(404103),
			TrackingID: "abc-123", Attempts: 1, Latency: 3 * time.Millisecond,
		}},
		{"never invoked: no payload, zero attempts", service.Result{
			Target: service.Target{DeviceID: "d"}, Outcome: service.OutcomeNotDelivered, Err: errors.New("context canceled"),
		}},
		{"an error with an empty message is left out", service.Result{
			Target: service.Target{DeviceID: "d"}, Outcome: service.OutcomeUnknown, Err: errors.New(""),
		}},
		{"strings that need escaping", service.Result{
			Target:  service.Target{DeviceID: "q\"b\\s/\b\f\n\r\t\x00\x1f\x7f", ModuleID: "m\u2028\u2029é☃😀"},
			Outcome: service.OutcomeUnknown, Err: errors.New("bad \xff\xfe utf-8 \xe2\x82 end"), TrackingID: "<script>",
		}},
		{"null payload", service.Result{
			Target: service.Target{DeviceID: "d"}, Outcome: service.OutcomeSucceeded, Status: 200, Payload: json.RawMessage("null"),
		}},
		{"negative latency", service.Result{
			Target: service.Target{DeviceID: "d"}, Outcome: service.OutcomeSucceeded, Latency: -time.Second,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := referenceLine(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			var pay bytes.Buffer
			got, err := appendLine([]byte("kept"), &pay, tt.r)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), strings.TrimPrefix(string(got), "kept")); diff != "" || !strings.HasPrefix(string(got), "kept") {
				t.Errorf("line (-encoding/json +appendLine):\n%s", diff)
			}
		})
	}
}

// TestAppendLineBadPayload refuses a payload that is not JSON, as the
// encoder does, instead of writing a line a resumed run cannot read.
func TestAppendLineBadPayload(t *testing.T) {
	t.Parallel()
	r := service.Result{Target: service.Target{DeviceID: "d"}, Outcome: service.OutcomeSucceeded, Payload: json.RawMessage(`{"a":`)}
	if _, err := referenceLine(r); err == nil {
		t.Fatal("encoding/json took the payload")
	}
	var pay bytes.Buffer
	if _, err := appendLine(nil, &pay, r); err == nil {
		t.Error("appendLine took a payload that is not JSON")
	}
}

// FuzzAppendLine checks appendLine against encoding/json for any strings
// and payloads.
func FuzzAppendLine(f *testing.F) {
	f.Add("dev-1", "", "reboot failed", []byte(`{"a":1}`), 200, 3)
	f.Add("a\"\\\x00\u2028", "m\xff", "\xe2\x82", []byte(" [1, {\"x\" : null}] "), 0, 0)
	f.Add("", "", "", []byte(nil), -1, -5)
	f.Fuzz(func(t *testing.T, device, module, msg string, payload []byte, status, attempts int) {
		r := service.Result{
			Target:  service.Target{DeviceID: device, ModuleID: module},
			Outcome: service.OutcomeUnknown, Status: status, Payload: payload, Attempts: attempts,
			TrackingID: msg, ErrorCode: iothub.ErrorCode(status * 1000),
		}
		if msg != "" {
			r.Err = errors.New(msg)
		}
		want, wantErr := referenceLine(r)
		var pay bytes.Buffer
		got, err := appendLine(nil, &pay, r)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("appendLine error %v, encoding/json error %v", err, wantErr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Errorf("appendLine:\n%s\nencoding/json:\n%s", got, want)
		}
	})
}

// TestReportWriterHolds writes a line held for the next result together
// with it, and every held line before write returns with more false or
// at close.
func TestReportWriterHolds(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "r.jsonl")
	w, err := openReport(file, false)
	if err != nil {
		t.Fatal(err)
	}
	res := func(id string) service.Result {
		return service.Result{Target: service.Target{DeviceID: id}, Outcome: service.OutcomeSucceeded, Status: 200, Attempts: 1}
	}
	lines := func() int {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Count(data, []byte("\n"))
	}
	type step struct {
		ID     string
		More   bool
		InFile int
	}
	var got []step
	for _, s := range []step{{"a", true, 0}, {"b", true, 0}, {"c", false, 3}, {"d", false, 4}, {"e", true, 4}} {
		w.write(res(s.ID), s.More)
		got = append(got, step{s.ID, s.More, lines()})
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	got = append(got, step{"close", false, lines()})
	want := []step{{"a", true, 0}, {"b", true, 0}, {"c", false, 3}, {"d", false, 4}, {"e", true, 4}, {"close", false, 5}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lines in the file after each write (-want +got):\n%s", diff)
	}
}

// TestReportWriterBadPayload still writes the lines held before a result
// whose line cannot be encoded, and reports the error at close.
func TestReportWriterBadPayload(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "r.jsonl")
	w, err := openReport(file, false)
	if err != nil {
		t.Fatal(err)
	}
	w.write(service.Result{Target: service.Target{DeviceID: "held"}, Outcome: service.OutcomeSucceeded}, true)
	w.write(service.Result{Target: service.Target{DeviceID: "bad"}, Outcome: service.OutcomeSucceeded, Payload: json.RawMessage(`{`)}, false)
	if err := w.close(); err == nil {
		t.Error("close reported no error")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if want := "{\"deviceId\":\"held\",\"outcome\":\"succeeded\",\"attempts\":0,\"ms\":0}\n"; string(data) != want {
		t.Errorf("report %q, want %q", data, want)
	}
}
