package loadtest

import (
	"bytes"
	"context"
	"net"
	"os"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Usage is a snapshot of the process's resource use.
type Usage struct {
	Wall   time.Time
	CPU    time.Duration // user + system CPU time of the whole process
	Allocs uint64        // heap objects allocated since the start
	Bytes  uint64        // heap bytes allocated since the start
}

var usageSamples = []metrics.Sample{
	{Name: "/gc/heap/allocs:objects"},
	{Name: "/gc/heap/allocs:bytes"},
}

// Snapshot reads the process's CPU time and allocation counters. It does
// not stop the world.
func Snapshot() Usage {
	u := Usage{Wall: time.Now(), CPU: processCPU()}
	s := make([]metrics.Sample, len(usageSamples))
	copy(s, usageSamples)
	metrics.Read(s)
	u.Allocs = s[0].Value.Uint64()
	u.Bytes = s[1].Value.Uint64()
	return u
}

// Delta is the resource use between two snapshots.
type Delta struct {
	Wall   time.Duration
	CPU    time.Duration
	Allocs uint64
	Bytes  uint64
}

// Sub returns the use from earlier to u.
func (u Usage) Sub(earlier Usage) Delta {
	return Delta{
		Wall:   u.Wall.Sub(earlier.Wall),
		CPU:    u.CPU - earlier.CPU,
		Allocs: u.Allocs - earlier.Allocs,
		Bytes:  u.Bytes - earlier.Bytes,
	}
}

// ProcessCPU returns the user and system CPU time a process (such as the
// harness's child hub) has used so far, from /proc/PID/stat, in clock
// ticks of 10 ms; 0 where /proc is not available.
func ProcessCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields are
	// counted after its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0
	}
	// Fields 14 and 15 of stat (utime, stime) are 11 and 12 here.
	ut, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	st, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// ResetPeakRSS resets the kernel's high-water mark of the process's
// resident set (VmHWM) to its current size, so that PeakRSS then reports
// the peak of what follows. It reports whether the kernel allowed it.
func ResetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// PeakRSS returns the process's peak resident set size (VmHWM) in bytes,
// or 0 where /proc is not available.
func PeakRSS() uint64 { return procStatus("VmHWM:") }

// RSS returns the process's resident set size (VmRSS) in bytes.
func RSS() uint64 { return procStatus("VmRSS:") }

func procStatus(field string) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	i := bytes.Index(b, []byte(field))
	if i < 0 {
		return 0
	}
	line := b[i+len(field):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	f := bytes.Fields(line)
	if len(f) == 0 {
		return 0
	}
	kb, err := strconv.ParseUint(string(f[0]), 10, 64)
	if err != nil {
		return 0
	}
	return kb << 10
}

// LiveHeap returns the heap bytes found live by the last garbage
// collection.
func LiveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Sampler records the largest live heap (as of each GC) and goroutine
// count while it runs.
type Sampler struct {
	stop     chan struct{}
	done     chan struct{}
	liveMax  atomic.Uint64
	goMax    atomic.Uint64
	interval time.Duration
}

// StartSampler samples every interval until Stop.
func StartSampler(interval time.Duration) *Sampler {
	s := &Sampler{stop: make(chan struct{}), done: make(chan struct{}), interval: interval}
	go s.run()
	return s
}

func (s *Sampler) run() {
	defer close(s.done)
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/sched/goroutines:goroutines"}}
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		metrics.Read(samples)
		if v := samples[0].Value.Uint64(); v > s.liveMax.Load() {
			s.liveMax.Store(v)
		}
		if v := samples[1].Value.Uint64(); v > s.goMax.Load() {
			s.goMax.Store(v)
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// Stop ends sampling and returns the largest live heap and goroutine count
// seen.
func (s *Sampler) Stop() (liveHeap, goroutines uint64) {
	close(s.stop)
	<-s.done
	return s.liveMax.Load(), s.goMax.Load()
}

// DialCounter counts the connections a transport opens, and how many of
// them are still open.
type DialCounter struct {
	dialer net.Dialer
	opened atomic.Int64
	closed atomic.Int64
}

// DialContext dials and counts; use it as http.Transport.DialContext.
func (d *DialCounter) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.opened.Add(1)
	return &countedConn{Conn: c, d: d}, nil
}

// Opened returns how many connections were dialled.
func (d *DialCounter) Opened() int64 { return d.opened.Load() }

// Open returns how many of them are still open.
func (d *DialCounter) Open() int64 { return d.opened.Load() - d.closed.Load() }

type countedConn struct {
	net.Conn
	d    *DialCounter
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.d.closed.Add(1) })
	return c.Conn.Close()
}
