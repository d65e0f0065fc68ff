package httpmock

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"
)

// traceLog records the ClientTrace hooks a request went through.
type traceLog struct {
	mu     sync.Mutex
	events []string
}

func (l *traceLog) add(e string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *traceLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

func (l *traceLog) context(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GetConn: func(hostPort string) { l.add("GetConn " + hostPort) },
		GotConn: func(info httptrace.GotConnInfo) {
			if info.Conn == nil || info.Conn.RemoteAddr() == nil {
				l.add("GotConn without a conn")
				return
			}
			l.add("GotConn")
		},
		WroteHeaders:         func() { l.add("WroteHeaders") },
		WroteRequest:         func(info httptrace.WroteRequestInfo) { l.add("WroteRequest") },
		GotFirstResponseByte: func() { l.add("GotFirstResponseByte") },
	})
}

func TestRoundTripperDrops(t *testing.T) {
	t.Parallel()
	written := []string{"GetConn test-hub.azure-devices.net:443", "GotConn", "WroteHeaders", "WroteRequest"}
	tests := []struct {
		name          string
		fault         *Fault
		method        string
		wantEvents    []string
		wantErr       error // nil: success
		wantRecorded  int
		wantDelivered int
	}{
		{name: "no fault", method: "m", wantEvents: append(written, "GotFirstResponseByte"), wantRecorded: 1, wantDelivered: 1},
		{name: "drop before write", fault: &Fault{Drop: DropBeforeWrite}, method: "m",
			wantEvents: written[:2], wantErr: syscall.ECONNRESET},
		{name: "drop before write, other method", fault: &Fault{Drop: DropBeforeWrite, Method: "reboot"}, method: "m",
			wantEvents: append(written, "GotFirstResponseByte"), wantRecorded: 1, wantDelivered: 1},
		{name: "drop before write, matching method", fault: &Fault{Drop: DropBeforeWrite, Method: "reboot", DeviceID: "d1"}, method: "reboot",
			wantEvents: written[:2], wantErr: syscall.ECONNRESET},
		{name: "drop after read", fault: &Fault{Drop: DropAfterRead}, method: "m",
			wantEvents: written, wantErr: io.ErrUnexpectedEOF, wantRecorded: 1},
		{name: "drop after delivery", fault: &Fault{Drop: DropAfterDelivery}, method: "m",
			wantEvents: written, wantErr: io.ErrUnexpectedEOF, wantRecorded: 1, wantDelivered: 1},
		{name: "drop after read with AfterDelivery", fault: &Fault{Drop: DropAfterRead, AfterDelivery: true}, method: "m",
			wantEvents: written, wantErr: ErrConnectionBroken, wantRecorded: 1, wantDelivered: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := New(nil)
			h.AddDevice("d1", &DeviceOptions{Handler: echo})
			if tt.fault != nil {
				h.AddFault(*tt.fault)
			}
			var log traceLog
			r := send(log.context(t.Context()), t, h, inProcess(h), call{path: "/twins/d1/methods", body: methodBody(tt.method, "")})
			if tt.wantErr == nil {
				methodResult(t, r)
			} else if !errors.Is(r.err, tt.wantErr) {
				t.Errorf("err = %v, want %v", r.err, tt.wantErr)
			}
			if errors.Is(tt.wantErr, syscall.ECONNRESET) {
				var op *net.OpError
				if !errors.As(r.err, &op) || op.Op != "write" {
					t.Errorf("err = %#v, want a *net.OpError for write", r.err)
				}
			}
			if diff := cmp.Diff(tt.wantEvents, log.get()); diff != "" {
				t.Errorf("trace (-want +got):\n%s", diff)
			}
			if n := len(h.Requests()); n != tt.wantRecorded {
				t.Errorf("recorded %d requests, want %d", n, tt.wantRecorded)
			}
			if n := h.Deliveries("d1", ""); n != tt.wantDelivered {
				t.Errorf("Deliveries = %d, want %d", n, tt.wantDelivered)
			}
		})
	}
}

func TestRoundTripperResponse(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	req, err := http.NewRequestWithContext(t.Context(), "POST", "https://test-hub.azure-devices.net/twins/d1/methods?api-version=2021-04-12", strings.NewReader(methodBody("m", `,"payload":{"x":1}`)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", sasFor(t, h, "service"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.RoundTripper().RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	type summary struct {
		Status, Proto            string
		StatusCode               int
		ContentLength            int64
		ContentType, LengthField string
		SameRequest, TLS         bool
		Body                     string
	}
	got := summary{resp.Status, resp.Proto, resp.StatusCode, resp.ContentLength, resp.Header.Get("Content-Type"),
		resp.Header.Get("Content-Length"), resp.Request == req, resp.TLS != nil, string(body)}
	const wantBody = `{"status":200,"payload":{"x":1}}`
	want := summary{"200 OK", "HTTP/1.1", 200, int64(len(wantBody)), "application/json; charset=utf-8", strconv.Itoa(len(wantBody)), true, true, wantBody}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
}

func TestServerRequest(t *testing.T) {
	t.Parallel()
	req, err := http.NewRequestWithContext(t.Context(), "POST", "https://test-hub.azure-devices.net:443/twins/a%2Fb/methods?api-version=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	sreq, err := serverRequest(req, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	type summary struct {
		Host, RemoteAddr, RequestURI, URLHost, EscapedPath, Proto, ContentLength, UserAgent, ServerName string
		TLS                                                                                             bool
		Length                                                                                          int64
	}
	got := summary{sreq.Host, sreq.RemoteAddr, sreq.RequestURI, sreq.URL.Host, sreq.URL.EscapedPath(), sreq.Proto,
		sreq.Header.Get("Content-Length"), sreq.Header.Get("User-Agent"), sreq.TLS.ServerName, sreq.TLS != nil, sreq.ContentLength}
	want := summary{"test-hub.azure-devices.net:443", "127.0.0.1:50000", "/twins/a%2Fb/methods?api-version=1", "", "/twins/a%2Fb/methods",
		"HTTP/1.1", "2", "Go-http-client/1.1", "test-hub.azure-devices.net", true, 2}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("server request (-want +got):\n%s", diff)
	}
	if sreq.Context() != req.Context() {
		t.Error("context not carried over")
	}
}

func TestRoundTripperCancelled(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := New(nil)
		h.AddDevice("d1", &DeviceOptions{Handler: echo})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		var log traceLog
		r := send(log.context(ctx), t, h, inProcess(h), call{path: "/twins/d1/methods", body: methodBody("m", "")})
		if !errors.Is(r.err, context.Canceled) {
			t.Errorf("err = %v", r.err)
		}
		if len(log.get()) != 0 || len(h.Requests()) != 0 {
			t.Errorf("a cancelled request went out: %v", log.get())
		}

		// Cancelled while the hub waits for an offline device.
		h.AddDevice("off", &DeviceOptions{Offline: true})
		ctx, cancel = context.WithCancel(t.Context())
		go func() {
			synctest.Wait()
			cancel()
		}()
		r = send(ctx, t, h, inProcess(h), call{path: "/twins/off/methods", body: methodBody("m", `,"connectTimeoutInSeconds":300`)})
		if !errors.Is(r.err, context.Canceled) {
			t.Errorf("err = %v", r.err)
		}
	})
}
