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

// decodeTwin decodes a 200 twin answer and checks the ETag header.
func decodeTwin(t testing.TB, r result) map[string]any {
	t.Helper()
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("status %d (%v): %s", r.status, r.err, r.body)
	}
	var tw map[string]any
	if err := json.Unmarshal(r.body, &tw); err != nil {
		t.Fatal(err)
	}
	if got, want := r.header.Get("ETag"), `"`+tw["etag"].(string)+`"`; got != want {
		t.Errorf("ETag header %q, want %q", got, want)
	}
	return tw
}

// strip removes $metadata and $version from a properties section.
func strip(v any) map[string]any {
	m := v.(map[string]any)
	out := map[string]any{}
	for k, x := range m {
		if k != "$metadata" && k != "$version" {
			out[k] = x
		}
	}
	return out
}

func TestTwinPatchAndReplace(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := New(nil)
		d := h.AddDevice("d1", nil)
		c := inProcess(h)
		do := func(method, body string, hdr http.Header) result {
			return send(t.Context(), t, h, c, call{method: method, path: "/twins/d1", body: body, header: hdr})
		}
		tw := decodeTwin(t, do("GET", "", nil))
		if tw["etag"] != "AAAAAAAAAAE=" || tw["version"] != 1.0 || tw["statusUpdateTime"] != neverTime || tw["deviceEtag"] != d.ETag() {
			t.Errorf("fresh twin: %v", tw)
		}
		time.Sleep(time.Second)
		tw = decodeTwin(t, do("PATCH", `{"tags":{"loc":{"region":"US","zone":1}},"properties":{"desired":{"a":1,"b":{"c":true}}}}`, http.Header{"If-Match": {`"*"`}}))
		props := tw["properties"].(map[string]any)
		desired := props["desired"].(map[string]any)
		if diff := cmp.Diff(map[string]any{"a": 1.0, "b": map[string]any{"c": true}}, strip(desired)); diff != "" {
			t.Errorf("desired (-want +got):\n%s", diff)
		}
		meta := desired["$metadata"].(map[string]any)
		now := formatTime(time.Now())
		if meta["$lastUpdated"] != now || meta["b"].(map[string]any)["c"].(map[string]any)["$lastUpdated"] != now {
			t.Errorf("$metadata %v", meta)
		}
		if desired["$version"] != 2.0 || tw["version"] != 2.0 {
			t.Errorf("versions: desired %v twin %v", desired["$version"], tw["version"])
		}
		etag := tw["etag"].(string)

		// Stale etag: 412001; right etag: merge, null deletes.
		if got := decodeErr(t, do("PATCH", `{"tags":{"x":1}}`, http.Header{"If-Match": {`"AAAAAAAAAAE="`}})); got.Code != 412001 {
			t.Errorf("stale: %+v", got)
		}
		tw = decodeTwin(t, do("PATCH", `{"tags":{"loc":{"zone":null},"x":"y"},"properties":{"desired":{"b":null}}}`, http.Header{"If-Match": {`"` + etag + `"`}}))
		if diff := cmp.Diff(map[string]any{"loc": map[string]any{"region": "US"}, "x": "y"}, tw["tags"]); diff != "" {
			t.Errorf("tags (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(map[string]any{"a": 1.0}, strip(tw["properties"].(map[string]any)["desired"])); diff != "" {
			t.Errorf("desired (-want +got):\n%s", diff)
		}
		if tw["version"] != 3.0 {
			t.Errorf("version %v", tw["version"])
		}
		// A no-op patch does not bump the version.
		if tw = decodeTwin(t, do("PATCH", `{"tags":{"x":"y"}}`, nil)); tw["version"] != 3.0 {
			t.Errorf("no-op bumped version to %v", tw["version"])
		}
		// Java's POST + X-HTTP-Method-Override: PATCH.
		tw = decodeTwin(t, do("POST", `{"tags":{"j":true}}`, http.Header{"X-Http-Method-Override": {"PATCH"}}))
		if tw["tags"].(map[string]any)["j"] != true {
			t.Errorf("override: %v", tw["tags"])
		}
		// PUT replaces tags and desired.
		tw = decodeTwin(t, do("PUT", `{"tags":{"only":1},"properties":{"desired":{"z":"z"}}}`, http.Header{"If-Match": {"*"}}))
		if diff := cmp.Diff(map[string]any{"only": 1.0}, tw["tags"]); diff != "" {
			t.Errorf("replaced tags (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(map[string]any{"z": "z"}, strip(tw["properties"].(map[string]any)["desired"])); diff != "" {
			t.Errorf("replaced desired (-want +got):\n%s", diff)
		}

		// Reported properties from the device.
		if err := d.SetReported(`{"fw":"1.2","nested":{"k":1}}`); err != nil {
			t.Fatal(err)
		}
		if err := d.SetReported(`{"arr":[1]}`); err == nil {
			t.Error("SetReported accepted an array")
		}
		snap, _ := h.Twin("d1", "")
		rep := snap["properties"].(map[string]any)["reported"].(map[string]any)
		if rep["fw"] != "1.2" || rep["$version"] != json.Number("2") {
			t.Errorf("reported %v", rep)
		}
	})
}

