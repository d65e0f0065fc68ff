package httpmock

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/google/go-cmp/cmp"
)

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	h := New(nil)
	if got := h.HostName(); got != DefaultHostName {
		t.Errorf("HostName = %q", got)
	}
	var got []string
	for _, p := range h.Policies() {
		got = append(got, p.Name+" "+p.Rights.String())
		if k, err := decodeKey(p.Key); err != nil || len(k) != 32 {
			t.Errorf("policy %s: key %q is not base64 of 32 bytes", p.Name, p.Key)
		}
	}
	want := []string{
		"iothubowner RegistryRead|RegistryWrite|ServiceConnect|DeviceConnect",
		"service ServiceConnect",
		"device DeviceConnect",
		"registryRead RegistryRead",
		"registryReadWrite RegistryRead|RegistryWrite",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("policies (-want +got):\n%s", diff)
	}
	p, _ := h.Policy("service")
	if got, want := h.ConnectionString("service"), "HostName=test-hub.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey="+p.Key; got != want {
		t.Errorf("ConnectionString = %q, want %q", got, want)
	}
	if New(nil).ConnectionString("service") == h.ConnectionString("service") {
		t.Error("two hubs share a key")
	}
}

func TestNewOptions(t *testing.T) {
	t.Parallel()
	key := NewKey()
	h := New(&Options{HostName: "x.azure-devices.us", Policies: []Policy{{Name: "a", Key: key, Rights: ServiceConnect}, {Name: "b"}}})
	if p, _ := h.Policy("a"); p.Key != key {
		t.Errorf("key not kept")
	}
	if p, _ := h.Policy("b"); p.Key == "" {
		t.Errorf("empty key not generated")
	}
	if _, ok := h.Policy("service"); ok {
		t.Errorf("default policies kept alongside given ones")
	}
	if got := h.Scope(); got != "https://iothubs.azure.us/.default" {
		t.Errorf("Scope = %q", got)
	}
	for _, tt := range []struct {
		name string
		opts Options
	}{
		{"bad key", Options{Policies: []Policy{{Name: "a", Key: "not base64!"}}}},
		{"duplicate", Options{Policies: []Policy{{Name: "a"}, {Name: "a"}}}},
		{"empty name", Options{Policies: []Policy{{Key: key}}}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: New did not panic", tt.name)
				}
			}()
			New(&tt.opts)
		}()
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Errorf("ConnectionString of an unknown policy did not panic")
			}
		}()
		h.ConnectionString("nope")
	}()
}

func TestEntraScope(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]string{
		"h.azure-devices.net":    "https://iothubs.azure.net/.default",
		"H.Azure-Devices.US":     "https://iothubs.azure.us/.default",
		"h.azure-devices.cn:443": "https://iothubs.chinacloudapi.cn/.default",
		"localhost:8443":         "https://iothubs.azure.net/.default",
	} {
		if got := EntraScope(host); got != want {
			t.Errorf("EntraScope(%q) = %q, want %q", host, got, want)
		}
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", &DeviceOptions{Handler: echo}).AddModule("m1").SetDefaultHandler(echo)
	client := inProcess(h)
	tests := []struct {
		name       string
		c          call
		wantStatus int
		wantBody   string // exact, for routing answers; "" to skip
		wantAllow  string
	}{
		{name: "GET on device methods", c: call{method: "GET", path: "/twins/d1/methods"}, wantStatus: 405,
			wantBody: `{"Message":"The requested resource does not support http method 'GET'."}`, wantAllow: "POST"},
		{name: "PUT on module methods", c: call{method: "PUT", path: "/twins/d1/modules/m1/methods", body: methodBody("m", "")}, wantStatus: 405,
			wantBody: `{"Message":"The requested resource does not support http method 'PUT'."}`, wantAllow: "POST"},
		{name: "empty module id", c: call{path: "/twins/d1/modules//methods", body: methodBody("m", "")}, wantStatus: 405,
			wantBody: `{"Message":"The requested resource does not support http method 'POST'."}`, wantAllow: "GET, PUT, PATCH"},
		{name: "POST on twin", c: call{path: "/twins/d1", body: "{}"}, wantStatus: 405,
			wantBody: `{"Message":"The requested resource does not support http method 'POST'."}`, wantAllow: "GET, PUT, PATCH"},
		{name: "devices path", c: call{path: "/devices/d1/methods", body: methodBody("m", "")}, wantStatus: 404,
			wantBody: `{"Message":"No HTTP resource was found that matches the request URI 'https://test-hub.azure-devices.net/devices/d1/methods'."}`},
		{name: "root", c: call{method: "GET", path: "/"}, wantStatus: 404},
		{name: "extra segment", c: call{path: "/twins/d1/methods/x", body: methodBody("m", "")}, wantStatus: 404},
		{name: "twin GET", c: call{method: "GET", path: "/twins/d1"}, wantStatus: 200},
		{name: "PATCH override on twin", c: call{path: "/twins/d1", body: "{}", header: http.Header{"X-Http-Method-Override": {"PATCH"}}}, wantStatus: 200},
		{name: "POST on device", c: call{path: "/devices/d1", body: "{}"}, wantStatus: 405,
			wantBody: `{"Message":"The requested resource does not support http method 'POST'."}`, wantAllow: "GET, PUT, DELETE"},
		{name: "trailing slash", c: call{path: "/twins/d1/methods/", body: methodBody("m", "")}, wantStatus: 200},
		{name: "module route", c: call{path: "/twins/d1/modules/m1/methods", body: methodBody("m", "")}, wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := send(t.Context(), t, h, client, tt.c)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.wantStatus, r.body)
			}
			if tt.wantBody != "" {
				if diff := cmp.Diff(tt.wantBody, string(r.body)); diff != "" {
					t.Errorf("body (-want +got):\n%s", diff)
				}
				if got := r.header.Get("iothub-errorcode"); got != "" {
					t.Errorf("routing answer has iothub-errorcode %q", got)
				}
			}
			if got := r.header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
		})
	}
}

