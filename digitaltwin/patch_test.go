package digitaltwin_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/digitaltwin"
)

func TestPatchRules(t *testing.T) {
	t.Parallel()
	deep := map[string]any{"a": map[string]any{"b": map[string]any{"c": map[string]any{"d": map[string]any{"e": map[string]any{"f": 1}}}}}}
	type point struct {
		X, Y []int
	}
	tests := []struct {
		name      string
		build     func(p *digitaltwin.Patch)
		field     string
		ruleWords string
	}{
		{"empty patch", func(p *digitaltwin.Patch) {}, "Patch", "at least one"},
		{"empty property name", func(p *digitaltwin.Patch) { p.AddProperty("", 1) }, "Patch[0].path", "must not be empty"},
		{"leading digit", func(p *digitaltwin.Patch) { p.AddProperty("1st", 1) }, "Patch[0].path", "digit"},
		{"leading underscore", func(p *digitaltwin.Patch) { p.ReplaceProperty("_x", 1) }, "Patch[0].path", "start with '_'"},
		{"trailing underscore", func(p *digitaltwin.Patch) { p.RemoveProperty("x_") }, "Patch[0].path", "end with '_'"},
		{"65 characters", func(p *digitaltwin.Patch) { p.AddProperty(strings.Repeat("a", 65), 1) }, "Patch[0].path", "64"},
		{"slash", func(p *digitaltwin.Patch) { p.AddProperty("a/b", 1) }, "Patch[0].path", "DTDL"},
		{"tilde", func(p *digitaltwin.Patch) { p.AddProperty("a~b", 1) }, "Patch[0].path", "DTDL"},
		{"non-ASCII letter", func(p *digitaltwin.Patch) { p.AddProperty("tempé", 1) }, "Patch[0].path", "DTDL"},
		{"component name", func(p *digitaltwin.Patch) { p.AddComponentProperty("thermo-1", "t", 1) }, "Patch[0].path", "component name"},
		{"component property name", func(p *digitaltwin.Patch) { p.RemoveComponentProperty("c", "") }, "Patch[0].path", "property name"},
		{"whole component name", func(p *digitaltwin.Patch) { p.RemoveComponent("$c") }, "Patch[0].path", "component name"},
		{"second operation", func(p *digitaltwin.Patch) { p.AddProperty("ok", 1); p.AddProperty("ok", []string{"x"}) }, "Patch[1].value", "array"},
		{"array value", func(p *digitaltwin.Patch) { p.AddProperty("p", []int{1}) }, "Patch[0].value", "array"},
		{"nested array", func(p *digitaltwin.Patch) {
			p.AddComponentProperty("c", "p", map[string]any{"a": map[string]any{"b": []any{}}})
		}, "Patch[0].value.a.b", "array"},
		{"array in a struct", func(p *digitaltwin.Patch) { p.AddProperty("p", point{}) }, "Patch[0].value.X", "null"},
		{"array in a struct, set", func(p *digitaltwin.Patch) { p.AddProperty("p", point{X: []int{1}, Y: []int{2}}) }, "Patch[0].value.X", "array"},
		{"null", func(p *digitaltwin.Patch) { p.AddProperty("p", nil) }, "Patch[0].value", "null"},
		{"nested null", func(p *digitaltwin.Patch) { p.ReplaceProperty("p", map[string]any{"a": nil}) }, "Patch[0].value.a", "null"},
		{"six levels", func(p *digitaltwin.Patch) { p.AddProperty("p", deep) }, "Patch[0].value.a.b.c.d.e", "5 levels"},
		{"field name", func(p *digitaltwin.Patch) { p.AddProperty("p", map[string]int{"a b": 1}) }, "Patch[0].value.a b", "field name"},
		{"not JSON", func(p *digitaltwin.Patch) { p.AddProperty("p", math.NaN()) }, "Patch[0].value", "encode as JSON"},
		{"a channel", func(p *digitaltwin.Patch) { p.AddProperty("p", make(chan int)) }, "Patch[0].value", "encode as JSON"},
		{"whole component property name", func(p *digitaltwin.Patch) {
			p.AddComponent("c", map[string]any{"9lives": 1})
		}, "Patch[0].value.9lives", "property name"},
		{"whole component carrying $metadata", func(p *digitaltwin.Patch) {
			p.ReplaceComponent("c", map[string]any{"$metadata": map[string]any{}})
		}, "Patch[0].value.$metadata", "property name"},
		{"whole component value", func(p *digitaltwin.Patch) {
			p.ReplaceComponent("c", map[string]any{"p": []int{}})
		}, "Patch[0].value.p", "array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var p digitaltwin.Patch
			tt.build(&p)

			verr := p.Validate()
			ae, ok := errors.AsType[*iothub.ArgumentError](verr)
			if !ok || ae.Operation != "Patch.Validate" || ae.Field != tt.field || !strings.Contains(ae.Rule, tt.ruleWords) {
				t.Fatalf("Validate: %v; want field %q with a rule about %q", verr, tt.field, tt.ruleWords)
			}
			if _, err := json.Marshal(p); err == nil {
				t.Errorf("MarshalJSON accepted the patch")
			}

			hub, client := setup(t)
			hub.AddDevice("d", nil)
			_, err := client.Update(t.Context(), "d", p, nil)
			ae, ok = errors.AsType[*iothub.ArgumentError](err)
			if !ok || ae.Operation != "Update" || ae.Field != tt.field || !errors.Is(err, iothub.ErrInvalidArgument) || iothub.MayHaveRun(err) {
				t.Errorf("Update: %v; want the same *iothub.ArgumentError", err)
			}
			if n := len(hub.Requests()); n != 0 {
				t.Errorf("%d requests reached the hub; want none", n)
			}
		})
	}
}

