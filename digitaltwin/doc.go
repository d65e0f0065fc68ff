// Package digitaltwin reads and updates the digital twins of an IoT hub's
// Plug and Play devices: the device twin seen through the device's DTDL
// model, with its model id, root properties, components and the
// synchronization state of each writable property.
//
//	client, err := digitaltwin.NewClientFromConnectionString(os.Getenv("IOTHUB_CONNECTION_STRING"), nil)
//	twin, err := client.Get(ctx, "controller-1", nil)
//	fmt.Println(twin.ModelID, string(twin.Components["thermostat1"].Properties["targetTemperature"]))
//
//	var patch digitaltwin.Patch
//	patch.AddComponentProperty("thermostat1", "targetTemperature", 22.5)
//	_, err = client.Update(ctx, "controller-1", patch, &digitaltwin.UpdateOptions{IfMatch: twin.ETag})
//
// # The view
//
// Get returns the hub's JSON decoded into DigitalTwin, and the body itself
// in DigitalTwin.Raw for a type of your own (json.Unmarshal(twin.Raw, &v)).
// A root entry whose value is an object carrying "$metadata" is a
// component, as IoT Hub documents the format; any other root entry is a
// property, an object-typed one included. Each property's metadata says
// when the device last reported it and, for a writable property, its
// desired value and version and what the device acknowledged (ack code,
// version and description).
//
// # Updates
//
// Update sends a JSON Patch built with Patch: add, replace and remove on
// root properties, component properties and whole components. IoT Hub's
// rules for it are checked before anything is sent (DTDL names, no arrays,
// objects at most five levels deep, the "$metadata": {} of a whole
// component, which the builder adds); a patch that breaks one fails with an
// *iothub.ArgumentError naming the operation and the field. The hub
// accepts an update with 202: it changes the desired properties, and the
// device acknowledges them when it has applied them.
//
// UpdateOptions.IfMatch makes an update conditional on the ETag a Get
// returned; a concurrent change fails with iothub.ErrPreconditionFailed.
//
// # Retries
//
// Reads and updates are retried on throttling (429), server busy (503),
// other 5xx and transport failures: an update sets or clears desired
// values, so repeating it leaves the twin as one application does. An
// answer to a retry after an attempt whose outcome was unknown has
// iothub.Error.EarlierAttemptMayHaveRun set.
//
// The client shares the pipeline, credentials, options and error types of
// service.Client and registry.Client: see package iothub. Digital twins are
// device twins: the module form ("deviceId~moduleId") some SDKs mention is
// not documented by IoT Hub and not offered here.
package digitaltwin
