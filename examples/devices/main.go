// Command devices reads and writes an IoT hub's device registry and runs
// queries over its twins.
//
//	go run ./examples/devices [credentials] <command>
//
// Commands:
//
//	query [-page-size N] SQL   one JSON object per line, streamed page by page
//	get ID [-show-keys]        the device identity as JSON, its SAS keys redacted
//	                           unless -show-keys
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
	"strings"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/examples/internal/simhub"
	"github.com/hubkit/iothub/registry"
)

func main() { cli.Main(run) }

const usage = `usage: devices [-connection-string CS | -hub HOST | -simulate N] <command>
commands:
  query [-page-size N] SQL
  get ID [-show-keys]
  twin ID
  create ID [-edge]
  delete ID [-etag ETAG]
  stats`

// command is a parsed, validated command, ready to run.
type command func(ctx context.Context, c *registry.Client, out *json.Encoder, stdout *bufio.Writer) error

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	msg := cli.Stderr{Prog: "devices", W: stderr}
	fs := flag.NewFlagSet("devices", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, usage) }
	var creds cli.Credentials
	creds.Register(fs)
	simulate := fs.Int("simulate", 2500, "devices in the embedded simulated hub besides the named ones")
	if err := fs.Parse(args); err != nil {
		return cli.ExitUsage
	}
	cmd, err := parseCommand(fs.Args(), stderr)
	if err != nil {
		if !errors.Is(err, errReported) {
			msg.Println(err)
			fmt.Fprintln(stderr, usage)
		}
		return cli.ExitUsage
	}
	if *simulate < 0 {
		msg.Println("-simulate must be 0 or more")
		return cli.ExitUsage
	}
	if err := creds.Resolve(getenv); err != nil {
		return msg.Usage(err)
	}

	conn, err := creds.Open(nil, &simhub.Options{Fleet: *simulate})
	if err != nil {
		msg.Println(err)
		return cli.OpenExit(err)
	}
	defer conn.Close()
	client, err := conn.RegistryClient()
	if err != nil {
		return msg.Usage(err)
	}
	err = execute(ctx, cmd, client, stdout)
	// The SDK refuses a bad argument (a device ID, say) before sending
	// anything: that is bad input, and no hub was used.
	if conn.Sim != nil && !errors.Is(err, iothub.ErrInvalidArgument) {
		msg.Printf("no credentials given; using the embedded simulated hub %s with %d devices\n",
			conn.Sim.HostName(), len(conn.Sim.DeviceIDs()))
	}
	if err != nil {
		return msg.Fail("", err)
	}
	return cli.ExitOK
}

// execute runs cmd, writing its JSON to stdout.
func execute(ctx context.Context, cmd command, client *registry.Client, stdout io.Writer) error {
	w := bufio.NewWriter(stdout)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	err := cmd(ctx, client, enc, w)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
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
	showKeys := fs.Bool("show-keys", false, "print the device's SAS keys in clear instead of redacted")
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
	allowed := map[string][]string{"query": {"page-size"}, "create": {"edge"}, "delete": {"etag"}, "get": {"show-keys"}}
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
		return func(ctx context.Context, c *registry.Client, _ *json.Encoder, w *bufio.Writer) error {
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
			show := *showKeys
			return func(ctx context.Context, c *registry.Client, out *json.Encoder, _ *bufio.Writer) error {
				d, err := c.GetDevice(ctx, id)
				if err != nil {
					return badID(id, err)
				}
				if !show {
					d = redactKeys(d)
				}
				return out.Encode(d)
			}, nil
		case "twin":
			return func(ctx context.Context, c *registry.Client, out *json.Encoder, _ *bufio.Writer) error {
				t, err := c.GetTwin(ctx, id)
				if err != nil {
					return badID(id, err)
				}
				return out.Encode(t)
			}, nil
		case "create":
			isEdge := *edge
			return func(ctx context.Context, c *registry.Client, out *json.Encoder, _ *bufio.Writer) error {
				d := registry.Device{DeviceID: id}
				if isEdge {
					d.Capabilities = &registry.Capabilities{IoTEdge: true}
				}
				created, err := c.CreateDevice(ctx, d)
				if err != nil {
					return badID(id, err)
				}
				return out.Encode(created)
			}, nil
		default:
			tag := *etag
			return func(ctx context.Context, c *registry.Client, out *json.Encoder, _ *bufio.Writer) error {
				if err := c.DeleteDevice(ctx, id, &registry.WriteOptions{IfMatch: tag}); err != nil {
					return badID(id, err)
				}
				return out.Encode(map[string]any{"deviceId": id, "deleted": true})
			}, nil
		}
	case "stats":
		if len(positional) != 0 {
			return nil, errors.New("stats takes no arguments")
		}
		return func(ctx context.Context, c *registry.Client, out *json.Encoder, _ *bufio.Writer) error {
			rs, err := c.GetRegistryStatistics(ctx)
			if err != nil {
				return err
			}
			ss, err := c.GetServiceStatistics(ctx)
			if err != nil {
				return err
			}
			return out.Encode(struct {
				registry.RegistryStatistics
				registry.ServiceStatistics
			}{rs, ss})
		}, nil
	}
	return nil, fmt.Errorf("unknown command %q", name)
}

// badID names the device ID in an argument error of the SDK, which
// refuses a bad ID before sending anything.
func badID(id string, err error) error {
	if errors.Is(err, iothub.ErrInvalidArgument) {
		return fmt.Errorf("device ID %q: %w", id, err)
	}
	return err
}

// redacted stands for a key that is not printed.
const redacted = "<redacted>"

// redactKeys returns d with its SAS keys replaced by redacted, so that a
// device's keys reach the screen (or a log, or a shared terminal) only
// with -show-keys.
func redactKeys(d registry.Device) registry.Device {
	if d.Authentication == nil || d.Authentication.SymmetricKey == nil {
		return d
	}
	auth := *d.Authentication
	keys := *auth.SymmetricKey
	if keys.PrimaryKey != "" {
		keys.PrimaryKey = redacted
	}
	if keys.SecondaryKey != "" {
		keys.SecondaryKey = redacted
	}
	auth.SymmetricKey = &keys
	d.Authentication = &auth
	return d
}
