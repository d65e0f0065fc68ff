package edge_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/hubkit/iothub/edge"
	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/service"
)

// exampleClient starts a fake hub with the Edge device "edge-1" running
// tempSensor, and returns an edge client on it.
func exampleClient() (*edge.Client, func()) {
	hub := iothubtest.New(nil)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	hub.AddDevice("edge-1", &iothubtest.DeviceOptions{EdgeRuntime: &iothubtest.EdgeOptions{
		Modules: []string{"tempSensor"},
		Logs: map[string][]iothubtest.LogLine{"tempSensor": {
			{Time: t0, LogLevel: 6, Text: "sensor started"},
			{Time: t0.Add(time.Minute), LogLevel: 3, Stream: "stderr", Text: "read failed"},
		}},
	}})
	// In production: service.NewClientFromConnectionString(os.Getenv("IOTHUB_CONNECTION_STRING"), nil)
	svc, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		log.Fatal(err)
	}
	return edge.NewClient(svc), hub.Close
}

func ExampleClient_RestartModule() {
	ec, done := exampleClient()
	defer done()
	ctx := context.Background()
	fmt.Println(ec.RestartModule(ctx, "edge-1", "tempSensor", nil))

	err := ec.RestartModule(ctx, "edge-1", "nothere", nil)
	if ae, ok := errors.AsType[*edge.AgentError](err); ok {
		fmt.Println(ae.Status, ae.Message)
	}
	// Output:
	// <nil>
	// 500 Module nothere not found in the current environment
}

func ExampleClient_GetModuleLogs() {
	ec, done := exampleClient()
	defer done()
	logs, err := ec.GetModuleLogs(context.Background(), "edge-1", edge.LogsRequest{
		Items: []edge.LogsItem{{ID: "tempSensor", Filter: edge.LogFilter{Tail: 10}}},
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range logs {
		for _, l := range m.Lines {
			fmt.Println(l.Timestamp.Format(time.RFC3339), m.ModuleID, l.LogLevel, l.Stream, l.Text)
		}
	}
	// Output:
	// 2026-03-01T12:00:00Z tempSensor 6 stdout sensor started
	// 2026-03-01T12:01:00Z tempSensor 3 stderr read failed
}

func ExampleClient_WaitTask() {
	ec, done := exampleClient()
	defer done()
	ctx := context.Background()
	task, err := ec.UploadModuleLogs(ctx, "edge-1", edge.UploadLogsRequest{
		LogsRequest: edge.LogsRequest{Items: []edge.LogsItem{{ID: ".*"}}},
		SASURL:      "https://account.blob.core.windows.net/logs?sv=2024-01-01&sp=w&sig=signature",
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(task.Status)
	task, err = ec.WaitTask(ctx, "edge-1", task.CorrelationID, &edge.WaitOptions{MinPollInterval: 10 * time.Millisecond})
	switch {
	case errors.Is(err, edge.ErrTaskLost):
		fmt.Println("the agent restarted and forgot the upload; start it again")
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println(task.Status)
	}
	// Output:
	// NotStarted
	// Completed
}
