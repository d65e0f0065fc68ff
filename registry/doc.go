// Package registry reads and writes an IoT hub's identity registry (devices
// and modules), their twins, and queries them: the way a backend picks the
// fleet it acts on.
//
//	client, err := registry.NewClientFromConnectionString(os.Getenv("IOTHUB_CONNECTION_STRING"), nil)
//	for twin, err := range client.QueryTwins(ctx, "SELECT * FROM devices WHERE tags.plant = '3'", nil) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(twin.DeviceID, twin.ConnectionState)
//	}
//
// # ETags and concurrency
//
// Devices, modules and twins carry an ETag. CreateDevice is a PUT without
// If-Match: an existing id fails with iothub.ErrConflict. UpdateDevice is a
// full replace, conditional on the device's ETag, so read the device, change
// it, and write it back; a concurrent change fails with
// iothub.ErrPreconditionFailed. WriteOptions.Force makes a write
// unconditional. Twin writes are unconditional unless WriteOptions.IfMatch
// gives the twin's ETag.
//
// # Retries
//
// Reads, queries, updates and deletes are retried on throttling (429),
// server busy (503), other 5xx and transport failures, since repeating them
// does no harm. A create retried after an attempt whose outcome was unknown
// may meet the device that attempt created: the 409 then also matches
// iothub.ErrOutcomeUnknown. A delete whose retry finds nothing to delete is
// reported done. Bulk requests are retried only when the hub guarantees the
// batch was not applied.
//
// The client shares service.Client's pipeline, credentials and options:
// see package iothub for errors and options.
package registry
