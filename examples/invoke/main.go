// Command invoke calls one direct method on an IoT Hub device or module, or
// one Plug and Play command on a device, and prints the device's answer.
//
//	go run ./examples/invoke -device ID [-module MID] -method NAME [-payload JSON] [-timeout S] [-connect-timeout S]
//	go run ./examples/invoke -device ID [-component NAME] -command NAME [-payload JSON] [-timeout S] [-connect-timeout S]
//
// -command invokes a command of the device's root component, or of
// -component (POST /digitaltwins/{id}/…/commands/{name}); -method and
// -command are exclusive, and commands are not offered on modules. The
// embedded hub's Plug and Play device is sim-pnp-1: try -device sim-pnp-1
// -component thermostat1 -command getMaxMinReport.
//
// Credentials: -connection-string, or $IOTHUB_CONNECTION_STRING (a shared
// access policy with ServiceConnect, such as "service"); or -hub HOST to
// sign in with Microsoft Entra ID through azidentity's
// DefaultAzureCredential. With none, it starts the embedded simulated hub
// with a few devices, and says so on stderr.
//
// On success it prints {"status":N,"payload":…} on stdout and exits 0,
// whatever status the device answered with, for a method and a command
// alike. A hub error prints the code,
// its name and the tracking ID on stderr and exits 1. Bad flags or input
// exit 2 without sending anything.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/examples/internal/otelsetup"
	"github.com/hubkit/iothub/service"
)

func main() { cli.Main(run) }

type config struct {
	device, module, method string
	component, command     string
	call                   cli.MethodFlags
	creds                  cli.Credentials
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("invoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.device, "device", "", "device ID (required)")
	fs.StringVar(&c.module, "module", "", "module ID, to invoke a module method")
	fs.StringVar(&c.method, "method", "", "method name (this or -command is required)")
	fs.StringVar(&c.command, "command", "", "Plug and Play command name, instead of -method")
	fs.StringVar(&c.component, "component", "", "the component of -command; empty for a root command")
	c.call.Register(fs)
	c.creds.Register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: invoke -device ID [-module MID] -method NAME [-payload JSON] [-timeout S] [-connect-timeout S]")
		fmt.Fprintln(stderr, "       invoke -device ID [-component NAME] -command NAME [-payload JSON] [-timeout S] [-connect-timeout S]")
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args); err != nil {
		return c, err
	}
	if c.device == "" {
		return c, errors.New("-device is required")
	}
	switch {
	case c.method != "" && c.command != "":
		return c, errors.New("-method and -command are exclusive: give one")
	case c.method == "" && c.command == "":
		return c, errors.New("-method is required (or -command for a Plug and Play command)")
	case c.command != "" && c.module != "":
		return c, errors.New("-module cannot be used with -command: Plug and Play commands are invoked on devices")
	case c.component != "" && c.command == "":
		return c, errors.New("-component needs -command")
	}
	if err := c.call.Check(); err != nil {
		return c, err
	}
	return c, c.creds.Resolve(getenv)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	msg := cli.Stderr{Prog: "invoke", W: stderr}
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return msg.Usage(err)
	}
	var params service.MethodParams[any]
	if cfg.command == "" {
		if params, err = cfg.call.Params(cfg.method); err != nil {
			return msg.Usage(err)
		}
	}

	tel, err := otelsetup.Start(ctx, "invoke", getenv)
	if err != nil {
		return msg.Usage(err)
	}
	// Flushed on every way out, after an interrupt too (ctx is then
	// cancelled, so the flush gets a bound of its own).
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			msg.Printf("OpenTelemetry export: %v\n", err)
		}
	}()

	if cfg.command != "" {
		return runCommand(ctx, cfg, msg, stdout, tel.Apply)
	}
	client, closeHub, code := cfg.creds.OpenServiceClient(msg, tel.Apply)
	if client == nil {
		return code
	}
	defer closeHub()

	var res service.MethodResult[json.RawMessage]
	if cfg.module != "" {
		res, err = client.InvokeModuleMethod(ctx, cfg.device, cfg.module, params, nil)
	} else {
		res, err = client.InvokeDeviceMethod(ctx, cfg.device, params, nil)
	}
	if err != nil {
		return report(msg, "method", err)
	}
	return printResult(msg, stdout, res.Status, res.Payload)
}

// runCommand invokes a Plug and Play command and prints the answer as
// run prints a method's.
func runCommand(ctx context.Context, cfg config, msg cli.Stderr, stdout io.Writer, with func(*iothub.ClientOptions)) int {
	params, err := cfg.call.CommandParams(cfg.component, cfg.command)
	if err != nil {
		return msg.Usage(err)
	}
	client, closeHub, code := cfg.creds.OpenServiceClient(msg, with)
	if client == nil {
		return code
	}
	defer closeHub()
	res, err := client.InvokeCommand(ctx, cfg.device, params, nil)
	if err != nil {
		return report(msg, "command", err)
	}
	return printResult(msg, stdout, res.Status, res.Payload)
}

// printResult prints the device's answer on stdout: its status and its
// payload as it sent it (compacted), without json.Marshal's HTML escaping
// of <, > and &.
func printResult(msg cli.Stderr, stdout io.Writer, status int, payload json.RawMessage) int {
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(struct {
		Status  int             `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}{status, payload}); err != nil {
		msg.Println(err)
		return cli.ExitFailed
	}
	if _, err := out.WriteTo(stdout); err != nil {
		msg.Printf("it ran (status %d), but its answer could not be printed: %v\n", status, err)
		return cli.ExitFailed
	}
	return cli.ExitOK
}

// report prints a failed invocation, says whether the method (or command:
// what) may have run, and returns the exit code.
func report(msg cli.Stderr, what string, err error) int {
	code := msg.Fail("", err)
	if code == cli.ExitUsage {
		return code
	}
	if iothub.MayHaveRun(err) {
		msg.Println("the " + what + " may have run on the device; check before you repeat it")
	} else {
		msg.Println("the " + what + " did not run")
	}
	return code
}
