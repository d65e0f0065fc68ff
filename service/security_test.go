package service_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/auth"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/internal/testkit/syncbuf"
	"github.com/hubkit/iothub/registry"
	"github.com/hubkit/iothub/service"
)

// everythingLogger logs every record at every level (down to Debug-4),
// with its source, as text and as JSON.
func everythingLogger(w *syncbuf.Buffer) *slog.Logger {
	o := &slog.HandlerOptions{Level: slog.LevelDebug - 4, AddSource: true}
	return slog.New(fanHandler{slog.NewTextHandler(w, o), slog.NewJSONHandler(w, o)})
}

// fanHandler sends each record to several handlers.
type fanHandler []slog.Handler

func (f fanHandler) Enabled(context.Context, slog.Level) bool { return true }
func (f fanHandler) Handle(ctx context.Context, r slog.Record) error {
	for _, h := range f {
		_ = h.Handle(ctx, r.Clone())
	}
	return nil
}
func (f fanHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(fanHandler, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(as)
	}
	return out
}
func (f fanHandler) WithGroup(name string) slog.Handler {
	out := make(fanHandler, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}

// secretWindows cuts each secret, as sent and URL-decoded, into 12-byte
// windows: no output may hold any of them.
func secretWindows(secrets []string) []string {
	var out []string
	for _, s := range secrets {
		forms := []string{s}
		if u, err := url.QueryUnescape(s); err == nil && u != s {
			forms = append(forms, u)
		}
		for _, f := range forms {
			for i := 0; i+12 <= len(f); i++ {
				out = append(out, f[i:i+12])
			}
		}
	}
	return out
}

// sentSecrets returns the signatures and bearer tokens of every request the
// hub received.
func sentSecrets(hub *httpmock.Hub) []string {
	var out []string
	for _, r := range hub.Requests() {
		a := r.Header.Get("Authorization")
		if tok, ok := strings.CutPrefix(a, "Bearer "); ok {
			out = append(out, tok)
			continue
		}
		for kv := range strings.SplitSeq(strings.TrimPrefix(a, "SharedAccessSignature "), "&") {
			if v, ok := strings.CutPrefix(kv, "sig="); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

// TestNoSecretInAnyOutput drives the service and registry clients, signed
// with a SAS key and with Entra tokens, through failing and retried calls
// (direct methods and Plug and Play commands),
// and checks that no key, signature or bearer token appears in: any log
// record at any level, the errors (Error, %v, %+v, %#v), the fan-out
// results, or the printed forms of the clients, their options and the
// credentials.
func TestNoSecretInAnyOutput(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hub := httpmock.New(nil)
		hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
		hub.AddDevice("offline", &httpmock.DeviceOptions{Offline: true})
		pol, _ := hub.Policy("iothubowner")
		var logs syncbuf.Buffer
		opts := &iothub.ClientOptions{Transport: hub.RoundTripper(), Logger: everythingLogger(&logs), Retry: iothub.RetryOptions{MinDelay: time.Millisecond}}

		cred, err := auth.NewSharedAccessKeyCredential(pol.Name, pol.Key, nil)
		if err != nil {
			t.Fatal(err)
		}
		entra := hub.TokenCredential(httpmock.DataContributor, nil)
		var services []*service.Client
		var regs []*registry.Client
		for _, mk := range []func() (*service.Client, *registry.Client, error){
			func() (*service.Client, *registry.Client, error) {
				s, err := service.NewClientFromConnectionString(hub.ConnectionString("iothubowner"), opts)
				if err != nil {
					return nil, nil, err
				}
				r, err := registry.NewClientFromConnectionString(hub.ConnectionString("iothubowner"), opts)
				return s, r, err
			},
			func() (*service.Client, *registry.Client, error) {
				s, err := service.NewClientWithSharedAccessKey(hub.HostName(), cred, opts)
				if err != nil {
					return nil, nil, err
				}
				r, err := registry.NewClientWithSharedAccessKey(hub.HostName(), cred, opts)
				return s, r, err
			},
			func() (*service.Client, *registry.Client, error) {
				s, err := service.NewClient(hub.HostName(), entra, opts)
				if err != nil {
					return nil, nil, err
				}
				r, err := registry.NewClient(hub.HostName(), entra, opts)
				return s, r, err
			},
		} {
			s, r, err := mk()
			if err != nil {
				t.Fatal(err)
			}
			services, regs = append(services, s), append(regs, r)
		}

		var outputs []any
		faults := []httpmock.Fault{
			{Code: 429001, Times: 2},                        // retried
			{Code: 503005},                                  // retried
			{Drop: httpmock.DropBeforeWrite},                // retried
			{Code: 401002},                                  // refused
			{AfterDelivery: true},                           // 504101
			{Drop: httpmock.DropAfterDelivery},              // broken
			{Status: 200, Body: []byte("<html>"), Times: 1}, // unreadable
		}
		for _, s := range services {
			for _, f := range faults {
				hub.ClearFaults()
				f.Operation = httpmock.OperationMethod
				hub.AddFault(f)
				res, err := s.InvokeDeviceMethod(t.Context(), "d1", service.MethodParams[any]{Name: "reboot", Payload: json.RawMessage(`{"delay":1}`)}, nil)
				outputs = append(outputs, res, err)
				// The same fault on a Plug and Play command.
				hub.ClearFaults()
				hub.AddFault(f)
				cres, err := s.InvokeCommand(t.Context(), "d1", service.CommandParams[any]{Component: "thermostat1", Name: "reboot", Payload: json.RawMessage(`{"delay":1}`)}, nil)
				outputs = append(outputs, cres, err)
			}
			hub.ClearFaults()
			_, err := s.InvokeCommand(t.Context(), "offline", service.CommandParams[any]{Name: "reboot"}, nil)
			outputs = append(outputs, err)
			_, err = s.InvokeCommand(t.Context(), "bad id", service.CommandParams[any]{Name: "reboot"}, nil)
			outputs = append(outputs, err)
			hub.ClearFaults()
			_, err = s.InvokeDeviceMethod(t.Context(), "offline", service.MethodParams[any]{Name: "reboot"}, nil)
			outputs = append(outputs, err)
			_, err = s.InvokeDeviceMethod(t.Context(), "bad id", service.MethodParams[any]{Name: "reboot"}, nil)
			outputs = append(outputs, err)
			hub.AddFault(httpmock.Fault{Operation: httpmock.OperationMethod, Code: 429001, Times: 3})
			run, err := s.StartFanOut(t.Context(), service.Devices("d1", "offline", "missing"), service.MethodParams[any]{Name: "reboot"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Printed while it runs: String reads nothing that changes.
			outputs = append(outputs, fmt.Sprintf("%+v %#v", run, run), run)
			for r := range run.Results() {
				outputs = append(outputs, r, r.Err)
			}
		}
		for _, r := range regs {
			hub.ClearFaults()
			hub.AddFault(httpmock.Fault{Operation: httpmock.OperationRegistry, Code: 503005})
			_, err := r.GetDevice(t.Context(), "missing", nil)
			outputs = append(outputs, err)
			hub.AddFault(httpmock.Fault{Operation: httpmock.OperationQuery, Status: 200, Body: []byte("[1]")})
			for _, err := range r.QueryTwins(t.Context(), "SELECT * FROM devices", nil) {
				outputs = append(outputs, err)
			}
		}
		hub.ClearFaults()
		for _, s := range services {
			outputs = append(outputs, s, *s)
		}
		for _, r := range regs {
			outputs = append(outputs, r, *r)
		}
		outputs = append(outputs, opts, *opts, cred)

		secrets := append(sentSecrets(hub), pol.Key)
		if len(secrets) < 10 {
			t.Fatalf("only %d secrets sent; the test drove too few calls", len(secrets))
		}
		var text strings.Builder
		for _, o := range outputs {
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
				fmt.Fprintf(&text, verb+"\n", o)
			}
		}
		text.WriteString(logs.String())
		if !strings.Contains(logs.String(), "level=DEBUG") || !strings.Contains(logs.String(), "retrying") || !strings.Contains(logs.String(), `"level":"WARN"`) {
			t.Fatalf("the logs do not show retried and failed calls at every level:\n%.2000s", logs.String())
		}
		out := text.String()
		for _, w := range secretWindows(secrets) {
			if i := strings.Index(out, w); i >= 0 {
				t.Fatalf("output contains secret fragment %q: …%s…", w, out[max(0, i-200):min(len(out), i+200)])
			}
		}
	})
}

// TestPlainHTTPRefused: no constructor sends credentials to an http://
// endpoint unless InsecureAllowHTTP says so, whatever the credential; with
// it, the call works (for a local fake hub).
func TestPlainHTTPRefused(t *testing.T) {
	t.Parallel()
	hub := httpmock.New(nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		hub.ServeHTTP(w, r)
	}))
	defer srv.Close()
	cred, err := auth.NewSharedAccessKeyCredential("service", mustPolicy(t, hub, "service").Key, nil)
	if err != nil {
		t.Fatal(err)
	}
	entra := hub.TokenCredential(httpmock.DataContributor, nil)
	constructors := map[string]func(*iothub.ClientOptions) (any, error){
		"service connection string": func(o *iothub.ClientOptions) (any, error) {
			return service.NewClientFromConnectionString(hub.ConnectionString("service"), o)
		},
		"service shared access key": func(o *iothub.ClientOptions) (any, error) {
			return service.NewClientWithSharedAccessKey(hub.HostName(), cred, o)
		},
		"service Entra": func(o *iothub.ClientOptions) (any, error) { return service.NewClient(hub.HostName(), entra, o) },
		"registry connection string": func(o *iothub.ClientOptions) (any, error) {
			return registry.NewClientFromConnectionString(hub.ConnectionString("iothubowner"), o)
		},
		"registry shared access key": func(o *iothub.ClientOptions) (any, error) {
			return registry.NewClientWithSharedAccessKey(hub.HostName(), cred, o)
		},
		"registry Entra": func(o *iothub.ClientOptions) (any, error) { return registry.NewClient(hub.HostName(), entra, o) },
	}
	for name, mk := range constructors {
		t.Run(name, func(t *testing.T) {
			for _, endpoint := range []string{srv.URL, "HTTP://" + strings.TrimPrefix(srv.URL, "http://"), "ws://example.com", "ftp://example.com"} {
				_, err := mk(&iothub.ClientOptions{Endpoint: endpoint})
				if err == nil {
					t.Errorf("Endpoint %q accepted", endpoint)
					continue
				}
				if strings.HasPrefix(strings.ToLower(endpoint), "http:") && !strings.Contains(err.Error(), "InsecureAllowHTTP") {
					t.Errorf("Endpoint %q refused without naming InsecureAllowHTTP: %v", endpoint, err)
				}
			}
			if _, err := mk(&iothub.ClientOptions{Endpoint: srv.URL, InsecureAllowHTTP: true}); err != nil {
				t.Errorf("InsecureAllowHTTP refused: %v", err)
			}
		})
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests reached the plain-HTTP server", n)
	}
	c, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), &iothub.ClientOptions{Endpoint: srv.URL, InsecureAllowHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	if _, err := c.InvokeDeviceMethod(t.Context(), "d1", service.MethodParams[any]{Name: "m"}, nil); err != nil {
		t.Errorf("with InsecureAllowHTTP: %v", err)
	}
}

func mustPolicy(t *testing.T, hub *httpmock.Hub, name string) httpmock.Policy {
	t.Helper()
	p, ok := hub.Policy(name)
	if !ok {
		t.Fatalf("no policy %q", name)
	}
	return p
}

// TestRedirectsNotFollowed: a hub (or something posing as one) that
// redirects elsewhere, to plain HTTP or to another host, gets no second
// request with the credentials; the call fails with the redirect's status
// and says it was not delivered.
func TestRedirectsNotFollowed(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	redirector := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	hub := httpmock.New(nil)
	c, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), &iothub.ClientOptions{
		Endpoint: redirector.URL, Transport: redirector.Client().Transport,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.InvokeDeviceMethod(t.Context(), "d1", service.MethodParams[any]{Name: "m"}, nil)
	if err == nil {
		t.Fatal("a redirect was taken for an answer")
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect was followed: %d requests elsewhere", n)
	}
	if strings.Contains(err.Error(), "sig=") {
		t.Errorf("error holds the signature: %v", err)
	}
}

// TestTLS12Minimum: the default transport refuses a hub that offers only
// TLS 1.1, before anything is sent.
func TestTLS12Minimum(t *testing.T) {
	t.Parallel()
	hub := httpmock.New(nil)
	hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
	var requests atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		hub.ServeHTTP(w, r)
	}))
	srv.TLS = &tls.Config{MaxVersion: tls.VersionTLS11}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	c, err := service.NewClientFromConnectionString(hub.ConnectionString("service"), &iothub.ClientOptions{
		Endpoint: srv.URL, Retry: iothub.RetryOptions{MaxAttempts: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.InvokeDeviceMethod(t.Context(), "d1", service.MethodParams[any]{Name: "m"}, nil)
	if err == nil || iothub.MayHaveRun(err) {
		t.Fatalf("err = %v, want a refused handshake, not delivered", err)
	}
	if !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("err = %v, want a TLS protocol version failure", err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests reached the TLS 1.1 server", n)
	}
}
