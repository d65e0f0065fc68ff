package main

import (
	"context"
	"errors"

	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/service"
)

// Exit codes: cli.ExitOK when every target succeeded, cli.ExitFailed when
// one did not or the run was interrupted, cli.ExitUsage for bad flags or
// input. A run that stops before it invokes anything returns an error;
// exit prints it and picks the code.

// stopped is why a run stopped before its end.
type stopped struct {
	// code is the exit code; for a failed call (what set) it is the one
	// cli.Stderr.Fail picks.
	code int
	// what the program was doing, for a failed call ("schedule the job").
	what string
	err  error
}

func (s *stopped) Error() string { return s.err.Error() }
func (s *stopped) Unwrap() error { return s.err }

// failedTo stops a run after a failed call.
func failedTo(what string, err error) error { return &stopped{what: what, err: err} }

// stopWith stops a run with this exit code.
func stopWith(code int, err error) error { return &stopped{code: code, err: err} }

// exit prints err and returns the run's exit code: ExitUsage for a plain
// error (bad flags or input).
func exit(msg cli.Stderr, err error) int {
	s, ok := errors.AsType[*stopped](err)
	switch {
	case !ok:
		return msg.Usage(err)
	case s.what != "":
		return msg.Fail(s.what, s.err)
	}
	msg.Println(s.err)
	return s.code
}

// endRun ends the progress with its summary and returns the exit code of
// a run that went to its end: ExitFailed when it was interrupted, when a
// target did not succeed, or when fault (FanOut.Err: a fleet-wide fault
// such as a revoked policy or an unreachable hub, or a target query that
// broke off) stopped it.
func (r *fleetRun) endRun(ctx context.Context, prog *progress, fault error) int {
	interrupted := ctx.Err() != nil
	prog.finish(interrupted)
	code := cli.ExitOK
	if interrupted {
		code = cli.ExitFailed
	}
	switch {
	case errors.Is(fault, service.ErrFleetFault):
		// Said once here, not once per target: every target the fault
		// kept from being invoked is in the report as not-delivered.
		r.msg.Printf("%v\n", fault) // the hub's code, message and tracking ID included
		r.msg.Println("the targets it kept from being invoked are reported not-delivered; once it is fixed, -resume invokes them")
		code = cli.ExitFailed
	case fault != nil && !interrupted:
		r.msg.Fail("the target query failed; not every target was invoked", fault)
		code = cli.ExitFailed
	}
	if !prog.allSucceeded() {
		code = cli.ExitFailed
	}
	return code
}

// closeReport closes the report, if any, and returns code, or ExitFailed
// when the report could not be written. With hint, a run that did not
// fully succeed says how to resume it.
func (r *fleetRun) closeReport(rw *reportWriter, code int, hint bool) int {
	if rw == nil {
		return code
	}
	if err := rw.close(); err != nil {
		r.msg.Println("-report:", err)
		return cli.ExitFailed
	}
	if hint && code != cli.ExitOK {
		r.msg.Printf("per-target results in %s; run again with -report %s -resume to retry the targets that did not succeed\n",
			r.cfg.report, r.cfg.report)
	}
	return code
}
