package service_test

import (
	"encoding/json"
	"errors"
	"iter"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/registry"
	"github.com/hubkit/iothub/service"
)

// seq yields items and then, when err is not nil, err.
func seq[T any](items []T, err error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for _, it := range items {
			if !yield(it, nil) {
				return
			}
		}
		if err != nil {
			var zero T
			yield(zero, err)
		}
	}
}

// collectTargets reads a target sequence to its end.
func collectTargets(targets iter.Seq2[service.Target, error]) ([]service.Target, []error) {
	var got []service.Target
	var errs []error
	for tg, err := range targets {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		got = append(got, tg)
	}
	return got, errs
}

func TestTargetsOf(t *testing.T) {
	t.Parallel()
	broken := errors.New("page 2 lost")
	tests := []struct {
		name    string
		targets iter.Seq2[service.Target, error]
		want    []service.Target
		wantErr error
	}{
		{
			name: "device and module twins",
			targets: service.TargetsOf(seq([]registry.Twin{
				{DeviceID: "d1"}, {DeviceID: "d2", ModuleID: "$edgeAgent"}, {DeviceID: "d3"},
			}, nil)),
			want: []service.Target{{DeviceID: "d1"}, {DeviceID: "d2", ModuleID: "$edgeAgent"}, {DeviceID: "d3"}},
		},
		{
			name:    "devices",
			targets: service.TargetsOf(seq([]registry.Device{{DeviceID: "d1"}, {DeviceID: "d2"}}, nil)),
			want:    []service.Target{{DeviceID: "d1"}, {DeviceID: "d2"}},
		},
		{
			name:    "modules",
			targets: service.TargetsOf(seq([]registry.Module{{DeviceID: "d1", ModuleID: "m1"}}, nil)),
			want:    []service.Target{{DeviceID: "d1", ModuleID: "m1"}},
		},
		{
			name:    "error after a page",
			targets: service.TargetsOf(seq([]registry.Twin{{DeviceID: "d1"}}, broken)),
			want:    []service.Target{{DeviceID: "d1"}},
			wantErr: broken,
		},
		{
			name:    "empty",
			targets: service.TargetsOf(seq[registry.Twin](nil, nil)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, errs := collectTargets(tt.targets)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("targets (-want +got):\n%s", diff)
			}
			switch {
			case tt.wantErr == nil && len(errs) != 0:
				t.Errorf("errors %v, want none", errs)
			case tt.wantErr != nil && (len(errs) != 1 || !errors.Is(errs[0], tt.wantErr)):
				t.Errorf("errors %v, want %v once", errs, tt.wantErr)
			}
		})
	}
}

// TestTargetsOfStopsEarly checks that a consumer that stops reading stops
// the source: no item is read beyond the one the consumer took last.
func TestTargetsOfStopsEarly(t *testing.T) {
	t.Parallel()
	read := 0
	twins := func(yield func(registry.Twin, error) bool) {
		for _, id := range []string{"a", "b", "c"} {
			read++
			if !yield(registry.Twin{DeviceID: id}, nil) {
				return
			}
		}
	}
	for tg := range service.TargetsOf(twins) {
		if tg.DeviceID == "b" {
			break
		}
	}
	if read != 2 {
		t.Errorf("read %d twins, want 2", read)
	}
}

// TestFanOutOverQueryTwins runs a method on the result of a registry query
// of module twins, through TargetsOf, against the fake hub.
func TestFanOutOverQueryTwins(t *testing.T) {
	t.Parallel()
	hub, client := setup(t, nil)
	hub.AddDevice("d1", nil).AddModule("mA").SetDefaultHandler(echo)
	hub.AddDevice("d2", nil).AddModule("mA").SetDefaultHandler(echo)
	hub.AddDevice("d3", nil) // no module: not a target
	reg, err := registry.NewClientFromConnectionString(hub.ConnectionString("iothubowner"), &iothub.ClientOptions{Transport: hub.RoundTripper()})
	if err != nil {
		t.Fatal(err)
	}
	twins := reg.QueryTwins(t.Context(), "SELECT * FROM devices.modules", &registry.QueryOptions{PageSize: 1})
	run, err := client.StartFanOut(t.Context(), service.TargetsOf(twins), service.MethodParams[any]{Name: "ping", Payload: json.RawMessage(`{}`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for r := range run.Results() {
		if r.Outcome != service.OutcomeSucceeded {
			t.Errorf("%v: %s %v", r.Target, r.Outcome, r.Err)
		}
		got = append(got, r.DeviceID+"/"+r.ModuleID)
	}
	if err := run.Err(); err != nil {
		t.Errorf("run.Err() = %v", err)
	}
	slices.Sort(got)
	if diff := cmp.Diff([]string{"d1/mA", "d2/mA"}, got); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
}
