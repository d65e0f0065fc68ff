package iothubtest_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExternalModule proves that a module outside this repository can use
// the fake hub: it writes a small module into a temporary directory (a
// replace directive points at this checkout) whose test starts the hub the
// three ways, calls a device through service.Client and raw net/http,
// scripts a fault and asserts an exactly-once delivery, and runs go test
// there, offline, with what the module cache already holds.
func TestExternalModule(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs another module; skipped with -short")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH:", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/backend\n\ngo 1.26.0\n\n" +
			"require github.com/hubkit/iothub v0.0.0\n\n" +
			"replace github.com/hubkit/iothub => " + filepath.ToSlash(root) + "\n",
		// The dependencies' checksums are this module's own.
		"go.sum":          string(sum),
		"backend_test.go": externalTest,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.CommandContext(t.Context(), goTool, "test", "-count=1", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GOFLAGS=-mod=mod", // let go fill in the indirect requirements
		"GOPROXY=off",      // offline: everything comes from the module cache
		"GOWORK=off",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("go test in an external module: %v\n%s", err, out.Bytes())
	}
	if !strings.Contains(out.String(), "ok  \texample.com/backend") {
		t.Errorf("go test in an external module did not report ok:\n%s", out.Bytes())
	}
}

// externalTest is the external module's test: what a user writes.
const externalTest = `package backend

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/service"
)

func reboot(_ context.Context, call iothubtest.MethodCall) iothubtest.MethodResponse {
	return iothubtest.MethodResponse{Status: 200, Payload: map[string]bool{"rebooting": true}}
}

// rebootDevice is the code under test.
func rebootDevice(ctx context.Context, c *service.Client, id string) error {
	res, err := c.InvokeDeviceMethod(ctx, id, service.MethodParams[any]{Name: "reboot"}, nil)
	if err != nil {
		return err
	}
	if res.Status != 200 || string(res.Payload) != ` + "`" + `{"rebooting":true}` + "`" + ` {
		return errors.New("unexpected answer " + string(res.Payload))
	}
	return nil
}

func rawReboot(t *testing.T, client *http.Client, base, token string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/twins/dev-1/methods?api-version=2021-04-12",
		strings.NewReader(` + "`" + `{"methodName":"reboot","responseTimeoutInSeconds":10}` + "`" + `))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Status int }
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(b, &body); err != nil || body.Status != 200 {
			t.Errorf("raw answer %s (%v)", b, err)
		}
	}
	return resp.StatusCode
}

func once(t *testing.T, hub *iothubtest.Hub, n int) {
	t.Helper()
	hub.ExpectDeliveries(t, map[iothubtest.Target]int{{DeviceID: "dev-1", Method: "reboot"}: n})
}

func TestInProcess(t *testing.T) {
	hub := iothubtest.New(nil)
	defer hub.Close()
	hub.AddDevice("dev-1", nil).HandleMethod("reboot", reboot)
	c, err := service.NewClientFromConnectionString(hub.ConnectionString(), hub.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	// A throttled first attempt is not delivered; the SDK retries it.
	hub.AddFault(iothubtest.Fault{DeviceID: "dev-1", Method: "reboot", Code: iothub.ErrorCodeThrottlingException})
	if err := rebootDevice(t.Context(), c, "dev-1"); err != nil {
		t.Fatal(err)
	}
	once(t, hub, 1)
	raw := &http.Client{Transport: hub.RoundTripper()}
	if got := rawReboot(t, raw, "https://"+hub.HostName(), hub.SASToken(iothubtest.PolicyService)); got != 200 {
		t.Errorf("raw: %d", got)
	}
	once(t, hub, 2)
}

func TestHandler(t *testing.T) {
	hub := iothubtest.New(nil)
	defer hub.Close()
	hub.AddDevice("dev-1", nil).HandleMethod("reboot", reboot)
	ts := httptest.NewTLSServer(hub.Handler())
	defer ts.Close()
	c, err := service.NewClientFromConnectionString(hub.ConnectionString(),
		&iothub.ClientOptions{Endpoint: ts.URL, Transport: ts.Client().Transport})
	if err != nil {
		t.Fatal(err)
	}
	if err := rebootDevice(t.Context(), c, "dev-1"); err != nil {
		t.Fatal(err)
	}
	if got := rawReboot(t, ts.Client(), ts.URL, hub.SASToken(iothubtest.PolicyService)); got != 200 {
		t.Errorf("raw: %d", got)
	}
	once(t, hub, 2)
}

func TestServer(t *testing.T) {
	srv := iothubtest.NewServer(t, nil)
	srv.AddDevice("dev-1", nil).HandleMethod("reboot", reboot)
	c, err := service.NewClientFromConnectionString(srv.ConnectionString(), srv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	// The device runs the method but its answer is lost: the caller must
	// treat the reboot as possibly done, and it was done exactly once.
	srv.AddFault(iothubtest.LostAnswers("dev-1", ""))
	err = rebootDevice(t.Context(), c, "dev-1")
	if !iothub.MayHaveRun(err) {
		t.Fatalf("a lost answer: %v, want an error that may have run", err)
	}
	once(t, srv.Hub, 1)
	srv.ClearFaults()
	if got := rawReboot(t, srv.Client(), srv.URL, srv.SASToken(iothubtest.PolicyService)); got != 200 {
		t.Errorf("raw: %d", got)
	}
	once(t, srv.Hub, 2)
}
`
