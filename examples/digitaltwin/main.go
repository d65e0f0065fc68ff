// Command digitaltwin reads and updates the digital twin of an IoT Plug and
// Play device: its model id, root properties and components, and the
// desired values and acknowledgements of its writable properties.
//
//	go run ./examples/digitaltwin get DEVICE [-json]
//	go run ./examples/digitaltwin set DEVICE [-component NAME] [-if-match ETAG] PATH=JSONVALUE...
//	go run ./examples/digitaltwin remove DEVICE [-component NAME] [-if-match ETAG] PATH
//
// get prints the model id, the ETag, the root properties and each
// component's properties, each with its reported value and its metadata
// (when the device reported it; the desired value and its version; the
// device's acknowledgement: code, version and description). -json prints
// the digital twin as the hub sent it instead.
//
// set sets desired values: PATH is a property name (a DTDL name), of the
// root component or of -component, and JSONVALUE its value as JSON (a
// string is quoted: name='"text"'). It reads the twin first, and sends one
// JSON Patch with a "replace" for each property the twin has and an "add"
// for each it has not. remove clears a desired value. Both print the
// twin's new ETag on stdout; -if-match ETAG (as get printed it) makes the
// update conditional: it fails if the twin changed since.
//
// Credentials: -connection-string, or $IOTHUB_CONNECTION_STRING (a shared
// access policy with ServiceConnect, such as "service"); or -hub HOST to
// sign in with Microsoft Entra ID. With none, it starts the embedded
// simulated hub, whose sim-pnp-1 is a Plug and Play temperature controller
// (dtmi:com:example:TemperatureController;2) with the components
// thermostat1 and thermostat2, and says so on stderr.
//
// Exit codes: 0 when the command succeeded; 1 for a hub error (code, name
// and tracking ID on stderr), a stale -if-match among them; 2 for bad flags
// or input, such as a PATH that is not a DTDL name or a JSONVALUE that is
// not JSON (nothing is sent).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/digitaltwin"
	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/examples/internal/simhub"
)

// name is the program's name, the prefix of its messages.
const name = "digitaltwin"

func main() {
	cli.Main(func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
		return runWith(ctx, args, deps{getenv: getenv, stdout: stdout, stderr: stderr})
	})
}

// deps are what main and the tests give a run beyond its arguments.
type deps struct {
	// getenv reads the environment ($IOTHUB_CONNECTION_STRING).
	getenv func(string) string
	// stdout gets the twin and the new ETags; stderr everything else.
	stdout, stderr io.Writer
	// sim, when set, is the simulated hub to use without credentials,
	// instead of starting one; the run does not close it.
	sim *simhub.Hub
}

const usage = `usage: digitaltwin [flags] COMMAND DEVICE [ARGS]
commands:
  get DEVICE [-json]
  set DEVICE [-component NAME] [-if-match ETAG] PATH=JSONVALUE...
  remove DEVICE [-component NAME] [-if-match ETAG] PATH`

// config is the parsed command line.
type config struct {
	creds cli.Credentials

	command, device string
	json            bool
	component       string
	ifMatch         string
	args            []string // set: PATH=JSONVALUE...; remove: PATH
}

// subFlags are the flags each command takes.
var subFlags = map[string][]string{
	"get":    {"json"},
	"set":    {"component", "if-match"},
	"remove": {"component", "if-match"},
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.creds.Register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, cli.ErrFlagsReported
	}
	if fs.NArg() == 0 {
		return c, errors.New("a command is required: get, set or remove")
	}
	c.command = fs.Arg(0)
	allowed, ok := subFlags[c.command]
	if !ok {
		return c, fmt.Errorf("unknown command %q: want get, set or remove", c.command)
	}
	sub := flag.NewFlagSet(name+" "+c.command, flag.ContinueOnError)
	sub.SetOutput(stderr)
	sub.BoolVar(&c.json, "json", false, "print the digital twin as the hub sent it")
	sub.StringVar(&c.component, "component", "", "the component of PATH; empty for the root component")
	sub.StringVar(&c.ifMatch, "if-match", "", `update only if the twin's ETag is this one (as get printed it, W/"…")`)
	sub.Usage = fs.Usage
	positional, err := cli.ParseCommand(sub, fs.Args()[1:], c.command, allowed)
	if err != nil {
		return c, err
	}
	if len(positional) == 0 {
		return c, fmt.Errorf("%s needs a DEVICE", c.command)
	}
	c.device, c.args = positional[0], positional[1:]
	switch c.command {
	case "get":
		if len(c.args) > 0 {
			return c, fmt.Errorf("get: unexpected argument %q", c.args[0])
		}
	case "set":
		if len(c.args) == 0 {
			return c, errors.New("set needs at least one PATH=JSONVALUE")
		}
	case "remove":
		switch {
		case len(c.args) == 0:
			return c, errors.New("remove needs a PATH")
		case len(c.args) > 1:
			return c, fmt.Errorf("remove: unexpected argument %q (one PATH at a time)", c.args[1])
		}
	}
	return c, c.creds.Resolve(getenv)
}

