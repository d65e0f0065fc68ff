package httpmock

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hubkit/iothub"
)

// MaxRequestBody is the largest request body the hub reads; a larger one
// is answered with 413 / 413000 GenericRequestEntityTooLarge.
const MaxRequestBody = 4 << 20

// Request is a request as the hub received it.
type Request struct {
	// Method is the HTTP verb.
	Method string
	// Path is the escaped path as sent, such as "/twins/a%2Fb/methods".
	Path string
	// RawQuery is the query string as sent, without the '?'.
	RawQuery string
	// Proto is the protocol version, "HTTP/1.1" or "HTTP/2.0".
	Proto string
	// Header is a copy of the request headers, Authorization included.
	Header http.Header
	// Body is the request body (at most MaxRequestBody+1 bytes of it).
	Body []byte
	// Time is when the hub had read the request.
	Time time.Time
}

// Requests returns every request the hub has received (the most recent
// Options.MaxRecorded when that is set), in order, including the ones it
// rejected. Requests a DropBeforeWrite fault stopped never reached the hub
// and are not included. The result is a deep copy.
func (h *Hub) Requests() []Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	rs := lastN(h.requests, h.maxRecorded)
	out := make([]Request, len(rs))
	for i, r := range rs {
		r.Header = r.Header.Clone()
		r.Body = slices.Clone(r.Body)
		out[i] = r
	}
	return out
}

// Deliveries returns how many method calls reached the device (moduleID
// empty) or module: calls the hub handed to it, whether or not it answered
// in time.
func (h *Hub) Deliveries(deviceID, moduleID string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.deliveries[target{deviceID, moduleID}]
}

// Calls returns every delivered method call (the most recent
// Options.MaxRecorded when that is set), in order of delivery. The result
// is a deep copy.
func (h *Hub) Calls() []MethodCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	cs := lastN(h.calls, h.maxRecorded)
	out := make([]MethodCall, len(cs))
	for i, c := range cs {
		c.Payload = slices.Clone(c.Payload)
		out[i] = c
	}
	return out
}

// record appends v to a history bounded to the last n entries (n == 0:
// unbounded). It drops the oldest half of a full history at once, so that
// recording stays amortised O(1); lastN hides the surplus.
func record[T any](history []T, v T, n int) []T {
	if n > 0 && len(history) >= 2*n {
		k := copy(history, history[len(history)-n:])
		clear(history[k:])
		history = history[:k]
	}
	return append(history, v)
}

// lastN returns the last n entries of history (all when n == 0).
func lastN[T any](history []T, n int) []T {
	if n > 0 && len(history) > n {
		return history[len(history)-n:]
	}
	return history
}

// serveFunc handles a routed request after the common checks passed.
type serveFunc func(w http.ResponseWriter, r *http.Request, rq *routed)

// routed is a request that matched a route.
type routed struct {
	params []string // decoded path parameters, in order
	body   []byte
	now    time.Time // when the hub received it
}

// route is one path template of the REST API and the verbs it supports.
type route struct {
	segs  []string // literal segments; "" is a parameter
	verbs []verb
}

// verb is what a route does for one HTTP method.
type verb struct {
	method string
	rights Rights    // the SAS policy rights required
	action string    // the Entra data action required
	op     Operation // what faults see
	serve  serveFunc // nil: a real operation this simulator does not serve yet
}

