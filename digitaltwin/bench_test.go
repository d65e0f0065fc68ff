package digitaltwin_test

import (
	"testing"

	"github.com/hubkit/iothub/digitaltwin"
	"github.com/hubkit/iothub/iothubtest"
)

// benchHub returns the in-process fake hub with one Plug and Play device,
// a temperature controller with a root property and two thermostat
// components as in IoT Hub's documentation sample, and a client wired to
// it. The hub keeps one request, so a long run does not grow its record.
func benchHub(b *testing.B) *digitaltwin.Client {
	b.Helper()
	hub := iothubtest.New(&iothubtest.Options{MaxRecorded: 1})
	b.Cleanup(hub.Close)
	dev := hub.AddDevice("controller-1", &iothubtest.DeviceOptions{ModelID: "dtmi:com:example:TemperatureController;1"})
	thermostat := func(target float64) map[string]any {
		return map[string]any{
			"__t":                    "c",
			"targetTemperature":      map[string]any{"value": target, "ac": 200, "av": 1, "ad": "done"},
			"maxTempSinceLastReboot": 25.3,
		}
	}
	if err := dev.SetReported(map[string]any{
		"serialNumber": "SN-0042",
		"thermostat1":  thermostat(20.5),
		"thermostat2":  thermostat(19),
	}); err != nil {
		b.Fatal(err)
	}
	client, err := digitaltwin.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		b.Fatal(err)
	}
	return client
}

// BenchmarkGet is one Client.Get of a small digital twin (two components,
// five properties) against the in-process fake hub: the request through
// the pipeline, the hub's view of the twin, and decoding it.
func BenchmarkGet(b *testing.B) {
	client := benchHub(b)
	b.ReportAllocs()
	for b.Loop() {
		twin, err := client.Get(b.Context(), "controller-1", nil)
		if err != nil {
			b.Fatal(err)
		}
		if len(twin.Components) != 2 {
			b.Fatalf("%d components, want 2", len(twin.Components))
		}
	}
}

// BenchmarkUpdate is one Client.Update of a one-operation patch (a
// component property's desired value) against the in-process fake hub. It
// alternates between two values, so every update changes the twin.
func BenchmarkUpdate(b *testing.B) {
	client := benchHub(b)
	var patches [2]digitaltwin.Patch
	patches[0].ReplaceComponentProperty("thermostat1", "targetTemperature", 22.5)
	patches[1].ReplaceComponentProperty("thermostat1", "targetTemperature", 23)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Update(b.Context(), "controller-1", patches[i%2], nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkPatchEncode is the Patch builder's validation and encoding
// alone (MarshalJSON, what Update does before sending), without I/O: a
// one-operation patch, and a whole-component patch with a nested object
// value.
func BenchmarkPatchEncode(b *testing.B) {
	var small digitaltwin.Patch
	small.ReplaceComponentProperty("thermostat1", "targetTemperature", 22.5)
	var component digitaltwin.Patch
	component.ReplaceComponent("thermostat1", map[string]any{
		"targetTemperature": 22.5,
		"mode":              "eco",
		"schedule":          map[string]any{"weekday": map[string]any{"from": "07:00", "to": "22:00"}, "weekend": map[string]any{"from": "09:00", "to": "23:00"}},
	})
	component.RemoveProperty("label")
	for _, bc := range []struct {
		name  string
		patch *digitaltwin.Patch
	}{
		{"property", &small},
		{"component", &component},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.patch.MarshalJSON(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
