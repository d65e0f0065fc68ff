package iothub

import (
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// APIVersion is the IoT Hub data-plane REST API version the SDK speaks
// unless ClientOptions.APIVersion overrides it.
const APIVersion = "2021-04-12"

// Version is this module's version, sent in the User-Agent header.
const Version = "0.1.0"

// ClientOptions configures the clients of this module, service.Client and
// registry.Client. The zero value, and a nil *ClientOptions, give the
// defaults.
type ClientOptions struct {
	// Transport, when set, is the http.RoundTripper requests go through,
	// such as an *http.Transport of your own or a test hub's in-process
	// transport. Redirects are never followed. The default is a transport
	// sized for fan-out: HTTP/1.1 keep-alive (see HTTP2), proxy settings
	// from the environment, TLS 1.2 or later.
	Transport http.RoundTripper

	// HTTP2 makes the default transport offer HTTP/2 and speak it when the
	// hub accepts it; a fan-out then multiplexes its calls over one
	// connection. It is unverified against the real service: IoT Hub
	// documents its HTTPS endpoints as HTTP/1.1, and no official SDK uses
	// HTTP/2 against it, so the default is HTTP/1.1 keep-alive. It applies
	// to the default transport only; setting it with Transport is an error
	// (choose the protocols of your own transport instead).
	HTTP2 bool

	// AttemptTimeout, when positive, caps each attempt of every call,
	// reading the answer included; a retry starts a new attempt. 0 means
	// the SDK's own bound: 100 s, or for a direct method its connect and
	// response timeouts plus service.NetworkMargin. A cap below a direct
	// method's timeouts can end an attempt before the device answers, with
	// an outcome-unknown error. To bound a whole call, retries included,
	// give it a context with a deadline.
	AttemptTimeout time.Duration

	// MaxConnections, when positive, caps the connections the default
	// transport opens to the hub (MaxConnsPerHost): calls beyond it wait
	// for a free connection. Over HTTP/1.1 (IoT Hub documents its HTTPS
	// endpoints as HTTP/1.1), the transport otherwise dials a spare connection whenever a
	// call finds none idle at that instant, and keeps it; set this to the
	// number of calls you run at once. Fan-outs need no help: each keeps at
	// most its Concurrency. It applies to the default transport only, not
	// to Transport; 0 means no cap.
	MaxConnections int

	// Retry sets the retry policy; its zero value gives DefaultRetryOptions.
	Retry RetryOptions

	// Logger receives structured logs of each attempt (operation, path,
	// status, attempt, duration, tracking ID). Nil means silent. Bodies,
	// tokens and keys are never logged.
	Logger *slog.Logger

	// TracerProvider, when set, receives a span for every call (named
	// after the operation, such as "InvokeDeviceMethod") with a child span
	// of kind client for each HTTP attempt, and one span per fan-out; see
	// docs/observability.md for the attributes. Nil means no spans, at no
	// cost. Keys, tokens, signatures and payloads never reach a span.
	TracerProvider trace.TracerProvider

	// MeterProvider, when set, receives the clients' metrics: call and
	// attempt durations, attempts, retries, throttled answers, calls in
	// flight, fan-out rates and token renewals (docs/observability.md lists
	// them). Nil means no metrics, at no cost.
	MeterProvider metric.MeterProvider

	// Propagator writes the trace context of each attempt into its
	// headers. Nil means the W3C Trace Context propagator (traceparent,
	// tracestate) when TracerProvider is set, and none otherwise; set it
	// without a TracerProvider to pass the caller's trace context on without
	// recording spans, or to an empty composite propagator to send none.
	Propagator propagation.TextMapPropagator

	// APIVersion overrides the api-version query parameter; empty means
	// APIVersion.
	APIVersion string

	// Endpoint overrides the URL requests are sent to, such as
	// "https://127.0.0.1:8443" for an emulator or a test hub. The SAS
	// audience stays the hub host name given to the constructor. Empty
	// means "https://" + host name.
	Endpoint string

	// TokenScope is the Microsoft Entra scope requested for a
	// TokenCredential. Empty means auth.ScopePublicCloud,
	// https://iothubs.azure.net/.default, which IoT Hub accepts in every
	// cloud; set it only for a hub that asks for a cloud-specific audience
	// (see the auth package's Scope constants).
	TokenScope string

	// SASTokenTTL is the lifetime of the SAS tokens minted from a
	// connection string's key; 0 means the auth package's default (1 h).
	// Tokens are cached and renewed ahead of expiry, never minted per call.
	SASTokenTTL time.Duration

	// InsecureAllowHTTP allows an http:// Endpoint, which sends credentials
	// in clear text. It exists for tests against a local fake hub only.
	InsecureAllowHTTP bool
}

// RetryOptions is the retry policy. Zero fields take the defaults of
// DefaultRetryOptions.
//
// Whatever the policy, a direct-method invocation is retried automatically
// only when IoT Hub guarantees that it was not delivered: throttling
// (429xxx), server busy or unavailable (503xxx), and connection failures
// before the request was written. See the service package for the per-call
// opt-ins.
type RetryOptions struct {
	// MaxAttempts is the total number of attempts, the first included. 1
	// disables retries. Default 4.
	MaxAttempts int
	// MinDelay is the delay before the first retry; later retries double
	// it, up to MaxDelay. A random jitter takes up to half of each delay
	// away. Default 500 ms.
	MinDelay time.Duration
	// MaxDelay caps the delay between attempts. Default 30 s.
	MaxDelay time.Duration
	// MaxRetryAfter caps how long the SDK waits when the hub sends a
	// Retry-After header; a longer request ends the retries and returns
	// the hub's error with Error.RetryAfter set, for the caller to decide.
	// Default 60 s.
	MaxRetryAfter time.Duration
}

// DefaultRetryOptions returns the default retry policy.
func DefaultRetryOptions() RetryOptions {
	return RetryOptions{
		MaxAttempts:   4,
		MinDelay:      500 * time.Millisecond,
		MaxDelay:      30 * time.Second,
		MaxRetryAfter: 60 * time.Second,
	}
}

// WithDefaults returns o with every zero field set to its default.
func (o RetryOptions) WithDefaults() RetryOptions {
	d := DefaultRetryOptions()
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = d.MaxAttempts
	}
	if o.MinDelay <= 0 {
		o.MinDelay = d.MinDelay
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = d.MaxDelay
	}
	if o.MaxDelay < o.MinDelay {
		o.MaxDelay = o.MinDelay
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = d.MaxRetryAfter
	}
	return o
}
