package httpmock

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// ErrConnectionBroken is the cause of the error the in-process transport
// returns when a DropAfterRead or DropAfterDelivery fault breaks the
// connection after the request was written. It wraps io.ErrUnexpectedEOF.
var ErrConnectionBroken = fmt.Errorf("iothubtest: connection broken by the hub after the request was written: %w", io.ErrUnexpectedEOF)

// clientAddr and serverAddr are the addresses of the in-process transport's
// simulated connection.
func clientAddr() *net.TCPAddr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000} }
func serverAddr() *net.TCPAddr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443} }

// RoundTripper returns an http.RoundTripper that serves requests with the
// hub in-process, without sockets, whatever the URL's host.
//
// It behaves like a real connection for code that watches
// net/http/httptrace: it calls the request context's ClientTrace hooks
// GetConn, GotConn, WroteHeaders and WroteRequest (after reading the whole
// body) and GotFirstResponseByte, as a transport on a fresh connection
// would. A DropBeforeWrite fault fails the request after GotConn with a
// *net.OpError wrapping syscall.ECONNRESET and without WroteRequest;
// DropAfterRead and DropAfterDelivery faults fail it after WroteRequest with
// an error wrapping ErrConnectionBroken (and so io.ErrUnexpectedEOF).
//
// While the hub handles the request it honours the request's context: when
// the context ends first, RoundTrip returns the context's error and the
// device handler's context is cancelled too. It starts no goroutine that
// outlives the request other than a device handler that ignores its
// context, so it works inside a testing/synctest bubble (create the Hub
// inside the bubble).
//
// The hub sees an HTTP/1.1 request with r.TLS set, r.Host taken from the
// request, r.RemoteAddr 127.0.0.1:50000 and r.RequestURI set.
func (h *Hub) RoundTripper() http.RoundTripper { return &transport{hub: h} }

type transport struct{ hub *Hub }

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		closeBody(req)
		return nil, errors.New("iothubtest: nil Request.URL")
	}
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		closeBody(req)
		return nil, err
	}
	trace := httptrace.ContextClientTrace(ctx)
	if trace != nil && trace.GetConn != nil {
		trace.GetConn(hostPort(req.URL))
	}
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(req.Body)
		closeBody(req)
		if err != nil {
			return nil, fmt.Errorf("iothubtest: reading the request body: %w", err)
		}
	}
	if trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: fakeConn{}})
	}
	if t.hub.dropBeforeWrite(req, body) {
		return nil, &net.OpError{Op: "write", Net: "tcp", Source: clientAddr(), Addr: serverAddr(), Err: syscall.ECONNRESET}
	}
	if trace != nil && trace.WroteHeaders != nil {
		trace.WroteHeaders()
	}
	if trace != nil && trace.WroteRequest != nil {
		trace.WroteRequest(httptrace.WroteRequestInfo{})
	}

	sreq, err := serverRequest(req, body)
	if err != nil {
		return nil, err
	}
	rec := &recorder{header: make(http.Header)}
	aborted := serve(t.hub, rec, sreq)
	if err := ctx.Err(); err != nil && !rec.wrote {
		return nil, err
	}
	if aborted {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), ErrConnectionBroken)
	}
	if !rec.wrote {
		rec.WriteHeader(http.StatusOK)
	}
	if trace != nil && trace.GotFirstResponseByte != nil {
		trace.GotFirstResponseByte()
	}
	return rec.response(req), nil
}

// serve runs the handler, turning a panic(http.ErrAbortHandler) into
// aborted, as a server breaks the connection for it. Other panics go on.
func serve(h http.Handler, w http.ResponseWriter, r *http.Request) (aborted bool) {
	defer func() {
		if v := recover(); v != nil {
			if err, ok := v.(error); ok && err == http.ErrAbortHandler {
				aborted = true
				return
			}
			panic(v)
		}
	}()
	h.ServeHTTP(w, r)
	return false
}

