package httpmock

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// decodeDT decodes a 200 digital twin answer and checks its weak ETag
// against the device twin's.
func decodeDT(t testing.TB, h *Hub, id string, r result) map[string]any {
	t.Helper()
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("status %d (%v): %s", r.status, r.err, r.body)
	}
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatal(err)
	}
	tw, _ := h.Twin(id, "")
	if got, want := r.header.Get("ETag"), `W/"`+tw["etag"].(string)+`"`; got != want {
		t.Errorf("ETag header %q, want %q", got, want)
	}
	return v
}

func TestDigitalTwinView(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now().UTC()
		h := New(nil)
		d := h.AddDevice("sample-device", nil)
		d.SetModelID("dtmi:com:example:TemperatureController;1")
		c := inProcess(h)
		get := func() map[string]any {
			return decodeDT(t, h, "sample-device", send(t.Context(), t, h, c, call{method: "GET", path: "/digitaltwins/sample-device"}))
		}
		patch := func(body string) result {
			return send(t.Context(), t, h, c, call{method: "PATCH", path: "/digitaltwins/sample-device", body: body})
		}
		stamp := func(d time.Duration) string { return formatTime(start.Add(d)) }

		if diff := cmp.Diff(map[string]any{
			"$dtId":     "sample-device",
			"$metadata": map[string]any{"$model": "dtmi:com:example:TemperatureController;1"},
		}, get()); diff != "" {
			t.Errorf("fresh twin (-want +got):\n%s", diff)
		}

		// The service sets a desired value (desired $version 2)...
		time.Sleep(time.Second)
		if r := patch(`[{"op":"add","path":"/thermostat1/targetTemperature","value":21.8},{"op":"add","path":"/fanSpeed","value":2}]`); r.status != http.StatusAccepted {
			t.Fatalf("patch: %d %s", r.status, r.body)
		}
		// ... the device reports and acknowledges it, the convention's way.
		time.Sleep(time.Second)
		if err := d.SetReported(`{"serialNumber":"alwinexlepaho8329","fanSpeed":{"value":3,"ac":200,"av":1,"ad":"done"},
			"thermostat1":{"__t":"c","maxTempSinceLastReboot":25.3,"targetTemperature":{"value":21.8,"ac":200,"av":2,"ad":"Successfully executed patch"}}}`); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"$dtId":        "sample-device",
			"serialNumber": "alwinexlepaho8329",
			"fanSpeed":     3.0,
			"thermostat1": map[string]any{
				"maxTempSinceLastReboot": 25.3,
				"targetTemperature":      21.8,
				"$metadata": map[string]any{
					"targetTemperature": map[string]any{
						"desiredValue": 21.8, "desiredVersion": 2.0, "ackVersion": 2.0, "ackCode": 200.0,
						"ackDescription": "Successfully executed patch", "lastUpdateTime": stamp(2 * time.Second),
					},
					"maxTempSinceLastReboot": map[string]any{"lastUpdateTime": stamp(2 * time.Second)},
				},
			},
			"$metadata": map[string]any{
				"$model":       "dtmi:com:example:TemperatureController;1",
				"serialNumber": map[string]any{"lastUpdateTime": stamp(2 * time.Second)},
				"fanSpeed": map[string]any{
					"desiredValue": 2.0, "desiredVersion": 2.0, "ackVersion": 1.0, "ackCode": 200.0,
					"ackDescription": "done", "lastUpdateTime": stamp(2 * time.Second),
				},
			},
		}
		if diff := cmp.Diff(want, get()); diff != "" {
			t.Errorf("view (-want +got):\n%s", diff)
		}

		// The device twin holds the component with its marker.
		tw, _ := h.Twin("sample-device", "")
		desired := tw["properties"].(map[string]any)["desired"].(map[string]any)
		if diff := cmp.Diff(map[string]any{"__t": "c", "targetTemperature": json.Number("21.8")}, desired["thermostat1"]); diff != "" {
			t.Errorf("desired thermostat1 (-want +got):\n%s", diff)
		}

		// A later change to one property leaves the other's desiredVersion.
		time.Sleep(time.Second)
		if r := patch(`[{"op":"replace","path":"/fanSpeed","value":4}]`); r.status != http.StatusAccepted {
			t.Fatalf("patch: %d %s", r.status, r.body)
		}
		v := get()
		meta := v["$metadata"].(map[string]any)["fanSpeed"].(map[string]any)
		tmeta := v["thermostat1"].(map[string]any)["$metadata"].(map[string]any)["targetTemperature"].(map[string]any)
		if meta["desiredVersion"] != 3.0 || meta["desiredValue"] != 4.0 || tmeta["desiredVersion"] != 2.0 {
			t.Errorf("after a second patch: fanSpeed %v, targetTemperature %v", meta, tmeta)
		}
	})
}

