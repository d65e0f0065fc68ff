package iothubtest

import (
	"net/http"
	"sync"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/auth"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/service"
)

// DefaultHostName is the host name of a Hub whose Options leave HostName
// empty. It is the audience of the hub's SAS tokens; requests may be sent
// to any address that reaches the hub.
const DefaultHostName = "test-hub.azure-devices.net"

// Options configures a Hub. The zero value, and a nil *Options, give a hub
// named DefaultHostName, with the default policies, no throttling, no
// quota, and every request and call recorded.
type Options struct {
	// HostName is the hub's host name, the audience of its SAS tokens.
	// Empty means DefaultHostName.
	HostName string

	// MaxRecorded, when positive, bounds what Requests and Calls return
	// to the most recent MaxRecorded requests and calls, for a hub that
	// serves a long run. Zero keeps everything. Deliveries and
	// ExpectDeliveries count every call either way.
	MaxRecorded int

	// Throttle, when non-nil, enforces IoT Hub's per-tier throttles on
	// direct methods (429 / 429001 beyond the tier's rate, after a short
	// queue), queries and jobs. Nil means no throttling.
	Throttle *Throttle

	// DailyMessages, when positive, is the hub's daily message quota in
	// 4 KB messages; once billable operations (direct methods, twin reads
	// and updates) have used it up, they are refused with 403 / 403002
	// IotHubQuotaExceeded. Zero means no quota; see also Hub.ExhaustQuota.
	DailyMessages int64

	// JobDeviceOpsPerSecond, when positive, is the rate at which IoT Hub
	// jobs reach their devices (one method call or twin update each),
	// across all jobs: lower it to test how code under test handles a job
	// in progress, such as cancelling one. Zero means the rate of
	// Throttle's tier, or an S1 hub's 10 a second.
	JobDeviceOpsPerSecond float64
}

// Throttle sets the hub's throttles; see Options.Throttle. The zero value
// is an S1 hub of one unit: 160 KB/s of direct-method payload (40 calls a
// second of up to 4 KB) and 20 queries a minute.
type Throttle struct {
	// Tier is the pricing tier; "" means service.TierS1. On the Basic
	// tiers direct methods and jobs are refused with 403 / 403010. New
	// panics on an unknown tier.
	Tier service.Tier
	// Units is the number of IoT Hub units; 0 means 1.
	Units int
	// MethodBytesPerSecond, when positive, replaces the tier's
	// direct-method rate: the hub's whole rate in bytes of payload per
	// second, each call charged in 4 KB steps (4 KB at least).
	MethodBytesPerSecond int64
	// QueriesPerMinute, when positive, replaces the tier's query rate.
	QueriesPerMinute int
}

// Policy names one of the hub's shared access policies.
type Policy string

// The hub's shared access policies, as a new IoT Hub has them. Each has a
// random key, different on every Hub.
const (
	// PolicyIoTHubOwner has every permission.
	PolicyIoTHubOwner Policy = "iothubowner"
	// PolicyService has ServiceConnect: direct methods, twins, queries
	// and jobs.
	PolicyService Policy = "service"
	// PolicyDevice has DeviceConnect only; the service API refuses it.
	PolicyDevice Policy = "device"
	// PolicyRegistryRead has RegistryRead.
	PolicyRegistryRead Policy = "registryRead"
	// PolicyRegistryReadWrite has RegistryRead and RegistryWrite.
	PolicyRegistryReadWrite Policy = "registryReadWrite"
)

// Hub is a fake Azure IoT Hub: the service side of the hub's REST API
// (direct methods, the identity registry, twins, queries, bulk operations
// and jobs), as strict as the real hub, with devices whose methods are Go
// functions. It serves requests in process through Handler and
// RoundTripper, without sockets; NewServer serves one over TLS.
//
// A Hub keeps no global state; all its methods are safe for concurrent use.
type Hub struct {
	engine *httpmock.Hub

	closeOnce sync.Once

	tablesMu sync.Mutex
	tables   map[uintptr]methodTable // by DeviceOptions.Methods map; see methodTable
}

