package httpmock

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// DefaultHostName is the host name of a Hub whose Options leave HostName
// empty.
const DefaultHostName = "test-hub.azure-devices.net"

// Rights is a set of shared access policy permissions. The values are bit
// flags; combine them with |.
type Rights uint8

// The permissions a shared access policy can grant.
const (
	// RegistryRead allows reading the identity registry.
	RegistryRead Rights = 1 << iota
	// RegistryWrite allows writing the identity registry.
	RegistryWrite
	// ServiceConnect allows the service-facing operations: direct
	// methods, twins, queries, cloud-to-device messages.
	ServiceConnect
	// DeviceConnect allows the device-facing endpoints.
	DeviceConnect
)

// AllRights is every permission, as held by the iothubowner policy.
const AllRights = RegistryRead | RegistryWrite | ServiceConnect | DeviceConnect

// String lists the permissions, as in "RegistryRead|ServiceConnect".
func (r Rights) String() string {
	names := []string{"RegistryRead", "RegistryWrite", "ServiceConnect", "DeviceConnect"}
	var parts []string
	for i, n := range names {
		if r&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	if rest := r &^ AllRights; rest != 0 {
		parts = append(parts, fmt.Sprintf("Rights(%#x)", uint8(rest)))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}

// Policy is a shared access policy of the hub.
type Policy struct {
	// Name is the policy name, sent as skn in a SAS token. Names are
	// matched exactly (case-sensitively).
	Name string
	// Key is the policy's key: standard base64 of random bytes (32 in the
	// policies the hub generates). Empty means generate one.
	Key string
	// Rights is what the policy grants.
	Rights Rights
}

// Options configures a Hub. The zero value, and a nil *Options, give the
// defaults.
type Options struct {
	// HostName is the hub's host name, the audience of its SAS tokens and
	// the Entra scope's cloud. Default DefaultHostName. It may carry a port
	// ("localhost:8443"); StartTLS then listens on that port when the host
	// is a loopback name or address.
	HostName string

	// Policies replaces the default shared access policies: iothubowner
	// (all rights), service (ServiceConnect), device (DeviceConnect),
	// registryRead (RegistryRead) and registryReadWrite (RegistryRead and
	// RegistryWrite), each with a random key. A policy with an empty Key
	// gets a random one.
	Policies []Policy

	// APIVersions are the accepted values of the api-version query
	// parameter. Default DefaultAPIVersions.
	APIVersions []string

	// ClockSkew is how long past its expiry (se) a SAS token is still
	// accepted. Zero means 5 minutes, as the hub's parser allows; a
	// negative value means no tolerance.
	ClockSkew time.Duration

	// MaxRecorded, when positive, bounds the history Requests and Calls
	// return to the most recent MaxRecorded requests and method calls, so
	// that a hub serving a long run does not grow without end. Zero keeps
	// everything, as tests want. Deliveries counts every call either way.
	MaxRecorded int

	// ClockOffset is how far the hub's clock runs ahead of this machine's
	// (negative: behind) when it checks the expiry of SAS and bearer
	// tokens, to simulate a client whose clock is off.
	ClockOffset time.Duration

	// MaxActiveJobs is how many jobs v2 may be queued, scheduled or
	// running at once; one more is refused with 429004. Zero means the
	// limit of Throttle's tier, or DefaultMaxActiveJobs (an S1 hub's)
	// without Throttle.
	MaxActiveJobs int
	// JobDeviceOpsPerSecond is the rate at which jobs call methods on or
	// update twins of their devices, across all jobs. Zero means the rate
	// of Throttle's tier and units, or DefaultJobDeviceOpsPerSecond (an S1
	// hub's) without Throttle.
	JobDeviceOpsPerSecond float64

	// DailyMessages, when positive, is the hub's daily message quota: the
	// number of 4 KB messages its billable operations may use before the
	// hub refuses them with 403 / 403002 IotHubQuotaExceeded; see
	// Hub.ExhaustQuota. Zero means no quota.
	DailyMessages int64

	// Throttle, when non-nil, enforces IoT Hub's per-tier throttles on
	// direct methods, queries and jobs; see ThrottleOptions. Nil means no
	// throttling.
	Throttle *ThrottleOptions
}

// DefaultAPIVersions returns the api-version values a Hub accepts unless
// Options.APIVersions says otherwise, newest first.
func DefaultAPIVersions() []string {
	return []string{"2021-04-12", "2020-09-30", "2020-05-31-preview", "2018-06-30"}
}

// DefaultClockSkew is the SAS expiry tolerance of a Hub whose
// Options.ClockSkew is zero.
const DefaultClockSkew = 5 * time.Minute

// Hub is a simulated IoT Hub. It serves the hub's REST API (direct methods,
// the identity registry, twins and queries) with the real hub's
// validation, status codes and error bodies,
// keeps a registry of simulated devices and modules, injects scripted
// faults, and records every request it receives.
//
// A Hub is an http.Handler; RoundTripper serves it in-process and StartTLS
// over a real TLS socket. All methods are safe for concurrent use.
type Hub struct {
	// Immutable after New.
	hostName    string
	apiVersions map[string]bool
	skew        time.Duration
	clockOffset time.Duration
	scope       string
	routes      []route
	maxRecorded int // 0: no bound

	// policyMu guards policies, which RevokePolicy and RotateKey replace
	// (never modify) so that a slice read under the lock stays valid.
	policyMu sync.Mutex
	policies []Policy

	// fleet holds the hub-wide states: suspension and the daily quota.
	fleet fleetState

	mu         sync.Mutex
	devices    map[string]*Device
	faults     []*faultState
	requests   []Request
	calls      []MethodCall
	deliveries map[target]int
	delivered  int // every delivery, the sum of deliveries
	tokens     map[string]bearerToken
	sortedIDs  []string          // device ids in order; nil when stale
	etagSeq    int64             // last device or module etag counter
	twinSeq    uint64            // last twin etag counter
	emptyKids  map[string]*pnode // always empty: the children of new twins' empty roots, never written
	genSeq     int64             // makes generationIds unique
	keySeed    [32]byte          // random; generated device and module keys derive from it
	jobs       *jobEngine
	throttle   *throttler // nil: no throttling

	// methodDeliveries counts deliveries per method (see MethodDeliveries);
	// nil until the first. Guarded by mu.
	methodDeliveries map[MethodTarget]int
}

// target names a device (ModuleID empty) or a module.
type target struct{ deviceID, moduleID string }

// New returns a Hub configured by opts, which may be nil. It has no devices
// yet; add them with AddDevice.
//
// New panics when opts is invalid: a policy with an empty or duplicate name,
// or a Key that is not standard base64. The Hub is a test fixture, so a
// broken fixture fails loudly.
func New(opts *Options) *Hub {
	var o Options
	if opts != nil {
		o = *opts
	}
	h := &Hub{
		hostName:    o.HostName,
		apiVersions: make(map[string]bool),
		skew:        o.ClockSkew,
		clockOffset: o.ClockOffset,
		maxRecorded: max(o.MaxRecorded, 0),
		devices:     make(map[string]*Device),
		deliveries:  make(map[target]int),
		tokens:      make(map[string]bearerToken),
		etagSeq:     randomETagBase(),
	}
	_, _ = rand.Read(h.keySeed[:]) // crypto/rand.Read never fails.
	h.fleet.quota = max(o.DailyMessages, 0)
	if h.hostName == "" {
		h.hostName = DefaultHostName
	}
	switch {
	case h.skew == 0:
		h.skew = DefaultClockSkew
	case h.skew < 0:
		h.skew = 0
	}
	versions := o.APIVersions
	if len(versions) == 0 {
		versions = DefaultAPIVersions()
	}
	for _, v := range versions {
		h.apiVersions[v] = true
	}
	policies := o.Policies
	if policies == nil {
		policies = []Policy{
			{Name: "iothubowner", Rights: AllRights},
			{Name: "service", Rights: ServiceConnect},
			{Name: "device", Rights: DeviceConnect},
			{Name: "registryRead", Rights: RegistryRead},
			{Name: "registryReadWrite", Rights: RegistryRead | RegistryWrite},
		}
	}
	seen := make(map[string]bool)
	for _, p := range policies {
		if p.Name == "" {
			panic("iothubtest: New: a policy has an empty name")
		}
		if seen[p.Name] {
			panic(fmt.Sprintf("iothubtest: New: policy %q defined twice", p.Name))
		}
		seen[p.Name] = true
		if p.Key == "" {
			p.Key = NewKey()
		} else if _, err := base64.StdEncoding.DecodeString(p.Key); err != nil {
			panic(fmt.Sprintf("iothubtest: New: policy %q: key is not standard base64: %v", p.Name, err))
		}
		h.policies = append(h.policies, p)
	}
	h.scope = EntraScope(h.hostName)
	h.throttle = newThrottler(o.Throttle)
	maxJobs, jobRate := o.MaxActiveJobs, o.JobDeviceOpsPerSecond
	if t := h.throttle; t != nil {
		if maxJobs <= 0 {
			maxJobs = t.maxJobs
		}
		if jobRate <= 0 {
			jobRate = t.jobDevRate
		}
	}
	h.jobs = newJobEngine(maxJobs, jobRate)
	h.routes = h.newRoutes()
	return h
}

// NewKey returns a new random key: standard base64 of 32 random bytes, the
// shape of the keys IoT Hub generates.
func NewKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails.
	return base64.StdEncoding.EncodeToString(b)
}

// HostName returns the hub's host name, as set in Options.
func (h *Hub) HostName() string { return h.hostName }

// Policies returns a copy of the hub's shared access policies, keys
// included.
func (h *Hub) Policies() []Policy {
	return append([]Policy(nil), h.currentPolicies()...)
}

// currentPolicies returns the policies as they are now. The slice is
// never modified: RevokePolicy and RotateKey replace it.
func (h *Hub) currentPolicies() []Policy {
	h.policyMu.Lock()
	defer h.policyMu.Unlock()
	return h.policies
}

// Policy returns the shared access policy with the given name.
func (h *Hub) Policy(name string) (Policy, bool) {
	for _, p := range h.currentPolicies() {
		if p.Name == name {
			return p, true
		}
	}
	return Policy{}, false
}

// ConnectionString returns the service connection string of the named
// policy: "HostName=…;SharedAccessKeyName=…;SharedAccessKey=…". It panics
// when the hub has no such policy; it is a helper for tests and examples,
// where that is a programming error.
func (h *Hub) ConnectionString(policy string) string {
	p, ok := h.Policy(policy)
	if !ok {
		panic(fmt.Sprintf("iothubtest: ConnectionString: no policy %q", policy))
	}
	return "HostName=" + h.hostName + ";SharedAccessKeyName=" + p.Name + ";SharedAccessKey=" + p.Key
}

// PublicCloudScope is the Microsoft Entra scope every hub accepts bearer
// tokens for, whatever its cloud: the IoT Hub team has said hubs in every
// cloud accept the public audience.
const PublicCloudScope = "https://iothubs.azure.net/.default"

// EntraScope returns the cloud-specific Microsoft Entra scope a hub with the
// given host name also accepts: https://iothubs.azure.us/.default for Azure
// Government (*.azure-devices.us), https://iothubs.chinacloudapi.cn/.default
// for Azure China (*.azure-devices.cn), and PublicCloudScope otherwise.
func EntraScope(hostName string) string {
	host := strings.ToLower(hostWithoutPort(hostName))
	switch {
	case strings.HasSuffix(host, ".azure-devices.us"):
		return "https://iothubs.azure.us/.default"
	case strings.HasSuffix(host, ".azure-devices.cn"):
		return "https://iothubs.chinacloudapi.cn/.default"
	}
	return PublicCloudScope
}

// Scope returns the cloud-specific Entra scope of the hub; see EntraScope.
// PublicCloudScope is accepted too.
func (h *Hub) Scope() string { return h.scope }

// acceptsScope reports whether a token requested for scope is good for
// this hub.
func (h *Hub) acceptsScope(scope string) bool {
	return scope == PublicCloudScope || scope == h.scope
}

// hostWithoutPort strips a ":port" suffix and IPv6 brackets.
func hostWithoutPort(hostport string) string {
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		return host
	}
	return strings.Trim(hostport, "[]")
}

// broadcast wakes everyone waiting on *ch. A nil *ch has no waiters; the
// next waiter makes a new channel (endpoint.waitChan). The caller holds
// h.mu.
func broadcast(ch *chan struct{}) {
	if *ch != nil {
		close(*ch)
		*ch = nil
	}
}
