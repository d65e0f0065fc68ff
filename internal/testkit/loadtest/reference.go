// Package loadtest holds the yardstick the SDK's performance is measured
// against, and the measurements the load harness takes.
//
// Reference is the cheapest correct direct-method client: a hand-written
// net/http call that sends the same request as service.Client (method,
// escaped path, api-version, headers, a SAS token minted once, the same JSON
// body) and decodes the same answer into the same shape, with nothing else:
// no validation, no retries, no delivery tracking, no error parsing beyond
// the status code. It is not part of the module's API.
package loadtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/auth"
	"github.com/hubkit/iothub/internal/pipeline"
)

// Reference is the minimal hand-written client. It is safe for concurrent
// use.
type Reference struct {
	hc        *http.Client
	base      string // scheme://host[:port]
	authz     string // the SAS token, minted once
	userAgent string
}

// NewReference returns a reference client for the hub named in a shared
// access policy connection string, sending to endpoint (such as
// "https://127.0.0.1:41234"; empty means https:// + the hub's host name)
// through transport. The SAS token is minted once, valid for ttl.
func NewReference(connectionString, endpoint string, transport http.RoundTripper, ttl time.Duration) (*Reference, error) {
	cs, err := auth.ParseConnectionString(connectionString)
	if err != nil {
		return nil, err
	}
	tok, err := auth.NewSASToken(cs.HostName, cs.SharedAccessKeyName, cs.SharedAccessKey(), time.Now().Add(ttl))
	if err != nil {
		return nil, err
	}
	if endpoint == "" {
		endpoint = "https://" + cs.HostName
	}
	return &Reference{
		hc:        &http.Client{Transport: transport},
		base:      endpoint,
		authz:     tok,
		userAgent: pipeline.UserAgent(),
	}, nil
}

// Invoke calls method on deviceID with a payload that must be valid JSON (nil
// means null) and a response timeout in seconds (0: the hub's default), and
// returns the device's status and payload. method must need no JSON
// escaping.
func (c *Reference) Invoke(ctx context.Context, deviceID, method string, payload json.RawMessage, timeoutInSeconds int) (int, json.RawMessage, error) {
	if payload == nil {
		payload = json.RawMessage("null")
	}
	body := make([]byte, 0, 80+len(method)+len(payload))
	body = append(body, `{"methodName":"`...)
	body = append(body, method...)
	body = append(body, `","payload":`...)
	body = append(body, payload...)
	if timeoutInSeconds != 0 {
		body = append(body, `,"responseTimeoutInSeconds":`...)
		body = strconv.AppendInt(body, int64(timeoutInSeconds), 10)
	}
	body = append(body, '}')

	deadline := time.Duration(30) * time.Second
	if timeoutInSeconds != 0 {
		deadline = time.Duration(timeoutInSeconds) * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, deadline+15*time.Second)
	defer cancel()
	u := c.base + "/twins/" + url.PathEscape(deviceID) + "/methods?api-version=" + iothub.APIVersion
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header = http.Header{
		"Authorization": {c.authz},
		"Content-Type":  {"application/json; charset=utf-8"},
		"Accept":        {"application/json"},
		"User-Agent":    {c.userAgent},
		"Request-Id":    {rand.Text()},
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, nil, fmt.Errorf("hub answered %d", resp.StatusCode)
	}
	var wire struct {
		Status  *int            `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(b, &wire); err != nil {
		return 0, nil, err
	}
	if wire.Status == nil {
		return 0, nil, fmt.Errorf("answer has no status")
	}
	return *wire.Status, wire.Payload, nil
}
