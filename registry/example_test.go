package registry_test

import (
	"context"
	"fmt"
	"log"

	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/registry"
)

// exampleClient returns a registry client for a fresh fake hub, signed with
// the iothubowner policy (registry writes need RegistryWrite). In
// production: registry.NewClientFromConnectionString(os.Getenv("IOTHUB_CONNECTION_STRING"), nil).
func exampleClient() *registry.Client {
	hub := iothubtest.New(nil)
	client, err := registry.NewClientFromConnectionString(hub.ConnectionStringFor(iothubtest.PolicyIoTHubOwner), hub.ClientOptions())
	if err != nil {
		log.Fatal(err)
	}
	return client
}

func ExampleClient_CreateDevice() {
	ctx := context.Background()
	client := exampleClient()

	d, err := client.CreateDevice(ctx, registry.Device{DeviceID: "dev-1"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.DeviceID, d.Status, d.Authentication.Type, d.Authentication.SymmetricKey.PrimaryKey != "")

	got, err := client.GetDevice(ctx, "dev-1", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got.ETag == d.ETag, got.ConnectionState)
	// Output:
	// dev-1 enabled sas true
	// true Disconnected
}

func ExampleClient_UpdateTwin() {
	ctx := context.Background()
	client := exampleClient()
	if _, err := client.CreateDevice(ctx, registry.Device{DeviceID: "dev-1"}, nil); err != nil {
		log.Fatal(err)
	}
	twin, err := client.UpdateTwin(ctx, "dev-1", registry.TwinPatch{
		Tags:    map[string]any{"plant": "3"},
		Desired: map[string]any{"telemetryInterval": 30},
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(twin.Tags["plant"], twin.Properties.Desired["telemetryInterval"])

	// Conditional on the twin being unchanged since we read it; nil removes a key.
	twin, err = client.UpdateTwin(ctx, "dev-1", registry.TwinPatch{
		Desired: map[string]any{"telemetryInterval": nil},
	}, &registry.WriteOptions{IfMatch: twin.ETag})
	if err != nil {
		log.Fatal(err)
	}
	_, still := twin.Properties.Desired["telemetryInterval"]
	fmt.Println(still)
	// Output:
	// 3 30
	// false
}

func ExampleClient_QueryTwins() {
	ctx := context.Background()
	client := exampleClient()
	for i := range 5 {
		id := fmt.Sprintf("dev-%d", i)
		if _, err := client.CreateDevice(ctx, registry.Device{DeviceID: id}, nil); err != nil {
			log.Fatal(err)
		}
		if _, err := client.UpdateTwin(ctx, id, registry.TwinPatch{Tags: map[string]any{"plant": fmt.Sprint(3 + i%2)}}, nil); err != nil {
			log.Fatal(err)
		}
	}
	for twin, err := range client.QueryTwins(ctx, "SELECT * FROM devices WHERE tags.plant = '3'", &registry.QueryOptions{PageSize: 2}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(twin.DeviceID)
	}
	// Output:
	// dev-0
	// dev-2
	// dev-4
}
