package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses.
const (
	exitOK    = 0
	exitStart = 1 // the simulator could not start
	exitUsage = 2 // bad flags
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args, starts the simulator, prints the ready lines on stdout
// and serves until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case err != nil:
		fmt.Fprintln(stderr, "iothubsim:", err)
		return exitUsage
	}
	sim, err := start(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "iothubsim:", err)
		return exitStart
	}
	defer sim.close()
	if _, err := fmt.Fprintf(stdout, "%s\n%s\n", sim.connectionString, sim.certPath); err != nil {
		fmt.Fprintln(stderr, "iothubsim:", err)
		return exitStart
	}
	fmt.Fprintf(stderr, "iothubsim: serving %s with %d devices on %s; SIGINT or SIGTERM stops it\n",
		sim.srv.HostName(), sim.devices, sim.srv.URL)
	<-ctx.Done()
	fmt.Fprintln(stderr, "iothubsim: stopping")
	return exitOK
}
