package httpmock

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

// The IoT Edge runtime of a simulated Edge device: the built-in methods of
// its $edgeAgent and $edgeHub modules, as the agent answers them (see
// iothub-facts.md §12). Every answer is a device answer, so the hub's HTTP
// status is 200 and the agent's outcome is the status in the body: 200
// success, 400 for a request the agent refuses (an unknown method, a
// missing or unparsable payload, logs over the size cap), 500 for other
// failures (a schemaVersion whose major is not 1, an unknown module). A
// failure's payload is {"message":"…"}.

// Edge module ids, in the registry and in method paths.
const (
	EdgeAgentModule = "$edgeAgent"
	EdgeHubModule   = "$edgeHub"
)

// The runtime's own module names, as RestartModule and GetModuleLogs name
// them (without the $ of their module ids).
const (
	EdgeAgentName = "edgeAgent"
	EdgeHubName   = "edgeHub"
)

// MaxEdgeLogsBytes is the most log bytes the agent returns in one
// GetModuleLogs answer (128 KiB less 1 KB of room for the envelope); over
// it the agent answers 400.
const MaxEdgeLogsBytes = 127000

// The agent's built-in method names, in their documented casing; the agent
// matches them case-insensitively.
var edgeAgentMethods = []string{"ping", "RestartModule", "GetModuleLogs", "UploadModuleLogs", "UploadSupportBundle", "GetTaskStatus"}

// The methods a starting agent answers before the others are registered.
var edgeAgentStartupMethods = []string{"ping", "GetTaskStatus"}

// DefaultAgentRestartWindow is how long a restarted agent stays
// disconnected when EdgeOptions.AgentRestartWindow is zero. How long a real
// agent takes (its container restarts, then connects) is not documented;
// ten seconds is an assumption.
const DefaultAgentRestartWindow = 10 * time.Second

// The task states of the agent's background tasks.
const (
	TaskNotStarted = "NotStarted"
	TaskRunning    = "Running"
	TaskCompleted  = "Completed"
	TaskCancelled  = "Cancelled"
	TaskFailed     = "Failed"
	TaskUnknown    = "Unknown"
)

// EdgeLogLine is one line of a simulated module's log.
type EdgeLogLine struct {
	// Time is when the module wrote the line.
	Time time.Time
	// Stream is "stdout" or "stderr"; empty means "stdout".
	Stream string
	// LogLevel is the line's syslog severity, 0 (emergency) to 7 (debug).
	LogLevel int
	// Text is the line without its level and timestamp.
	Text string
}

// EdgeOptions configures the runtime of an Edge device.
type EdgeOptions struct {
	// Modules are the custom modules of the device's deployment, such as
	// "tempSensor", besides edgeAgent and edgeHub. Each is also
	// registered as a module identity of the device.
	Modules []string
	// Logs are the modules' log lines by module name (edgeAgent and
	// edgeHub included), oldest first.
	Logs map[string][]EdgeLogLine
	// AgentRestartWindow is how long the agent is away after a
	// RestartModule of edgeAgent, counted from its delivery: the module
	// $edgeAgent is disconnected, so that the hub answers its calls 404103
	// (or, within their connect timeout, waits for it), and connects again
	// at the end. Zero means DefaultAgentRestartWindow; a negative value
	// means none (the agent is back at once).
	AgentRestartWindow time.Duration
	// AgentStartupWindow is how long the agent, once connected again,
	// answers only "ping" and "GetTaskStatus"; the other methods get 400
	// "Command '…' not found", as from an agent that has not registered
	// them yet. Zero or negative means none.
	AgentStartupWindow time.Duration
}

// Edge is the simulated IoT Edge runtime of a device: the modules of its
// deployment, their logs, the agent's background tasks. Its methods are
// safe for concurrent use.
type Edge struct {
	hub    *Hub
	device string

	agentModule   *Module // $edgeAgent
	restartWindow time.Duration
	startupWindow time.Duration

	// mu is taken before Hub.mu, never after it.
	mu           sync.Mutex
	modules      []string // sorted; edgeAgent and edgeHub included
	logs         map[string][]EdgeLogLine
	tasks        map[string]*edgeTask
	restarts     map[string]int
	agentRun     int       // agent restarts so far
	away         bool      // in a restart window: the restart disconnected $edgeAgent
	startupUntil time.Time // until then only the startup methods answer
}