// newRoutes returns the hub's routing table.
func (h *Hub) newRoutes() []route {
	twinVerbs := []verb{
		{method: http.MethodGet, rights: ServiceConnect, action: actTwinsRead, op: OperationTwin, serve: h.getTwin},
		{method: http.MethodPut, rights: ServiceConnect, action: actTwinsWrite, op: OperationTwin, serve: h.replaceTwin},
		{method: http.MethodPatch, rights: ServiceConnect, action: actTwinsWrite, op: OperationTwin, serve: h.patchTwin},
	}
	digitalTwinVerbs := []verb{
		{method: http.MethodGet, rights: ServiceConnect, action: actTwinsRead, op: OperationTwin, serve: h.getDigitalTwin},
		{method: http.MethodPatch, rights: ServiceConnect, action: actTwinsWrite, op: OperationTwin, serve: h.patchDigitalTwin},
	}
	invoke := []verb{{method: http.MethodPost, rights: ServiceConnect, action: actInvokeMethod, op: OperationMethod, serve: h.invokeMethod}}
	// A Plug and Play command is a direct method on the device: same
	// rights, same operation for faults.
	command := []verb{{method: http.MethodPost, rights: ServiceConnect, action: actInvokeMethod, op: OperationMethod, serve: h.invokeCommand}}
	read := func(fn serveFunc) verb {
		return verb{method: http.MethodGet, rights: RegistryRead, action: actDevicesRead, op: OperationRegistry, serve: fn}
	}
	put := func(fn serveFunc) verb {
		return verb{method: http.MethodPut, rights: RegistryWrite, action: actDevicesWrite, op: OperationRegistry, serve: fn}
	}
	del := func(fn serveFunc) verb {
		return verb{method: http.MethodDelete, rights: RegistryWrite, action: actDevicesDelete, op: OperationRegistry, serve: fn}
	}
	stats := func(fn serveFunc) []verb {
		return []verb{{method: http.MethodGet, rights: RegistryRead, action: actStatsRead, op: OperationRegistry, serve: fn}}
	}
	return []route{
		{segs: []string{"twins", ""}, verbs: twinVerbs},
		{segs: []string{"twins", "", "methods"}, verbs: invoke},
		{segs: []string{"twins", "", "modules", ""}, verbs: twinVerbs},
		{segs: []string{"twins", "", "modules", "", "methods"}, verbs: invoke},
		{segs: []string{"digitaltwins", "", "commands", ""}, verbs: command},
		{segs: []string{"digitaltwins", "", "components", "", "commands", ""}, verbs: command},
		{segs: []string{"digitaltwins", ""}, verbs: digitalTwinVerbs},
		{segs: []string{"devices"}, verbs: []verb{
			read(h.listDevices),
			{method: http.MethodPost, rights: RegistryWrite, action: actDevicesWrite, op: OperationRegistry, serve: h.bulkDevices},
		}},
		{segs: []string{"devices", "query"}, verbs: []verb{
			{method: http.MethodPost, rights: ServiceConnect, action: actTwinsRead, op: OperationQuery, serve: h.queryDevicesOrJobs},
		}},
		{segs: []string{"devices", ""}, verbs: []verb{read(h.getDevice), put(h.putDevice), del(h.deleteDevice)}},
		{segs: []string{"devices", "", "modules"}, verbs: []verb{read(h.listModules)}},
		{segs: []string{"devices", "", "modules", ""}, verbs: []verb{read(h.getModule), put(h.putModule), del(h.deleteModule)}},
		{segs: []string{"statistics", "devices"}, verbs: stats(h.deviceStats)},
		{segs: []string{"statistics", "service"}, verbs: stats(h.serviceStats)},
		{segs: []string{"jobs", "v2", "query"}, verbs: []verb{h.jobVerb(http.MethodGet, h.queryJobs)}},
		{segs: []string{"jobs", "v2", ""}, verbs: []verb{h.jobVerb(http.MethodGet, h.getJob), h.jobVerb(http.MethodPut, h.createJob)}},
		{segs: []string{"jobs", "v2", "", "cancel"}, verbs: []verb{h.jobVerb(http.MethodPost, h.cancelJob)}},
	}
}

