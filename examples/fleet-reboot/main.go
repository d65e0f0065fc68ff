// Command fleet-reboot invokes one direct method ("reboot" by default) on
// every device of a query or a list, with bounded concurrency, a report of
// every target's outcome, and a way to resume an interrupted run.
//
//	go run ./examples/fleet-reboot [-query SQL | -devices ID,ID,… | -devices @FILE]
//	    [-method NAME] [-payload JSON] [-timeout S] [-connect-timeout S]
//	    [-concurrency N] [-rate R] [-mode client|job]
//	    [-report FILE [-resume]] [-dry-run]
//
// Credentials: -connection-string, or $IOTHUB_CONNECTION_STRING (a policy
// with ServiceConnect, and RegistryRead for -query, such as iothubowner);
// or -hub HOST to sign in with Microsoft Entra ID through azidentity's
// DefaultAzureCredential. With none, it starts the embedded simulated hub
// with -simulate N fleet devices, some of them offline, slow, failing or
// losing their responses, and says so on stderr.
//
// Every target ends with one outcome: succeeded (the device answered 2xx),
// device-error (it answered another status), not-delivered (IoT Hub
// guarantees the method did not reach it) or unknown (it may have run: the
// answer was lost). -report FILE writes one JSON line per target as its
// result arrives; -resume reads FILE, skips the targets whose last line
// says succeeded or unknown (the method may have run: check those devices,
// then add -retry-unknown to invoke them again), and appends. A target is
// never invoked twice in a run.
//
// The first interrupt (Ctrl-C) stops starting calls and waits for the calls
// in flight; the second abandons them (they are reported unknown).
//
// Exit codes: 0 when every target succeeded (in this run, or before it for
// a resumed run), 1 when any did not, a resumed run skipped targets left
// unknown, or the run was interrupted; 2 for bad flags or input, with no
// request sent.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/examples/internal/simhub"
	"github.com/hubkit/iothub/registry"
	"github.com/hubkit/iothub/service"
)

func main() {
	ctx, stop := context.WithCancel(context.Background())
	abort := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt)
	go func() {
		<-sigs
		stop()
		<-sigs
		close(abort)
	}()
	code := runWith(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, deps{abort: abort, terminal: isTerminal(os.Stderr)})
	signal.Stop(sigs)
	os.Exit(code)
}

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Exit codes, shared by the example programs.
const (
	exitOK     = cli.ExitOK
	exitFailed = cli.ExitFailed
	exitUsage  = cli.ExitUsage
)

const name = "fleet-reboot"

// errFlagsReported stands for a flag error the flag package has already
// printed.
var errFlagsReported = errors.New("bad flags")

type config struct {
	query, devices                string
	method, payload               string
	timeout, connectTimeout       int
	concurrency                   int
	rate                          float64
	mode                          string
	report                        string
	resume, dryRun, retryUnknown  bool
	connectionString, hub         string
	simulate                      int
	simulateSet, rateSet, concSet bool
}

