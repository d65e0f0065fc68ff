package httpmock

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/google/go-cmp/cmp"
)

// owner is the call's auth for registry writes.
func owner(t testing.TB, h *Hub) string { return sasFor(t, h, "iothubowner") }

// decodeDevice decodes a 200 device answer and checks the ETag header.
func decodeDevice(t testing.TB, r result) deviceJSON {
	t.Helper()
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("status %d (%v): %s", r.status, r.err, r.body)
	}
	var d deviceJSON
	if err := json.Unmarshal(r.body, &d); err != nil {
		t.Fatal(err)
	}
	if got, want := r.header.Get("ETag"), `"`+d.Etag+`"`; got != want {
		t.Errorf("ETag header %q, want %q", got, want)
	}
	return d
}

func TestDeviceCRUD(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := New(nil)
		c := inProcess(h)
		auth := owner(t, h)
		put := func(path, body string, hdr http.Header) result {
			return send(t.Context(), t, h, c, call{method: "PUT", path: path, body: body, auth: auth, header: hdr})
		}
		get := func(path string) result {
			return send(t.Context(), t, h, c, call{method: "GET", path: path, auth: auth})
		}

		created := decodeDevice(t, put("/devices/d1", `{"deviceId":"d1"}`, nil))
		etagNum, err := base64.StdEncoding.DecodeString(created.Etag)
		if _, perr := strconv.Atoi(string(etagNum)); err != nil || perr != nil {
			t.Errorf("etag %q is not base64 of a decimal counter", created.Etag)
		}
		p, s := created.Authentication.SymmetricKey.PrimaryKey, created.Authentication.SymmetricKey.SecondaryKey
		if p == nil || s == nil || !validKey(*p) || !validKey(*s) || *p == *s {
			t.Errorf("keys not generated: %+v", created.Authentication)
		}
		want := deviceJSON{
			DeviceID: "d1", GenerationID: created.GenerationID, Etag: created.Etag,
			ConnectionState: "Disconnected", Status: "enabled",
			ConnectionStateUpdatedTime: neverTime, StatusUpdatedTime: neverTime, LastActivityTime: neverTime,
			Authentication: authJSON{SymmetricKey: created.Authentication.SymmetricKey, Type: "sas"},
			ParentScopes:   []string{},
		}
		if diff := cmp.Diff(want, created); diff != "" {
			t.Errorf("created (-want +got):\n%s", diff)
		}
		if _, err := strconv.ParseInt(created.GenerationID, 10, 64); err != nil {
			t.Errorf("generationId %q", created.GenerationID)
		}

		// Create again: 409001, not 412.
		if got := decodeErr(t, put("/devices/d1", `{}`, nil)); got.Status != 409 || got.Code != 409001 || got.Header != "DeviceAlreadyExists" {
			t.Errorf("second create: %+v", got)
		}
		// Update with a stale etag: 412001; with "*", *, W/"etag": 200.
		if got := decodeErr(t, put("/devices/d1", `{}`, http.Header{"If-Match": {`"bm9wZQ=="`}})); got.Code != 412001 {
			t.Errorf("stale etag: %+v", got)
		}
		time.Sleep(time.Second)
		upd := decodeDevice(t, put("/devices/d1", `{"status":"disabled","statusReason":"maintenance","connectionState":"Connected","etag":"x","cloudToDeviceMessageCount":9}`,
			http.Header{"If-Match": {`"` + created.Etag + `"`}}))
		if upd.Etag == created.Etag || upd.Status != "disabled" || *upd.StatusReason != "maintenance" ||
			upd.StatusUpdatedTime != formatTime(time.Now()) || upd.ConnectionState != "Disconnected" ||
			upd.CloudToDeviceMessageCount != 0 || upd.GenerationID != created.GenerationID {
			t.Errorf("update: %+v", upd)
		}
		if !strings.HasSuffix(upd.StatusUpdatedTime, "Z") || len(upd.StatusUpdatedTime) != len("2006-01-02T15:04:05.0000000Z") {
			t.Errorf("statusUpdatedTime %q", upd.StatusUpdatedTime)
		}
		for _, im := range []string{"*", `"*"`, "W/etag"} {
			if im == "W/etag" {
				im = `W/"` + upd.Etag + `"`
			}
			upd = decodeDevice(t, put("/devices/d1", `{"status":"enabled"}`, http.Header{"If-Match": {im}}))
		}
		if got := decodeDevice(t, get("/devices/d1")); got.Etag != upd.Etag {
			t.Errorf("GET etag %q, PUT etag %q", got.Etag, upd.Etag)
		}
		// Update of a missing device: 404001.
		if got := decodeErr(t, put("/devices/nope", `{}`, http.Header{"If-Match": {"*"}})); got.Code != 404001 {
			t.Errorf("update missing: %+v", got)
		}

		// Delete: stale etag 412, right etag 204, again 404.
		del := func(im string) result {
			hdr := http.Header{}
			if im != "" {
				hdr.Set("If-Match", im)
			}
			return send(t.Context(), t, h, c, call{method: "DELETE", path: "/devices/d1", auth: auth, header: hdr})
		}
		if got := decodeErr(t, del(`"stale"`)); got.Code != 412001 {
			t.Errorf("stale delete: %+v", got)
		}
		if r := del(`"` + upd.Etag + `"`); r.status != 204 || len(r.body) != 0 {
			t.Errorf("delete: %d %s", r.status, r.body)
		}
		if got := decodeErr(t, del("")); got.Code != 404001 {
			t.Errorf("delete again: %+v", got)
		}
		if got := decodeErr(t, get("/devices/d1")); got.Code != 404001 || got.Header != "DeviceNotFound" {
			t.Errorf("get deleted: %+v", got)
		}
	})
}

