package registry_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/registry"
)

// setup returns a simulated hub and a registry client wired to it in
// process with the iothubowner policy.
func setup(t *testing.T) (*httpmock.Hub, *registry.Client) {
	t.Helper()
	hub := httpmock.New(nil)
	client, err := registry.NewClientFromConnectionString(hub.ConnectionString("iothubowner"),
		&iothub.ClientOptions{Transport: hub.RoundTripper(), Retry: iothub.RetryOptions{MinDelay: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return hub, client
}

func TestDeviceLifecycle(t *testing.T) {
	t.Parallel()
	hub, client := setup(t)
	ctx := t.Context()

	created, err := client.CreateDevice(ctx, registry.Device{DeviceID: "dev-1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if created.ETag == "" || created.Authentication == nil || created.Authentication.SymmetricKey == nil ||
		created.Authentication.SymmetricKey.PrimaryKey == "" || created.Status != registry.DeviceStatusEnabled {
		t.Errorf("created device lacks hub-generated fields: %+v", created)
	}
	req := hub.Requests()[0]
	if req.Method != "PUT" || req.Path != "/devices/dev-1" || req.Header.Get("If-Match") != "" {
		t.Errorf("create sent %s %s If-Match %q; want PUT without If-Match", req.Method, req.Path, req.Header.Get("If-Match"))
	}

	if _, err := client.CreateDevice(ctx, registry.Device{DeviceID: "dev-1"}, nil); !errors.Is(err, iothub.ErrConflict) || errors.Is(err, iothub.ErrOutcomeUnknown) {
		t.Errorf("second create: %v, want a plain conflict", err)
	}

	got, err := client.GetDevice(ctx, "dev-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(created.ETag, got.ETag); diff != "" {
		t.Errorf("etag (-created +got):\n%s", diff)
	}

	got.Status, got.StatusReason = registry.DeviceStatusDisabled, "maintenance"
	updated, err := client.UpdateDevice(ctx, got, nil)
	if err != nil {
		t.Fatal(err)
	}
	if updated.Status != registry.DeviceStatusDisabled || updated.ETag == got.ETag {
		t.Errorf("update: %+v", updated)
	}
	if im := hub.Requests()[len(hub.Requests())-1].Header.Get("If-Match"); im != `"`+got.ETag+`"` {
		t.Errorf("update If-Match = %q, want the device's quoted ETag", im)
	}

	// A stale ETag is refused; Force overrides it.
	if _, err := client.UpdateDevice(ctx, got, nil); !errors.Is(err, iothub.ErrPreconditionFailed) {
		t.Errorf("stale update: %v", err)
	}
	if _, err := client.UpdateDevice(ctx, got, &registry.WriteOptions{Force: true}); err != nil {
		t.Errorf("forced update: %v", err)
	}
	if err := client.DeleteDevice(ctx, "dev-1", &registry.WriteOptions{IfMatch: got.ETag}); !errors.Is(err, iothub.ErrPreconditionFailed) {
		t.Errorf("stale delete: %v", err)
	}
	if err := client.DeleteDevice(ctx, "dev-1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := client.GetDevice(ctx, "dev-1", nil); !errors.Is(err, iothub.ErrDeviceNotFound) {
		t.Errorf("get after delete: %v", err)
	}
	if err := client.DeleteDevice(ctx, "dev-1", nil); !errors.Is(err, iothub.ErrDeviceNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

func TestCreateVariants(t *testing.T) {
	t.Parallel()
	hub, client := setup(t)
	ctx := t.Context()
	edge, err := client.CreateDevice(ctx, registry.Device{DeviceID: "edge-1", Capabilities: &registry.Capabilities{IoTEdge: true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !edge.Capabilities.IoTEdge || !strings.HasPrefix(edge.DeviceScope, "ms-azure-iot-edge://edge-1-") {
		t.Errorf("edge device: %+v", edge)
	}
	keys := &registry.SymmetricKey{PrimaryKey: httpmock.NewKey(), SecondaryKey: httpmock.NewKey()}
	withKeys, err := client.CreateDevice(ctx, registry.Device{DeviceID: "k-1", Authentication: &registry.Authentication{SymmetricKey: keys}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(keys, withKeys.Authentication.SymmetricKey); diff != "" {
		t.Errorf("given keys (-want +got):\n%s", diff)
	}
	thumb := strings.Repeat("ab", 20)
	x509, err := client.CreateDevice(ctx, registry.Device{DeviceID: "x-1", Authentication: &registry.Authentication{X509Thumbprint: &registry.X509Thumbprint{PrimaryThumbprint: thumb, SecondaryThumbprint: thumb}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if x509.Authentication.Type != registry.AuthenticationTypeSelfSigned {
		t.Errorf("thumbprint device type %q", x509.Authentication.Type)
	}
	if n := len(hub.Requests()); n != 3 {
		t.Errorf("%d requests", n)
	}
}

func TestModules(t *testing.T) {
	t.Parallel()
	_, client := setup(t)
	ctx := t.Context()
	if _, err := client.CreateDevice(ctx, registry.Device{DeviceID: "edge-1"}, nil); err != nil {
		t.Fatal(err)
	}
	m, err := client.CreateModule(ctx, registry.Module{DeviceID: "edge-1", ModuleID: "tempSensor"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateModule(ctx, registry.Module{DeviceID: "edge-1", ModuleID: "tempSensor"}, nil); !errors.Is(err, iothub.ErrConflict) {
		t.Errorf("duplicate module: %v", err)
	}
	m.ManagedBy = "me"
	if _, err := client.UpdateModule(ctx, m, nil); err != nil {
		t.Errorf("update module: %v", err)
	}
	list, err := client.ListModules(ctx, "edge-1", nil)
	if err != nil || len(list) != 1 || list[0].ModuleID != "tempSensor" {
		t.Errorf("list: %+v, %v", list, err)
	}
	if err := client.DeleteModule(ctx, "edge-1", "tempSensor", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := client.GetModule(ctx, "edge-1", "tempSensor", nil); !errors.Is(err, iothub.ErrModuleNotFound) {
		t.Errorf("get deleted module: %v", err)
	}
}

func TestTwins(t *testing.T) {
	t.Parallel()
	hub, client := setup(t)
	ctx := t.Context()
	hub.AddDevice("d1", nil)
	tw, err := client.UpdateTwin(ctx, "d1", registry.TwinPatch{
		Tags:    map[string]any{"plant": "3", "location": map[string]any{"line": 2}},
		Desired: map[string]any{"interval": 30, "mode": "eco"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tw.Tags["plant"] != "3" || tw.Properties.Desired["interval"] != float64(30) {
		t.Errorf("patched twin: %+v", tw)
	}
	// null deletes; other keys stay.
	tw2, err := client.UpdateTwin(ctx, "d1", registry.TwinPatch{Desired: map[string]any{"mode": nil}}, &registry.WriteOptions{IfMatch: tw.ETag})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tw2.Properties.Desired["mode"]; ok || tw2.Properties.Desired["interval"] != float64(30) {
		t.Errorf("after null patch: %+v", tw2.Properties.Desired)
	}
	if _, err := client.UpdateTwin(ctx, "d1", registry.TwinPatch{Tags: map[string]any{"x": 1}}, &registry.WriteOptions{IfMatch: tw.ETag}); !errors.Is(err, iothub.ErrPreconditionFailed) {
		t.Errorf("stale twin etag: %v", err)
	}
	replaced, err := client.ReplaceTwin(ctx, "d1", registry.TwinPatch{Tags: map[string]any{"only": "this"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := replaced.Tags["plant"]; ok || replaced.Tags["only"] != "this" {
		t.Errorf("replace kept old tags: %+v", replaced.Tags)
	}
	got, err := client.GetTwin(ctx, "d1", nil)
	if err != nil || got.Tags["only"] != "this" {
		t.Errorf("get twin: %+v, %v", got.Tags, err)
	}

	before := len(hub.Requests())
	for _, bad := range []registry.TwinPatch{
		{Tags: map[string]any{"a": []any{1, 2}}},
		{Desired: map[string]any{"a.b": 1}},
		{Desired: map[string]any{"$x": 1}},
	} {
		_, err := client.UpdateTwin(ctx, "d1", bad, nil)
		if !errors.Is(err, iothub.ErrInvalidArgument) {
			t.Errorf("patch %v: %v", bad, err)
		}
	}
	if len(hub.Requests()) != before {
		t.Error("invalid patches were sent")
	}

	hub.Device("d1").AddModule("m1")
	mt, err := client.UpdateModuleTwin(ctx, "d1", "m1", registry.TwinPatch{Desired: map[string]any{"on": true}}, nil)
	if err != nil || mt.ModuleID != "m1" || mt.Properties.Desired["on"] != true {
		t.Errorf("module twin: %+v, %v", mt, err)
	}
}

func TestBulk(t *testing.T) {
	t.Parallel()
	hub, client := setup(t)
	ctx := t.Context()
	var devices []registry.Device
	for i := range 250 {
		devices = append(devices, registry.Device{DeviceID: fmt.Sprintf("bulk-%03d", i)})
	}
	res, err := client.BulkCreateDevices(ctx, devices, nil)
	if err != nil || !res.IsSuccessful() {
		t.Fatalf("bulk create: %+v, %v", res, err)
	}
	posts := 0
	for _, r := range hub.Requests() {
		if r.Method == "POST" {
			posts++
		}
	}
	if posts != 3 {
		t.Errorf("%d bulk requests for 250 devices, want 3", posts)
	}
	// Partial failure: two exist already, one is new.
	res, err = client.BulkCreateDevices(ctx, []registry.Device{{DeviceID: "bulk-000"}, {DeviceID: "bulk-001"}, {DeviceID: "new-1"}}, nil)
	if err != nil {
		t.Fatalf("a partial failure is a result, not an error: %v", err)
	}
	var failed []string
	for _, e := range res.Errors {
		failed = append(failed, e.DeviceID)
		if e.ErrorCode != iothub.ErrorCodeDeviceAlreadyExists || e.ErrorName != "DeviceAlreadyExists" {
			t.Errorf("error code %v, name %q", e.ErrorCode, e.ErrorName)
		}
	}
	slices.Sort(failed)
	if diff := cmp.Diff([]string{"bulk-000", "bulk-001"}, failed); diff != "" {
		t.Errorf("failed devices (-want +got):\n%s", diff)
	}
	if _, err := client.GetDevice(ctx, "new-1", nil); err != nil {
		t.Errorf("the good device of a partial failure: %v", err)
	}
	if _, err := client.BulkCreateDevices(ctx, []registry.Device{{DeviceID: "a"}, {DeviceID: "a"}}, nil); !errors.Is(err, iothub.ErrInvalidArgument) {
		t.Errorf("duplicate ids: %v", err)
	}
	res, err = client.BulkDeleteDevices(ctx, devices, nil)
	if err != nil || !res.IsSuccessful() {
		t.Fatalf("bulk delete: %+v, %v", res, err)
	}
	stats, err := client.GetStatistics(ctx, nil)
	if err != nil || stats.TotalDeviceCount != 1 {
		t.Errorf("stats after delete: %+v, %v", stats, err)
	}
}

func TestStatistics(t *testing.T) {
	t.Parallel()
	hub, client := setup(t)
	hub.AddDevice("a", nil)
	hub.AddDevice("b", &httpmock.DeviceOptions{Disabled: true})
	hub.AddDevice("c", &httpmock.DeviceOptions{Offline: true})
	rs, err := client.GetStatistics(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(registry.Statistics{TotalDeviceCount: 3, EnabledDeviceCount: 2, DisabledDeviceCount: 1}, rs); diff != "" {
		t.Errorf("registry stats (-want +got):\n%s", diff)
	}
}

func TestQueryEveryDeviceOnceAtAnyPageSize(t *testing.T) {
	t.Parallel()
	hub, client := setup(t)
	const n = 2500
	for i := range n {
		d := hub.AddDevice(fmt.Sprintf("dev-%04d", i), nil)
		_ = d
	}
	for _, size := range []int{0, 1, 7, 100, 1000} {
		if size == 1 && testing.Short() {
			continue
		}
		seen := make(map[string]int, n)
		for twin, err := range client.QueryTwins(t.Context(), "SELECT * FROM devices", &registry.QueryOptions{PageSize: size}) {
			if err != nil {
				t.Fatalf("page size %d: %v", size, err)
			}
			seen[twin.DeviceID]++
		}
		if len(seen) != n {
			t.Errorf("page size %d: %d devices, want %d", size, len(seen), n)
		}
		for id, c := range seen {
			if c != 1 {
				t.Errorf("page size %d: %s seen %d times", size, id, c)
			}
		}
	}
}

func TestQueryFiltersAndRaw(t *testing.T) {
	t.Parallel()
	_, client := setup(t)
	ctx := t.Context()
	for i := range 6 {
		id := fmt.Sprintf("d%d", i)
		if _, err := client.CreateDevice(ctx, registry.Device{DeviceID: id}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := client.UpdateTwin(ctx, id, registry.TwinPatch{Tags: map[string]any{"plant": fmt.Sprint(i % 2)}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for twin, err := range client.QueryTwins(ctx, "SELECT * FROM devices WHERE tags.plant = '1'", nil) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, twin.DeviceID)
	}
	slices.Sort(ids)
	if diff := cmp.Diff([]string{"d1", "d3", "d5"}, ids); diff != "" {
		t.Errorf("filtered (-want +got):\n%s", diff)
	}
	var rows []json.RawMessage
	for row, err := range client.QueryRaw(ctx, "SELECT COUNT() AS n FROM devices", nil) {
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
	if len(rows) != 1 || string(rows[0]) != `{"n":6}` {
		t.Errorf("count rows: %s", rows)
	}
}

func TestQueryIsLazyRestartableAndYieldsErrorOnce(t *testing.T) {
	t.Parallel()
	hub, client := setup(t)
	hub.AddDevice("a", nil)
	seq := client.QueryTwins(t.Context(), "SELECT * FROM devices", nil)
	if n := len(hub.Requests()); n != 0 {
		t.Fatalf("%d requests before ranging", n)
	}
	for range 2 {
		count := 0
		for _, err := range seq {
			if err != nil {
				t.Fatal(err)
			}
			count++
		}
		if count != 1 {
			t.Errorf("count %d", count)
		}
	}
	errs := 0
	for _, err := range client.QueryTwins(t.Context(), "SELECT * FROM nowhere", nil) {
		if err == nil {
			t.Fatal("want an error")
		}
		errs++
	}
	if errs != 1 {
		t.Errorf("%d errors yielded, want 1", errs)
	}
	for _, err := range client.QueryTwins(t.Context(), "  ", nil) {
		if !errors.Is(err, iothub.ErrInvalidArgument) {
			t.Errorf("empty query: %v", err)
		}
	}
}

func TestPagerResumes(t *testing.T) {
	t.Parallel()
	hub, client := setup(t)
	for i := range 25 {
		hub.AddDevice(fmt.Sprintf("d%02d", i), nil)
	}
	p, err := client.NewQueryPager("SELECT * FROM devices", &registry.QueryOptions{PageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	first, err := p.NextPage(t.Context())
	if err != nil || len(first.Items) != 10 || first.ContinuationToken == "" || first.ItemType != "twin" {
		t.Fatalf("first page: %d items, token %q, type %q, %v", len(first.Items), first.ContinuationToken, first.ItemType, err)
	}
	// Stop, and resume later from the token with a new pager.
	rest, err := client.NewQueryPager("SELECT * FROM devices", &registry.QueryOptions{PageSize: 10, ContinuationToken: p.ContinuationToken()})
	if err != nil {
		t.Fatal(err)
	}
	total := len(first.Items)
	for rest.More() {
		page, err := rest.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		total += len(page.Items)
	}
	if total != 25 || rest.ContinuationToken() != "" {
		t.Errorf("total %d, token %q", total, rest.ContinuationToken())
	}
	if _, err := client.NewQueryPager("SELECT * FROM devices", &registry.QueryOptions{PageSize: 1001}); !errors.Is(err, iothub.ErrInvalidArgument) {
		t.Errorf("page size 1001: %v", err)
	}
}

func TestReadsRetryThrottling(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setup(t)
		hub.AddDevice("d1", nil)
		hub.AddFault(httpmock.Fault{Operation: httpmock.OperationRegistry, DeviceID: "d1", Code: 429001, Times: 2})
		if _, err := client.GetDevice(t.Context(), "d1", nil); err != nil {
			t.Fatalf("get after throttling: %v", err)
		}
		if n := len(hub.Requests()); n != 3 {
			t.Errorf("%d requests, want 3", n)
		}
	})
}

func TestValidationBeforeSending(t *testing.T) {
	t.Parallel()
	hub, client := setup(t)
	ctx := t.Context()
	errs := []error{
		func() error { _, err := client.GetDevice(ctx, "", nil); return err }(),
		func() error { _, err := client.GetDevice(ctx, "a b", nil); return err }(),
		func() error {
			_, err := client.CreateDevice(ctx, registry.Device{DeviceID: strings.Repeat("x", 129)}, nil)
			return err
		}(),
		func() error { _, err := client.GetModule(ctx, "d", "", nil); return err }(),
		func() error { return client.DeleteModule(ctx, "d", "a/b", nil) }(),
		func() error { _, err := client.BulkCreateDevices(ctx, nil, nil); return err }(),
	}
	for i, err := range errs {
		if !errors.Is(err, iothub.ErrInvalidArgument) {
			t.Errorf("case %d: %v", i, err)
		}
	}
	if n := len(hub.Requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

// TestBadETagBeforeSending refuses an ETag with a character a header
// cannot carry, naming where it came from, before any request: the
// transport would refuse it only once the request is being sent.
func TestBadETagBeforeSending(t *testing.T) {
	t.Parallel()
	hub, client := setup(t)
	ctx := t.Context()
	bad := &registry.WriteOptions{IfMatch: "W/\"x\r\nX-Injected: 1\""}
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"UpdateDevice, entity ETag", func() error {
			_, err := client.UpdateDevice(ctx, registry.Device{DeviceID: "d", ETag: "a\nb"}, nil)
			return err
		}, "Device.ETag"},
		{"UpdateDevice, WriteOptions.IfMatch", func() error {
			_, err := client.UpdateDevice(ctx, registry.Device{DeviceID: "d", ETag: "ok"}, bad)
			return err
		}, "WriteOptions.IfMatch"},
		{"UpdateModule, entity ETag", func() error {
			_, err := client.UpdateModule(ctx, registry.Module{DeviceID: "d", ModuleID: "m", ETag: `a"b`}, nil)
			return err
		}, "Module.ETag"},
		{"DeleteDevice", func() error { return client.DeleteDevice(ctx, "d", bad) }, "WriteOptions.IfMatch"},
		{"DeleteModule", func() error { return client.DeleteModule(ctx, "d", "m", bad) }, "WriteOptions.IfMatch"},
		{"UpdateTwin", func() error {
			_, err := client.UpdateTwin(ctx, "d", registry.TwinPatch{Tags: map[string]any{"a": 1}}, bad)
			return err
		}, "WriteOptions.IfMatch"},
	}
	for _, tt := range tests {
		ae, ok := errors.AsType[*iothub.ArgumentError](tt.call())
		if !ok || ae.Field != tt.field {
			t.Errorf("%s: %v; want an *iothub.ArgumentError of %s", tt.name, ae, tt.field)
		}
	}
	// Force makes the write unconditional: the entity's ETag is not sent.
	if _, err := client.UpdateDevice(ctx, registry.Device{DeviceID: "nope", ETag: "a\nb"}, &registry.WriteOptions{Force: true}); errors.Is(err, iothub.ErrInvalidArgument) {
		t.Errorf("Force with a bad entity ETag: %v", err)
	}
	if n := len(hub.Requests()); n != 1 {
		t.Errorf("%d requests sent, want 1 (the forced update)", n)
	}
}

func TestRetriedWritesExplainThemselves(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub, client := setup(t)
		// The create reaches the hub, then the connection breaks: the retry
		// meets the device the first attempt created.
		hub.AddFault(httpmock.Fault{Operation: httpmock.OperationRegistry, DeviceID: "d1", Drop: httpmock.DropAfterDelivery})
		_, err := client.CreateDevice(t.Context(), registry.Device{DeviceID: "d1"}, nil)
		if !errors.Is(err, iothub.ErrConflict) || !errors.Is(err, iothub.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "an earlier attempt may have run") {
			t.Fatalf("err = %v; want a conflict that says an earlier attempt may have created it", err)
		}
		if _, err := client.GetDevice(t.Context(), "d1", nil); err != nil {
			t.Errorf("the device exists: %v", err)
		}
		// The same for a delete: the retry finds nothing, and that is done.
		hub.AddFault(httpmock.Fault{Operation: httpmock.OperationRegistry, DeviceID: "d1", Drop: httpmock.DropAfterDelivery})
		if err := client.DeleteDevice(t.Context(), "d1", nil); err != nil {
			t.Errorf("delete whose first attempt deleted: %v", err)
		}
		if hub.DeviceCount() != 0 {
			t.Errorf("%d devices left", hub.DeviceCount())
		}
	})
}
