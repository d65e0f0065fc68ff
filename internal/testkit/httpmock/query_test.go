package httpmock

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// runQuery posts a query and returns the answer.
func runQuery(t testing.TB, h *Hub, client *http.Client, q string, hdr http.Header) result {
	t.Helper()
	return send(t.Context(), t, h, client, call{path: "/devices/query", body: string(marshal(map[string]string{"query": q})), header: hdr})
}

// queryFixture is a hub with a few devices and modules with tags and
// properties.
func queryFixture(t testing.TB) *Hub {
	h := New(nil)
	add := func(id, tags, desired, reported string, disabled bool) *Device {
		d := h.AddDevice(id, &DeviceOptions{Disabled: disabled, Offline: id == "d3"})
		h.mu.Lock()
		defer h.mu.Unlock()
		u, e := parseTwinUpdate([]byte(`{"tags":`+tags+`,"properties":{"desired":`+desired+`}}`), id, "", true)
		if e != nil {
			t.Fatal(e.message)
		}
		if e := h.applyTwinUpdate(&d.reg, u, true, d.reg.connUpdated); e != nil {
			t.Fatal(e.message)
		}
		if err := d.reg.setReported(h, reported, d.reg.connUpdated); err != nil {
			t.Fatal(err)
		}
		return d
	}
	add("d1", `{"region":"US","floor":1}`, `{"fw":"1.0"}`, `{"status":"ok","temp":20.5}`, false)
	add("d2", `{"region":"EU","floor":2}`, `{"fw":"1.1"}`, `{"status":"ok","temp":30}`, false)
	add("d3", `{"region":"US","floor":3}`, `{}`, `{"status":"failed"}`, true)
	add("d4", `{"floor":"4"}`, `{}`, `{}`, false)
	h.Device("d1").AddModule("mA")
	h.Device("d1").AddModule("mB").SetReported(`{"status":"scanning"}`)
	h.Device("d2").AddModule("mA").SetReported(`{"status":"scanning"}`)
	return h
}

// ids extracts "deviceId[/moduleId]" from query items.
func ids(t testing.TB, body []byte) []string {
	t.Helper()
	var items []map[string]any
	if err := json.Unmarshal(body, &items); err != nil {
		t.Fatalf("not a bare array: %s", body)
	}
	out := []string{}
	for _, it := range items {
		s, _ := it["deviceId"].(string)
		if m, ok := it["moduleId"].(string); ok {
			s += "/" + m
		}
		out = append(out, s)
	}
	return out
}

