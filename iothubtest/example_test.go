package iothubtest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/registry"
	"github.com/hubkit/iothub/service"
)

// A device whose "reboot" method is a Go function, invoked through
// service.Client over the in-process transport.
func Example() {
	hub := iothubtest.New(nil)
	defer hub.Close()
	dev := hub.AddDevice("dev-1", nil)
	dev.HandleMethod("reboot", func(_ context.Context, call iothubtest.MethodCall) iothubtest.MethodResponse {
		return iothubtest.MethodResponse{Status: 200, Payload: map[string]any{"rebooting": true, "payload": call.Payload}}
	})

	client, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := client.InvokeDeviceMethod(context.Background(), "dev-1", service.MethodParams[any]{
		Name:    "reboot",
		Payload: map[string]int{"delay": 5},
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Status, string(res.Payload))
	fmt.Println("delivered:", hub.Deliveries("dev-1", "", "reboot"))
	// Output:
	// 200 {"payload":{"delay":5},"rebooting":true}
	// delivered: 1
}

// A fault: the device runs the method, but the hub loses its answer. The
// caller gets 504101 and must assume the method may have run, as it did.
func ExampleHub_AddFault() {
	hub := iothubtest.New(nil)
	defer hub.Close()
	hub.AddDevice("dev-1", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, nil)})
	hub.AddFault(iothubtest.LostAnswers("dev-1", ""))

	client, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = client.InvokeDeviceMethod(context.Background(), "dev-1", service.MethodParams[any]{Name: "reboot"}, nil)
	var e *iothub.Error
	if errors.As(err, &e) {
		fmt.Println("code:", e.Code)
	}
	fmt.Println("may have run:", iothub.MayHaveRun(err))
	fmt.Println("delivered:", hub.Deliveries("dev-1", "", "reboot"))
	// Output:
	// code: 504101 GatewayTimeout
	// may have run: true
	// delivered: 1
}

// Exactly once: a throttled call (429) is not delivered, so the client
// retries it, and the device still runs it once.
func ExampleHub_Deliveries() {
	hub := iothubtest.New(nil)
	defer hub.Close()
	hub.AddDevice("dev-1", &iothubtest.DeviceOptions{Handler: iothubtest.Echo()})
	hub.AddFault(iothubtest.Fault{DeviceID: "dev-1", Method: "reboot", Code: iothub.ErrorCodeThrottlingException})

	client, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := client.InvokeDeviceMethod(context.Background(), "dev-1", service.MethodParams[any]{Name: "reboot"}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("status:", res.Status)
	fmt.Println("requests:", len(hub.Requests()))
	fmt.Println("delivered:", hub.Deliveries("dev-1", "", "reboot"))
	// Output:
	// status: 200
	// requests: 2
	// delivered: 1
}

// A raw net/http request, as another SDK or curl would send it: the hub
// wants the real path, api-version, a SAS token and a JSON body.
func ExampleHub_RoundTripper() {
	hub := iothubtest.New(nil)
	defer hub.Close()
	hub.AddDevice("dev-1", &iothubtest.DeviceOptions{Handler: iothubtest.Echo()})
	client := &http.Client{Transport: hub.RoundTripper()}

	send := func(auth string) {
		req, err := http.NewRequest(http.MethodPost,
			"https://"+hub.HostName()+"/twins/dev-1/methods?api-version=2021-04-12",
			strings.NewReader(`{"methodName":"ping","responseTimeoutInSeconds":10,"payload":{"n":1}}`))
		if err != nil {
			fmt.Println(err)
			return
		}
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			fmt.Println(resp.StatusCode, resp.Header.Get("iothub-errorcode"))
			return
		}
		fmt.Println(resp.StatusCode, string(body))
	}
	send("")
	send(hub.SASToken(iothubtest.PolicyService))
	// Output:
	// 401 IotHubUnauthorizedAccess
	// 200 {"status":200,"payload":{"n":1}}
}

// Seed a twin, let the code under test change it through registry.Client,
// and read back what it did.
func ExampleHub_Twin() {
	hub := iothubtest.New(nil)
	defer hub.Close()
	hub.AddDevice("dev-1", &iothubtest.DeviceOptions{
		Tags:    map[string]any{"ring": "canary"},
		Desired: map[string]any{"interval": 60},
	})

	reg, err := registry.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	// The code under test:
	_, err = reg.UpdateTwin(context.Background(), "dev-1", registry.TwinPatch{
		Desired: map[string]any{"interval": 30, "firmware": "2.0"},
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}

	tw, _ := hub.Twin("dev-1")
	fmt.Println(tw.Tags["ring"], tw.Desired["interval"], tw.Desired["firmware"], tw.DesiredVersion)
	// Output:
	// canary 30 2.0 3
}
