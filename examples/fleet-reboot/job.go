package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/registry"
	"github.com/hubkit/iothub/service"
)

// runJob schedules an IoT Hub device-method job instead of invoking from
// here: the hub paces the calls, and this program waits, then reads the
// per-device results. The first interrupt cancels the job (devices it has
// not reached are reported not-delivered); the second stops waiting.
func runJob(ctx context.Context, cfg config, d deps, client *service.Client, reg *registry.Client,
	list []string, done map[service.Target]service.Outcome, params service.MethodParams[any], stderr io.Writer) int {
	spec := service.MethodJob{Method: params}
	var skipped []service.Outcome
	switch {
	case list != nil:
		for _, id := range list {
			if o, ok := done[service.Target{DeviceID: id}]; ok {
				skipped = append(skipped, o)
				continue
			}
			spec.DeviceIDs = append(spec.DeviceIDs, id)
		}
	case len(done) > 0:
		// Resuming a query: the condition cannot leave out the devices
		// that succeeded, so list the others.
		for tw, err := range reg.QueryTwins(ctx, cfg.query, nil) {
			if err != nil {
				printErr(stderr, "list the targets", err)
				return exitFailed
			}
			if o, ok := done[service.Target{DeviceID: tw.DeviceID}]; ok {
				skipped = append(skipped, o)
				continue
			}
			spec.DeviceIDs = append(spec.DeviceIDs, tw.DeviceID)
		}
	default:
		cond, devices := whereClause(cfg.query)
		if !devices {
			fmt.Fprintln(stderr, name+": -mode job works on devices: the query must be FROM devices")
			return exitUsage
		}
		if cond == "" {
			cond = "*"
		}
		spec.QueryCondition = cond
	}
	if list != nil || len(done) > 0 {
		if len(spec.DeviceIDs) == 0 {
			fmt.Fprintf(stderr, "%s: nothing to do: all %d targets succeeded or may have run already\n", name, len(skipped))
			if slices.Contains(skipped, service.OutcomeUnknown) {
				return exitFailed
			}
			return exitOK
		}
	}

	var rw *reportWriter
	if cfg.report != "" {
		var err error
		if rw, err = openReport(cfg.report, cfg.resume); err != nil {
			fmt.Fprintln(stderr, name+": -report:", err)
			return exitUsage
		}
	}

	scheduled := time.Now()
	jobID := fmt.Sprintf("fleet-reboot-%s-%04x", time.Now().UTC().Format("20060102T150405"), rand.N(0x10000))
	job, err := client.ScheduleMethodJob(ctx, jobID, spec, nil)
	if err != nil {
		if rw != nil {
			rw.close()
		}
		printErr(stderr, "schedule the job", err)
		if errors.Is(err, iothub.ErrInvalidArgument) {
			return exitUsage
		}
		return exitFailed
	}
	fmt.Fprintf(stderr, "%s: scheduled job %s (%s)\n", name, job.ID, job.Status)

	// Waiting outlives the first interrupt, which cancels the job; the
	// second stops waiting.
	wctx, stopWaiting := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWaiting()
	go func() {
		select {
		case <-ctx.Done():
		case <-wctx.Done():
			return
		}
		fmt.Fprintf(stderr, "%s: interrupted: cancelling job %s (interrupt again to stop waiting for it)\n", name, jobID)
		if _, err := client.CancelJob(wctx, jobID, nil); err != nil {
			printErr(stderr, "cancel the job", err)
		}
		select {
		case <-d.abort:
			stopWaiting()
		case <-wctx.Done():
		}
	}()

	poll := time.Second
	if d.progressEvery > 0 {
		poll = d.progressEvery
	}
	job, err = client.WaitJob(wctx, jobID, &service.WaitOptions{
		MinPollInterval: poll, MaxPollInterval: max(poll, 5*time.Second),
		OnProgress: func(j service.Job) {
			if s := j.Statistics; s != nil {
				fmt.Fprintf(stderr, "%s: job %s %s: %d devices: %d succeeded, %d failed, %d running, %d pending\n",
					name, j.ID, j.Status, s.DeviceCount, s.SucceededCount, s.FailedCount, s.RunningCount, s.PendingCount)
			}
		},
	})
	code := exitOK
	if err != nil {
		printErr(stderr, "wait for the job", err)
		code = exitFailed
	} else if job.Status != service.JobStatusCompleted {
		fmt.Fprintf(stderr, "%s: job %s ended %s %s %s\n", name, jobID, job.Status, job.FailureReason, job.StatusMessage)
		code = exitFailed
	}

	// A cancelled job leaves the calls it had started running to their
	// end; wait for them, so that the report says how they ended rather
	// than "running".
	if err == nil && job.Status != service.JobStatusCompleted {
		settle(wctx, client, jobID, params, poll, stderr)
	}

	// Per-device results, as far as the hub has them.
	prog := newProgress(stderr, d.terminal, d.progressEvery, -1, scheduled)
	for _, o := range skipped {
		prog.skip(o)
	}
	for r, err := range client.JobDeviceResults(wctx, jobID, nil) {
		if err != nil {
			printErr(stderr, "read the job's device results", err)
			code = exitFailed
			break
		}
		res := service.Result{Target: service.Target{DeviceID: r.DeviceID}, Outcome: r.Outcome, Attempts: 1}
		if r.Response != nil {
			res.Status, res.Payload = r.Response.Status, r.Response.Payload
		}
		if r.ErrorName != "" || r.ErrorCode != 0 {
			res.ErrorCode = r.ErrorCode
			res.Err = fmt.Errorf("job device status %s: %s: %s", r.Status, r.ErrorName, r.ErrorDescription)
		} else if r.Outcome != service.OutcomeSucceeded && r.Outcome != service.OutcomeDeviceError {
			res.Err = fmt.Errorf("job device status %s", r.Status)
		}
		if !r.StartTime.IsZero() && !r.EndTime.IsZero() {
			res.Latency = r.EndTime.Sub(r.StartTime)
		}
		if rw != nil {
			rw.write(res)
		}
		prog.add(r.Outcome)
	}
	interrupted := ctx.Err() != nil
	prog.finish(interrupted)
	if interrupted {
		code = exitFailed
	}
	if !prog.allSucceeded() {
		code = exitFailed
	}
	if rw != nil {
		if err := rw.close(); err != nil {
			fmt.Fprintln(stderr, name+": -report:", err)
			code = exitFailed
		}
	}
	return code
}

// settle waits until no device of a finished job is running, for
// at most the longest a call can take (connect and response timeouts plus
// service.NetworkMargin), polling every poll. It gives up early on the
// second interrupt (ctx) or when the records cannot be read; the report
// then says "unknown" for calls still running.
func settle(ctx context.Context, client *service.Client, jobID string, params service.MethodParams[any], poll time.Duration, stderr io.Writer) {
	timeout := params.TimeoutInSeconds
	if timeout == 0 {
		timeout = service.DefaultTimeoutInSeconds
	}
	deadline := time.Now().Add(time.Duration(timeout+params.ConnectTimeoutInSeconds)*time.Second + service.NetworkMargin)
	for said := false; ; said = true {
		// The job's statistics count its running devices: one request a
		// poll, however many devices the job has.
		job, err := client.GetJob(ctx, jobID, nil)
		if err != nil || job.Statistics == nil {
			return
		}
		running := job.Statistics.RunningCount
		if running == 0 || time.Now().After(deadline) {
			return
		}
		if !said {
			fmt.Fprintf(stderr, "%s: waiting for %d calls the job had started\n", name, running)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(poll):
		}
	}
}