func TestQueryWhere(t *testing.T) {
	t.Parallel()
	h := queryFixture(t)
	c := inProcess(h)
	tests := []struct {
		q    string
		want []string
	}{
		{"SELECT * FROM devices", []string{"d1", "d2", "d3", "d4"}},
		{"select * from Devices where tags.region = 'US'", []string{"d1", "d3"}},
		{`SELECT * FROM devices WHERE tags.region = "US" AND status = 'enabled'`, []string{"d1"}},
		{"SELECT * FROM devices WHERE tags.region = 'EU' OR tags.region = 'US' AND tags.floor = 3", []string{"d2", "d3"}},
		{"SELECT * FROM devices WHERE (tags.region = 'EU' OR tags.region = 'US') AND tags.floor = 3", []string{"d3"}},
		{"SELECT * FROM devices WHERE NOT tags.region = 'US'", []string{"d2", "d4"}},
		{"SELECT * FROM devices WHERE tags.floor >= 2", []string{"d2", "d3"}},
		{"SELECT * FROM devices WHERE tags.floor < 0x3", []string{"d1", "d2"}},
		{"SELECT * FROM devices WHERE tags.floor != 1", []string{"d2", "d3"}},
		{"SELECT * FROM devices WHERE tags.floor <> -1", []string{"d1", "d2", "d3"}},
		{"SELECT * FROM devices WHERE tags.floor = '4'", []string{"d4"}},
		{"SELECT * FROM devices WHERE deviceId IN ['d1', 'd4', 'zz']", []string{"d1", "d4"}},
		{"SELECT * FROM devices WHERE deviceId NIN ['d1', 'd4']", []string{"d2", "d3"}},
		{"SELECT * FROM devices WHERE IS_DEFINED(tags.region)", []string{"d1", "d2", "d3"}},
		{"SELECT * FROM devices WHERE NOT is_defined(properties.desired.fw)", []string{"d3", "d4"}},
		{"SELECT * FROM devices WHERE properties.reported.temp > 25", []string{"d2"}},
		{"SELECT * FROM devices WHERE properties.reported.status = 'ok' AND properties.desired.fw = '1.1'", []string{"d2"}},
		{"SELECT * FROM devices WHERE ConnectionState = 'Disconnected'", []string{"d3"}},
		{"SELECT * FROM devices WHERE capabilities.iotEdge = false AND DEVICEID = 'd4'", []string{"d4"}},
		{"SELECT * FROM devices WHERE tags = 'x'", []string{}},
		{"SELECT * FROM devices WHERE statusReason = null", []string{"d1", "d2", "d3", "d4"}},
		{"SELECT * FROM devices WHERE deviceId = 'd\\u0031'", []string{"d1"}},
		{"SELECT TOP 2 * FROM devices", []string{"d1", "d2"}},
		{"SELECT * FROM devices.modules", []string{"d1/mA", "d1/mB", "d2/mA"}},
		{"SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning' AND deviceId IN ['d1']", []string{"d1/mB"}},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			t.Parallel()
			r := runQuery(t, h, c, tt.q, nil)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if got := r.header.Get("x-ms-item-type"); got != "twin" {
				t.Errorf("x-ms-item-type %q", got)
			}
			if _, ok := r.header["X-Ms-Continuation"]; ok {
				t.Errorf("continuation on the only page")
			}
			if diff := cmp.Diff(tt.want, ids(t, r.body)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestQueryProjectionsAndAggregates(t *testing.T) {
	t.Parallel()
	h := queryFixture(t)
	c := inProcess(h)
	tests := []struct{ q, want string }{
		{"SELECT deviceId, tags.region AS r FROM devices WHERE tags.floor <= 2",
			`[{"deviceId":"d1","r":"US"},{"deviceId":"d2","r":"EU"}]`},
		{"SELECT COUNT() FROM devices", `[{"$1":4}]`},
		{"SELECT COUNT() AS n FROM devices WHERE tags.region = 'US'", `[{"n":2}]`},
		{"SELECT tags.region AS region, COUNT() AS numberOfDevices FROM devices GROUP BY tags.region",
			`[{"numberOfDevices":1,"region":"EU"},{"numberOfDevices":2,"region":"US"},{"numberOfDevices":1}]`},
		{"SELECT properties.reported.status, COUNT() AS n FROM devices.modules GROUP BY properties.reported.status",
			`[{"n":2,"status":"scanning"},{"n":1}]`},
	}
	for _, tt := range tests {
		r := runQuery(t, h, c, tt.q, nil)
		if r.status != 200 || r.header.Get("x-ms-item-type") != "raw" {
			t.Errorf("%s: status %d type %q: %s", tt.q, r.status, r.header.Get("x-ms-item-type"), r.body)
			continue
		}
		if diff := cmp.Diff(tt.want, string(r.body)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.q, diff)
		}
	}
}

func TestQueryErrors(t *testing.T) {
	t.Parallel()
	h := queryFixture(t)
	c := inProcess(h)
	tests := []struct {
		name, q string
		hdr     http.Header
		body    string // raw body instead of q
	}{
		{name: "empty", q: ""},
		{name: "no FROM", q: "SELECT *"},
		{name: "bad collection", q: "SELECT * FROM things"},
		{name: "jobs projection", q: "SELECT deviceId FROM devices.jobs"},
		{name: "arithmetic", q: "SELECT * FROM devices WHERE tags.a + 1 = 2"},
		{name: "unknown function", q: "SELECT * FROM devices WHERE STARTSWITH(deviceId, 'd')"},
		{name: "unterminated string", q: "SELECT * FROM devices WHERE deviceId = 'd1"},
		{name: "bad escape", q: `SELECT * FROM devices WHERE deviceId = 'd\q'`},
		{name: "trailing", q: "SELECT * FROM devices WHERE deviceId = 'd1' ORDER BY deviceId"},
		{name: "unbalanced", q: "SELECT * FROM devices WHERE (deviceId = 'd1'"},
		{name: "IN without list", q: "SELECT * FROM devices WHERE deviceId IN 'd1'"},
		{name: "AVG", q: "SELECT AVG(tags.floor) FROM devices"},
		{name: "mixed aggregate", q: "SELECT deviceId, COUNT() FROM devices"},
		{name: "group by without count", q: "SELECT tags.region FROM devices GROUP BY tags.region"},
		{name: "bad TOP", q: "SELECT TOP x * FROM devices"},
		{name: "page size 0", q: "SELECT * FROM devices", hdr: http.Header{"X-Ms-Max-Item-Count": {"0"}}},
		{name: "page size 1001", q: "SELECT * FROM devices", hdr: http.Header{"X-Ms-Max-Item-Count": {"1001"}}},
		{name: "page size text", q: "SELECT * FROM devices", hdr: http.Header{"X-Ms-Max-Item-Count": {"ten"}}},
		{name: "bad token", q: "SELECT * FROM devices", hdr: http.Header{"X-Ms-Continuation": {"garbage!"}}},
		{name: "token of another query", q: "SELECT * FROM devices", hdr: http.Header{"X-Ms-Continuation": {cursor{Device: "d1", Hash: 1}.token()}}},
		{name: "query not a string", body: `{"query":5}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := tt.body
			if body == "" {
				body = string(marshal(map[string]string{"query": tt.q}))
			}
			r := send(t.Context(), t, h, c, call{path: "/devices/query", body: body, header: tt.hdr})
			got := decodeErr(t, r)
			if got.Status != 400 || (got.Code != 400004 && got.Code != 400005) || got.Message == "" {
				t.Errorf("got %+v", got)
			}
		})
	}
	if got := decodeErr(t, send(t.Context(), t, h, c, call{path: "/devices/query", body: `{}`})); got.Code != 400005 {
		t.Errorf("missing query: %+v", got)
	}
}

func TestQueryPaging(t *testing.T) {
	t.Parallel()
	h := New(nil)
	const n = 2500
	for i := range n {
		h.AddDevice(fmt.Sprintf("dev-%04d", i), &DeviceOptions{Offline: true})
	}
	h.Device("dev-0000").AddModule("m1")
	c := inProcess(h)
	for _, size := range []int{1, 7, 100, 1000} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			t.Parallel()
			seen := make(map[string]int)
			token := ""
			pages := 0
			for {
				hdr := http.Header{"X-Ms-Max-Item-Count": {strconv.Itoa(size)}}
				if token != "" {
					hdr.Set("X-Ms-Continuation", token)
				}
				r := runQuery(t, h, c, "SELECT deviceId FROM devices", hdr)
				if r.status != 200 {
					t.Fatalf("status %d: %s", r.status, r.body)
				}
				pages++
				got := ids(t, r.body)
				if len(got) > size || len(got) == 0 {
					t.Fatalf("page of %d items", len(got))
				}
				for _, id := range got {
					seen[id]++
				}
				vals, ok := r.header["X-Ms-Continuation"]
				if !ok {
					break
				}
				if len(vals) != 1 || vals[0] == "" {
					t.Fatalf("empty continuation header")
				}
				token = vals[0]
			}
			if len(seen) != n {
				t.Errorf("saw %d devices, want %d", len(seen), n)
			}
			for id, k := range seen {
				if k != 1 {
					t.Errorf("%s seen %d times", id, k)
				}
			}
			if want := (n + size - 1) / size; pages != want {
				t.Errorf("%d pages, want %d", pages, want)
			}
		})
	}
}

func TestQueryTopAcrossPages(t *testing.T) {
	t.Parallel()
	h := New(nil)
	for i := range 10 {
		h.AddDevice(fmt.Sprintf("dev-%04d", i), nil)
	}
	c := inProcess(h)
	// TOP across pages, and stability under concurrent deletion.
	r := runQuery(t, h, c, "SELECT TOP 3 * FROM devices", http.Header{"X-Ms-Max-Item-Count": {"2"}})
	tok := r.header.Get("X-Ms-Continuation")
	h.RemoveDevice("dev-0001")
	r = runQuery(t, h, c, "SELECT TOP 3 * FROM devices", http.Header{"X-Ms-Max-Item-Count": {"2"}, "X-Ms-Continuation": {tok}})
	if diff := cmp.Diff([]string{"dev-0002"}, ids(t, r.body)); diff != "" || r.header.Get("X-Ms-Continuation") != "" {
		t.Errorf("TOP second page (-want +got):\n%s\ncontinuation %q", diff, r.header.Get("X-Ms-Continuation"))
	}
}

func TestQueryFault(t *testing.T) {
	t.Parallel()
	h := queryFixture(t)
	c := inProcess(h)
	h.AddFault(Fault{Operation: OperationQuery, Code: 429001, RetryAfter: "1"})
	h.AddFault(Fault{Operation: OperationMethod, Code: 503005}) // queries never see it
	got := decodeErr(t, runQuery(t, h, c, "SELECT * FROM devices", nil))
	if got.Status != 429 || got.Code != 429001 {
		t.Errorf("throttled: %+v", got)
	}
	if r := runQuery(t, h, c, "SELECT * FROM devices", nil); r.status != 200 {
		t.Errorf("second query: %d %s", r.status, r.body)
	}
	// A registry fault after the operation: the device is created but the
	// answer is lost.
	h.AddFault(Fault{Operation: OperationRegistry, DeviceID: "lost", AfterDelivery: true, Code: 500001})
	r := send(t.Context(), t, h, c, call{method: "PUT", path: "/devices/lost", body: `{}`, auth: owner(t, h)})
	if got := decodeErr(t, r); got.Code != 500001 || h.Device("lost") == nil {
		t.Errorf("after-delivery registry fault: %+v, device %v", got, h.Device("lost"))
	}
	h.AddFault(Fault{Operation: OperationTwin, Drop: DropBeforeWrite})
	if r := send(t.Context(), t, h, c, call{method: "GET", path: "/twins/d1"}); r.err == nil {
		t.Errorf("twin drop: %d", r.status)
	}
}

func FuzzQueryParse(f *testing.F) {
	for _, s := range []string{
		"SELECT * FROM devices",
		"SELECT TOP 5 deviceId AS d, COUNT() FROM devices.modules WHERE NOT (a.b = 'x' OR c IN [1, -2.5e3, 0x1F, true, null]) GROUP BY a",
		`SELECT * FROM devices WHERE IS_DEFINED(tags.x) AND tags.y NIN ["a\"b", '\u00e9']`,
		"SELECT * FROM devices WHERE ((((",
		"SELECT",
		"'",
	} {
		f.Add(s)
	}
	tw := map[string]any{"deviceId": "d", "tags": map[string]any{"a": json.Number("1")}}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := parseQuery(s)
		if err != nil {
			return
		}
		if q.where != nil {
			q.where.eval(tw)
		}
		project(q, tw)
	})
}
