package iothubtest

import (
	"time"

	"github.com/hubkit/iothub/internal/testkit/httpmock"
)

// EdgeOptions describes the IoT Edge runtime of a device added with
// DeviceOptions.EdgeRuntime.
//
// The runtime answers the built-in methods of $edgeAgent ("ping",
// "RestartModule", "GetModuleLogs", "UploadModuleLogs",
// "UploadSupportBundle", "GetTaskStatus", names matched
// case-insensitively) and of $edgeHub ("RefreshDeviceScopeIdentityCache")
// with the schemas, encodings and device statuses of the real agent:
// 200 on success; 400 {"message":…} for an unknown method, a missing or
// unparsable payload, or logs over 127,000 bytes; 500 {"message":…} for a
// schemaVersion whose major is not 1 or a module not in the deployment.
// Restarting edgeAgent never answers (the call ends 504101), makes the
// agent forget its tasks and takes it away for AgentRestartWindow (see
// there). An upload task reads Running at its first
// GetTaskStatus, then Completed, or Failed when its SAS URL is not https
// with a sig parameter; an id the agent does not know reads Unknown.
type EdgeOptions struct {
	// Modules are the custom modules of the deployment, such as
	// "tempSensor", besides edgeAgent and edgeHub. Each is registered as a
	// module identity of the device too.
	Modules []string
	// Logs are the modules' log lines by module name (edgeAgent and
	// edgeHub may have some too), oldest first.
	Logs map[string][]LogLine

	// AgentRestartWindow is how long the agent is away after a
	// RestartModule of edgeAgent, counted from when the call reaches it
	// (in the hub's clock, so a testing/synctest bubble's fake time): the
	// module $edgeAgent is disconnected (so the registry shows it), every
	// call to it gets 404 / 404103 DeviceNotOnline at once or, with a
	// connect timeout, is delivered when the agent is back, and at the
	// end it connects again. Zero means DefaultAgentRestartWindow; a
	// negative value means no window.
	//
	// That a restarting agent is disconnected follows from IoT Hub's
	// rules for a module that is not connected; how long a real agent
	// stays away is not documented, so the default is an assumption.
	AgentRestartWindow time.Duration
	// AgentStartupWindow, when positive, is how long the agent, once
	// back, answers only "ping" and "GetTaskStatus": the other methods get
	// status 400 {"message":"Command '…' not found. …"}. The real agent
	// registers those two first and the others once its runtime is ready
	// (Azure/iotedge, the agent's request handlers); how long that takes
	// is not documented, so no startup window is the default.
	AgentStartupWindow time.Duration
}

// DefaultAgentRestartWindow is how long a restarted agent is away when
// EdgeOptions.AgentRestartWindow is zero (an assumption; see there).
const DefaultAgentRestartWindow = 10 * time.Second

// LogLine is a line of a simulated module's log.
type LogLine struct {
	// Time is when the module wrote it.
	Time time.Time
	// Stream is "stdout" or "stderr"; empty means "stdout".
	Stream string
	// LogLevel is the syslog severity: 0 (emergency) to 7 (debug).
	LogLevel int
	// Text is the line's text, without level or timestamp.
	Text string
}

// engine converts the options; nil gives an empty runtime.
func (o *EdgeOptions) engine() *httpmock.EdgeOptions {
	if o == nil {
		return nil
	}
	e := &httpmock.EdgeOptions{Modules: o.Modules, AgentRestartWindow: o.AgentRestartWindow, AgentStartupWindow: o.AgentStartupWindow}
	if o.Logs != nil {
		e.Logs = make(map[string][]httpmock.EdgeLogLine, len(o.Logs))
		for m, lines := range o.Logs {
			e.Logs[m] = engineLines(lines)
		}
	}
	return e
}

func engineLines(lines []LogLine) []httpmock.EdgeLogLine {
	out := make([]httpmock.EdgeLogLine, len(lines))
	for i, l := range lines {
		out[i] = httpmock.EdgeLogLine(l)
	}
	return out
}

// Edge is the IoT Edge runtime of a device. Its methods are safe for
// concurrent use.
type Edge struct {
	e *httpmock.Edge
}

// Edge returns the device's IoT Edge runtime, or nil when it is not an
// Edge device (DeviceOptions.Edge or EdgeRuntime).
func (d *Device) Edge() *Edge {
	e := d.d.Edge()
	if e == nil {
		return nil
	}
	return &Edge{e: e}
}

// AddLogs appends lines to a module's log.
func (e *Edge) AddLogs(module string, lines ...LogLine) {
	e.e.AddLogs(module, engineLines(lines)...)
}

// RestartAgent simulates a restart of the agent that has already ended:
// every task it knew then reads "Unknown", as after a RestartModule of
// edgeAgent, but without the restart and startup windows: the agent
// answers at once, and a window in progress ends.
func (e *Edge) RestartAgent() { e.e.RestartAgent() }

// Restarts returns how many times the named module ("tempSensor",
// "edgeAgent") was restarted.
func (e *Edge) Restarts(module string) int { return e.e.Restarts(module) }
