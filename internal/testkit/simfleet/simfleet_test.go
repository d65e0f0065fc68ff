package simfleet_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/digitaltwin"
	"github.com/hubkit/iothub/internal/testkit/simfleet"
	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/registry"
	"github.com/hubkit/iothub/service"
)

// TestAdd checks that Add registers exactly the devices DeviceIDs names,
// that each fleet device behaves as the trouble TroubleOf gives it, and
// that each Edge device has an $edgeAgent that answers "ping".
func TestAdd(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		opts := &simfleet.Options{Fleet: 30, Troubled: true, Edge: 2, SlowLatency: time.Second}
		h := iothubtest.New(nil)
		defer h.Close()
		simfleet.Add(h, opts)
		want := slices.Sorted(slices.Values(simfleet.DeviceIDs(opts)))
		if diff := cmp.Diff(want, h.DeviceIDs()); diff != "" {
			t.Errorf("registered devices (-want +got):\n%s", diff)
		}
		if n := len(simfleet.DeviceIDs(opts)); n != 7+30+2 {
			t.Errorf("DeviceIDs: %d ids, want 39", n)
		}
		client, err := service.NewClientFromConnectionString(h.ConnectionString(), h.ClientOptions())
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= opts.Fleet; i++ {
			id := simfleet.FleetID(i)
			res, err := client.InvokeDeviceMethod(t.Context(), id, service.MethodParams[any]{Name: "getStatus"}, nil)
			got := describe(res.Status, err)
			wantOutcome := map[simfleet.Trouble]string{
				simfleet.Fine:          "status 200",
				simfleet.Slow:          "status 200",
				simfleet.Failing:       "status 500",
				simfleet.Offline:       "error 404103",
				simfleet.LosesResponse: "error 504101",
			}[simfleet.TroubleOf(i)]
			if got != wantOutcome {
				t.Errorf("getStatus on %s (%v): %s, want %s", id, simfleet.TroubleOf(i), got, wantOutcome)
			}
		}
		for _, id := range []string{simfleet.EdgeDevice, simfleet.EdgeID(1), simfleet.EdgeID(2)} {
			if d := h.Device(id); d == nil || d.Module(simfleet.EdgeAgent) == nil {
				t.Errorf("Edge device %s: no %s module", id, simfleet.EdgeAgent)
				continue
			}
			res, err := client.InvokeModuleMethod(t.Context(), id, simfleet.EdgeAgent, service.MethodParams[any]{Name: "ping"}, nil)
			if got := describe(res.Status, err); got != "status 200" {
				t.Errorf("ping on %s/%s: %s, want status 200", id, simfleet.EdgeAgent, got)
			}
		}
		// The Plug and Play device: its model, a component command and the
		// root command.
		reg, err := registry.NewClientFromConnectionString(h.ConnectionStringFor(iothubtest.PolicyIoTHubOwner), h.ClientOptions())
		if err != nil {
			t.Fatal(err)
		}
		if tw, err := reg.GetTwin(t.Context(), simfleet.PnPDevice, nil); err != nil || tw.ModelID != simfleet.PnPModelID {
			t.Errorf("twin of %s: model %q, %v; want model %s", simfleet.PnPDevice, tw.ModelID, err, simfleet.PnPModelID)
		}
		dt, err := digitaltwin.NewClientFromConnectionString(h.ConnectionStringFor(iothubtest.PolicyService), h.ClientOptions())
		if err != nil {
			t.Fatal(err)
		}
		twin, err := dt.Get(t.Context(), simfleet.PnPDevice, nil)
		if err != nil {
			t.Fatalf("digital twin of %s: %v", simfleet.PnPDevice, err)
		}
		gotView := map[string]string{"$model": twin.ModelID, "serialNumber": string(twin.Properties["serialNumber"])}
		for _, c := range []string{"thermostat1", "thermostat2"} {
			comp := twin.Components[c]
			gotView[c+"/targetTemperature"] = string(comp.Properties["targetTemperature"])
			gotView[c+"/targetTemperature ack"] = fmt.Sprint(comp.Metadata["targetTemperature"].AckCode)
			gotView[c+"/maxTempSinceLastReboot"] = string(comp.Properties["maxTempSinceLastReboot"])
		}
		wantView := map[string]string{
			"$model": simfleet.PnPModelID, "serialNumber": `"SIM-PNP-0001"`,
			"thermostat1/targetTemperature": "21.5", "thermostat1/targetTemperature ack": "203", "thermostat1/maxTempSinceLastReboot": "23.25",
			"thermostat2/targetTemperature": "19", "thermostat2/targetTemperature ack": "203", "thermostat2/maxTempSinceLastReboot": "20.5",
		}
		if diff := cmp.Diff(wantView, gotView); diff != "" {
			t.Errorf("digital twin of %s (-want +got):\n%s", simfleet.PnPDevice, diff)
		}
		report, err := client.InvokeCommand(t.Context(), simfleet.PnPDevice, service.CommandParams[any]{Component: "thermostat1", Name: "getMaxMinReport", Payload: "2026-02-01T00:00:00Z"}, nil)
		if err != nil || report.Status != 200 || !strings.Contains(string(report.Payload), `"startTime":"2026-02-01T00:00:00Z"`) {
			t.Errorf("getMaxMinReport on %s: %+v, %v", simfleet.PnPDevice, report, err)
		}
		bad, err := client.InvokeCommand(t.Context(), simfleet.PnPDevice, service.CommandParams[any]{Component: "thermostat2", Name: "getMaxMinReport", Payload: 5}, nil)
		if got := describe(bad.Status, err); got != "status 400" {
			t.Errorf("getMaxMinReport with a bad payload: %s, want status 400", got)
		}
		rb, err := client.InvokeCommand(t.Context(), simfleet.PnPDevice, service.CommandParams[any]{Name: "reboot"}, nil)
		if got := describe(rb.Status, err); got != "status 200" {
			t.Errorf("root command reboot: %s, want status 200", got)
		}
	})
}

// describe is what a call got: the device's status, or the hub's error
// code.
func describe(status int, err error) string {
	var herr *iothub.Error
	switch {
	case errors.As(err, &herr):
		return fmt.Sprintf("error %d", herr.Code)
	case err != nil:
		return err.Error()
	}
	return fmt.Sprintf("status %d", status)
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
