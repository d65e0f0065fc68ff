package httpmock

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMethodDeliveries(t *testing.T) {
	t.Parallel()
	h := New(nil)
	d := h.AddDevice("d1", nil)
	d.HandleMethod("echo", echo)
	d.AddModule("m1")
	h.AddDevice("off", &DeviceOptions{Offline: true})
	c := inProcess(h)
	for _, path := range []string{"/twins/d1/methods", "/twins/d1/methods", "/twins/d1/modules/m1/methods", "/twins/off/methods"} {
		send(t.Context(), t, h, c, call{path: path, body: methodBody("echo", "")})
	}
	send(t.Context(), t, h, c, call{path: "/twins/d1/methods", body: methodBody("reboot", "")})
	want := map[MethodTarget]int{
		{DeviceID: "d1", Method: "echo"}:                 2,
		{DeviceID: "d1", Method: "reboot"}:               1,
		{DeviceID: "d1", ModuleID: "m1", Method: "echo"}: 1,
	}
	if diff := cmp.Diff(want, h.MethodDeliveries()); diff != "" {
		t.Errorf("MethodDeliveries (-want +got):\n%s", diff)
	}
}

func TestPatchTwin(t *testing.T) {
	t.Parallel()
	h := New(nil)
	d := h.AddDevice("d1", nil)
	m := d.AddModule("m1")
	if err := d.PatchTwin(`{"tags":{"ring":"canary"},"properties":{"desired":{"interval":30}}}`); err != nil {
		t.Fatal(err)
	}
	if err := m.PatchTwin(`{"tags":{"role":"agent"}}`); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`[]`, `{"tags":{"a":[1]}}`, `{"properties":{"reported":{"x":1}}}`} {
		if err := d.PatchTwin(bad); err == nil {
			t.Errorf("PatchTwin(%s) = nil, want an error", bad)
		}
	}
	tw, _ := h.Twin("d1", "")
	if diff := cmp.Diff(map[string]any{"ring": "canary"}, tw["tags"]); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	desired := tw["properties"].(map[string]any)["desired"].(map[string]any)
	if got := desired["interval"]; got != json.Number("30") {
		t.Errorf("desired.interval = %v, want 30", got)
	}
	mt, _ := h.Twin("d1", "m1")
	if diff := cmp.Diff(map[string]any{"role": "agent"}, mt["tags"]); diff != "" {
		t.Errorf("module tags (-want +got):\n%s", diff)
	}
}

func TestSetEdge(t *testing.T) {
	t.Parallel()
	h := New(nil)
	d := h.AddDevice("e1", nil)
	before := d.ETag()
	d.SetEdge(true)
	if d.ETag() == before {
		t.Error("SetEdge(true) kept the etag")
	}
	r := send(t.Context(), t, h, inProcess(h), call{method: http.MethodGet, path: "/devices/e1", auth: sasFor(t, h, "registryRead"), contentType: "-"})
	var dev struct {
		Capabilities struct {
			IotEdge bool `json:"iotEdge"`
		} `json:"capabilities"`
	}
	if err := json.Unmarshal(r.body, &dev); err != nil || !dev.Capabilities.IotEdge {
		t.Errorf("GET /devices/e1 = %d %s (err %v), want capabilities.iotEdge true", r.status, r.body, err)
	}
}
