package service_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/service"
)

// TestValidate checks every rule of MethodParams: Validate returns the
// *iothub.ArgumentError an invocation returns before sending (same field,
// same rule), and nil for what an invocation accepts.
func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		params    service.MethodParams[any]
		wantField string // "" for valid parameters
		wantRule  string // a part of the rule
	}{
		{name: "minimal", params: service.MethodParams[any]{Name: "reboot"}},
		{name: "every field at its bounds", params: service.MethodParams[any]{Name: "reboot", Payload: map[string]int{"delay": 5}, TimeoutInSeconds: service.MaxTimeoutInSeconds, ConnectTimeoutInSeconds: service.MaxConnectTimeoutInSeconds}},
		{name: "shortest timeout", params: service.MethodParams[any]{Name: "reboot", TimeoutInSeconds: service.MinTimeoutInSeconds}},
		{name: "raw JSON", params: service.MethodParams[any]{Name: "reboot", Payload: json.RawMessage(` {"a": [1, 2]} `)}},
		{name: "nil raw JSON", params: service.MethodParams[any]{Name: "reboot", Payload: json.RawMessage(nil)}},
		{name: "largest payload", params: service.MethodParams[any]{Name: "reboot", Payload: strings.Repeat("x", service.MaxPayloadBytes-2)}},
		{name: "empty name", params: service.MethodParams[any]{}, wantField: "MethodParams.Name", wantRule: "must not be empty"},
		{name: "space in name", params: service.MethodParams[any]{Name: "re boot"}, wantField: "MethodParams.Name", wantRule: `has ' ' at byte 2`},
		{name: "forbidden character in name", params: service.MethodParams[any]{Name: "$reboot"}, wantField: "MethodParams.Name", wantRule: `has '$' at byte 0`},
		{name: "non-ASCII name", params: service.MethodParams[any]{Name: "redémarrer"}, wantField: "MethodParams.Name", wantRule: "at byte 3"},
		{name: "control character in name", params: service.MethodParams[any]{Name: "re\tboot"}, wantField: "MethodParams.Name", wantRule: "at byte 2"},
		{name: "timeout below the minimum", params: service.MethodParams[any]{Name: "reboot", TimeoutInSeconds: 4}, wantField: "MethodParams.TimeoutInSeconds", wantRule: "must be 0 (the hub default, 30) or within [5, 300]; got 4"},
		{name: "timeout above the maximum", params: service.MethodParams[any]{Name: "reboot", TimeoutInSeconds: 301}, wantField: "MethodParams.TimeoutInSeconds", wantRule: "got 301"},
		{name: "negative timeout", params: service.MethodParams[any]{Name: "reboot", TimeoutInSeconds: -1}, wantField: "MethodParams.TimeoutInSeconds", wantRule: "got -1"},
		{name: "negative connect timeout", params: service.MethodParams[any]{Name: "reboot", ConnectTimeoutInSeconds: -1}, wantField: "MethodParams.ConnectTimeoutInSeconds", wantRule: "must be within [0, 300]; got -1"},
		{name: "connect timeout above the maximum", params: service.MethodParams[any]{Name: "reboot", ConnectTimeoutInSeconds: 301}, wantField: "MethodParams.ConnectTimeoutInSeconds", wantRule: "got 301"},
		{name: "invalid raw JSON", params: service.MethodParams[any]{Name: "reboot", Payload: json.RawMessage(`{"delay":`)}, wantField: "MethodParams.Payload", wantRule: "must encode as JSON"},
		{name: "payload that does not encode", params: service.MethodParams[any]{Name: "reboot", Payload: make(chan int)}, wantField: "MethodParams.Payload", wantRule: "must encode as JSON"},
		{name: "payload too large", params: service.MethodParams[any]{Name: "reboot", Payload: strings.Repeat("x", service.MaxPayloadBytes-1)}, wantField: "MethodParams.Payload", wantRule: "must be at most 131072 bytes as JSON; got 131073"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.params.Validate()

			// What an invocation says about the same parameters.
			hub, client := setup(t, nil)
			hub.AddDevice("d1", nil).HandleMethod(tt.params.Name, respond(200, "null"))
			_, invokeErr := client.InvokeDeviceMethod(t.Context(), "d1", tt.params, nil)

			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if invokeErr != nil {
					t.Fatalf("Validate accepted what InvokeDeviceMethod refused: %v", invokeErr)
				}
				return
			}
			ae, ok := errors.AsType[*iothub.ArgumentError](err)
			if !ok {
				t.Fatalf("Validate() = %v (%T), want an *iothub.ArgumentError", err, err)
			}
			if ae.Field != tt.wantField || !strings.Contains(ae.Rule, tt.wantRule) {
				t.Errorf("Validate() field %q rule %q, want field %q and a rule with %q", ae.Field, ae.Rule, tt.wantField, tt.wantRule)
			}
			if ae.Operation != "MethodParams.Validate" {
				t.Errorf("Operation %q, want MethodParams.Validate", ae.Operation)
			}
			if !errors.Is(err, iothub.ErrInvalidArgument) || !errors.Is(err, iothub.ErrNotDelivered) || iothub.MayHaveRun(err) {
				t.Errorf("%v does not match ErrInvalidArgument and ErrNotDelivered, or may have run", err)
			}
			var ie *iothub.ArgumentError
			if !errors.As(invokeErr, &ie) {
				t.Fatalf("InvokeDeviceMethod: %v (%T), want an *iothub.ArgumentError", invokeErr, invokeErr)
			}
			type fieldRule struct{ Field, Rule string }
			if diff := cmp.Diff(fieldRule{ie.Field, ie.Rule}, fieldRule{ae.Field, ae.Rule}); diff != "" {
				t.Errorf("Validate and InvokeDeviceMethod differ (-invoke +validate):\n%s", diff)
			}
			if n := len(hub.Requests()); n != 0 {
				t.Errorf("%d requests sent", n)
			}
		})
	}
}

// TestValidateTyped checks Validate on a typed payload.
func TestValidateTyped(t *testing.T) {
	t.Parallel()
	type reboot struct {
		Delay int `json:"delay"`
	}
	if err := (service.MethodParams[reboot]{Name: "reboot", Payload: reboot{5}}).Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
	err := service.MethodParams[reboot]{Name: "reboot", TimeoutInSeconds: 1}.Validate()
	if ae, ok := errors.AsType[*iothub.ArgumentError](err); !ok || ae.Field != "MethodParams.TimeoutInSeconds" {
		t.Errorf("Validate() = %v, want an *iothub.ArgumentError for MethodParams.TimeoutInSeconds", err)
	}
}
