package pipeline

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubkit/iothub"
)

// closeCounter counts the connections a transport dials and closes, and
// the most open at once.
type closeCounter struct {
	dialed, closed, peak atomic.Int32
}

// watch makes tr trust cert and count its connections in cc.
func (cc *closeCounter) watch(tr *http.Transport, cert *x509.Certificate) {
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	tr.TLSClientConfig.RootCAs = roots
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		n := cc.dialed.Add(1) - cc.closed.Load()
		for p := cc.peak.Load(); n > p && !cc.peak.CompareAndSwap(p, n); p = cc.peak.Load() {
		}
		return &countedConn{Conn: c, c: cc}, nil
	}
}

// open is how many connections are open now.
func (cc *closeCounter) open() int32 { return cc.dialed.Load() - cc.closed.Load() }

type countedConn struct {
	net.Conn
	c    *closeCounter
	done atomic.Bool
}

func (c *countedConn) Close() error {
	if c.done.CompareAndSwap(false, true) {
		c.c.closed.Add(1)
	}
	return c.Conn.Close()
}

// TestTransportProtocols checks that the default transport speaks
// HTTP/1.1 even to a server that offers HTTP/2 (IoT Hub documents
// HTTP/1.1), that the opt-in HTTP2Transport speaks HTTP/2 to it, that each
// reuses one connection for sequential requests, and that the connection is
// its own: CloseIdleConnections closes it.
func TestTransportProtocols(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	for _, tt := range []struct {
		name      string
		transport func() *http.Transport
		want      string
	}{
		{"default", DefaultTransport, "HTTP/1.1"},
		{"HTTP/2 opt-in", HTTP2Transport, "HTTP/2.0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := tt.transport()
			var cc closeCounter
			cc.watch(tr, srv.Certificate())
			client := &http.Client{Transport: tr}
			for range 3 {
				resp, err := client.Get(srv.URL)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != tt.want || resp.Proto != tt.want {
					t.Fatalf("server saw %q, client %q; want %q", b, resp.Proto, tt.want)
				}
			}
			if n := cc.dialed.Load(); n != 1 {
				t.Errorf("dialled %d connections for 3 sequential requests, want 1", n)
			}
			tr.CloseIdleConnections()
			deadline := time.Now().Add(5 * time.Second)
			for cc.closed.Load() != cc.dialed.Load() && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if c, d := cc.closed.Load(), cc.dialed.Load(); c != d {
				t.Errorf("CloseIdleConnections closed %d of %d idle connections", c, d)
			}
		})
	}
}

