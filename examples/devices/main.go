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
		if !errors.Is(err, cli.ErrFlagsReported) {
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
	err = execute(ctx, cmd, client, conn.StatisticsClient, stdout)
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
func execute(ctx context.Context, cmd command, client *registry.Client, svc serviceClient, stdout io.Writer) error {
	w := bufio.NewWriter(stdout)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	err := cmd(ctx, client, svc, enc, w)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}
