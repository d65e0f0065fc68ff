package pipeline

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/wire"
)

// Do sends req, retrying as its class and policy allow, and returns the
// answer when its status is below 400 or when req.Policy accepts the error
// answer as the answer. Otherwise it returns an
// *iothub.Error (the hub answered with an error), an *iothub.TransportError
// (no answer) or an *iothub.BodyError (an answer that could not be
// read).
func (p *Pipeline) Do(ctx context.Context, req *Request) (*Response, error) {
	c := p.calls.Get().(*call)
	defer c.release()
	c.req = *req
	c.ctx = ctx
	c.timeout = req.AttemptTimeout
	if c.timeout <= 0 {
		c.timeout = DefaultAttemptTimeout
	}
	if p.clientTimeout > 0 && p.clientTimeout < c.timeout {
		c.timeout = p.clientTimeout
	}
	c.limit = req.MaxResponseBytes
	if c.limit <= 0 {
		c.limit = DefaultMaxResponseBytes
	}

	u := p.baseURL + req.Path + p.query
	if req.Query != "" {
		u += "&" + req.Query
	}
	hreq, err := http.NewRequestWithContext(ctx, req.Method, u, nil)
	if err != nil {
		return nil, &iothub.ArgumentError{Operation: req.Operation, Field: "request", Rule: "must form a valid URL", Err: err}
	}
	if b := req.Body; b != nil {
		// Each attempt gets its own reader of the body (RoundTrip), and
		// the transport one more through GetBody when it must send the
		// request again on another connection; retryablehttp, handed no
		// body, leaves both alone.
		hreq.ContentLength = int64(len(b))
		hreq.GetBody = func() (io.ReadCloser, error) { return newBody(b), nil }
	}
	rreq, err := retryablehttp.FromRequest(hreq)
	if err != nil {
		return nil, &iothub.ArgumentError{Operation: req.Operation, Field: "request", Rule: "must form a valid request", Err: err}
	}
	h := rreq.Header
	for k, v := range req.Header {
		h[k] = v
	}
	// The headers every request carries are set by each attempt
	// (RoundTrip): http.Client copies the headers a request has when it
	// is handed over, for redirects the pipeline never follows.
	c.requestID = []string{newRequestID()}
	if p.tel != nil {
		rreq = c.startCall(rreq, u)
	}
	resp, err := c.rc.Do(rreq)
	out, err := c.finish(resp, err)
	if p.tel != nil {
		c.endCall(ctx, out, err)
	}
	return out, err
}

// newCall builds the reusable part of a call: its retry client, whose
// hooks and transport are the call itself. Pipeline.calls holds them
// between calls, so that a call allocates none of it.
func (p *Pipeline) newCall() *call {
	c := &call{p: p}
	c.rc = retryablehttp.Client{
		HTTPClient:   &http.Client{Transport: c, CheckRedirect: noRedirects},
		RetryWaitMin: p.retry.MinDelay,
		RetryWaitMax: p.retry.MaxDelay,
		RetryMax:     p.retry.MaxAttempts - 1,
		CheckRetry:   c.checkRetry,
		Backoff:      c.backoff,
		ErrorHandler: passThrough,
	}
	if p.tel != nil {
		c.rc.CheckRetry = c.checkRetryObserved
	}
	return c
}