// edgeTask is one background task of the agent (an upload).
type edgeTask struct {
	status  string
	message string
	fail    string // the message of the Failed state it ends in; "" completes
}

// MakeEdge makes d an IoT Edge device (capabilities.iotEdge) with the
// runtime opts describes, and returns it: it registers the modules
// $edgeAgent and $edgeHub, whose built-in methods the runtime answers
// (names matched case-insensitively, as the agent does), and a module
// identity for each of opts.Modules. It panics when d already has a
// runtime. opts may be nil.
func (d *Device) MakeEdge(opts *EdgeOptions) *Edge {
	var o EdgeOptions
	if opts != nil {
		o = *opts
	}
	d.SetEdge(true)
	e := &Edge{hub: d.hub, device: d.id, logs: make(map[string][]EdgeLogLine), tasks: make(map[string]*edgeTask), restarts: make(map[string]int),
		restartWindow: o.AgentRestartWindow, startupWindow: max(o.AgentStartupWindow, 0)}
	switch {
	case e.restartWindow == 0:
		e.restartWindow = DefaultAgentRestartWindow
	case e.restartWindow < 0:
		e.restartWindow = 0
	}
	e.modules = append([]string{EdgeAgentName, EdgeHubName}, o.Modules...)
	slices.Sort(e.modules)
	e.modules = slices.Compact(e.modules)
	for name, lines := range o.Logs {
		e.logs[name] = slices.Clone(lines)
	}
	d.hub.mu.Lock()
	if d.edge != nil {
		d.hub.mu.Unlock()
		panic(fmt.Sprintf("iothubtest: MakeEdge: device %q already has an Edge runtime", d.id))
	}
	d.edge = e
	d.hub.mu.Unlock()
	e.agentModule = d.AddModule(EdgeAgentModule)
	e.agentModule.SetDefaultHandler(e.agent)
	d.AddModule(EdgeHubModule).SetDefaultHandler(e.edgeHub)
	for _, m := range o.Modules {
		if m != EdgeAgentName && m != EdgeHubName && d.Module(m) == nil {
			d.AddModule(m)
		}
	}
	return e
}

// Edge returns the device's Edge runtime, or nil when it has none.
func (d *Device) Edge() *Edge {
	d.hub.mu.Lock()
	defer d.hub.mu.Unlock()
	return d.edge
}

// AddLogs appends lines to a module's log.
func (e *Edge) AddLogs(module string, lines ...EdgeLogLine) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.logs[module] = append(e.logs[module], lines...)
}

// RestartAgent simulates a restart of the agent that has already
// finished: the background tasks lived in its memory, so every earlier
// correlation id then reads "Unknown". Unlike a RestartModule of
// edgeAgent it has no restart or startup window: the agent answers at
// once, and a window in progress ends.
func (e *Edge) RestartAgent() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.restartAgentLocked()
	e.startupUntil = time.Time{}
	if e.away {
		e.away = false
		e.agentModule.SetOnline(true)
	}
}

func (e *Edge) restartAgentLocked() {
	e.tasks = make(map[string]*edgeTask)
	e.restarts[EdgeAgentName]++
	e.agentRun++
}

// Restarts returns how many times RestartModule (or RestartAgent, for
// edgeAgent) restarted the named module.
func (e *Edge) Restarts(module string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.restarts[module]
}

// agentAnswer is a device answer with a JSON payload.
func agentAnswer(status int, payload any) MethodResponse {
	if payload == nil {
		return MethodResponse{Status: status}
	}
	return MethodResponse{Status: status, Payload: bytes.TrimSpace(marshal(payload))}
}

// agentFailure is the agent's answer to a failed request.
func agentFailure(status int, format string, args ...any) MethodResponse {
	return agentAnswer(status, map[string]string{"message": fmt.Sprintf(format, args...)})
}

// agent answers the built-in methods of $edgeAgent.
func (e *Edge) agent(ctx context.Context, c MethodCall) MethodResponse {
	if !slices.ContainsFunc(edgeAgentStartupMethods, func(m string) bool { return strings.EqualFold(m, c.Method) }) {
		e.mu.Lock()
		starting := time.Now().Before(e.startupUntil)
		e.mu.Unlock()
		if starting {
			return unknownCommand(c.Method, edgeAgentStartupMethods)
		}
	}
	switch strings.ToLower(c.Method) {
	case "ping":
		return MethodResponse{Status: http.StatusOK}
	case "restartmodule":
		return e.restartModule(ctx, c.Payload)
	case "getmodulelogs":
		return e.getModuleLogs(c.Payload)
	case "uploadmodulelogs":
		return e.uploadModuleLogs(c.Payload)
	case "uploadsupportbundle":
		return e.uploadSupportBundle(c.Payload)
	case "gettaskstatus":
		return e.getTaskStatus(c.Payload)
	}
	return unknownCommand(c.Method, edgeAgentMethods)
}

