package digitaltwin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/pipeline"
	"github.com/hubkit/iothub/internal/wire"
)

// DigitalTwin is the Plug and Play view of a device's twin: its model,
// its root (default component) properties, its components, and the
// synchronization state of its writable properties.
//
// In the hub's JSON, a root entry whose value is an object holding
// "$metadata" is a component; every other root entry but "$dtId" and
// "$metadata" is a root property, an object-typed one included.
type DigitalTwin struct {
	// ID is the digital twin's id, the device id ("$dtId").
	ID string
	// ModelID is the DTMI of the device's model ("$metadata.$model"), or
	// empty when the device announced none.
	ModelID string
	// ETag is the twin's ETag as the hub sent it in the ETag header (weak:
	// W/"…"); UpdateOptions.IfMatch takes it as it is.
	ETag string
	// Properties holds the current (reported) values of the root
	// properties, as JSON. A writable property that has a desired value but
	// none reported yet appears only in Metadata.
	Properties map[string]json.RawMessage
	// Metadata holds the root properties' metadata, by property name.
	Metadata map[string]PropertyMetadata
	// Components holds the components, by name.
	Components map[string]Component
	// Raw is the body as the hub sent it: nothing of it is lost.
	Raw json.RawMessage
}

// Component is one component of a digital twin.
type Component struct {
	// Properties holds the current (reported) values of the component's
	// properties, as JSON.
	Properties map[string]json.RawMessage
	// Metadata holds the properties' metadata, by property name.
	Metadata map[string]PropertyMetadata
}

// PropertyMetadata is what the hub keeps of a property: when the device
// last reported it and, for a writable property, its desired value and
// what the device acknowledged of it. A writable property is synchronized
// when AckVersion reaches DesiredVersion.
type PropertyMetadata struct {
	// DesiredValue is the desired value as JSON, or nil when none is set.
	DesiredValue json.RawMessage `json:"desiredValue,omitempty"`
	// DesiredVersion is the version of the desired value, or 0.
	DesiredVersion int64 `json:"desiredVersion,omitempty"`
	// AckVersion is the desired version the device last acknowledged, or 0.
	AckVersion int64 `json:"ackVersion,omitempty"`
	// AckCode is the device's status for that acknowledgement (an HTTP-like
	// code such as 200), or 0.
	AckCode int `json:"ackCode,omitempty"`
	// AckDescription is the device's description of the acknowledgement.
	AckDescription string `json:"ackDescription,omitempty"`
	// LastUpdateTime is when the device last reported the property, or the
	// zero time.
	LastUpdateTime time.Time `json:"-"`
}

// UnmarshalJSON reads the metadata of one property.
func (m *PropertyMetadata) UnmarshalJSON(b []byte) error {
	type plain PropertyMetadata
	var v struct {
		plain
		LastUpdateTime json.RawMessage `json:"lastUpdateTime"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*m = PropertyMetadata(v.plain)
	if len(v.LastUpdateTime) > 0 {
		t, err := wire.ParseTime(v.LastUpdateTime)
		if err != nil {
			return fmt.Errorf("lastUpdateTime: %w", err)
		}
		m.LastUpdateTime = t
	}
	return nil
}

// UnmarshalJSON reads a digital twin as GET /digitaltwins/{id} returns it,
// keeping the body in Raw. ETag is not part of the body and is left as it
// is.
func (t *DigitalTwin) UnmarshalJSON(b []byte) error {
	var root map[string]json.RawMessage
	if err := json.Unmarshal(b, &root); err != nil {
		return err
	}
	if root == nil {
		return fmt.Errorf("digitaltwin: a digital twin must be a JSON object")
	}
	out := DigitalTwin{ETag: t.ETag, Raw: bytes.Clone(b)}
	if id, ok := root["$dtId"]; ok {
		if err := json.Unmarshal(id, &out.ID); err != nil {
			return fmt.Errorf("$dtId: %w", err)
		}
	}
	if md, ok := root["$metadata"]; ok {
		model, props, err := decodeMetadata(md)
		if err != nil {
			return fmt.Errorf("$metadata: %w", err)
		}
		out.ModelID, out.Metadata = model, props
	}
	for k, v := range root {
		if k == "$dtId" || k == "$metadata" {
			continue
		}
		if c, ok, err := decodeComponent(v); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		} else if ok {
			if out.Components == nil {
				out.Components = make(map[string]Component)
			}
			out.Components[k] = c
			continue
		}
		if out.Properties == nil {
			out.Properties = make(map[string]json.RawMessage)
		}
		out.Properties[k] = v
	}
	*t = out
	return nil
}

// decodeMetadata reads a $metadata object: its $model and the metadata of
// each property.
func decodeMetadata(b json.RawMessage) (string, map[string]PropertyMetadata, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return "", nil, err
	}
	var model string
	var props map[string]PropertyMetadata
	for k, v := range raw {
		if k == "$model" {
			if err := json.Unmarshal(v, &model); err != nil {
				return "", nil, fmt.Errorf("$model: %w", err)
			}
			continue
		}
		if len(k) > 0 && k[0] == '$' {
			continue // other markers the hub may add
		}
		var m PropertyMetadata
		if err := json.Unmarshal(v, &m); err != nil {
			return "", nil, fmt.Errorf("%s: %w", k, err)
		}
		if props == nil {
			props = make(map[string]PropertyMetadata)
		}
		props[k] = m
	}
	return model, props, nil
}

// decodeComponent reads v as a component when it is an object holding
// $metadata, and reports whether it was one.
func decodeComponent(v json.RawMessage) (Component, bool, error) {
	var c Component
	if t := bytes.TrimLeft(v, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return c, false, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(v, &obj); err != nil {
		return c, false, err
	}
	md, ok := obj["$metadata"]
	if !ok {
		return c, false, nil
	}
	_, props, err := decodeMetadata(md)
	if err != nil {
		return c, false, fmt.Errorf("$metadata: %w", err)
	}
	c.Metadata = props
	for k, pv := range obj {
		if k == "$metadata" {
			continue
		}
		if c.Properties == nil {
			c.Properties = make(map[string]json.RawMessage)
		}
		c.Properties[k] = pv
	}
	return c, true, nil
}

// GetOptions are the options of Get. It is reserved for future options;
// nil is the default.
type GetOptions struct{}

// Get reads the digital twin of a device (GET /digitaltwins/{id}), with its
// ETag. A device that is not registered fails with
// iothub.ErrDeviceNotFound. Reads are retried on throttling, server busy,
// other 5xx and transport failures.
func (c *Client) Get(ctx context.Context, digitalTwinID string, options *GetOptions) (DigitalTwin, error) {
	const op = "Get"
	var t DigitalTwin
	if err := checkID(op, digitalTwinID); err != nil {
		return t, err
	}
	resp, err := c.p.Do(ctx, &pipeline.Request{
		Operation: op, DeviceID: digitalTwinID,
		Method: http.MethodGet, Path: twinPath(digitalTwinID),
		Retry: pipeline.RetryIdempotent,
	})
	if err != nil {
		return t, err
	}
	if err := json.Unmarshal(resp.Body, &t); err != nil {
		return DigitalTwin{}, &iothub.BodyError{Operation: op, DeviceID: digitalTwinID, StatusCode: resp.StatusCode, Err: fmt.Errorf("decode digital twin: %w", err)}
	}
	t.ETag = resp.Header.Get("ETag")
	return t, nil
}
