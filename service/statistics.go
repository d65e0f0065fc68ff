package service

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/pipeline"
)

// ReadOptions are the options of a read: GetJob and GetStatistics. It is
// reserved for future options; nil is the default.
type ReadOptions struct{}

// Statistics counts the devices connected to the hub.
type Statistics struct {
	ConnectedDeviceCount int64 `json:"connectedDeviceCount"`
}

// GetStatistics counts the devices connected to the hub (GET
// /statistics/service). The registry's device counts are
// registry.Client.GetStatistics. It needs RegistryRead (a policy such as
// iothubowner or registryRead, or the IoT Hub Data Reader role), which the
// "service" policy does not grant.
func (c *Client) GetStatistics(ctx context.Context, options *ReadOptions) (Statistics, error) {
	const op = "GetStatistics"
	resp, err := c.p.Do(ctx, &pipeline.Request{Operation: op, Method: http.MethodGet, Path: "/statistics/service", Retry: pipeline.RetryIdempotent})
	if err != nil {
		return Statistics{}, err
	}
	var s Statistics
	if err := json.Unmarshal(resp.Body, &s); err != nil {
		return Statistics{}, &iothub.BodyError{Operation: op, StatusCode: resp.StatusCode, Err: fmt.Errorf("decode statistics: %w", err)}
	}
	return s, nil
}
