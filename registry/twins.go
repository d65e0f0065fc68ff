package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/pipeline"
)

// TwinPatch is a change to a twin's tags and desired properties. It merges:
// keys it names are set, a key set to nil is removed, others are kept.
type TwinPatch struct {
	Tags    map[string]any
	Desired map[string]any
}

// Limits of twin documents, as IoT Hub enforces them.
const (
	// MaxTwinDepth is the deepest nesting of tags or properties.
	MaxTwinDepth = 10
	// MaxTwinKeyBytes is the longest key.
	MaxTwinKeyBytes = 1024
)

// GetTwin reads a device twin.
func (c *Client) GetTwin(ctx context.Context, deviceID string, options *ReadOptions) (Twin, error) {
	return c.getTwin(ctx, "GetTwin", deviceID, "", false)
}

// GetModuleTwin reads a module twin.
func (c *Client) GetModuleTwin(ctx context.Context, deviceID, moduleID string, options *ReadOptions) (Twin, error) {
	return c.getTwin(ctx, "GetModuleTwin", deviceID, moduleID, true)
}

func (c *Client) getTwin(ctx context.Context, op, deviceID, moduleID string, onModule bool) (Twin, error) {
	var t Twin
	if err := checkIDs(op, deviceID, moduleID, onModule); err != nil {
		return t, err
	}
	_, err := c.do(ctx, call{op: op, deviceID: deviceID, module: moduleID, method: http.MethodGet, path: twinPath(deviceID, moduleID), retry: pipeline.RetryIdempotent}, &t)
	return t, err
}

// UpdateTwin merges patch into a device twin and returns the twin after
// the change. Unconditional unless options.IfMatch gives the twin's ETag
// (Twin.ETag, not the device's); a stale one fails with
// iothub.ErrPreconditionFailed. The patch is checked against IoT Hub's twin
// rules before sending: no arrays, keys without '.', '$', spaces or control
// characters, at most MaxTwinDepth levels.
func (c *Client) UpdateTwin(ctx context.Context, deviceID string, patch TwinPatch, options *WriteOptions) (Twin, error) {
	return c.writeTwin(ctx, "UpdateTwin", http.MethodPatch, deviceID, "", false, patch, options)
}

// UpdateModuleTwin merges patch into a module twin; see UpdateTwin.
func (c *Client) UpdateModuleTwin(ctx context.Context, deviceID, moduleID string, patch TwinPatch, options *WriteOptions) (Twin, error) {
	return c.writeTwin(ctx, "UpdateModuleTwin", http.MethodPatch, deviceID, moduleID, true, patch, options)
}

// ReplaceTwin replaces a device twin's tags and desired properties with
// those of patch (keys it does not name are removed); see UpdateTwin.
func (c *Client) ReplaceTwin(ctx context.Context, deviceID string, patch TwinPatch, options *WriteOptions) (Twin, error) {
	return c.writeTwin(ctx, "ReplaceTwin", http.MethodPut, deviceID, "", false, patch, options)
}

// ReplaceModuleTwin replaces a module twin's tags and desired properties;
// see ReplaceTwin.
func (c *Client) ReplaceModuleTwin(ctx context.Context, deviceID, moduleID string, patch TwinPatch, options *WriteOptions) (Twin, error) {
	return c.writeTwin(ctx, "ReplaceModuleTwin", http.MethodPut, deviceID, moduleID, true, patch, options)
}

func (c *Client) writeTwin(ctx context.Context, op, method, deviceID, moduleID string, onModule bool, patch TwinPatch, options *WriteOptions) (Twin, error) {
	var t Twin
	if err := checkIDs(op, deviceID, moduleID, onModule); err != nil {
		return t, err
	}
	if err := checkTwinDoc("TwinPatch.Tags", patch.Tags, 1); err != nil {
		return t, &iothub.ArgumentError{Operation: op, Field: err.field, Rule: err.rule}
	}
	if err := checkTwinDoc("TwinPatch.Desired", patch.Desired, 1); err != nil {
		return t, &iothub.ArgumentError{Operation: op, Field: err.field, Rule: err.rule}
	}
	body := struct {
		Tags       map[string]any `json:"tags,omitempty"`
		Properties struct {
			Desired map[string]any `json:"desired,omitempty"`
		} `json:"properties"`
	}{Tags: patch.Tags}
	body.Properties.Desired = patch.Desired
	h, err := options.ifMatchHeader(op, "", "")
	if err != nil {
		return t, err
	}
	_, err = c.do(ctx, call{op: op, deviceID: deviceID, module: moduleID, method: method, path: twinPath(deviceID, moduleID), header: h, body: body, retry: pipeline.RetryIdempotent}, &t)
	return t, err
}

type twinRuleError struct{ field, rule string }

// checkTwinDoc applies IoT Hub's twin rules to one collection.
func checkTwinDoc(field string, doc map[string]any, depth int) *twinRuleError {
	if depth > MaxTwinDepth {
		return &twinRuleError{field, fmt.Sprintf("must nest at most %d levels", MaxTwinDepth)}
	}
	for k, v := range doc {
		path := field + "." + k
		if rule := checkTwinKey(k); rule != "" {
			return &twinRuleError{path, rule}
		}
		switch v := v.(type) {
		case nil, bool, string, float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		case map[string]any:
			if err := checkTwinDoc(path, v, depth+1); err != nil {
				return err
			}
		case []any:
			return &twinRuleError{path, "arrays are not supported in twins"}
		default:
			if isSlice(v) {
				return &twinRuleError{path, "arrays are not supported in twins"}
			}
		}
	}
	return nil
}

func isSlice(v any) bool {
	k := reflect.ValueOf(v).Kind()
	return (k == reflect.Slice || k == reflect.Array) && !isRawJSON(v)
}

// isRawJSON lets a json.RawMessage value through: the hub judges it.
func isRawJSON(v any) bool {
	_, ok := v.(json.RawMessage)
	return ok
}

func checkTwinKey(k string) string {
	if k == "" {
		return "keys must not be empty"
	}
	if len(k) > MaxTwinKeyBytes {
		return fmt.Sprintf("keys must be at most %d bytes", MaxTwinKeyBytes)
	}
	for _, r := range k {
		if r == '.' || r == '$' || r == ' ' || r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return fmt.Sprintf("keys must not contain %q ('.', '$', spaces and control characters are not allowed)", r)
		}
	}
	return ""
}
