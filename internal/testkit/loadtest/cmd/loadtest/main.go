// Command loadtest drives direct-method calls through the SDK and through
// the minimal hand-written reference client, side by side in one run,
// against the simulated hub served over TLS, and prints calls per second,
// CPU seconds per 1,000 calls, allocations per call, connections opened
// and peak RSS for each, with the SDK's ratio to the reference. It then
// fans a method out over growing numbers of streamed targets and prints
// the client's peak memory for each size.
//
// The hub runs in a child process (this program started with -serve), so
// that the CPU time and memory measured are the client's alone.
//
//	go run ./internal/testkit/loadtest/cmd/loadtest -n 20000 -c 1,64,256 -sweep 10000,100000,1000000
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/pipeline"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/internal/testkit/loadtest"
	"github.com/hubkit/iothub/service"
)

// config is the command line.
type config struct {
	n           int
	concurrency []int
	rounds      int
	devices     int
	sweep       []int
	sweepC      int
	http2       bool
	aa          bool
	cpuProfile  string
	memProfile  string
}

func main() {
	serve := flag.Bool("serve", false, "serve the simulated hub over TLS and print how to reach it (used by the harness itself)")
	var cfg config
	flag.IntVar(&cfg.n, "n", 20000, "calls per client per round")
	conc := flag.String("c", "64", "concurrency, or a comma-separated list of them")
	flag.IntVar(&cfg.rounds, "rounds", 10, "rounds per concurrency: the calls are made in this many alternating blocks per client")
	flag.IntVar(&cfg.devices, "devices", 1000, "simulated devices the calls cycle over")
	sweep := flag.String("sweep", "10000,100000", "fan-out sizes (streamed targets) to measure memory for; empty for none")
	flag.IntVar(&cfg.sweepC, "sweep-c", 64, "fan-out concurrency of the memory sweep")
	flag.BoolVar(&cfg.http2, "http2", false, "offer HTTP/2 in both clients (the SDK as with ClientOptions.HTTP2) instead of HTTP/1.1 only")
	flag.BoolVar(&cfg.aa, "aa", false, "an A/A run: the SDK, with its own transport, in the reference's place too, to show the harness's own noise and bias")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the SDK's phases to this file")
	flag.StringVar(&cfg.memProfile, "memprofile", "", "write an allocation profile to this file at the end")
	flag.Parse()
	if *serve {
		if err := serveHub(cfg.devices); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest -serve:", err)
			os.Exit(1)
		}
		return
	}
	var err error
	if cfg.concurrency, err = parseList(*conc); err != nil || len(cfg.concurrency) == 0 {
		fmt.Fprintln(os.Stderr, "loadtest: -c wants positive integers separated by commas")
		os.Exit(2)
	}
	if cfg.sweep, err = parseList(*sweep); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest: -sweep wants positive integers separated by commas")
		os.Exit(2)
	}
	if cfg.n <= 0 || cfg.rounds <= 0 || cfg.devices <= 0 || cfg.sweepC <= 0 {
		fmt.Fprintln(os.Stderr, "loadtest: -n, -rounds, -devices and -sweep-c must be positive")
		os.Exit(2)
	}
	if err := run(cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func parseList(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil || v <= 0 {
			return nil, errors.New("not a positive integer")
		}
		out = append(out, v)
	}
	return out, nil
}

// hubInfo is what the child process prints about the hub it serves.
type hubInfo struct {
	URL              string `json:"url"`
	ConnectionString string `json:"connectionString"`
	CertPEM          string `json:"certPEM"`
}

// serveHub is the child: the strict simulated hub over TLS, with devices
// that answer every method at once. It runs until its stdin closes, which
// happens when the parent exits.
func serveHub(devices int) error {
	// The hub keeps a short history only, so that its process does not
	// grow with the calls it serves.
	hub := httpmock.New(&httpmock.Options{MaxRecorded: 1000})
	answer := json.RawMessage(`{"rebooting":true}`)
	handler := func(context.Context, httpmock.MethodCall) httpmock.MethodResponse {
		return httpmock.MethodResponse{Status: 200, Payload: answer}
	}
	for i := range devices {
		hub.AddDevice(deviceID(i), &httpmock.DeviceOptions{Handler: handler})
	}
	srv, err := hub.StartTLS()
	if err != nil {
		return err
	}
	defer srv.Close()
	info := hubInfo{URL: srv.URL, ConnectionString: hub.ConnectionString("service"), CertPEM: string(srv.CertPEM())}
	if err := json.NewEncoder(os.Stdout).Encode(info); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

func deviceID(i int) string { return fmt.Sprintf("dev-%05d", i) }

// startHub starts the child process and reads how to reach its hub.
func startHub(devices int) (hubInfo, int, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return hubInfo{}, 0, nil, err
	}
	cmd := exec.Command(exe, "-serve", "-devices", strconv.Itoa(devices))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return hubInfo{}, 0, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return hubInfo{}, 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return hubInfo{}, 0, nil, err
	}
	stop := func() {
		stdin.Close()
		_ = cmd.Wait()
	}
	var info hubInfo
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &info)
	}
	if err != nil {
		stop()
		return hubInfo{}, 0, nil, fmt.Errorf("start the hub: %w", err)
	}
	return info, cmd.Process.Pid, stop, nil
}