// TestNewTransportProtocol checks which transport ClientOptions.HTTP2
// selects, and that it cannot be combined with a Transport of the caller's.
func TestNewTransportProtocol(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		opts  iothub.ClientOptions
		want  bool
		isErr bool
	}{
		{name: "default", want: false},
		{name: "HTTP2", opts: iothub.ClientOptions{HTTP2: true}, want: true},
		{name: "HTTP2 with a Transport", opts: iothub.ClientOptions{HTTP2: true, Transport: &http.Transport{}}, isErr: true},
	} {
		p, err := New("hub.azure-devices.net", staticAuth("x"), &tt.opts)
		if tt.isErr {
			if err == nil || !strings.Contains(err.Error(), "ClientOptions.HTTP2") {
				t.Errorf("%s: err = %v, want one naming ClientOptions.HTTP2", tt.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		tr := p.transport.(*http.Transport)
		if got := speaksHTTP2(tr); got != tt.want || tr.ForceAttemptHTTP2 {
			t.Errorf("%s: speaks HTTP/2 %v (ForceAttemptHTTP2 %v), want %v", tt.name, got, tr.ForceAttemptHTTP2, tt.want)
		}
	}
}

// writeCounter counts the writes on the connections a transport dials.
type writeCounter struct {
	net.Conn
	writes *atomic.Int32
}

func (c writeCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestHTTP1RequestIsOneWrite checks that over HTTP/1.1 a request and its
// body leave in a single write: net/http does so only for bodies it knows
// to be in memory, and a second write (and, over TLS, a second record)
// per request is a measurable cost.
func TestHTTP1RequestIsOneWrite(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	var writes atomic.Int32
	tr := DefaultTransport()
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return writeCounter{Conn: c, writes: &writes}, nil
	}
	defer tr.CloseIdleConnections()
	p, err := New("test-hub.azure-devices.net", &countingAuth{}, &iothub.ClientOptions{Endpoint: srv.URL, InsecureAllowHTTP: true, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		before := writes.Load()
		if _, err := p.Do(t.Context(), methodRequest(RetryNotDelivered)); err != nil {
			t.Fatal(err)
		}
		if n := writes.Load() - before; n != 1 {
			t.Errorf("request %d took %d writes, want 1", i+1, n)
		}
	}
}

// TestWithConnLimit runs n workers of sequential calls over TLS and
// HTTP/1.1 (as IoT Hub documents its endpoints), as a fan-out does, through a
// pipeline from WithConnLimit(n): it never holds more than n connections
// (the shared pool dials spares whenever a call finds none idle at that
// instant: 51 to 83 for 32 workers when this was written), and release
// closes them all. A RoundTripper that is not an *http.Transport is left
// alone.
func TestWithConnLimit(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{}`)
	})) // HTTP/1.1 only
	defer srv.Close()
	var cc closeCounter
	tr := DefaultTransport()
	cc.watch(tr, srv.Certificate())
	defer tr.CloseIdleConnections()
	p, err := New("test-hub.azure-devices.net", staticAuth("SharedAccessSignature sr=hub&sig=s&se=1&skn=service"), &iothub.ClientOptions{Endpoint: srv.URL, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}

	const workers, calls = 32, 100
	limited, release := p.WithConnLimit(workers)
	if limited == p {
		t.Fatal("WithConnLimit returned the same pipeline for an *http.Transport")
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range calls {
				if _, err := limited.Do(t.Context(), methodRequest(RetryNotDelivered)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := cc.peak.Load(); n > workers {
		t.Errorf("%d connections open at once for %d workers", n, workers)
	}
	release()
	deadline := time.Now().Add(5 * time.Second)
	for cc.open() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := cc.open(); n != 0 {
		t.Errorf("%d connections still open after release", n)
	}

	// Not an *http.Transport: used as it is.
	other, err := New("test-hub.azure-devices.net", &countingAuth{}, &iothub.ClientOptions{Transport: roundTripperFunc(http.DefaultTransport.RoundTrip)})
	if err != nil {
		t.Fatal(err)
	}
	if same, release := other.WithConnLimit(workers); same != other {
		t.Error("WithConnLimit replaced a RoundTripper that is not an *http.Transport")
	} else {
		release()
	}
}

type staticAuth string

func (a staticAuth) Authorization(context.Context) (string, error) { return string(a), nil }

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestMaxConnections checks that ClientOptions.MaxConnections caps the
// default transport's connections and idle pool (net/http enforces the
// cap; TestWithConnLimit shows what it prevents), and leaves a transport
// of the caller's alone.
func TestMaxConnections(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		opts      iothub.ClientOptions
		wantConns int
		wantIdle  int
	}{
		{name: "default", wantConns: 0, wantIdle: 1024},
		{name: "capped", opts: iothub.ClientOptions{MaxConnections: 64}, wantConns: 64, wantIdle: 64},
	} {
		p, err := New("hub.azure-devices.net", staticAuth("x"), &tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		tr := p.transport.(*http.Transport)
		if tr.MaxConnsPerHost != tt.wantConns || tr.MaxIdleConnsPerHost != tt.wantIdle {
			t.Errorf("%s: MaxConnsPerHost %d, MaxIdleConnsPerHost %d; want %d, %d",
				tt.name, tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost, tt.wantConns, tt.wantIdle)
		}
	}
	mine := &http.Transport{}
	p, err := New("hub.azure-devices.net", staticAuth("x"), &iothub.ClientOptions{Transport: mine, MaxConnections: 8})
	if err != nil {
		t.Fatal(err)
	}
	if p.transport != mine || mine.MaxConnsPerHost != 0 {
		t.Error("MaxConnections changed the caller's transport")
	}
}

// TestAttemptTimeoutKeepsItsCause: an attempt whose deadline passes while
// the transport is still connecting (a blackholed hub) says so, matches
// the deadline and a dial error, and was not sent; one whose deadline
// passes while waiting for the answer says that instead.
func TestAttemptTimeoutKeepsItsCause(t *testing.T) {
	t.Parallel()
	// net/http dials apart from the request's context: the dial ends when
	// the test does.
	gone := make(chan struct{})
	blackhole := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-gone:
			return nil, errors.New("test over")
		}
	}}
	t.Cleanup(blackhole.CloseIdleConnections)
	t.Cleanup(func() { close(gone) })
	answered := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/warm" {
			return
		}
		select {
		case <-r.Context().Done():
		case <-answered:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(answered) })
	// The attempt waiting for the answer must not spend its 50 ms dialing
	// on a loaded machine: leave an idle keep-alive connection for it.
	warm, err := srv.Client().Get(srv.URL + "/warm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, warm.Body); err != nil {
		t.Fatal(err)
	}
	warm.Body.Close()
	tests := []struct {
		name    string
		opts    iothub.ClientOptions
		phase   string
		dial    bool
		notSent bool
	}{
		{"connecting", iothub.ClientOptions{Transport: blackhole}, "connecting", true, true},
		{"waiting for the answer", iothub.ClientOptions{Endpoint: srv.URL, InsecureAllowHTTP: true, Transport: srv.Client().Transport}, "waiting for the answer", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.Retry = iothub.RetryOptions{MaxAttempts: 1}
			p, err := New("test-hub.azure-devices.net", &countingAuth{}, &tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			req := methodRequest(RetryNotDelivered)
			req.AttemptTimeout = 50 * time.Millisecond
			_, err = p.Do(t.Context(), req)
			oe, isDial := errors.AsType[*net.OpError](err)
			isDial = isDial && oe.Op == "dial"
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 50ms "+tt.phase) || isDial != tt.dial {
				t.Errorf("err = %v; want the attempt deadline %s (dial error %v)", err, tt.phase, tt.dial)
			}
			if errors.Is(err, iothub.ErrNotDelivered) != tt.notSent {
				t.Errorf("err = %v; not delivered %v, want %v", err, !tt.notSent, tt.notSent)
			}
		})
	}
}
