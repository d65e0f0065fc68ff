package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/pipeline"
	"github.com/hubkit/iothub/internal/wire"
)

// MaxBulkDevices is the most devices IoT Hub takes in one bulk request; the
// SDK splits larger inputs into batches of this size.
const MaxBulkDevices = 100

// BulkResult is the outcome of a bulk operation over all its batches.
type BulkResult struct {
	// Errors lists the devices the hub did not change, each with its
	// code. A device that is not listed succeeded.
	Errors []BulkError
	// Warnings lists the hub's warnings, such as a device registered
	// without its twin.
	Warnings []BulkWarning
}

// IsSuccessful reports whether every device succeeded.
func (r BulkResult) IsSuccessful() bool { return len(r.Errors) == 0 }

// BulkError is one device a bulk operation failed for.
type BulkError struct {
	DeviceID string `json:"deviceId"`
	ModuleID string `json:"moduleId,omitempty"`
	// ErrorCode is the hub's code for the failure, such as
	// iothub.ErrorCodeDeviceAlreadyExists; 0 for a code the SDK does not
	// know. The hub sends it as a name or a number.
	ErrorCode iothub.ErrorCode `json:"errorCode"`
	// ErrorName is the code's name, such as "DeviceAlreadyExists": as the
	// hub sent it, or the SDK's name for a number.
	ErrorName   string `json:"errorName,omitempty"`
	ErrorStatus string `json:"errorStatus"`
	Operation   string `json:"operation,omitempty"`
}

// BulkWarning is a warning about one device of a bulk operation.
type BulkWarning struct {
	DeviceID      string `json:"deviceId"`
	WarningCode   string `json:"warningCode"`
	WarningStatus string `json:"warningStatus"`
}

