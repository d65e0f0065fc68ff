package httpmock

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testAPIVersion = "2021-04-12"

// testSAS is the test's own SAS signer, written independently of the
// package's verifier: sr is url.QueryEscape(host), sig the URL-encoded
// base64 HMAC-SHA256 of sr + "\n" + se keyed with the decoded key, fields in
// the C# order sr, sig, se, skn.
func testSAS(host, policy, key string, se int64) string {
	sr, sig, ses := testSASParts(host, key, se)
	return "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(sig) + "&se=" + ses + "&skn=" + policy
}

// testSASParts returns the encoded sr, the raw base64 signature and se.
func testSASParts(host, key string, se int64) (sr, sig, ses string) {
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		panic(err)
	}
	sr = url.QueryEscape(host)
	ses = strconv.FormatInt(se, 10)
	mac := hmac.New(sha256.New, k)
	mac.Write([]byte(sr + "\n" + ses))
	return sr, base64.StdEncoding.EncodeToString(mac.Sum(nil)), ses
}

// sasFor signs a token for the hub's policy, valid for an hour from now.
func sasFor(t testing.TB, h *Hub, policy string) string {
	t.Helper()
	p, ok := h.Policy(policy)
	if !ok {
		t.Fatalf("no policy %q", policy)
	}
	return testSAS(h.HostName(), p.Name, p.Key, time.Now().Add(time.Hour).Unix())
}

// noAuth asks send for a request without Authorization.
const noAuth = "-"

// call describes a request for send. Zero fields take defaults: POST, the
// api-version query, a service SAS token, Content-Type application/json.
type call struct {
	base        string // base URL; default "https://" + the hub's host name
	method      string
	path        string // escaped
	query       string // "-" for none
	auth        string // noAuth for none
	contentType string // "-" for none
	body        string
	header      http.Header
}

// result is what send got back.
type result struct {
	status int
	header http.Header
	body   []byte
	err    error
}

// send performs the request with client against the hub's host name.
func send(ctx context.Context, t testing.TB, h *Hub, client *http.Client, c call) result {
	t.Helper()
	if c.method == "" {
		c.method = http.MethodPost
	}
	switch c.query {
	case "":
		c.query = "api-version=" + testAPIVersion
	case "-":
		c.query = ""
	}
	if c.base == "" {
		c.base = "https://" + h.HostName()
	}
	u := c.base + c.path
	if c.query != "" {
		u += "?" + c.query
	}
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	switch c.auth {
	case "":
		req.Header.Set("Authorization", sasFor(t, h, "service"))
	case noAuth:
	default:
		req.Header.Set("Authorization", c.auth)
	}
	switch c.contentType {
	case "":
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	case "-":
	default:
		req.Header.Set("Content-Type", c.contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: b}
}

// inProcess returns a client that uses the hub's in-process transport.
func inProcess(h *Hub) *http.Client { return &http.Client{Transport: h.RoundTripper()} }

// methodBody returns a direct-method body; extra is spliced in after the
// method name (start it with a comma).
func methodBody(name, extra string) string {
	return `{"methodName":` + strconv.Quote(name) + extra + `}`
}

// hubErr is a decoded escaped-JSON error answer.
type hubErr struct {
	Status  int
	Code    int
	Header  string // iothub-errorcode
	Message string
	Info    map[string]string
}

// decodeErr decodes an escaped-JSON error answer and checks its envelope.
func decodeErr(t testing.TB, r result) hubErr {
	t.Helper()
	if r.err != nil {
		t.Fatalf("transport error: %v", r.err)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	var outer struct {
		Message          *string
		ExceptionMessage *string
	}
	if err := json.Unmarshal(r.body, &outer); err != nil || outer.Message == nil || outer.ExceptionMessage == nil {
		t.Fatalf("not the escaped-JSON shape (%v): %s", err, r.body)
	}
	if *outer.ExceptionMessage != "" {
		t.Errorf("ExceptionMessage = %q, want empty", *outer.ExceptionMessage)
	}
	var inner struct {
		ErrorCode    int               `json:"errorCode"`
		TrackingID   string            `json:"trackingId"`
		Message      string            `json:"message"`
		Info         map[string]string `json:"info"`
		TimestampUTC string            `json:"timestampUtc"`
	}
	if err := json.Unmarshal([]byte(*outer.Message), &inner); err != nil {
		t.Fatalf("Message is not escaped JSON (%v): %s", err, r.body)
	}
	checkTrackingID(t, inner.TrackingID)
	if _, err := time.Parse("2006-01-02T15:04:05.0000000Z", inner.TimestampUTC); err != nil {
		t.Errorf("timestampUtc %q: %v", inner.TimestampUTC, err)
	}
	return hubErr{Status: r.status, Code: inner.ErrorCode, Header: r.header.Get("iothub-errorcode"), Message: inner.Message, Info: inner.Info}
}

// checkTrackingID checks <32 hex>-G:11-TimeStamp:MM/dd/yyyy HH:mm:ss.
func checkTrackingID(t testing.TB, id string) {
	t.Helper()
	hexPart, rest, ok := strings.Cut(id, "-G:11-TimeStamp:")
	if !ok || len(hexPart) != 32 || strings.Trim(hexPart, "0123456789abcdef") != "" {
		t.Errorf("tracking ID %q: bad format", id)
		return
	}
	if _, err := time.Parse("01/02/2006 15:04:05", rest); err != nil {
		t.Errorf("tracking ID %q: %v", id, err)
	}
}

// echo is a handler that answers 200 with the payload it got.
func echo(_ context.Context, c MethodCall) MethodResponse {
	return MethodResponse{Status: 200, Payload: c.Payload}
}

// methodResult decodes a successful answer.
func methodResult(t testing.TB, r result) (int, string) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("transport error: %v", r.err)
	}
	if r.status != http.StatusOK {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	var v struct {
		Status  *int            `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil || v.Status == nil {
		t.Fatalf("bad success body (%v): %s", err, r.body)
	}
	return *v.Status, string(v.Payload)
}
