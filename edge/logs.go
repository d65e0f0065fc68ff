package edge

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/service"
)

// MaxLogsBytes is the most log bytes the agent answers in one GetModuleLogs
// call (gzipped bytes, or characters without gzip): a method answer holds
// at most 128 KiB, and the agent keeps 1 KB of it for the envelope.
const MaxLogsBytes = 127000

// DefaultMaxDecodedBytes is LogsOptions.MaxDecodedBytes' default: 16 MiB of
// decoded logs per call. Logs gzip at about 10:1, so a full 127,000-byte
// gzip answer of ordinary logs decodes well within it; a stream that
// inflates further (a gzip bomb) is cut off there.
const DefaultMaxDecodedBytes = 16 << 20

// Encoding is how the agent encodes the logs of its answer.
type Encoding string

// The encodings.
const (
	// EncodingGzip: gzipped, then base64 in the JSON answer; the default.
	EncodingGzip Encoding = "gzip"
	// EncodingNone: the logs as a JSON string.
	EncodingNone Encoding = "none"
)

// ContentType is the form of the logs.
type ContentType string

// The content types.
const (
	// ContentTypeJSON: records with the line's module, stream, level,
	// timestamp and text; decoded into ModuleLogs.Lines. The default.
	ContentTypeJSON ContentType = "json"
	// ContentTypeText: the lines as the module wrote them; returned in
	// ModuleLogs.Text.
	ContentTypeText ContentType = "text"
)

// LogsRequest selects logs: GetModuleLogs' request, and the logs part of
// UploadLogsRequest.
type LogsRequest struct {
	// Items select the modules and lines; at least one.
	Items []LogsItem
	// Encoding is EncodingGzip (when empty) or EncodingNone.
	Encoding Encoding
	// ContentType is ContentTypeJSON (when empty) or ContentTypeText.
	ContentType ContentType
}

// LogsItem selects the logs of the modules whose names match ID.
type LogsItem struct {
	// ID is a regular expression matched against the deployment's module
	// names ("tempSensor", "edge.*", ".*"). The agent evaluates it with
	// .NET's regular expressions, whose syntax differs from Go's (it has
	// lookarounds and backreferences), so the SDK checks only that it is
	// not empty and leaves the rest to the agent, which refuses a bad
	// expression with an *AgentError.
	ID string
	// Filter narrows the lines; the zero value takes them all.
	Filter LogFilter
}

// LogFilter narrows a module's log lines.
type LogFilter struct {
	// Tail, when positive, keeps the last Tail lines; 0 keeps all. It
	// must not be negative.
	Tail int
	// Since and Until bound the lines' times. Each is a string as the
	// agent reads it: a duration before now ("90m", "1d", "2 days 3
	// hours"), an RFC 3339 time (Timestamp makes one) or Unix seconds;
	// empty leaves that side open.
	Since, Until string
	// LogLevel, when not nil, keeps lines at or below this syslog
	// severity: 0 (emergency) to 7 (debug); 3 keeps errors and worse.
	LogLevel *int
	// Regex, when not empty, keeps lines whose text matches it (a .NET
	// regular expression, as ID).
	Regex string
}

// Timestamp formats t for LogFilter.Since and Until (and
// SupportBundleRequest's), as RFC 3339 in UTC.
func Timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// LogsOptions are the options of GetModuleLogs. A nil *LogsOptions gives
// the defaults.
type LogsOptions struct {
	CallOptions
	// MaxDecodedBytes bounds the decoded logs of one call, all modules
	// together; 0 means DefaultMaxDecodedBytes. Over it the call fails
	// with an error matching ErrDecodedTooLarge.
	MaxDecodedBytes int
}

// ModuleLogs are one module's logs.
type ModuleLogs struct {
	// ModuleID is the module's name, as the agent matched it.
	ModuleID string
	// Text holds the logs of a ContentTypeText request.
	Text string
	// Lines holds the records of a ContentTypeJSON request.
	Lines []LogLine
}

// LogLine is a log record of the json content type.
type LogLine struct {
	// IoTHub and Device name the hub and the device.
	IoTHub, Device string
	// ModuleID is the module that wrote the line.
	ModuleID string
	// Stream is "stdout" or "stderr".
	Stream string
	// LogLevel is the line's syslog severity.
	LogLevel int
	// Text is the line's text.
	Text string
	// Timestamp is when the module wrote it.
	Timestamp time.Time
}

// wireLogsRequest is a logs request on the wire: encoding and contentType
// always sent.
type wireLogsRequest struct {
	SchemaVersion string         `json:"schemaVersion"`
	Items         []wireLogsItem `json:"items"`
	Encoding      Encoding       `json:"encoding"`
	ContentType   ContentType    `json:"contentType"`
	SASURL        string         `json:"sasUrl,omitempty"`
}

type wireLogsItem struct {
	ID     string     `json:"id"`
	Filter wireFilter `json:"filter,omitzero"`
}

type wireFilter struct {
	Tail     int    `json:"tail,omitempty"`
	Since    string `json:"since,omitempty"`
	Until    string `json:"until,omitempty"`
	LogLevel *int   `json:"loglevel,omitempty"`
	Regex    string `json:"regex,omitempty"`
}

