package main

import (
	"github.com/hubkit/iothub/examples/internal/cli"
	"github.com/hubkit/iothub/examples/internal/simhub"
)

// connect opens the hub the credentials choose and makes the run's
// clients; nothing is sent. Without credentials it uses the embedded
// simulated hub, a troubled fleet of -simulate devices, and says so.
func (r *fleetRun) connect() (*cli.Conn, error) {
	conn, err := r.cfg.creds.Open(r.d.sim, &simhub.Options{Fleet: r.cfg.simulate, Troubled: true})
	if err != nil {
		return nil, stopWith(cli.OpenExit(err), err)
	}
	conn.With = r.tel.Apply
	if conn.Sim != nil {
		r.msg.Printf("no credentials given; using the embedded simulated hub %s with %d devices, "+
			"some offline, some slow, some failing and some losing their response\n",
			conn.Sim.HostName(), len(conn.Sim.DeviceIDs()))
	}
	if conn.Sim != nil && r.cfg.mode == "job" {
		r.svc, err = conn.Sim.OwnerClient(conn.With) // jobs need registry rights too
	} else {
		r.svc, err = conn.ServiceClient()
	}
	if err == nil {
		r.reg, err = conn.RegistryClient()
	}
	if err != nil {
		conn.Close()
		return nil, stopWith(cli.ExitUsage, err)
	}
	return conn, nil
}