// assignment is one PATH=JSONVALUE of set.
type assignment struct {
	arg   string // as given, for messages
	path  string
	value json.RawMessage
}

// parseAssignments checks set's arguments against the digital twin rules,
// through the SDK's own Patch.Validate, and returns them; the error names
// the argument. Nothing is sent.
func parseAssignments(component string, args []string) ([]assignment, error) {
	out := make([]assignment, 0, len(args))
	seen := map[string]bool{}
	for _, arg := range args {
		path, value, ok := strings.Cut(arg, "=")
		if !ok {
			return nil, fmt.Errorf("argument %q: want PATH=JSONVALUE", arg)
		}
		if !json.Valid([]byte(value)) {
			return nil, fmt.Errorf("argument %q: the value %q is not JSON (quote a string: %s='\"text\"')", arg, value, path)
		}
		a := assignment{arg: arg, path: path, value: json.RawMessage(value)}
		var p digitaltwin.Patch
		setOp(&p, "add", component, a)
		if err := argumentError(arg, p.Validate()); err != nil {
			return nil, err
		}
		if seen[path] {
			return nil, fmt.Errorf("argument %q: %s is set twice", arg, path)
		}
		seen[path] = true
		out = append(out, a)
	}
	return out, nil
}

// checkPath checks remove's PATH, as parseAssignments checks set's.
func checkPath(component, path string) error {
	var p digitaltwin.Patch
	if component != "" {
		p.RemoveComponentProperty(component, path)
	} else {
		p.RemoveProperty(path)
	}
	return argumentError(path, p.Validate())
}

// checkComponent checks -component, when it is given.
func checkComponent(component string) error {
	if component == "" {
		return nil
	}
	var p digitaltwin.Patch
	p.RemoveComponent(component)
	if ae, ok := errors.AsType[*iothub.ArgumentError](p.Validate()); ok {
		return fmt.Errorf("-component %q: %s", component, ae.Rule)
	}
	return nil
}

// argumentError turns the SDK's refusal of a one-operation patch into an
// error naming the command-line argument, or returns nil.
func argumentError(arg string, err error) error {
	if err == nil {
		return nil
	}
	if ae, ok := errors.AsType[*iothub.ArgumentError](err); ok {
		field := strings.TrimPrefix(ae.Field, "Patch[0].")
		if field == "path" {
			return fmt.Errorf("argument %q: %s", arg, ae.Rule)
		}
		return fmt.Errorf("argument %q: %s %s", arg, field, ae.Rule)
	}
	return fmt.Errorf("argument %q: %w", arg, err)
}

// setOp adds one add or replace operation for a to p.
func setOp(p *digitaltwin.Patch, op, component string, a assignment) {
	switch {
	case op == "replace" && component != "":
		p.ReplaceComponentProperty(component, a.path, a.value)
	case op == "replace":
		p.ReplaceProperty(a.path, a.value)
	case component != "":
		p.AddComponentProperty(component, a.path, a.value)
	default:
		p.AddProperty(a.path, a.value)
	}
}

func runWith(ctx context.Context, args []string, d deps) int {
	msg := cli.Stderr{Prog: name, W: d.stderr}
	cfg, err := parseFlags(args, d.getenv, d.stderr)
	if err != nil {
		return msg.Usage(err)
	}
	// Every argument is checked before the hub is opened.
	if err := checkComponent(cfg.component); err != nil {
		return msg.Usage(err)
	}
	var sets []assignment
	switch cfg.command {
	case "set":
		if sets, err = parseAssignments(cfg.component, cfg.args); err != nil {
			return msg.Usage(err)
		}
	case "remove":
		if err := checkPath(cfg.component, cfg.args[0]); err != nil {
			return msg.Usage(err)
		}
	}

	conn, err := cfg.creds.Open(d.sim, nil)
	if err != nil {
		msg.Println(err)
		return cli.OpenExit(err)
	}
	defer conn.Close()
	if conn.Sim != nil {
		msg.Printf("no credentials given; using the embedded simulated hub %s, whose Plug and Play device is sim-pnp-1\n", conn.Sim.HostName())
	}
	client, err := conn.DigitalTwinClient()
	if err != nil {
		return msg.Usage(err)
	}

	switch cfg.command {
	case "get":
		return get(ctx, client, cfg, msg, d.stdout)
	case "set":
		return set(ctx, client, cfg, sets, msg, d.stdout)
	}
	var p digitaltwin.Patch
	if cfg.component != "" {
		p.RemoveComponentProperty(cfg.component, cfg.args[0])
	} else {
		p.RemoveProperty(cfg.args[0])
	}
	msg.Printf("%s: remove %s\n", cfg.device, pointer(cfg.component, cfg.args[0]))
	return update(ctx, client, cfg, p, msg, d.stdout)
}

// get prints the digital twin.
func get(ctx context.Context, client *digitaltwin.Client, cfg config, msg cli.Stderr, stdout io.Writer) int {
	twin, err := client.Get(ctx, cfg.device, nil)
	if err != nil {
		return msg.Fail("get "+cfg.device, err)
	}
	var out bytes.Buffer
	if cfg.json {
		out.Write(bytes.TrimSpace(twin.Raw))
		out.WriteByte('\n')
	} else {
		printTwin(&out, twin)
	}
	if _, err := out.WriteTo(stdout); err != nil {
		msg.Printf("the twin could not be printed: %v\n", err)
		return cli.ExitFailed
	}
	return cli.ExitOK
}