const defaultQuery = "SELECT * FROM devices"

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.query, "query", defaultQuery, "registry query selecting the targets (SELECT * FROM devices [WHERE …], or FROM devices.modules)")
	fs.StringVar(&c.devices, "devices", "", "comma-separated device ids, or @FILE with one id per line (# comments)")
	fs.StringVar(&c.method, "method", "reboot", "method name")
	fs.StringVar(&c.payload, "payload", "null", "JSON payload")
	fs.IntVar(&c.timeout, "timeout", 0, "response timeout in seconds: 0 for the hub default (30), or 5 to 300")
	fs.IntVar(&c.connectTimeout, "connect-timeout", 0, "seconds the hub waits for an offline device to connect, 0 to 300")
	fs.IntVar(&c.concurrency, "concurrency", 16, "most calls in flight at once (client mode)")
	fs.Float64Var(&c.rate, "rate", 0, "most calls started per second, 0 for no client limit; either way it backs off when throttled (client mode)")
	fs.StringVar(&c.mode, "mode", "client", "client: invoke from here; job: schedule an IoT Hub job")
	fs.StringVar(&c.report, "report", "", "write one JSON line per target to FILE as results arrive")
	fs.BoolVar(&c.resume, "resume", false, "continue the run of -report FILE: skip targets that succeeded or may have run, append")
	fs.BoolVar(&c.retryUnknown, "retry-unknown", false, "with -resume, invoke again the targets whose outcome was unknown (they may have run)")
	fs.BoolVar(&c.dryRun, "dry-run", false, "list the targets on stdout and invoke nothing")
	fs.StringVar(&c.connectionString, "connection-string", "", "connection string (default $IOTHUB_CONNECTION_STRING)")
	fs.StringVar(&c.hub, "hub", "", "hub host name, to sign in with Microsoft Entra ID instead of a connection string")
	fs.IntVar(&c.simulate, "simulate", 300, "fleet devices of the embedded simulated hub (without credentials)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fleet-reboot [-query SQL | -devices IDS|@FILE] [-method NAME] [-payload JSON] [-concurrency N] [-rate R] [-mode client|job] [-report FILE [-resume]] [-dry-run]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, errFlagsReported
	}
	querySet := false
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "simulate":
			c.simulateSet = true
		case "rate":
			c.rateSet = true
		case "concurrency":
			c.concSet = true
		case "query":
			querySet = true
		}
	})
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case querySet && c.devices != "":
		return c, errors.New("give either -query or -devices, not both")
	case c.method == "":
		return c, errors.New("-method must not be empty")
	case c.concurrency <= 0:
		return c, fmt.Errorf("-concurrency must be 1 or more; got %d", c.concurrency)
	case c.rate < 0 || c.rate != c.rate:
		return c, fmt.Errorf("-rate must be 0 (no limit) or a positive number; got %v", c.rate)
	case c.mode != "client" && c.mode != "job":
		return c, fmt.Errorf("-mode must be client or job; got %q", c.mode)
	case c.resume && c.report == "":
		return c, errors.New("-resume needs -report FILE")
	case c.retryUnknown && !c.resume:
		return c, errors.New("-retry-unknown goes with -resume")
	case c.simulate < 0:
		return c, fmt.Errorf("-simulate must be 0 or more; got %d", c.simulate)
	}
	if t := c.timeout; t != 0 && (t < service.MinTimeoutInSeconds || t > service.MaxTimeoutInSeconds) {
		return c, fmt.Errorf("-timeout must be 0 (the hub default, %d s) or within [%d, %d]; got %d",
			service.DefaultTimeoutInSeconds, service.MinTimeoutInSeconds, service.MaxTimeoutInSeconds, t)
	}
	if t := c.connectTimeout; t < 0 || t > service.MaxConnectTimeoutInSeconds {
		return c, fmt.Errorf("-connect-timeout must be within [0, %d]; got %d", service.MaxConnectTimeoutInSeconds, t)
	}
	if !json.Valid([]byte(c.payload)) {
		return c, fmt.Errorf("-payload is not valid JSON: %s", c.payload)
	}
	if c.devices == "" {
		if _, ok := countQuery(c.query); !ok {
			return c, fmt.Errorf("-query must be SELECT * FROM devices [WHERE …] (or FROM devices.modules); got %q", c.query)
		}
	}
	if c.connectionString == "" && c.hub == "" {
		c.connectionString = getenv("IOTHUB_CONNECTION_STRING")
	}
	if c.connectionString != "" && c.hub != "" {
		return c, errors.New("give either -connection-string or -hub, not both")
	}
	if c.simulateSet && (c.connectionString != "" || c.hub != "") {
		return c, errors.New("-simulate is for the embedded simulated hub, used only without credentials")
	}
	return c, nil
}

// queryRE splits a twin query into its collection and the rest (WHERE …).
var queryRE = regexp.MustCompile(`(?is)^\s*SELECT\s+\*\s+FROM\s+(devices(?:\.modules)?)(\s.*)?$`)

// countQuery returns the query counting the targets of q.
func countQuery(q string) (string, bool) {
	m := queryRE.FindStringSubmatch(q)
	if m == nil {
		return "", false
	}
	return "SELECT COUNT() AS n FROM " + m[1] + m[2], true
}

