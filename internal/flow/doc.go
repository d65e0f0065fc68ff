// Package flow holds the decisions of a fleet fan-out, as pure logic: the
// Breaker, which decides when a failure means no further target can
// succeed now. It does no I/O, starts no goroutines and reads no clock:
// every method takes the time it is asked at.
package flow
