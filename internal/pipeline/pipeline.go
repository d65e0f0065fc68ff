// Package pipeline is the one HTTP pipeline every client of the module sends
// its requests through: URL building, signing, per-attempt deadlines,
// delivery tracking, retries (on go-retryablehttp), logging, and turning
// answers into the module's error types.
//
// It knows no IoT Hub operation. What an error answer means for a request
// (retry it, fail, or take it as the answer) is the request's Policy,
// chosen by the operation; Default holds the generic rules that policies
// compose.
package pipeline

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hubkit/iothub"
)

// Authorizer yields the Authorization header value for one attempt. The auth
// package's authorizers satisfy it.
type Authorizer interface {
	Authorization(ctx context.Context) (string, error)
}

// RetryClass says which failures a request may be retried after.
type RetryClass int

const (
	// RetryNotDelivered retries only failures where the hub guarantees the
	// request was not carried out: 429xxx, 503xxx and connection failures
	// before the request was written. It is the class of direct methods.
	RetryNotDelivered RetryClass = iota
	// RetryIdempotent also retries failures that leave the outcome unknown:
	// other 5xx, a connection broken after writing, an attempt deadline. It
	// is the class of reads and of methods the caller declared idempotent.
	RetryIdempotent
)

// DefaultMaxResponseBytes bounds a response body unless a request sets its
// own limit.
const DefaultMaxResponseBytes = 4 << 20

// DefaultAttemptTimeout bounds an attempt unless a request sets its own.
const DefaultAttemptTimeout = 100 * time.Second

// Request is one logical call.
type Request struct {
	// Operation names the SDK operation, for errors and logs.
	Operation string
	// DeviceID and ModuleID name the target, for errors and logs.
	DeviceID, ModuleID string
	// Method is the HTTP verb.
	Method string
	// Path is the escaped path, starting with "/".
	Path string
	// Query holds extra query parameters, already encoded, without a
	// leading "&" (api-version is added by the pipeline).
	Query string
	// Header holds extra headers.
	Header http.Header
	// Body is the JSON body, or nil.
	Body []byte
	// AttemptTimeout bounds each attempt, including reading the body; 0
	// means DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// Retry is the retry class: whether the request may be sent again
	// when its outcome is unknown (a connection broken after writing, an
	// attempt deadline), and what Default does with such answers.
	Retry RetryClass
	// Policy decides what an error answer means: retry, fail, or accept it
	// as the answer; nil means DefaultPolicy.
	Policy Policy
	// MaxResponseBytes bounds the body; 0 means DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// MethodName names the direct method or command invoked, for spans and
	// metrics; empty for other operations.
	MethodName string
	// ResultStatus, when set, reads the device's status from a successful
	// answer (from its body for a method, from a header for a command),
	// for spans and metrics (iothub.device.status, and the outcome
	// device-error for a status outside 2xx). It is called only when
	// telemetry is enabled; a package-level function costs no allocation.
	ResultStatus func(resp *Response) (status int, ok bool)
}

// Response is a successful (status < 400) answer, body read in full.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
	Attempts   int
}

// Pipeline sends requests to one hub. It is immutable and safe for
// concurrent use.
type Pipeline struct {
	settings
	calls sync.Pool // of *call, built by newCall
}

// settings are a pipeline's immutable parts, which WithConnLimit copies.
type settings struct {
	host          string
	baseURL       string
	apiVersion    string
	query         string   // "?api-version=…"
	userAgent     []string // the User-Agent header value; see Do
	accept        []string // the Accept header value
	contentType   []string // the Content-Type of a body
	auth          Authorizer
	transport     http.RoundTripper
	clientTimeout time.Duration
	retry         iothub.RetryOptions
	logger        *slog.Logger
	tel           *telemetry // nil: no spans, metrics or propagation
}

