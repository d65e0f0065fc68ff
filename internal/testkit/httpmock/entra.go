package httpmock

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Role is a built-in Azure role a Microsoft Entra principal holds on the
// hub. The zero Role grants nothing.
type Role int

// The built-in IoT Hub data-plane roles.
const (
	// DataContributor ("IoT Hub Data Contributor") may perform every
	// data-plane operation, direct methods included.
	DataContributor Role = iota + 1
	// DataReader ("IoT Hub Data Reader") may only read.
	DataReader
	// RegistryContributor ("IoT Hub Registry Contributor") may read and
	// write the identity registry.
	RegistryContributor
	// TwinContributor ("IoT Hub Twin Contributor") may read and write
	// device and module twins; it may not invoke direct methods.
	TwinContributor
)

// String returns the role's name, as in "DataContributor".
func (r Role) String() string {
	switch r {
	case DataContributor:
		return "DataContributor"
	case DataReader:
		return "DataReader"
	case RegistryContributor:
		return "RegistryContributor"
	case TwinContributor:
		return "TwinContributor"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// Data actions (Microsoft.Devices/IotHubs/…) the routes require.
const (
	actDevicesRead   = "devices/read"
	actDevicesWrite  = "devices/write"
	actDevicesDelete = "devices/delete"
	actTwinsRead     = "twins/read"
	actTwinsWrite    = "twins/write"
	actJobsRead      = "jobs/read"
	actStatsRead     = "statistics/read"
	actConfigsRead   = "configurations/read"
	actInvokeMethod  = "directMethods/invoke/action"
)

// allows reports whether the role grants the data action.
func (r Role) allows(action string) bool {
	switch r {
	case DataContributor:
		return true
	case DataReader:
		return slices.Contains([]string{actDevicesRead, actTwinsRead, actJobsRead, actStatsRead, actConfigsRead}, action)
	case RegistryContributor:
		return slices.Contains([]string{actDevicesRead, actDevicesWrite, actDevicesDelete}, action)
	case TwinContributor:
		return slices.Contains([]string{actTwinsRead, actTwinsWrite}, action)
	}
	return false
}

// DefaultTokenLifetime is the lifetime of the tokens a Credential mints
// unless TokenOptions.Lifetime says otherwise.
const DefaultTokenLifetime = time.Hour

// TokenOptions configures a Credential. The zero value, and nil, give the
// defaults.
type TokenOptions struct {
	// Lifetime is how long each minted token is valid. Default
	// DefaultTokenLifetime.
	Lifetime time.Duration
	// PrincipalID is the object id of the principal the tokens stand for,
	// quoted in authorization failures. Default: a random id.
	PrincipalID string
	// Err, when set, is returned by every GetToken call (which still
	// counts), to simulate an identity provider failure.
	Err error
}

// Credential is an azcore.TokenCredential that mints opaque bearer tokens
// the hub that made it accepts, for a principal holding one Role. It is
// safe for concurrent use.
type Credential struct {
	hub       *Hub
	role      Role
	lifetime  time.Duration
	principal string
	err       error
	calls     atomic.Int64
}

var _ azcore.TokenCredential = (*Credential)(nil)

// bearerToken is what the hub knows about a token it minted.
type bearerToken struct {
	role      Role
	principal string
	scopes    []string
	expires   time.Time
}

// TokenCredential returns a credential whose tokens the hub accepts, as a
// principal holding role. opts may be nil.
func (h *Hub) TokenCredential(role Role, opts *TokenOptions) *Credential {
	var o TokenOptions
	if opts != nil {
		o = *opts
	}
	c := &Credential{hub: h, role: role, lifetime: o.Lifetime, principal: o.PrincipalID, err: o.Err}
	if c.lifetime <= 0 {
		c.lifetime = DefaultTokenLifetime
	}
	if c.principal == "" {
		c.principal = randomUUID()
	}
	return c
}

// GetToken mints a token for opts.Scopes, valid for the credential's
// lifetime from now. The hub accepts it only when the scopes are exactly
// its own (see Hub.Scope), as a real token for another audience would be
// refused. GetToken fails when ctx is done, when no scope is asked for, and
// with TokenOptions.Err when that is set. Every call counts towards Calls.
func (c *Credential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.calls.Add(1)
	if err := ctx.Err(); err != nil {
		return azcore.AccessToken{}, err
	}
	if c.err != nil {
		return azcore.AccessToken{}, c.err
	}
	if len(opts.Scopes) == 0 {
		return azcore.AccessToken{}, errors.New("iothubtest: GetToken: no scopes requested")
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	tok := "httpmock." + base64.RawURLEncoding.EncodeToString(b)
	exp := time.Now().Add(c.lifetime)
	c.hub.mu.Lock()
	c.hub.tokens[tok] = bearerToken{
		role:      c.role,
		principal: c.principal,
		scopes:    slices.Clone(opts.Scopes),
		expires:   exp,
	}
	c.hub.mu.Unlock()
	return azcore.AccessToken{Token: tok, ExpiresOn: exp}, nil
}

// Calls returns how many times GetToken has been called.
func (c *Credential) Calls() int { return int(c.calls.Load()) }

// PrincipalID returns the object id of the principal the tokens stand for.
func (c *Credential) PrincipalID() string { return c.principal }

// Role returns the role the principal holds.
func (c *Credential) Role() Role { return c.role }

// randomUUID returns a random (version 4) UUID string.
func randomUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
