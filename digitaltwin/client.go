package digitaltwin

import (
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/auth"
	"github.com/hubkit/iothub/internal/pipeline"
	"github.com/hubkit/iothub/internal/wire"
)

// Client reads and updates the digital twins of a hub's Plug and Play
// devices. It is immutable after construction and safe for concurrent use;
// create one per hub and share it.
type Client struct {
	p *pipeline.Pipeline
}

// NewClientFromConnectionString returns a client for the hub named in a
// shared access policy connection string. Digital twins need ServiceConnect
// (the service and iothubowner policies have it). It does no I/O; nil
// options mean the defaults.
func NewClientFromConnectionString(connectionString string, options *iothub.ClientOptions) (*Client, error) {
	return newClient(pipeline.FromConnectionString(connectionString, options))
}

// NewClient returns a client for hostName that authenticates with Microsoft
// Entra ID through cred. IoT Hub Twin Contributor (or Data Contributor)
// allows reads and updates, Data Reader reads. It does no I/O; nil options
// mean the defaults.
func NewClient(hostName string, cred azcore.TokenCredential, options *iothub.ClientOptions) (*Client, error) {
	return newClient(pipeline.FromTokenCredential(hostName, cred, options))
}

// NewClientWithSharedAccessKey returns a client for hostName that signs with
// a shared access policy key credential you keep, to rotate its key. It does
// no I/O; nil options mean the defaults.
func NewClientWithSharedAccessKey(hostName string, cred *auth.SharedAccessKeyCredential, options *iothub.ClientOptions) (*Client, error) {
	return newClient(pipeline.FromSharedAccessKey(hostName, cred, options))
}

func newClient(p *pipeline.Pipeline, err error) (*Client, error) {
	if err != nil {
		return nil, err
	}
	return &Client{p: p}, nil
}

// HostName returns the hub's host name.
func (c *Client) HostName() string { return c.p.HostName() }

// CloseIdleConnections closes the idle keep-alive connections of the
// client's transport, as http.Client.CloseIdleConnections does. Calls in
// flight are not affected and the client stays usable. A transport given in
// ClientOptions is shared with its owner, and is closed here only if it has
// a CloseIdleConnections method.
func (c *Client) CloseIdleConnections() { c.p.CloseIdleConnections() }

// String describes the client without any secret.
func (c *Client) String() string {
	return fmt.Sprintf("digitaltwin.Client{HostName: %s}", c.p.HostName())
}

// GoString describes the client without any secret, for %#v.
func (c *Client) GoString() string { return c.String() }

// checkID validates a digital twin id: a device id.
func checkID(op, id string) error {
	if rule := wire.CheckID(id); rule != "" {
		return &iothub.ArgumentError{Operation: op, Field: "digitalTwinID", Rule: rule}
	}
	return nil
}

func twinPath(id string) string { return "/digitaltwins/" + wire.EscapeID(id) }