// New validates the options and builds a pipeline. It does no I/O.
func New(hostName string, a Authorizer, opts *iothub.ClientOptions) (*Pipeline, error) {
	if err := ValidateHostName(hostName); err != nil {
		return nil, err
	}
	if a == nil {
		return nil, errors.New("iothub: a credential is required")
	}
	var o iothub.ClientOptions
	if opts != nil {
		o = *opts
	}
	p := &Pipeline{settings: settings{
		host:        hostName,
		apiVersion:  o.APIVersion,
		auth:        a,
		retry:       o.Retry.WithDefaults(),
		logger:      o.Logger,
		userAgent:   []string{UserAgent()},
		accept:      []string{"application/json"},
		contentType: []string{"application/json; charset=utf-8"},
	}}
	if p.apiVersion == "" {
		p.apiVersion = iothub.APIVersion
	} else if strings.ContainsAny(p.apiVersion, "&?#/ ") {
		return nil, fmt.Errorf("iothub: ClientOptions.APIVersion %q is not a valid api-version", p.apiVersion)
	}
	if o.MaxConnections < 0 {
		return nil, fmt.Errorf("iothub: ClientOptions.MaxConnections must be 0 (no cap) or more; got %d", o.MaxConnections)
	}
	base := "https://" + hostName
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return nil, errors.New("iothub: ClientOptions.Endpoint must be a URL of the form https://host[:port]")
		}
		switch u.Scheme {
		case "https":
		case "http":
			if !o.InsecureAllowHTTP {
				return nil, errors.New("iothub: ClientOptions.Endpoint is http://, which would send credentials in clear text; set InsecureAllowHTTP (tests only) to allow it")
			}
		default:
			return nil, fmt.Errorf("iothub: ClientOptions.Endpoint has scheme %q; want https", u.Scheme)
		}
		base = u.Scheme + "://" + u.Host
	}
	p.baseURL = base
	p.query = "?api-version=" + url.QueryEscape(p.apiVersion)
	p.calls.New = func() any { return p.newCall() }
	if o.Transport != nil && o.HTTP2 {
		return nil, errors.New("iothub: ClientOptions.HTTP2 applies to the default transport only; with a Transport of your own, set its Protocols instead")
	}
	if o.Transport != nil {
		p.transport = o.Transport
	} else {
		t := DefaultTransport()
		if o.HTTP2 {
			t = HTTP2Transport()
		}
		if o.MaxConnections > 0 {
			t.MaxConnsPerHost = o.MaxConnections
			t.MaxIdleConnsPerHost = o.MaxConnections
		}
		p.transport = t
	}
	if o.AttemptTimeout < 0 {
		return nil, fmt.Errorf("iothub: ClientOptions.AttemptTimeout must be 0 (the default) or more; got %v", o.AttemptTimeout)
	}
	p.clientTimeout = o.AttemptTimeout
	tel, err := newTelemetry(hostName, base, &o)
	if err != nil {
		return nil, err
	}
	p.tel = tel
	if p.tel != nil && p.tel.meter != nil {
		p.auth = watchRenewals(a, p.tel)
	}
	return p, nil
}

// HostName returns the hub host name, the SAS audience.
func (p *Pipeline) HostName() string { return p.host }

// MaxRetryAfter is the longest Retry-After the pipeline waits for
// (RetryOptions.MaxRetryAfter); callers that back off on their own honour
// it too.
func (p *Pipeline) MaxRetryAfter() time.Duration { return p.retry.MaxRetryAfter }