func TestTwinValidation(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", nil).AddModule("m1")
	c := inProcess(h)
	deep := `{"v":1}`
	for range MaxTwinDepth + 1 {
		deep = `{"n":` + deep + `}`
	}
	ok10 := `"leaf"`
	for range MaxTwinDepth {
		ok10 = `{"n":` + ok10 + `}`
	}
	tests := []struct {
		name, body string
		wantCode   int
	}{
		{"array in tags", `{"tags":{"a":[1,2]}}`, 400004},
		{"array in desired", `{"properties":{"desired":{"a":{"b":[]}}}}`, 400004},
		{"dot in key", `{"tags":{"a.b":1}}`, 400004},
		{"dollar in key", `{"properties":{"desired":{"$x":1}}}`, 400004},
		{"space in key", `{"tags":{"a b":1}}`, 400004},
		{"control in key", `{"tags":{"a\u0001":1}}`, 400004},
		{"too deep", `{"tags":` + deep + `}`, 400004},
		{"depth 10", `{"tags":` + ok10 + `}`, 0},
		{"tags too big", `{"tags":{"a":"` + strings.Repeat("x", 4000) + `","b":"` + strings.Repeat("x", 4000) + `","c":"` + strings.Repeat("x", 400) + `"}}`, 400004},
		{"string too long", `{"tags":{"a":"` + strings.Repeat("x", MaxTwinStringSize+1) + `"}}`, 400004},
		{"reported", `{"properties":{"reported":{"a":1}}}`, 400004},
		{"reported metadata only", `{"properties":{"reported":{"$version":3}}}`, 0},
		{"desired metadata ignored", `{"properties":{"desired":{"$version":3,"$metadata":{}}}}`, 0},
		{"big integer", `{"tags":{"a":4503599627370496}}`, 400004},
		{"not an object", `[1]`, 400006},
		{"wrong deviceId", `{"deviceId":"d2"}`, 400004},
		{"read-only fields ignored", `{"deviceId":"d1","etag":"x","version":99,"status":"disabled"}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := send(t.Context(), t, h, c, call{method: "PATCH", path: "/twins/d1/modules/m1", body: tt.body})
			if tt.wantCode == 0 {
				tw := decodeTwin(t, r)
				if tw["moduleId"] != "m1" || tw["version"] == 99.0 {
					t.Errorf("twin %v", tw)
				}
				return
			}
			if got := decodeErr(t, r); got.Code != tt.wantCode {
				t.Errorf("got %+v, want %d", got, tt.wantCode)
			}
		})
	}
	desiredBig := `{"properties":{"desired":{`
	for i := range 9 {
		desiredBig += `"k` + string(rune('a'+i)) + `":"` + strings.Repeat("x", 4000) + `",`
	}
	desiredBig = strings.TrimSuffix(desiredBig, ",") + `}}}`
	if got := decodeErr(t, send(t.Context(), t, h, c, call{method: "PATCH", path: "/twins/d1", body: desiredBig})); got.Code != 400004 {
		t.Errorf("desired over 32 KB: %+v", got)
	}
	for path, code := range map[string]int{"/twins/nope": 404001, "/twins/d1/modules/nope": 404010} {
		if got := decodeErr(t, send(t.Context(), t, h, c, call{method: "GET", path: path})); got.Code != code {
			t.Errorf("GET %s: %+v", path, got)
		}
	}
}

func TestBulk(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("exists", nil)
	c := inProcess(h)
	bulk := func(body string) result {
		return send(t.Context(), t, h, c, call{path: "/devices/", body: body, auth: owner(t, h)})
	}
	// Limits.
	var many []string
	for i := range MaxBulkDevices + 1 {
		many = append(many, `{"id":"b`+strings.Repeat("x", i%3)+string(rune('A'+i%26))+`","importMode":"create"}`)
	}
	if got := decodeErr(t, bulk("["+strings.Join(many, ",")+"]")); got.Status != 413 || got.Code != 413002 {
		t.Errorf(">100: %+v", got)
	}
	if got := decodeErr(t, bulk(`[]`)); got.Code != 400004 {
		t.Errorf("empty: %+v", got)
	}
	if got := decodeErr(t, bulk(`[{"id":"a","importMode":"create"},{"id":"a","importMode":"delete"}]`)); got.Code != 400011 {
		t.Errorf("duplicate: %+v", got)
	}
	if h.Device("a") != nil {
		t.Error("duplicate request applied")
	}
	if got := decodeErr(t, bulk(`[{"id":"a","importMode":"explode"}]`)); got.Code != 400004 {
		t.Errorf("bad mode: %+v", got)
	}

	// Partial failure: 400 with the result body.
	r := bulk(`[{"id":"new1","importMode":"Create","tags":{"t":1},"properties":{"desired":{"d":2}}},
		{"id":"exists","importMode":"create"},
		{"id":"ghost","importMode":"delete"},
		{"id":"exists","moduleId":"m1","importMode":"createOrUpdate"},
		{"id":"new2","importMode":"createOrUpdate","status":"disabled"}]`)
	if r.status != 400 || r.header.Get("iothub-errorcode") != "BulkRegistryOperationFailure" {
		t.Fatalf("partial failure: %d %v %s", r.status, r.header, r.body)
	}
	var res bulkResult
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	want := bulkResult{IsSuccessful: false, Errors: []bulkError{
		{DeviceID: "exists", ErrorCode: "DeviceAlreadyExists", ErrorStatus: "A device with ID 'exists' is already registered."},
		{DeviceID: "ghost", ErrorCode: "DeviceNotFound", ErrorStatus: "Device ghost not found."},
	}, Warnings: []any{}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	tw, _ := h.Twin("new1", "")
	if tw["tags"].(map[string]any)["t"] != json.Number("1") {
		t.Errorf("bulk tags not applied: %v", tw["tags"])
	}
	if h.Device("exists").Module("m1") == nil || h.Device("new2") == nil {
		t.Error("successful items not applied")
	}

	// All succeeded: 200; eTag checks.
	etag := h.Device("new1").ETag()
	r = bulk(`[{"id":"new1","importMode":"updateIfMatchETag","eTag":"` + etag + `","status":"disabled"},
		{"id":"new2","importMode":"deleteIfMatchETag","eTag":"wrong"}]`)
	if err := json.Unmarshal(r.body, &res); err != nil || r.status != 400 || len(res.Errors) != 1 || res.Errors[0].ErrorCode != "PreconditionFailed" {
		t.Errorf("etag modes: %d %s", r.status, r.body)
	}
	r = bulk(`[{"id":"new2","importMode":"delete"},{"id":"new1","importMode":"updateTwin","tags":{"t":null}}]`)
	if r.status != 200 || string(r.body) != `{"isSuccessful":true,"errors":[],"warnings":[]}` {
		t.Errorf("success: %d %s", r.status, r.body)
	}
	if got := decodeErr(t, send(t.Context(), t, h, c, call{path: "/devices", body: `[{"id":"z","importMode":"create"}]`, auth: sasFor(t, h, "registryRead")})); got.Code != 401002 {
		t.Errorf("registryRead bulk: %+v", got)
	}
}
