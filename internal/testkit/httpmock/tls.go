package httpmock

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is the hub served over TLS by Hub.StartTLS or Hub.StartTLSOn.
type Server struct {
	// URL is the base URL of the server, such as "https://127.0.0.1:41234",
	// with no trailing slash. Point the client's endpoint here and keep
	// the hub's HostName as the SAS audience.
	URL string

	ts       *httptest.Server
	cert     *x509.Certificate
	certPEM  []byte
	certPair tls.Certificate
	cancel   context.CancelFunc
	hub      *Hub
	addr     string // the address listened on
	ln       *dropListener
}

// StartTLS serves the hub on a new TLS server on the loopback interface,
// speaking HTTP/2 and HTTP/1.1, with its own self-signed ECDSA P-256
// certificate valid for localhost, 127.0.0.1, ::1 and the hub's host name
// (without port). The server listens on a random port, unless the hub's
// HostName has a port and a loopback host ("localhost:8443"): then it
// listens there and URL is "https://" + HostName. StartTLSOn chooses the
// address instead.
//
// On this server DropAfterRead and DropAfterDelivery faults abort the
// response (panic(http.ErrAbortHandler)): HTTP/1.1 clients see the
// connection close, HTTP/2 clients a stream reset. DropBeforeWrite is a
// connection-level fault here: each new connection the server accepts is
// checked against the DropBeforeWrite faults and, when one hits, closed
// with a reset before the TLS handshake. Such faults ignore DeviceID,
// ModuleID and Method, and count connections rather than requests, so a
// client that reuses an idle connection is not affected; close its idle
// connections first.
//
// The server cannot run inside a testing/synctest bubble; use
// RoundTripper there.
func (h *Hub) StartTLS() (*Server, error) {
	addr, ok := loopbackListenAddr(h.hostName)
	if !ok {
		addr = "127.0.0.1:0"
	}
	return h.startTLS("StartTLS", addr)
}

// StartTLSOn is StartTLS listening on addr, a TCP address such as
// "127.0.0.1:8443" (port 0 picks a free port). Use it to serve a hub whose
// HostName, fixed at New, names the address in advance: a hub with
// HostName "localhost:8443" served on "127.0.0.1:8443" can be reached
// with its connection string alone, by a client that trusts CertPEM (for
// example through SSL_CERT_FILE).
//
// URL is "https://" + HostName when HostName is a loopback host with a
// port and addr is where StartTLS would listen for it ("127.0.0.1:8443"
// for "localhost:8443"); otherwise it is "https://" + the address the
// server listens on. The certificate is StartTLS's: it covers localhost,
// 127.0.0.1, ::1 and the host of HostName, not other addresses.
func (h *Hub) StartTLSOn(addr string) (*Server, error) {
	return h.startTLS("StartTLSOn", addr)
}

// startTLS serves the hub over TLS on addr; op names the caller in errors.
func (h *Hub) startTLS(op, addr string) (*Server, error) {
	certPair, certPEM, err := selfSignedCert(hostWithoutPort(h.hostName), time.Now())
	if err != nil {
		return nil, err
	}
	return h.serveTLS(op, addr, certPair, certPEM)
}

// serveTLS serves the hub over TLS on addr with the given certificate.
func (h *Hub) serveTLS(op, addr string, certPair tls.Certificate, certPEM []byte) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("iothubtest: %s: %w", op, err)
	}
	url := ""
	if want, ok := loopbackListenAddr(h.hostName); ok && want == ln.Addr().String() {
		url = "https://" + h.hostName
	}
	ts := httptest.NewUnstartedServer(h)
	ts.Listener.Close() // the default listener; ln replaces it
	dl := &dropListener{Listener: ln, hub: h}
	ts.Listener = dl
	ctx, cancel := context.WithCancel(context.Background())
	ts.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.EnableHTTP2 = true
	ts.TLS = &tls.Config{
		Certificates: []tls.Certificate{certPair},
		NextProtos:   []string{"h2", "http/1.1"},
		MinVersion:   tls.VersionTLS12,
	}
	ts.StartTLS()
	if url == "" {
		url = ts.URL
	}
	return &Server{URL: url, ts: ts, cert: certPair.Leaf, certPEM: certPEM, certPair: certPair,
		cancel: cancel, hub: h, addr: ln.Addr().String(), ln: dl}, nil
}

