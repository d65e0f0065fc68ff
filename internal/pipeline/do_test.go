package pipeline

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub"
)

// step is one scripted attempt of the fake transport.
type step struct {
	status     int
	body       string
	header     http.Header
	failBefore bool          // fail before the request is written
	badCert    bool          // fail the TLS handshake on an untrusted certificate
	failAfter  bool          // fail after the request is written
	delay      time.Duration // wait before answering (honouring the request context)
	silent     bool          // report nothing through httptrace
}

// script is an http.RoundTripper that plays steps in order and records what
// it was sent.
type script struct {
	mu     sync.Mutex
	steps  []step
	got    []*http.Request
	auths  []string
	bodies []string // each attempt's body as read
}

func (s *script) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	i := len(s.got)
	s.got = append(s.got, r)
	s.auths = append(s.auths, r.Header.Get("Authorization"))
	st := s.steps[min(i, len(s.steps)-1)]
	s.mu.Unlock()

	trace := httptrace.ContextClientTrace(r.Context())
	if trace == nil || st.silent {
		trace = &httptrace.ClientTrace{}
	}
	if trace.GetConn != nil {
		trace.GetConn("hub:443")
	}
	if st.failBefore {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	if st.badCert {
		return nil, &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}
	}
	if trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{})
	}
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		s.mu.Lock()
		s.bodies = append(s.bodies, string(b))
		s.mu.Unlock()
	}
	if trace.WroteRequest != nil {
		trace.WroteRequest(httptrace.WroteRequestInfo{})
	}
	if st.delay > 0 {
		select {
		case <-time.After(st.delay):
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	if st.failAfter {
		return nil, io.ErrUnexpectedEOF
	}
	h := st.header
	if h == nil {
		h = http.Header{}
	}
	return &http.Response{StatusCode: st.status, Header: h, Body: io.NopCloser(strings.NewReader(st.body)), Request: r}, nil
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

type countingAuth struct {
	mu sync.Mutex
	n  int
}

func (a *countingAuth) Authorization(context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	return "SharedAccessSignature sr=hub&sig=s" + string(rune('0'+a.n)) + "&se=1&skn=service", nil
}

func errBody(code int, name string) (string, http.Header) {
	body := `{"Message":"{\"errorCode\":` + strconv.Itoa(code) + `,\"trackingId\":\"trk\",\"message\":\"m\"}","ExceptionMessage":""}`
	return body, http.Header{"Iothub-Errorcode": {name}}
}

func hubErr(status, code int, name string) step {
	body, h := errBody(code, name)
	return step{status: status, body: body, header: h}
}

func newTestPipeline(t *testing.T, rt http.RoundTripper, retry iothub.RetryOptions) *Pipeline {
	t.Helper()
	p, err := New("test-hub.azure-devices.net", &countingAuth{}, &iothub.ClientOptions{Transport: rt, Retry: retry})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func methodRequest(class RetryClass) *Request {
	return &Request{
		Operation: "InvokeDeviceMethod", DeviceID: "d1", Method: http.MethodPost,
		Path: "/twins/d1/methods", Body: []byte(`{"methodName":"reboot","payload":null}`),
		AttemptTimeout: 45 * time.Second, Retry: class,
	}
}

func TestRetryDecisions(t *testing.T) {
	t.Parallel()
	ok := step{status: 200, body: `{"status":200,"payload":null}`}
	tests := []struct {
		name         string
		class        RetryClass
		notOnline    bool
		steps        []step
		wantAttempts int
		wantErr      error // nil for success
		wantUnknown  bool
	}{
		{"success", RetryNotDelivered, false, []step{ok}, 1, nil, false},
		{"429 then ok", RetryNotDelivered, false, []step{hubErr(429, 429001, "ThrottlingException"), ok}, 2, nil, false},
		{"503 then ok", RetryNotDelivered, false, []step{hubErr(503, 503005, "ServerBusy"), ok}, 2, nil, false},
		{"refused then ok", RetryNotDelivered, false, []step{{failBefore: true}, ok}, 2, nil, false},
		{"429 forever", RetryNotDelivered, false, []step{hubErr(429, 429001, "ThrottlingException")}, 3, iothub.ErrThrottled, false},
		{"504101 not retried", RetryNotDelivered, false, []step{hubErr(504, 504101, "GatewayTimeout"), ok}, 1, iothub.ErrGatewayTimeout, true},
		{"500 not retried", RetryNotDelivered, false, []step{hubErr(500, 500001, "ServerError"), ok}, 1, iothub.ErrOutcomeUnknown, true},
		{"broken after write not retried", RetryNotDelivered, false, []step{{failAfter: true}, ok}, 1, io.ErrUnexpectedEOF, true},
		{"untrusted certificate not retried", RetryIdempotent, false, []step{{badCert: true}, ok}, 1, iothub.ErrNotDelivered, false},
		{"silent transport is conservative", RetryNotDelivered, false, []step{{failBefore: true, silent: true}, ok}, 1, syscall.ECONNREFUSED, true},
		{"404103 not retried", RetryNotDelivered, false, []step{hubErr(404, 404103, "DeviceNotOnline"), ok}, 1, iothub.ErrDeviceNotOnline, false},
		{"404103 opted in", RetryNotDelivered, true, []step{hubErr(404, 404103, "DeviceNotOnline"), ok}, 2, nil, false},
		{"404001 never", RetryIdempotent, true, []step{hubErr(404, 404001, "DeviceNotFound"), ok}, 1, iothub.ErrDeviceNotFound, false},
		{"idempotent 504101 retried", RetryIdempotent, false, []step{hubErr(504, 504101, "GatewayTimeout"), ok}, 2, nil, false},
		{"idempotent broken after write retried", RetryIdempotent, false, []step{{failAfter: true}, ok}, 2, nil, false},
		{"idempotent: unknown then throttled stays unknown", RetryIdempotent, false,
			[]step{hubErr(504, 504101, "GatewayTimeout"), hubErr(429, 429001, "ThrottlingException")}, 3, iothub.ErrThrottled, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				s := &script{steps: tt.steps}
				p := newTestPipeline(t, s, iothub.RetryOptions{MaxAttempts: 3})
				req := methodRequest(tt.class)
				if tt.notOnline {
					req.Policy = codePolicy{retry: iothub.ErrorCodeDeviceNotOnline}
				}
				resp, err := p.Do(t.Context(), req)
				if got := s.count(); got != tt.wantAttempts {
					t.Errorf("attempts = %d, want %d", got, tt.wantAttempts)
				}
				if tt.wantErr == nil {
					if err != nil {
						t.Fatalf("Do: %v", err)
					}
					if resp.Attempts != tt.wantAttempts {
						t.Errorf("Response.Attempts = %d, want %d", resp.Attempts, tt.wantAttempts)
					}
					return
				}
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Do error = %v, want %v", err, tt.wantErr)
				}
				if got := errors.Is(err, iothub.ErrOutcomeUnknown); got != tt.wantUnknown {
					t.Errorf("outcome unknown = %v, want %v (err %v)", got, tt.wantUnknown, err)
				}
				if got := iothub.MayHaveRun(err); got != tt.wantUnknown {
					t.Errorf("MayHaveRun = %v, want %v", got, tt.wantUnknown)
				}
				if strings.Contains(err.Error(), "api-version") || strings.Contains(err.Error(), "SharedAccessSignature") {
					t.Errorf("error leaks the URL or token: %v", err)
				}
			})
		})
	}
}