func TestDigitalTwinWithoutModel(t *testing.T) {
	t.Parallel()
	h := New(nil)
	d := h.AddDevice("plain", nil)
	if err := d.SetReported(`{"firmware":{"version":"1.2"}}`); err != nil {
		t.Fatal(err)
	}
	v := decodeDT(t, h, "plain", send(t.Context(), t, h, inProcess(h), call{method: "GET", path: "/digitaltwins/plain"}))
	md := v["$metadata"].(map[string]any)
	if _, ok := md["$model"]; ok {
		t.Errorf("a device without a model id has $model: %v", md)
	}
	// An object that is not marked a component is a root property.
	if diff := cmp.Diff(map[string]any{"version": "1.2"}, v["firmware"]); diff != "" {
		t.Errorf("firmware (-want +got):\n%s", diff)
	}
}

func TestDigitalTwinPatchAnswer(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("a b", nil)
	c := inProcess(h)
	tw, _ := h.Twin("a b", "")
	etag := tw["etag"].(string)
	do := func(body string, hdr http.Header) result {
		return send(t.Context(), t, h, c, call{method: "PATCH", path: "/digitaltwins/a%20b", body: body, header: hdr})
	}

	r := do(`[{"op":"add","path":"/thermostat1","value":{"targetTemperature":21.4,"$metadata":{}}}]`, http.Header{"If-Match": {`W/"` + etag + `"`}})
	if r.status != http.StatusAccepted || len(r.body) != 0 {
		t.Fatalf("patch: %d %q", r.status, r.body)
	}
	tw, _ = h.Twin("a b", "")
	newTag := tw["etag"].(string)
	if got, want := r.header.Get("ETag"), `W/"`+newTag+`"`; got != want || newTag == etag {
		t.Errorf("ETag %q, want %q (old %q)", got, want, etag)
	}
	if got, want := r.header.Get("Location"), "https://"+h.HostName()+"/digitaltwins/a%20b"; got != want {
		t.Errorf("Location %q, want %q", got, want)
	}

	// The old ETag no longer matches: 412 with the twin's code.
	e := decodeErr(t, do(`[{"op":"remove","path":"/thermostat1"}]`, http.Header{"If-Match": {`W/"` + etag + `"`}}))
	if e.Status != 412 || e.Code != 412001 || e.Header != "PreconditionFailed" {
		t.Errorf("stale If-Match: %+v", e)
	}

	// Removing what has no desired value changes nothing.
	r = do(`[{"op":"remove","path":"/nothing"},{"op":"remove","path":"/thermostat1/nothing"}]`, nil)
	if r.status != http.StatusAccepted || r.header.Get("ETag") != `W/"`+newTag+`"` {
		t.Errorf("no-op remove: %d, ETag %q", r.status, r.header.Get("ETag"))
	}
	// Removing the whole component clears its desired values.
	if r := do(`[{"op":"remove","path":"/thermostat1"}]`, http.Header{"If-Match": {"*"}}); r.status != http.StatusAccepted {
		t.Fatalf("remove component: %d %s", r.status, r.body)
	}
	tw, _ = h.Twin("a b", "")
	if desired := strip(tw["properties"].(map[string]any)["desired"]); len(desired) != 0 {
		t.Errorf("desired after removing the component: %v", desired)
	}

	e = decodeErr(t, send(t.Context(), t, h, c, call{method: "PATCH", path: "/digitaltwins/ghost", body: `[{"op":"remove","path":"/a"}]`}))
	if e.Status != 404 || e.Code != 404001 {
		t.Errorf("unknown device: %+v", e)
	}
	e = decodeErr(t, send(t.Context(), t, h, c, call{method: "GET", path: "/digitaltwins/ghost"}))
	if e.Status != 404 || e.Code != 404001 {
		t.Errorf("unknown device GET: %+v", e)
	}
}