// unknownCommand is the agent's answer to a method it has not registered.
func unknownCommand(method string, registered []string) MethodResponse {
	return agentFailure(http.StatusBadRequest, "Command '%s' not found. The supported commands are - %s", method, strings.Join(registered, ","))
}

// edgeHub answers the one built-in method of $edgeHub.
func (e *Edge) edgeHub(_ context.Context, c MethodCall) MethodResponse {
	if !strings.EqualFold(c.Method, "RefreshDeviceScopeIdentityCache") {
		return agentFailure(http.StatusNotFound, "Method %s is not supported", c.Method)
	}
	var req struct {
		DeviceIDs []string `json:"deviceIds"`
	}
	if err := decodeAgentPayload(c.Payload, &req); err != nil {
		return agentFailure(http.StatusBadRequest, "%v", err)
	}
	if req.DeviceIDs == nil {
		return agentFailure(http.StatusBadRequest, "The request has no deviceIds.")
	}
	return MethodResponse{Status: http.StatusOK}
}

// decodeAgentPayload decodes a request payload as the agent's JSON reader
// does: field names case-insensitively, a missing or null payload refused.
func decodeAgentPayload(p json.RawMessage, v any) error {
	if len(bytes.TrimSpace(p)) == 0 || string(bytes.TrimSpace(p)) == "null" {
		return fmt.Errorf("Request payload not found")
	}
	if err := json.Unmarshal(p, v); err != nil {
		return fmt.Errorf("Request payload could not be parsed: %v", err)
	}
	return nil
}

// checkSchema checks a request's schemaVersion: missing or malformed is a
// bad request (400); a major version other than 1 is a failure (500).
func checkSchema(v string) (MethodResponse, bool) {
	if v == "" {
		return agentFailure(http.StatusBadRequest, "The request has no schemaVersion."), false
	}
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return agentFailure(http.StatusBadRequest, "schemaVersion %q is not a version number.", v), false
	}
	if n != 1 {
		return agentFailure(http.StatusInternalServerError, "The request schema version %s is not compatible with the expected version 1.0.", v), false
	}
	return MethodResponse{}, true
}

func (e *Edge) restartModule(ctx context.Context, p json.RawMessage) MethodResponse {
	var req struct {
		SchemaVersion string `json:"schemaVersion"`
		ID            string `json:"id"`
	}
	if err := decodeAgentPayload(p, &req); err != nil {
		return agentFailure(http.StatusBadRequest, "%v", err)
	}
	if r, ok := checkSchema(req.SchemaVersion); !ok {
		return r
	}
	if strings.TrimSpace(req.ID) == "" {
		return agentFailure(http.StatusBadRequest, "The request has no module id.")
	}
	e.mu.Lock()
	if !slices.Contains(e.modules, req.ID) {
		e.mu.Unlock()
		return agentFailure(http.StatusInternalServerError, "Module %s not found in the current environment", req.ID)
	}
	if req.ID == EdgeAgentName {
		// The agent restarts and never answers: the hub times out (504101)
		// and every task is forgotten. It is away for the restart window,
		// then answers only its startup methods for the startup window.
		e.restartAgentLocked()
		e.startupUntil = time.Now().Add(e.restartWindow + e.startupWindow)
		if e.restartWindow > 0 {
			e.away = true
			e.agentModule.SetOnline(false)
			run := e.agentRun
			time.AfterFunc(e.restartWindow, func() {
				e.mu.Lock()
				defer e.mu.Unlock()
				if e.away && e.agentRun == run { // not restarted again since
					e.away = false
					e.agentModule.SetOnline(true)
				}
			})
		}
		e.mu.Unlock()
		<-ctx.Done()
		return MethodResponse{Status: http.StatusOK}
	}
	e.restarts[req.ID]++
	e.mu.Unlock()
	return MethodResponse{Status: http.StatusOK}
}