// serverRequest builds the request as a server would receive it.
func serverRequest(req *http.Request, body []byte) (*http.Request, error) {
	uri := req.URL.RequestURI()
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, fmt.Errorf("iothubtest: invalid request URI: %w", err)
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	header := req.Header.Clone()
	if header == nil {
		header = make(http.Header)
	}
	header.Del("Host")
	if _, ok := header["User-Agent"]; !ok {
		header.Set("User-Agent", "Go-http-client/1.1")
	}
	if len(body) > 0 || method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	sreq := &http.Request{
		Method:        method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        header,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Host:          host,
		RemoteAddr:    clientAddr().String(),
		RequestURI:    uri,
		TLS: &tls.ConnectionState{
			Version:            tls.VersionTLS13,
			HandshakeComplete:  true,
			CipherSuite:        tls.TLS_AES_128_GCM_SHA256,
			NegotiatedProtocol: "http/1.1",
			ServerName:         hostWithoutPort(host),
		},
	}
	return sreq.WithContext(req.Context()), nil
}

// dropBeforeWrite reports whether a DropBeforeWrite fault hits the request.
// The hub has not seen the request, so matching reads the target from the
// path and the method name from the body leniently, without validation.
func (h *Hub) dropBeforeWrite(req *http.Request, body []byte) bool {
	segs, err := splitPath(req.URL.EscapedPath())
	if err != nil {
		return false
	}
	rt, v, params := h.match(segs, effectiveMethod(req))
	if v == nil {
		return false
	}
	if v.op == OperationMethod && rt.segs[0] == "digitaltwins" {
		t, name := commandTarget(params)
		return h.takeFault(OperationMethod, t, name, true) != nil
	}
	t := paramsTarget(params)
	if v.op != OperationMethod {
		return h.takeFault(v.op, t, "", true) != nil
	}
	var fields map[string]json.RawMessage
	var name string
	if json.Unmarshal(body, &fields) == nil {
		if raw, ok := lookup(fields, "methodName"); ok {
			_ = json.Unmarshal(raw, &name)
		}
	}
	return h.takeFault(OperationMethod, t, name, true) != nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// hostPort returns the URL's host with the scheme's default port added, as
// ClientTrace.GetConn receives it.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "443"
	if u.Scheme == "http" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// recorder is the in-process http.ResponseWriter. Like a server it
// snapshots the header at WriteHeader and sniffs a missing Content-Type.
type recorder struct {
	header http.Header // as the handler sees it
	sent   http.Header // snapshot at WriteHeader
	code   int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.wrote {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("iothubtest: invalid WriteHeader code %v", code))
	}
	r.wrote = true
	r.code = code
	r.sent = r.header.Clone()
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.wrote {
		if _, ok := r.header["Content-Type"]; !ok && len(p) > 0 {
			r.header.Set("Content-Type", http.DetectContentType(p))
		}
		r.WriteHeader(http.StatusOK)
	}
	return r.body.Write(p)
}

// Flush implements http.Flusher; the body is delivered whole anyway.
func (r *recorder) Flush() {}

func (r *recorder) response(req *http.Request) *http.Response {
	hdr := make(http.Header, len(r.sent)+2)
	for k, v := range r.sent {
		if len(v) > 0 {
			hdr[k] = v
		}
	}
	body := r.body.Bytes()
	if req.Method == http.MethodHead {
		body = nil
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	if hdr.Get("Date") == "" {
		hdr.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	resp := &http.Response{
		Status:        fmt.Sprintf("%d %s", r.code, http.StatusText(r.code)),
		StatusCode:    r.code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        hdr,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
	if req.URL.Scheme == "https" {
		resp.TLS = &tls.ConnectionState{
			Version:            tls.VersionTLS13,
			HandshakeComplete:  true,
			CipherSuite:        tls.TLS_AES_128_GCM_SHA256,
			NegotiatedProtocol: "http/1.1",
			ServerName:         req.URL.Hostname(),
		}
	}
	return resp
}

// fakeConn is the net.Conn reported to GotConn; nothing is sent over it.
type fakeConn struct{}

func (fakeConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (fakeConn) Write(p []byte) (int, error)      { return len(p), nil }
func (fakeConn) Close() error                     { return nil }
func (fakeConn) LocalAddr() net.Addr              { return clientAddr() }
func (fakeConn) RemoteAddr() net.Addr             { return serverAddr() }
func (fakeConn) SetDeadline(time.Time) error      { return nil }
func (fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (fakeConn) SetWriteDeadline(time.Time) error { return nil }