// match finds the route of the decoded path segments and the verb for
// method. Literal segments win over parameters only when the literal route
// supports the method, so that GET /devices/query reads the device
// "query" while POST /devices/query runs a query. The verb is nil when the
// route does not support the method.
func (h *Hub) match(segs []string, method string) (*route, *verb, []string) {
	var first *route
	var firstParams []string
	for i := range h.routes {
		rt := &h.routes[i]
		if len(rt.segs) != len(segs) {
			continue
		}
		var params []string
		ok := true
		for j, s := range rt.segs {
			if s == "" {
				params = append(params, segs[j])
			} else if s != segs[j] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if k := slices.IndexFunc(rt.verbs, func(v verb) bool { return v.method == method }); k >= 0 {
			return rt, &rt.verbs[k], params
		}
		if first == nil {
			first, firstParams = rt, params
		}
	}
	return first, nil, firstParams
}

// effectiveMethod is the request's verb, honouring X-HTTP-Method-Override
// on POST as the Java SDK sends PATCH.
func effectiveMethod(r *http.Request) string {
	if r.Method == http.MethodPost {
		if o := strings.TrimSpace(r.Header.Get("X-HTTP-Method-Override")); o != "" {
			return strings.ToUpper(o)
		}
	}
	return r.Method
}

// splitPath splits an escaped path on '/' and percent-decodes each segment
// once, keeping '+' literal. Empty segments are dropped, as ASP.NET routing
// does, so "/twins/d/" and "/twins/d" route alike.
func splitPath(escaped string) ([]string, error) {
	var segs []string
	for s := range strings.SplitSeq(escaped, "/") {
		if s == "" {
			continue
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			return nil, err
		}
		segs = append(segs, d)
	}
	return segs, nil
}

// ServeHTTP serves the IoT Hub REST API. Each request goes through, in
// order: routing (404 and 405 in ASP.NET's shape), the api-version check
// (400001), authentication and authorization (401002, 401003), a
// suspended hub (403001), the body size limit (413000), then the operation's own validation, faults and
// processing; see the package documentation.
//
// When the caller goes away before the answer is ready (its request
// context ends), and when a DropAfterRead or DropAfterDelivery fault hits,
// ServeHTTP breaks the connection with panic(http.ErrAbortHandler), which
// net/http servers, the in-process transport and StartTLS's server handle;
// a caller of ServeHTTP with its own ResponseWriter must recover it.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.Body != nil {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, MaxRequestBody+1))
		if err != nil {
			abort() // the client went away while sending
		}
	}
	now := time.Now()
	escaped := r.URL.EscapedPath()
	h.mu.Lock()
	h.requests = record(h.requests, Request{
		Method:   r.Method,
		Path:     escaped,
		RawQuery: r.URL.RawQuery,
		Proto:    r.Proto,
		Header:   r.Header.Clone(),
		Body:     body,
		Time:     now,
	}, h.maxRecorded)
	h.mu.Unlock()

	segs, err := splitPath(escaped)
	if err != nil {
		routingError(http.StatusBadRequest, "The request URI is invalid.").write(w, now)
		return
	}
	method := effectiveMethod(r)
	rt, v, params := h.match(segs, method)
	if rt == nil {
		routingError(http.StatusNotFound, fmt.Sprintf("No HTTP resource was found that matches the request URI 'https://%s%s'.", h.hostName, escaped)).write(w, now)
		return
	}
	if v == nil {
		e := routingError(http.StatusMethodNotAllowed, fmt.Sprintf("The requested resource does not support http method '%s'.", method))
		var allow []string
		for _, v := range rt.verbs {
			allow = append(allow, v.method)
		}
		e.header = http.Header{"Allow": {strings.Join(allow, ", ")}}
		e.write(w, now)
		return
	}
	if v.serve == nil {
		routingError(http.StatusNotImplemented, fmt.Sprintf("iothubtest: %s %s is not simulated yet.", method, escaped)).write(w, now)
		return
	}
	if e := h.checkAPIVersion(r); e != nil {
		e.write(w, now)
		return
	}
	if e := h.authorize(r, v, now.Add(h.clockOffset)); e != nil {
		h.countUnauthorized()
		e.write(w, now)
		return
	}
	if e := h.suspendedError(); e != nil {
		e.write(w, now)
		return
	}
	if len(body) > MaxRequestBody {
		newError(iothub.ErrorCodeGenericRequestEntityTooLarge, fmt.Sprintf("The request body exceeds the maximum size of %d bytes.", MaxRequestBody)).write(w, now)
		return
	}
	rq := &routed{params: params, body: body, now: now}
	if v.op == OperationMethod {
		v.serve(w, r, rq) // faults are the method's own business
		return
	}
	if v.op == OperationTwin {
		h.serveBilled(w, r, v, rq) // the quota bills twin operations
		return
	}
	h.serveWithFaults(w, r, v, rq)
}

// serveWithFaults serves a registry, twin or query request, applying the
// faults of its operation; see Fault.
func (h *Hub) serveWithFaults(w http.ResponseWriter, r *http.Request, v *verb, rq *routed) {
	f := h.takeFault(v.op, paramsTarget(rq.params), "", false)
	if f == nil {
		v.serve(w, r, rq)
		return
	}
	ctx := r.Context()
	if !f.afterDelivery() {
		if !sleep(ctx, f.Delay) {
			abort()
		}
		switch {
		case f.Drop != DropNone:
			abort()
		case f.answers():
			writeFault(w, f)
		default:
			v.serve(w, r, rq) // a delay-only fault
		}
		return
	}
	v.serve(&discardWriter{header: make(http.Header)}, r, rq)
	if !sleep(ctx, f.Delay) || f.Drop != DropNone {
		abort()
	}
	writeFault(w, f)
}