// logsRequest is GetModuleLogs' body, and UploadModuleLogs' with SASURL.
type logsRequest struct {
	SchemaVersion string          `json:"schemaVersion"`
	Items         json.RawMessage `json:"items"`
	Encoding      *string         `json:"encoding"`
	ContentType   *string         `json:"contentType"`
	SASURL        *string         `json:"sasUrl"`
}

type logsItem struct {
	ID     *string `json:"id"`
	Filter *struct {
		Tail     *int     `json:"tail"`
		Since    flexTime `json:"since"`
		Until    flexTime `json:"until"`
		LogLevel *int     `json:"loglevel"`
		Regex    *string  `json:"regex"`
	} `json:"filter"`
}

// flexTime is since or until: a string, or a number as the agent's JSON
// reader converts it to one.
type flexTime struct {
	set bool
	s   string
}

func (f *flexTime) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		return nil
	case len(b) > 0 && b[0] == '"':
		f.set = true
		return json.Unmarshal(b, &f.s)
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("since and until are strings")
	}
	f.set, f.s = true, n.String()
	return nil
}

// logsQuery is a parsed logs request.
type logsQuery struct {
	gzip, text bool
	items      []logsSelection
}

type logsSelection struct {
	id           *regexp.Regexp
	tail         *int
	since, until time.Time // zero: unbounded
	level        *int
	regex        *regexp.Regexp
}

// parseLogsRequest checks a logs request; it returns the agent's failure
// answer when it is refused.
func parseLogsRequest(req *logsRequest, now time.Time) (logsQuery, MethodResponse, bool) {
	var q logsQuery
	if r, ok := checkSchema(req.SchemaVersion); !ok {
		return q, r, false
	}
	bad := func(format string, args ...any) (logsQuery, MethodResponse, bool) {
		return q, agentFailure(http.StatusBadRequest, format, args...), false
	}
	enc, ct := "none", "json"
	if req.Encoding != nil {
		enc = strings.ToLower(*req.Encoding)
	}
	if req.ContentType != nil {
		ct = strings.ToLower(*req.ContentType)
	}
	if enc != "none" && enc != "gzip" {
		return bad("encoding %q is not one of gzip, none.", enc)
	}
	if ct != "json" && ct != "text" {
		return bad("contentType %q is not one of json, text.", ct)
	}
	q.gzip, q.text = enc == "gzip", ct == "text"
	raw := bytes.TrimSpace(req.Items)
	if len(raw) == 0 || string(raw) == "null" {
		return bad("The request has no items.")
	}
	var items []logsItem
	if raw[0] == '{' {
		var one logsItem
		if err := json.Unmarshal(raw, &one); err != nil {
			return bad("Request payload could not be parsed: %v", err)
		}
		items = []logsItem{one}
	} else if err := json.Unmarshal(raw, &items); err != nil {
		return bad("Request payload could not be parsed: %v", err)
	}
	for i, it := range items {
		if it.ID == nil || *it.ID == "" {
			return bad("items[%d] has no id.", i)
		}
		re, err := regexp.Compile(*it.ID)
		if err != nil {
			return bad("items[%d].id is not a valid regular expression: %v", i, err)
		}
		s := logsSelection{id: re}
		if f := it.Filter; f != nil {
			if f.Tail != nil && *f.Tail < 0 {
				return bad("items[%d].filter.tail must not be negative.", i)
			}
			s.tail, s.level = f.Tail, f.LogLevel
			if f.Since.set {
				if s.since, err = parseLogTime(f.Since.s, now); err != nil {
					return bad("items[%d].filter.since: %v", i, err)
				}
			}
			if f.Until.set {
				if s.until, err = parseLogTime(f.Until.s, now); err != nil {
					return bad("items[%d].filter.until: %v", i, err)
				}
			}
			if f.Regex != nil && *f.Regex != "" {
				if s.regex, err = regexp.Compile(*f.Regex); err != nil {
					return bad("items[%d].filter.regex is not a valid regular expression: %v", i, err)
				}
			}
		}
		q.items = append(q.items, s)
	}
	return q, MethodResponse{}, true
}

// parseLogTime reads since or until as the agent does: Unix seconds, an
// RFC 3339 time, or a duration before now ("90m", "1d", "2 days 3 hours").
func parseLogTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, ok := parseLogDuration(s); ok {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a duration, an RFC 3339 time or Unix seconds", s)
}