func TestEachAttemptSignedAndCarriesHeaders(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []step{hubErr(429, 429001, "ThrottlingException"), {status: 200, body: `{}`}}}
		p := newTestPipeline(t, s, iothub.RetryOptions{})
		if _, err := p.Do(t.Context(), methodRequest(RetryNotDelivered)); err != nil {
			t.Fatal(err)
		}
		if len(s.auths) != 2 || s.auths[0] == s.auths[1] {
			t.Errorf("each attempt must ask the authorizer again: %q", s.auths)
		}
		first, second := s.got[0], s.got[1]
		// The second attempt signs its own header map: the first
		// attempt's request (which its transport may still be reading)
		// keeps its own signature.
		if got := []string{first.Header.Get("Authorization"), second.Header.Get("Authorization")}; !slices.Equal(got, s.auths) {
			t.Errorf("attempts' Authorization headers now = %q, want %q as sent", got, s.auths)
		}
		if first.Header.Get("Request-Id") == "" || first.Header.Get("Request-Id") != second.Header.Get("Request-Id") {
			t.Errorf("Request-Id must be one per logical call: %q, %q", first.Header.Get("Request-Id"), second.Header.Get("Request-Id"))
		}
		want := map[string]string{
			"Content-Type": "application/json; charset=utf-8",
			"Accept":       "application/json",
			"User-Agent":   UserAgent(),
		}
		for k, v := range want {
			if got := second.Header.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		// Each attempt reads the whole body, of the length it states,
		// and GetBody (for the transport's own resend) gives it again.
		body := string(methodRequest(RetryNotDelivered).Body)
		if diff := cmp.Diff([]string{body, body}, s.bodies); diff != "" {
			t.Errorf("attempts' bodies (-want +got):\n%s", diff)
		}
		for i, r := range s.got {
			if r.ContentLength != int64(len(body)) || r.GetBody == nil {
				t.Fatalf("attempt %d: ContentLength %d, GetBody set %v; want %d and set", i+1, r.ContentLength, r.GetBody != nil, len(body))
			}
			rc, err := r.GetBody()
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := io.ReadAll(rc); string(b) != body {
				t.Errorf("attempt %d: GetBody gives %q, want %q", i+1, b, body)
			}
		}
		if got, want := first.URL.String(), "https://test-hub.azure-devices.net/twins/d1/methods?api-version=2021-04-12"; got != want {
			t.Errorf("URL = %s, want %s", got, want)
		}
		if !strings.HasPrefix(UserAgent(), "github.com/hubkit/iothub/"+iothub.Version+" (go") {
			t.Errorf("User-Agent = %q", UserAgent())
		}
	})
}

