package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/auth"
	"github.com/hubkit/iothub/service"
)

// build builds the command into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "iothubsim")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// simProcess is a running simulator.
type simProcess struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	ready  []string // the ready lines; fewer than two when it exited first
	exited bool
}

// startProcess starts bin with args and reads its ready lines. The process
// is killed at the end of the test unless stop ended it.
func startProcess(t *testing.T, bin string, args ...string) *simProcess {
	t.Helper()
	p := &simProcess{cmd: exec.Command(bin, args...), stderr: new(bytes.Buffer)}
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !p.exited {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	lines := bufio.NewScanner(stdout)
	for len(p.ready) < 2 && lines.Scan() {
		p.ready = append(p.ready, lines.Text())
	}
	return p
}

// stop sends SIGINT and waits for the process to exit.
func (p *simProcess) stop(t *testing.T) error {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := p.cmd.Wait()
	p.exited = true
	return err
}

// TestProcess builds the command, starts it as its users do, calls it
// through service.Client and through raw net/http trusting the certificate
// it wrote, and stops it with SIGINT.
func TestProcess(t *testing.T) {
	bin := build(t)
	certFile := filepath.Join(t.TempDir(), "ca.pem")
	p := startProcess(t, bin, "-addr", "127.0.0.1:0", "-devices", "30", "-troubled", "-edge", "2", "-cert-out", certFile)
	if len(p.ready) < 2 {
		t.Fatalf("ready lines: got %q; stderr:\n%s", p.ready, p.stderr.String())
	}
	connStr, certPath := p.ready[0], p.ready[1]
	cs, err := auth.ParseConnectionString(connStr)
	if err != nil {
		t.Fatalf("first ready line %q is not a connection string: %v", connStr, err)
	}
	if !strings.HasPrefix(connStr, "HostName=localhost:") || !strings.Contains(connStr, ";SharedAccessKeyName=iothubowner;SharedAccessKey=") {
		t.Errorf("connection string %q: want HostName=localhost:PORT;SharedAccessKeyName=iothubowner;SharedAccessKey=…", connStr)
	}
	if certPath != certFile {
		t.Errorf("second ready line = %q, want the -cert-out path %q", certPath, certFile)
	}
	httpc := trusting(t, certPath)

	t.Run("service.Client", func(t *testing.T) {
		client, err := service.NewClientFromConnectionString(connStr, &iothub.ClientOptions{Transport: httpc.Transport})
		if err != nil {
			t.Fatal(err)
		}
		defer client.CloseIdleConnections()
		res, err := client.InvokeDeviceMethod(t.Context(), "sim-fleet-00001", service.MethodParams[any]{Name: "getStatus"}, nil)
		if err != nil {
			t.Fatalf("getStatus: %v", err)
		}
		if diff := cmp.Diff(`{"deviceId":"sim-fleet-00001","firmware":"1.4.2","state":"running"}`, string(res.Payload)); res.Status != 200 || diff != "" {
			t.Errorf("getStatus: status %d, payload (-want +got):\n%s", res.Status, diff)
		}
		// sim-fleet-00003 is offline under -troubled.
		_, err = client.InvokeDeviceMethod(t.Context(), "sim-fleet-00003", service.MethodParams[any]{Name: "reboot"}, nil)
		var herr *iothub.Error
		if !errors.As(err, &herr) || herr.Code != iothub.ErrorCodeDeviceNotOnline {
			t.Errorf("reboot on an offline device: err = %v, want 404103 DeviceNotOnline", err)
		}
		res, err = client.InvokeModuleMethod(t.Context(), "sim-edge-00002", "$edgeAgent", service.MethodParams[any]{Name: "ping"}, nil)
		if err != nil || res.Status != 200 {
			t.Errorf("ping on an -edge device's $edgeAgent: %+v, %v", res, err)
		}
	})

	t.Run("net/http", func(t *testing.T) {
		token, err := auth.NewSASToken(cs.HostName, cs.SharedAccessKeyName, cs.SharedAccessKey(), time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		get := func(path string) (int, []byte) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+cs.HostName+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", token)
			resp, err := httpc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, body
		}
		code, body := get("/devices/sim-fleet-00030?api-version=2021-04-12")
		var dev struct {
			DeviceID       string `json:"deviceId"`
			Authentication struct {
				SymmetricKey struct{ PrimaryKey string } `json:"symmetricKey"`
			} `json:"authentication"`
		}
		if err := json.Unmarshal(body, &dev); code != 200 || err != nil || dev.DeviceID != "sim-fleet-00030" || dev.Authentication.SymmetricKey.PrimaryKey == "" {
			t.Errorf("GET /devices/sim-fleet-00030: %d %s", code, body)
		}
		code, body = get("/devices/sim-fleet-00031?api-version=2021-04-12")
		if code != 404 || !bytes.Contains(body, []byte("404001")) {
			t.Errorf("GET /devices/sim-fleet-00031 (beyond -devices 30): %d %s, want 404 with 404001", code, body)
		}
		code, _ = get("/devices/sim-fleet-00030")
		if code != 400 {
			t.Errorf("GET without api-version: %d, want 400", code)
		}
	})

	if err := p.stop(t); err != nil {
		t.Errorf("after SIGINT: %v, want exit status 0; stderr:\n%s", err, p.stderr.String())
	}
	if _, err := os.Stat(certFile); err != nil {
		t.Errorf("the -cert-out file is gone after exit: %v", err)
	}
}

// TestPort443 checks that a client dialling HostName:443, as most SDKs
// always do, reaches a simulator on 127.0.0.1:443 with -host localhost
// from the connection string alone, and that the temporary certificate is
// removed on exit. It is skipped where port 443 cannot be had.
func TestPort443(t *testing.T) {
	p := startProcess(t, build(t), "-addr", "127.0.0.1:443", "-host", "localhost")
	if len(p.ready) < 2 {
		_ = p.cmd.Wait()
		p.exited = true
		t.Skipf("cannot serve on 127.0.0.1:443 here: %s", p.stderr.String())
	}
	connStr, certPath := p.ready[0], p.ready[1]
	if !strings.HasPrefix(connStr, "HostName=localhost;") {
		t.Errorf("connection string %q: want HostName=localhost without port", connStr)
	}
	client, err := service.NewClientFromConnectionString(connStr, &iothub.ClientOptions{Transport: trusting(t, certPath).Transport})
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseIdleConnections()
	res, err := client.InvokeDeviceMethod(t.Context(), "sim-device-1", service.MethodParams[any]{Name: "echo", Payload: map[string]int{"n": 1}}, nil)
	if err != nil || res.Status != 200 || string(res.Payload) != `{"n":1}` {
		t.Errorf("echo through localhost:443: %d %s, %v", res.Status, res.Payload, err)
	}
	if err := p.stop(t); err != nil {
		t.Errorf("after SIGINT: %v, want exit status 0; stderr:\n%s", err, p.stderr.String())
	}
	if _, err := os.Stat(certPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary certificate %s after exit: %v, want it removed", certPath, err)
	}
}

// trusting returns an HTTP client that trusts only the PEM certificate in
// file.
func trusting(t *testing.T, file string) *http.Client {
	t.Helper()
	pemBytes, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("%s holds no PEM certificate", file)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// TestFlags checks that bad flags are refused, naming the flag, before
// anything starts.
func TestFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-addr", "8443"}, "-addr"},
		{[]string{"-addr", "127.0.0.1:99999"}, "-addr"},
		{[]string{"-host", "localhost:8443"}, "-host"},
		{[]string{"-devices", "-1"}, "-devices"},
		{[]string{"-edge", "-1"}, "-edge"},
		{[]string{"-policy", "device"}, "-policy"},
		{[]string{"-tier", "S4"}, "-tier"},
		{[]string{"-tier", "F1", "-units", "2"}, "-units"},
		{[]string{"-max-recorded", "0"}, "-max-recorded"},
		{[]string{"extra"}, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, &stdout, &stderr)
			if code != exitUsage || !strings.Contains(stderr.String(), tt.want) || stdout.Len() != 0 {
				t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d and an error naming %s", tt.args, code, stdout.String(), stderr.String(), exitUsage, tt.want)
			}
		})
	}
}

// TestHostName checks the hub's host name: the port is left out only when
// it is 443, which clients dial by default.
func TestHostName(t *testing.T) {
	tests := []struct{ host, port, want string }{
		{"localhost", "443", "localhost"},
		{"localhost", "8443", "localhost:8443"},
		{"iothubsim", "443", "iothubsim"},
		{"::1", "8443", "[::1]:8443"},
	}
	for _, tt := range tests {
		if got := hostName(tt.host, tt.port); got != tt.want {
			t.Errorf("hostName(%q, %q) = %q, want %q", tt.host, tt.port, got, tt.want)
		}
	}
}
