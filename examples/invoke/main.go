// Command invoke calls one direct method on an IoT Hub device or module and
// prints the device's answer.
//
//	go run ./examples/invoke -device ID [-module MID] -method NAME [-payload JSON] [-timeout S] [-connect-timeout S]
//
// Credentials: -connection-string, or $IOTHUB_CONNECTION_STRING (a shared
// access policy with ServiceConnect, such as "service"); or -hub HOST to
// sign in with Microsoft Entra ID through azidentity's
// DefaultAzureCredential. With none, it starts the embedded simulated hub
// with a few devices, and says so on stderr.
//
// On success it prints {"status":N,"payload":…} on stdout and exits 0,
// whatever status the device answered with. A hub error prints the code,
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
	"os"
	"os/signal"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/examples/internal/simhub"
	"github.com/hubkit/iothub/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes, shared by the example programs.
const (
	exitOK       = cli.ExitOK
	exitHubError = cli.ExitFailed
	exitUsage    = cli.ExitUsage
)

// errFlagsReported stands for a flag error the flag package has already
// printed.
var errFlagsReported = errors.New("bad flags")

type config struct {
	device, module, method, payload string
	timeout, connectTimeout         int
	connectionString, hub           string
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("invoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.device, "device", "", "device ID (required)")
	fs.StringVar(&c.module, "module", "", "module ID, to invoke a module method")
	fs.StringVar(&c.method, "method", "", "method name (required)")
	fs.StringVar(&c.payload, "payload", "null", "JSON payload")
	fs.IntVar(&c.timeout, "timeout", 0, "response timeout in seconds: 0 for the hub default (30), or 5 to 300")
	fs.IntVar(&c.connectTimeout, "connect-timeout", 0, "seconds the hub waits for an offline device to connect, 0 to 300")
	fs.StringVar(&c.connectionString, "connection-string", "", "service connection string (default $IOTHUB_CONNECTION_STRING)")
	fs.StringVar(&c.hub, "hub", "", "hub host name, to sign in with Microsoft Entra ID instead of a connection string")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: invoke -device ID [-module MID] -method NAME [-payload JSON] [-timeout S] [-connect-timeout S]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		// The flag package has printed the problem and the usage.
		return c, errFlagsReported
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.device == "" {
		return c, errors.New("-device is required")
	}
	if c.method == "" {
		return c, errors.New("-method is required")
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
	if c.connectionString == "" && c.hub == "" {
		c.connectionString = getenv("IOTHUB_CONNECTION_STRING")
	}
	if c.connectionString != "" && c.hub != "" {
		return c, errors.New("give either -connection-string or -hub, not both")
	}
	return c, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		if !errors.Is(err, errFlagsReported) {
			fmt.Fprintln(stderr, "invoke:", err)
		}
		return exitUsage
	}

	var client *service.Client
	switch {
	case cfg.connectionString != "":
		client, err = service.NewClientFromConnectionString(cfg.connectionString, nil)
	case cfg.hub != "":
		cred, cerr := azidentity.NewDefaultAzureCredential(nil)
		if cerr != nil {
			fmt.Fprintln(stderr, "invoke: Microsoft Entra credential:", cerr)
			return exitUsage
		}
		client, err = service.NewClient(cfg.hub, cred, nil)
	default:
		sim, serr := simhub.Start(nil)
		if serr != nil {
			fmt.Fprintln(stderr, "invoke: start the embedded simulated hub:", serr)
			return exitHubError
		}
		defer sim.Close()
		fmt.Fprintf(stderr, "invoke: no credentials given; using the embedded simulated hub %s with devices %s\n",
			sim.HostName(), strings.Join(sim.DeviceIDs(), ", "))
		client, err = sim.Client()
	}
	if err != nil {
		fmt.Fprintln(stderr, "invoke:", err)
		return exitUsage
	}

	params := service.MethodParams[any]{
		Name:                    cfg.method,
		Payload:                 json.RawMessage(cfg.payload),
		TimeoutInSeconds:        cfg.timeout,
		ConnectTimeoutInSeconds: cfg.connectTimeout,
	}
	var res service.MethodResult[json.RawMessage]
	if cfg.module != "" {
		res, err = client.InvokeModuleMethod(ctx, cfg.device, cfg.module, params, nil)
	} else {
		res, err = client.InvokeDeviceMethod(ctx, cfg.device, params, nil)
	}
	if err != nil {
		return report(stderr, err)
	}
	// Print the device's payload as it sent it (compacted), without
	// json.Marshal's HTML escaping of <, > and &.
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(struct {
		Status  int             `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}{res.Status, res.Payload}); err != nil {
		fmt.Fprintln(stderr, "invoke:", err)
		return exitHubError
	}
	if _, err := out.WriteTo(stdout); err != nil {
		fmt.Fprintf(stderr, "invoke: the method ran (status %d), but its answer could not be printed: %v\n", res.Status, err)
		return exitHubError
	}
	return exitOK
}

// report prints a failed invocation, says whether the method may have
// run, and returns the exit code.
func report(stderr io.Writer, err error) int {
	code := cli.PrintError(stderr, "invoke", err)
	if code == cli.ExitUsage {
		return code
	}
	if iothub.MayHaveRun(err) {
		fmt.Fprintln(stderr, "invoke: the method may have run on the device; check before you repeat it")
	} else {
		fmt.Fprintln(stderr, "invoke: the method did not run")
	}
	return code
}
