package pipeline

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"

	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/auth"
)

// ScopeName is the instrumentation scope of the module's tracer and meter.
const ScopeName = "github.com/hubkit/iothub"

// Attribute keys of the module's spans and metrics: the OpenTelemetry HTTP
// client conventions, the Azure SDK's, and IoT Hub's own under "iothub.".
const (
	AttrHTTPMethod     = attribute.Key("http.request.method")
	AttrHTTPStatus     = attribute.Key("http.response.status_code")
	AttrResendCount    = attribute.Key("http.request.resend_count")
	AttrURLFull        = attribute.Key("url.full")
	AttrServerAddress  = attribute.Key("server.address")
	AttrServerPort     = attribute.Key("server.port")
	AttrErrorType      = attribute.Key("error.type")
	AttrAzNamespace    = attribute.Key("az.namespace")
	AttrAzClientReqID  = attribute.Key("az.client_request_id")
	AttrAzServiceReqID = attribute.Key("az.service_request_id")
	AttrHub            = attribute.Key("iothub.hub.host")
	AttrOperation      = attribute.Key("iothub.operation")
	AttrDeviceID       = attribute.Key("iothub.device.id")
	AttrModuleID       = attribute.Key("iothub.module.id")
	AttrMethodName     = attribute.Key("iothub.method.name")
	AttrAttempts       = attribute.Key("iothub.attempts")
	AttrErrorCode      = attribute.Key("iothub.error.code")
	AttrErrorName      = attribute.Key("iothub.error.name")
	AttrTrackingID     = attribute.Key("iothub.tracking_id")
	AttrDeviceStatus   = attribute.Key("iothub.device.status")
	AttrOutcome        = attribute.Key("iothub.outcome")
	AttrAuthKind       = attribute.Key("iothub.auth.kind")
)

// Namespace is the az.namespace of every span: IoT Hub's resource provider.
const Namespace = "Microsoft.Devices"

// The outcomes of a call, as iothub.outcome gives them.
const (
	OutcomeSucceeded    = "succeeded"
	OutcomeDeviceError  = "device-error"
	OutcomeNotDelivered = "not-delivered"
	OutcomeUnknown      = "unknown"
)

// durationBuckets are the bucket boundaries, in seconds, of the duration
// histograms: OpenTelemetry's advice for HTTP, extended to the 300 s a
// direct method may wait for its device.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 120, 300}

// telemetry is a pipeline's tracer, propagator and instruments; a pipeline
// with none of them has a nil *telemetry and pays nothing for it.
type telemetry struct {
	tracer trace.Tracer                  // nil: no spans
	prop   propagation.TextMapPropagator // nil: no trace context in requests
	meter  metric.Meter                  // nil: no metrics
	m      instruments

	hub        attribute.KeyValue // iothub.hub.host
	serverAddr attribute.KeyValue
	serverPort attribute.KeyValue
}

type instruments struct {
	callDuration    metric.Float64Histogram
	attemptDuration metric.Float64Histogram
	attempts        metric.Int64Counter
	retries         metric.Int64Counter
	throttled       metric.Int64Counter
	active          metric.Int64UpDownCounter
	renewals        metric.Int64Counter
}

// newTelemetry builds the telemetry the options ask for, or nil for none.
func newTelemetry(host, baseURL string, o *iothub.ClientOptions) (*telemetry, error) {
	if o.TracerProvider == nil && o.MeterProvider == nil && o.Propagator == nil {
		return nil, nil
	}
	t := &telemetry{prop: o.Propagator, hub: AttrHub.String(host)}
	u, _ := url.Parse(baseURL) // New checked it
	addr, port := u.Hostname(), 443
	if p := u.Port(); p != "" {
		port, _ = strconv.Atoi(p)
	} else if u.Scheme == "http" {
		port = 80
	}
	t.serverAddr, t.serverPort = AttrServerAddress.String(addr), AttrServerPort.Int(port)
	if o.TracerProvider != nil {
		t.tracer = o.TracerProvider.Tracer(ScopeName, trace.WithInstrumentationVersion(iothub.Version))
		if t.prop == nil {
			t.prop = propagation.TraceContext{}
		}
	}
	if o.MeterProvider != nil {
		t.meter = o.MeterProvider.Meter(ScopeName, metric.WithInstrumentationVersion(iothub.Version))
		if err := t.m.init(t.meter); err != nil {
			return nil, fmt.Errorf("iothub: ClientOptions.MeterProvider: %w", err)
		}
	}
	return t, nil
}