func TestAPIVersion(t *testing.T) {
	t.Parallel()
	h := New(&Options{APIVersions: []string{"2021-04-12", "2018-06-30"}})
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	client := inProcess(h)
	tests := []struct {
		query    string
		wantCode int // 0: success
	}{
		{query: "api-version=2021-04-12"},
		{query: "api-version=2018-06-30"},
		{query: "API-Version=2021-04-12"},
		{query: "-", wantCode: 400001},
		{query: "api-version=", wantCode: 400001},
		{query: "api-version=2020-09-30", wantCode: 400001},
		{query: "api-version=2021-04-12&api-version=2021-04-12", wantCode: 400001},
		{query: "apiversion=2021-04-12", wantCode: 400001},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			r := send(t.Context(), t, h, client, call{path: "/twins/d1/methods", query: tt.query, body: methodBody("m", "")})
			if tt.wantCode == 0 {
				methodResult(t, r)
				return
			}
			got := decodeErr(t, r)
			if got.Status != 400 || got.Code != tt.wantCode || got.Header != "InvalidProtocolVersion" {
				t.Errorf("got %+v", got)
			}
		})
	}
}

func TestSASAuthorization(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	client := inProcess(h)
	owner, _ := h.Policy("iothubowner")
	service, _ := h.Policy("service")
	expired := testSAS(h.HostName(), "service", service.Key, time.Now().Add(-10*time.Minute).Unix())
	tests := []struct {
		name     string
		auth     string
		wantCode int
	}{
		{name: "service", auth: sasFor(t, h, "service")},
		{name: "iothubowner", auth: sasFor(t, h, "iothubowner")},
		{name: "upper-case audience", auth: testSAS(strings.ToUpper(h.HostName()), "service", service.Key, time.Now().Add(time.Hour).Unix())},
		{name: "within skew", auth: testSAS(h.HostName(), "service", service.Key, time.Now().Add(-4*time.Minute).Unix())},
		{name: "registryRead lacks ServiceConnect", auth: sasFor(t, h, "registryRead"), wantCode: 401002},
		{name: "registryReadWrite lacks ServiceConnect", auth: sasFor(t, h, "registryReadWrite"), wantCode: 401002},
		{name: "device policy", auth: sasFor(t, h, "device"), wantCode: 401002},
		{name: "missing", auth: noAuth, wantCode: 401002},
		{name: "expired", auth: expired, wantCode: 401002},
		{name: "other hub", auth: testSAS("other.azure-devices.net", "service", service.Key, time.Now().Add(time.Hour).Unix()), wantCode: 401002},
		{name: "owner key under service name", auth: testSAS(h.HostName(), "service", owner.Key, time.Now().Add(time.Hour).Unix()), wantCode: 401002},
		{name: "unknown scheme", auth: "Basic dXNlcjpwYXNz", wantCode: 401002},
		{name: "garbage", auth: "SharedAccessSignature garbage", wantCode: 401002},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := send(t.Context(), t, h, client, call{path: "/twins/d1/methods", auth: tt.auth, body: methodBody("m", "")})
			if tt.wantCode == 0 {
				methodResult(t, r)
				return
			}
			got := decodeErr(t, r)
			if got.Status != 401 || got.Code != tt.wantCode || got.Header != "IotHubUnauthorizedAccess" {
				t.Errorf("got %+v", got)
			}
			if i := strings.Index(tt.auth, "sig="); i >= 0 && strings.Contains(string(r.body), tt.auth[i+4:i+14]) {
				t.Errorf("answer quotes the signature: %s", r.body)
			}
		})
	}
	// Two Authorization headers are refused.
	r := send(t.Context(), t, h, client, call{path: "/twins/d1/methods", body: methodBody("m", ""),
		header: http.Header{"Authorization": {sasFor(t, h, "service"), sasFor(t, h, "service")}}, auth: noAuth})
	if got := decodeErr(t, r); got.Code != 401002 {
		t.Errorf("two headers: got %+v", got)
	}
}

