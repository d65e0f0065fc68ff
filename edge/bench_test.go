package edge_test

import (
	"context"
	"testing"

	"github.com/hubkit/iothub/edge"
	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/service"
)

// BenchmarkRestartModule is one RestartModule call against the in-process
// fake hub.
func BenchmarkRestartModule(b *testing.B) {
	hub := iothubtest.New(&iothubtest.Options{MaxRecorded: 1})
	defer hub.Close()
	hub.AddDevice("edge-1", &iothubtest.DeviceOptions{EdgeRuntime: &iothubtest.EdgeOptions{Modules: []string{"tempSensor"}}})
	svc, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		b.Fatal(err)
	}
	ec := edge.NewClient(svc)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := ec.RestartModule(ctx, "edge-1", "tempSensor", nil); err != nil {
			b.Fatal(err)
		}
	}
}
