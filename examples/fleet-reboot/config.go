package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"

	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/service"
)

// config is what the flags say.
type config struct {
	query, devices string
	method         string
	module         string          // -module: invoke the method on this module of each device
	call           cli.MethodFlags // -payload, -timeout, -connect-timeout
	concurrency    int
	rate           float64
	tier           string // seeds the pacing with the tier's documented limit
	units          int
	mode           string
	report         string
	resume, dryRun bool
	retryUnknown   bool
	creds          cli.Credentials // -connection-string, -hub
	simulate       int

	// Which flags were given, not only defaulted.
	querySet, simulateSet, rateSet, concSet, unitsSet bool
}

const defaultQuery = "SELECT * FROM devices"

const usage = "usage: fleet-reboot [-query SQL | -devices IDS|@FILE] [-module ID] [-method NAME] [-payload JSON] [-concurrency N] [-rate R] [-tier T [-units N]] [-mode client|job] [-report FILE [-resume]] [-dry-run]"

// parseFlags parses and checks the flags, and reads the connection string
// from getenv when no credentials are given. It reads no file.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := c.flagSet(stderr)
	if err := cli.Parse(fs, args); err != nil {
		return c, err
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
		case "units":
			c.unitsSet = true
		}
	})
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
	fs.StringVar(&c.module, "module", "", "invoke the method on this module of each selected device, such as $edgeAgent (client mode; the query selects devices)")
	c.call.Register(fs)
	fs.IntVar(&c.concurrency, "concurrency", 16, "most calls in flight at once (client mode)")
	fs.Float64Var(&c.rate, "rate", 0, "most calls started per second, 0 for no cap; below it the fan-out finds and holds the hub's own limit (client mode)")
	fs.StringVar(&c.tier, "tier", "", "the hub's tier (F1, S1, S2, S3), to start at its documented method rate instead of probing for it (client mode)")
	fs.IntVar(&c.units, "units", 1, "the hub's units, with -tier")
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
	case c.rate < 0 || math.IsNaN(c.rate) || math.IsInf(c.rate, 0):
		return fmt.Errorf("-rate must be 0 (no limit) or a positive number; got %v", c.rate)
	case c.unitsSet && c.tier == "":
		return errors.New("-units goes with -tier")
	case c.units <= 0:
		return fmt.Errorf("-units must be 1 or more; got %d", c.units)
	case c.tier != "" && service.MethodRateLimit(c.hubTier(), c.units, 0) == 0:
		return fmt.Errorf("-tier must be F1, S1, S2 or S3 (the basic tiers B1 to B3 have no direct methods); got %q", c.tier)
	case c.mode != "client" && c.mode != "job":
		return fmt.Errorf("-mode must be client or job; got %q", c.mode)
	case c.module != "" && c.mode == "job":
		return errors.New("-module goes with -mode client: IoT Hub jobs invoke device methods only")
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
	if c.module != "" {
		if rule := moduleRule(c.module); rule != "" {
			return fmt.Errorf("-module %q: %s", c.module, rule)
		}
	}
	if c.devices == "" {
		m := queryRE.FindStringSubmatch(c.query)
		if m == nil {
			return fmt.Errorf("-query must be SELECT * FROM devices [WHERE …] (or FROM devices.modules); got %q", c.query)
		}
		if c.module != "" && !strings.EqualFold(m[1], "devices") {
			return fmt.Errorf("-module needs a query FROM devices (it names the module itself); got %q", c.query)
		}
	}
	return nil
}

// hubTier is -tier as the SDK names tiers.
func (c config) hubTier() service.Tier { return service.Tier(strings.ToUpper(c.tier)) }

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

// moduleRule returns "" for a valid module id, or the rule it breaks: 1
// to 128 characters, ASCII letters, digits and -:.+%_#*?!(),=@;$'.
func moduleRule(id string) string {
	const chars = "-:.+%_#*?!(),=@;$'"
	if len(id) > 128 {
		return "must be at most 128 characters"
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(chars, r)) {
			return fmt.Sprintf("has %q; module ids use ASCII letters, digits and %s", r, chars)
		}
	}
	return ""
}
