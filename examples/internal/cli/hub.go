package cli

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/digitaltwin"
	"github.com/hubkit/iothub/examples/internal/simhub"
	"github.com/hubkit/iothub/registry"
	"github.com/hubkit/iothub/service"
)

// EnvConnectionString is the environment variable that holds the
// connection string when -connection-string is not given.
const EnvConnectionString = "IOTHUB_CONNECTION_STRING"

// Credentials are the flags that choose the hub and how to sign in: a
// connection string, or a hub host name to sign in with Microsoft Entra ID.
// With neither, a program uses the embedded simulated hub.
type Credentials struct {
	ConnectionString string // -connection-string, or $IOTHUB_CONNECTION_STRING
	Hub              string // -hub HOST: sign in with Microsoft Entra ID
}

// Register defines -connection-string and -hub on fs.
func (c *Credentials) Register(fs *flag.FlagSet) {
	fs.StringVar(&c.ConnectionString, "connection-string", "", "service connection string (default $"+EnvConnectionString+")")
	fs.StringVar(&c.Hub, "hub", "", "hub host name, to sign in with Microsoft Entra ID instead of a connection string")
}

// Resolve reads the connection string from getenv when neither flag is
// given, and refuses both flags at once.
func (c *Credentials) Resolve(getenv func(string) string) error {
	if c.ConnectionString == "" && c.Hub == "" {
		c.ConnectionString = getenv(EnvConnectionString)
	}
	if c.ConnectionString != "" && c.Hub != "" {
		return errors.New("give either -connection-string or -hub, not both")
	}
	return nil
}

// Given reports whether credentials were given: false means the embedded
// simulated hub.
func (c Credentials) Given() bool { return c.ConnectionString != "" || c.Hub != "" }

// Conn is the hub a program talks to, as its Credentials chose it. It
// makes the program's clients.
type Conn struct {
	// Sim is the embedded simulated hub, when no credentials were given.
	Sim *simhub.Hub

	connectionString string
	host             string
	cred             azcore.TokenCredential
	ownsSim          bool

	// With, when set, changes the options of every client the Conn makes,
	// such as otelsetup.Telemetry.Apply.
	With func(*iothub.ClientOptions)
}

// options are the options of a client of a real hub: nil, or what With
// makes of them.
func (c *Conn) options() *iothub.ClientOptions {
	if c.With == nil {
		return nil
	}
	o := &iothub.ClientOptions{}
	c.With(o)
	return o
}

// ErrSimulatedHub marks the failure to start the embedded simulated hub;
// anything else Open returns is a problem with the credentials.
var ErrSimulatedHub = errors.New("start the embedded simulated hub")

// Open returns the hub c chooses. With Hub it gets the Microsoft Entra
// credential of azidentity's DefaultAzureCredential. With no credentials
// it uses sim, or when sim is nil starts the embedded simulated hub with
// simOpts; the program says so on stderr. Open sends nothing.
func (c Credentials) Open(sim *simhub.Hub, simOpts *simhub.Options) (*Conn, error) {
	switch {
	case c.ConnectionString != "":
		return &Conn{connectionString: c.ConnectionString}, nil
	case c.Hub != "":
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			//lint:ignore ST1005 the message starts with a proper noun, as the programs have always printed it
			return nil, fmt.Errorf("Microsoft Entra credential: %w", err)
		}
		return &Conn{host: c.Hub, cred: cred}, nil
	case sim != nil:
		return &Conn{Sim: sim}, nil
	}
	sim, err := simhub.Start(simOpts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSimulatedHub, err)
	}
	return &Conn{Sim: sim, ownsSim: true}, nil
}

// OpenExit is the exit code for an error of Open: ExitFailed when the
// simulated hub did not start, ExitUsage for bad credentials.
func OpenExit(err error) int {
	if errors.Is(err, ErrSimulatedHub) {
		return ExitFailed
	}
	return ExitUsage
}

// ServiceClient returns a client for direct methods and jobs; on the
// simulated hub it signs with the "service" policy.
func (c *Conn) ServiceClient() (*service.Client, error) {
	switch {
	case c.connectionString != "":
		return service.NewClientFromConnectionString(c.connectionString, c.options())
	case c.cred != nil:
		return service.NewClient(c.host, c.cred, c.options())
	}
	return c.Sim.Client(c.With)
}

// StatisticsClient returns a service client that may read the service
// statistics, which need RegistryRead; on the simulated hub it signs with
// the "iothubowner" policy, since "service" has ServiceConnect only.
func (c *Conn) StatisticsClient() (*service.Client, error) {
	if c.connectionString == "" && c.cred == nil {
		return c.Sim.OwnerClient(c.With)
	}
	return c.ServiceClient()
}

// RegistryClient returns a client for the device registry.
func (c *Conn) RegistryClient() (*registry.Client, error) {
	switch {
	case c.connectionString != "":
		return registry.NewClientFromConnectionString(c.connectionString, c.options())
	case c.cred != nil:
		return registry.NewClient(c.host, c.cred, c.options())
	}
	return c.Sim.RegistryClient(c.With)
}

// DigitalTwinClient returns a client for Plug and Play digital twins; on
// the simulated hub it signs with the "service" policy.
func (c *Conn) DigitalTwinClient() (*digitaltwin.Client, error) {
	switch {
	case c.connectionString != "":
		return digitaltwin.NewClientFromConnectionString(c.connectionString, c.options())
	case c.cred != nil:
		return digitaltwin.NewClient(c.host, c.cred, c.options())
	}
	return c.Sim.DigitalTwinClient(c.With)
}

// Close stops the simulated hub if Open started it.
func (c *Conn) Close() {
	if c.ownsSim {
		c.Sim.Close()
	}
}

// OpenServiceClient opens the hub the credentials name and returns a
// service client on it, with the function that closes the hub. Without
// credentials it starts the embedded simulated hub and says so on msg,
// naming its devices. When it fails it prints why and returns the exit
// code, with a nil client.
func (c Credentials) OpenServiceClient(msg Stderr, with func(*iothub.ClientOptions)) (*service.Client, func(), int) {
	conn, err := c.Open(nil, nil)
	if err != nil {
		msg.Println(err)
		return nil, nil, OpenExit(err)
	}
	conn.With = with
	if conn.Sim != nil {
		msg.Printf("no credentials given; using the embedded simulated hub %s with devices %s\n",
			conn.Sim.HostName(), strings.Join(conn.Sim.DeviceIDs(), ", "))
	}
	client, err := conn.ServiceClient()
	if err != nil {
		conn.Close()
		return nil, nil, msg.Usage(err)
	}
	return client, conn.Close, ExitOK
}
