package iothubtest

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
)

// Server is a Hub served over TLS, on a loopback port (NewServer) or the
// address given to Hub.ListenTLS, speaking HTTP/2 and HTTP/1.1, with its own self-signed certificate (valid for
// localhost, 127.0.0.1, ::1 and the hub's host name). It has every method
// of its Hub; the ones below replace the Hub's to reach it over the
// network.
//
// A Server cannot run inside a testing/synctest bubble; use New and
// Hub.RoundTripper there.
type Server struct {
	*Hub

	// URL is the server's base URL, such as "https://127.0.0.1:41234",
	// with no trailing slash. Send requests here; the SAS audience stays
	// the hub's host name.
	URL string

	srv       *httpmock.Server
	closeOnce sync.Once
}

// NewServer starts a hub configured by opts (nil means the defaults) on a
// new TLS server and returns it. t.Cleanup closes the server and the hub;
// NewServer fails the test with t.Fatal when the server cannot start.
func NewServer(t testing.TB, opts *Options) *Server {
	t.Helper()
	h := New(opts)
	srv, err := h.engine.StartTLS()
	if err != nil {
		h.Close()
		t.Fatalf("iothubtest: NewServer: %v", err)
	}
	s := &Server{Hub: h, URL: srv.URL, srv: srv}
	t.Cleanup(s.Close)
	return s
}

// ListenTLS serves the hub over TLS on addr, a TCP address such as
// "127.0.0.1:8443" (port 0 picks a free port), until the Server is closed:
// for a hub that outlives a test, such as a standalone simulator. The
// Server is NewServer's, certificate included.
//
// URL is "https://" + the hub's host name when that is a loopback host
// with a port and addr is where it points ("127.0.0.1:8443" for a hub
// named "localhost:8443"), so that a client that trusts the certificate
// reaches the hub with its connection string alone; otherwise it is
// "https://" + the address the server listens on.
func (h *Hub) ListenTLS(addr string) (*Server, error) {
	srv, err := h.engine.StartTLSOn(addr)
	if err != nil {
		// The engine names itself; name this package instead.
		if u := errors.Unwrap(err); u != nil && strings.HasPrefix(err.Error(), "iothubtest: ") {
			err = u
		}
		return nil, fmt.Errorf("iothubtest: ListenTLS: %w", err)
	}
	return &Server{Hub: h, URL: srv.URL, srv: srv}, nil
}

// Close stops the server, cancelling the requests in flight, waits for
// their handlers to return, and closes the hub (Hub.Close). Close may be
// called more than once; NewServer's t.Cleanup calls it.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.srv.Close()
		s.Hub.Close()
	})
}

// ClientOptions returns options for service.Client and registry.Client
// that reach the server and trust its certificate: Endpoint is URL and
// Transport the transport of Client.
//
//	client, err := service.NewClientFromConnectionString(srv.ConnectionString(), srv.ClientOptions())
//
// Each call returns a new value; change it as you like.
func (s *Server) ClientOptions() *iothub.ClientOptions {
	return &iothub.ClientOptions{Endpoint: s.URL, Transport: s.srv.Client().Transport}
}

// Client returns an HTTP client that trusts the server's certificate, for
// raw requests to URL. Its idle connections are closed with the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Certificate returns the server's certificate.
func (s *Server) Certificate() *x509.Certificate { return s.srv.Certificate() }

// CertificatePEM returns the server's certificate in PEM form, for another
// program's trust store (SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, curl --cacert).
func (s *Server) CertificatePEM() []byte { return s.srv.CertPEM() }

// CloseClientConnections closes the server's open connections, so that the
// next requests dial anew (and meet DropBeforeWrite faults).
func (s *Server) CloseClientConnections() { s.srv.CloseClientConnections() }
