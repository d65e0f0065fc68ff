package cli

import (
	"encoding/json"
	"flag"
	"fmt"

	"github.com/hubkit/iothub/service"
)

// MethodFlags are the flags that shape a direct-method call besides its
// name: -payload, -timeout and -connect-timeout.
type MethodFlags struct {
	Payload        string // -payload: JSON
	Timeout        int    // -timeout: response timeout in seconds
	ConnectTimeout int    // -connect-timeout: seconds to wait for an offline device
}

// Register defines the flags on fs.
func (m *MethodFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&m.Payload, "payload", "null", "JSON payload")
	fs.IntVar(&m.Timeout, "timeout", 0, "response timeout in seconds: 0 for the hub default (30), or 5 to 300")
	fs.IntVar(&m.ConnectTimeout, "connect-timeout", 0, "seconds the hub waits for an offline device to connect, 0 to 300")
}

// Check refuses flag values the hub would refuse, with an error that names
// the flag.
func (m MethodFlags) Check() error {
	if t := m.Timeout; t != 0 && (t < service.MinTimeoutInSeconds || t > service.MaxTimeoutInSeconds) {
		return fmt.Errorf("-timeout must be 0 (the hub default, %d s) or within [%d, %d]; got %d",
			service.DefaultTimeoutInSeconds, service.MinTimeoutInSeconds, service.MaxTimeoutInSeconds, t)
	}
	if t := m.ConnectTimeout; t < 0 || t > service.MaxConnectTimeoutInSeconds {
		return fmt.Errorf("-connect-timeout must be within [0, %d]; got %d", service.MaxConnectTimeoutInSeconds, t)
	}
	if !json.Valid([]byte(m.Payload)) {
		return fmt.Errorf("-payload is not valid JSON: %s", m.Payload)
	}
	return nil
}

// Params returns the parameters of a call of method with these flags,
// validated by the SDK (service.MethodParams.Validate) without sending
// anything. Call Check first, for errors that name the flags.
func (m MethodFlags) Params(method string) (service.MethodParams[any], error) {
	p := service.MethodParams[any]{
		Name:                    method,
		Payload:                 json.RawMessage(m.Payload),
		TimeoutInSeconds:        m.Timeout,
		ConnectTimeoutInSeconds: m.ConnectTimeout,
	}
	return p, p.Validate()
}

// CommandParams returns the parameters of a Plug and Play command (of
// component, or of the root when it is empty) with these flags, validated
// by the SDK (service.CommandParams.Validate) without sending anything.
// Call Check first, for errors that name the flags.
func (m MethodFlags) CommandParams(component, command string) (service.CommandParams[any], error) {
	p := service.CommandParams[any]{
		Component:               component,
		Name:                    command,
		Payload:                 json.RawMessage(m.Payload),
		TimeoutInSeconds:        m.Timeout,
		ConnectTimeoutInSeconds: m.ConnectTimeout,
	}
	return p, p.Validate()
}
