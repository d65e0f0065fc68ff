package httpmock

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/hubkit/iothub"
)

// Faults that hit the whole fleet at once, rather than one request: a
// suspended hub, an exhausted daily message quota, a revoked policy or a
// rotated key. Unlike a Fault, they are states of the hub: every request
// they cover is refused from the moment they start until they end, and a
// refused call is never delivered (Deliveries, TotalDeliveries and Calls
// do not count it). Calls that passed the check before the state began
// carry on and are delivered as usual.
//
// Where they sit in the order of checks (see the package documentation):
//
//   - A revoked policy or rotated key: step 3, authentication. A SAS token
//     of a revoked policy, or one signed with a key the policy no longer
//     has, is refused with 401 / 401002 IotHubUnauthorizedAccess, as any
//     token that does not verify.
//   - A suspended hub: right after authentication, for every operation:
//     403 / 403001 IotHubSuspended. Jobs already running fail the device
//     operations they have not started with the same error.
//   - An exhausted quota: for the operations the quota bills (direct
//     methods, twin reads and updates, and the device operations of
//     jobs), after the body checks of a method and before faults and
//     throttling: 403 / 403002 IotHubQuotaExceeded. Registry, query and
//     jobs requests are not billed and go on working.

// fleetState is a hub's hub-wide states.
type fleetState struct {
	mu        sync.Mutex
	suspended bool
	quota     int64 // daily messages; 0: no quota
	used      int64 // messages billed since New or ResetQuota
	exhausted bool  // refusing billable operations
	refusals  Refusals
}

// Refusals counts the requests, and the device operations of jobs, that
// the hub refused for a hub-wide reason; see Hub.Refusals.
type Refusals struct {
	// Unauthorized is how many requests were answered 401, for any reason:
	// a missing, malformed, expired or wrongly signed token, a revoked
	// policy or a rotated key, missing rights.
	Unauthorized int64
	// Suspended is how many were answered 403001 IotHubSuspended.
	Suspended int64
	// QuotaExceeded is how many were answered 403002 IotHubQuotaExceeded.
	QuotaExceeded int64
}

// Refusals returns the hub-wide refusals since New.
func (h *Hub) Refusals() Refusals {
	h.fleet.mu.Lock()
	defer h.fleet.mu.Unlock()
	return h.fleet.refusals
}

// Suspend suspends the hub, as Azure does when the subscription's spending
// limit is reached: from now on every request that passes authentication
// is answered 403 / 403001 IotHubSuspended, and running jobs fail the
// device operations they have not started with that error. Nothing further
// is delivered. Resume ends it.
func (h *Hub) Suspend() {
	h.fleet.mu.Lock()
	defer h.fleet.mu.Unlock()
	h.fleet.suspended = true
}

// Resume ends a suspension; see Suspend.
func (h *Hub) Resume() {
	h.fleet.mu.Lock()
	defer h.fleet.mu.Unlock()
	h.fleet.suspended = false
}

// ExhaustQuota uses up the daily message quota now, whether or not
// Options.DailyMessages set one: from now on every billable operation
// (direct methods, twin reads and updates, the device operations of jobs)
// is refused with 403 / 403002 IotHubQuotaExceeded and nothing is
// delivered, until ResetQuota.
//
// With Options.DailyMessages set, the hub also exhausts the quota by
// itself once the messages it billed reach it. It bills as IoT Hub does,
// in 4 KB messages: a delivered method call one per started 4 KB of its
// request payload (one at least) plus one per started 4 KB of the device's
// response payload (one at least); a call to an offline device its request
// only; a twin read one per started 4 KB of the twin returned; a twin
// update one per started 4 KB of its request body. A job's method call is
// billed as a direct one, a job's twin update as one message.
func (h *Hub) ExhaustQuota() {
	h.fleet.mu.Lock()
	defer h.fleet.mu.Unlock()
	h.fleet.exhausted = true
	h.fleet.used = max(h.fleet.used, h.fleet.quota)
}

// ResetQuota starts a new UTC day: the count of messages used goes back to
// zero and billable operations are accepted again.
func (h *Hub) ResetQuota() {
	h.fleet.mu.Lock()
	defer h.fleet.mu.Unlock()
	h.fleet.exhausted = false
	h.fleet.used = 0
}

// MessagesUsed returns the messages billed against the daily quota since
// New or the last ResetQuota (ExhaustQuota counts the whole quota as used).
func (h *Hub) MessagesUsed() int64 {
	h.fleet.mu.Lock()
	defer h.fleet.mu.Unlock()
	return h.fleet.used
}

// RevokePolicy deletes the named shared access policy, as removing it in
// the portal does: from now on every SAS token it signed, issued before or
// after, is refused with 401 / 401002 IotHubUnauthorizedAccess, and
// nothing such a request asks for is delivered. Requests already past
// authentication carry on. It panics when the hub has no such policy, a
// programming error in a test.
func (h *Hub) RevokePolicy(name string) {
	h.policyMu.Lock()
	defer h.policyMu.Unlock()
	i := slices.IndexFunc(h.policies, func(p Policy) bool { return p.Name == name })
	if i < 0 {
		panic(fmt.Sprintf("iothubtest: RevokePolicy: no policy %q", name))
	}
	h.policies = slices.Delete(slices.Clone(h.policies), i, i+1)
}