// WithConnLimit returns a pipeline like p that opens at most n
// connections to the hub, in a pool of its own, and a function that closes
// them once its work is done. It serves a fan-out of concurrency n: Go's
// transport dials a new connection whenever a request finds none idle at
// that instant, so over HTTP/1.1 a shared pool ends up holding more
// connections than calls in flight. The pool is a clone of p's transport
// (same dialer, proxy and TLS settings) when that is an *http.Transport,
// with MaxConnsPerHost and MaxIdleConnsPerHost at most n; any other
// RoundTripper is used as it is, and p is returned.
//
// A transport that speaks HTTP/2 multiplexes the fan-out over one
// connection instead: MaxConnsPerHost 1, so that the workers starting
// together wait for the first connection rather than each dialling its own,
// and calls beyond the server's stream limit wait for a free stream on it
// (HTTP2Config.StrictMaxConcurrentRequests) rather than dial more. Once a
// server answers over HTTP/1.1 instead, later calls go through a pool of n
// HTTP/1.1 connections, as if HTTP/2 had not been offered.
//
// Once the work is done, release closes the pool's idle connections at
// once and again a second later, for connections that were still finishing
// an abandoned call.
func (p *Pipeline) WithConnLimit(n int) (*Pipeline, func()) {
	t, ok := p.transport.(*http.Transport)
	if !ok || n <= 0 {
		return p, func() {}
	}
	var rt interface {
		http.RoundTripper
		CloseIdleConnections()
	} = limitConns(t, n)
	if speaksHTTP2(t) {
		rt = &h2Pool{h2: oneH2Conn(t), h1: limitConns(t, n)}
	}
	q := &Pipeline{settings: p.settings}
	q.transport = rt
	q.calls.New = func() any { return q.newCall() }
	release := func() {
		rt.CloseIdleConnections()
		// A call abandoned just before (its context cancelled) may leave
		// its HTTP/2 connection busy for a moment while the stream is
		// reset; close it once that is done rather than let it idle out.
		time.AfterFunc(time.Second, rt.CloseIdleConnections)
	}
	return q, release
}

// limitConns returns a clone of t that opens at most n connections and
// keeps at most n idle.
func limitConns(t *http.Transport, n int) *http.Transport {
	t = t.Clone()
	if t.MaxConnsPerHost <= 0 || t.MaxConnsPerHost > n {
		t.MaxConnsPerHost = n
	}
	if t.MaxIdleConnsPerHost <= 0 || t.MaxIdleConnsPerHost > n {
		t.MaxIdleConnsPerHost = n
	}
	return t
}

// oneH2Conn returns a clone of t that opens one connection and, over
// HTTP/2, queues calls beyond the server's stream limit on it.
func oneH2Conn(t *http.Transport) *http.Transport {
	t = t.Clone()
	t.MaxConnsPerHost = 1
	t.MaxIdleConnsPerHost = 1
	var h2 http.HTTP2Config
	if t.HTTP2 != nil {
		h2 = *t.HTTP2
	}
	h2.StrictMaxConcurrentRequests = true
	t.HTTP2 = &h2
	return t
}

// h2Pool sends calls over one HTTP/2 connection until a server answers over
// HTTP/1.1, and from then on through a pool of HTTP/1.1 connections.
type h2Pool struct {
	h2, h1 *http.Transport
	http1  atomic.Bool // a server answered over HTTP/1.1
}

func (p *h2Pool) RoundTrip(r *http.Request) (*http.Response, error) {
	if p.http1.Load() {
		return p.h1.RoundTrip(r)
	}
	resp, err := p.h2.RoundTrip(r)
	if err == nil && resp.ProtoMajor == 1 {
		p.http1.Store(true)
	}
	return resp, err
}

func (p *h2Pool) CloseIdleConnections() {
	p.h2.CloseIdleConnections()
	p.h1.CloseIdleConnections()
}

// CloseIdleConnections closes the transport's idle keep-alive connections
// (and so their goroutines), when the transport has such a method, as
// *http.Transport does. Calls in flight are not affected, and the pipeline
// stays usable: a later call dials anew.
func (p *Pipeline) CloseIdleConnections() {
	if c, ok := p.transport.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// ValidateHostName checks a hub host name: a DNS name with an optional port,
// no scheme, path or spaces.
func ValidateHostName(h string) error {
	if h == "" {
		return errors.New("iothub: host name is empty")
	}
	if strings.Contains(h, "://") {
		return fmt.Errorf("iothub: host name %q must not include a scheme; give the bare host, such as myhub.azure-devices.net", h)
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		host, port = h, ""
	}
	if port != "" {
		for _, r := range port {
			if r < '0' || r > '9' {
				return fmt.Errorf("iothub: host name %q has an invalid port", h)
			}
		}
	}
	if host == "" {
		return fmt.Errorf("iothub: host name %q has no host", h)
	}
	for _, r := range host {
		ok := r == '-' || r == '.' || r == '_' || r == ':' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("iothub: host name %q contains %q; a host name has letters, digits, '-', '_' and '.'", h, r)
		}
	}
	return nil
}