// New returns a Hub with no devices, configured by opts (nil means the
// defaults). It opens no socket, so it may be created inside a
// testing/synctest bubble, where the hub's timeouts and latencies follow
// the bubble's fake clock; use RoundTripper or ClientOptions there.
//
// Call Close when done: it stops the jobs in progress. Inside a bubble,
// call it before the bubble ends.
func New(opts *Options) *Hub {
	var o Options
	if opts != nil {
		o = *opts
	}
	eo := &httpmock.Options{
		HostName:      o.HostName,
		MaxRecorded:   o.MaxRecorded,
		DailyMessages: o.DailyMessages,

		JobDeviceOpsPerSecond: o.JobDeviceOpsPerSecond,
	}
	if t := o.Throttle; t != nil {
		eo.Throttle = &httpmock.ThrottleOptions{
			Tier:                 httpmock.Tier(t.Tier),
			Units:                t.Units,
			MethodBytesPerSecond: t.MethodBytesPerSecond,
			QueriesPerMinute:     t.QueriesPerMinute,
		}
	}
	return &Hub{engine: httpmock.New(eo)}
}

// Close stops the hub's background work: jobs in progress stop where they
// are. Requests are still served afterwards, but new jobs are refused with
// 503. Close may be called more than once.
func (h *Hub) Close() {
	h.closeOnce.Do(h.engine.Close)
}

// HostName returns the hub's host name.
func (h *Hub) HostName() string { return h.engine.HostName() }

// Handler returns the hub as an http.Handler, to mount in a server of your
// own. The handler breaks connections (panic(http.ErrAbortHandler)) where
// the real hub would, which net/http servers handle.
func (h *Hub) Handler() http.Handler { return h.engine }

// RoundTripper returns an http.RoundTripper that serves every request with
// the hub in process, whatever the URL's host: no socket, no TLS handshake.
// It honours the request's context and works inside testing/synctest
// bubbles. Requests still need a valid Authorization header; see SASToken.
func (h *Hub) RoundTripper() http.RoundTripper { return h.engine.RoundTripper() }

// ClientOptions returns options for service.Client and registry.Client
// that reach the hub in process through RoundTripper:
//
//	client, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
//
// Each call returns a new value; change it as you like.
func (h *Hub) ClientOptions() *iothub.ClientOptions {
	return &iothub.ClientOptions{Transport: h.engine.RoundTripper()}
}

// ConnectionString returns the connection string of the service policy,
// "HostName=…;SharedAccessKeyName=service;SharedAccessKey=…", enough for
// direct methods, twins, queries and jobs.
func (h *Hub) ConnectionString() string { return h.ConnectionStringFor(PolicyService) }

// ConnectionStringFor returns the connection string of the given policy,
// with its current key. It panics when the hub has no such policy (it was
// revoked, or never existed), a programming error in a test.
func (h *Hub) ConnectionStringFor(policy Policy) string {
	return h.engine.ConnectionString(string(policy))
}

// SASToken returns a SAS token signed with the given policy's current key,
// valid for an hour: the whole Authorization header value of a raw request,
// "SharedAccessSignature sr=…&sig=…&se=…&skn=…". It panics when the hub has
// no such policy.
func (h *Hub) SASToken(policy Policy) string {
	p, ok := h.engine.Policy(string(policy))
	if !ok {
		panic("iothubtest: SASToken: the hub has no policy " + string(policy))
	}
	tok, err := auth.NewSASToken(h.HostName(), p.Name, p.Key, time.Now().Add(time.Hour))
	if err != nil {
		panic("iothubtest: SASToken: " + err.Error())
	}
	return tok
}

// RevokePolicy deletes the policy, as removing it in the portal does: from
// now on every token it signed is refused with 401 / 401002
// IotHubUnauthorizedAccess and nothing is delivered. It panics when the hub
// has no such policy.
func (h *Hub) RevokePolicy(policy Policy) { h.engine.RevokePolicy(string(policy)) }

// RotateKey gives the policy a new key, as regenerating it does: tokens
// signed with the old key are refused with 401 / 401002 from now on, and
// ConnectionStringFor returns the new key. It panics when the hub has no
// such policy.
func (h *Hub) RotateKey(policy Policy) { h.engine.RotateKey(string(policy)) }

// ExhaustQuota uses up the daily message quota: from now on direct methods,
// twin reads and updates, and the device operations of jobs are refused
// with 403 / 403002 IotHubQuotaExceeded and nothing is delivered, until
// ResetQuota.
func (h *Hub) ExhaustQuota() { h.engine.ExhaustQuota() }

// ResetQuota starts a new day of the daily message quota.
func (h *Hub) ResetQuota() { h.engine.ResetQuota() }

// Suspend suspends the hub, as Azure does when a subscription's spending
// limit is reached: every authenticated request is answered 403 / 403001
// IotHubSuspended and nothing is delivered, until Resume.
func (h *Hub) Suspend() { h.engine.Suspend() }

// Resume ends a suspension.
func (h *Hub) Resume() { h.engine.Resume() }