func TestDigitalTwinPatchRules(t *testing.T) {
	t.Parallel()
	deep := `{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}` // six objects
	tests := []struct {
		name, body, contentType string
		status, code            int
		mention                 string // the message names it
	}{
		{name: "not JSON", body: `[`, status: 400, code: 400006},
		{name: "an object, not an array", body: `{"op":"add"}`, status: 400, code: 400006},
		{name: "empty patch", body: `[]`, status: 400, code: 400004},
		{name: "move", body: `[{"op":"move","from":"/a","path":"/b"}]`, status: 400, code: 400004, mention: "move"},
		{name: "no path", body: `[{"op":"add","value":1}]`, status: 400, code: 400004},
		{name: "path too deep", body: `[{"op":"add","path":"/c/p/q","value":1}]`, status: 400, code: 400004, mention: "/c/p/q"},
		{name: "relative path", body: `[{"op":"add","path":"p","value":1}]`, status: 400, code: 400004},
		{name: "no value", body: `[{"op":"add","path":"/p"}]`, status: 400, code: 400004},
		{name: "leading digit", body: `[{"op":"add","path":"/1p","value":1}]`, status: 400, code: 400004, mention: "'1p'"},
		{name: "leading underscore", body: `[{"op":"add","path":"/_p","value":1}]`, status: 400, code: 400004, mention: "'_p'"},
		{name: "trailing underscore", body: `[{"op":"add","path":"/c/p_","value":1}]`, status: 400, code: 400004, mention: "'p_'"},
		{name: "hyphen", body: `[{"op":"add","path":"/a-b","value":1}]`, status: 400, code: 400004, mention: "'a-b'"},
		{name: "65 characters", body: `[{"op":"add","path":"/` + strings.Repeat("a", 65) + `","value":1}]`, status: 400, code: 400004},
		{name: "array value", body: `[{"op":"add","path":"/p","value":[1]}]`, status: 400, code: 400004, mention: "'p'"},
		{name: "nested array", body: `[{"op":"add","path":"/c/p","value":{"x":[1]}}]`, status: 400, code: 400004, mention: "arrays"},
		{name: "null value", body: `[{"op":"add","path":"/p","value":null}]`, status: 400, code: 400004},
		{name: "six levels", body: `[{"op":"add","path":"/p","value":` + deep + `}]`, status: 400, code: 400004, mention: "5 levels"},
		{name: "field name", body: `[{"op":"add","path":"/p","value":{"a.b":1}}]`, status: 400, code: 400004, mention: "a.b"},
		{name: "component $metadata not empty", body: `[{"op":"add","path":"/c","value":{"p":1,"$metadata":{"x":1}}}]`, status: 400, code: 400004, mention: "$metadata"},
		{name: "component property name", body: `[{"op":"replace","path":"/c","value":{"9p":1,"$metadata":{}}}]`, status: 400, code: 400004, mention: "'9p'"},
		{name: "component property array", body: `[{"op":"replace","path":"/c","value":{"p":[],"$metadata":{}}}]`, status: 400, code: 400004, mention: "'p'"},
		{name: "content type", body: `[{"op":"add","path":"/p","value":1}]`, contentType: "text/plain", status: 415, code: 415000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := New(nil)
			h.AddDevice("d", nil)
			before, _ := h.Twin("d", "")
			e := decodeErr(t, send(t.Context(), t, h, inProcess(h), call{method: "PATCH", path: "/digitaltwins/d", body: tt.body, contentType: tt.contentType}))
			if e.Status != tt.status || e.Code != tt.code || !strings.Contains(e.Message, tt.mention) {
				t.Errorf("got %d %d %q; want %d %d mentioning %q", e.Status, e.Code, e.Message, tt.status, tt.code, tt.mention)
			}
			after, _ := h.Twin("d", "")
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("a refused patch changed the twin (-before +after):\n%s", diff)
			}
		})
	}

	t.Run("five levels are allowed", func(t *testing.T) {
		t.Parallel()
		h := New(nil)
		h.AddDevice("d", nil)
		body := `[{"op":"add","path":"/p","value":{"a":{"b":{"c":{"d":{"e":1}}}}}}]`
		if r := send(t.Context(), t, h, inProcess(h), call{method: "PATCH", path: "/digitaltwins/d", body: body}); r.status != http.StatusAccepted {
			t.Errorf("five levels: %d %s", r.status, r.body)
		}
	})

	t.Run("a non-conformant desired property", func(t *testing.T) {
		t.Parallel()
		h := New(nil)
		h.AddDevice("d", nil)
		c := inProcess(h)
		// Set through the device twin API, whose rules are looser.
		if r := send(t.Context(), t, h, c, call{method: "PATCH", path: "/twins/d", body: `{"properties":{"desired":{"cfg":{"my-key":1}}}}`}); r.status != 200 {
			t.Fatalf("twin patch: %d %s", r.status, r.body)
		}
		e := decodeErr(t, send(t.Context(), t, h, c, call{method: "PATCH", path: "/digitaltwins/d", body: `[{"op":"replace","path":"/cfg","value":{"ok":1}}]`}))
		if e.Code != 400004 || !strings.Contains(e.Message, "'cfg' exists within the device twin") {
			t.Errorf("got %+v", e)
		}
	})
}

func TestDigitalTwinRoutes(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d", nil)
	c := inProcess(h)
	// PUT is not a digital twin verb.
	if r := send(t.Context(), t, h, c, call{method: "PUT", path: "/digitaltwins/d", body: `[]`}); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", r.status)
	}
	// The registry-read policy lacks ServiceConnect.
	e := decodeErr(t, send(t.Context(), t, h, c, call{method: "GET", path: "/digitaltwins/d", auth: sasFor(t, h, "registryRead")}))
	if e.Status != 401 || e.Code != 401002 {
		t.Errorf("registryRead: %+v", e)
	}
	// The Java way of sending PATCH.
	r := send(t.Context(), t, h, c, call{method: "POST", path: "/digitaltwins/d", body: `[{"op":"add","path":"/p","value":1}]`,
		header: http.Header{"X-Http-Method-Override": {"PATCH"}}})
	if r.status != http.StatusAccepted {
		t.Errorf("POST with X-HTTP-Method-Override: %d %s", r.status, r.body)
	}
	if snap, _ := h.DigitalTwin("d"); snap["$metadata"].(map[string]any)["p"] == nil {
		t.Errorf("snapshot lacks the desired property: %v", snap)
	}
}