func TestBearerAuthorization(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := New(nil)
		h.AddDevice("d1", &DeviceOptions{Handler: echo})
		client := inProcess(h)
		scope := policy.TokenRequestOptions{Scopes: []string{"https://iothubs.azure.net/.default"}}
		token := func(c *Credential, opts policy.TokenRequestOptions) string {
			tok, err := c.GetToken(t.Context(), opts)
			if err != nil {
				t.Fatal(err)
			}
			return "Bearer " + tok.Token
		}
		invoke := func(auth string) result {
			return send(t.Context(), t, h, client, call{path: "/twins/d1/methods", auth: auth, body: methodBody("m", "")})
		}

		contributor := h.TokenCredential(DataContributor, &TokenOptions{Lifetime: 10 * time.Minute})
		tok, err := contributor.GetToken(t.Context(), scope)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := tok.ExpiresOn, time.Now().Add(10*time.Minute); !got.Equal(want) {
			t.Errorf("ExpiresOn = %v, want %v", got, want)
		}
		methodResult(t, invoke("Bearer "+tok.Token))
		methodResult(t, invoke("bearer "+tok.Token)) // the scheme is case-insensitive

		for _, role := range []Role{DataReader, RegistryContributor, TwinContributor, Role(0)} {
			c := h.TokenCredential(role, &TokenOptions{PrincipalID: "0000-" + role.String()})
			got := decodeErr(t, invoke(token(c, scope)))
			want := hubErr{Status: 401, Code: 401003, Header: "IotHubUnauthorized",
				Message: "Principal 0000-" + role.String() + " is not authorized for POST on /twins/d1/methods due to no assigned permissions"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%v (-want +got):\n%s", role, diff)
			}
		}

		for name, auth := range map[string]string{
			"unknown token": "Bearer httpmock.forged",
			"wrong scope":   token(contributor, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}}),
			"two scopes":    token(contributor, policy.TokenRequestOptions{Scopes: []string{scope.Scopes[0], "openid"}}),
			"other hub":     token(New(nil).TokenCredential(DataContributor, nil), scope),
		} {
			got := decodeErr(t, invoke(auth))
			if got.Code != 401002 || strings.Contains(got.Message, strings.TrimPrefix(auth, "Bearer ")) {
				t.Errorf("%s: got %+v", name, got)
			}
		}

		// Expiry: valid until ExpiresOn, refused from then on.
		time.Sleep(10*time.Minute - time.Second)
		methodResult(t, invoke("Bearer "+tok.Token))
		time.Sleep(time.Second)
		if got := decodeErr(t, invoke("Bearer "+tok.Token)); got.Code != 401002 || !strings.Contains(got.Message, "expired") {
			t.Errorf("expired token: got %+v", got)
		}
		if got := contributor.Calls(); got != 3 {
			t.Errorf("Calls = %d, want 3", got)
		}

		// Identity provider failures and cancellation.
		boom := errors.New("boom")
		failing := h.TokenCredential(DataContributor, &TokenOptions{Err: boom})
		if _, err := failing.GetToken(t.Context(), scope); !errors.Is(err, boom) {
			t.Errorf("GetToken err = %v, want boom", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := contributor.GetToken(ctx, scope); !errors.Is(err, context.Canceled) {
			t.Errorf("GetToken on a cancelled ctx: %v", err)
		}
		if _, err := contributor.GetToken(t.Context(), policy.TokenRequestOptions{}); err == nil {
			t.Errorf("GetToken without scopes succeeded")
		}
		if got := failing.Calls(); got != 1 {
			t.Errorf("failing Calls = %d", got)
		}
	})
}