// whereClause returns the condition of q's WHERE clause, "" when it has
// none, and whether q is over devices (not modules).
func whereClause(q string) (cond string, devices bool) {
	m := queryRE.FindStringSubmatch(q)
	if m == nil {
		return "", false
	}
	rest := strings.TrimSpace(m[2])
	if len(rest) >= 5 && strings.EqualFold(rest[:5], "WHERE") {
		cond = strings.TrimSpace(rest[5:])
	}
	return cond, strings.EqualFold(m[1], "devices")
}

// deps are what main and the tests give run beyond its arguments.
type deps struct {
	// abort, when closed, abandons the calls in flight (the second
	// interrupt); cancelling ctx is the first.
	abort <-chan struct{}
	// terminal makes the progress a live one-line bar.
	terminal bool
	// sim, when set, is the simulated hub to use without credentials,
	// instead of starting one; run does not close it.
	sim *simhub.Hub
	// progressEvery is the period of plain progress lines; 0 means 2 s.
	progressEvery time.Duration
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return runWith(ctx, args, getenv, stdout, stderr, deps{})
}

func runWith(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, d deps) int {
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		if !errors.Is(err, errFlagsReported) {
			fmt.Fprintln(stderr, name+":", err)
		}
		return exitUsage
	}

	// Everything read from files is read before any client exists.
	var list []string
	if cfg.devices != "" {
		list, err = parseDevices(cfg.devices)
		if err != nil {
			fmt.Fprintln(stderr, name+":", err)
			return exitUsage
		}
	}
	var done map[service.Target]service.Outcome
	if cfg.resume {
		var warn []string
		done, warn, err = readReport(cfg.report, cfg.retryUnknown)
		if err != nil {
			fmt.Fprintln(stderr, name+": -resume:", err)
			return exitUsage
		}
		for _, w := range warn {
			fmt.Fprintln(stderr, name+": -resume:", w)
		}
	} else if cfg.report != "" && !cfg.dryRun {
		if fi, err := os.Stat(cfg.report); err == nil && fi.Size() > 0 {
			fmt.Fprintf(stderr, "%s: -report %s exists; add -resume to continue that run, or remove it\n", name, cfg.report)
			return exitUsage
		}
	}
	if cfg.mode == "job" && (cfg.rateSet || cfg.concSet) {
		fmt.Fprintln(stderr, name+": -rate and -concurrency do not apply to -mode job: IoT Hub paces the job itself")
	}

	var (
		client *service.Client
		reg    *registry.Client
	)
	switch {
	case cfg.connectionString != "":
		client, err = service.NewClientFromConnectionString(cfg.connectionString, nil)
		if err == nil {
			reg, err = registry.NewClientFromConnectionString(cfg.connectionString, nil)
		}
	case cfg.hub != "":
		cred, cerr := azidentity.NewDefaultAzureCredential(nil)
		if cerr != nil {
			fmt.Fprintln(stderr, name+": Microsoft Entra credential:", cerr)
			return exitUsage
		}
		client, err = service.NewClient(cfg.hub, cred, nil)
		if err == nil {
			reg, err = registry.NewClient(cfg.hub, cred, nil)
		}
	default:
		sim := d.sim
		if sim == nil {
			sim, err = simhub.Start(&simhub.Options{Fleet: cfg.simulate, Troubled: true})
			if err != nil {
				fmt.Fprintln(stderr, name+": start the embedded simulated hub:", err)
				return exitFailed
			}
			defer sim.Close()
		}
		fmt.Fprintf(stderr, "%s: no credentials given; using the embedded simulated hub %s with %d devices, "+
			"some offline, some slow, some failing and some losing their response\n",
			name, sim.HostName(), len(sim.DeviceIDs()))
		if cfg.mode == "job" {
			client, err = sim.OwnerClient()
		} else {
			client, err = sim.Client()
		}
		if err == nil {
			reg, err = sim.RegistryClient()
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, name+":", err)
		return exitUsage
	}

	params := service.MethodParams[any]{
		Name:                    cfg.method,
		Payload:                 json.RawMessage(cfg.payload),
		TimeoutInSeconds:        cfg.timeout,
		ConnectTimeoutInSeconds: cfg.connectTimeout,
	}
	// Validate the parameters without sending anything: a fan-out over no
	// target checks them and ends at once.
	f, err := client.StartFanOut(ctx, service.Devices(), params, nil)
	if err != nil {
		fmt.Fprintln(stderr, name+":", err)
		return exitUsage
	}
	for range f.Results() {
	}

	var targets iter.Seq2[service.Target, error]
	total := -1 // unknown
	if list != nil {
		seen := make(map[string]bool)
		list = slices.DeleteFunc(list, func(id string) bool {
			dup := seen[id]
			seen[id] = true
			return dup
		})
		targets = service.Devices(list...)
		total = len(list)
	} else {
		targets = service.TargetsOf(reg.QueryTwins(ctx, cfg.query, nil))
	}
	targets = dedupe(targets)

	if cfg.dryRun {
		return dryRun(ctx, targets, done, stdout, stderr)
	}
	if cfg.mode == "job" {
		return runJob(ctx, cfg, d, client, reg, list, done, params, stderr)
	}
	return runClient(ctx, cfg, d, client, reg, targets, total, done, params, stderr)
}

