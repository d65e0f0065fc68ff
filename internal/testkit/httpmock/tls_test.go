package httpmock

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// startTLS starts the hub's TLS server for the test.
func startTLS(t *testing.T, h *Hub) *Server {
	t.Helper()
	srv, err := h.StartTLS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// http1Client returns a client of the server restricted to HTTP/1.1.
func http1Client(t *testing.T, srv *Server) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Protocols: new(http.Protocols)}
	tr.Protocols.SetHTTP1(true)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestTLSServer(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	srv := startTLS(t, h)
	for _, tt := range []struct {
		name      string
		client    *http.Client
		wantProto string
	}{
		{"HTTP/2", srv.Client(), "HTTP/2.0"},
		{"HTTP/1.1", http1Client(t, srv), "HTTP/1.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/twins/d1/methods?api-version="+testAPIVersion,
				strings.NewReader(methodBody("m", `,"payload":[1]`)))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", sasFor(t, h, "service"))
			req.Header.Set("Content-Type", "application/json")
			resp, err := tt.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.Proto != tt.wantProto || resp.StatusCode != 200 {
				t.Errorf("got %s %d", resp.Proto, resp.StatusCode)
			}
			reqs := h.Requests()
			if got := reqs[len(reqs)-1].Proto; got != tt.wantProto {
				t.Errorf("hub saw %s", got)
			}

			// A wrong verb over the wire.
			r := send(t.Context(), t, h, tt.client, call{base: srv.URL, method: "GET", path: "/twins/d1/methods"})
			if r.status != 405 {
				t.Errorf("GET: status %d", r.status)
			}
		})
	}
}

func TestTLSDrops(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name          string
		drop          Drop
		wantDelivered int
	}{
		{"after read", DropAfterRead, 0},
		{"after delivery", DropAfterDelivery, 1},
	} {
		for _, proto := range []string{"HTTP/2", "HTTP/1.1"} {
			t.Run(tt.name+" "+proto, func(t *testing.T) {
				t.Parallel()
				h := New(nil)
				h.AddDevice("d1", &DeviceOptions{Handler: echo})
				h.AddFault(Fault{Drop: tt.drop})
				srv := startTLS(t, h)
				client := srv.Client()
				if proto == "HTTP/1.1" {
					client = http1Client(t, srv)
				}
				r := send(t.Context(), t, h, client, call{base: srv.URL, path: "/twins/d1/methods", body: methodBody("m", "")})
				if r.err == nil {
					t.Fatalf("no error; status %d", r.status)
				}
				if n := h.Deliveries("d1", ""); n != tt.wantDelivered {
					t.Errorf("Deliveries = %d, want %d", n, tt.wantDelivered)
				}
				if n := len(h.Requests()); n != 1 {
					t.Errorf("recorded %d requests", n)
				}
				// The fault hit once; the next call goes through.
				methodResult(t, send(t.Context(), t, h, client, call{base: srv.URL, path: "/twins/d1/methods", body: methodBody("m", "")}))
			})
		}
	}
}

func TestTLSDropBeforeWrite(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	srv := startTLS(t, h)
	client := srv.Client()
	methodResult(t, send(t.Context(), t, h, client, call{base: srv.URL, path: "/twins/d1/methods", body: methodBody("m", "")}))

	// The fault hits new connections only: the idle one is reused.
	h.AddFault(Fault{Drop: DropBeforeWrite, DeviceID: "ignored on this server"})
	methodResult(t, send(t.Context(), t, h, client, call{base: srv.URL, path: "/twins/d1/methods", body: methodBody("m", "")}))

	srv.CloseClientConnections()
	client.CloseIdleConnections()
	r := send(t.Context(), t, h, client, call{base: srv.URL, path: "/twins/d1/methods", body: methodBody("m", "")})
	if r.err == nil {
		t.Fatalf("no error; status %d", r.status)
	}
	if n := len(h.Requests()); n != 2 {
		t.Errorf("recorded %d requests, want 2", n)
	}
	methodResult(t, send(t.Context(), t, h, client, call{base: srv.URL, path: "/twins/d1/methods", body: methodBody("m", "")}))
	if n := h.Deliveries("d1", ""); n != 3 {
		t.Errorf("Deliveries = %d", n)
	}
}

