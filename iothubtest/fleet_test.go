package iothubtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/service"
)

// TestSharedMethods checks DeviceOptions.Methods: every device given the
// same map answers with its handlers, a handler of the map wins over
// Handler, and HandleMethod changes only its own device.
func TestSharedMethods(t *testing.T) {
	t.Parallel()
	hub := iothubtest.New(nil)
	defer hub.Close()
	methods := map[string]iothubtest.MethodHandler{
		"reboot": iothubtest.Answer(200, "rebooting"),
		"who": func(_ context.Context, call iothubtest.MethodCall) iothubtest.MethodResponse {
			return iothubtest.MethodResponse{Status: 200, Payload: call.DeviceID}
		},
	}
	hub.AddDevice("a", &iothubtest.DeviceOptions{Methods: methods, Handler: iothubtest.Answer(418, nil)})
	b := hub.AddDevice("b", &iothubtest.DeviceOptions{Methods: methods})
	b.HandleMethod("reboot", iothubtest.Answer(202, "b's own"))
	hub.AddDevice("c", &iothubtest.DeviceOptions{Methods: methods})

	client := newClient(t, hub)
	tests := []struct {
		device, method string
		want           outcome
	}{
		{"a", "reboot", outcome{Status: 200, Payload: `"rebooting"`}},
		{"a", "who", outcome{Status: 200, Payload: `"a"`}},
		{"a", "other", outcome{Status: 418, Payload: "null"}},
		{"b", "reboot", outcome{Status: 202, Payload: `"b's own"`}},
		{"b", "who", outcome{Status: 200, Payload: `"b"`}},
		{"b", "other", outcome{Status: iothubtest.NotImplementedStatus, Payload: "null"}},
		{"c", "reboot", outcome{Status: 200, Payload: `"rebooting"`}},
		{"c", "who", outcome{Status: 200, Payload: `"c"`}},
	}
	for _, tt := range tests {
		res, err := client.InvokeDeviceMethod(t.Context(), tt.device, service.MethodParams[any]{Name: tt.method}, nil)
		if diff := cmp.Diff(tt.want, outcomeOf(res, err)); diff != "" {
			t.Errorf("%s on %s (-want +got):\n%s", tt.method, tt.device, diff)
		}
	}
	if len(methods) != 2 {
		t.Errorf("the shared map has %d handlers after HandleMethod, want 2", len(methods))
	}
}

// TestRawMessagePayload checks that a json.RawMessage payload is sent as
// it is, not re-encoded, and that one that is not JSON gets 500001.
func TestRawMessagePayload(t *testing.T) {
	t.Parallel()
	hub := iothubtest.New(nil)
	defer hub.Close()
	const raw = `{"a":"<b>&","n":1.50}`
	hub.AddDevice("dev", &iothubtest.DeviceOptions{Methods: map[string]iothubtest.MethodHandler{
		"raw": iothubtest.Answer(200, json.RawMessage(raw)),
		"bad": iothubtest.Answer(200, json.RawMessage(`{"a":`)),
	}})
	client := newClient(t, hub)
	res, err := client.InvokeDeviceMethod(t.Context(), "dev", service.MethodParams[any]{Name: "raw"}, nil)
	if diff := cmp.Diff(outcome{Status: 200, Payload: raw}, outcomeOf(res, err)); diff != "" {
		t.Errorf("raw payload (-want +got):\n%s", diff)
	}
	res, err = client.InvokeDeviceMethod(t.Context(), "dev", service.MethodParams[any]{Name: "bad"}, nil)
	if diff := cmp.Diff(outcome{Code: iothub.ErrorCodeServerError}, outcomeOf(res, err)); diff != "" {
		t.Errorf("invalid raw payload (-want +got):\n%s", diff)
	}
}

// TestListenTLS serves a hub on a chosen address, reaches it with its
// connection string alone when its host name names that address, and
// checks that Close stops the listener and that a busy address is an
// error naming this package.
func TestListenTLS(t *testing.T) {
	t.Parallel()
	// A free port, then a hub named after it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	hub := iothubtest.New(&iothubtest.Options{HostName: "localhost:" + port})
	hub.AddDevice("dev", &iothubtest.DeviceOptions{Handler: iothubtest.Echo()})
	srv, err := hub.ListenTLS("127.0.0.1:" + port)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if want := "https://localhost:" + port; srv.URL != want {
		t.Errorf("URL = %q, want %q", srv.URL, want)
	}
	// The connection string alone, with a transport that trusts the
	// certificate, but no Endpoint.
	opts := srv.ClientOptions()
	opts.Endpoint = ""
	client, err := service.NewClientFromConnectionString(srv.ConnectionString(), opts)
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.InvokeDeviceMethod(t.Context(), "dev", service.MethodParams[any]{Name: "echo", Payload: 7}, nil)
	if got := outcomeOf(res, err); got != (outcome{Status: 200, Payload: "7"}) {
		t.Errorf("over TLS on %s: %+v", port, got)
	}

	other := iothubtest.New(nil)
	defer other.Close()
	_, err = other.ListenTLS("127.0.0.1:" + port)
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.HasPrefix(err.Error(), "iothubtest: ListenTLS: ") {
		t.Errorf("ListenTLS on a busy port: %v, want an iothubtest error wrapping EADDRINUSE", err)
	}

	srv.Close()
	srv.Close() // twice is fine
	// Nothing of the hub answers any more: the call fails before it is
	// delivered, whether the port is closed or (another process having
	// taken it meanwhile) serves something that is not this hub.
	res, err = client.InvokeDeviceMethod(t.Context(), "dev", service.MethodParams[any]{Name: "echo", Payload: 8}, nil)
	if err == nil || iothub.MayHaveRun(err) {
		t.Errorf("a call after Close: %+v, %v; want an error that says it was not delivered", res, err)
	}
	if n := hub.Deliveries("dev", "", "echo"); n != 1 {
		t.Errorf("%d deliveries, want the 1 before Close", n)
	}
}
