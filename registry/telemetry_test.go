package registry_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/registry"
)

// TestTelemetry checks that registry operations get the pipeline's spans
// as invocations do: one operation span per call, named after it, with an
// HTTP attempt span as its child, and one per page of a query.
func TestTelemetry(t *testing.T) {
	t.Parallel()
	hub := iothubtest.New(nil)
	defer hub.Close()
	for _, id := range []string{"dev-1", "dev-2", "dev-3"} {
		hub.AddDevice(id, nil)
	}
	rec := tracetest.NewSpanRecorder()
	opts := hub.ClientOptions()
	opts.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	c, err := registry.NewClientFromConnectionString(hub.ConnectionStringFor(iothubtest.PolicyIoTHubOwner), opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetDevice(t.Context(), "dev-2", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetDevice(t.Context(), "nobody", nil); err == nil {
		t.Fatal("GetDevice(nobody): nil error")
	}
	n := 0
	for _, err := range c.QueryTwins(t.Context(), "SELECT * FROM devices", &registry.QueryOptions{PageSize: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("query yielded %d twins, want 3", n)
	}

	type got struct {
		Name, Operation, Device, Outcome, ErrorCode string
		Attempts                                    int // child spans
	}
	children := map[string]int{}
	for _, s := range rec.Ended() {
		if p := s.Parent(); p.IsValid() {
			children[p.SpanID().String()]++
		}
	}
	var spans []got
	for _, s := range rec.Ended() {
		if s.Parent().IsValid() {
			continue
		}
		g := got{Name: s.Name(), Attempts: children[s.SpanContext().SpanID().String()]}
		for _, a := range s.Attributes() {
			switch a.Key {
			case "iothub.operation":
				g.Operation = a.Value.String()
			case "iothub.device.id":
				g.Device = a.Value.String()
			case "iothub.outcome":
				g.Outcome = a.Value.String()
			case "iothub.error.code":
				g.ErrorCode = a.Value.String()
			}
		}
		spans = append(spans, g)
	}
	want := []got{
		{Name: "GetDevice", Operation: "GetDevice", Device: "dev-2", Outcome: "succeeded", Attempts: 1},
		{Name: "GetDevice", Operation: "GetDevice", Device: "nobody", Outcome: "not-delivered", ErrorCode: "404001", Attempts: 1},
		{Name: "Query", Operation: "Query", Outcome: "succeeded", Attempts: 1},
		{Name: "Query", Operation: "Query", Outcome: "succeeded", Attempts: 1},
	}
	if diff := cmp.Diff(want, spans); diff != "" {
		t.Errorf("root spans (-want +got):\n%s", diff)
	}
}
