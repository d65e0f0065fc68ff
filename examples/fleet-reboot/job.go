package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/service"
)

// runJob schedules an IoT Hub device-method job instead of invoking from
// here: the hub paces the calls, and this program waits, then reads the
// per-device results. The first interrupt cancels the job (devices it has
// not reached are reported not-delivered); the second stops waiting.
func (r *fleetRun) runJob(ctx context.Context) int {
	spec, skipped, err := r.planJob(ctx)
	if err != nil {
		return exit(r.msg, err)
	}
	if spec.QueryCondition == "" && len(spec.DeviceIDs) == 0 {
		r.msg.Printf("nothing to do: all %d targets succeeded or may have run already\n", len(skipped))
		if slices.Contains(skipped, service.OutcomeUnknown) {
			return cli.ExitFailed
		}
		return cli.ExitOK
	}
	rw, err := r.openReport()
	if err != nil {
		return exit(r.msg, err)
	}
	scheduled := time.Now()
	jobID, err := r.schedule(ctx, spec)
	if err != nil {
		rw.close()
		return exit(r.msg, err)
	}

	// Waiting outlives the first interrupt, which cancels the job; the
	// second stops waiting.
	wctx, stopWaiting := r.cancelOnInterrupt(ctx, jobID)
	defer stopWaiting()
	code := r.waitJob(wctx, jobID)

	prog := newProgress(r.display(), -1, scheduled)
	for _, o := range skipped {
		prog.skip(o)
	}
	if err := r.jobResults(wctx, jobID, rw, prog); err != nil {
		r.msg.Fail("read the job's device results", err)
		code = cli.ExitFailed
	}
	code = max(code, r.endRun(ctx, prog, nil))
	return r.closeReport(rw, code, false)
}

// planJob returns the job's spec, and the outcomes of the targets it
// leaves out because an earlier run settled them. A list, or a resumed
// query, becomes a list of device ids; a fresh query becomes the job's
// query condition.
func (r *fleetRun) planJob(ctx context.Context) (spec service.MethodJob, skipped []service.Outcome, err error) {
	spec.Method = r.params
	add := func(id string) {
		if o, ok := r.targets.done[service.Target{DeviceID: id}]; ok {
			skipped = append(skipped, o)
			return
		}
		spec.DeviceIDs = append(spec.DeviceIDs, id)
	}
	switch {
	case r.targets.list != nil:
		for _, id := range r.targets.list {
			add(id)
		}
	case len(r.targets.done) > 0:
		// Resuming a query: the condition cannot leave out the devices
		// that succeeded, so list the others.
		for tw, err := range r.reg.QueryTwins(ctx, r.targets.query, nil) {
			if err != nil {
				return spec, nil, failedTo("list the targets", err)
			}
			add(tw.DeviceID)
		}
	default:
		cond, devices := whereClause(r.targets.query)
		if !devices {
			return spec, nil, errors.New("-mode job works on devices: the query must be FROM devices")
		}
		spec.QueryCondition = cmp.Or(cond, "*")
	}
	return spec, skipped, nil
}

// schedule schedules the job under a new id and returns the id.
func (r *fleetRun) schedule(ctx context.Context, spec service.MethodJob) (string, error) {
	jobID := fmt.Sprintf("fleet-reboot-%s-%04x", time.Now().UTC().Format("20060102T150405"), rand.N(0x10000))
	job, err := r.svc.ScheduleMethodJob(ctx, jobID, spec, nil)
	if err != nil {
		return "", failedTo("schedule the job", err)
	}
	r.msg.Printf("scheduled job %s (%s)\n", job.ID, job.Status)
	return jobID, nil
}