// wire checks r and returns it as sent, defaults applied.
func (r LogsRequest) wire(op string) (wireLogsRequest, error) {
	w := wireLogsRequest{SchemaVersion: SchemaVersion, Encoding: r.Encoding, ContentType: r.ContentType}
	if w.Encoding == "" {
		w.Encoding = EncodingGzip
	}
	if w.ContentType == "" {
		w.ContentType = ContentTypeJSON
	}
	if w.Encoding != EncodingGzip && w.Encoding != EncodingNone {
		return w, &iothub.ArgumentError{Operation: op, Field: "Encoding", Rule: fmt.Sprintf("must be %q, %q or empty (got %q)", EncodingGzip, EncodingNone, r.Encoding)}
	}
	if w.ContentType != ContentTypeJSON && w.ContentType != ContentTypeText {
		return w, &iothub.ArgumentError{Operation: op, Field: "ContentType", Rule: fmt.Sprintf("must be %q, %q or empty (got %q)", ContentTypeJSON, ContentTypeText, r.ContentType)}
	}
	if len(r.Items) == 0 {
		return w, &iothub.ArgumentError{Operation: op, Field: "Items", Rule: "must name at least one module (LogsItem{ID: \"tempSensor\"}, or \".*\" for all)"}
	}
	for i, it := range r.Items {
		field := "Items[" + strconv.Itoa(i) + "]"
		switch f := it.Filter; {
		case strings.TrimSpace(it.ID) == "":
			return w, &iothub.ArgumentError{Operation: op, Field: field + ".ID", Rule: "must not be empty: a regular expression on module names"}
		case f.Tail < 0:
			return w, &iothub.ArgumentError{Operation: op, Field: field + ".Filter.Tail", Rule: fmt.Sprintf("must not be negative (got %d)", f.Tail)}
		case f.LogLevel != nil && (*f.LogLevel < 0 || *f.LogLevel > 7):
			return w, &iothub.ArgumentError{Operation: op, Field: field + ".Filter.LogLevel", Rule: fmt.Sprintf("must be a syslog severity, 0 to 7 (got %d)", *f.LogLevel)}
		}
		w.Items = append(w.Items, wireLogsItem{ID: it.ID, Filter: wireFilter(it.Filter)})
	}
	return w, nil
}

// GetModuleLogs returns the logs of the modules req selects, decoded: one
// ModuleLogs per module the agent matched, in its order.
//
// Logs over MaxLogsBytes are refused by the agent with an *AgentError
// matching ErrLogsTooLarge. An answer that does not decode is a
// *service.PayloadError (the call ran); one whose decoded logs exceed
// LogsOptions.MaxDecodedBytes is a *service.PayloadError matching
// ErrDecodedTooLarge.
func (c *Client) GetModuleLogs(ctx context.Context, deviceID string, req LogsRequest, options *LogsOptions) ([]ModuleLogs, error) {
	var o LogsOptions
	if options != nil {
		o = *options
	}
	if err := checkCommon(opLogs, deviceID, &o.CallOptions); err != nil {
		return nil, err
	}
	if o.MaxDecodedBytes < 0 {
		return nil, &iothub.ArgumentError{Operation: opLogs, Field: "LogsOptions.MaxDecodedBytes", Rule: fmt.Sprintf("must not be negative (got %d)", o.MaxDecodedBytes)}
	}
	w, err := req.wire(opLogs)
	if err != nil {
		return nil, err
	}
	payload, err := c.call(ctx, deviceID, AgentModuleID, MethodGetModuleLogs, w, &o.CallOptions, true)
	if err != nil {
		return nil, err
	}
	limit := o.MaxDecodedBytes
	if limit == 0 {
		limit = DefaultMaxDecodedBytes
	}
	return decodeLogs(deviceID, payload, w.ContentType, limit)
}

// decodeLogs decodes a GetModuleLogs answer.
func decodeLogs(deviceID string, payload json.RawMessage, ct ContentType, limit int) ([]ModuleLogs, error) {
	bad := func(err error) error {
		return &service.PayloadError{DeviceID: deviceID, ModuleID: AgentModuleID, Status: 200, Payload: payload, Err: err}
	}
	var entries []struct {
		ID           string  `json:"id"`
		PayloadBytes []byte  `json:"payloadBytes"`
		Payload      *string `json:"payload"`
	}
	if err := json.Unmarshal(payload, &entries); err != nil {
		return nil, bad(fmt.Errorf("decode GetModuleLogs answer: %w", err))
	}
	out := make([]ModuleLogs, 0, len(entries))
	budget := limit
	for _, e := range entries {
		var data []byte
		switch {
		case e.PayloadBytes != nil:
			zr, err := gzip.NewReader(bytes.NewReader(e.PayloadBytes))
			if err != nil {
				return nil, bad(fmt.Errorf("module %q: gunzip: %w", e.ID, err))
			}
			data, err = io.ReadAll(io.LimitReader(zr, int64(budget)+1))
			if err == nil && len(data) > budget {
				return nil, bad(fmt.Errorf("module %q: %w: more than %d bytes", e.ID, ErrDecodedTooLarge, limit))
			}
			if err != nil {
				return nil, bad(fmt.Errorf("module %q: gunzip: %w", e.ID, err))
			}
		case e.Payload != nil:
			data = []byte(*e.Payload)
			if len(data) > budget {
				return nil, bad(fmt.Errorf("module %q: %w: more than %d bytes", e.ID, ErrDecodedTooLarge, limit))
			}
		}
		budget -= len(data)
		if tooLarge(data) {
			// Some agent versions answer 200 with the size message in
			// place of a module's logs.
			return nil, &AgentError{DeviceID: deviceID, ModuleID: AgentModuleID, Method: MethodGetModuleLogs, Status: 200, Message: string(data)}
		}
		ml := ModuleLogs{ModuleID: e.ID}
		if ct == ContentTypeText {
			ml.Text = string(data)
		} else if len(bytes.TrimSpace(data)) > 0 {
			lines, err := decodeLines(data)
			if err != nil {
				return nil, bad(fmt.Errorf("module %q: %w", e.ID, err))
			}
			ml.Lines = lines
		}
		out = append(out, ml)
	}
	return out, nil
}

