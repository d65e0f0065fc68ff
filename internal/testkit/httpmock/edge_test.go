package httpmock

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// edgeAnswer is a method answer of the runtime.
type edgeAnswer struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

func edgeHubForTest(t *testing.T) (*Hub, *Edge) {
	t.Helper()
	h := New(nil)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	e := h.AddDevice("e1", nil).MakeEdge(&EdgeOptions{
		Modules: []string{"tempSensor"},
		Logs: map[string][]EdgeLogLine{"tempSensor": {
			{Time: t0, LogLevel: 6, Text: "one"},
			{Time: t0.Add(time.Second), LogLevel: 3, Text: "two"},
		}},
	})
	return h, e
}

// invokeEdge calls a runtime method with a raw payload and returns the
// device's answer.
func invokeEdge(t *testing.T, h *Hub, module, method, payload string) edgeAnswer {
	t.Helper()
	extra := ""
	if payload != "" {
		extra = `,"payload":` + payload
	}
	r := send(t.Context(), t, h, inProcess(h), call{path: "/twins/e1/modules/" + strings.ReplaceAll(module, "$", "%24") + "/methods", body: methodBody(method, extra)})
	if r.err != nil || r.status != 200 {
		t.Fatalf("%s %s: status %d err %v body %s", module, method, r.status, r.err, r.body)
	}
	var a edgeAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestEdgeAgentAnswers checks the agent's statuses and failure payloads,
// request by request.
func TestEdgeAgentAnswers(t *testing.T) {
	t.Parallel()
	h, _ := edgeHubForTest(t)
	const supported = "ping,RestartModule,GetModuleLogs,UploadModuleLogs,UploadSupportBundle,GetTaskStatus"
	tests := []struct {
		name, module, method, payload string
		status                        int
		message                       string // "" for a success
	}{
		{"ping", EdgeAgentModule, "ping", "", 200, ""},
		{"ping any case", EdgeAgentModule, "PING", "null", 200, ""},
		{"restart", EdgeAgentModule, "restartmodule", `{"schemaVersion":"1.0","id":"tempSensor"}`, 200, ""},
		{"restart minor version", EdgeAgentModule, "RestartModule", `{"schemaVersion":"1.7","id":"edgeHub"}`, 200, ""},
		{"restart unknown module", EdgeAgentModule, "RestartModule", `{"schemaVersion":"1.0","id":"nothere"}`, 500, "Module nothere not found in the current environment"},
		{"restart module id", EdgeAgentModule, "RestartModule", `{"schemaVersion":"1.0","id":"$edgeHub"}`, 500, "Module $edgeHub not found in the current environment"},
		{"restart major version", EdgeAgentModule, "RestartModule", `{"schemaVersion":"2.0","id":"tempSensor"}`, 500, "The request schema version 2.0 is not compatible with the expected version 1.0."},
		{"restart no payload", EdgeAgentModule, "RestartModule", "", 400, "Request payload not found"},
		{"restart no schema", EdgeAgentModule, "RestartModule", `{"id":"tempSensor"}`, 400, "The request has no schemaVersion."},
		{"restart no id", EdgeAgentModule, "RestartModule", `{"schemaVersion":"1.0"}`, 400, "The request has no module id."},
		{"restart bad type", EdgeAgentModule, "RestartModule", `{"schemaVersion":"1.0","id":7}`, 400, "*"},
		{"unknown method", EdgeAgentModule, "reboot", "", 400, "Command 'reboot' not found. The supported commands are - " + supported},
		{"logs no items", EdgeAgentModule, "GetModuleLogs", `{"schemaVersion":"1.0","encoding":"none","contentType":"json"}`, 400, "The request has no items."},
		{"logs bad encoding", EdgeAgentModule, "GetModuleLogs", `{"schemaVersion":"1.0","items":[{"id":"a"}],"encoding":"zip"}`, 400, `encoding "zip" is not one of gzip, none.`},
		{"logs bad regex", EdgeAgentModule, "GetModuleLogs", `{"schemaVersion":"1.0","items":[{"id":"("}]}`, 400, "*"},
		{"logs bad since", EdgeAgentModule, "GetModuleLogs", `{"schemaVersion":"1.0","items":{"id":"a","filter":{"since":"soon"}}}`, 400, "*"},
		{"logs single item", EdgeAgentModule, "GetModuleLogs", `{"schemaVersion":"1.0","items":{"id":"nothing"},"encoding":"none","contentType":"text"}`, 200, ""},
		{"upload no sas", EdgeAgentModule, "UploadModuleLogs", `{"schemaVersion":"1.0","items":[{"id":"a"}]}`, 400, "The request has no sasUrl."},
		{"bundle no sas", EdgeAgentModule, "UploadSupportBundle", `{"schemaVersion":"1.0"}`, 400, "The request has no sasUrl."},
		{"status no id", EdgeAgentModule, "GetTaskStatus", `{"schemaVersion":"1.0"}`, 400, "The request has no correlationId."},
		{"status unknown", EdgeAgentModule, "GetTaskStatus", `{"schemaVersion":"1.0","correlationId":"nope"}`, 200, ""},
		{"refresh", EdgeHubModule, "RefreshDeviceScopeIdentityCache", `{"deviceIds":["a","b"]}`, 200, ""},
		{"refresh any case", EdgeHubModule, "refreshdevicescopeidentitycache", `{"deviceIds":[]}`, 200, ""},
		{"refresh no body", EdgeHubModule, "RefreshDeviceScopeIdentityCache", "", 400, "Request payload not found"},
		{"refresh bad body", EdgeHubModule, "RefreshDeviceScopeIdentityCache", `{"deviceIds":"a"}`, 400, "*"},
		{"refresh no ids", EdgeHubModule, "RefreshDeviceScopeIdentityCache", `{}`, 400, "The request has no deviceIds."},
		{"edgeHub other", EdgeHubModule, "ping", "", 404, "Method ping is not supported"},
	}
	for _, tt := range tests {
		a := invokeEdge(t, h, tt.module, tt.method, tt.payload)
		if a.Status != tt.status {
			t.Errorf("%s: status %d, want %d (payload %s)", tt.name, a.Status, tt.status, a.Payload)
			continue
		}
		if tt.message == "" {
			continue
		}
		var body struct {
			Message string `json:"message"`
		}
		if err := json.Unmarshal(a.Payload, &body); err != nil || body.Message == "" {
			t.Errorf("%s: payload %s, want {\"message\":…}", tt.name, a.Payload)
			continue
		}
		if tt.message != "*" && body.Message != tt.message {
			t.Errorf("%s: message %q, want %q", tt.name, body.Message, tt.message)
		}
	}
}

// TestEdgeLogs checks GetModuleLogs' encodings and its size cap.
func TestEdgeLogs(t *testing.T) {
	t.Parallel()
	h, e := edgeHubForTest(t)
	a := invokeEdge(t, h, EdgeAgentModule, "GetModuleLogs", `{"schemaVersion":"1.0","items":[{"id":"^temp","filter":{"loglevel":3}}],"encoding":"none","contentType":"json"}`)
	var entries []struct {
		ID           string  `json:"id"`
		PayloadBytes []byte  `json:"payloadBytes"`
		Payload      *string `json:"payload"`
	}
	if err := json.Unmarshal(a.Payload, &entries); err != nil || len(entries) != 1 || entries[0].Payload == nil {
		t.Fatalf("payload %s: %v", a.Payload, err)
	}
	want := `[{"iothub":"test-hub.azure-devices.net","device":"e1","id":"tempSensor","stream":"stdout","loglevel":3,"text":"two","timestamp":"2026-03-01T12:00:01Z"}]`
	if diff := cmp.Diff(want, *entries[0].Payload); diff != "" {
		t.Errorf("double-encoded records (-want +got):\n%s", diff)
	}

	a = invokeEdge(t, h, EdgeAgentModule, "GetModuleLogs", `{"schemaVersion":"1.0","items":[{"id":"tempSensor","filter":{"tail":1}}],"encoding":"gzip","contentType":"text"}`)
	entries = nil
	if err := json.Unmarshal(a.Payload, &entries); err != nil || len(entries) != 1 || entries[0].Payload != nil {
		t.Fatalf("payload %s: %v", a.Payload, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(entries[0].PayloadBytes))
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(zr)
	if diff := cmp.Diff("<3> 2026-03-01 12:00:01.000 +00:00 two\n", string(text)); diff != "" {
		t.Errorf("gzip text (-want +got):\n%s", diff)
	}

	// Over the cap.
	for i := range 2000 {
		e.AddLogs("tempSensor", EdgeLogLine{Time: time.Now(), LogLevel: 6, Text: fmt.Sprintf("line %d of a long log", i)})
	}
	a = invokeEdge(t, h, EdgeAgentModule, "GetModuleLogs", `{"schemaVersion":"1.0","items":[{"id":"tempSensor"}],"encoding":"none","contentType":"json"}`)
	if a.Status != 400 || !strings.Contains(string(a.Payload), "127000") {
		t.Errorf("over the cap: status %d payload %.200s", a.Status, a.Payload)
	}
}

// TestEdgeTasks checks the upload task lifecycle and the agent's restart.
func TestEdgeTasks(t *testing.T) {
	t.Parallel()
	h, e := edgeHubForTest(t)
	start := func(sas string) string {
		a := invokeEdge(t, h, EdgeAgentModule, "UploadModuleLogs", `{"schemaVersion":"1.0","items":[{"id":".*"}],"encoding":"gzip","contentType":"json","sasUrl":`+fmt.Sprintf("%q", sas)+`}`)
		var task struct{ Status, Message, CorrelationID string }
		if err := json.Unmarshal(a.Payload, &task); err != nil || task.Status != TaskNotStarted || task.CorrelationID == "" {
			t.Fatalf("start: %s", a.Payload)
		}
		return task.CorrelationID
	}
	status := func(id string) (string, string) {
		a := invokeEdge(t, h, EdgeAgentModule, "GetTaskStatus", `{"schemaVersion":"1.0","correlationId":"`+id+`"}`)
		var task struct{ Status, Message, CorrelationID string }
		if err := json.Unmarshal(a.Payload, &task); err != nil || task.CorrelationID != id {
			t.Fatalf("status: %s", a.Payload)
		}
		return task.Status, task.Message
	}
	good := start("https://acct.blob.core.windows.net/c?sv=1&sig=SIG")
	bad := start("https://acct.blob.core.windows.net/c?sv=1")
	for _, want := range []string{TaskRunning, TaskCompleted, TaskCompleted} {
		if got, _ := status(good); got != want {
			t.Errorf("good task: %s, want %s", got, want)
		}
	}
	status(bad)
	if got, msg := status(bad); got != TaskFailed || msg == "" || strings.Contains(msg, "acct") {
		t.Errorf("bad task: %s %q, want Failed with a message that does not quote the URL", got, msg)
	}
	e.RestartAgent()
	if got, _ := status(good); got != TaskUnknown {
		t.Errorf("after a restart: %s, want Unknown", got)
	}
}
