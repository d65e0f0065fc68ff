package main

import (
	"context"
	"fmt"
	"iter"
	"os"
	"slices"
	"strings"

	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/registry"
	"github.com/hubkit/iothub/service"
)

// targets are what a run invokes, read before any client exists.
type targets struct {
	// list holds the ids of -devices, each once, in order; nil for a
	// query.
	list []string
	// query selects the targets when list is nil.
	query string
	// module, when not empty, is the module of each device to invoke
	// (-module): the targets are that module of every device selected.
	module string
	// done holds the targets an earlier run settled (-resume), with their
	// last outcome: the run skips them.
	done map[service.Target]service.Outcome
}

// loadTargets reads -devices and, with -resume, the report of the earlier
// run (printing its warnings); without -resume it refuses to overwrite a
// report.
func loadTargets(cfg config, msg cli.Stderr) (targets, error) {
	t := targets{query: cfg.query, module: cfg.module}
	if cfg.devices != "" {
		ids, err := parseDevices(cfg.devices)
		if err != nil {
			return t, err
		}
		t.list = uniq(ids)
	}
	switch {
	case cfg.resume:
		done, warn, err := readReport(cfg.report, cfg.retryUnknown)
		if err != nil {
			return t, fmt.Errorf("-resume: %w", err)
		}
		for _, w := range warn {
			msg.Println("-resume:", w)
		}
		t.done = done
	case cfg.report != "" && !cfg.dryRun:
		if fi, err := os.Stat(cfg.report); err == nil && fi.Size() > 0 {
			return t, fmt.Errorf("-report %s exists; add -resume to continue that run, or remove it", cfg.report)
		}
	}
	return t, nil
}

// parseDevices reads -devices: "id1,id2,…" or "@FILE" with one id per
// line, blank lines and # comments skipped.
func parseDevices(arg string) ([]string, error) {
	var ids []string
	if file, ok := strings.CutPrefix(arg, "@"); ok {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("-devices: %w", err)
		}
		text := string(data)
		ids = make([]string, 0, strings.Count(text, "\n")+1)
		for line := range strings.Lines(text) {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			ids = append(ids, line)
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("-devices: %s lists no device", file)
		}
		return ids, nil
	}
	for id := range strings.SplitSeq(arg, ",") {
		id = strings.TrimSpace(id)
		if id == "" {
			return nil, fmt.Errorf("-devices: empty device id in %q", arg)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// uniq drops the repeated ids, keeping the first of each.
func uniq(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	return slices.DeleteFunc(ids, func(id string) bool {
		dup := seen[id]
		seen[id] = true
		return dup
	})
}

// total is the number of targets, or -1 until a query's count is known.
func (t targets) total() int {
	if t.list != nil {
		return len(t.list)
	}
	return -1
}

// seq yields every target once: the list, or the twins of the query
// (through reg), page by page as they are needed; with a module, that
// module of each of those devices.
func (t targets) seq(ctx context.Context, reg *registry.Client) iter.Seq2[service.Target, error] {
	var devices iter.Seq2[service.Target, error]
	if t.list != nil {
		devices = service.Devices(t.list...)
	} else {
		devices = dedupe(service.TargetsOf(reg.QueryTwins(ctx, t.query, nil)))
	}
	if t.module == "" {
		return devices
	}
	return onModule(devices, t.module)
}

// onModule turns device targets into targets on their module.
func onModule(devices iter.Seq2[service.Target, error], module string) iter.Seq2[service.Target, error] {
	return func(yield func(service.Target, error) bool) {
		for t, err := range devices {
			if err == nil {
				t.ModuleID = module
			}
			if !yield(t, err) {
				return
			}
		}
	}
}

// dedupe drops repeated targets, so that none is invoked twice.
func dedupe(targets iter.Seq2[service.Target, error]) iter.Seq2[service.Target, error] {
	return func(yield func(service.Target, error) bool) {
		seen := make(map[service.Target]bool)
		for t, err := range targets {
			if err == nil {
				if seen[t] {
					continue
				}
				seen[t] = true
			}
			if !yield(t, err) {
				return
			}
		}
	}
}

// skipDone drops the targets in done, reporting each with its earlier
// outcome.
func skipDone(targets iter.Seq2[service.Target, error], done map[service.Target]service.Outcome, skipped func(service.Outcome)) iter.Seq2[service.Target, error] {
	return func(yield func(service.Target, error) bool) {
		for t, err := range targets {
			if o, ok := done[t]; ok && err == nil {
				skipped(o)
				continue
			}
			if !yield(t, err) {
				return
			}
		}
	}
}

// targetName is "device" or "device/module".
func targetName(t service.Target) string {
	if t.ModuleID != "" {
		return t.DeviceID + "/" + t.ModuleID
	}
	return t.DeviceID
}

// dryRun lists the targets the run would invoke on stdout, and how many on
// stderr.
func (r *fleetRun) dryRun(ctx context.Context) int {
	n, skipped := 0, map[service.Outcome]int{}
	for t, err := range skipDone(r.targets.seq(ctx, r.reg), r.targets.done, func(o service.Outcome) { skipped[o]++ }) {
		if err != nil {
			r.msg.Fail("list the targets", err)
			return cli.ExitFailed
		}
		if _, err := fmt.Fprintln(r.d.stdout, targetName(t)); err != nil {
			r.msg.Println(err)
			return cli.ExitFailed
		}
		n++
	}
	if ctx.Err() != nil {
		r.msg.Printf("dry run: interrupted\n")
		return cli.ExitFailed
	}
	r.msg.Printf("dry run: %d targets would be invoked", n)
	if s, u := skipped[service.OutcomeSucceeded], skipped[service.OutcomeUnknown]; s+u > 0 {
		fmt.Fprintf(r.d.stderr, " (skipped: %d succeeded before, %d may have run)", s, u)
	}
	fmt.Fprintln(r.d.stderr)
	return cli.ExitOK
}