func TestTLSCertificate(t *testing.T) {
	t.Parallel()
	h := New(&Options{HostName: "cert-hub.azure-devices.net"})
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	srv := startTLS(t, h)
	block, rest := pem.Decode(srv.CertPEM())
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("CertPEM: %q", srv.CertPEM())
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, ip := range cert.IPAddresses {
		ips = append(ips, ip.String())
	}
	if diff := cmp.Diff([]string{"localhost", "cert-hub.azure-devices.net"}, cert.DNSNames); diff != "" {
		t.Errorf("DNS names (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"127.0.0.1", "::1"}, ips); diff != "" {
		t.Errorf("IP addresses (-want +got):\n%s", diff)
	}
	if cert.PublicKeyAlgorithm != x509.ECDSA || !cert.Equal(srv.Certificate()) {
		t.Errorf("unexpected certificate")
	}

	// A client that trusts only CertPEM and dials the hub's name.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CertPEM())
	addr := srv.URL[len("https://"):]
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	defer client.CloseIdleConnections()
	methodResult(t, send(t.Context(), t, h, client, call{path: "/twins/d1/methods", body: methodBody("m", "")}))
}

func TestTLSHostNameWithPort(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	h := New(&Options{HostName: "localhost:" + strconv.Itoa(port)})
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	srv := startTLS(t, h)
	if want := "https://localhost:" + strconv.Itoa(port); srv.URL != want {
		t.Errorf("URL = %q, want %q", srv.URL, want)
	}
	// The SAS audience is the host name with its port, as is the URL.
	methodResult(t, send(t.Context(), t, h, srv.Client(), call{path: "/twins/d1/methods", body: methodBody("m", "")}))
}

func TestTLSCloseWithCallsInFlight(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("off", &DeviceOptions{Offline: true})
	srv, err := h.StartTLS()
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/twins/off/methods?api-version="+testAPIVersion,
		strings.NewReader(methodBody("m", `,"connectTimeoutInSeconds":300`)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", sasFor(t, h, "service"))
	req.Header.Set("Content-Type", "application/json")
	done := make(chan error, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
			err = errors.New(resp.Status)
		}
		done <- err
	}()
	for len(h.Requests()) == 0 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() {
		srv.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked on a call in flight")
	}
	if err := <-done; err == nil || err.Error() == "200 OK" {
		t.Errorf("call in flight: %v; want a broken connection", err)
	}
}

func TestTLSOn(t *testing.T) {
	t.Parallel()
	freePort := func(t *testing.T) string {
		t.Helper()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	}

	t.Run("host name known in advance", func(t *testing.T) {
		t.Parallel()
		port := freePort(t)
		h := New(&Options{HostName: "localhost:" + port})
		h.AddDevice("d1", &DeviceOptions{Handler: echo})
		srv, err := h.StartTLSOn("127.0.0.1:" + port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		if want := "https://localhost:" + port; srv.URL != want {
			t.Errorf("URL = %q, want %q", srv.URL, want)
		}
		// The default base is "https://" + HostName: no endpoint override.
		methodResult(t, send(t.Context(), t, h, srv.Client(), call{path: "/twins/d1/methods", body: methodBody("m", "")}))

		// The address is taken now.
		if _, err := New(nil).StartTLSOn("127.0.0.1:" + port); err == nil || !strings.Contains(err.Error(), "iothubtest: StartTLSOn:") {
			t.Errorf("second listener on the port: %v", err)
		}
	})

	t.Run("random port", func(t *testing.T) {
		t.Parallel()
		h := New(&Options{HostName: "localhost:1"}) // not where it listens
		h.AddDevice("d1", &DeviceOptions{Handler: echo})
		srv, err := h.StartTLSOn("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		if !strings.HasPrefix(srv.URL, "https://127.0.0.1:") || srv.URL == "https://127.0.0.1:0" {
			t.Errorf("URL = %q, want the listener's address", srv.URL)
		}
		methodResult(t, send(t.Context(), t, h, srv.Client(), call{base: srv.URL, path: "/twins/d1/methods", body: methodBody("m", "")}))
	})
}
