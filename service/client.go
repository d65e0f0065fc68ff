package service

import (
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/auth"
	"github.com/hubkit/iothub/internal/pipeline"
)

// Client invokes direct methods on the devices and modules of one IoT hub.
// It is immutable after construction and safe for concurrent use; create one
// per hub and share it.
type Client struct {
	p   *pipeline.Pipeline
	fan *fanOutMetrics // nil without a MeterProvider
}

// NewClientFromConnectionString returns a client for the hub named in a
// shared access policy connection string,
// "HostName=…;SharedAccessKeyName=…;SharedAccessKey=…" (or one that carries
// a ready-made SharedAccessSignature, used as is until it expires). Direct
// methods need a policy with the ServiceConnect permission, such as
// "service" or "iothubowner". A device connection string is refused. It
// does no I/O; nil options mean the defaults.
func NewClientFromConnectionString(connectionString string, options *iothub.ClientOptions) (*Client, error) {
	return newClient(pipeline.FromConnectionString(connectionString, options))
}

// NewClient returns a client for hostName (such as
// "myhub.azure-devices.net") that authenticates with Microsoft Entra ID
// through cred, for example azidentity.NewDefaultAzureCredential. The
// identity needs a role that allows direct methods, such as IoT Hub Data
// Contributor; IoT Hub Twin Contributor cannot invoke methods. The token is
// cached and refreshed ahead of expiry. It does no I/O; nil options mean the
// defaults.
func NewClient(hostName string, cred azcore.TokenCredential, options *iothub.ClientOptions) (*Client, error) {
	return newClient(pipeline.FromTokenCredential(hostName, cred, options))
}

// NewClientWithSharedAccessKey returns a client for hostName that signs its
// requests with a shared access policy key. Keep the credential to rotate
// the key at run time (SharedAccessKeyCredential.Update). It does no I/O;
// nil options mean the defaults.
func NewClientWithSharedAccessKey(hostName string, cred *auth.SharedAccessKeyCredential, options *iothub.ClientOptions) (*Client, error) {
	return newClient(pipeline.FromSharedAccessKey(hostName, cred, options))
}

func newClient(p *pipeline.Pipeline, err error) (*Client, error) {
	if err != nil {
		return nil, err
	}
	fan, err := newFanOutMetrics(p)
	if err != nil {
		return nil, err
	}
	return &Client{p: p, fan: fan}, nil
}

// HostName returns the hub's host name.
func (c *Client) HostName() string { return c.p.HostName() }

// CloseIdleConnections closes the idle keep-alive connections of the
// client's transport, and with them their goroutines, as
// http.Client.CloseIdleConnections does. Calls in flight are not affected
// and the client stays usable: a later call opens a new connection. Call it
// when a client will not be used for a while, or before dropping it, in a
// program that makes short-lived clients; idle connections otherwise close
// on their own after 90 s with the default transport. A transport given in
// ClientOptions is shared with its owner, and is closed here only if it has
// a CloseIdleConnections method.
func (c *Client) CloseIdleConnections() { c.p.CloseIdleConnections() }

// String describes the client without any secret.
func (c *Client) String() string { return fmt.Sprintf("service.Client{HostName: %s}", c.p.HostName()) }

// GoString describes the client without any secret, for %#v.
func (c *Client) GoString() string { return c.String() }
