package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hubkit/iothub/internal/testkit/simfleet"
	"github.com/hubkit/iothub/iothubtest"
	"github.com/hubkit/iothub/service"
)

// sim is a running simulator.
type sim struct {
	srv              *iothubtest.Server
	devices          int // how many devices the fleet has
	connectionString string
	certPath         string
	tempDir          string // removed by close; "" when -cert-out was given
}

// start builds the hub and its fleet, serves it on cfg.addr and writes the
// certificate.
func start(cfg config) (*sim, error) {
	srv, err := listen(cfg)
	if err != nil {
		return nil, err
	}
	s := &sim{
		srv:              srv,
		devices:          len(simfleet.NamedIDs()) + cfg.devices + cfg.edge,
		connectionString: srv.ConnectionStringFor(iothubtest.Policy(cfg.policy)),
		certPath:         cfg.certOut,
	}
	if s.certPath == "" {
		if s.tempDir, err = os.MkdirTemp("", "iothubsim-"); err != nil {
			s.close()
			return nil, err
		}
		s.certPath = filepath.Join(s.tempDir, "ca.pem")
	}
	if err := os.WriteFile(s.certPath, srv.CertificatePEM(), 0o644); err != nil {
		s.close()
		return nil, fmt.Errorf("-cert-out: %w", err)
	}
	if abs, err := filepath.Abs(s.certPath); err == nil {
		s.certPath = abs
	}
	return s, nil
}

// listen starts the hub on cfg.addr. The hub's host name carries the port
// unless it is 443, so the port must be known before the hub is made: for
// port 0 a free port is held while the fleet is built, and released just
// before the hub listens on it; should someone take it in between, it
// tries another.
func listen(cfg config) (*iothubtest.Server, error) {
	host, port, _ := net.SplitHostPort(cfg.addr) // checked by config.check
	for attempt := 1; ; attempt++ {
		p, hold := port, io.Closer(nopCloser{})
		if p == "0" {
			ln, err := net.Listen("tcp", cfg.addr)
			if err != nil {
				return nil, err
			}
			_, p, _ = net.SplitHostPort(ln.Addr().String())
			hold = ln
		}
		hub := newHub(cfg, hostName(cfg.host, p))
		_ = hold.Close()
		srv, err := hub.ListenTLS(net.JoinHostPort(host, p))
		if err == nil {
			return srv, nil
		}
		hub.Close()
		if port != "0" || attempt == 3 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
	}
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// hostName is the hub's host name for clients: host, with the port unless
// it is 443.
func hostName(host, port string) string {
	if port == "443" {
		return host
	}
	return net.JoinHostPort(host, port)
}

// newHub makes the hub with its fleet.
func newHub(cfg config, hostName string) *iothubtest.Hub {
	opts := iothubtest.Options{
		HostName:              hostName,
		MaxRecorded:           cfg.maxRecorded,
		JobDeviceOpsPerSecond: cfg.jobRate,
		DailyMessages:         cfg.dailyMessages,
	}
	if cfg.tier != "" {
		opts.Throttle = &iothubtest.Throttle{Tier: service.Tier(cfg.tier), Units: cfg.units}
	}
	hub := iothubtest.New(&opts)
	simfleet.Add(hub, &simfleet.Options{Fleet: cfg.devices, Edge: cfg.edge, Troubled: cfg.troubled, SlowLatency: cfg.slowLatency})
	return hub
}

// close stops serving, cancelling the calls in flight, stops the hub's
// jobs, and removes the temporary certificate.
func (s *sim) close() {
	s.srv.Close()
	if s.tempDir != "" {
		_ = os.RemoveAll(s.tempDir)
	}
}
