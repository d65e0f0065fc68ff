package service_test

import (
	"context"
	"fmt"
	"log"
	"slices"
	"time"

	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/service"
)

func ExampleClient_ScheduleMethodJob() {
	hub := iothubtest.New(&iothubtest.Options{JobDeviceOpsPerSecond: 1000})
	defer hub.Close()
	hub.AddDevice("dev-1", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, map[string]bool{"rebooting": true})})
	hub.AddDevice("dev-2", &iothubtest.DeviceOptions{Offline: true})
	hub.AddDevice("dev-3", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(500, map[string]string{"error": "busy"})})

	// Jobs need the iothubowner policy (or IoT Hub Data Contributor).
	client, err := service.NewClientFromConnectionString(hub.ConnectionStringFor(iothubtest.PolicyIoTHubOwner), hub.ClientOptions())
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	_, err = client.ScheduleMethodJob(ctx, "reboot-1", service.MethodJob{
		Method:    service.MethodParams[any]{Name: "reboot", Payload: map[string]int{"delay": 5}},
		DeviceIDs: []string{"dev-1", "dev-2", "dev-3"},
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	job, err := client.WaitJob(ctx, "reboot-1", &service.WaitOptions{MinPollInterval: 10 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("job", job.Status)

	var lines []string
	for r, err := range client.JobDeviceResults(ctx, "reboot-1", nil) {
		if err != nil {
			log.Fatal(err)
		}
		line := fmt.Sprintf("%s: %s", r.DeviceID, r.Outcome)
		if r.Response != nil {
			line += fmt.Sprintf(" (status %d)", r.Response.Status)
		}
		if r.ErrorName != "" {
			line += " (" + r.ErrorName + ")"
		}
		lines = append(lines, line)
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// job completed
	// dev-1: succeeded (status 200)
	// dev-2: not-delivered (DeviceNotOnline)
	// dev-3: device-error (status 500)
}

// A cancelled job stops starting calls, but the calls it had started run
// to their end. WaitForRunningCalls waits for them, so the device results
// tell how each ended instead of "running" (unknown).
func ExampleClient_WaitJob_waitForRunningCalls() {
	// One device operation every 5 s: dev-1 is called at once, dev-2 not
	// before the job is cancelled.
	hub := iothubtest.New(&iothubtest.Options{JobDeviceOpsPerSecond: 0.2})
	defer hub.Close()
	hub.AddDevice("dev-1", &iothubtest.DeviceOptions{Latency: 200 * time.Millisecond, Handler: iothubtest.Answer(200, nil)})
	hub.AddDevice("dev-2", &iothubtest.DeviceOptions{Handler: iothubtest.Answer(200, nil)})
	client, err := service.NewClientFromConnectionString(hub.ConnectionStringFor(iothubtest.PolicyIoTHubOwner), hub.ClientOptions())
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	_, err = client.ScheduleMethodJob(ctx, "reboot-2", service.MethodJob{
		Method:    service.MethodParams[any]{Name: "reboot"},
		DeviceIDs: []string{"dev-1", "dev-2"},
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	for { // until the job has reached dev-1
		job, err := client.GetJob(ctx, "reboot-2", nil)
		if err != nil {
			log.Fatal(err)
		}
		if s := job.Statistics; s != nil && s.RunningCount+s.SucceededCount > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := client.CancelJob(ctx, "reboot-2", nil); err != nil {
		log.Fatal(err)
	}

	// Give the wait a deadline: nothing else bounds it.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	job, err := client.WaitJob(ctx, "reboot-2", &service.WaitOptions{MinPollInterval: 50 * time.Millisecond, WaitForRunningCalls: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("job", job.Status)
	for r, err := range client.JobDeviceResults(ctx, "reboot-2", nil) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %s %s\n", r.DeviceID, r.Status, r.Outcome)
	}
	// Output:
	// job cancelled
	// dev-1: completed succeeded
	// dev-2: canceled not-delivered
}
