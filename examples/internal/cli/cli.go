// Package cli holds what the example programs share, one small piece each:
// their exit codes and main (this file), the messages they print on stderr
// (stderr.go), the flags of a direct method (method.go), and the choice of
// hub and sign-in (hub.go).
package cli

import (
	"context"
	"io"
	"os"
	"os/signal"
)

// Exit codes of the example programs.
const (
	ExitOK     = 0 // the command succeeded
	ExitFailed = 1 // a hub error, or a run that did not fully succeed
	ExitUsage  = 2 // bad flags or input; nothing was sent
)

// Run is a program's body: it parses args, reads its environment through
// getenv, writes to stdout and stderr, and returns the exit code. It stops
// when ctx is cancelled. Tests call it directly.
type Run func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int

// Main runs run with the process's arguments, environment and standard
// streams, cancels its ctx on the first interrupt (Ctrl-C), and exits with
// the code run returns.
func Main(run Run) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