func TestDeviceValidation(t *testing.T) {
	t.Parallel()
	h := New(nil)
	c := inProcess(h)
	key16 := base64.StdEncoding.EncodeToString(make([]byte, 16))
	key65 := base64.StdEncoding.EncodeToString(make([]byte, 65))
	thumb := strings.Repeat("ab", 20)
	tests := []struct {
		name, path, body string
		wantCode         int // 0: 200
	}{
		{"odd but valid id", "/devices/a-b:c.d+e%25f_g%23h*i%3F!(j),k=l@m;n$o'", `{}`, 0},
		{"id too long", "/devices/" + strings.Repeat("a", 129), `{}`, 400004},
		{"id 128", "/devices/" + strings.Repeat("a", 128), `{}`, 0},
		{"id with space", "/devices/a%20b", `{}`, 400004},
		{"body id differs", "/devices/x1", `{"deviceId":"x2"}`, 400004},
		{"not an object", "/devices/x1", `[]`, 400006},
		{"bad status", "/devices/x1", `{"status":"paused"}`, 400004},
		{"status case", "/devices/x2", `{"status":"Disabled"}`, 0},
		{"one key", "/devices/x1", `{"authentication":{"type":"sas","symmetricKey":{"primaryKey":"` + key16 + `"}}}`, 400004},
		{"short key", "/devices/x1", `{"authentication":{"symmetricKey":{"primaryKey":"YWJj","secondaryKey":"YWJj"}}}`, 400004},
		{"long key", "/devices/x1", `{"authentication":{"symmetricKey":{"primaryKey":"` + key65 + `","secondaryKey":"` + key16 + `"}}}`, 400004},
		{"own keys", "/devices/x3", `{"authentication":{"symmetricKey":{"primaryKey":"` + key16 + `","secondaryKey":"` + key16 + `"}}}`, 0},
		{"empty keys generated", "/devices/x4", `{"authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`, 0},
		{"self-signed", "/devices/x5", `{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"` + thumb + `"}}}`, 0},
		{"bad thumbprint", "/devices/x1", `{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"abc"}}}`, 400004},
		{"bad auth type", "/devices/x1", `{"authentication":{"type":"password"}}`, 400004},
		{"ca", "/devices/x6", `{"authentication":{"type":"certificateAuthority"}}`, 0},
		{"wrong type", "/devices/x1", `{"status":5}`, 400004},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := send(t.Context(), t, h, c, call{method: "PUT", path: tt.path, body: tt.body, auth: owner(t, h)})
			if tt.wantCode == 0 {
				decodeDevice(t, r)
				return
			}
			if got := decodeErr(t, r); got.Code != tt.wantCode {
				t.Errorf("got %+v, want %d", got, tt.wantCode)
			}
		})
	}
}