// dedupe drops repeated targets, so that none is invoked twice.
func dedupe(targets iter.Seq2[service.Target, error]) iter.Seq2[service.Target, error] {
	return func(yield func(service.Target, error) bool) {
		seen := make(map[service.Target]bool)
		for t, err := range targets {
			if err == nil {
				if seen[t] {
					continue
				}
				seen[t] = true
			}
			if !yield(t, err) {
				return
			}
		}
	}
}

// skipDone drops the targets in done, reporting each with its earlier
// outcome.
func skipDone(targets iter.Seq2[service.Target, error], done map[service.Target]service.Outcome, skipped func(service.Outcome)) iter.Seq2[service.Target, error] {
	return func(yield func(service.Target, error) bool) {
		for t, err := range targets {
			if o, ok := done[t]; ok && err == nil {
				skipped(o)
				continue
			}
			if !yield(t, err) {
				return
			}
		}
	}
}

func dryRun(ctx context.Context, targets iter.Seq2[service.Target, error], done map[service.Target]service.Outcome, stdout, stderr io.Writer) int {
	n, skipped := 0, map[service.Outcome]int{}
	for t, err := range skipDone(targets, done, func(o service.Outcome) { skipped[o]++ }) {
		if err != nil {
			printErr(stderr, "list the targets", err)
			return exitFailed
		}
		if _, err := fmt.Fprintln(stdout, targetName(t)); err != nil {
			fmt.Fprintln(stderr, name+":", err)
			return exitFailed
		}
		n++
	}
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "%s: dry run: interrupted\n", name)
		return exitFailed
	}
	fmt.Fprintf(stderr, "%s: dry run: %d targets would be invoked", name, n)
	if s, u := skipped[service.OutcomeSucceeded], skipped[service.OutcomeUnknown]; s+u > 0 {
		fmt.Fprintf(stderr, " (skipped: %d succeeded before, %d may have run)", s, u)
	}
	fmt.Fprintln(stderr)
	return exitOK
}

// targetName is "device" or "device/module".
func targetName(t service.Target) string {
	if t.ModuleID != "" {
		return t.DeviceID + "/" + t.ModuleID
	}
	return t.DeviceID
}

// printErr prints a failure with the hub's code and tracking ID.
func printErr(stderr io.Writer, what string, err error) {
	if he, ok := errors.AsType[*iothub.Error](err); ok {
		fmt.Fprintf(stderr, "%s: %s: IoT Hub error %d %s (HTTP %d): %s\n", name, what, he.Code, he.CodeName, he.StatusCode, he.Message)
		if he.TrackingID != "" {
			fmt.Fprintf(stderr, "%s: tracking ID %s\n", name, he.TrackingID)
		}
		return
	}
	fmt.Fprintf(stderr, "%s: %s: %v\n", name, what, err)
}
