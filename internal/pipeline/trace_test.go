package pipeline

import (
	"errors"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"testing"

	"github.com/hubkit/iothub"
)

// traceTransport fails its first attempt after reporting what hooks says,
// then answers 200.
type traceTransport struct {
	hooks func(*httptrace.ClientTrace)
	calls atomic.Int32
}

func (tt *traceTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if tt.calls.Add(1) == 1 {
		if trace := httptrace.ContextClientTrace(r.Context()); trace != nil {
			tt.hooks(trace)
		}
		return nil, errors.New("connection unusable")
	}
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

// TestDeliveryTracking classifies an attempt that failed by what the
// transport reported through httptrace: written in full or not. In
// particular net/http's HTTP/2 transport reports GotConn without GetConn
// when it reuses a pooled connection; a failure there before the request
// was written is not a request that may have run.
func TestDeliveryTracking(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		hooks    func(*httptrace.ClientTrace)
		wantSent bool
	}{
		{"reports nothing", func(*httptrace.ClientTrace) {}, true},
		{"new connection, not written", func(tr *httptrace.ClientTrace) {
			tr.GetConn("h:443")
			tr.GotConn(httptrace.GotConnInfo{})
		}, false},
		{"pooled HTTP/2 connection, not written", func(tr *httptrace.ClientTrace) {
			tr.GotConn(httptrace.GotConnInfo{Reused: true})
		}, false},
		{"pooled HTTP/2 connection, written", func(tr *httptrace.ClientTrace) {
			tr.GotConn(httptrace.GotConnInfo{Reused: true})
			tr.WroteRequest(httptrace.WroteRequestInfo{})
		}, true},
		{"write failed", func(tr *httptrace.ClientTrace) {
			tr.GetConn("h:443")
			tr.GotConn(httptrace.GotConnInfo{})
			tr.WroteRequest(httptrace.WroteRequestInfo{Err: errors.New("broken pipe")})
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := &traceTransport{hooks: tt.hooks}
			p, err := New("h.azure-devices.net", &countingAuth{}, &iothub.ClientOptions{Transport: tr, Retry: iothub.RetryOptions{MaxAttempts: 2, MinDelay: 1}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Do(t.Context(), &Request{Operation: "Op", Method: http.MethodPost, Path: "/x", Body: []byte("{}"), Retry: RetryNotDelivered})
			if tt.wantSent {
				if te, ok := errors.AsType[*iothub.TransportError](err); !ok || !te.Sent || !errors.Is(err, iothub.ErrOutcomeUnknown) {
					t.Errorf("err = %v, want a sent TransportError, not retried", err)
				}
				if n := tr.calls.Load(); n != 1 {
					t.Errorf("%d attempts, want 1", n)
				}
				return
			}
			if err != nil || tr.calls.Load() != 2 {
				t.Errorf("err = %v after %d attempts; want the unsent attempt retried", err, tr.calls.Load())
			}
		})
	}
}

// reportingTransport answers 200 at once and reports on each attempt as
// net/http does: GetConn, GotConn, then WroteRequest. With late set,
// WroteRequest waits for late to close (a write that outlives its answer)
// and done closes after it; with noWrite it never comes.
type reportingTransport struct {
	late    chan struct{}
	done    chan struct{}
	noWrite bool // answer without reporting the write
}

func (rt *reportingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	trace := httptrace.ContextClientTrace(r.Context())
	trace.GetConn("h:443")
	trace.GotConn(httptrace.GotConnInfo{})
	switch {
	case rt.noWrite:
	case rt.late != nil:
		go func() {
			<-rt.late
			trace.WroteRequest(httptrace.WroteRequestInfo{})
			close(rt.done)
		}()
	default:
		trace.WroteRequest(httptrace.WroteRequestInfo{})
	}
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

// TestAttemptTraceReuse checks that a call's first attempt reuses the
// trace of an earlier call whose request was reported written in full,
// and only then: a write an earlier call's transport reports late must
// not mark a later attempt written. Here the second call's attempt fails
// before it writes anything while the first call's late report arrives;
// it must still count as not sent, and be retried.
func TestAttemptTraceReuse(t *testing.T) {
	t.Run("reused once written", func(t *testing.T) {
		if raceEnabled {
			t.Skip("the race detector's sync.Pool drops calls at random")
		}
		allocs := func(rt http.RoundTripper) float64 {
			p, err := New("h.azure-devices.net", &countingAuth{}, &iothub.ClientOptions{Transport: rt})
			if err != nil {
				t.Fatal(err)
			}
			req := &Request{Operation: "Op", Method: http.MethodPost, Path: "/x", Body: []byte("{}"), Retry: RetryNotDelivered}
			do := func() {
				if _, err := p.Do(t.Context(), req); err != nil {
					t.Fatal(err)
				}
			}
			do()
			return testing.AllocsPerRun(200, do)
		}
		written := allocs(&reportingTransport{})
		unwritten := allocs(&reportingTransport{noWrite: true})
		// A trace and its three hooks.
		if got := unwritten - written; got != 4 {
			t.Errorf("a call whose write was reported makes %v allocations, one whose write was not %v: %v fewer, want 4", written, unwritten, got)
		}
	})
	t.Run("late write report", func(t *testing.T) {
		rt := &reportingTransport{late: make(chan struct{}), done: make(chan struct{})}
		p, err := New("h.azure-devices.net", &countingAuth{}, &iothub.ClientOptions{Transport: rt, Retry: iothub.RetryOptions{MaxAttempts: 2, MinDelay: 1}})
		if err != nil {
			t.Fatal(err)
		}
		req := &Request{Operation: "Op", Method: http.MethodPost, Path: "/x", Body: []byte("{}"), Retry: RetryNotDelivered}
		if _, err := p.Do(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		// The second call's first attempt: GetConn, GotConn, the first
		// call's write report, then a failure before writing.
		second := &lateFailTransport{late: rt.late, done: rt.done}
		p.transport = second
		_, err = p.Do(t.Context(), req)
		if te, ok := errors.AsType[*iothub.TransportError](err); ok && te.Sent {
			t.Fatalf("err = %v: an attempt that wrote nothing counts as sent", err)
		}
		if n := second.calls.Load(); n != 2 {
			t.Errorf("%d attempts, want the unsent one retried", n)
		}
	})
}

// lateFailTransport fails its first attempt after GetConn and GotConn,
// letting an earlier transport's late write report land meanwhile; its
// second attempt answers 200.
type lateFailTransport struct {
	late, done chan struct{}
	calls      atomic.Int32
}

func (lt *lateFailTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if lt.calls.Add(1) == 1 {
		trace := httptrace.ContextClientTrace(r.Context())
		trace.GetConn("h:443")
		trace.GotConn(httptrace.GotConnInfo{})
		close(lt.late)
		<-lt.done
		return nil, errors.New("connection reset")
	}
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}