// set reads the twin to choose add or replace for each property, then
// sends one patch.
func set(ctx context.Context, client *digitaltwin.Client, cfg config, sets []assignment, msg cli.Stderr, stdout io.Writer) int {
	twin, err := client.Get(ctx, cfg.device, nil)
	if err != nil {
		return msg.Fail("get "+cfg.device, err)
	}
	props, meta := twin.Properties, twin.Metadata
	if cfg.component != "" {
		c := twin.Components[cfg.component]
		props, meta = c.Properties, c.Metadata
	}
	var p digitaltwin.Patch
	for _, a := range sets {
		op := "add"
		_, reported := props[a.path]
		_, known := meta[a.path]
		if reported || known {
			op = "replace"
		}
		setOp(&p, op, cfg.component, a)
		msg.Printf("%s: %s %s = %s\n", cfg.device, op, pointer(cfg.component, a.path), compact(a.value))
	}
	return update(ctx, client, cfg, p, msg, stdout)
}

// update sends the patch and prints the new ETag; a failure says whether
// the change may have been applied.
func update(ctx context.Context, client *digitaltwin.Client, cfg config, p digitaltwin.Patch, msg cli.Stderr, stdout io.Writer) int {
	res, err := client.Update(ctx, cfg.device, p, &digitaltwin.UpdateOptions{IfMatch: cfg.ifMatch})
	if err != nil {
		code := msg.Fail("update "+cfg.device, err)
		switch {
		case code == cli.ExitUsage:
		case iothub.MayHaveRun(err):
			msg.Println("an attempt of this update may have been applied before the failure; run get to see whether it was")
		case errors.Is(err, iothub.ErrPreconditionFailed):
			msg.Printf("the twin changed since ETag %s was read: nothing was changed; run get for the current ETag and try again\n", cfg.ifMatch)
		default:
			msg.Println("nothing was changed")
		}
		return code
	}
	if _, err := fmt.Fprintln(stdout, res.ETag); err != nil {
		msg.Printf("updated, but the new ETag could not be printed: %v\n", err)
		return cli.ExitFailed
	}
	return cli.ExitOK
}

// pointer is the JSON Patch path of a property.
func pointer(component, prop string) string {
	if component == "" {
		return "/" + prop
	}
	return "/" + component + "/" + prop
}

// compact returns a JSON value on one line.
func compact(v json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return string(v)
	}
	return b.String()
}

// printTwin writes the twin as text: its model and ETag, then the root
// properties and each component's, in name order.
func printTwin(w *bytes.Buffer, t digitaltwin.DigitalTwin) {
	model := t.ModelID
	if model == "" {
		model = "(none announced)"
	}
	fmt.Fprintf(w, "device %s\nmodel  %s\netag   %s\n", t.ID, model, t.ETag)
	w.WriteString("root:\n")
	printProperties(w, t.Properties, t.Metadata)
	for _, name := range sortedNames(t.Components) {
		c := t.Components[name]
		fmt.Fprintf(w, "%s:\n", name)
		printProperties(w, c.Properties, c.Metadata)
	}
}

// printProperties writes one line per property: its reported value (or
// that it has none), then what its metadata holds.
func printProperties(w *bytes.Buffer, props map[string]json.RawMessage, meta map[string]digitaltwin.PropertyMetadata) {
	names := sortedNames(props)
	for _, n := range sortedNames(meta) {
		if _, ok := props[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		w.WriteString("  (no properties)\n")
		return
	}
	for _, n := range names {
		value := "(not reported)"
		if v, ok := props[n]; ok {
			value = compact(v)
		}
		fmt.Fprintf(w, "  %s: %s", n, value)
		if m, ok := meta[n]; ok {
			if notes := describe(m); len(notes) > 0 {
				fmt.Fprintf(w, " (%s)", strings.Join(notes, "; "))
			}
		}
		w.WriteByte('\n')
	}
}

// describe lists what a property's metadata says.
func describe(m digitaltwin.PropertyMetadata) []string {
	var notes []string
	if m.DesiredValue != nil {
		state := "pending"
		if m.AckVersion >= m.DesiredVersion {
			state = "acknowledged"
		}
		notes = append(notes, fmt.Sprintf("desired %s v%d, %s", compact(m.DesiredValue), m.DesiredVersion, state))
	}
	if m.AckCode != 0 {
		ack := fmt.Sprintf("ack %d v%d", m.AckCode, m.AckVersion)
		if m.AckDescription != "" {
			ack += fmt.Sprintf(" %q", m.AckDescription)
		}
		notes = append(notes, ack)
	}
	if !m.LastUpdateTime.IsZero() {
		notes = append(notes, "reported "+m.LastUpdateTime.UTC().Format(time.RFC3339))
	}
	return notes
}

func sortedNames[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