func TestDeviceKeysAndEdge(t *testing.T) {
	t.Parallel()
	h := New(nil)
	c := inProcess(h)
	r := send(t.Context(), t, h, c, call{method: "PUT", path: "/devices/edge1", auth: owner(t, h),
		body: `{"capabilities":{"iotEdge":true},"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"` + strings.Repeat("A", 64) + `"}}}`})
	d := decodeDevice(t, r)
	if d.DeviceScope == nil || *d.DeviceScope != "ms-azure-iot-edge://edge1-"+d.GenerationID || !d.Capabilities.IotEdge {
		t.Errorf("edge device: %+v", d)
	}
	if d.Authentication.SymmetricKey.PrimaryKey != nil || d.Authentication.Type != "selfSigned" {
		t.Errorf("auth: %+v", d.Authentication)
	}
}

func TestRegistryRights(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", nil)
	c := inProcess(h)
	tests := []struct {
		method, path, policy string
		role                 Role
		wantOK               bool
	}{
		{"GET", "/devices/d1", "registryRead", 0, true},
		{"GET", "/devices/d1", "service", 0, false},
		{"PUT", "/devices/n1", "registryRead", 0, false},
		{"PUT", "/devices/n2", "registryReadWrite", 0, true},
		{"GET", "/statistics/devices", "registryRead", 0, true},
		{"GET", "/devices/d1", "", DataReader, true},
		{"PUT", "/devices/n3", "", DataReader, false},
		{"PUT", "/devices/n4", "", RegistryContributor, true},
		{"DELETE", "/devices/n4", "", DataContributor, true},
		{"PUT", "/devices/n5", "", TwinContributor, false},
		{"GET", "/twins/d1", "service", 0, true},
		{"GET", "/twins/d1", "registryRead", 0, false},
		{"GET", "/twins/d1", "", TwinContributor, true},
		{"PATCH", "/twins/d1", "", DataReader, false},
		{"POST", "/devices/query", "", DataReader, true},
		{"POST", "/devices/query", "", RegistryContributor, false},
	}
	for _, tt := range tests {
		auth := ""
		if tt.policy != "" {
			auth = sasFor(t, h, tt.policy)
		} else {
			tok, err := h.TokenCredential(tt.role, nil).GetToken(t.Context(), scopeOpts())
			if err != nil {
				t.Fatal(err)
			}
			auth = "Bearer " + tok.Token
		}
		body := "{}"
		if tt.path == "/devices/query" {
			body = `{"query":"SELECT * FROM devices"}`
		}
		if tt.method == "GET" || tt.method == "DELETE" {
			body = ""
		}
		r := send(t.Context(), t, h, c, call{method: tt.method, path: tt.path, auth: auth, body: body})
		if got := r.status < 300; got != tt.wantOK {
			t.Errorf("%s %s as %s%v: status %d %s", tt.method, tt.path, tt.policy, tt.role, r.status, r.body)
		}
	}
}

