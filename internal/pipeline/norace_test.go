//go:build !race

package pipeline

// raceEnabled reports a build with the race detector, under which
// sync.Pool drops items at random and allocation counts do not hold.
const raceEnabled = false
