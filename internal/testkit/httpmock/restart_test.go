package httpmock

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServerRestart closes a server and serves the hub again on the same
// address: the same URL and certificate, so the old client works again,
// while nothing answers in between.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	srv, err := h.StartTLS()
	if err != nil {
		t.Fatal(err)
	}
	client := srv.Client()
	call := call{base: srv.URL, path: "/twins/d1/methods", body: methodBody("m", "")}
	if r := send(t.Context(), t, h, client, call); r.err != nil || r.status != 200 {
		t.Fatalf("before: %d %v", r.status, r.err)
	}
	srv.Close()
	if r := send(t.Context(), t, h, client, call); r.err == nil {
		t.Fatalf("closed server answered %d", r.status)
	}
	ns, err := srv.Restart()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if ns.URL != srv.URL || !ns.Certificate().Equal(srv.Certificate()) {
		t.Errorf("restarted at %s with another certificate; want %s and the same one", ns.URL, srv.URL)
	}
	if r := send(t.Context(), t, h, client, call); r.err != nil || r.status != 200 {
		t.Fatalf("after restart: %d %v", r.status, r.err)
	}
	if n := h.Deliveries("d1", ""); n != 2 {
		t.Errorf("%d deliveries, want 2", n)
	}
}

// TestServerHandshakeDelay: a delay longer than the client's
// TLSHandshakeTimeout fails the handshake, and the hub never sees the
// request; a shorter one only slows it down. Turning it off restores
// fast handshakes.
func TestServerHandshakeDelay(t *testing.T) {
	t.Parallel()
	h := New(nil)
	h.AddDevice("d1", &DeviceOptions{Handler: echo})
	srv := startTLS(t, h)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	// Wide margins: a loaded machine under -race takes tens of
	// milliseconds for a handshake without any delay.
	tr.TLSHandshakeTimeout = 750 * time.Millisecond
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	call := call{base: srv.URL, path: "/twins/d1/methods", body: methodBody("m", "")}

	srv.SetHandshakeDelay(3 * time.Second)
	r := send(t.Context(), t, h, client, call)
	if r.err == nil || !strings.Contains(r.err.Error(), "handshake timeout") {
		t.Fatalf("slow handshake: %d %v, want a handshake timeout", r.status, r.err)
	}
	if n := len(h.Requests()); n != 0 {
		t.Errorf("%d requests reached the hub", n)
	}
	srv.SetHandshakeDelay(30 * time.Millisecond)
	start := time.Now()
	if r := send(t.Context(), t, h, client, call); r.err != nil || r.status != 200 {
		t.Fatalf("short delay: %d %v", r.status, r.err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("handshake took %v, want at least the delay", d)
	}
	srv.SetHandshakeDelay(0)
	tr.CloseIdleConnections()
	if r := send(t.Context(), t, h, client, call); r.err != nil || r.status != 200 {
		t.Fatalf("no delay: %d %v", r.status, r.err)
	}
}

// TestClockOffset: a hub whose clock runs ahead refuses SAS tokens that
// expired by its clock (beyond the skew) and accepts them when behind.
func TestClockOffset(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		offset time.Duration
		want   int
	}{{0, 200}, {-time.Hour, 200}, {10 * time.Minute, 401}} {
		h := New(&Options{ClockOffset: tt.offset})
		h.AddDevice("d1", &DeviceOptions{Handler: echo})
		p, _ := h.Policy("service")
		tok := testSAS(h.HostName(), "service", p.Key, time.Now().Add(time.Minute).Unix())
		r := send(t.Context(), t, h, inProcess(h), call{path: "/twins/d1/methods", auth: tok, body: methodBody("m", "")})
		if r.status != tt.want {
			t.Errorf("offset %v: status %d, want %d", tt.offset, r.status, tt.want)
		}
	}
}