// RotateKey gives the named policy a new random key and returns it, as
// regenerating a policy's key does: from now on SAS tokens signed with the
// old key are refused with 401 / 401002 IotHubUnauthorizedAccess (nothing
// they ask for is delivered), and ConnectionString carries the new key. It
// panics when the hub has no such policy.
func (h *Hub) RotateKey(name string) string {
	h.policyMu.Lock()
	defer h.policyMu.Unlock()
	i := slices.IndexFunc(h.policies, func(p Policy) bool { return p.Name == name })
	if i < 0 {
		panic(fmt.Sprintf("iothubtest: RotateKey: no policy %q", name))
	}
	key := NewKey()
	h.policies = slices.Clone(h.policies)
	h.policies[i].Key = key
	return key
}

// TotalDeliveries returns how many method calls reached any device or
// module since New: the sum of Deliveries over every target. Take it
// before and after a fleet-wide fault to see what was delivered since.
func (h *Hub) TotalDeliveries() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.delivered
}

// hubName is the hub's name: the first label of its host name.
func (h *Hub) hubName() string {
	name, _, _ := strings.Cut(hostWithoutPort(h.hostName), ".")
	return name
}

// countUnauthorized counts a 401 answer.
func (h *Hub) countUnauthorized() {
	h.fleet.mu.Lock()
	defer h.fleet.mu.Unlock()
	h.fleet.refusals.Unauthorized++
}

// suspendedError returns, and counts, the answer of a suspended hub; nil
// when the hub is not suspended.
func (h *Hub) suspendedError() *hubError {
	h.fleet.mu.Lock()
	defer h.fleet.mu.Unlock()
	if !h.fleet.suspended {
		return nil
	}
	h.fleet.refusals.Suspended++
	return newError(iothub.ErrorCodeIotHubSuspended, fmt.Sprintf(
		"IotHub '%s' is suspended. This is likely due to exceeding the Azure spending limit; check the Azure bill.", h.hubName()))
}

// quotaError returns, and counts, the answer to a billable operation when
// the daily quota is exhausted; nil otherwise.
func (h *Hub) quotaError() *hubError {
	h.fleet.mu.Lock()
	defer h.fleet.mu.Unlock()
	if !h.fleet.exhausted {
		return nil
	}
	h.fleet.refusals.QuotaExceeded++
	return newError(iothub.ErrorCodeIotHubQuotaExceeded, fmt.Sprintf(
		"Total number of messages on IotHub '%s' exceeded the allocated quota. Max allowed message count : '%d', current message count : '%d'. "+
			"Send and Receive operations are blocked for this hub until the next UTC day. Consider increasing the units for this hub to increase the quota.",
		h.hubName(), h.fleet.quota, h.fleet.used))
}

// fleetRefusal returns the answer to a billable operation of a job's: the
// suspension's, else the exhausted quota's; nil when it may run.
func (h *Hub) fleetRefusal() *hubError {
	if e := h.suspendedError(); e != nil {
		return e
	}
	return h.quotaError()
}

// messages is how many 4 KB messages size bytes bill: one per started
// 4 KB, one at least.
func messages(size int) int64 {
	return max(1, (int64(size)+MethodMeterSize-1)/MethodMeterSize)
}

// bill charges n messages to the daily quota and exhausts it when they
// reach it.
func (h *Hub) bill(n int64) {
	h.fleet.mu.Lock()
	defer h.fleet.mu.Unlock()
	h.fleet.used += n
	if h.fleet.quota > 0 && h.fleet.used >= h.fleet.quota {
		h.fleet.exhausted = true
	}
}

// billMethod bills a method call by its outcome: request and response
// when the device answered, the request alone when it was delivered
// without an answer or its device was offline, nothing otherwise.
func (h *Hub) billMethod(mr *methodRequest, d delivery) {
	switch {
	case d.delivered && d.err == nil:
		h.bill(messages(mr.size) + messages(len(d.resp.Payload)))
	case d.delivered, d.err != nil && d.err.code == int(iothub.ErrorCodeDeviceNotOnline):
		h.bill(messages(mr.size))
	}
}

// billingWriter records the status and size of an answer, to bill a twin
// operation by it.
type billingWriter struct {
	http.ResponseWriter
	status int
	size   int
}

func (b *billingWriter) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
	b.ResponseWriter.WriteHeader(status)
}

func (b *billingWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	b.size += len(p)
	return b.ResponseWriter.Write(p)
}

// serveBilled serves a twin operation when the quota allows it and bills
// it when it succeeds: a read by the twin returned, an update by its
// request body.
func (h *Hub) serveBilled(w http.ResponseWriter, r *http.Request, v *verb, rq *routed) {
	if e := h.quotaError(); e != nil {
		e.write(w, rq.now)
		return
	}
	bw := &billingWriter{ResponseWriter: w}
	h.serveWithFaults(bw, r, v, rq)
	if bw.status != http.StatusOK {
		return
	}
	if v.method == http.MethodGet {
		h.bill(messages(bw.size))
	} else {
		h.bill(messages(len(rq.body)))
	}
}