func TestBackoffHonoursRetryAfterAndJitter(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		body, h := errBody(429001, "ThrottlingException")
		h.Set("Retry-After", "7")
		s := &script{steps: []step{{status: 429, body: body, header: h}, {status: 200, body: `{}`}}}
		p := newTestPipeline(t, s, iothub.RetryOptions{MinDelay: time.Second})
		start := time.Now()
		if _, err := p.Do(t.Context(), methodRequest(RetryNotDelivered)); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != 7*time.Second {
			t.Errorf("waited %v, want the 7s of Retry-After", got)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []step{hubErr(503, 503005, "ServerBusy"), hubErr(503, 503005, "ServerBusy"), {status: 200, body: `{}`}}}
		p := newTestPipeline(t, s, iothub.RetryOptions{MinDelay: time.Second, MaxDelay: 10 * time.Second})
		start := time.Now()
		if _, err := p.Do(t.Context(), methodRequest(RetryNotDelivered)); err != nil {
			t.Fatal(err)
		}
		// Waits of 1s and 2s, each with up to half taken away.
		if got := time.Since(start); got < 1500*time.Millisecond || got > 3*time.Second {
			t.Errorf("waited %v, want between 1.5s and 3s", got)
		}
	})
}

func TestRetryAfterBeyondCapReturnsError(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		body, h := errBody(429001, "ThrottlingException")
		h.Set("Retry-After", "600")
		s := &script{steps: []step{{status: 429, body: body, header: h}}}
		p := newTestPipeline(t, s, iothub.RetryOptions{})
		_, err := p.Do(t.Context(), methodRequest(RetryNotDelivered))
		he, ok := errors.AsType[*iothub.Error](err)
		if !ok {
			t.Fatalf("want *iothub.Error, got %v", err)
		}
		if he.RetryAfter != 10*time.Minute || he.Attempts != 1 {
			t.Errorf("RetryAfter = %v, Attempts = %d; want 10m0s, 1", he.RetryAfter, he.Attempts)
		}
	})
}

func TestAttemptDeadline(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []step{{status: 200, body: `{}`, delay: time.Hour}}}
		p := newTestPipeline(t, s, iothub.RetryOptions{})
		req := methodRequest(RetryNotDelivered)
		req.AttemptTimeout = 10 * time.Second
		start := time.Now()
		_, err := p.Do(t.Context(), req)
		if got := time.Since(start); got != 10*time.Second {
			t.Errorf("gave up after %v, want 10s", got)
		}
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, iothub.ErrOutcomeUnknown) {
			t.Errorf("err = %v; want a deadline with an unknown outcome", err)
		}
		if s.count() != 1 {
			t.Errorf("attempts = %d, want 1", s.count())
		}
	})
}

func TestCancelWhileWaitingToRetry(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []step{hubErr(503, 503005, "ServerBusy")}}
		p := newTestPipeline(t, s, iothub.RetryOptions{MinDelay: time.Minute})
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err := p.Do(ctx, methodRequest(RetryNotDelivered))
		te, ok := errors.AsType[*iothub.TransportError](err)
		if !ok {
			t.Fatalf("want *iothub.TransportError, got %T %v", err, err)
		}
		if te.Sent || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "503 ServerBusy") {
			t.Errorf("err = %v; want not sent, deadline, and the last answer named", err)
		}
	})
}

