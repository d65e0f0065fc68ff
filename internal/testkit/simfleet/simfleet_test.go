package simfleet_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/internal/testkit/simfleet"
)

// TestAdd checks that Add registers exactly the devices DeviceIDs names,
// with the troubles TroubleOf gives and an $edgeAgent on each Edge device.
func TestAdd(t *testing.T) {
	t.Parallel()
	opts := &simfleet.Options{Fleet: 30, Troubled: true, Edge: 2, SlowLatency: time.Second}
	h := httpmock.New(nil)
	simfleet.Add(h, opts)
	want := slices.Sorted(slices.Values(simfleet.DeviceIDs(opts)))
	if diff := cmp.Diff(want, h.DeviceIDs()); diff != "" {
		t.Errorf("registered devices (-want +got):\n%s", diff)
	}
	if n := len(simfleet.DeviceIDs(opts)); n != 6+30+2 {
		t.Errorf("DeviceIDs: %d ids, want 38", n)
	}
	for i := 1; i <= opts.Fleet; i++ {
		d := h.Device(simfleet.FleetID(i))
		if online := simfleet.TroubleOf(i) != simfleet.Offline; d.Online() != online {
			t.Errorf("%s (%v): online %v, want %v", d.ID(), simfleet.TroubleOf(i), d.Online(), online)
		}
	}
	for _, id := range []string{simfleet.EdgeDevice, simfleet.EdgeID(1), simfleet.EdgeID(2)} {
		if d := h.Device(id); d == nil || d.Module(simfleet.EdgeAgent) == nil {
			t.Errorf("Edge device %s: no %s module", id, simfleet.EdgeAgent)
		}
	}
}

// TestTroubleOf pins the trouble pattern the example programs' tests count
// on.
func TestTroubleOf(t *testing.T) {
	t.Parallel()
	got := map[simfleet.Trouble]int{}
	for i := 1; i <= 100; i++ {
		got[simfleet.TroubleOf(i)]++
	}
	want := map[simfleet.Trouble]int{simfleet.Fine: 71, simfleet.Offline: 10, simfleet.Failing: 10, simfleet.Slow: 5, simfleet.LosesResponse: 4}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("troubles of devices 1 to 100 (-want +got):\n%s", diff)
	}
}
