package service_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"os"
	"sort"
	"strings"

	"github.com/hubkit/iothub/service"
)

// A fan-out's results written to a file as they arrive: those that are
// ready together go out with one write, and none waits for a call still
// running, so the file is complete up to the last result read whenever
// the program waits for the hub.
func ExampleFanOut_Buffered() {
	hub := exampleHub()
	defer hub.Close()
	client, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		log.Fatal(err)
	}
	defer client.CloseIdleConnections()

	f, err := os.CreateTemp("", "results-*.txt")
	if err != nil {
		log.Fatal(err)
	}
	defer os.Remove(f.Name())
	w := bufio.NewWriter(f)
	fan, err := client.StartFanOut(context.Background(), service.Devices("dev-1", "dev-offline"), service.MethodParams[any]{Name: "reboot"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	for r := range fan.Results() {
		fmt.Fprintln(w, r.DeviceID, r.Outcome)
		if fan.Buffered() == 0 { // nothing else ready: write what is held
			if err := w.Flush(); err != nil {
				log.Fatal(err)
			}
		}
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	data, err := os.ReadFile(f.Name())
	if err != nil {
		log.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	sort.Strings(lines)
	fmt.Println(strings.Join(lines, "\n"))
	// Output:
	// dev-1 succeeded
	// dev-offline not-delivered
}
