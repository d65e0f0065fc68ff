package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// binaries are the built programs.
type binaries struct{ sim, fleet, ref string }

// build compiles the simulator and both programs into dir.
func build(dir string) (binaries, error) {
	b := binaries{sim: filepath.Join(dir, "iothubsim"), fleet: filepath.Join(dir, "fleet-reboot"), ref: filepath.Join(dir, "refprog")}
	for bin, pkg := range map[string]string{
		b.sim:   "github.com/hubkit/iothub/cmd/iothubsim",
		b.fleet: "github.com/hubkit/iothub/examples/fleet-reboot",
		b.ref:   "github.com/hubkit/iothub/internal/testkit/loadtest/cmd/refprog",
	} {
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return b, nil
}

// sim is the running simulator.
type sim struct {
	cmd              *exec.Cmd
	connectionString string
	certPath         string
}

// startSim starts cmd/iothubsim with n fleet devices and reads its two
// ready lines: the connection string and the certificate's path.
func startSim(bin, dir string, n int) (*sim, error) {
	cert := filepath.Join(dir, "ca.pem")
	cmd := exec.Command(bin, "-devices", strconv.Itoa(n), "-cert-out", cert, "-max-recorded", "1000")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &sim{cmd: cmd}
	r := bufio.NewReader(stdout)
	cs, err1 := r.ReadString('\n')
	path, err2 := r.ReadString('\n')
	if err := errors.Join(err1, err2); err != nil {
		s.stop()
		return nil, fmt.Errorf("start iothubsim: %w", err)
	}
	s.connectionString, s.certPath = strings.TrimSpace(cs), strings.TrimSpace(path)
	return s, nil
}

func (s *sim) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
}

// firstDevice is the device of the one-call run.
const firstDevice = "sim-fleet-00001"

// writeDevices writes the ids of fleet devices 1 to n, one a line.
func writeDevices(dir string, n int) (string, error) {
	name := filepath.Join(dir, "devices.txt")
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "sim-fleet-%05d\n", i)
	}
	return name, os.WriteFile(name, []byte(b.String()), 0o600)
}

// program is one of the measured programs.
type program struct {
	name   string
	args   func(concurrency int, devices string) []string // argv, the binary first
	before func() error                                   // prepares a run; may be nil
}

// result is what one run of a child cost.
type result struct {
	cpu, wall time.Duration
	maxRSS    int64 // bytes
	conns     int
}

// runChild runs argv with env, counting its sockets, and returns what it
// cost. A non-zero exit is an error, with the child's standard error.
func runChild(argv, env []string) (result, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	w := watchSockets(cmd.Process.Pid)
	err := cmd.Wait()
	wall := time.Since(start)
	conns := w.stop()
	if err != nil {
		return result{}, fmt.Errorf("%s: %v\n%s", filepath.Base(argv[0]), err, stderr.String())
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return result{}, errors.New("no rusage for the child (Linux only)")
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return result{cpu: cpu, wall: wall, maxRSS: ru.Maxrss * 1024, conns: conns}, nil
}

// socketWatch polls a process's open files for the sockets it has had.
type socketWatch struct {
	done chan struct{}
	seen chan int
}

func watchSockets(pid int) *socketWatch {
	w := &socketWatch{done: make(chan struct{}), seen: make(chan int)}
	fdDir := "/proc/" + strconv.Itoa(pid) + "/fd"
	go func() {
		sockets := map[string]bool{} // socket inode link: is a TCP socket
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			scanSockets(fdDir, sockets)
			select {
			case <-w.done:
				n := 0
				for _, tcp := range sockets {
					if tcp {
						n++
					}
				}
				w.seen <- n
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// scanSockets adds the socket inodes open in fdDir to seen, each marked
// whether it is a TCP socket: a name lookup's own socket (the C resolver
// may open a netlink or a Unix socket) is not a connection.
func scanSockets(fdDir string, seen map[string]bool) {
	entries, err := os.ReadDir(fdDir)
	if err != nil {
		return // the process has exited, or not started yet
	}
	var tcp map[string]bool // read once a scan, only for new sockets
	for _, e := range entries {
		l, err := os.Readlink(fdDir + "/" + e.Name())
		if err != nil || !strings.HasPrefix(l, "socket:") {
			continue
		}
		if _, ok := seen[l]; ok {
			continue
		}
		if tcp == nil {
			tcp = tcpInodes(filepath.Dir(fdDir))
		}
		seen[l] = tcp[l]
	}
}

// tcpInodes returns the TCP sockets of the process's network namespace,
// as "socket:[inode]" links, from procDir/net/tcp and tcp6.
func tcpInodes(procDir string) map[string]bool {
	m := map[string]bool{}
	for _, f := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(filepath.Join(procDir, "net", f))
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(data)) {
			// sl local rem st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
			if fields := strings.Fields(line); len(fields) > 9 && fields[0] != "sl" {
				m["socket:["+fields[9]+"]"] = true
			}
		}
	}
	return m
}

// stop ends the watch and returns how many distinct sockets it saw.
func (w *socketWatch) stop() int {
	close(w.done)
	return <-w.seen
}
