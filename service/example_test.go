package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/service"
)

// exampleHub starts the fake hub the examples run against: device "dev-1"
// answers "reboot", "edge-1" is an IoT Edge device whose "$edgeAgent"
// module answers "RestartModule", and "dev-offline" is not connected. In
// your own tests, the same hub stands in for IoT Hub.
func exampleHub() *iothubtest.Hub {
	hub := iothubtest.New(nil)
	hub.AddDevice("dev-1", nil).HandleMethod("reboot",
		func(_ context.Context, c iothubtest.MethodCall) iothubtest.MethodResponse {
			var req struct {
				Delay int `json:"delay"`
			}
			_ = json.Unmarshal(c.Payload, &req)
			return iothubtest.MethodResponse{Status: 200, Payload: map[string]any{"rebooting": true, "delay": req.Delay}}
		})
	hub.AddDevice("edge-1", &iothubtest.DeviceOptions{EdgeRuntime: &iothubtest.EdgeOptions{Modules: []string{"tempSensor"}}})
	hub.AddDevice("dev-offline", &iothubtest.DeviceOptions{Offline: true})
	return hub
}

func ExampleNewClientFromConnectionString() {
	hub := exampleHub()
	defer hub.Close()
	// In production: service.NewClientFromConnectionString(os.Getenv("IOTHUB_CONNECTION_STRING"), nil)
	client, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.InvokeDeviceMethod(context.Background(), "dev-1", service.MethodParams[any]{
		Name:             "reboot",
		Payload:          map[string]int{"delay": 5},
		TimeoutInSeconds: 30,
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, string(res.Payload))
	// Output: 200 {"delay":5,"rebooting":true}
}

func ExampleNewClient() {
	hub := exampleHub()
	defer hub.Close()
	// In production: cred, err := azidentity.NewDefaultAzureCredential(nil), and
	// service.NewClient("myhub.azure-devices.net", cred, nil). The identity needs
	// the IoT Hub Data Contributor role.
	cred := hub.TokenCredential(iothubtest.RoleDataContributor)
	client, err := service.NewClient(hub.HostName(), cred, hub.ClientOptions())
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.InvokeDeviceMethod(context.Background(), "dev-1", service.MethodParams[any]{Name: "reboot"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, string(res.Payload))
	// Output: 200 {"delay":0,"rebooting":true}
}

func ExampleInvokeDevice() {
	hub := exampleHub()
	defer hub.Close()
	client, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		log.Fatal(err)
	}

	type RebootRequest struct {
		Delay int `json:"delay"`
	}
	type RebootStatus struct {
		Rebooting bool `json:"rebooting"`
		Delay     int  `json:"delay"`
	}
	res, err := service.InvokeDevice[RebootStatus](context.Background(), client, "dev-1",
		service.MethodParams[RebootRequest]{Name: "reboot", Payload: RebootRequest{Delay: 10}}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("status %d, rebooting %v in %ds\n", res.Status, res.Payload.Rebooting, res.Payload.Delay)
	// Output: status 200, rebooting true in 10s
}

func ExampleClient_InvokeModuleMethod() {
	hub := exampleHub()
	defer hub.Close()
	client, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.InvokeModuleMethod(context.Background(), "edge-1", "$edgeAgent", service.MethodParams[any]{
		Name:    "RestartModule",
		Payload: map[string]string{"schemaVersion": "1.0", "id": "tempSensor"},
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, string(res.Payload))
	// Output: 200 null
}

// Errors say whether the method may have run. A device that is not
// connected never got the call, so it is safe to try again later.
func Example_errorHandling() {
	hub := exampleHub()
	defer hub.Close()
	client, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		log.Fatal(err)
	}
	_, err = client.InvokeDeviceMethod(context.Background(), "dev-offline", service.MethodParams[any]{Name: "reboot"}, nil)
	switch {
	case err == nil:
		fmt.Println("the device answered")
	case !iothub.MayHaveRun(err):
		fmt.Println("not delivered; safe to retry later")
	default:
		fmt.Println("it may have run; check the device before repeating it")
	}
	if he, ok := errors.AsType[*iothub.Error](err); ok {
		fmt.Println(he.StatusCode, he.Code, errors.Is(err, iothub.ErrDeviceNotOnline))
	}

	_, err = client.InvokeDeviceMethod(context.Background(), "dev-1", service.MethodParams[any]{Name: "reboot", TimeoutInSeconds: 1}, nil)
	if ae, ok := errors.AsType[*iothub.ArgumentError](err); ok {
		fmt.Println("refused before sending:", ae.Field)
	}
	// Output:
	// not delivered; safe to retry later
	// 404 404103 DeviceNotOnline true
	// refused before sending: MethodParams.TimeoutInSeconds
}
