package registry

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hubkit/iothub"
)

// roundTrip decodes a captured wire sample, checks it, encodes it again and
// decodes that, and checks that nothing was lost on the way.
func roundTrip[T any](t *testing.T, file string, check func(T)) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var first T
	if err := json.Unmarshal(b, &first); err != nil {
		t.Fatalf("decode %s: %v", file, err)
	}
	check(first)
	again, err := json.Marshal(first)
	if err != nil {
		t.Fatal(err)
	}
	var second T
	if err := json.Unmarshal(again, &second); err != nil {
		t.Fatalf("decode re-encoded %s: %v\n%s", file, err, again)
	}
	if diff := cmp.Diff(first, second, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("%s round trip (-first +second):\n%s", file, diff)
	}
}

func TestDeviceWire(t *testing.T) {
	t.Parallel()
	roundTrip(t, "testdata/device.json", func(d Device) {
		want := Device{
			DeviceID: "MyJavaDevice", GenerationID: "637546501104263193", ETag: "MzE4NzUxOTU1",
			ConnectionState: ConnectionStateDisconnected, Status: DeviceStatusEnabled,
			LastActivityTime: Time{time.Date(2021, 4, 20, 8, 15, 10, 426319300, time.UTC)},
			Authentication: &Authentication{Type: AuthenticationTypeSAS,
				SymmetricKey:   &SymmetricKey{PrimaryKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", SecondaryKey: "HxwdHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA="},
				X509Thumbprint: &X509Thumbprint{}},
			Capabilities: &Capabilities{IoTEdge: false},
			ParentScopes: []string{},
		}
		if diff := cmp.Diff(want, d); diff != "" {
			t.Errorf("device (-want +got):\n%s", diff)
		}
		if !d.StatusUpdatedTime.IsZero() || !d.ConnectionStateUpdatedTime.IsZero() {
			t.Errorf("0001-01-01T00:00:00 must read as never: %v", d.StatusUpdatedTime)
		}
	})
}

func TestTwinWire(t *testing.T) {
	t.Parallel()
	roundTrip(t, "testdata/twin.json", func(tw Twin) {
		if tw.StatusUpdateTime.IsZero() != true || tw.LastActivityTime.Year() != 2020 || tw.Version != 15 {
			t.Errorf("times or version: %+v", tw)
		}
		if tw.Tags["plant"] != "3" || tw.Properties.Reported["firmware"] != "1.4.2" || tw.Properties.Desired["$version"] != float64(4) {
			t.Errorf("tags or properties: %+v", tw)
		}
		if tw.ETag != "AAAAAAAAAAc=" || tw.DeviceETag != "NTk0ODUyODgx" || tw.AuthenticationType != AuthenticationTypeSAS || tw.ModelID == "" {
			t.Errorf("identity fields: %+v", tw)
		}
	})
}

func TestModuleWire(t *testing.T) {
	t.Parallel()
	roundTrip(t, "testdata/module.json", func(m Module) {
		if m.ModuleID != "$edgeAgent" || m.ManagedBy != "IotEdge" || m.ConnectionState != ConnectionStateConnected || m.Authentication.Type != AuthenticationTypeNone {
			t.Errorf("module: %+v", m)
		}
		if !m.LastActivityTime.IsZero() || m.ConnectionStateUpdatedTime.IsZero() {
			t.Errorf("times: %+v", m)
		}
	})
}

func TestUnknownEnumsKept(t *testing.T) {
	t.Parallel()
	var d Device
	if err := json.Unmarshal([]byte(`{"deviceId":"x","status":"quarantined","connectionState":"Reconnecting","authentication":{"type":"tpm"}}`), &d); err != nil {
		t.Fatal(err)
	}
	if d.Status != "quarantined" || d.ConnectionState != "Reconnecting" || d.Authentication.Type != "tpm" {
		t.Errorf("unknown values must survive: %+v", d)
	}
}

func TestTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Time
	}{
		{`"0001-01-01T00:00:00"`, time.Time{}},
		{`"0001-01-01T00:00:00Z"`, time.Time{}},
		{`null`, time.Time{}},
		{`"2020-07-17T06:12:26.8402249Z"`, time.Date(2020, 7, 17, 6, 12, 26, 840224900, time.UTC)},
		{`"2020-07-17T06:12:26.8402249"`, time.Date(2020, 7, 17, 6, 12, 26, 840224900, time.UTC)},
		{`"2020-07-17T06:12:26"`, time.Date(2020, 7, 17, 6, 12, 26, 0, time.UTC)},
	}
	for _, tt := range tests {
		var got Time
		if err := json.Unmarshal([]byte(tt.in), &got); err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if !got.Equal(tt.want) {
			t.Errorf("%s = %v, want %v", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{`12`, `"yesterday"`} {
		var got Time
		if err := json.Unmarshal([]byte(bad), &got); err == nil {
			t.Errorf("%s: want an error", bad)
		}
	}
	if b, _ := json.Marshal(Time{}); string(b) != `"0001-01-01T00:00:00Z"` {
		t.Errorf("zero Time marshals as %s", b)
	}
}

func TestCheckTwinDoc(t *testing.T) {
	t.Parallel()
	deep := map[string]any{}
	cur := deep
	for range MaxTwinDepth {
		next := map[string]any{}
		cur["k"] = next
		cur = next
	}
	tests := []struct {
		name string
		doc  map[string]any
		want string // field named, "" for valid
	}{
		{"valid", map[string]any{"a": 1, "b": map[string]any{"c": "x", "d": nil, "e": true}}, ""},
		{"array", map[string]any{"a": []any{1}}, "T.a"},
		{"typed slice", map[string]any{"a": map[string]any{"b": []string{"x"}}}, "T.a.b"},
		{"dot in key", map[string]any{"a.b": 1}, "T.a.b"},
		{"dollar key", map[string]any{"$x": 1}, "T.$x"},
		{"space key", map[string]any{"a b": 1}, "T.a b"},
		{"too deep", deep, "T.k.k.k.k.k.k.k.k.k.k"},
	}
	for _, tt := range tests {
		err := checkTwinDoc("T", tt.doc, 1)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || err.field != tt.want):
			t.Errorf("%s: got %+v, want field %q", tt.name, err, tt.want)
		}
	}
}

func TestBulkErrorCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, wire string
		want       BulkError
	}{
		{"name", `{"deviceId":"a","errorCode":"DeviceAlreadyExists","errorStatus":"exists"}`,
			BulkError{DeviceID: "a", ErrorCode: iothub.ErrorCodeDeviceAlreadyExists, ErrorName: "DeviceAlreadyExists", ErrorStatus: "exists"}},
		{"number", `{"deviceId":"a","errorCode":409001,"errorStatus":"exists"}`,
			BulkError{DeviceID: "a", ErrorCode: iothub.ErrorCodeDeviceAlreadyExists, ErrorName: "DeviceAlreadyExists", ErrorStatus: "exists"}},
		{"unknown name", `{"deviceId":"a","errorCode":"SomethingNew","errorStatus":"?"}`,
			BulkError{DeviceID: "a", ErrorName: "SomethingNew", ErrorStatus: "?"}},
	}
	for _, tt := range tests {
		var got BulkError
		if err := json.Unmarshal([]byte(tt.wire), &got); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
		// Encoded and decoded again, nothing is lost.
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		var again BulkError
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(got, again); diff != "" {
			t.Errorf("%s round trip (-first +second):\n%s", tt.name, diff)
		}
	}
}