func TestResponseTooLarge(t *testing.T) {
	t.Parallel()
	s := &script{steps: []step{{status: 200, body: strings.Repeat("x", 2048)}}}
	p := newTestPipeline(t, s, iothub.RetryOptions{})
	req := methodRequest(RetryNotDelivered)
	req.MaxResponseBytes = 1024
	_, err := p.Do(t.Context(), req)
	if re, ok := errors.AsType[*iothub.BodyError](err); !ok || !strings.Contains(re.Error(), "exceeds 1024 bytes") {
		t.Fatalf("err = %v, want a BodyError about the size", err)
	}
}

type failingAuth struct{}

func (failingAuth) Authorization(context.Context) (string, error) {
	return "", errors.New("token endpoint unreachable")
}

func TestAuthorizerFailureSendsNothing(t *testing.T) {
	t.Parallel()
	s := &script{steps: []step{{status: 200, body: `{}`}}}
	p, err := New("test-hub.azure-devices.net", failingAuth{}, &iothub.ClientOptions{Transport: s})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Do(t.Context(), methodRequest(RetryIdempotent))
	if !errors.Is(err, iothub.ErrNotDelivered) || !strings.Contains(err.Error(), "token endpoint unreachable") {
		t.Errorf("err = %v", err)
	}
	if s.count() != 0 {
		t.Errorf("sent %d requests, want 0", s.count())
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		host string
		opts *iothub.ClientOptions
		want string
	}{
		{"empty host", "", nil, "host name is empty"},
		{"scheme", "https://hub.azure-devices.net", nil, "must not include a scheme"},
		{"path", "hub.azure-devices.net/x", nil, `contains '/'`},
		{"http endpoint", "hub", &iothub.ClientOptions{Endpoint: "http://127.0.0.1:1"}, "InsecureAllowHTTP"},
		{"ftp endpoint", "hub", &iothub.ClientOptions{Endpoint: "ftp://127.0.0.1:1"}, `scheme "ftp"`},
		{"endpoint path", "hub", &iothub.ClientOptions{Endpoint: "https://127.0.0.1:1/x"}, "https://host[:port]"},
		{"api version", "hub", &iothub.ClientOptions{APIVersion: "2021-04-12&x=y"}, "not a valid api-version"},
		{"max connections", "hub", &iothub.ClientOptions{MaxConnections: -1}, "MaxConnections must be 0"},
	}
	for _, tt := range tests {
		_, err := New(tt.host, &countingAuth{}, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tt.name, err, tt.want)
		}
	}
	if _, err := New("localhost:8443", &countingAuth{}, &iothub.ClientOptions{Endpoint: "http://127.0.0.1:1", InsecureAllowHTTP: true}); err != nil {
		t.Errorf("allowed http endpoint: %v", err)
	}
}

func TestLogsCarryNoSecrets(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		s := &script{steps: []step{hubErr(429, 429001, "ThrottlingException"), {failBefore: true}, {status: 200, body: `{"status":1}`}}}
		p, err := New("test-hub.azure-devices.net", &countingAuth{}, &iothub.ClientOptions{Transport: s, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Do(t.Context(), methodRequest(RetryNotDelivered)); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		for _, secret := range []string{"SharedAccessSignature", "sig=", "api-version", "methodName"} {
			if strings.Contains(out, secret) {
				t.Errorf("log contains %q:\n%s", secret, out)
			}
		}
		for _, want := range []string{`"operation":"InvokeDeviceMethod"`, `"attempt":3`, `"trackingId":"trk"`, `"status":429`, `"deviceId":"d1"`} {
			if !strings.Contains(out, want) {
				t.Errorf("log lacks %s:\n%s", want, out)
			}
		}
	})
}

