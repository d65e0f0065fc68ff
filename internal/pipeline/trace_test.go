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
