package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/service"
)

func main() { cli.Main(run) }

// shutdownGrace is how long the server lets requests in flight finish
// once it is asked to stop: a reboot waits for the device, up to the
// method's timeouts.
const shutdownGrace = 30 * time.Second

type config struct {
	addr     string
	timeouts timeouts
	creds    cli.Credentials
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on (port 0 picks a free one)")
	fs.IntVar(&c.timeouts.Response, "timeout", 0, "the reboot's response timeout in seconds: 0 for the hub default (30), or 5 to 300")
	fs.IntVar(&c.timeouts.Connect, "connect-timeout", 0, "seconds the hub waits for an offline device to connect, 0 to 300")
	c.creds.Register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: backend [-addr HOST:PORT] [-timeout S] [-connect-timeout S] [-connection-string CS | -hub HOST]")
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args); err != nil {
		return c, err
	}
	// Check the timeouts as the SDK will, before serving anything.
	p := service.MethodParams[any]{Name: "reboot", TimeoutInSeconds: c.timeouts.Response, ConnectTimeoutInSeconds: c.timeouts.Connect}
	if err := p.Validate(); err != nil {
		return c, fmt.Errorf("-timeout or -connect-timeout: %w", err)
	}
	return c, c.creds.Resolve(getenv)
}

// run serves the backend until ctx is cancelled. Once it listens it
// prints the backend's URL on stdout, one line.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	msg := cli.Stderr{Prog: "backend", W: stderr}
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return msg.Usage(err)
	}
	client, closeHub, code := cfg.creds.OpenServiceClient(msg, nil)
	if client == nil {
		return code
	}
	defer closeHub()

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		msg.Println(err)
		return cli.ExitFailed
	}
	fmt.Fprintf(stdout, "http://%s\n", ln.Addr())
	if err := serve(ctx, ln, newHandler(client, cfg.timeouts)); err != nil {
		msg.Println(err)
		return cli.ExitFailed
	}
	return cli.ExitOK
}

// serve serves h on ln until ctx is cancelled, then shuts the server down,
// letting the requests in flight finish for up to shutdownGrace.
func serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
