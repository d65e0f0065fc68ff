// Command devices reads and writes an IoT hub's device registry and runs
// queries over its twins.
//
//	go run ./examples/devices [credentials] <command>
//
// Commands:
//
//	query [-page-size N] SQL   one JSON object per line, streamed page by page
//	get ID                     the device identity as JSON
//	twin ID                    the device twin as JSON
//	create ID [-edge]          register a device (an IoT Edge device with -edge)
//	delete ID [-etag ETAG]     remove a device (only if unchanged, with -etag)
//	stats                      registry and service statistics
//
// Credentials, before the command: -connection-string, or
// $IOTHUB_CONNECTION_STRING (a policy with the rights the command needs,
// such as iothubowner); or -hub HOST to sign in with Microsoft Entra ID.
// With none, it starts the embedded simulated hub (-simulate N devices on
// top of the named ones) and says so on stderr.
//
// Exit codes: 0 when the command succeeded, 1 for a hub error (code, name
// and tracking ID on stderr), 2 for bad flags or input, with no request sent.
package main

import (
	"bufio"
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
	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/examples/internal/simhub"
	"github.com/hubkit/iothub/internal/wire"
	"github.com/hubkit/iothub/registry"
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

const usage = `usage: devices [-connection-string CS | -hub HOST | -simulate N] <command>
commands:
  query [-page-size N] SQL
  get ID
  twin ID
  create ID [-edge]
  delete ID [-etag ETAG]
  stats`

// command is a parsed, validated command, ready to run.
type command func(ctx context.Context, c *registry.Client, svc *service.Client, out *json.Encoder, stdout *bufio.Writer) error

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("devices", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, usage) }
	connStr := fs.String("connection-string", "", "service connection string (default $IOTHUB_CONNECTION_STRING)")
	hub := fs.String("hub", "", "hub host name, to sign in with Microsoft Entra ID")
	simulate := fs.Int("simulate", 2500, "devices in the embedded simulated hub besides the named ones")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	cmd, err := parseCommand(fs.Args(), stderr)
	if err != nil {
		if !errors.Is(err, errReported) {
			fmt.Fprintln(stderr, "devices:", err)
			fmt.Fprintln(stderr, usage)
		}
		return exitUsage
	}
	if *connStr == "" && *hub == "" {
		*connStr = getenv("IOTHUB_CONNECTION_STRING")
	}
	if *simulate < 0 {
		fmt.Fprintln(stderr, "devices: -simulate must be 0 or more")
		return exitUsage
	}

	var client *registry.Client
	var svc *service.Client
	switch {
	case *connStr != "" && *hub != "":
		fmt.Fprintln(stderr, "devices: give either -connection-string or -hub, not both")
		return exitUsage
	case *connStr != "":
		client, err = registry.NewClientFromConnectionString(*connStr, nil)
		if err == nil {
			svc, err = service.NewClientFromConnectionString(*connStr, nil)
		}
	case *hub != "":
		cred, cerr := azidentity.NewDefaultAzureCredential(nil)
		if cerr != nil {
			fmt.Fprintln(stderr, "devices: Microsoft Entra credential:", cerr)
			return exitHubError
		}
		client, err = registry.NewClient(*hub, cred, nil)
		if err == nil {
			svc, err = service.NewClient(*hub, cred, nil)
		}
	default:
		sim, serr := simhub.Start(&simhub.Options{Fleet: *simulate})
		if serr != nil {
			fmt.Fprintln(stderr, "devices: start the embedded simulated hub:", serr)
			return exitHubError
		}
		defer sim.Close()
		fmt.Fprintf(stderr, "devices: no credentials given; using the embedded simulated hub %s with %d devices\n",
			sim.HostName(), len(sim.DeviceIDs()))
		client, err = sim.RegistryClient()
		if err == nil {
			svc, err = sim.OwnerClient()
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "devices:", err)
		return exitUsage
	}

	w := bufio.NewWriter(stdout)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	err = cmd(ctx, client, svc, enc, w)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return report(stderr, err)
	}
	return exitOK
}

// errReported stands for an error the flag package has already printed.
var errReported = errors.New("reported")