func TestBearerGovernmentScope(t *testing.T) {
	t.Parallel()
	h := New(&Options{HostName: "gov.azure-devices.us"})
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	client := inProcess(h)
	c := h.TokenCredential(DataContributor, nil)
	for scope, wantOK := range map[string]bool{
		"https://iothubs.azure.us/.default":         true,
		"https://iothubs.azure.net/.default":        true,
		"https://iothubs.chinacloudapi.cn/.default": false,
		"https://management.azure.com/.default":     false,
	} {
		tok, err := c.GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{scope}})
		if err != nil {
			t.Fatal(err)
		}
		r := send(t.Context(), t, h, client, call{path: "/twins/d1/methods", auth: "Bearer " + tok.Token, body: methodBody("m", "")})
		if got := r.status == 200; got != wantOK {
			t.Errorf("scope %s: status %d", scope, r.status)
		}
	}
}

func TestRequestsRecorded(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	client := inProcess(h)
	body := methodBody("m", `,"payload":{"a": 1}`)
	send(t.Context(), t, h, client, call{path: "/twins/d1/methods", query: "api-version=2021-04-12&x=y", body: body})
	send(t.Context(), t, h, client, call{method: "GET", path: "/twins/d1/methods"})
	reqs := h.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests recorded", len(reqs))
	}
	got := reqs[0]
	if got.Method != "POST" || got.Path != "/twins/d1/methods" || got.RawQuery != "api-version=2021-04-12&x=y" ||
		string(got.Body) != body || got.Proto != "HTTP/1.1" || got.Header.Get("Content-Type") != "application/json; charset=utf-8" ||
		!strings.HasPrefix(got.Header.Get("Authorization"), "SharedAccessSignature ") || got.Time.IsZero() {
		t.Errorf("recorded %+v", got)
	}
	got.Header.Set("X-Changed", "1")
	if h.Requests()[0].Header.Get("X-Changed") != "" {
		t.Error("Requests shares its headers")
	}
	if reqs[1].Method != "GET" {
		t.Errorf("second request %+v", reqs[1])
	}
}

func decodeKey(k string) ([]byte, error) { return base64.StdEncoding.DecodeString(k) }

// TestMaxRecorded bounds the history to the most recent requests and
// calls, while Deliveries still counts every call.
func TestMaxRecorded(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		max, sent, want int
	}{
		{max: 0, sent: 9, want: 9},
		{max: 3, sent: 2, want: 2},
		{max: 3, sent: 3, want: 3},
		{max: 3, sent: 7, want: 3},
		{max: 3, sent: 20, want: 3},
	} {
		h := New(&Options{MaxRecorded: tt.max})
		h.AddDevice("d1", &DeviceOptions{Handler: echo})
		client := inProcess(h)
		for i := range tt.sent {
			send(t.Context(), t, h, client, call{path: "/twins/d1/methods", body: methodBody("m", fmt.Sprintf(`,"payload":%d`, i))})
		}
		var gotReqs, gotCalls []string
		for _, r := range h.Requests() {
			gotReqs = append(gotReqs, string(r.Body))
		}
		for _, c := range h.Calls() {
			gotCalls = append(gotCalls, methodBody("m", `,"payload":`+string(c.Payload)))
		}
		var want []string
		for i := tt.sent - tt.want; i < tt.sent; i++ {
			want = append(want, methodBody("m", fmt.Sprintf(`,"payload":%d`, i)))
		}
		if diff := cmp.Diff(want, gotReqs); diff != "" {
			t.Errorf("max %d, sent %d: Requests (-want +got):\n%s", tt.max, tt.sent, diff)
		}
		if diff := cmp.Diff(want, gotCalls); diff != "" {
			t.Errorf("max %d, sent %d: Calls (-want +got):\n%s", tt.max, tt.sent, diff)
		}
		if n := h.Deliveries("d1", ""); n != tt.sent {
			t.Errorf("max %d: Deliveries = %d, want %d", tt.max, n, tt.sent)
		}
	}
}
