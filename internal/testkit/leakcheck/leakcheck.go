// Package leakcheck lets tests prove that the code they exercise leaves no
// goroutine behind. It compares the goroutines alive when a test starts with
// those alive when it ends, waiting a bounded time for stragglers to return.
//
// Call it from a test that is not parallel: goroutines of tests running at
// the same time would be counted as leaks. Goroutines started by the testing
// package itself (subtests) are ignored.
package leakcheck

import (
	"bytes"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// Wait is how long Check waits for the goroutines started during a test to
// return.
const Wait = 5 * time.Second

// Snapshot is the set of goroutines alive at one moment.
type Snapshot map[string]bool

// Take records the goroutines alive now.
func Take() Snapshot {
	s := make(Snapshot)
	for _, g := range goroutines() {
		s[g.id] = true
	}
	return s
}

// Check fails t if goroutines started after base are still running after
// Wait, and lists their stacks.
func (base Snapshot) Check(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		left := base.extra()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, g := range left {
				b.WriteString(g.stack)
				b.WriteString("\n\n")
			}
			t.Errorf("%d goroutines left behind:\n%s", len(left), b.String())
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Leaked returns the goroutines started after base that are still running,
// as stack traces, without waiting.
func (base Snapshot) Leaked() []string {
	var out []string
	for _, g := range base.extra() {
		out = append(out, g.stack)
	}
	return out
}

// Cleanup takes a snapshot now and checks it when t ends.
func Cleanup(t testing.TB) {
	base := Take()
	t.Cleanup(func() { base.Check(t) })
}

func (base Snapshot) extra() []goroutine {
	var out []goroutine
	for _, g := range goroutines() {
		if base[g.id] || ignored(g.stack) {
			continue
		}
		out = append(out, g)
	}
	return out
}

type goroutine struct{ id, stack string }

// goroutines returns every goroutine's id and stack but the caller's.
func goroutines() []goroutine {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []goroutine
	for i, st := range bytes.Split(buf, []byte("\n\n")) {
		if i == 0 {
			continue // this goroutine
		}
		head, _, _ := bytes.Cut(st, []byte("\n"))
		fields := strings.Fields(string(head)) // goroutine 12 [chan receive]:
		if len(fields) < 2 || fields[0] != "goroutine" {
			continue
		}
		out = append(out, goroutine{id: fields[1], stack: string(st)})
	}
	return out
}

// ignored reports goroutines that belong to the testing package or the
// runtime rather than to the code under test.
func ignored(stack string) bool {
	return slices.ContainsFunc([]string{
		"testing.tRunner(",
		"created by testing.(*T).Run",
		"created by testing.(*F).Fuzz",
		"created by os/signal.Notify",
	}, func(s string) bool { return strings.Contains(stack, s) })
}
