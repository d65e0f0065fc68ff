package leakcheck

import (
	"strings"
	"testing"
	"time"
)

// TestLeakedFindsAGoroutine proves the check can fail: a goroutine started
// after the snapshot is reported until it returns.
func TestLeakedFindsAGoroutine(t *testing.T) {
	base := Take()
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-release
	}()
	left := base.Leaked()
	if len(left) != 1 || !strings.Contains(left[0], "TestLeakedFindsAGoroutine") {
		t.Fatalf("Leaked = %q, want the one goroutine of this test", left)
	}
	close(release)
	<-done
	deadline := time.Now().Add(Wait)
	for len(base.Leaked()) != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if left := base.Leaked(); len(left) != 0 {
		t.Errorf("after it returned, Leaked = %q", left)
	}
	base.Check(t)
}