// cancelOnInterrupt returns the context to wait for the job with: the
// first interrupt (ctx) cancels the job, the second (abort) ends the
// returned context. Call stop when done waiting.
func (r *fleetRun) cancelOnInterrupt(ctx context.Context, jobID string) (wctx context.Context, stop func()) {
	wctx, stop = context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		select {
		case <-ctx.Done():
		case <-wctx.Done():
			return
		}
		r.msg.Printf("interrupted: cancelling job %s (interrupt again to stop waiting for it)\n", jobID)
		if _, err := r.svc.CancelJob(wctx, jobID, nil); err != nil {
			r.msg.Fail("cancel the job", err)
		}
		select {
		case <-r.d.abort:
			stop()
		case <-wctx.Done():
		}
	}()
	return wctx, stop
}

// pollEvery is how often the job is polled.
func (r *fleetRun) pollEvery() time.Duration {
	if r.d.progressEvery > 0 {
		return r.d.progressEvery
	}
	return time.Second
}

// waitJob waits for the job to end, printing its statistics as they
// change, and returns ExitOK when it completed. A job that ended otherwise
// (cancelled, failed) may leave calls running: it waits for those too, so
// that the report says how they ended rather than "running".
func (r *fleetRun) waitJob(ctx context.Context, jobID string) int {
	poll := r.pollEvery()
	opts := service.WaitOptions{
		MinPollInterval: poll, MaxPollInterval: max(poll, 5*time.Second),
		OnProgress: func(j service.Job) {
			if s := j.Statistics; s != nil {
				r.msg.Printf("job %s %s: %d devices: %d succeeded, %d failed, %d running, %d pending\n",
					j.ID, j.Status, s.DeviceCount, s.SucceededCount, s.FailedCount, s.RunningCount, s.PendingCount)
			}
		},
	}
	job, err := r.svc.WaitJob(ctx, jobID, &opts)
	switch {
	case err != nil:
		r.msg.Fail("wait for the job", err)
		return cli.ExitFailed
	case job.Status != service.JobStatusCompleted:
		r.msg.Printf("job %s ended %s %s %s\n", jobID, job.Status, job.FailureReason, job.StatusMessage)
		r.settle(ctx, job, opts)
		return cli.ExitFailed
	}
	return cli.ExitOK
}

// settle waits (service.WaitOptions.WaitForRunningCalls) until no call
// the ended job started is still running, for at most the longest a call
// can take (connect and response timeouts plus service.NetworkMargin). It
// gives up early on the second interrupt (ctx) or when the records cannot
// be read; the report then says "unknown" for calls still running.
func (r *fleetRun) settle(ctx context.Context, job service.Job, opts service.WaitOptions) {
	if s := job.Statistics; s != nil && s.RunningCount > 0 {
		r.msg.Printf("waiting for %d calls the job had started\n", s.RunningCount)
	}
	timeout := cmp.Or(r.params.TimeoutInSeconds, service.DefaultTimeoutInSeconds)
	longest := time.Duration(timeout+r.params.ConnectTimeoutInSeconds)*time.Second + service.NetworkMargin
	sctx, cancel := context.WithTimeout(ctx, longest)
	defer cancel()
	opts.WaitForRunningCalls, opts.OnProgress = true, nil
	_, err := r.svc.WaitJob(sctx, job.ID, &opts)
	switch {
	case err == nil, ctx.Err() != nil:
	case sctx.Err() != nil:
		r.msg.Printf("stopped waiting for the job's calls after %v; the report says unknown for those still running\n", longest)
	default:
		r.msg.Fail("wait for the job's calls", err)
	}
}

// jobResults reads the job's per-device results, as far as the hub has
// them, into the report and the progress.
func (r *fleetRun) jobResults(ctx context.Context, jobID string, rw *reportWriter, prog *progress) error {
	for dr, err := range r.svc.JobDeviceResults(ctx, jobID, nil) {
		if err != nil {
			return err
		}
		rw.write(resultOf(dr), false)
		prog.add(dr.Outcome)
	}
	return nil
}

// resultOf is a job's device result as the report and the client mode
// give it.
func resultOf(r service.DeviceJobResult) service.Result {
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
	return res
}