func parseCommand(args []string, stderr io.Writer) (command, error) {
	if len(args) == 0 {
		return nil, errors.New("a command is required")
	}
	name, rest := args[0], args[1:]
	fs := flag.NewFlagSet("devices "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	pageSize := fs.Int("page-size", 0, "items per page, 1 to 1000 (0: the hub's default)")
	edge := fs.Bool("edge", false, "create an IoT Edge device")
	etag := fs.String("etag", "", "delete only if the device's ETag is still this")
	// Flags may come before or after the positional argument.
	var positional []string
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return nil, errReported
		}
		rest = fs.Args()
		if len(rest) > 0 {
			positional = append(positional, rest[0])
			rest = rest[1:]
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	allowed := map[string][]string{"query": {"page-size"}, "create": {"edge"}, "delete": {"etag"}}
	for f := range set {
		ok := false
		for _, a := range allowed[name] {
			ok = ok || a == f
		}
		if !ok {
			return nil, fmt.Errorf("-%s does not apply to %s", f, name)
		}
	}
	one := func() (string, error) {
		if len(positional) != 1 {
			return "", fmt.Errorf("%s takes one device ID", name)
		}
		if rule := wire.CheckID(positional[0]); rule != "" {
			return "", fmt.Errorf("device ID %q %s", positional[0], rule)
		}
		return positional[0], nil
	}
	switch name {
	case "query":
		if len(positional) != 1 {
			return nil, errors.New(`query takes one SQL argument, such as "SELECT * FROM devices"`)
		}
		var perr error
		if *pageSize < 0 || *pageSize > registry.MaxPageSize {
			perr = fmt.Errorf("-page-size must be within [1, %d]", registry.MaxPageSize)
		}
		if strings.TrimSpace(positional[0]) == "" {
			perr = errors.New("the query is empty")
		}
		if perr != nil {
			return nil, perr
		}
		sql, size := positional[0], *pageSize
		return func(ctx context.Context, c *registry.Client, _ *service.Client, _ *json.Encoder, w *bufio.Writer) error {
			p, err := c.NewQueryPager(sql, &registry.QueryOptions{PageSize: size})
			if err != nil {
				return err
			}
			for p.More() {
				page, err := p.NextPage(ctx)
				if err != nil {
					return err
				}
				for _, item := range page.Items {
					w.Write(item)
					w.WriteByte('\n')
				}
				if err := w.Flush(); err != nil {
					return err
				}
			}
			return nil
		}, nil
	case "get", "twin", "create", "delete":
		id, err := one()
		if err != nil {
			return nil, err
		}
		switch name {
		case "get":
			return func(ctx context.Context, c *registry.Client, _ *service.Client, out *json.Encoder, _ *bufio.Writer) error {
				d, err := c.GetDevice(ctx, id, nil)
				if err != nil {
					return err
				}
				return out.Encode(d)
			}, nil
		case "twin":
			return func(ctx context.Context, c *registry.Client, _ *service.Client, out *json.Encoder, _ *bufio.Writer) error {
				t, err := c.GetTwin(ctx, id, nil)
				if err != nil {
					return err
				}
				return out.Encode(t)
			}, nil
		case "create":
			isEdge := *edge
			return func(ctx context.Context, c *registry.Client, _ *service.Client, out *json.Encoder, _ *bufio.Writer) error {
				d := registry.Device{DeviceID: id}
				if isEdge {
					d.Capabilities = &registry.Capabilities{IoTEdge: true}
				}
				created, err := c.CreateDevice(ctx, d, nil)
				if err != nil {
					return err
				}
				return out.Encode(created)
			}, nil
		default:
			tag := *etag
			return func(ctx context.Context, c *registry.Client, _ *service.Client, out *json.Encoder, _ *bufio.Writer) error {
				if err := c.DeleteDevice(ctx, id, &registry.WriteOptions{IfMatch: tag}); err != nil {
					return err
				}
				return out.Encode(map[string]any{"deviceId": id, "deleted": true})
			}, nil
		}
	case "stats":
		if len(positional) != 0 {
			return nil, errors.New("stats takes no arguments")
		}
		return func(ctx context.Context, c *registry.Client, svc *service.Client, out *json.Encoder, _ *bufio.Writer) error {
			rs, err := c.GetStatistics(ctx, nil)
			if err != nil {
				return err
			}
			ss, err := svc.GetStatistics(ctx, nil)
			if err != nil {
				return err
			}
			return out.Encode(struct {
				registry.Statistics
				ConnectedDeviceCount int64 `json:"connectedDeviceCount"`
			}{rs, ss.ConnectedDeviceCount})
		}, nil
	}
	return nil, fmt.Errorf("unknown command %q", name)
}

// report prints a failed command and returns its exit code.
func report(stderr io.Writer, err error) int { return cli.PrintError(stderr, "devices", err) }
