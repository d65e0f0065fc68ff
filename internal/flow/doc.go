// Package flow holds the two decisions of a fleet fan-out, as pure logic:
// the Controller, which paces the starts of calls at the rate the hub
// accepts, and the Breaker, which decides when a failure means that no
// further target can succeed now. Neither does I/O, starts goroutines or
// reads a clock: every method takes the time it is asked at, so both are
// deterministic and tested in virtual time (see the simulation in
// sim_test.go). Both are safe for concurrent use.
//
// # The controller
//
// IoT Hub meters direct methods per unit of payload (4 KB steps), shares
// the meter with everything else that uses the hub, and does not publish
// the limit it applies at a given moment, so a caller cannot be told the
// rate. The controller finds it from what the hub signals, in the manner
// of TCP congestion control, but on a rate rather than a window: pacing
// keeps starts evenly spaced, so a hub's token bucket sees no bursts and
// a caller's concurrency can stay large for slow devices without making
// the fan-out burstier.
//
// Signals, per call (Done):
//   - Accepted, with its latency: the hub took the call. Accepted calls
//     per second over a short window are the measured rate. The lowest
//     latency of each ProbeInterval, against the lowest of the last
//     BaselineWindow, shows traffic shaping's queue: the hub queues
//     over-limit calls and serves them at its limit before it answers
//     any 429, so latency rises first. The lowest, not the median: a
//     queue delays every call, the fastest device's too, while the
//     median moves with the mix of devices that happen to answer.
//   - Throttled (429), with any Retry-After.
//   - Busy (503).
//   - Failed: anything else; it changes nothing.
//
// Rules:
//   - Slow start: from Policy.InitialRate (50/s) the rate doubles every
//     round in which the pacing, not the caller, held the calls back,
//     until the first congestion signal. A round is SlowStartInterval
//     (50 ms) or SlowStartCalls (8) calls, whichever is longer, so that a
//     low rate does not double on no evidence; it ends at the first
//     reservation or end of a call at which both hold, and a doubling
//     moves the start booked at the old rate up to the new rate's
//     interval, so that the new rate's first round is not one start
//     short. A round's length is set as it begins: after a round that
//     began at 1,000 calls/s or more, a hub whose round trip is shorter
//     gets rounds of that round trip (at least 5 ms). A 429 or a queue
//     shows within one round trip, so the doubling never outruns the
//     hub's answer, and a fast hub is not made to wait 50 ms a doubling;
//     below that rate, and for the first round above it, the 50 ms
//     rounds keep the overshoot into a small hub's bucket to a few calls
//     (without that first 50 ms round above 1,000/s, a 40/s hub that
//     queues gets 3% of its calls throttled, TestSimulation). A
//     Config.Seed starts at the seed instead.
//   - On a 429 the rate drops to Backoff (0.95) times the rate the hub
//     accepted over the last ProbeInterval, never above the current
//     rate. Slow start's first 429 drops it to the previous round's rate
//     or the accepted rate of the last two rounds, whichever is higher:
//     accepted calls are counted when they end, so while the rate
//     doubles they trail it by a latency. That
//     estimate is biased high by what the hub's burst let through; a
//     high estimate corrects itself at the next 429, a low one would
//     cost throughput, so the bias is the right way round. Once 429s
//     have gone on for 50 ms the bucket is known to be empty and the
//     accepted calls since the first 429 give the hub's rate exactly.
//   - One cut per round trip: a 429 of a call that started before the
//     last cut is the same congestion event and is ignored, as TCP cuts
//     once per window. Each further cut within one run of 429s cuts
//     deeper (Backoff squared, cubed, …), so an estimate inflated by a
//     large burst converges in a few round trips. Outside slow start one
//     cut never goes below MaxCut (half) of the rate.
//   - A growing queue (lowest latency above QueueFactor × baseline +
//     QueueMargin, and above the last interval's) is a 429 that has not
//     happened yet: the same cut, before any call is refused. A queue
//     that holds or drains only stops growth.
//   - A 503 cuts the rate by BusyBackoff (0.9), once per round trip.
//   - Probing: after a cut the rate climbs back to the estimated limit
//     in doubling steps (2%, 4%, 8%, …), holds there for Hold (1 s) or
//     HoldCalls (250) calls, whichever is longer, and then probes above
//     it in doubling steps up to MaxProbeStep (25%) per ProbeInterval
//     (250 ms), until the hub objects. A limit that doubles is found in
//     about two seconds; the hold bounds how often probing costs a 429.
//   - The rate never grows while the caller, not the pacing, limits the
//     calls (its concurrency, slow devices, or no targets left): that
//     gives no evidence that more would pass.
//   - Retry-After is for the target that got it: its retry waits, and
//     no other call does. Only when, within Window, at least PauseMin
//     (20) calls and PauseShare (half) of all calls were throttled with
//     a Retry-After does every start wait for it (BackingOff): that hub
//     is refusing everyone. Pausing every worker for each 429 is what
//     held the old fan-out to a fifth of the hub's limit.
//   - The rate stays within Config.Cap and at least MinRate.
//
// Reserve books one start and returns how long to wait for it. It is
// meant for one dispatcher that asks for the next start only after the
// previous one's wait: a reservation is made at the rate of its moment,
// so booking many ahead would commit them to a rate that is already
// stale. TryReserve is the shortcut around that dispatcher: it books a
// start only when the schedule has room for it at once (within a given
// slack), and nothing otherwise, so a caller free to start may go without
// a hand-off while every start that must wait still goes through the
// dispatcher. The controller has no window of its own; the caller's
// concurrency bounds the calls in flight.
//
// Measured in the simulation (virtual time, 10 ms device latency, 0.5 ms
// network each way, every second 429 carrying Retry-After: 1, 10,000
// targets, no rate given) against a 1,000/s token bucket of burst 50:
// 945 to 971 calls/s over the whole run with 0 to 0.18% of calls
// throttled, with 64 and 256 workers, with and without traffic shaping
// and with devices spread from 10 ms to 200 ms; a limit that halves and
// doubles back is followed within about 1 s and 2 s, to within 15%; at
// 40/s (burst 40) 41 to 42 calls/s with at most 1.8% of calls throttled,
// most of it slow start's overshoot into a bucket a second deep.
// One call costs the controller about 70 ns (a Reserve and a Done), with
// no allocation.
//
// # The breaker
//
// See Breaker for the faults it recognises and after how many calls it
// trips for each.
package flow