// UnmarshalJSON accepts errorCode as a string (a name or digits) or a
// number, and reads back what json.Marshal writes.
func (e *BulkError) UnmarshalJSON(b []byte) error {
	var w struct {
		DeviceID    string          `json:"deviceId"`
		ModuleID    string          `json:"moduleId"`
		ErrorCode   json.RawMessage `json:"errorCode"`
		ErrorName   string          `json:"errorName"` // not on the wire; from MarshalJSON
		ErrorStatus string          `json:"errorStatus"`
		Operation   string          `json:"operation"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*e = BulkError{DeviceID: w.DeviceID, ModuleID: w.ModuleID, ErrorStatus: w.ErrorStatus, Operation: w.Operation}
	e.ErrorCode, e.ErrorName = wire.ParseCode(w.ErrorCode)
	if e.ErrorName == "" {
		e.ErrorName = w.ErrorName
	}
	return nil
}

// BulkCreateDevices registers devices, MaxBulkDevices per request. Devices
// the hub refused (an existing id, say) are in the result's Errors; an
// error is returned only when a whole batch failed, with the result of the
// batches before it.
func (c *Client) BulkCreateDevices(ctx context.Context, devices []Device, options *CreateOptions) (BulkResult, error) {
	return c.bulk(ctx, "BulkCreateDevices", devices, func(d Device) bulkItem {
		return bulkItem{ID: d.DeviceID, ImportMode: "create", Status: d.Status, StatusReason: d.StatusReason,
			Authentication: normalizeAuth(d.Authentication), Capabilities: d.Capabilities, DeviceScope: d.DeviceScope, ParentScopes: d.ParentScopes}
	})
}

// BulkUpdateDevices replaces devices, each conditional on its ETag
// (updateIfMatchETag) unless options.Force is set; see UpdateDevice.
func (c *Client) BulkUpdateDevices(ctx context.Context, devices []Device, options *WriteOptions) (BulkResult, error) {
	force := options != nil && options.Force
	return c.bulk(ctx, "BulkUpdateDevices", devices, func(d Device) bulkItem {
		it := bulkItem{ID: d.DeviceID, ImportMode: "update", Status: d.Status, StatusReason: d.StatusReason,
			Authentication: d.Authentication, Capabilities: d.Capabilities, DeviceScope: d.DeviceScope, ParentScopes: d.ParentScopes}
		if !force && d.ETag != "" {
			it.ImportMode, it.ETag = "updateIfMatchETag", d.ETag
		}
		return it
	})
}

// BulkDeleteDevices removes devices, each conditional on its ETag
// (deleteIfMatchETag) when it has one, unless options.Force is set.
func (c *Client) BulkDeleteDevices(ctx context.Context, devices []Device, options *WriteOptions) (BulkResult, error) {
	force := options != nil && options.Force
	return c.bulk(ctx, "BulkDeleteDevices", devices, func(d Device) bulkItem {
		it := bulkItem{ID: d.DeviceID, ImportMode: "delete"}
		if !force && d.ETag != "" {
			it.ImportMode, it.ETag = "deleteIfMatchETag", d.ETag
		}
		return it
	})
}

// bulkItem is IoT Hub's ExportImportDevice: note "id" and "eTag".
type bulkItem struct {
	ID             string          `json:"id"`
	ETag           string          `json:"eTag,omitempty"`
	ImportMode     string          `json:"importMode"`
	Status         DeviceStatus    `json:"status,omitempty"`
	StatusReason   string          `json:"statusReason,omitempty"`
	Authentication *Authentication `json:"authentication,omitempty"`
	Capabilities   *Capabilities   `json:"capabilities,omitempty"`
	DeviceScope    string          `json:"deviceScope,omitempty"`
	ParentScopes   []string        `json:"parentScopes,omitempty"`
}

func (c *Client) bulk(ctx context.Context, op string, devices []Device, item func(Device) bulkItem) (BulkResult, error) {
	var res BulkResult
	if len(devices) == 0 {
		return res, &iothub.ArgumentError{Operation: op, Field: "devices", Rule: "must not be empty"}
	}
	seen := make(map[string]int, len(devices))
	for i, d := range devices {
		if rule := wire.CheckID(d.DeviceID); rule != "" {
			return res, &iothub.ArgumentError{Operation: op, Field: fmt.Sprintf("devices[%d].DeviceID", i), Rule: rule}
		}
		if j, dup := seen[d.DeviceID]; dup {
			return res, &iothub.ArgumentError{Operation: op, Field: fmt.Sprintf("devices[%d].DeviceID", i), Rule: fmt.Sprintf("%q is also devices[%d]; each device may appear once", d.DeviceID, j)}
		}
		seen[d.DeviceID] = i
	}
	for start := 0; start < len(devices); start += MaxBulkDevices {
		batch := devices[start:min(start+MaxBulkDevices, len(devices))]
		items := make([]bulkItem, len(batch))
		for i, d := range batch {
			items[i] = item(d)
		}
		body, err := json.Marshal(items)
		if err != nil {
			return res, &iothub.ArgumentError{Operation: op, Field: "devices", Rule: "must encode as JSON", Err: err}
		}
		resp, err := c.p.Do(ctx, &pipeline.Request{
			Operation: op, Method: http.MethodPost, Path: "/devices", Body: body,
			Retry: pipeline.RetryNotDelivered, Policy: bulkPolicy{},
		})
		if err != nil {
			return res, err
		}
		var r struct {
			Errors   []BulkError   `json:"errors"`
			Warnings []BulkWarning `json:"warnings"`
		}
		if err := json.Unmarshal(resp.Body, &r); err != nil {
			return res, &iothub.BodyError{Operation: op, StatusCode: resp.StatusCode, Err: fmt.Errorf("decode bulk result: %w", err)}
		}
		res.Errors = append(res.Errors, r.Errors...)
		res.Warnings = append(res.Warnings, r.Warnings...)
	}
	return res, nil
}

// bulkPolicy is the retry policy of a bulk registry call: a partial
// failure (400013) is the answer, whose body lists the failed items;
// anything else follows pipeline.Default.
type bulkPolicy struct{}

func (bulkPolicy) Decide(he *iothub.Error, class pipeline.RetryClass) pipeline.Decision {
	if he.Code == iothub.ErrorCodeBulkRegistryOperationFailure {
		return pipeline.Accept
	}
	return pipeline.Default(he, class)
}
