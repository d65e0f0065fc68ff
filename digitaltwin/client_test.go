package digitaltwin_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/digitaltwin"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
)

// setup returns a simulated hub and a client wired to it in process with
// the service policy.
func setup(t *testing.T) (*httpmock.Hub, *digitaltwin.Client) {
	t.Helper()
	hub := httpmock.New(nil)
	client, err := digitaltwin.NewClientFromConnectionString(hub.ConnectionString("service"),
		&iothub.ClientOptions{Transport: hub.RoundTripper(), Retry: iothub.RetryOptions{MinDelay: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return hub, client
}

// lastRequest returns the hub's last request.
func lastRequest(t *testing.T, hub *httpmock.Hub) httpmock.Request {
	t.Helper()
	rs := hub.Requests()
	if len(rs) == 0 {
		t.Fatal("no request reached the hub")
	}
	return rs[len(rs)-1]
}

func TestGetWire(t *testing.T) {
	t.Parallel()
	hub, client := setup(t)
	d := hub.AddDevice("dev#1?x", nil)
	d.SetModelID("dtmi:com:example:Thermostat;1")
	if err := d.SetReported(`{"targetTemperature":{"value":21,"ac":200,"av":1,"ad":"ok"},"firmware":{"version":"1.0"},
		"thermostat1":{"__t":"c","maxTemp":25.5}}`); err != nil {
		t.Fatal(err)
	}

	twin, err := client.Get(t.Context(), "dev#1?x", nil)
	if err != nil {
		t.Fatal(err)
	}
	req := lastRequest(t, hub)
	if req.Method != http.MethodGet || req.Path != "/digitaltwins/dev%231%3Fx" || req.RawQuery != "api-version=2021-04-12" || len(req.Body) != 0 {
		t.Errorf("sent %s %s?%s body %q", req.Method, req.Path, req.RawQuery, req.Body)
	}
	snap, _ := hub.Twin("dev#1?x", "")
	if want := `W/"` + snap["etag"].(string) + `"`; twin.ETag != want {
		t.Errorf("ETag %q, want %q", twin.ETag, want)
	}
	if twin.ID != "dev#1?x" || twin.ModelID != "dtmi:com:example:Thermostat;1" {
		t.Errorf("ID %q, ModelID %q", twin.ID, twin.ModelID)
	}
	props := map[string]string{}
	for k, v := range twin.Properties {
		props[k] = string(v)
	}
	if diff := cmp.Diff(map[string]string{"targetTemperature": "21", "firmware": `{"version":"1.0"}`}, props); diff != "" {
		t.Errorf("root properties (an object-typed one included) (-want +got):\n%s", diff)
	}
	md := twin.Metadata["targetTemperature"]
	if md.AckCode != 200 || md.AckVersion != 1 || md.AckDescription != "ok" || md.LastUpdateTime.IsZero() || md.DesiredValue != nil {
		t.Errorf("targetTemperature metadata: %+v", md)
	}
	th, ok := twin.Components["thermostat1"]
	if !ok || string(th.Properties["maxTemp"]) != "25.5" || th.Metadata["maxTemp"].LastUpdateTime.IsZero() {
		t.Errorf("thermostat1: %+v (present %v)", th, ok)
	}
	if len(twin.Components) != 1 {
		t.Errorf("components: %v", twin.Components)
	}
	var raw map[string]any
	if err := json.Unmarshal(twin.Raw, &raw); err != nil || raw["$dtId"] != "dev#1?x" {
		t.Errorf("Raw %s (%v)", twin.Raw, err)
	}
}

// TestUnmarshalDocSample decodes the digital twin of IoT Hub's Plug and
// Play documentation (howto-manage-digital-twin.md).
func TestUnmarshalDocSample(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/get-digital-twin.json")
	if err != nil {
		t.Fatal(err)
	}
	var twin digitaltwin.DigitalTwin
	if err := json.Unmarshal(b, &twin); err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	want := digitaltwin.DigitalTwin{
		ID:         "sample-device",
		ModelID:    "dtmi:com:example:TemperatureController;1",
		Properties: map[string]json.RawMessage{"serialNumber": json.RawMessage(`"alwinexlepaho8329"`)},
		Metadata: map[string]digitaltwin.PropertyMetadata{
			"serialNumber": {LastUpdateTime: at("2020-07-17T06:10:31.9609233Z")},
		},
		Components: map[string]digitaltwin.Component{
			"thermostat1": {
				Properties: map[string]json.RawMessage{
					"maxTempSinceLastReboot": json.RawMessage(`25.3`),
					"targetTemperature":      json.RawMessage(`20.4`),
				},
				Metadata: map[string]digitaltwin.PropertyMetadata{
					"targetTemperature": {
						DesiredValue: json.RawMessage(`20.4`), DesiredVersion: 4, AckVersion: 4, AckCode: 200,
						AckDescription: "Successfully executed patch", LastUpdateTime: at("2020-07-17T06:11:04.9309159Z"),
					},
					"maxTempSinceLastReboot": {LastUpdateTime: at("2020-07-17T06:10:31.9609233Z")},
				},
			},
		},
		Raw: b,
	}
	// Raw properties compare as compact JSON.
	if diff := cmp.Diff(want, twin, cmp.Transformer("compact", compact)); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
}

func compact(m json.RawMessage) string {
	var b strings.Builder
	var v any
	if err := json.Unmarshal(m, &v); err != nil {
		return "invalid: " + string(m)
	}
	out, _ := json.Marshal(v)
	b.Write(out)
	return b.String()
}

func TestUpdateWire(t *testing.T) {
	t.Parallel()
	hub, client := setup(t)
	hub.AddDevice("dev+1", nil)
	twin, err := client.Get(t.Context(), "dev+1", nil)
	if err != nil {
		t.Fatal(err)
	}

	var p digitaltwin.Patch
	p.AddProperty("fanSpeed", 2.5)
	p.ReplaceComponentProperty("thermostat1", "targetTemperature", map[string]any{"low": 18, "high": 22})
	p.AddComponent("thermostat2", map[string]any{"targetTemperature": 19})
	p.RemoveProperty("old")
	res, err := client.Update(t.Context(), "dev+1", p, &digitaltwin.UpdateOptions{IfMatch: twin.ETag})
	if err != nil {
		t.Fatal(err)
	}
	req := lastRequest(t, hub)
	if req.Method != http.MethodPatch || req.Path != "/digitaltwins/dev%2B1" || req.RawQuery != "api-version=2021-04-12" {
		t.Errorf("sent %s %s?%s", req.Method, req.Path, req.RawQuery)
	}
	wantBody := `[{"op":"add","path":"/fanSpeed","value":2.5},` +
		`{"op":"replace","path":"/thermostat1/targetTemperature","value":{"high":22,"low":18}},` +
		`{"op":"add","path":"/thermostat2","value":{"targetTemperature":19,"$metadata":{}}},` +
		`{"op":"remove","path":"/old"}]`
	if diff := cmp.Diff(wantBody, string(req.Body)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	if got := req.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", got)
	}
	if got := req.Header.Get("If-Match"); got != twin.ETag || !strings.HasPrefix(got, `W/"`) {
		t.Errorf("If-Match %q, want the weak ETag of the Get, %q", got, twin.ETag)
	}
	snap, _ := hub.Twin("dev+1", "")
	if want := `W/"` + snap["etag"].(string) + `"`; res.ETag != want || res.ETag == twin.ETag {
		t.Errorf("result ETag %q, want the new %q", res.ETag, want)
	}
	if want := "https://" + hub.HostName() + "/digitaltwins/dev+1"; res.Location != want {
		t.Errorf("Location %q, want %q", res.Location, want)
	}

	// No options, or an empty IfMatch: no If-Match header.
	var q digitaltwin.Patch
	q.RemoveComponent("thermostat2")
	for _, opts := range []*digitaltwin.UpdateOptions{nil, {}} {
		if _, err := client.Update(t.Context(), "dev+1", q, opts); err != nil {
			t.Fatal(err)
		}
		if h := lastRequest(t, hub).Header; len(h.Values("If-Match")) != 0 {
			t.Errorf("options %+v sent If-Match %q", opts, h.Values("If-Match"))
		}
	}
}

func TestIfMatchForms(t *testing.T) {
	t.Parallel()
	hub, client := setup(t)
	hub.AddDevice("d", nil)
	tests := []struct {
		name     string
		in, want func(etag string) string
	}{
		{"weak, as Get returns it", func(e string) string { return `W/"` + e + `"` }, func(e string) string { return `W/"` + e + `"` }},
		{"bare", func(e string) string { return e }, func(e string) string { return `"` + e + `"` }},
		{"quoted", func(e string) string { return `"` + e + `"` }, func(e string) string { return `"` + e + `"` }},
		{"wildcard", func(string) string { return "*" }, func(string) string { return `"*"` }},
		{"quoted wildcard", func(string) string { return `"*"` }, func(string) string { return `"*"` }},
	}
	for i, tt := range tests {
		snap, _ := hub.Twin("d", "")
		etag := snap["etag"].(string)
		var p digitaltwin.Patch
		p.AddProperty("p", i) // a new value each time, so the twin's ETag changes
		if _, err := client.Update(t.Context(), "d", p, &digitaltwin.UpdateOptions{IfMatch: tt.in(etag)}); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		if got, want := lastRequest(t, hub).Header.Get("If-Match"), tt.want(etag); got != want {
			t.Errorf("%s: sent If-Match %q, want %q", tt.name, got, want)
		}
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	hub, client := setup(t)
	hub.AddDevice("d", nil)
	var p digitaltwin.Patch
	p.AddProperty("p", 1)

	_, err := client.Get(t.Context(), "ghost", nil)
	if he, ok := errors.AsType[*iothub.Error](err); !ok || !errors.Is(err, iothub.ErrDeviceNotFound) || iothub.MayHaveRun(err) || he.Operation != "Get" {
		t.Errorf("Get of an unknown device: %v", err)
	}
	_, err = client.Update(t.Context(), "ghost", p, nil)
	if !errors.Is(err, iothub.ErrDeviceNotFound) || iothub.MayHaveRun(err) {
		t.Errorf("Update of an unknown device: %v", err)
	}

	_, err = client.Update(t.Context(), "d", p, &digitaltwin.UpdateOptions{IfMatch: `W/"AAAAAAAAAAA="`})
	if he, ok := errors.AsType[*iothub.Error](err); !ok || !errors.Is(err, iothub.ErrPreconditionFailed) || he.Code != iothub.ErrorCodePreconditionFailed || iothub.MayHaveRun(err) {
		t.Errorf("stale If-Match: %v", err)
	}

	// A rule the builder does not check: the twin's desired size.
	var big digitaltwin.Patch
	for i := range 10 {
		big.AddProperty(fmt.Sprintf("p%d", i), strings.Repeat("x", 4000))
	}
	_, err = client.Update(t.Context(), "d", big, nil)
	if he, ok := errors.AsType[*iothub.Error](err); !ok || !errors.Is(err, iothub.ErrBadRequest) || he.Code != iothub.ErrorCodeArgumentInvalid || he.Attempts != 1 {
		t.Errorf("oversized desired: %v", err)
	}
}

func TestUpdateRetriedAfterUnknownOutcome(t *testing.T) {
	t.Parallel()
	hub, client := setup(t)
	hub.AddDevice("d", nil)
	// The first attempt is applied, but its answer is lost.
	hub.AddFault(httpmock.Fault{Operation: httpmock.OperationTwin, Drop: httpmock.DropAfterDelivery})
	var p digitaltwin.Patch
	p.AddProperty("p", 1)

	// Unconditional: the retry applies the same values and succeeds.
	if _, err := client.Update(t.Context(), "d", p, nil); err != nil {
		t.Errorf("unconditional update after a lost answer: %v", err)
	}

	// Conditional: the retry meets the twin the first attempt changed.
	twin, err := client.Get(t.Context(), "d", nil)
	if err != nil {
		t.Fatal(err)
	}
	hub.AddFault(httpmock.Fault{Operation: httpmock.OperationTwin, Drop: httpmock.DropAfterDelivery})
	var q digitaltwin.Patch
	q.AddProperty("p", 2)
	_, err = client.Update(t.Context(), "d", q, &digitaltwin.UpdateOptions{IfMatch: twin.ETag})
	he, ok := errors.AsType[*iothub.Error](err)
	if !ok || !errors.Is(err, iothub.ErrPreconditionFailed) || !he.EarlierAttemptMayHaveRun || !errors.Is(err, iothub.ErrOutcomeUnknown) || !iothub.MayHaveRun(err) {
		t.Errorf("conditional update after a lost answer: %v", err)
	}
	if got, _ := hub.DigitalTwin("d"); fmt.Sprint(got["$metadata"].(map[string]any)["p"].(map[string]any)["desiredValue"]) != "2" {
		t.Errorf("the first attempt's change is not there: %v", got)
	}
}

func TestSecretsStaySecret(t *testing.T) {
	t.Parallel()
	hub := httpmock.New(nil)
	cs := hub.ConnectionString("service")
	p, _ := hub.Policy("service")
	client, err := digitaltwin.NewClientFromConnectionString(cs, &iothub.ClientOptions{Transport: hub.RoundTripper()})
	if err != nil {
		t.Fatal(err)
	}
	_, getErr := client.Get(t.Context(), "ghost", nil)
	var patch digitaltwin.Patch
	patch.AddProperty("bad name", 1)
	_, argErr := client.Update(t.Context(), "d", patch, nil)
	outputs := []string{
		fmt.Sprintf("%v", client), fmt.Sprintf("%+v", client), fmt.Sprintf("%#v", client), client.String(),
		fmt.Sprintf("%v", *client), fmt.Sprintf("%+v", *client), fmt.Sprintf("%#v", *client),
		fmt.Sprint(getErr), fmt.Sprintf("%+v", getErr), fmt.Sprint(argErr),
	}
	for _, out := range outputs {
		if strings.Contains(out, p.Key) || strings.Contains(out, "SharedAccessSignature") || strings.Contains(out, "sig=") {
			t.Errorf("output leaks a secret: %s", out)
		}
	}
	if !strings.Contains(client.String(), hub.HostName()) {
		t.Errorf("String() = %q, want the host name", client.String())
	}
	// A bad connection string's error does not quote its key either.
	_, err = digitaltwin.NewClientFromConnectionString(strings.Replace(cs, "HostName=", "HostName=bad host;", 1), nil)
	if err == nil || strings.Contains(err.Error(), p.Key) {
		t.Errorf("constructor error %v", err)
	}
}
