package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/hubkit/iothub/examples/internal/cli"
)

// config is what the flags say.
type config struct {
	query, devices string
	method         string
	call           cli.MethodFlags // -payload, -timeout, -connect-timeout
	concurrency    int
	rate           float64
	mode           string
	report         string
	resume, dryRun bool
	retryUnknown   bool
	creds          cli.Credentials // -connection-string, -hub
	simulate       int

	// Which flags were given, not only defaulted.
	querySet, simulateSet, rateSet, concSet bool
}

const defaultQuery = "SELECT * FROM devices"

const usage = "usage: fleet-reboot [-query SQL | -devices IDS|@FILE] [-method NAME] [-payload JSON] [-concurrency N] [-rate R] [-mode client|job] [-report FILE [-resume]] [-dry-run]"

// parseFlags parses and checks the flags, and reads the connection string
// from getenv when no credentials are given. It reads no file.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := c.flagSet(stderr)
	if err := fs.Parse(args); err != nil {
		return c, cli.ErrFlagsReported
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "query":
			c.querySet = true
		case "simulate":
			c.simulateSet = true
		case "rate":
			c.rateSet = true
		case "concurrency":
			c.concSet = true
		}
	})
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := c.check(); err != nil {
		return c, err
	}
	if err := c.creds.Resolve(getenv); err != nil {
		return c, err
	}
	if c.simulateSet && c.creds.Given() {
		return c, errors.New("-simulate is for the embedded simulated hub, used only without credentials")
	}
	return c, nil
}

// flagSet defines the flags, writing into c.
func (c *config) flagSet(stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.query, "query", defaultQuery, "registry query selecting the targets (SELECT * FROM devices [WHERE …], or FROM devices.modules)")
	fs.StringVar(&c.devices, "devices", "", "comma-separated device ids, or @FILE with one id per line (# comments)")
	fs.StringVar(&c.method, "method", "reboot", "method name")
	c.call.Register(fs)
	fs.IntVar(&c.concurrency, "concurrency", 16, "most calls in flight at once (client mode)")
	fs.Float64Var(&c.rate, "rate", 0, "most calls started per second, 0 for no client limit; either way it backs off when throttled (client mode)")
	fs.StringVar(&c.mode, "mode", "client", "client: invoke from here; job: schedule an IoT Hub job")
	fs.StringVar(&c.report, "report", "", "write one JSON line per target to FILE as results arrive")
	fs.BoolVar(&c.resume, "resume", false, "continue the run of -report FILE: skip targets that succeeded or may have run, append")
	fs.BoolVar(&c.retryUnknown, "retry-unknown", false, "with -resume, invoke again the targets whose outcome was unknown (they may have run)")
	fs.BoolVar(&c.dryRun, "dry-run", false, "list the targets on stdout and invoke nothing")
	c.creds.Register(fs)
	fs.IntVar(&c.simulate, "simulate", 300, "fleet devices of the embedded simulated hub (without credentials)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// check refuses values out of range and flags that do not go together.
func (c config) check() error {
	switch {
	case c.querySet && c.devices != "":
		return errors.New("give either -query or -devices, not both")
	case c.method == "":
		return errors.New("-method must not be empty")
	case c.concurrency <= 0:
		return fmt.Errorf("-concurrency must be 1 or more; got %d", c.concurrency)
	case c.rate < 0 || c.rate != c.rate:
		return fmt.Errorf("-rate must be 0 (no limit) or a positive number; got %v", c.rate)
	case c.mode != "client" && c.mode != "job":
		return fmt.Errorf("-mode must be client or job; got %q", c.mode)
	case c.resume && c.report == "":
		return errors.New("-resume needs -report FILE")
	case c.retryUnknown && !c.resume:
		return errors.New("-retry-unknown goes with -resume")
	case c.simulate < 0:
		return fmt.Errorf("-simulate must be 0 or more; got %d", c.simulate)
	}
	if err := c.call.Check(); err != nil {
		return err
	}
	if c.devices == "" {
		if _, ok := countQuery(c.query); !ok {
			return fmt.Errorf("-query must be SELECT * FROM devices [WHERE …] (or FROM devices.modules); got %q", c.query)
		}
	}
	return nil
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