func TestModulesAndStats(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", nil)
	h.AddDevice("d2", &DeviceOptions{Disabled: true, Offline: true})
	c := inProcess(h)
	auth := owner(t, h)
	do := func(method, path, body string, hdr http.Header) result {
		return send(t.Context(), t, h, c, call{method: method, path: path, body: body, auth: auth, header: hdr})
	}
	r := do("PUT", "/devices/d1/modules/m1", `{"moduleId":"m1","deviceId":"d1","managedBy":"IotEdge"}`, nil)
	var m moduleJSON
	if r.status != 200 || json.Unmarshal(r.body, &m) != nil || m.ModuleID != "m1" || m.DeviceID != "d1" || *m.ManagedBy != "IotEdge" ||
		m.Authentication.Type != "sas" || m.Authentication.SymmetricKey.PrimaryKey == nil || r.header.Get("ETag") != `"`+m.Etag+`"` {
		t.Fatalf("module create: %d %s", r.status, r.body)
	}
	for _, tt := range []struct {
		method, path, body string
		hdr                http.Header
		wantCode           int
	}{
		{"PUT", "/devices/d1/modules/m1", `{}`, nil, 409301},
		{"PUT", "/devices/d1/modules/m1", `{}`, http.Header{"If-Match": {`"old"`}}, 412001},
		{"PUT", "/devices/d1/modules/m2", `{}`, http.Header{"If-Match": {"*"}}, 404010},
		{"PUT", "/devices/nope/modules/m1", `{}`, nil, 404001},
		{"PUT", "/devices/d1/modules/m3", `{"moduleId":"other"}`, nil, 400004},
		{"GET", "/devices/d1/modules/m9", "", nil, 404010},
		{"DELETE", "/devices/d1/modules/m9", "", nil, 404010},
	} {
		if got := decodeErr(t, do(tt.method, tt.path, tt.body, tt.hdr)); got.Code != tt.wantCode {
			t.Errorf("%s %s: %+v, want %d", tt.method, tt.path, got, tt.wantCode)
		}
	}
	r = do("GET", "/devices/d1/modules/", "", nil)
	var list []moduleJSON
	if r.status != 200 || json.Unmarshal(r.body, &list) != nil || len(list) != 1 || list[0].ModuleID != "m1" {
		t.Errorf("list modules: %d %s", r.status, r.body)
	}
	r = do("GET", "/statistics/devices", "", nil)
	if diff := cmp.Diff(`{"totalDeviceCount":2,"enabledDeviceCount":1,"disabledDeviceCount":1}`, string(r.body)); diff != "" {
		t.Errorf("device stats (-want +got):\n%s", diff)
	}
	r = do("GET", "/statistics/service", "", nil)
	if diff := cmp.Diff(`{"connectedDeviceCount":1}`, string(r.body)); diff != "" {
		t.Errorf("service stats (-want +got):\n%s", diff)
	}
	// Deleting the device removes modules and twin; methods then 404001.
	if r := do("DELETE", "/devices/d1", "", nil); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	if got := decodeErr(t, do("GET", "/twins/d1/modules/m1", "", nil)); got.Code != 404001 {
		t.Errorf("twin of deleted: %+v", got)
	}
	if got := decodeErr(t, do("POST", "/twins/d1/methods", methodBody("m", ""), nil)); got.Code != 404001 {
		t.Errorf("method on deleted: %+v", got)
	}
	if _, ok := h.Twin("d1", ""); ok || h.DeviceCount() != 1 {
		t.Errorf("Twin still there or count %d", h.DeviceCount())
	}
}

func TestSetOnlineAndDisabledFollowRegistry(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := New(nil)
		d := h.AddDevice("d1", &DeviceOptions{Offline: true})
		c := inProcess(h)
		get := func() deviceJSON {
			return decodeDevice(t, send(t.Context(), t, h, c, call{method: "GET", path: "/devices/d1", auth: owner(t, h)}))
		}
		before := get()
		if before.ConnectionState != "Disconnected" || before.ConnectionStateUpdatedTime != neverTime {
			t.Errorf("offline: %+v", before)
		}
		time.Sleep(time.Minute)
		d.SetOnline(true)
		d.SetDisabled(true)
		after := get()
		now := formatTime(time.Now())
		if after.ConnectionState != "Connected" || after.ConnectionStateUpdatedTime != now || after.LastActivityTime != now ||
			after.Status != "disabled" || after.StatusUpdatedTime != now || after.Etag == before.Etag {
			t.Errorf("after: %+v", after)
		}
	})
}

func TestTrailingSlashes(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", nil)
	c := inProcess(h)
	for _, path := range []string{"/devices", "/devices/", "/devices/?top=5"} {
		p, q := path, ""
		if i := strings.Index(path, "?"); i >= 0 {
			p, q = path[:i], path[i+1:]+"&api-version="+testAPIVersion
		}
		r := send(t.Context(), t, h, c, call{method: "GET", path: p, query: q, auth: owner(t, h)})
		var list []deviceJSON
		if r.status != 200 || json.Unmarshal(r.body, &list) != nil || len(list) != 1 {
			t.Errorf("GET %s: %d %s", path, r.status, r.body)
		}
	}
	for _, path := range []string{"/devices", "/devices/"} {
		r := send(t.Context(), t, h, c, call{path: path, auth: owner(t, h), body: `[{"id":"n` + strconv.Itoa(len(path)) + `","importMode":"create"}]`})
		if r.status != 200 {
			t.Errorf("POST %s: %d %s", path, r.status, r.body)
		}
	}
	if r := send(t.Context(), t, h, c, call{method: "GET", path: "/devices/d1/", auth: owner(t, h)}); r.status != 200 {
		t.Errorf("GET /devices/d1/: %d", r.status)
	}
}

func scopeOpts() policy.TokenRequestOptions {
	return policy.TokenRequestOptions{Scopes: []string{PublicCloudScope}}
}