// tooLarge recognises the agent's size message in place of logs.
func tooLarge(data []byte) bool {
	return bytes.HasPrefix(data, []byte("The payload is too large"))
}

// wireLogRecord is one record of the json content type, as the agent
// writes it.
type wireLogRecord struct {
	IoTHub    string `json:"iothub"`
	Device    string `json:"device"`
	ID        string `json:"id"`
	Stream    string `json:"stream"`
	LogLevel  int    `json:"loglevel"`
	Text      string `json:"text"`
	Timestamp string `json:"timestamp"`
}

// decodeLines parses the json content type's records.
func decodeLines(data []byte) ([]LogLine, error) {
	var recs []wireLogRecord
	if err := json.Unmarshal(data, &recs); err != nil {
		return nil, fmt.Errorf("decode log records: %w", err)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	lines := make([]LogLine, len(recs))
	for i, r := range recs {
		l := LogLine{IoTHub: r.IoTHub, Device: r.Device, ModuleID: r.ID, Stream: r.Stream, LogLevel: r.LogLevel, Text: r.Text}
		if r.Timestamp != "" {
			t, err := time.Parse(time.RFC3339Nano, r.Timestamp)
			if err != nil {
				return nil, fmt.Errorf("log record %d: timestamp: %w", i, err)
			}
			l.Timestamp = t
		}
		lines[i] = l
	}
	return lines, nil
}

// checkSASURL checks a SAS URL without quoting it: it carries a secret.
func checkSASURL(op, field, s string) error {
	if s == "" {
		return &iothub.ArgumentError{Operation: op, Field: field, Rule: "must not be empty: a blob container SAS URL with write permission"}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return &iothub.ArgumentError{Operation: op, Field: field, Rule: "must be an absolute https URL (the value is not shown: it holds a signature)"}
	}
	return nil
}

// redactURL returns a SAS URL without its query, for display.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "REDACTED"
	}
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	u.User = nil
	u.Fragment = ""
	return u.String()
}

// UploadLogsRequest is UploadModuleLogs' request: the logs to upload and
// where to.
type UploadLogsRequest struct {
	LogsRequest
	// SASURL is a blob container's SAS URL with write permission (https).
	// It is a secret: String, GoString and LogValue redact it.
	SASURL string
}

// String describes the request with its SAS URL redacted.
func (r UploadLogsRequest) String() string {
	return fmt.Sprintf("{LogsRequest:%+v SASURL:%s}", r.LogsRequest, redactURL(r.SASURL))
}

// GoString is String, for %#v.
func (r UploadLogsRequest) GoString() string { return "edge.UploadLogsRequest" + r.String() }

// LogValue logs the request with its SAS URL redacted.
func (r UploadLogsRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("items", len(r.Items)), slog.String("encoding", string(r.Encoding)),
		slog.String("contentType", string(r.ContentType)), slog.String("sasUrl", redactURL(r.SASURL)))
}

// UploadModuleLogs starts uploading the logs req selects to a blob
// container, and returns the agent's task (usually TaskNotStarted); follow
// it with WaitTask. Failures of the upload itself (a SAS URL the storage
// refuses) show only in the task's end state.
func (c *Client) UploadModuleLogs(ctx context.Context, deviceID string, req UploadLogsRequest, options *CallOptions) (Task, error) {
	if err := checkCommon(opUpload, deviceID, options); err != nil {
		return Task{}, err
	}
	w, err := req.LogsRequest.wire(opUpload)
	if err != nil {
		return Task{}, err
	}
	if err := checkSASURL(opUpload, "SASURL", req.SASURL); err != nil {
		return Task{}, err
	}
	w.SASURL = req.SASURL
	payload, err := c.call(ctx, deviceID, AgentModuleID, MethodUploadModuleLogs, w, options, false)
	if err != nil {
		return Task{}, err
	}
	return decodeTask(deviceID, MethodUploadModuleLogs, payload)
}