// env is what every phase needs.
type env struct {
	cfg     config
	hub     hubInfo
	hubPID  int
	roots   *x509.CertPool
	devices []string
	out     io.Writer
	cpuProf bool // a CPU profile is wanted and not yet taken
}

func run(cfg config, out io.Writer) error {
	info, pid, stop, err := startHub(cfg.devices)
	if err != nil {
		return err
	}
	defer stop()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(info.CertPEM)) {
		return errors.New("the hub's certificate does not parse")
	}
	e := &env{cfg: cfg, hub: info, hubPID: pid, roots: roots, out: out, cpuProf: cfg.cpuProfile != ""}
	for i := range cfg.devices {
		e.devices = append(e.devices, deviceID(i))
	}
	if cfg.aa {
		fmt.Fprintln(out, "A/A run: the row named reference is a second SDK client")
	}
	proto := "HTTP/1.1"
	if cfg.http2 {
		proto = "HTTP/2"
	}
	fmt.Fprintf(out, "machine: %s, %d CPUs (GOMAXPROCS %d), %s %s/%s\n", cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(out, "hub: the simulated hub over TLS (%s) in a child process; %d devices answering at once; figures are the client process's alone\n", proto, cfg.devices)
	if proto, err := e.probe(); err != nil {
		return err
	} else {
		fmt.Fprintf(out, "negotiated: %s\n", proto)
	}
	fmt.Fprintf(out, "each client makes -n %d calls per concurrency, in alternating blocks after a warm-up; CPU and allocations are the process's, counted per block\n\n", cfg.n)
	for _, c := range cfg.concurrency {
		if err := e.compare(c); err != nil {
			return err
		}
	}
	if len(cfg.sweep) > 0 {
		if err := e.sweep(); err != nil {
			return err
		}
	}
	if cfg.memProfile != "" {
		f, err := os.Create(cfg.memProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		return pprof.Lookup("allocs").WriteTo(f, 0)
	}
	return nil
}

// transport returns the SDK's default transport, trusting the hub's
// certificate and counting its connections: the only two changes.
func (e *env) sdkTransport() (*http.Transport, *loadtest.DialCounter) {
	t := pipeline.DefaultTransport()
	t.TLSClientConfig.RootCAs = e.roots
	dc := new(loadtest.DialCounter)
	t.DialContext = dc.DialContext
	e.protocols(t)
	return t, dc
}

// refTransport is what a hand-written client would use: keep-alive,
// HTTP/1.1 (HTTP/2 with -http2), an idle pool as large as its concurrency.
func (e *env) refTransport(c int) (*http.Transport, *loadtest.DialCounter) {
	dc := new(loadtest.DialCounter)
	t := &http.Transport{
		DialContext:         dc.DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: e.roots, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: c,
		IdleConnTimeout:     90 * time.Second,
	}
	e.protocols(t)
	return t, dc
}

func (e *env) protocols(t *http.Transport) {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(e.cfg.http2)
	t.Protocols = p
}

// probe returns the protocol the SDK's transport speaks to the hub.
func (e *env) probe() (string, error) {
	t, _ := e.sdkTransport()
	defer t.CloseIdleConnections()
	resp, err := (&http.Client{Transport: t}).Get(e.hub.URL + "/")
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	return resp.Proto, nil
}

// phase is the outcome of one client's calls.
type phase struct {
	calls  int
	d      loadtest.Delta
	hubCPU time.Duration // the hub's CPU time serving these calls
	opened int64
	open   int64
	peak   uint64
}

func (p phase) cpuPer1k() float64  { return p.d.CPU.Seconds() * 1000 / float64(p.calls) }
func (p phase) callsPerS() float64 { return float64(p.calls) / p.d.Wall.Seconds() }
func (p phase) allocs() float64    { return float64(p.d.Allocs) / float64(p.calls) }
func (p phase) bytes() float64     { return float64(p.d.Bytes) / float64(p.calls) }

func (p *phase) add(d loadtest.Delta, calls int) {
	p.calls += calls
	p.d.Wall += d.Wall
	p.d.CPU += d.CPU
	p.d.Allocs += d.Allocs
	p.d.Bytes += d.Bytes
}

// drive makes n calls at concurrency c, call i on device i mod devices.
func (e *env) drive(n, c int, call func(id string) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := call(e.devices[int(i)%len(e.devices)]); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// block measures n calls, and the hub's CPU time serving them. The calls'
// goroutines carry the profiler label client=name, and so do the
// connections they dial.
func (e *env) block(name string, n, c int, call func(id string) error) (loadtest.Delta, time.Duration, error) {
	hubBefore := loadtest.ProcessCPU(e.hubPID)
	before := loadtest.Snapshot()
	var err error
	pprof.Do(context.Background(), pprof.Labels("client", name), func(context.Context) {
		err = e.drive(n, c, call)
	})
	d := loadtest.Snapshot().Sub(before)
	return d, loadtest.ProcessCPU(e.hubPID) - hubBefore, err
}

// peakRSS returns the process's peak RSS over n calls of one client alone.
func (e *env) peakRSS(n, c int, call func(id string) error) (uint64, error) {
	debug.FreeOSMemory()
	if !loadtest.ResetPeakRSS() {
		return 0, nil
	}
	err := e.drive(n, c, call)
	return loadtest.PeakRSS(), err
}

var (
	params  = service.MethodParams[any]{Name: "reboot", Payload: json.RawMessage(`{"delay":5}`), TimeoutInSeconds: 30}
	payload = json.RawMessage(`{"delay":5}`)
)

// compare runs the reference client and the SDK side by side: each with
// its own transport, warmed up, then in alternating blocks of n/rounds
// calls (the order swapped every round), so that whatever else the
// machine does falls on both alike.
func (e *env) compare(c int) error {
	ctx := context.Background()
	rt, rdc := e.refTransport(c)
	defer rt.CloseIdleConnections()
	ref, err := loadtest.NewReference(e.hub.ConnectionString, e.hub.URL, rt, time.Hour)
	if err != nil {
		return err
	}
	refCall := func(id string) error {
		st, _, err := ref.Invoke(ctx, id, "reboot", payload, 30)
		if err == nil && st != 200 {
			err = fmt.Errorf("device status %d", st)
		}
		return err
	}
	if e.cfg.aa {
		var at *http.Transport
		at, rdc = e.sdkTransport()
		defer at.CloseIdleConnections()
		other, err := service.NewClientFromConnectionString(e.hub.ConnectionString, &iothub.ClientOptions{Endpoint: e.hub.URL, Transport: at})
		if err != nil {
			return err
		}
		refCall = func(id string) error {
			r, err := other.InvokeDeviceMethod(ctx, id, params, nil)
			if err == nil && r.Status != 200 {
				err = fmt.Errorf("device status %d", r.Status)
			}
			return err
		}
	}
	// The SDK's transport gets the cap ClientOptions.MaxConnections sets
	// (the harness passes its own transport, to count connections, so it
	// sets the cap itself), as a user running c calls at once would: no
	// more connections than calls in flight.
	st, sdc := e.sdkTransport()
	st.MaxConnsPerHost, st.MaxIdleConnsPerHost = c, c
	defer st.CloseIdleConnections()
	client, err := service.NewClientFromConnectionString(e.hub.ConnectionString, &iothub.ClientOptions{Endpoint: e.hub.URL, Transport: st})
	if err != nil {
		return err
	}
	sdkCall := func(id string) error {
		r, err := client.InvokeDeviceMethod(ctx, id, params, nil)
		if err == nil && r.Status != 200 {
			err = fmt.Errorf("device status %d", r.Status)
		}
		return err
	}

	blockN := max(e.cfg.n/e.cfg.rounds, c)
	var ref1, sdk1 phase
	var err2 error
	pprof.Do(context.Background(), pprof.Labels("client", "reference"), func(context.Context) {
		ref1.peak, err2 = e.peakRSS(blockN, c, refCall)
	})
	if err = err2; err != nil {
		return fmt.Errorf("reference client: %w", err)
	}
	pprof.Do(context.Background(), pprof.Labels("client", "sdk"), func(context.Context) {
		sdk1.peak, err2 = e.peakRSS(blockN, c, sdkCall)
	})
	if err = err2; err != nil {
		return fmt.Errorf("SDK: %w", err)
	}
	if e.cpuProf {
		e.cpuProf = false
		if err := e.startCPUProfile(); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var ratios []float64
	for i := range e.cfg.rounds {
		var dr, ds loadtest.Delta
		var hr, hs time.Duration
		var errR, errS error
		if i%2 == 0 {
			dr, hr, errR = e.block("reference", blockN, c, refCall)
			ds, hs, errS = e.block("sdk", blockN, c, sdkCall)
		} else {
			ds, hs, errS = e.block("sdk", blockN, c, sdkCall)
			dr, hr, errR = e.block("reference", blockN, c, refCall)
		}
		ref1.hubCPU += hr
		sdk1.hubCPU += hs
		if errR != nil {
			return fmt.Errorf("reference client: %w", errR)
		}
		if errS != nil {
			return fmt.Errorf("SDK: %w", errS)
		}
		ref1.add(dr, blockN)
		sdk1.add(ds, blockN)
		ratios = append(ratios, ds.CPU.Seconds()/dr.CPU.Seconds())
	}
	ref1.opened, ref1.open = rdc.Opened(), rdc.Open()
	sdk1.opened, sdk1.open = sdc.Opened(), sdc.Open()

	w := e.out
	fmt.Fprintf(w, "concurrency %d: %d rounds of %d calls per client\n", c, e.cfg.rounds, blockN)
	fmt.Fprintf(w, "  %-10s %9s %14s %12s %9s %16s %9s %18s\n", "client", "calls/s", "CPU s/1k calls", "allocs/call", "B/call", "conns opened/open", "peak RSS", "hub CPU s/1k calls")
	for _, r := range []struct {
		name string
		p    phase
	}{{"reference", ref1}, {"sdk", sdk1}} {
		fmt.Fprintf(w, "  %-10s %9.0f %14.4f %12.1f %9.0f %11d/%-5d %9s %18.4f\n", r.name, r.p.callsPerS(), r.p.cpuPer1k(), r.p.allocs(), r.p.bytes(), r.p.opened, r.p.open, mib(r.p.peak), r.p.hubCPU.Seconds()*1000/float64(r.p.calls))
	}
	slices.Sort(ratios)
	fmt.Fprintf(w, "  sdk/reference: CPU per call %.3f× (rounds: median %.3f, range %.3f–%.3f), calls/s %.3f×, allocs per call %+.1f, bytes per call %+.0f\n\n",
		sdk1.cpuPer1k()/ref1.cpuPer1k(), ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1], sdk1.callsPerS()/ref1.callsPerS(), sdk1.allocs()-ref1.allocs(), sdk1.bytes()-ref1.bytes())
	return nil
}

// sweep fans a method out over growing numbers of streamed targets and
// reports the client's memory for each.
func (e *env) sweep() error {
	w := e.out
	fmt.Fprintf(w, "fan-out over streamed targets, concurrency %d, through the SDK (targets cycle over the %d devices)\n", e.cfg.sweepC, len(e.devices))
	fmt.Fprintf(w, "  %10s %9s %10s %14s %12s %10s %14s %11s %6s\n", "targets", "wall", "calls/s", "CPU s/1k calls", "allocs/call", "peak RSS", "max live heap", "goroutines", "conns")
	for _, n := range e.cfg.sweep {
		t, dc := e.sdkTransport()
		client, err := service.NewClientFromConnectionString(e.hub.ConnectionString, &iothub.ClientOptions{Endpoint: e.hub.URL, Transport: t})
		if err != nil {
			return err
		}
		debug.FreeOSMemory()
		loadtest.ResetPeakRSS()
		s := loadtest.StartSampler(20 * time.Millisecond)
		before := loadtest.Snapshot()
		run, err := client.StartFanOut(context.Background(), e.targets(n), service.MethodParams[any]{Name: "reboot", Payload: payload, TimeoutInSeconds: 30}, &service.FanOutOptions{Concurrency: e.cfg.sweepC})
		if err != nil {
			return err
		}
		got, bad := 0, 0
		var firstBad error
		for r := range run.Results() {
			got++
			if r.Outcome != service.OutcomeSucceeded {
				bad++
				if firstBad == nil {
					firstBad = r.Err
				}
			}
		}
		d := loadtest.Snapshot().Sub(before)
		live, gor := s.Stop()
		peak := loadtest.PeakRSS()
		t.CloseIdleConnections()
		if got != n || bad > 0 {
			return fmt.Errorf("fan-out of %d: %d results, %d not succeeded (first: %v)", n, got, bad, firstBad)
		}
		p := phase{calls: n, d: d}
		fmt.Fprintf(w, "  %10d %9s %10.0f %14.4f %12.1f %10s %14s %11d %6d\n", n, d.Wall.Round(10*time.Millisecond), p.callsPerS(), p.cpuPer1k(), p.allocs(), mib(peak), mib(live), gor, dc.Opened())
	}
	fmt.Fprintln(w)
	return nil
}

// targets streams n targets, generated as they are read.
func (e *env) targets(n int) iter.Seq2[service.Target, error] {
	return func(yield func(service.Target, error) bool) {
		for i := range n {
			if !yield(service.Target{DeviceID: e.devices[i%len(e.devices)]}, nil) {
				return
			}
		}
	}
}

func mib(b uint64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func (e *env) startCPUProfile() error {
	f, err := os.Create(e.cfg.cpuProfile)
	if err != nil {
		return err
	}
	return pprof.StartCPUProfile(f)
}