func (m *instruments) init(meter metric.Meter) error {
	var errs [7]error
	m.callDuration, errs[0] = meter.Float64Histogram("iothub.client.call.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of IoT Hub calls, retries included, by operation and outcome."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	m.attemptDuration, errs[1] = meter.Float64Histogram("http.client.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP client requests."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	m.attempts, errs[2] = meter.Int64Counter("iothub.client.attempts", metric.WithUnit("{attempt}"),
		metric.WithDescription("HTTP attempts of IoT Hub calls, first attempts and retries."))
	m.retries, errs[3] = meter.Int64Counter("iothub.client.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("HTTP attempts after the first of an IoT Hub call."))
	m.throttled, errs[4] = meter.Int64Counter("iothub.client.throttled", metric.WithUnit("{response}"),
		metric.WithDescription("Throttled (429) answers of IoT Hub."))
	m.active, errs[5] = meter.Int64UpDownCounter("iothub.client.active_calls", metric.WithUnit("{call}"),
		metric.WithDescription("IoT Hub calls in flight."))
	m.renewals, errs[6] = meter.Int64Counter("iothub.auth.token.renewals", metric.WithUnit("{token}"),
		metric.WithDescription("New SAS or Entra tokens the client's credential handed out, the first included."))
	return errors.Join(errs[:]...)
}

// Tracer returns the pipeline's tracer, or nil when ClientOptions has no
// TracerProvider.
func (p *Pipeline) Tracer() trace.Tracer {
	if p.tel == nil {
		return nil
	}
	return p.tel.tracer
}

// Observed reports whether the pipeline has spans or metrics, for callers
// that compute an attribute only when it is used.
func (p *Pipeline) Observed() bool { return p.tel != nil }

// Meter returns the pipeline's meter, or nil when ClientOptions has no
// MeterProvider.
func (p *Pipeline) Meter() metric.Meter {
	if p.tel == nil {
		return nil
	}
	return p.tel.meter
}

// HubAttribute is the iothub.hub.host attribute of the pipeline's hub.
func (p *Pipeline) HubAttribute() attribute.KeyValue { return AttrHub.String(p.host) }

// callTelemetry is a call's telemetry state; the zero value is none.
type callTelemetry struct {
	span         trace.Span // the operation's span; nil when not traced
	attempt      trace.Span // the attempt in progress; nil when not traced
	start        time.Time
	attemptStart time.Time
	attemptN     int
	url          string
	reqID        string
	op           attribute.KeyValue // iothub.operation
	prevErr      *iothub.Error      // c.lastErr before the attempt's decision
}

// startCall opens the operation's span and counts the call in flight. It
// returns the request to send, which carries the span.
func (c *call) startCall(rreq *retryablehttp.Request, u string) *retryablehttp.Request {
	t := c.p.tel
	ct := &c.tel
	ct.start = time.Now()
	ct.url = redactURL(u)
	ct.op = AttrOperation.String(c.req.Operation)
	if v := c.requestID; len(v) > 0 {
		ct.reqID = v[0]
	}
	if t.meter != nil {
		t.m.active.Add(rreq.Context(), 1, metric.WithAttributes(ct.op, t.hub))
	}
	if t.tracer == nil {
		return rreq
	}
	attrs := make([]attribute.KeyValue, 0, 8)
	attrs = append(attrs, AttrAzNamespace.String(Namespace), t.hub, ct.op, AttrAzClientReqID.String(ct.reqID))
	if c.req.DeviceID != "" {
		attrs = append(attrs, AttrDeviceID.String(c.req.DeviceID))
	}
	if c.req.ModuleID != "" {
		attrs = append(attrs, AttrModuleID.String(c.req.ModuleID))
	}
	if c.req.MethodName != "" {
		attrs = append(attrs, AttrMethodName.String(c.req.MethodName))
	}
	ctx, span := t.tracer.Start(rreq.Context(), c.req.Operation, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...), trace.WithTimestamp(ct.start))
	ct.span = span
	return rreq.WithContext(ctx)
}

// endCall closes the operation's span and records the call's metrics.
func (c *call) endCall(ctx context.Context, resp *Response, err error) {
	t := c.p.tel
	ct := &c.tel
	end := time.Now()
	outcome, status, hasStatus := OutcomeSucceeded, 0, false
	if err != nil {
		outcome = OutcomeNotDelivered
		if iothub.MayHaveRun(err) {
			outcome = OutcomeUnknown
		}
	} else if c.req.ResultStatus != nil {
		if status, hasStatus = c.req.ResultStatus(resp); hasStatus && (status < 200 || status > 299) {
			outcome = OutcomeDeviceError
		}
	}
	errType := errorType(err)
	if t.meter != nil {
		t.m.active.Add(ctx, -1, metric.WithAttributes(ct.op, t.hub))
		attrs := make([]attribute.KeyValue, 0, 5)
		attrs = append(attrs, ct.op, t.hub, AttrOutcome.String(outcome))
		if c.req.MethodName != "" {
			attrs = append(attrs, AttrMethodName.String(c.req.MethodName))
		}
		if errType != "" {
			attrs = append(attrs, AttrErrorType.String(errType))
		}
		t.m.callDuration.Record(ctx, end.Sub(ct.start).Seconds(), metric.WithAttributes(attrs...))
	}
	if ct.span == nil {
		return
	}
	attempts := 0
	if resp != nil {
		attempts = resp.Attempts
	}
	var he *iothub.Error
	switch e := err.(type) {
	case *iothub.Error:
		he, attempts = e, e.Attempts
	case *iothub.TransportError:
		attempts = e.Attempts
	}
	attrs := make([]attribute.KeyValue, 0, 8)
	attrs = append(attrs, AttrOutcome.String(outcome), AttrAttempts.Int(attempts))
	if hasStatus {
		attrs = append(attrs, AttrDeviceStatus.Int(status))
	}
	if he != nil {
		attrs = appendHubError(attrs, he)
	}
	if errType != "" {
		attrs = append(attrs, AttrErrorType.String(errType))
		ct.span.SetStatus(codes.Error, err.Error())
	}
	ct.span.SetAttributes(attrs...)
	ct.span.End(trace.WithTimestamp(end))
}

func appendHubError(attrs []attribute.KeyValue, he *iothub.Error) []attribute.KeyValue {
	if he.Code != 0 {
		attrs = append(attrs, AttrErrorCode.Int(int(he.Code)))
	}
	if he.CodeName != "" {
		attrs = append(attrs, AttrErrorName.String(he.CodeName))
	}
	if he.TrackingID != "" {
		attrs = append(attrs, AttrTrackingID.String(he.TrackingID))
	}
	return attrs
}

// errorType is the error.type of a call's error: the IoT Hub error name
// (or the HTTP status without one), "timeout", "canceled", "transport" or
// "body"; "" for no error.
func errorType(err error) string {
	switch e := err.(type) {
	case nil:
		return ""
	case *iothub.Error:
		if e.CodeName != "" {
			return e.CodeName
		}
		return strconv.Itoa(e.StatusCode)
	case *iothub.BodyError:
		return "body"
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "transport"
}

// startAttempt opens an attempt's span, a child of the operation's. It
// returns the request to send, which carries the span.
func (c *call) startAttempt(r *http.Request, attempt int) *http.Request {
	t := c.p.tel
	ct := &c.tel
	ct.attemptStart, ct.attemptN = time.Now(), attempt
	c.mu.Lock()
	ct.prevErr = c.lastErr
	c.mu.Unlock()
	if t.tracer == nil {
		return r
	}
	attrs := make([]attribute.KeyValue, 0, 8)
	attrs = append(attrs, AttrHTTPMethod.String(r.Method), AttrURLFull.String(ct.url), t.serverAddr, t.serverPort,
		AttrAzNamespace.String(Namespace), AttrAzClientReqID.String(ct.reqID))
	if attempt > 1 {
		attrs = append(attrs, AttrResendCount.Int(attempt-1))
	}
	ctx, span := t.tracer.Start(r.Context(), r.Method, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...), trace.WithTimestamp(ct.attemptStart))
	ct.attempt = span
	return r.WithContext(ctx)
}

// inject writes the trace context of the attempt into its headers.
func (c *call) inject(r *http.Request) {
	if p := c.p.tel.prop; p != nil {
		p.Inject(r.Context(), propagation.HeaderCarrier(r.Header))
	}
}

// checkRetryObserved is checkRetry that also ends the attempt's span and
// records its metrics: retryablehttp asks it after every attempt.
func (c *call) checkRetryObserved(ctx context.Context, resp *http.Response, err error) (bool, error) {
	retry, cerr := c.checkRetry(ctx, resp, err)
	c.endAttempt(ctx, resp, err)
	return retry, cerr
}

func (c *call) endAttempt(ctx context.Context, resp *http.Response, err error) {
	t := c.p.tel
	ct := &c.tel
	if ct.attemptN == 0 {
		return // the transport was never reached
	}
	end := time.Now()
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	var he *iothub.Error
	c.mu.Lock()
	if c.lastErr != ct.prevErr {
		he = c.lastErr
	}
	c.mu.Unlock()
	errType := ""
	switch {
	case status >= 400:
		errType = strconv.Itoa(status)
	case resp == nil:
		errType = errorType(err) // no answer: never an *iothub.Error
		if ae, ok := errors.AsType[*attemptError](err); ok && ae.auth {
			errType = "credential"
		}
	}
	if t.meter != nil {
		attrs := make([]attribute.KeyValue, 0, 5)
		attrs = append(attrs, AttrHTTPMethod.String(c.req.Method), t.serverAddr, t.serverPort)
		if status != 0 {
			attrs = append(attrs, AttrHTTPStatus.Int(status))
		}
		if errType != "" {
			attrs = append(attrs, AttrErrorType.String(errType))
		}
		t.m.attemptDuration.Record(ctx, end.Sub(ct.attemptStart).Seconds(), metric.WithAttributes(attrs...))
		opAttrs := metric.WithAttributes(ct.op, t.hub)
		t.m.attempts.Add(ctx, 1, opAttrs)
		if ct.attemptN > 1 {
			t.m.retries.Add(ctx, 1, opAttrs)
		}
		if status == http.StatusTooManyRequests {
			t.m.throttled.Add(ctx, 1, opAttrs)
		}
	}
	if span := ct.attempt; span != nil {
		attrs := make([]attribute.KeyValue, 0, 6)
		if status != 0 {
			attrs = append(attrs, AttrHTTPStatus.Int(status))
			if id := resp.Header.Get("x-ms-request-id"); id != "" {
				attrs = append(attrs, AttrAzServiceReqID.String(id))
			}
		}
		if he != nil {
			attrs = appendHubError(attrs, he)
		}
		if errType != "" {
			attrs = append(attrs, AttrErrorType.String(errType))
			msg := errType
			if he != nil && he.CodeName != "" {
				msg = he.CodeName
			}
			span.SetStatus(codes.Error, msg)
		}
		span.SetAttributes(attrs...)
		span.End(trace.WithTimestamp(end))
	}
	ct.attempt, ct.attemptN = nil, 0
}

// redactURL hides the value of any sig query parameter. IoT Hub's REST
// URLs hold no secret; this keeps one out of a span should a caller put a
// SAS signature into a query.
func redactURL(u string) string {
	if !strings.Contains(u, "sig=") {
		return u
	}
	parsed, err := url.Parse(u)
	if err != nil {
		return "<unparsable URL>"
	}
	q := parsed.Query()
	for k := range q {
		if strings.EqualFold(k, "sig") {
			q[k] = []string{"REDACTED"}
		}
	}
	parsed.RawQuery = q.Encode()
	return parsed.String()
}

// renewalWatch counts the new tokens an authorizer hands out. It keeps a
// hash of the current and the previous token, never the token itself: a
// caller that got the previous token just before a renewal is not a
// renewal.
type renewalWatch struct {
	a       Authorizer
	kind    attribute.KeyValue
	counter metric.Int64Counter
	hub     attribute.KeyValue
	seed    maphash.Seed

	cur  atomic.Uint64
	mu   sync.Mutex
	prev uint64
	seen bool
}

// watchRenewals wraps a renewing authorizer so that its renewals are
// counted; an authorizer that never renews is returned as it is.
func watchRenewals(a Authorizer, t *telemetry) Authorizer {
	var kind string
	switch a.(type) {
	case *auth.SharedAccessKeyAuthorizer:
		kind = "sas"
	case *auth.TokenCredentialAuthorizer:
		kind = "entra"
	case *auth.StaticSASAuthorizer:
		return a
	default:
		kind = "custom"
	}
	return &renewalWatch{a: a, kind: AttrAuthKind.String(kind), counter: t.m.renewals, hub: t.hub, seed: maphash.MakeSeed()}
}

func (w *renewalWatch) Authorization(ctx context.Context) (string, error) {
	tok, err := w.a.Authorization(ctx)
	if err != nil {
		return tok, err
	}
	h := maphash.String(w.seed, tok)
	if w.cur.Load() == h {
		return tok, nil
	}
	w.mu.Lock()
	renewed := !w.seen || (h != w.cur.Load() && h != w.prev)
	if renewed {
		w.prev, w.seen = w.cur.Load(), true
		w.cur.Store(h)
	}
	w.mu.Unlock()
	if renewed {
		w.counter.Add(ctx, 1, metric.WithAttributes(w.kind, w.hub))
	}
	return tok, nil
}

// String names the authorizer it wraps, without any secret.
func (w *renewalWatch) String() string { return fmt.Sprint(w.a) }
