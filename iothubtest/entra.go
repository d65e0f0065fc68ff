package iothubtest

import (
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/hubkit/iothub/internal/testkit/httpmock"
)

// Role is a built-in Azure role that a Microsoft Entra principal holds on
// the hub; see Hub.TokenCredential.
type Role int

// The built-in IoT Hub data-plane roles.
const (
	// RoleDataContributor ("IoT Hub Data Contributor") may perform every
	// data-plane operation, direct methods included.
	RoleDataContributor Role = iota + 1
	// RoleDataReader ("IoT Hub Data Reader") may only read.
	RoleDataReader
	// RoleRegistryContributor ("IoT Hub Registry Contributor") may read and
	// write the identity registry.
	RoleRegistryContributor
	// RoleTwinContributor ("IoT Hub Twin Contributor") may read and write
	// twins, not invoke direct methods.
	RoleTwinContributor
)

// TokenCredential returns a Microsoft Entra credential whose bearer tokens
// the hub accepts, for a principal holding role: give it to
// service.NewClient or registry.NewClient with the hub's host name.
//
//	client, err := service.NewClient(hub.HostName(), hub.TokenCredential(iothubtest.RoleDataContributor), hub.ClientOptions())
//
// The hub refuses what the role does not allow with 401 / 401003, and
// tokens asked for another scope than the hub's with 401 / 401002. It
// panics on an unknown role.
func (h *Hub) TokenCredential(role Role) azcore.TokenCredential {
	var r httpmock.Role
	switch role {
	case RoleDataContributor:
		r = httpmock.DataContributor
	case RoleDataReader:
		r = httpmock.DataReader
	case RoleRegistryContributor:
		r = httpmock.RegistryContributor
	case RoleTwinContributor:
		r = httpmock.TwinContributor
	default:
		panic("iothubtest: TokenCredential: unknown Role")
	}
	return h.engine.TokenCredential(r, nil)
}