// UserAgent is the User-Agent header value: module path, version, Go
// version, OS and architecture.
func UserAgent() string {
	return "github.com/hubkit/iothub/" + iothub.Version + " (" + runtime.Version() + "; " + runtime.GOOS + "; " + runtime.GOARCH + ")"
}

// DefaultTransport returns a transport sized for fan-out: HTTP/1.1
// keep-alive (IoT Hub documents its HTTPS endpoints as HTTP/1.1; HTTP/2 is
// never negotiated) with a large idle pool per host, proxy settings from the
// environment and TLS 1.2 or later.
func DefaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = http.ProxyFromEnvironment
	t.ForceAttemptHTTP2 = false
	t.Protocols = new(http.Protocols)
	t.Protocols.SetHTTP1(true)
	t.MaxIdleConns = 0
	t.MaxIdleConnsPerHost = 1024
	t.IdleConnTimeout = 90 * time.Second
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	return t
}

// HTTP2Transport returns DefaultTransport that also offers HTTP/2 and
// speaks it when the server accepts it (HTTP/1.1 otherwise): the transport
// of ClientOptions.HTTP2, unverified against the real service.
func HTTP2Transport() *http.Transport {
	t := DefaultTransport()
	t.Protocols.SetHTTP2(true)
	return t
}

// speaksHTTP2 reports whether t would negotiate HTTP/2 over TLS, by the
// rules net/http applies (Transport.Protocols, TLSNextProto,
// ForceAttemptHTTP2, a custom TLS configuration or dialer).
func speaksHTTP2(t *http.Transport) bool {
	switch {
	case t.Protocols != nil:
		return t.Protocols.HTTP2()
	case t.TLSNextProto != nil:
		return t.TLSNextProto["h2"] != nil
	case t.ForceAttemptHTTP2:
		return true
	default:
		// net/http still honours the deprecated Dial and DialTLS here.
		//lint:ignore SA1019 mirrors net/http's own rule
		return t.TLSClientConfig == nil && t.Dial == nil && t.DialContext == nil && t.DialTLS == nil && t.DialTLSContext == nil
	}
}

// newRequestID returns an identifier for one logical call, sent as
// Request-Id on every attempt.
func newRequestID() string { return rand.Text() }

// readCapped reads at most limit bytes and reports whether the body was
// longer. size is the length the body says it has (Content-Length), or
// negative when unknown: a body of that length, up to limit, is read into
// a buffer of its size, where growing one from io.ReadAll's 512 bytes
// would allocate several times the size of a small answer, and a dozen
// buffers for a query page. A size that is wrong only costs a grown
// buffer, or one allocated larger than needed, never beyond limit.
func readCapped(r io.Reader, limit, size int64) ([]byte, bool, error) {
	stop := limit + 1 // reading one byte past the limit tells a longer body
	if stop <= 0 {
		stop = math.MaxInt64
	}
	n := int64(512)
	if size >= 0 && size < stop {
		n = size + 1 // room to see the end without growing
	}
	b := make([]byte, 0, min(n, stop))
	for {
		if len(b) == cap(b) {
			// Grown as io.ReadAll grows, from 512 bytes at least: a
			// size that was wrong costs one allocation more, not a
			// string of small ones.
			b = slices.Grow(b, max(512, cap(b)))
		}
		m, err := r.Read(b[len(b):min(int64(cap(b)), stop)])
		b = b[:len(b)+m]
		if int64(len(b)) > limit {
			return b[:limit], true, nil
		}
		if err == io.EOF {
			return b, false, nil
		}
		if err != nil {
			return b, false, err
		}
	}
}
