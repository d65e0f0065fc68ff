package pipeline

import (
	"context"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// closeCounter counts the connections a transport dials and closes.
type closeCounter struct {
	dialed, closed atomic.Int32
}

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

// TestDefaultTransportReusesHTTP2Connections checks that the default
// transport speaks HTTP/2 when the server offers it, reuses one connection
// for sequential requests, and that the connection is its own:
// CloseIdleConnections closes it.
func TestDefaultTransportReusesHTTP2Connections(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	tr := DefaultTransport()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	tr.TLSClientConfig.RootCAs = roots
	var cc closeCounter
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cc.dialed.Add(1)
		return &countedConn{Conn: c, c: &cc}, nil
	}
	client := &http.Client{Transport: tr}
	for range 3 {
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "HTTP/2.0" {
			t.Fatalf("server saw %q, want HTTP/2.0", b)
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
		t.Errorf("CloseIdleConnections closed %d of %d idle HTTP/2 connections", c, d)
	}
}