// release clears the state of the finished call and returns it to the
// pipeline's pool. Nothing refers to a call once Do has returned: the
// attempts' traces and response bodies hold their own state.
func (c *call) release() {
	c.req = Request{}
	c.ctx = nil
	c.requestID = nil
	c.attempts, c.anySent, c.lastErr, c.accepted, c.start = 0, false, nil, false, time.Time{}
	c.earlier = false
	c.tel = callTelemetry{}
	if c.first != nil && !c.first.wrote.Load() {
		// The first attempt's transport may still report on it (a write
		// that has not ended): the next call gets a trace of its own.
		c.first = nil
	}
	c.p.calls.Put(c)
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// passThrough hands the last answer or error back unchanged, so that finish
// can classify it; retryablehttp's default would replace both with a
// message that holds the URL.
func passThrough(resp *http.Response, err error, _ int) (*http.Response, error) { return resp, err }

// call is the state of one logical call across its attempts. It is the
// http.RoundTripper of the call's attempts.
type call struct {
	p       *Pipeline
	rc      retryablehttp.Client // built once by newCall
	req     Request
	ctx     context.Context
	timeout time.Duration
	limit   int64

	requestID []string // the Request-Id header value of every attempt

	mu       sync.Mutex
	attempts int
	anySent  bool          // an attempt may have been delivered
	earlier  bool          // an attempt before the last one may have been delivered
	lastErr  *iothub.Error // parsed error answer of the last attempt, if any
	accepted bool          // the policy accepted the last error answer as the answer
	start    time.Time

	tel callTelemetry // spans and metrics, when the pipeline has them

	// first is the trace of the first attempt, kept with the call
	// between calls while its transport is done with it; see RoundTrip.
	first *attemptTrace
}

// attemptError is what an attempt that got no answer returns; it records
// whether the request may have been written in full.
type attemptError struct {
	sent bool
	auth bool // the credential failed; nothing was sent
	err  error
}

func (e *attemptError) Error() string { return e.err.Error() }
func (e *attemptError) Unwrap() error { return e.err }

// attemptTrace records what the transport reported about one attempt.
// Each attempt has its own, since a transport may report on an attempt
// after the next one started. It also holds the attempt's response body
// wrapper, to make one allocation of the two.
type attemptTrace struct {
	getConn atomic.Bool // the transport reports its progress through httptrace
	gotConn atomic.Bool
	wrote   atomic.Bool // the request was written in full
	trace   httptrace.ClientTrace
	body    cancelBody
}

func newAttemptTrace() *attemptTrace {
	tr := new(attemptTrace)
	tr.trace = httptrace.ClientTrace{
		GetConn: func(string) { tr.getConn.Store(true) },
		GotConn: func(httptrace.GotConnInfo) { tr.gotConn.Store(true) },
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				tr.wrote.Store(true)
			}
		},
	}
	return tr
}

// reuse readies a trace whose transport is done reporting on it for
// another attempt. A transport reports a request written in full last of
// all (GetConn and GotConn come before it, within its RoundTrip), so once
// wrote is set no hook of the trace runs again. A connection the
// transport dialled for the attempt may still be in its TLS handshake and
// read the trace's (unset) TLS hooks: the trace itself is never written
// after newAttemptTrace, only its flags.
func (t *attemptTrace) reuse() *attemptTrace {
	t.getConn.Store(false)
	t.gotConn.Store(false)
	t.wrote.Store(false)
	return t
}

// sent reports whether the request may have reached the server. A
// transport that reports nothing through httptrace gets the conservative
// answer: yes. GetConn alone does not tell: net/http's HTTP/2 transport
// reports only GotConn when it reuses a pooled connection.
func (t *attemptTrace) sent() bool {
	if !t.getConn.Load() && !t.gotConn.Load() {
		return true
	}
	return t.wrote.Load()
}

// RoundTrip is one attempt: sign, bound by the attempt deadline, and record
// whether the request was written.
func (c *call) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.attempts++
	attempt := c.attempts
	c.earlier = c.anySent
	c.start = time.Now()
	c.mu.Unlock()
	if c.p.tel != nil {
		r = c.startAttempt(r, attempt)
	}

	authz, err := c.p.auth.Authorization(r.Context())
	if err != nil {
		return nil, &attemptError{auth: true, err: fmt.Errorf("get credential: %w", err)}
	}
	// Each attempt has a trace of its own: a transport may report on an
	// attempt after the next one started. A call's first attempt reuses
	// the trace of an earlier call's first attempt once that one's
	// request was written in full (release drops it otherwise), which
	// saves its four allocations on nearly every call; not when the
	// context carries a trace of its own, which httptrace would compose
	// into it.
	var tr *attemptTrace
	switch {
	case attempt > 1 || httptrace.ContextClientTrace(r.Context()) != nil:
		tr = newAttemptTrace()
	case c.first != nil:
		tr = c.first.reuse()
	default:
		tr = newAttemptTrace()
		c.first = tr
	}
	actx, cancel := context.WithTimeout(r.Context(), c.timeout)
	r2 := r.WithContext(httptrace.WithClientTrace(actx, &tr.trace))
	if attempt > 1 {
		// An earlier attempt's transport may still be reading the header
		// map (an HTTP/1.1 write that outlived its answer): give this
		// attempt its own. The first attempt is the only user of the map
		// Do built, so it signs that one.
		r2.Header = r.Header.Clone()
	}
	// The constant values are shared slices of length and capacity one,
	// and the request id one slice for the attempts of a call: Header.Set
	// replaces them and Header.Add copies them, so no request can change
	// another's.
	h := r2.Header
	h["User-Agent"] = c.p.userAgent
	h["Accept"] = c.p.accept
	h["Request-Id"] = c.requestID
	if c.req.Body != nil {
		r2.Body = newBody(c.req.Body)
		h["Content-Type"] = c.p.contentType
	}
	h["Authorization"] = []string{authz}
	if c.p.tel != nil {
		c.inject(r2)
	}

	resp, err := c.p.transport.RoundTrip(r2)
	if err != nil {
		timedOut := errors.Is(actx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil
		cancel()
		if timedOut {
			// The attempt deadline passed, not the caller's.
			err = attemptTimeout(attempt, c.timeout, tr, stripURL(err))
		}
		ae := &attemptError{sent: tr.sent(), err: stripURL(err)}
		if ae.sent {
			c.mu.Lock()
			c.anySent = true
			c.mu.Unlock()
		}
		c.log(slog.LevelDebug, "attempt failed", attempt, 0, slog.Bool("sent", ae.sent), slog.String("error", ae.err.Error()))
		return nil, ae
	}
	tr.body = cancelBody{ReadCloser: resp.Body, cancel: cancel}
	resp.Body = &tr.body
	return resp, nil
}

