// Command fleet-reboot invokes one direct method ("reboot" by default) on
// every device of a query or a list, with bounded concurrency, a report of
// every target's outcome, and a way to resume an interrupted run.
//
//	go run ./examples/fleet-reboot [-query SQL | -devices ID,ID,… | -devices @FILE]
//	    [-module ID] [-method NAME] [-payload JSON] [-timeout S] [-connect-timeout S]
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
// result arrives (results that arrive together are written together, and
// every line is in the file before the program waits for another call, so
// a killed run loses only answers still queued in memory); -resume reads
// FILE, skips the targets whose last line
// says succeeded or unknown (the method may have run: check those devices,
// then add -retry-unknown to invoke them again), and appends. A target is
// never invoked twice in a run.
//
// -module ID invokes the method on that module of each selected device
// instead of the device itself: to restart a module on every IoT Edge
// device,
//
//	-query "SELECT * FROM devices WHERE capabilities.iotEdge = true" -module '$edgeAgent'
//	    -method RestartModule -payload '{"schemaVersion":"1.0","id":"tempSensor"}'
//
// The report's lines then name the module too, and -resume skips by device
// and module. An agent's failure (status 400 or 500 in its answer) is the
// device's answer: device-error.
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
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/examples/internal/otelsetup"
	"github.com/hubkit/iothub/examples/internal/simhub"
	"github.com/hubkit/iothub/registry"
	"github.com/hubkit/iothub/service"
)

// name is the program's name, the prefix of its messages.
const name = "fleet-reboot"

func main() {
	ctx, abort, stop := interrupts()
	code := runWith(ctx, os.Args[1:], deps{
		getenv: os.Getenv, stdout: os.Stdout, stderr: os.Stderr,
		abort: abort, terminal: isTerminal(os.Stderr),
	})
	stop()
	os.Exit(code)
}

// interrupts returns a context cancelled by the first interrupt (Ctrl-C)
// and a channel closed by the second; stop stops listening.
func interrupts() (ctx context.Context, abort <-chan struct{}, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt)
	go func() {
		<-sigs
		cancel()
		<-sigs
		close(second)
	}()
	return ctx, second, func() { signal.Stop(sigs) }
}

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// deps are what main and the tests give a run beyond its arguments.
type deps struct {
	// getenv reads the environment ($IOTHUB_CONNECTION_STRING).
	getenv func(string) string
	// stdout gets the targets of -dry-run; stderr everything else.
	stdout, stderr io.Writer
	// abort, when closed, abandons the calls in flight (the second
	// interrupt); cancelling ctx is the first.
	abort <-chan struct{}
	// terminal makes the progress a live one-line bar.
	terminal bool
	// sim, when set, is the simulated hub to use without credentials,
	// instead of starting one; the run does not close it.
	sim *simhub.Hub
	// progressEvery is the period of plain progress lines; 0 means 2 s.
	progressEvery time.Duration
}

// fleetRun is one run of the program, from its flags to its exit code.
// Each step has a file of its own: the flags (config.go), the clients
// (connect.go), the targets and the dry run (targets.go), the fan-out from
// here (client.go) or an IoT Hub job (job.go), the report (report.go), the
// progress and summary (progress.go), and the exit code (exit.go).
type fleetRun struct {
	cfg     config
	d       deps
	msg     cli.Stderr                // prints "fleet-reboot: …" on stderr
	params  service.MethodParams[any] // the call, validated by the SDK
	targets targets
	svc     *service.Client      // methods and jobs
	reg     *registry.Client     // the target query and its count
	tel     *otelsetup.Telemetry // OTLP export, when the environment asks for it
}

// display is where the run shows its progress.
func (r *fleetRun) display() display {
	return display{w: r.d.stderr, terminal: r.d.terminal, every: r.d.progressEvery}
}

// runWith runs the program with args and returns its exit code: it checks
// the flags and reads its files before it opens any client, then runs in
// one of three ways (dry run, client fan-out, IoT Hub job).
func runWith(ctx context.Context, args []string, d deps) int {
	r := &fleetRun{d: d, msg: cli.Stderr{Prog: name, W: d.stderr}}
	var err error
	if r.cfg, err = parseFlags(args, d.getenv, d.stderr); err != nil {
		return r.msg.Usage(err)
	}
	if r.params, err = r.cfg.call.Params(r.cfg.method); err != nil {
		return r.msg.Usage(err)
	}
	if r.targets, err = loadTargets(r.cfg, r.msg); err != nil {
		return exit(r.msg, err)
	}
	if r.tel, err = otelsetup.Start(ctx, name, d.getenv); err != nil {
		return r.msg.Usage(err)
	}
	// Flushed on every way out, after an interrupt too (ctx is then
	// cancelled, so the flush gets a bound of its own).
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := r.tel.Shutdown(sctx); err != nil {
			r.msg.Printf("OpenTelemetry export: %v\n", err)
		}
	}()
	if r.cfg.mode == "job" && (r.cfg.rateSet || r.cfg.concSet) {
		r.msg.Println("-rate and -concurrency do not apply to -mode job: IoT Hub paces the job itself")
	}
	conn, err := r.connect()
	if err != nil {
		return exit(r.msg, err)
	}
	defer conn.Close()

	switch {
	case r.cfg.dryRun:
		return r.dryRun(ctx)
	case r.cfg.mode == "job":
		return r.runJob(ctx)
	}
	return r.runClient(ctx)
}
