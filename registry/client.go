package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/auth"
	"github.com/hubkit/iothub/internal/pipeline"
	"github.com/hubkit/iothub/internal/wire"
)

// Client reads and writes a hub's identity registry and twins, and queries
// them. It is immutable after construction and safe for concurrent use;
// create one per hub and share it.
type Client struct {
	p *pipeline.Pipeline
}

// NewClientFromConnectionString returns a client for the hub named in a
// shared access policy connection string. Registry reads need RegistryRead,
// writes RegistryWrite, and twins and queries ServiceConnect: iothubowner
// has all three. It does no I/O; nil options mean the defaults.
func NewClientFromConnectionString(connectionString string, options *iothub.ClientOptions) (*Client, error) {
	return newClient(pipeline.FromConnectionString(connectionString, options))
}

// NewClient returns a client for hostName that authenticates with Microsoft
// Entra ID through cred. IoT Hub Data Contributor allows everything here;
// Registry Contributor the registry, Twin Contributor twins and queries,
// Data Reader reads. It does no I/O; nil options mean the defaults.
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
func (c *Client) String() string { return fmt.Sprintf("registry.Client{HostName: %s}", c.p.HostName()) }

// GoString describes the client without any secret, for %#v.
func (c *Client) GoString() string { return c.String() }

// call describes one registry request.
type call struct {
	op               string
	deviceID, module string
	method, path     string
	query            string
	header           http.Header
	body             any
	retry            pipeline.RetryClass
}

// do validates nothing: callers check ids first. It encodes the body once,
// sends the request and decodes a JSON answer into out (when out is not
// nil).
func (c *Client) do(ctx context.Context, k call, out any) (*pipeline.Response, error) {
	var body []byte
	if k.body != nil {
		var err error
		if body, err = json.Marshal(k.body); err != nil {
			return nil, &iothub.ArgumentError{Operation: k.op, Field: "body", Rule: "must encode as JSON", Err: err}
		}
	}
	resp, err := c.p.Do(ctx, &pipeline.Request{
		Operation: k.op, DeviceID: k.deviceID, ModuleID: k.module,
		Method: k.method, Path: k.path, Query: k.query, Header: k.header, Body: body,
		Retry: k.retry,
	})
	if err != nil {
		return nil, err
	}
	if out != nil {
		if err := json.Unmarshal(resp.Body, out); err != nil {
			return resp, &iothub.BodyError{Operation: k.op, DeviceID: k.deviceID, ModuleID: k.module, StatusCode: resp.StatusCode, Err: fmt.Errorf("decode answer: %w", err)}
		}
	}
	return resp, nil
}

// checkIDs validates a device id and, when onModule, a module id.
func checkIDs(op, deviceID, moduleID string, onModule bool) error {
	if rule := wire.CheckID(deviceID); rule != "" {
		return &iothub.ArgumentError{Operation: op, Field: "deviceID", Rule: rule}
	}
	if onModule {
		if rule := wire.CheckID(moduleID); rule != "" {
			return &iothub.ArgumentError{Operation: op, Field: "moduleID", Rule: rule}
		}
	}
	return nil
}

// ifMatch returns the If-Match header value for an ETag: quoted, or the
// wildcard "*" for an empty ETag.
func ifMatch(etag string) string {
	etag = strings.TrimPrefix(strings.TrimSpace(etag), "W/")
	etag = strings.Trim(etag, `"`)
	if etag == "" || etag == "*" {
		return `"*"`
	}
	return `"` + etag + `"`
}

func devicePath(id string) string { return "/devices/" + wire.EscapeID(id) }

func modulePath(deviceID, moduleID string) string {
	return "/devices/" + wire.EscapeID(deviceID) + "/modules/" + wire.EscapeID(moduleID)
}

func twinPath(deviceID, moduleID string) string {
	if moduleID == "" {
		return "/twins/" + wire.EscapeID(deviceID)
	}
	return "/twins/" + wire.EscapeID(deviceID) + "/modules/" + wire.EscapeID(moduleID)
}