// paramsTarget is the target named by a route's parameters.
func paramsTarget(params []string) target {
	var t target
	if len(params) > 0 {
		t.deviceID = params[0]
	}
	if len(params) > 1 {
		t.moduleID = params[1]
	}
	return t
}

// discardWriter is an http.ResponseWriter that forgets the answer.
type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// checkAPIVersion requires exactly one accepted api-version. The parameter
// name is matched case-insensitively, as ASP.NET binds it.
func (h *Hub) checkAPIVersion(r *http.Request) *hubError {
	var got []string
	for k, vs := range r.URL.Query() {
		if strings.EqualFold(k, "api-version") {
			got = append(got, vs...)
		}
	}
	switch {
	case len(got) == 0:
		return newError(iothub.ErrorCodeInvalidProtocolVersion, "The api-version query parameter is required.")
	case len(got) > 1:
		return newError(iothub.ErrorCodeInvalidProtocolVersion, "The api-version query parameter must be given once.")
	case !h.apiVersions[got[0]]:
		return newError(iothub.ErrorCodeInvalidProtocolVersion, fmt.Sprintf("The api-version '%s' is not supported.", got[0]))
	}
	return nil
}

// authorize checks the Authorization header against what the verb needs.
// Messages never quote the token.
func (h *Hub) authorize(r *http.Request, v *verb, now time.Time) *hubError {
	unauthorized := func(reason string) *hubError {
		return newError(iothub.ErrorCodeIotHubUnauthorizedAccess, "Unauthorized: "+reason)
	}
	vals := r.Header.Values("Authorization")
	switch {
	case len(vals) == 0 || vals[0] == "":
		return unauthorized("the Authorization header is missing.")
	case len(vals) > 1:
		return unauthorized("more than one Authorization header.")
	}
	auth := vals[0]
	if scheme, tok, ok := strings.Cut(auth, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return h.authorizeBearer(r, v, strings.TrimSpace(tok), now)
	}
	if !strings.HasPrefix(auth, sasPrefix) {
		return unauthorized("unsupported authorization scheme.")
	}
	name, err := VerifySAS(auth, h.hostName, h.currentPolicies(), now, h.skew)
	if err != nil {
		reason := "the SharedAccessSignature is not valid."
		switch {
		case errors.Is(err, ErrSASExpired):
			reason = "the SharedAccessSignature has expired."
		case errors.Is(err, ErrSASAudience):
			reason = "the SharedAccessSignature audience is not this hub."
		case errors.Is(err, ErrSASPolicy):
			reason = "the SharedAccessSignature names an unknown policy."
		case errors.Is(err, ErrSASSignature):
			reason = "the SharedAccessSignature signature does not verify."
		}
		return unauthorized(reason)
	}
	p, _ := h.Policy(name)
	if p.Rights&v.rights != v.rights {
		return unauthorized(fmt.Sprintf("policy '%s' does not grant %s.", name, v.rights))
	}
	return nil
}

func (h *Hub) authorizeBearer(r *http.Request, v *verb, tok string, now time.Time) *hubError {
	h.mu.Lock()
	bt, ok := h.tokens[tok]
	h.mu.Unlock()
	switch {
	case !ok:
		return newError(iothub.ErrorCodeIotHubUnauthorizedAccess, "Unauthorized: the bearer token is not valid.")
	case !now.Before(bt.expires):
		return newError(iothub.ErrorCodeIotHubUnauthorizedAccess, "Unauthorized: the bearer token has expired.")
	case len(bt.scopes) != 1 || !h.acceptsScope(bt.scopes[0]):
		return newError(iothub.ErrorCodeIotHubUnauthorizedAccess, "Unauthorized: the bearer token's audience is not this hub.")
	case !bt.role.allows(v.action):
		return newError(iothub.ErrorCodeIotHubUnauthorized, fmt.Sprintf(
			"Principal %s is not authorized for %s on %s due to no assigned permissions", bt.principal, r.Method, r.URL.EscapedPath()))
	}
	return nil
}