func TestReadCapped(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 3000)
	tests := []struct {
		in      string
		limit   int64
		size    int64 // the body's stated length, -1 unknown
		want    string
		tooLong bool
	}{
		{"abc", 3, -1, "abc", false},
		{"abcd", 3, -1, "abc", true},
		{"", 3, -1, "", false},
		{"abc", 3, 3, "abc", false},
		{"abcd", 3, 4, "abc", true},
		{"", 3, 0, "", false},
		{"abcdef", 10, 2, "abcdef", false}, // a size that is too small only grows the buffer
		{"ab", 10, 600, "ab", false},       // one beyond the limit allocates no more than the limit
		{long, 5000, -1, long, false},
		{long, 5000, 3000, long, false},
		{long, 2999, 3000, long[:2999], true},
		{long, 2999, -1, long[:2999], true},
	}
	for _, tt := range tests {
		// iotest.OneByteReader: the loop must not depend on reads that
		// fill the buffer.
		for _, r := range []io.Reader{strings.NewReader(tt.in), iotest.OneByteReader(strings.NewReader(tt.in))} {
			got, tooLong, err := readCapped(r, tt.limit, tt.size)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" || tooLong != tt.tooLong {
				t.Errorf("readCapped(%.10q…, %d, %d) = %.10q…, %v; want %.10q…, %v", tt.in, tt.limit, tt.size, got, tooLong, tt.want, tt.tooLong)
			}
		}
	}
	// The buffer of a body of known size is that size (plus one byte),
	// small or large.
	for _, size := range []int64{29, 700_000} {
		if got, _, _ := readCapped(strings.NewReader(strings.Repeat("x", int(size))), 1<<20, size); cap(got) != int(size)+1 {
			t.Errorf("body of %d bytes: capacity %d, want %d", size, cap(got), size+1)
		}
	}
	// A size stated beyond the limit is not allocated: the read grows to
	// the limit and stops.
	if got, tooLong, _ := readCapped(strings.NewReader(strings.Repeat("x", 2<<20)), 1<<20, 1<<30); !tooLong || cap(got) > 4<<20 {
		t.Errorf("1 GiB stated, 1 MiB limit: too long %v, capacity %d", tooLong, cap(got))
	}
	// A read error comes back with what was read.
	got, tooLong, err := readCapped(iotest.TimeoutReader(iotest.OneByteReader(strings.NewReader("abc"))), 10, 3)
	if string(got) != "a" || tooLong || !errors.Is(err, iotest.ErrTimeout) {
		t.Errorf("read error: %q, %v, %v", got, tooLong, err)
	}
}

// codePolicy is a test Policy: it retries one error code and accepts
// another as the answer, as operations do (404103 for a method whose caller
// opted in, 400013 for a bulk registry call); the rest follows Default.
type codePolicy struct{ retry, accept iothub.ErrorCode }

func (p codePolicy) Decide(he *iothub.Error, class RetryClass) Decision {
	switch {
	case p.retry != 0 && he.Code == p.retry:
		return Retry
	case p.accept != 0 && he.Code == p.accept:
		return Accept
	}
	return Default(he, class)
}

func TestAcceptedAnswer(t *testing.T) {
	t.Parallel()
	body := `{"isSuccessful":false,"errors":[{"deviceId":"d1","errorCode":"DeviceAlreadyExists","errorStatus":"exists"}],"warnings":[]}`
	h := http.Header{"Iothub-Errorcode": {"BulkRegistryOperationFailure"}}
	for _, answer := range []iothub.ErrorCode{0, iothub.ErrorCodeBulkRegistryOperationFailure} {
		s := &script{steps: []step{{status: 400, body: body, header: h}}}
		p := newTestPipeline(t, s, iothub.RetryOptions{})
		req := &Request{Operation: "BulkCreateDevices", Method: http.MethodPost, Path: "/devices", Body: []byte(`[]`), Policy: codePolicy{accept: answer}}
		resp, err := p.Do(t.Context(), req)
		if answer == 0 {
			if !errors.Is(err, iothub.ErrBadRequest) {
				t.Errorf("without an accepting policy: err = %v, want a 400 error", err)
			}
			continue
		}
		if err != nil || resp.StatusCode != 400 || string(resp.Body) != body {
			t.Errorf("with an accepting policy: %+v, %v", resp, err)
		}
	}
}

// TestSharedHeaderValuesStayPerRequest checks that the header values every
// request shares cannot be changed through one request: a transport (or
// anything else) that adds to or sets a header of one request leaves the
// next request's values as they were.
func TestSharedHeaderValuesStayPerRequest(t *testing.T) {
	t.Parallel()
	s := &script{steps: []step{{status: 200, body: `{}`}}}
	p := newTestPipeline(t, s, iothub.RetryOptions{})
	if _, err := p.Do(t.Context(), methodRequest(RetryNotDelivered)); err != nil {
		t.Fatal(err)
	}
	first := s.got[0].Header
	first.Add("Accept", "text/plain")
	first.Add("Content-Type", "text/plain")
	first.Set("User-Agent", "changed")
	if _, err := p.Do(t.Context(), methodRequest(RetryNotDelivered)); err != nil {
		t.Fatal(err)
	}
	want := http.Header{
		"Accept":       {"application/json"},
		"Content-Type": {"application/json; charset=utf-8"},
		"User-Agent":   {UserAgent()},
	}
	got := http.Header{}
	for k := range want {
		got[k] = s.got[1].Header[k]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("second request's headers (-want +got):\n%s", diff)
	}
}
