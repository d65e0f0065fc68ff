//go:build !unix

package loadtest

import "time"

// processCPU returns 0 where getrusage is not available; the harness then
// reports no CPU figures.
func processCPU() time.Duration { return 0 }