// newBody returns a reader of an attempt's body: an io.NopCloser around a
// *bytes.Reader, which net/http recognises as in memory, so that over
// HTTP/1.1 it writes headers and body in one flush. A reader type of our
// own would cost a second write per request.
func newBody(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// attemptTimeout is the error of an attempt whose deadline passed: it
// matches context.DeadlineExceeded and says what the attempt was waiting
// for. One that passed while connecting also matches a *net.OpError of
// Op "dial" (the transport's own, or one made here when the transport
// reported only the deadline), so that a hub that cannot be reached is
// told apart from one that does not answer.
func attemptTimeout(attempt int, timeout time.Duration, tr *attemptTrace, cause error) error {
	phase := "waiting for the answer"
	switch {
	case tr.getConn.Load() && !tr.gotConn.Load():
		phase = "connecting"
		if oe, ok := errors.AsType[*net.OpError](cause); !ok || oe.Op != "dial" {
			cause = &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
		}
	case !tr.sent():
		phase = "sending the request"
	}
	if errors.Is(cause, context.DeadlineExceeded) && phase != "connecting" {
		return fmt.Errorf("attempt %d timed out after %v %s: %w", attempt, timeout, phase, context.DeadlineExceeded)
	}
	return fmt.Errorf("attempt %d timed out after %v %s: %w (%w)", attempt, timeout, phase, context.DeadlineExceeded, cause)
}

// cancelBody ends the attempt's deadline when the body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// stripURL unwraps a *url.Error so that no URL (with its query string)
// reaches an error message.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// checkRetry decides, after each attempt, whether to try again.
func (c *call) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, nil
	}
	if err != nil {
		var ae *attemptError
		if !errors.As(err, &ae) || ae.auth || permanentTLS(err) {
			return false, nil
		}
		if !ae.sent {
			return true, nil
		}
		return c.req.Retry == RetryIdempotent, nil
	}
	if resp.StatusCode < 400 {
		c.logResponse(resp, nil)
		return false, nil
	}
	// Read the error answer now: the decision needs its code, and the
	// answer must survive retryablehttp's draining for the final error.
	b, _, _ := readCapped(resp.Body, c.limit, resp.ContentLength)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	info := wire.ParseError(b, resp.Header.Get("iothub-errorcode"))
	he := &iothub.Error{
		Operation:  c.req.Operation,
		DeviceID:   c.req.DeviceID,
		ModuleID:   c.req.ModuleID,
		StatusCode: resp.StatusCode,
		Code:       info.Code,
		CodeName:   info.CodeName,
		Message:    info.Message,
		TrackingID: info.TrackingID,
		RetryAfter: wire.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
	if he.CodeName == "" {
		he.CodeName = he.Code.Name()
	}
	c.mu.Lock()
	c.lastErr = he
	if errors.Is(he, iothub.ErrOutcomeUnknown) {
		c.anySent = true
	}
	c.mu.Unlock()
	c.logResponse(resp, he)

	policy := c.req.Policy
	if policy == nil {
		policy = DefaultPolicy{}
	}
	switch policy.Decide(he, c.req.Retry) {
	case Retry:
		return he.RetryAfter <= c.p.retry.MaxRetryAfter, nil
	case Accept:
		c.mu.Lock()
		c.accepted = true
		c.mu.Unlock()
	}
	return false, nil
}

