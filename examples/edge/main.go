// Command edge manages an IoT Edge device through its runtime's built-in
// methods: it pings the agent, restarts a module, prints a module's logs
// decoded, and uploads logs to a blob container.
//
//	go run ./examples/edge -device ID ping
//	go run ./examples/edge -device ID restart MODULE
//	go run ./examples/edge -device ID logs MODULE [-tail N] [-since D] [-until D] [-level N]
//	go run ./examples/edge -device ID upload-logs MODULE -sas-url URL [-wait]
//
// MODULE is a module name of the deployment, such as tempSensor (for logs
// and upload-logs, a regular expression on those names: ".*" for all).
// -since and -until take what the agent reads: a duration before now
// ("90m", "1d"), an RFC 3339 time or Unix seconds.
//
// Credentials: -connection-string, or $IOTHUB_CONNECTION_STRING (a shared
// access policy with ServiceConnect, such as "service"); or -hub HOST to
// sign in with Microsoft Entra ID. With none, it starts the embedded
// simulated hub, whose sim-edge-1 runs the modules tempSensor and
// filterModule, and says so on stderr.
//
// Exit codes: 0 when the command succeeded; 1 for a hub error (code, name
// and tracking ID on stderr) or the agent's failure (its status and
// message), or an upload that failed or was lost; 2 for bad flags or input
// (nothing is sent).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/edge"
	"github.com/hubkit/iothub/examples/internal/cli"
)

func main() { cli.Main(run) }

const usage = `usage: edge [flags] -device ID COMMAND [ARGS]
commands:
  ping
  restart MODULE
  logs MODULE [-tail N] [-since D] [-until D] [-level N]
  upload-logs MODULE -sas-url URL [-wait]`

// config is the parsed command line.
type config struct {
	device  string
	timeout int
	creds   cli.Credentials

	command, module string
	tail, level     int
	since, until    string
	sasURL          string
	wait            bool
}

// subFlags are the flags each command takes.
var subFlags = map[string][]string{
	"ping":        nil,
	"restart":     nil,
	"logs":        {"tail", "since", "until", "level"},
	"upload-logs": {"sas-url", "wait", "tail", "since", "until", "level"},
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	c := config{level: -1}
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.device, "device", "", "Edge device ID (required)")
	fs.IntVar(&c.timeout, "timeout", 0, "seconds the hub waits for the agent's answer: 5 to 300 (0: the hub's 30)")
	c.creds.Register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, cli.ErrFlagsReported
	}
	if fs.NArg() == 0 {
		return c, errors.New("a command is required: ping, restart, logs or upload-logs")
	}
	c.command = fs.Arg(0)
	allowed, ok := subFlags[c.command]
	if !ok {
		return c, fmt.Errorf("unknown command %q: want ping, restart, logs or upload-logs", c.command)
	}
	sub := flag.NewFlagSet("edge "+c.command, flag.ContinueOnError)
	sub.SetOutput(stderr)
	sub.IntVar(&c.tail, "tail", 0, "the last N lines only")
	sub.StringVar(&c.since, "since", "", `lines since: a duration before now ("90m"), an RFC 3339 time or Unix seconds`)
	sub.StringVar(&c.until, "until", "", "lines until, as -since")
	sub.IntVar(&c.level, "level", -1, "lines at or below this syslog severity, 0 to 7 (-1: all)")
	sub.StringVar(&c.sasURL, "sas-url", "", "blob container SAS URL (https, write permission)")
	sub.BoolVar(&c.wait, "wait", false, "wait for the upload to end")
	// Flags may come before or after MODULE.
	positional, err := cli.ParseCommand(sub, fs.Args()[1:], c.command, allowed)
	if err != nil {
		return c, err
	}
	wantArgs := 1
	if c.command == "ping" {
		wantArgs = 0
	}
	switch {
	case len(positional) < wantArgs:
		return c, fmt.Errorf("%s needs a MODULE", c.command)
	case len(positional) > wantArgs:
		return c, fmt.Errorf("%s: unexpected argument %q", c.command, positional[wantArgs])
	}
	if wantArgs == 1 {
		c.module = positional[0]
	}
	if c.device == "" {
		return c, errors.New("-device is required")
	}
	if c.command == "upload-logs" && c.sasURL == "" {
		return c, errors.New("upload-logs needs -sas-url")
	}
	return c, c.creds.Resolve(getenv)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	msg := cli.Stderr{Prog: "edge", W: stderr}
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return msg.Usage(err)
	}
	call := edge.CallOptions{TimeoutInSeconds: cfg.timeout}
	logsReq := edge.LogsRequest{Items: []edge.LogsItem{{ID: cfg.module, Filter: edge.LogFilter{Tail: cfg.tail, Since: cfg.since, Until: cfg.until}}}}
	if cfg.level >= 0 {
		logsReq.Items[0].Filter.LogLevel = &cfg.level
	}
	if cfg.level < -1 {
		logsReq.Items[0].Filter.LogLevel = &cfg.level // refused by the SDK, naming the field
	}

	svc, closeHub, code := cfg.creds.OpenServiceClient(msg, nil)
	if svc == nil {
		return code
	}
	defer closeHub()
	ec := edge.NewClient(svc)

	switch cfg.command {
	case "ping":
		if err := ec.Ping(ctx, cfg.device, &call); err != nil {
			return msg.Fail("ping", err)
		}
		fmt.Fprintf(stdout, "%s: the agent answered\n", cfg.device)
	case "restart":
		if err := ec.RestartModule(ctx, cfg.device, cfg.module, &edge.RestartOptions{CallOptions: call}); err != nil {
			code := msg.Fail("restart "+cfg.module, err)
			if _, agent := errors.AsType[*edge.AgentError](err); code == cli.ExitFailed && !agent {
				if iothub.MayHaveRun(err) {
					msg.Println("the restart may have happened; check the module before you repeat it")
				} else {
					msg.Println("the restart did not reach the device")
				}
			}
			return code
		}
		fmt.Fprintf(stdout, "%s: restarted %s\n", cfg.device, cfg.module)
	case "logs":
		logs, err := ec.GetModuleLogs(ctx, cfg.device, logsReq, &edge.LogsOptions{CallOptions: call})
		if err != nil {
			return msg.Fail("logs "+cfg.module, err)
		}
		for _, m := range logs {
			for _, l := range m.Lines {
				fmt.Fprintf(stdout, "%s %s <%d> %s %s\n", l.Timestamp.UTC().Format(time.RFC3339Nano), m.ModuleID, l.LogLevel, l.Stream, l.Text)
			}
		}
	case "upload-logs":
		task, err := ec.UploadModuleLogs(ctx, cfg.device, edge.UploadLogsRequest{LogsRequest: logsReq, SASURL: cfg.sasURL}, &call)
		if err != nil {
			return msg.Fail("upload-logs "+cfg.module, err)
		}
		fmt.Fprintf(stdout, "task %s %s\n", task.CorrelationID, task.Status)
		if !cfg.wait {
			return cli.ExitOK
		}
		task, err = ec.WaitTask(ctx, cfg.device, task.CorrelationID, &edge.WaitOptions{CallOptions: call, MinPollInterval: 500 * time.Millisecond, MaxPollInterval: 10 * time.Second})
		if err != nil {
			return msg.Fail("wait for task "+task.CorrelationID, err)
		}
		fmt.Fprintf(stdout, "task %s %s\n", task.CorrelationID, task.Status)
	}
	return cli.ExitOK
}