func TestPatchIDRule(t *testing.T) {
	t.Parallel()
	hub, client := setup(t)
	var p digitaltwin.Patch
	p.AddProperty("p", 1)
	for _, id := range []string{"", "a/b", strings.Repeat("x", 129)} {
		_, uerr := client.Update(t.Context(), id, p, nil)
		_, gerr := client.Get(t.Context(), id, nil)
		for _, err := range []error{uerr, gerr} {
			if ae, ok := errors.AsType[*iothub.ArgumentError](err); !ok || ae.Field != "digitalTwinID" {
				t.Errorf("id %q: %v", id, err)
			}
		}
	}
	if n := len(hub.Requests()); n != 0 {
		t.Errorf("%d requests reached the hub; want none", n)
	}
}

// TestUpdateBadIfMatch refuses an If-Match a header cannot carry before
// sending anything.
func TestUpdateBadIfMatch(t *testing.T) {
	t.Parallel()
	hub, client := setup(t)
	var p digitaltwin.Patch
	p.AddProperty("p", 1)
	for _, etag := range []string{"W/\"x\ny\"", "a\rb", `a"b`, "a b"} {
		_, err := client.Update(t.Context(), "d", p, &digitaltwin.UpdateOptions{IfMatch: etag})
		if ae, ok := errors.AsType[*iothub.ArgumentError](err); !ok || ae.Field != "UpdateOptions.IfMatch" {
			t.Errorf("IfMatch %q: %v; want an *iothub.ArgumentError of UpdateOptions.IfMatch", etag, err)
		}
	}
	if n := len(hub.Requests()); n != 0 {
		t.Errorf("%d requests reached the hub; want none", n)
	}
}

func TestPatchJSON(t *testing.T) {
	t.Parallel()
	var p digitaltwin.Patch
	p.AddProperty("a", "x")
	p.ReplaceProperty("b", map[string]any{"c": map[string]any{"d": map[string]any{"e": map[string]any{"f": true}}}}) // five levels
	p.RemoveProperty("c")
	p.AddComponentProperty("comp", "d", 1.5)
	p.ReplaceComponentProperty("comp", "e", json.RawMessage(`{"k":1}`))
	p.RemoveComponentProperty("comp", "f")
	p.AddComponent("whole", nil)
	p.ReplaceComponent("whole2", map[string]any{"z": 1, "a": 2})
	p.RemoveComponent("whole3")
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.Len() != 9 {
		t.Errorf("Len = %d", p.Len())
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"op":"add","path":"/a","value":"x"},` +
		`{"op":"replace","path":"/b","value":{"c":{"d":{"e":{"f":true}}}}},` +
		`{"op":"remove","path":"/c"},` +
		`{"op":"add","path":"/comp/d","value":1.5},` +
		`{"op":"replace","path":"/comp/e","value":{"k":1}},` +
		`{"op":"remove","path":"/comp/f"},` +
		`{"op":"add","path":"/whole","value":{"$metadata":{}}},` +
		`{"op":"replace","path":"/whole2","value":{"a":2,"z":1,"$metadata":{}}},` +
		`{"op":"remove","path":"/whole3"}]`
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
}
