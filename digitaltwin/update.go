package digitaltwin

import (
	"context"
	"net/http"
	"strings"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/pipeline"
	"github.com/hubkit/iothub/internal/wire"
)

// UpdateOptions are the options of Update. A nil *UpdateOptions gives the
// defaults.
type UpdateOptions struct {
	// IfMatch makes the update conditional on the twin's ETag: the
	// DigitalTwin.ETag of a Get, as it is (W/"…"), or a bare value, which
	// is sent quoted. "*" matches any twin. Empty sends no If-Match: the
	// update is unconditional. An ETag with a character a header cannot
	// carry (a space, a control character, a '"' inside) fails with an
	// *iothub.ArgumentError before anything is sent.
	IfMatch string
}

// UpdateResult is the hub's answer to an accepted update.
type UpdateResult struct {
	// ETag is the twin's new ETag (weak: W/"…"), for a later conditional
	// update.
	ETag string
	// Location is the URI of the digital twin.
	Location string
}

// Update applies patch to the desired properties of a device's digital
// twin (PATCH /digitaltwins/{id}). The hub accepts it with 202: the device
// receives the new desired values and acknowledges them in its own time;
// Get shows its acknowledgement in PropertyMetadata.
//
// The patch is checked first, as Patch.Validate does, and a patch that
// breaks a rule fails with an *iothub.ArgumentError before anything is
// sent. A stale options.IfMatch fails with iothub.ErrPreconditionFailed
// (412), a device that is not registered with iothub.ErrDeviceNotFound, and
// a patch the hub refuses with iothub.ErrBadRequest (400004 ArgumentInvalid,
// naming the property).
//
// Update is retried on throttling, server busy, other 5xx and transport
// failures, as registry writes are: every operation of a patch sets or
// clears a desired value, so applying it twice leaves the twin as applying
// it once does. A conditional update whose first attempt was applied but
// whose answer was lost then fails its retry with 412; that error, like any
// answer to a retry after an attempt with an unknown outcome, has
// EarlierAttemptMayHaveRun set and matches iothub.ErrOutcomeUnknown: Get
// shows whether the change is there.
func (c *Client) Update(ctx context.Context, digitalTwinID string, patch Patch, options *UpdateOptions) (UpdateResult, error) {
	const op = "Update"
	if err := checkID(op, digitalTwinID); err != nil {
		return UpdateResult{}, err
	}
	body, err := patch.encode(op)
	if err != nil {
		return UpdateResult{}, err
	}
	var h http.Header
	if options != nil {
		if rule := wire.CheckETag(options.IfMatch); rule != "" {
			return UpdateResult{}, &iothub.ArgumentError{Operation: op, Field: "UpdateOptions.IfMatch", Rule: rule}
		}
		if im := ifMatch(options.IfMatch); im != "" {
			h = http.Header{"If-Match": {im}}
		}
	}
	resp, err := c.p.Do(ctx, &pipeline.Request{
		Operation: op, DeviceID: digitalTwinID,
		Method: http.MethodPatch, Path: twinPath(digitalTwinID),
		Header: h, Body: body,
		Retry: pipeline.RetryIdempotent,
	})
	if err != nil {
		return UpdateResult{}, err
	}
	return UpdateResult{ETag: resp.Header.Get("ETag"), Location: resp.Header.Get("Location")}, nil
}

// ifMatch returns the If-Match value for an ETag: empty for none, the
// quoted wildcard for "*", a weak ETag as it is (quoted if it was not), and
// any other value quoted.
func ifMatch(etag string) string {
	etag = strings.TrimSpace(etag)
	weak := strings.HasPrefix(etag, "W/")
	v := strings.Trim(strings.TrimPrefix(etag, "W/"), `"`)
	switch {
	case v == "":
		return ""
	case v == "*":
		return `"*"`
	case weak:
		return `W/"` + v + `"`
	}
	return `"` + v + `"`
}