// parseLogDuration reads durations such as "90m", "1h30m", "1d" or
// "2 days 3 hours".
func parseLogDuration(s string) (time.Duration, bool) {
	units := map[string]time.Duration{
		"s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
		"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
		"h": time.Hour, "hour": time.Hour, "hours": time.Hour,
		"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	}
	var total time.Duration
	rest := strings.TrimSpace(s)
	if rest == "" {
		return 0, false
	}
	for rest != "" {
		i := strings.IndexFunc(rest, func(r rune) bool { return !unicode.IsDigit(r) })
		if i <= 0 {
			return 0, false
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil {
			return 0, false
		}
		rest = strings.TrimLeft(rest[i:], " ")
		j := strings.IndexFunc(rest, func(r rune) bool { return !unicode.IsLetter(r) })
		if j < 0 {
			j = len(rest)
		}
		u, ok := units[strings.ToLower(rest[:j])]
		if !ok {
			return 0, false
		}
		total += time.Duration(n) * u
		rest = strings.TrimLeft(rest[j:], " ")
	}
	return total, true
}

// edgeLogRecord is a log line as the agent's json content type writes it.
type edgeLogRecord struct {
	IoTHub    string `json:"iothub"`
	Device    string `json:"device"`
	ID        string `json:"id"`
	Stream    string `json:"stream"`
	LogLevel  int    `json:"loglevel"`
	Text      string `json:"text"`
	Timestamp string `json:"timestamp"`
}

// moduleLogs is one module's part of a GetModuleLogs answer.
type moduleLogs struct {
	ID           string  `json:"id"`
	PayloadBytes []byte  `json:"payloadBytes"`
	Payload      *string `json:"payload"`
}

// collect returns each matched module's encoded logs, and their total
// size as the agent measures it.
func (e *Edge) collect(q logsQuery) ([]moduleLogs, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []moduleLogs
	total := 0
	for _, sel := range q.items {
		for _, m := range e.modules {
			if !sel.id.MatchString(m) {
				continue
			}
			var lines []EdgeLogLine
			for _, l := range e.logs[m] {
				switch {
				case !sel.since.IsZero() && l.Time.Before(sel.since),
					!sel.until.IsZero() && l.Time.After(sel.until),
					sel.level != nil && l.LogLevel > *sel.level,
					sel.regex != nil && !sel.regex.MatchString(l.Text):
					continue
				}
				lines = append(lines, l)
			}
			if sel.tail != nil && len(lines) > *sel.tail {
				lines = lines[len(lines)-*sel.tail:]
			}
			data := e.encodeLines(m, lines, q.text)
			ml := moduleLogs{ID: m}
			if q.gzip {
				var buf bytes.Buffer
				zw := gzip.NewWriter(&buf)
				_, _ = zw.Write(data)
				_ = zw.Close()
				ml.PayloadBytes = buf.Bytes()
				total += buf.Len()
			} else {
				s := string(data)
				ml.Payload = &s
				total += len(s)
			}
			out = append(out, ml)
		}
	}
	return out, total
}

// encodeLines writes lines as the text or json content type.
func (e *Edge) encodeLines(module string, lines []EdgeLogLine, text bool) []byte {
	if text {
		var b strings.Builder
		for _, l := range lines {
			fmt.Fprintf(&b, "<%d> %s %s\n", l.LogLevel, l.Time.UTC().Format("2006-01-02 15:04:05.000 -07:00"), l.Text)
		}
		return []byte(b.String())
	}
	recs := make([]edgeLogRecord, 0, len(lines))
	for _, l := range lines {
		stream := l.Stream
		if stream == "" {
			stream = "stdout"
		}
		recs = append(recs, edgeLogRecord{
			IoTHub: e.hub.HostName(), Device: e.device, ID: module, Stream: stream,
			LogLevel: l.LogLevel, Text: l.Text, Timestamp: l.Time.UTC().Format(time.RFC3339Nano),
		})
	}
	return bytes.TrimSpace(marshal(recs))
}

func (e *Edge) getModuleLogs(p json.RawMessage) MethodResponse {
	var req logsRequest
	if err := decodeAgentPayload(p, &req); err != nil {
		return agentFailure(http.StatusBadRequest, "%v", err)
	}
	q, r, ok := parseLogsRequest(&req, time.Now())
	if !ok {
		return r
	}
	out, total := e.collect(q)
	if total > MaxEdgeLogsBytes {
		return agentFailure(http.StatusBadRequest,
			"The payload is too large for a direct method. GetModuleLogs supports up to %d bytes of logs. The current request returned %d bytes. Reduce the logs with the filter's tail, since or until, or use gzip encoding.",
			MaxEdgeLogsBytes, total)
	}
	if out == nil {
		out = []moduleLogs{}
	}
	return agentAnswer(http.StatusOK, out)
}

// taskAnswer is a background task as the agent reports it.
type taskAnswer struct {
	Status        string `json:"status"`
	Message       string `json:"message"`
	CorrelationID string `json:"correlationId"`
}

// startTask starts a background upload to sasURL and answers with it
// (NotStarted). The task advances one state per GetTaskStatus call, so
// that tests are deterministic: the first reads Running, the next
// Completed, or Failed when the SAS URL cannot be a blob container's.
func (e *Edge) startTask(sasURL string) MethodResponse {
	var id [16]byte
	_, _ = rand.Read(id[:])
	cid := hex.EncodeToString(id[:])
	t := &edgeTask{status: TaskNotStarted}
	if !validSASURL(sasURL) {
		t.fail = "Error uploading to the blob container: the SAS URL is not a valid https URL with a signature."
	}
	e.mu.Lock()
	e.tasks[cid] = t
	e.mu.Unlock()
	return agentAnswer(http.StatusOK, taskAnswer{Status: t.status, CorrelationID: cid})
}

// validSASURL reports whether s looks like a container SAS URL: https, a
// host, and a sig parameter. The URL is never quoted in an answer.
func validSASURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.Query().Get("sig") != ""
}

func (e *Edge) uploadModuleLogs(p json.RawMessage) MethodResponse {
	var req logsRequest
	if err := decodeAgentPayload(p, &req); err != nil {
		return agentFailure(http.StatusBadRequest, "%v", err)
	}
	if _, r, ok := parseLogsRequest(&req, time.Now()); !ok {
		return r
	}
	if req.SASURL == nil || *req.SASURL == "" {
		return agentFailure(http.StatusBadRequest, "The request has no sasUrl.")
	}
	return e.startTask(*req.SASURL)
}

func (e *Edge) uploadSupportBundle(p json.RawMessage) MethodResponse {
	var req struct {
		SchemaVersion   string   `json:"schemaVersion"`
		SASURL          *string  `json:"sasUrl"`
		Since           flexTime `json:"since"`
		Until           flexTime `json:"until"`
		EdgeRuntimeOnly *bool    `json:"edgeRuntimeOnly"`
	}
	if err := decodeAgentPayload(p, &req); err != nil {
		return agentFailure(http.StatusBadRequest, "%v", err)
	}
	if r, ok := checkSchema(req.SchemaVersion); !ok {
		return r
	}
	if req.SASURL == nil || *req.SASURL == "" {
		return agentFailure(http.StatusBadRequest, "The request has no sasUrl.")
	}
	for name, f := range map[string]flexTime{"since": req.Since, "until": req.Until} {
		if f.set {
			if _, err := parseLogTime(f.s, time.Now()); err != nil {
				return agentFailure(http.StatusBadRequest, "%s: %v", name, err)
			}
		}
	}
	return e.startTask(*req.SASURL)
}

func (e *Edge) getTaskStatus(p json.RawMessage) MethodResponse {
	var req struct {
		SchemaVersion string `json:"schemaVersion"`
		CorrelationID string `json:"correlationId"`
	}
	if err := decodeAgentPayload(p, &req); err != nil {
		return agentFailure(http.StatusBadRequest, "%v", err)
	}
	if r, ok := checkSchema(req.SchemaVersion); !ok {
		return r
	}
	if req.CorrelationID == "" {
		return agentFailure(http.StatusBadRequest, "The request has no correlationId.")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.tasks[req.CorrelationID]
	if !ok {
		return agentAnswer(http.StatusOK, taskAnswer{Status: TaskUnknown, CorrelationID: req.CorrelationID})
	}
	switch t.status {
	case TaskNotStarted:
		t.status = TaskRunning
	case TaskRunning:
		if t.fail != "" {
			t.status, t.message = TaskFailed, t.fail
		} else {
			t.status = TaskCompleted
		}
	}
	return agentAnswer(http.StatusOK, taskAnswer{Status: t.status, Message: t.message, CorrelationID: req.CorrelationID})
}
