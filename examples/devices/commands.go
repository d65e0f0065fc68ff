package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/registry"
	"github.com/hubkit/iothub/service"
)

// command is a parsed, validated command, ready to run. It reads the
// registry through c; svc opens a service client for the commands that
// need one (stats).
type command func(ctx context.Context, c *registry.Client, svc serviceClient, out *json.Encoder, stdout *bufio.Writer) error

// serviceClient opens a service client on the same hub.
type serviceClient func() (*service.Client, error)

// commandArgs are a command's name, positional arguments and flags.
type commandArgs struct {
	name       string
	positional []string
	pageSize   int
	edge       bool
	etag       string
	showKeys   bool
}

// flagsOf lists the flags each command takes.
var flagsOf = map[string][]string{"query": {"page-size"}, "create": {"edge"}, "delete": {"etag"}, "get": {"show-keys"}}

// parseCommand parses the command and its arguments.
func parseCommand(args []string, stderr io.Writer) (command, error) {
	a, err := parseArgs(args, stderr)
	if err != nil {
		return nil, err
	}
	switch a.name {
	case "query":
		return queryCommand(a)
	case "get", "twin", "create", "delete":
		if len(a.positional) != 1 {
			return nil, fmt.Errorf("%s takes one device ID", a.name)
		}
		return deviceCommand(a), nil
	case "stats":
		if len(a.positional) != 0 {
			return nil, errors.New("stats takes no arguments")
		}
		return stats, nil
	}
	return nil, fmt.Errorf("unknown command %q", a.name)
}

// parseArgs splits a command's arguments into flags and positional
// arguments, which may come in any order, and refuses a flag the command
// does not take.
func parseArgs(args []string, stderr io.Writer) (commandArgs, error) {
	var a commandArgs
	if len(args) == 0 {
		return a, errors.New("a command is required")
	}
	a.name = args[0]
	fs := flag.NewFlagSet("devices "+a.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&a.pageSize, "page-size", 0, "items per page, 1 to 1000 (0: the hub's default)")
	fs.BoolVar(&a.edge, "edge", false, "create an IoT Edge device")
	fs.StringVar(&a.etag, "etag", "", "delete only if the device's ETag is still this")
	fs.BoolVar(&a.showKeys, "show-keys", false, "print the device's SAS keys in clear instead of redacted")
	for rest := args[1:]; len(rest) > 0; {
		if err := fs.Parse(rest); err != nil {
			return a, cli.ErrFlagsReported
		}
		rest = fs.Args()
		if len(rest) > 0 {
			a.positional = append(a.positional, rest[0])
			rest = rest[1:]
		}
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err == nil && !slices.Contains(flagsOf[a.name], f.Name) {
			err = fmt.Errorf("-%s does not apply to %s", f.Name, a.name)
		}
	})
	return a, err
}

// queryCommand streams a query's results, one JSON object per line, page
// by page.
func queryCommand(a commandArgs) (command, error) {
	switch {
	case len(a.positional) != 1:
		return nil, errors.New(`query takes one SQL argument, such as "SELECT * FROM devices"`)
	case strings.TrimSpace(a.positional[0]) == "":
		return nil, errors.New("the query is empty")
	case a.pageSize < 0 || a.pageSize > registry.MaxPageSize:
		return nil, fmt.Errorf("-page-size must be within [1, %d]", registry.MaxPageSize)
	}
	sql, size := a.positional[0], a.pageSize
	return func(ctx context.Context, c *registry.Client, _ serviceClient, _ *json.Encoder, w *bufio.Writer) error {
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
}

// deviceCommand runs get, twin, create or delete on one device.
func deviceCommand(a commandArgs) command {
	id := a.positional[0]
	return func(ctx context.Context, c *registry.Client, _ serviceClient, out *json.Encoder, _ *bufio.Writer) error {
		var v any
		var err error
		switch a.name {
		case "get":
			var d registry.Device
			d, err = c.GetDevice(ctx, id, nil)
			if !a.showKeys {
				d = redactKeys(d)
			}
			v = d
		case "twin":
			v, err = c.GetTwin(ctx, id, nil)
		case "create":
			d := registry.Device{DeviceID: id}
			if a.edge {
				d.Capabilities = &registry.Capabilities{IoTEdge: true}
			}
			v, err = c.CreateDevice(ctx, d, nil)
		case "delete":
			err = c.DeleteDevice(ctx, id, &registry.WriteOptions{IfMatch: a.etag})
			v = map[string]any{"deviceId": id, "deleted": true}
		}
		if err != nil {
			return badID(id, err)
		}
		return out.Encode(v)
	}
}

// stats prints the registry and service statistics as one object.
func stats(ctx context.Context, c *registry.Client, svc serviceClient, out *json.Encoder, _ *bufio.Writer) error {
	rs, err := c.GetStatistics(ctx, nil)
	if err != nil {
		return err
	}
	sc, err := svc()
	if err != nil {
		return err
	}
	ss, err := sc.GetStatistics(ctx, nil)
	if err != nil {
		return err
	}
	return out.Encode(struct {
		registry.Statistics
		ConnectedDeviceCount int64 `json:"connectedDeviceCount"`
	}{rs, ss.ConnectedDeviceCount})
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
