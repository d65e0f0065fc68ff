package httpmock

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The tests in this file check that the compact state of idle devices
// (shared handler tables, generated keys made on read, one shared empty
// twin node) behaves exactly as separate state would.

// TestGeneratedKeys checks that the keys an added device gets are valid
// keys of 32 bytes, the same on every read and in the registry JSON, and
// different between keys, devices and hubs.
func TestGeneratedKeys(t *testing.T) {
	t.Parallel()
	h := New(nil)
	d1, d2 := h.AddDevice("d1", nil), h.AddDevice("d2", nil)
	p1, s1 := d1.Keys()
	p2, s2 := d2.Keys()
	other := New(nil).AddDevice("d1", nil)
	p3, _ := other.Keys()
	seen := map[string]bool{}
	for _, k := range []string{p1, s1, p2, s2, p3} {
		raw, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(raw) != 32 {
			t.Errorf("key %q: %d bytes, %v; want standard base64 of 32 bytes", k, len(raw), err)
		}
		if seen[k] {
			t.Errorf("key %q given twice", k)
		}
		seen[k] = true
	}
	if p, s := d1.Keys(); p != p1 || s != s1 {
		t.Errorf("second read of d1's keys = %q, %q; want %q, %q", p, s, p1, s1)
	}
	r := send(t.Context(), t, h, inProcess(h), call{method: http.MethodGet, path: "/devices/d1", auth: sasFor(t, h, "iothubowner")})
	var got struct {
		Authentication struct {
			SymmetricKey struct{ PrimaryKey, SecondaryKey string } `json:"symmetricKey"`
		} `json:"authentication"`
	}
	if err := json.Unmarshal(r.body, &got); r.status != 200 || err != nil {
		t.Fatalf("GET /devices/d1: %d %s (%v)", r.status, r.body, err)
	}
	want := struct{ PrimaryKey, SecondaryKey string }{p1, s1}
	if diff := cmp.Diff(want, got.Authentication.SymmetricKey); diff != "" {
		t.Errorf("registry keys differ from Device.Keys (-want +got):\n%s", diff)
	}
}

// TestSharedMethods checks that devices given one DeviceOptions.Methods
// table answer from it, and that HandleMethod on one of them changes that
// device only, leaving the table and the others alone.
func TestSharedMethods(t *testing.T) {
	t.Parallel()
	h := New(nil)
	answer := func(status int) MethodHandler {
		return func(context.Context, MethodCall) MethodResponse { return MethodResponse{Status: status} }
	}
	table := map[string]MethodHandler{"a": answer(201), "b": answer(202)}
	opts := &DeviceOptions{Methods: table}
	d1 := h.AddDevice("d1", opts)
	h.AddDevice("d2", opts)
	d1.HandleMethod("a", answer(299))
	d1.HandleMethod("b", nil)
	d1.HandleMethod("c", answer(203))
	if len(table) != 2 {
		t.Errorf("HandleMethod changed the shared table: %d entries", len(table))
	}
	client := inProcess(h)
	tests := []struct {
		device, method string
		want           int
	}{
		{"d1", "a", 299},
		{"d1", "b", NotImplementedStatus},
		{"d1", "c", 203},
		{"d2", "a", 201},
		{"d2", "b", 202},
		{"d2", "c", NotImplementedStatus},
	}
	for _, tt := range tests {
		r := send(t.Context(), t, h, client, call{path: "/twins/" + tt.device + "/methods", body: methodBody(tt.method, "")})
		if status, _ := methodResult(t, r); status != tt.want {
			t.Errorf("%s on %s: status %d, want %d", tt.method, tt.device, status, tt.want)
		}
	}
}

// TestEmptyTwinsApart checks that changing one new twin leaves the tags,
// desired and reported properties of the others (and of its own other
// parts) empty.
func TestEmptyTwinsApart(t *testing.T) {
	t.Parallel()
	h := New(nil)
	d1 := h.AddDevice("d1", nil)
	h.AddDevice("d2", nil)
	if err := d1.SetReported(`{"temp":21}`); err != nil {
		t.Fatal(err)
	}
	client := inProcess(h)
	r := send(t.Context(), t, h, client, call{method: http.MethodPatch, path: "/twins/d1", body: `{"tags":{"region":"EU"}}`})
	if r.status != 200 {
		t.Fatalf("PATCH /twins/d1: %d %s", r.status, r.body)
	}
	type props struct {
		Tags       map[string]any `json:"tags"`
		Properties struct {
			Desired, Reported map[string]any
		} `json:"properties"`
	}
	twin := func(id string) props {
		r := send(t.Context(), t, h, client, call{method: http.MethodGet, path: "/twins/" + id})
		var p props
		if err := json.Unmarshal(r.body, &p); r.status != 200 || err != nil {
			t.Fatalf("GET /twins/%s: %d %s (%v)", id, r.status, r.body, err)
		}
		for _, m := range []map[string]any{p.Properties.Desired, p.Properties.Reported} {
			delete(m, "$metadata")
			delete(m, "$version")
		}
		return p
	}
	got1, got2 := twin("d1"), twin("d2")
	if diff := cmp.Diff(map[string]any{"region": "EU"}, got1.Tags); diff != "" {
		t.Errorf("d1 tags (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"temp": float64(21)}, got1.Properties.Reported); diff != "" {
		t.Errorf("d1 reported (-want +got):\n%s", diff)
	}
	if len(got1.Properties.Desired) != 0 || len(got2.Tags) != 0 || len(got2.Properties.Desired) != 0 || len(got2.Properties.Reported) != 0 {
		t.Errorf("untouched parts are not empty: d1 desired %v; d2 tags %v, desired %v, reported %v",
			got1.Properties.Desired, got2.Tags, got2.Properties.Desired, got2.Properties.Reported)
	}
}