// backoff is exponential with jitter; a Retry-After header wins.
func (c *call) backoff(minDelay, maxDelay time.Duration, attemptNum int, resp *http.Response) time.Duration {
	var wait time.Duration
	if resp != nil {
		wait = wire.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	if wait <= 0 {
		wait = minDelay
		for i := 0; i < attemptNum && wait < maxDelay; i++ {
			wait *= 2
		}
		wait = min(wait, maxDelay)
		// Take up to half away at random so that throttled callers spread out.
		if half := int64(wait / 2); half > 0 {
			wait -= time.Duration(rand.Int64N(half + 1))
		}
	}
	c.mu.Lock()
	attempt := c.attempts
	c.mu.Unlock()
	c.log(slog.LevelInfo, "retrying", attempt, 0, slog.Duration("wait", wait))
	return wait
}

// permanentTLS reports a certificate the client does not trust: retrying
// cannot help, so the caller should hear about it at once.
func permanentTLS(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid)
}

// finish turns the outcome of the retry loop into the call's result.
func (c *call) finish(resp *http.Response, err error) (*Response, error) {
	c.mu.Lock()
	attempts, anySent, lastErr, accepted := c.attempts, c.anySent, c.lastErr, c.accepted
	earlier := c.earlier
	c.mu.Unlock()

	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		var ae *attemptError
		if errors.As(err, &ae) {
			err = ae.err
		} else if lastErr != nil && c.ctx.Err() != nil {
			// Cancelled while waiting to retry after an error answer.
			err = fmt.Errorf("%w (while waiting to retry after %d %s)", err, lastErr.StatusCode, lastErr.CodeName)
		}
		return nil, &iothub.TransportError{
			Operation: c.req.Operation,
			DeviceID:  c.req.DeviceID,
			ModuleID:  c.req.ModuleID,
			Sent:      anySent,
			Attempts:  attempts,
			Err:       err,
		}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 && !accepted {
		he := lastErr
		if he == nil {
			he = &iothub.Error{Operation: c.req.Operation, DeviceID: c.req.DeviceID, ModuleID: c.req.ModuleID, StatusCode: resp.StatusCode}
		}
		he.Attempts = attempts
		he.EarlierAttemptMayHaveRun = earlier
		return nil, he
	}
	b, tooLong, rerr := readCapped(resp.Body, c.limit, resp.ContentLength)
	if rerr != nil || tooLong {
		cause := rerr
		if tooLong {
			cause = fmt.Errorf("response body exceeds %d bytes", c.limit)
		}
		return nil, &iothub.BodyError{
			Operation:  c.req.Operation,
			DeviceID:   c.req.DeviceID,
			ModuleID:   c.req.ModuleID,
			StatusCode: resp.StatusCode,
			Err:        stripURL(cause),
		}
	}
	return &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: b, Attempts: attempts}, nil
}

func (c *call) logResponse(resp *http.Response, he *iothub.Error) {
	if c.p.logger == nil {
		return
	}
	c.mu.Lock()
	attempt, start := c.attempts, c.start
	c.mu.Unlock()
	attrs := []slog.Attr{slog.Duration("duration", time.Since(start))}
	level := slog.LevelDebug
	if he != nil {
		level = slog.LevelWarn
		attrs = append(attrs, slog.Int("code", int(he.Code)), slog.String("codeName", he.CodeName), slog.String("trackingId", he.TrackingID))
	}
	c.log(level, "attempt done", attempt, resp.StatusCode, attrs...)
}

func (c *call) log(level slog.Level, msg string, attempt, status int, extra ...slog.Attr) {
	l := c.p.logger
	if l == nil || !l.Enabled(c.ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 8+len(extra))
	attrs = append(attrs,
		slog.String("operation", c.req.Operation),
		slog.String("method", c.req.Method),
		slog.String("path", c.req.Path),
		slog.Int("attempt", attempt),
	)
	if c.req.DeviceID != "" {
		attrs = append(attrs, slog.String("deviceId", c.req.DeviceID))
	}
	if c.req.ModuleID != "" {
		attrs = append(attrs, slog.String("moduleId", c.req.ModuleID))
	}
	if status != 0 {
		attrs = append(attrs, slog.Int("status", status))
	}
	attrs = append(attrs, extra...)
	l.LogAttrs(c.ctx, level, "iothub: "+msg, attrs...)
}
