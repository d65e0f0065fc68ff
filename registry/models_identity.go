package registry

// Identity returns the device id, and the module id when the twin is a
// module's (empty for a device twin). It lets a query's twins serve as the
// targets of a fleet operation: service.TargetsOf(client.QueryTwins(…)).
func (t Twin) Identity() (deviceID, moduleID string) { return t.DeviceID, t.ModuleID }

// Identity returns the device id and an empty module id: the device names
// itself.
func (d Device) Identity() (deviceID, moduleID string) { return d.DeviceID, "" }

// Identity returns the module's device id and its module id.
func (m Module) Identity() (deviceID, moduleID string) { return m.DeviceID, m.ModuleID }
