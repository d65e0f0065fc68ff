package service_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/service"
)

func TestStatistics(t *testing.T) {
	t.Parallel()
	hub, client := setupJobs(t, nil) // statistics need RegistryRead, which the "service" policy lacks
	hub.AddDevice("a", nil)
	hub.AddDevice("b", &httpmock.DeviceOptions{Disabled: true})
	hub.AddDevice("c", &httpmock.DeviceOptions{Offline: true})
	got, err := client.GetStatistics(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(service.Statistics{ConnectedDeviceCount: 2}, got); diff != "" {
		t.Errorf("service stats (-want +got):\n%s", diff)
	}
}