// Close cancels the requests in flight (their calls end as if the caller
// went away), shuts the server down and waits for its handlers to return.
func (s *Server) Close() {
	s.cancel()
	s.ts.Close()
}

// Client returns an HTTP client that trusts the server's certificate and
// uses HTTP/2 when it can. Its idle connections are closed by Close.
func (s *Server) Client() *http.Client { return s.ts.Client() }

// CertPEM returns the server's certificate in PEM form, for a client's root
// pool or for SSL_CERT_FILE.
func (s *Server) CertPEM() []byte { return append([]byte(nil), s.certPEM...) }

// Certificate returns the server's certificate.
func (s *Server) Certificate() *x509.Certificate { return s.cert }

// CloseClientConnections closes the server's open connections, so that the
// next requests dial anew (and meet connection-level faults).
func (s *Server) CloseClientConnections() { s.ts.CloseClientConnections() }

// loopbackListenAddr returns where to listen for a host name with a port
// and a loopback host.
func loopbackListenAddr(hostName string) (string, bool) {
	host, port, err := net.SplitHostPort(hostName)
	if err != nil || port == "" {
		return "", false
	}
	if strings.EqualFold(host, "localhost") {
		return net.JoinHostPort("127.0.0.1", port), true
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return net.JoinHostPort(host, port), true
	}
	return "", false
}

// dropListener closes the connections that a DropBeforeWrite fault hits as
// soon as they are accepted, and delays the handshake of the others when
// asked to.
type dropListener struct {
	net.Listener
	hub            *Hub
	handshakeDelay atomic.Int64 // nanoseconds
}

// Accept returns the next connection that no fault drops.
func (l *dropListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !l.hub.takeConnDrop() {
			if d := time.Duration(l.handshakeDelay.Load()); d > 0 {
				return newSlowConn(c, d), nil
			}
			return c, nil
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset, not an orderly close
		}
		_ = c.Close()
	}
}

// selfSignedCert makes a self-signed ECDSA P-256 certificate for the
// loopback names and host.
func selfSignedCert(host string, now time.Time) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("iothubtest: StartTLS: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("iothubtest: StartTLS: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "httpmock simulated IoT Hub", Organization: []string{"httpmock"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		}
	} else if host != "" && !strings.EqualFold(host, "localhost") {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("iothubtest: StartTLS: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("iothubtest: StartTLS: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, certPEM, nil
}

// Restart serves the hub again on the address s listened on, with the same
// certificate and URL, as a hub that went away and came back. Close s
// first: s stays closed, and the new Server is the one to close. Clients
// that trusted s (s.Client(), CertPEM) trust the new Server too; their
// connections to s are gone, so their next requests dial anew.
func (s *Server) Restart() (*Server, error) {
	ns, err := s.hub.serveTLS("Restart", s.addr, s.certPair, s.certPEM)
	if err != nil {
		return nil, err
	}
	ns.URL = s.URL
	return ns, nil
}

// SetHandshakeDelay makes the server wait d before it reads anything from
// each connection it accepts from now on, so that the client's TLS
// handshake takes at least d: a slow or overloaded front end. Zero turns
// the delay off. Connections already open are not affected.
func (s *Server) SetHandshakeDelay(d time.Duration) { s.ln.handshakeDelay.Store(int64(d)) }

// slowConn holds back the first read of a connection.
type slowConn struct {
	net.Conn
	delay  time.Duration
	once   sync.Once
	closed chan struct{}
	close  sync.Once
}

func newSlowConn(c net.Conn, d time.Duration) *slowConn {
	return &slowConn{Conn: c, delay: d, closed: make(chan struct{})}
}

// Read waits out the delay before the first read, or until the connection
// is closed.
func (c *slowConn) Read(p []byte) (int, error) {
	c.once.Do(func() {
		t := time.NewTimer(c.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.closed:
		}
	})
	return c.Conn.Read(p)
}

// Close closes the connection and ends a pending delay.
func (c *slowConn) Close() error {
	c.close.Do(func() { close(c.closed) })
	return c.Conn.Close()
}
