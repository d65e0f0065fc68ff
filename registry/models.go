package registry

// DeviceStatus is whether a device may connect: "enabled" or "disabled".
// Values the SDK does not know are kept as they are.
type DeviceStatus string

// Device statuses.
const (
	DeviceStatusEnabled  DeviceStatus = "enabled"
	DeviceStatusDisabled DeviceStatus = "disabled"
)

// ConnectionState is whether a device is connected: "Connected" or
// "Disconnected" (IoT Hub spells them in PascalCase).
type ConnectionState string

// Connection states.
const (
	ConnectionStateConnected    ConnectionState = "Connected"
	ConnectionStateDisconnected ConnectionState = "Disconnected"
)

// AuthenticationType is how a device or module authenticates.
type AuthenticationType string

// Authentication types.
const (
	AuthenticationTypeSAS                  AuthenticationType = "sas"
	AuthenticationTypeSelfSigned           AuthenticationType = "selfSigned"
	AuthenticationTypeCertificateAuthority AuthenticationType = "certificateAuthority"
	AuthenticationTypeNone                 AuthenticationType = "none"
)

// Device is a device identity in the registry, with IoT Hub's wire names.
// Fields the hub maintains (ETag, GenerationID, connection state and times,
// counts) are read-only: the hub ignores them on writes.
type Device struct {
	DeviceID                   string          `json:"deviceId"`
	GenerationID               string          `json:"generationId,omitempty"`
	ETag                       string          `json:"etag,omitempty"`
	ConnectionState            ConnectionState `json:"connectionState,omitempty"`
	Status                     DeviceStatus    `json:"status,omitempty"`
	StatusReason               string          `json:"statusReason,omitempty"`
	ConnectionStateUpdatedTime Time            `json:"connectionStateUpdatedTime,omitzero"`
	StatusUpdatedTime          Time            `json:"statusUpdatedTime,omitzero"`
	LastActivityTime           Time            `json:"lastActivityTime,omitzero"`
	CloudToDeviceMessageCount  int             `json:"cloudToDeviceMessageCount,omitempty"`
	Authentication             *Authentication `json:"authentication,omitempty"`
	Capabilities               *Capabilities   `json:"capabilities,omitempty"`
	DeviceScope                string          `json:"deviceScope,omitempty"`
	ParentScopes               []string        `json:"parentScopes,omitempty"`
}

// Module is a module identity on a device.
type Module struct {
	ModuleID                   string          `json:"moduleId"`
	DeviceID                   string          `json:"deviceId"`
	ManagedBy                  string          `json:"managedBy,omitempty"`
	GenerationID               string          `json:"generationId,omitempty"`
	ETag                       string          `json:"etag,omitempty"`
	ConnectionState            ConnectionState `json:"connectionState,omitempty"`
	ConnectionStateUpdatedTime Time            `json:"connectionStateUpdatedTime,omitzero"`
	LastActivityTime           Time            `json:"lastActivityTime,omitzero"`
	CloudToDeviceMessageCount  int             `json:"cloudToDeviceMessageCount,omitempty"`
	Authentication             *Authentication `json:"authentication,omitempty"`
}

// Authentication holds a device's or module's credentials. With no keys
// and no thumbprints on a create, the hub generates both SAS keys.
type Authentication struct {
	Type           AuthenticationType `json:"type,omitempty"`
	SymmetricKey   *SymmetricKey      `json:"symmetricKey,omitempty"`
	X509Thumbprint *X509Thumbprint    `json:"x509Thumbprint,omitempty"`
}

// SymmetricKey is a pair of base64 SAS keys (16 to 64 bytes each; both or
// neither).
type SymmetricKey struct {
	PrimaryKey   string `json:"primaryKey,omitempty"`
	SecondaryKey string `json:"secondaryKey,omitempty"`
}

// X509Thumbprint is a pair of certificate thumbprints (SHA-1: 40 hex
// digits, or SHA-256: 64).
type X509Thumbprint struct {
	PrimaryThumbprint   string `json:"primaryThumbprint,omitempty"`
	SecondaryThumbprint string `json:"secondaryThumbprint,omitempty"`
}

// Capabilities are a device's capabilities.
type Capabilities struct {
	// IoTEdge marks an IoT Edge device.
	IoTEdge bool `json:"iotEdge"`
}

// Twin is a device or module twin, as GET /twins and queries return it.
// Note the wire name statusUpdateTime, where Device has statusUpdatedTime.
type Twin struct {
	DeviceID                  string             `json:"deviceId"`
	ModuleID                  string             `json:"moduleId,omitempty"`
	ETag                      string             `json:"etag,omitempty"`
	DeviceETag                string             `json:"deviceEtag,omitempty"`
	Status                    DeviceStatus       `json:"status,omitempty"`
	StatusReason              string             `json:"statusReason,omitempty"`
	StatusUpdateTime          Time               `json:"statusUpdateTime,omitzero"`
	ConnectionState           ConnectionState    `json:"connectionState,omitempty"`
	LastActivityTime          Time               `json:"lastActivityTime,omitzero"`
	CloudToDeviceMessageCount int                `json:"cloudToDeviceMessageCount,omitempty"`
	AuthenticationType        AuthenticationType `json:"authenticationType,omitempty"`
	X509Thumbprint            *X509Thumbprint    `json:"x509Thumbprint,omitempty"`
	ModelID                   string             `json:"modelId,omitempty"`
	Version                   int64              `json:"version,omitempty"`
	Tags                      map[string]any     `json:"tags,omitempty"`
	Properties                TwinProperties     `json:"properties,omitzero"`
	Capabilities              *Capabilities      `json:"capabilities,omitempty"`
	DeviceScope               string             `json:"deviceScope,omitempty"`
	ParentScopes              []string           `json:"parentScopes,omitempty"`
}

// TwinProperties are a twin's desired and reported properties. Each
// collection carries "$metadata" and "$version" entries from the hub.
type TwinProperties struct {
	Desired  map[string]any `json:"desired,omitempty"`
	Reported map[string]any `json:"reported,omitempty"`
}

// Statistics counts the devices in the registry.
type Statistics struct {
	TotalDeviceCount    int64 `json:"totalDeviceCount"`
	EnabledDeviceCount  int64 `json:"enabledDeviceCount"`
	DisabledDeviceCount int64 `json:"disabledDeviceCount"`
}
