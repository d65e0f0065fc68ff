package digitaltwin_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/digitaltwin"
	"github.com/hubkit/iothub/iothubtest"
)

// exampleHub returns a fake hub with one Plug and Play device that has
// reported its serial number and acknowledged a target temperature on its
// thermostat1 component, and a client for it. In production:
// digitaltwin.NewClientFromConnectionString(os.Getenv("IOTHUB_CONNECTION_STRING"), nil).
func exampleHub() *digitaltwin.Client {
	hub := iothubtest.New(nil)
	dev := hub.AddDevice("controller-1", &iothubtest.DeviceOptions{ModelID: "dtmi:com:example:TemperatureController;1"})
	err := dev.SetReported(map[string]any{
		"serialNumber": "SN-0042",
		"thermostat1": map[string]any{
			"__t":                    "c", // the Plug and Play component marker
			"maxTempSinceLastReboot": 25.3,
			"targetTemperature":      map[string]any{"value": 20.5, "ac": 200, "av": 1, "ad": "done"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	client, err := digitaltwin.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		log.Fatal(err)
	}
	return client
}

func ExampleClient_Get() {
	ctx := context.Background()
	client := exampleHub()

	twin, err := client.Get(ctx, "controller-1", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(twin.ID, twin.ModelID)
	fmt.Println("serialNumber:", string(twin.Properties["serialNumber"]))
	th := twin.Components["thermostat1"]
	md := th.Metadata["targetTemperature"]
	fmt.Println("thermostat1.targetTemperature:", string(th.Properties["targetTemperature"]), "ack", md.AckCode, md.AckDescription)
	// Output:
	// controller-1 dtmi:com:example:TemperatureController;1
	// serialNumber: "SN-0042"
	// thermostat1.targetTemperature: 20.5 ack 200 done
}

func ExampleClient_Update() {
	ctx := context.Background()
	client := exampleHub()
	twin, err := client.Get(ctx, "controller-1", nil)
	if err != nil {
		log.Fatal(err)
	}

	var patch digitaltwin.Patch
	patch.AddComponentProperty("thermostat1", "targetTemperature", 22.5)
	patch.AddProperty("fanSpeed", 3)
	// Conditional on the twin being unchanged since it was read.
	if _, err := client.Update(ctx, "controller-1", patch, &digitaltwin.UpdateOptions{IfMatch: twin.ETag}); err != nil {
		log.Fatal(err)
	}

	read := twin.ETag
	twin, err = client.Get(ctx, "controller-1", nil)
	if err != nil {
		log.Fatal(err)
	}
	md := twin.Components["thermostat1"].Metadata["targetTemperature"]
	fmt.Println("desired", string(md.DesiredValue), "version", md.DesiredVersion, "acknowledged", md.AckVersion)

	// The ETag read before the update is stale now.
	_, err = client.Update(ctx, "controller-1", patch, &digitaltwin.UpdateOptions{IfMatch: read})
	fmt.Println(errors.Is(err, iothub.ErrPreconditionFailed))

	// A patch that breaks a rule is refused before anything is sent.
	var bad digitaltwin.Patch
	bad.AddProperty("schedule", []int{8, 12, 18})
	_, err = client.Update(ctx, "controller-1", bad, nil)
	fmt.Println(err)
	// Output:
	// desired 22.5 version 2 acknowledged 1
	// true
	// iothub: Update: invalid Patch[0].value: must not be an array: digital twin properties hold no arrays
}
