package iothubtest

import (
	"crypto/x509"
	"net/http"
	"testing"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
)

// Server is a Hub served over TLS on the loopback interface, speaking
// HTTP/2 and HTTP/1.1, with its own self-signed certificate (valid for
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

	srv *httpmock.Server
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
	t.Cleanup(func() {
		srv.Close()
		h.Close()
	})
	return &Server{Hub: h, URL: srv.URL, srv: srv}
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
