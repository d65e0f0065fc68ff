package iothub_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/service"
)

// MayHaveRun is the question to ask before repeating a reboot. A device
// that is offline never got the call, and neither did a call the SDK
// refused before sending; a lost answer (504101) leaves the outcome
// unknown, and here the device did run it.
func ExampleMayHaveRun() {
	hub := iothubtest.New(nil)
	defer hub.Close()
	hub.AddDevice("dev-ok", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, nil)})
	hub.AddDevice("dev-offline", &iothubtest.DeviceOptions{Offline: true})
	hub.AddDevice("dev-lost", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, nil)})
	hub.AddFault(iothubtest.LostAnswers("dev-lost", ""))

	client, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, id := range []string{"dev-ok", "dev-offline", "dev-lost", "bad id?"} {
		_, err := client.InvokeDeviceMethod(context.Background(), id, service.MethodParams[any]{Name: "reboot"}, nil)
		fmt.Printf("%s: may have run %v, delivered %d\n", id, iothub.MayHaveRun(err), hub.Deliveries(id, "", "reboot"))
	}
	// Output:
	// dev-ok: may have run true, delivered 1
	// dev-offline: may have run false, delivered 0
	// dev-lost: may have run true, delivered 1
	// bad id?: may have run false, delivered 0
}

// An *Error carries the hub's answer: the HTTP status, the six-digit code
// and its name, and the attempts made. errors.Is matches the sentinel of
// its code and whether it was delivered.
func ExampleError() {
	hub := iothubtest.New(nil)
	defer hub.Close()

	client, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = client.InvokeDeviceMethod(context.Background(), "no-such-device", service.MethodParams[any]{Name: "reboot"}, nil)
	if e, ok := errors.AsType[*iothub.Error](err); ok {
		fmt.Println(e.StatusCode, e.Code, e.Attempts)
	}
	fmt.Println(errors.Is(err, iothub.ErrDeviceNotFound), errors.Is(err, iothub.ErrNotDelivered))
	// Output:
	// 404 404001 DeviceNotFound 1
	// true true
}

// An *ArgumentError is the SDK refusing an argument before anything is
// sent; it names the field and the rule.
func ExampleArgumentError() {
	hub := iothubtest.New(nil)
	defer hub.Close()

	client, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = client.InvokeDeviceMethod(context.Background(), "dev-1", service.MethodParams[any]{Name: "reboot", TimeoutInSeconds: 1}, nil)
	if ae, ok := errors.AsType[*iothub.ArgumentError](err); ok {
		fmt.Println(ae.Field)
	}
	fmt.Println("requests sent:", len(hub.Requests()))
	// Output:
	// MethodParams.TimeoutInSeconds
	// requests sent: 0
}
