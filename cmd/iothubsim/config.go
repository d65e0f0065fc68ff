package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/hubkit/iothub/service"
)

// config is what the flags ask for.
type config struct {
	addr, host    string
	devices, edge int
	troubled      bool
	slowLatency   time.Duration
	certOut       string
	policy        string
	tier          string
	units         int
	jobRate       float64
	dailyMessages int64
	maxRecorded   int
}

// The policies a connection string may name: the hub's defaults that hold
// a service right (the device policy has none).
var servicePolicies = []string{"iothubowner", "service", "registryRead", "registryReadWrite"}

// The tiers -tier accepts.
var tiers = []service.Tier{service.TierF1, service.TierB1, service.TierB2, service.TierB3,
	service.TierS1, service.TierS2, service.TierS3}

// parseConfig parses and checks the flags; usage and errors of the flag
// package go to stderr.
func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("iothubsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:0", "`HOST:PORT` to listen on; port 0 picks a free port")
	fs.StringVar(&c.host, "host", "localhost", "the hub's host `name`; the certificate covers it, localhost, 127.0.0.1 and ::1")
	fs.IntVar(&c.devices, "devices", 0, "online fleet devices sim-fleet-00001 … besides the named ones")
	fs.IntVar(&c.edge, "edge", 0, "IoT Edge devices sim-edge-00001 … besides sim-edge-1, each with $edgeAgent")
	fs.BoolVar(&c.troubled, "troubled", false, "make some fleet devices offline, failing, slow or losing answers")
	fs.DurationVar(&c.slowLatency, "slow-latency", 3*time.Second, "latency of -troubled's slow devices")
	fs.StringVar(&c.certOut, "cert-out", "", "`file` to write the CA certificate to (PEM); empty: a temporary file")
	fs.StringVar(&c.policy, "policy", "iothubowner", "shared access `policy` of the printed connection string")
	fs.StringVar(&c.tier, "tier", "", "throttle as this IoT Hub `tier` does (F1, B1, B2, B3, S1, S2, S3); empty: no throttling")
	fs.IntVar(&c.units, "units", 1, "IoT Hub units of -tier")
	fs.Float64Var(&c.jobRate, "job-rate", 0, "device operations per second of jobs; 0: the tier's, or 10")
	fs.Int64Var(&c.dailyMessages, "daily-messages", 0, "daily message quota (403002 past it); 0: none")
	fs.IntVar(&c.maxRecorded, "max-recorded", 10_000, "requests and method calls kept for inspection")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q: iothubsim takes flags only", fs.Arg(0))
	}
	return c, c.check()
}

// check applies the rules of each flag.
func (c config) check() error {
	host, port, err := net.SplitHostPort(c.addr)
	if err != nil {
		return fmt.Errorf("-addr %q: want HOST:PORT, such as 127.0.0.1:8443: %v", c.addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("-addr %q: port %q must be a number from 0 to 65535", c.addr, port)
	}
	if host == "" {
		return fmt.Errorf("-addr %q: give the host to listen on, such as 127.0.0.1 or 0.0.0.0", c.addr)
	}
	switch {
	case c.host == "" || c.host != hostOnly(c.host):
		return fmt.Errorf("-host %q: want a host name or IP address without port", c.host)
	case c.devices < 0:
		return fmt.Errorf("-devices %d: must not be negative", c.devices)
	case c.edge < 0:
		return fmt.Errorf("-edge %d: must not be negative", c.edge)
	case c.slowLatency < 0:
		return fmt.Errorf("-slow-latency %v: must not be negative", c.slowLatency)
	case !slices.Contains(servicePolicies, c.policy):
		return fmt.Errorf("-policy %q: must be one of %v", c.policy, servicePolicies)
	case c.tier != "" && !slices.Contains(tiers, service.Tier(c.tier)):
		return fmt.Errorf("-tier %q: must be one of %v, or empty for no throttling", c.tier, tiers)
	case c.units < 1 || c.tier == string(service.TierF1) && c.units != 1:
		return fmt.Errorf("-units %d: must be at least 1 (exactly 1 on F1)", c.units)
	case c.jobRate < 0:
		return fmt.Errorf("-job-rate %v: must not be negative", c.jobRate)
	case c.dailyMessages < 0:
		return fmt.Errorf("-daily-messages %d: must not be negative", c.dailyMessages)
	case c.maxRecorded < 1:
		return fmt.Errorf("-max-recorded %d: must be at least 1", c.maxRecorded)
	}
	return nil
}

// hostOnly returns a host name without brackets or port, or "" when s has
// characters a host name cannot.
func hostOnly(s string) string {
	if ip := net.ParseIP(s); ip != nil {
		return s
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return ""
		}
	}
	return s
}
