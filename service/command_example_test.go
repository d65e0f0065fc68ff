package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"slices"
	"time"

	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/service"
)

// pnpHub starts a fake hub with Plug and Play temperature controllers
// "tc-1" and "tc-2". A command reaches the device as a direct method: the
// root command "reboot" as "reboot", the command "getMaxMinReport" of the
// component "thermostat1" as "thermostat1*getMaxMinReport".
func pnpHub() *iothubtest.Hub {
	hub := iothubtest.New(nil)
	methods := map[string]iothubtest.MethodHandler{
		"reboot": iothubtest.Answer(200, map[string]bool{"rebooting": true}),
		"thermostat1*getMaxMinReport": func(_ context.Context, c iothubtest.MethodCall) iothubtest.MethodResponse {
			var since time.Time
			if err := json.Unmarshal(c.Payload, &since); err != nil {
				return iothubtest.MethodResponse{Status: 400, Payload: map[string]string{"error": "want a time"}}
			}
			return iothubtest.MethodResponse{Status: 200, Payload: map[string]any{"maxTemp": 31.5, "minTemp": 18.25, "startTime": since}}
		},
	}
	for _, id := range []string{"tc-1", "tc-2"} {
		hub.AddDevice(id, &iothubtest.DeviceOptions{ModelID: "dtmi:com:example:TemperatureController;2", Methods: methods})
	}
	return hub
}

func ExampleClient_InvokeCommand() {
	hub := pnpHub()
	defer hub.Close()
	client, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		log.Fatal(err)
	}
	// A root command: POST /digitaltwins/tc-1/commands/reboot.
	res, err := client.InvokeCommand(context.Background(), "tc-1", service.CommandParams[any]{Name: "reboot"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, string(res.Payload), res.RequestID != "")
	// Output: 200 {"rebooting":true} true
}

func ExampleInvokeCommand() {
	hub := pnpHub()
	defer hub.Close()
	client, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		log.Fatal(err)
	}
	type maxMinReport struct {
		MaxTemp   float64   `json:"maxTemp"`
		MinTemp   float64   `json:"minTemp"`
		StartTime time.Time `json:"startTime"`
	}
	// A component command, typed both ways:
	// POST /digitaltwins/tc-1/components/thermostat1/commands/getMaxMinReport.
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	res, err := service.InvokeCommand[maxMinReport](context.Background(), client, "tc-1", service.CommandParams[time.Time]{
		Component:        "thermostat1",
		Name:             "getMaxMinReport",
		Payload:          since,
		TimeoutInSeconds: 10,
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, res.Payload.MaxTemp, res.Payload.MinTemp, res.Payload.StartTime.Format(time.DateOnly))
	// Output: 200 31.5 18.25 2026-01-01
}

func ExampleCommandParams_Method() {
	hub := pnpHub()
	defer hub.Close()
	client, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		log.Fatal(err)
	}
	cmd := service.CommandParams[any]{Component: "thermostat1", Name: "getMaxMinReport", Payload: "2026-01-01T00:00:00Z"}
	if err := cmd.Validate(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(cmd.Method().Name)
	// A fleet of Plug and Play devices runs the command as a fleet runs a
	// method.
	fan, err := client.StartFanOut(context.Background(), service.Devices("tc-1", "tc-2"), cmd.Method(), nil)
	if err != nil {
		log.Fatal(err)
	}
	var lines []string
	for r := range fan.Results() {
		lines = append(lines, fmt.Sprint(r.DeviceID, " ", r.Outcome, " ", r.Status))
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// thermostat1*getMaxMinReport
	// tc-1 succeeded 200
	// tc-2 succeeded 200
}
