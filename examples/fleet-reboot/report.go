package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/hubkit/iothub/service"
)

// line is one line of the report: one target's result.
type line struct {
	DeviceID   string          `json:"deviceId"`
	ModuleID   string          `json:"moduleId,omitempty"`
	Outcome    service.Outcome `json:"outcome"`
	Status     int             `json:"status,omitempty"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	ErrorCode  int             `json:"errorCode,omitempty"`
	Error      string          `json:"error,omitempty"`
	TrackingID string          `json:"trackingId,omitempty"`
	Attempts   int             `json:"attempts"`
	MS         int64           `json:"ms"`
}

func lineOf(r service.Result) line {
	l := line{
		DeviceID:   r.DeviceID,
		ModuleID:   r.ModuleID,
		Outcome:    r.Outcome,
		Status:     r.Status,
		Payload:    r.Payload,
		ErrorCode:  int(r.ErrorCode),
		TrackingID: r.TrackingID,
		Attempts:   r.Attempts,
		MS:         r.Latency.Milliseconds(),
	}
	if r.Err != nil {
		l.Error = r.Err.Error()
	}
	return l
}

// readReport reads a report and returns the targets a resumed run must not
// invoke again, with their last outcome: those whose last line says
// succeeded, and those whose last line says unknown (the method may have
// run) unless retryUnknown is set.
// A missing file is an empty report. A last line without its
// newline (a run killed mid-write) is ignored; other lines that do not
// parse are ignored with a warning.
func readReport(file string, retryUnknown bool) (map[service.Target]service.Outcome, []string, error) {
	done := make(map[service.Target]service.Outcome)
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return done, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var warn []string
	n := 0
	for raw := range bytes.Lines(data) {
		n++
		if !bytes.HasSuffix(raw, []byte("\n")) {
			warn = append(warn, fmt.Sprintf("%s:%d: ignoring a truncated last line", file, n))
			break
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		var l line
		if err := json.Unmarshal(raw, &l); err != nil || l.DeviceID == "" || l.Outcome == "" {
			warn = append(warn, fmt.Sprintf("%s:%d: ignoring a line that is not a result", file, n))
			continue
		}
		// The last line of a target is its outcome.
		done[service.Target{DeviceID: l.DeviceID, ModuleID: l.ModuleID}] = l.Outcome
	}
	for t, o := range done {
		if o != service.OutcomeSucceeded && (o != service.OutcomeUnknown || retryUnknown) {
			delete(done, t)
		}
	}
	return done, warn, nil
}

// reportWriter writes one line per result straight to the file: each line
// is in the file (the kernel's) before the next result is handled.
type reportWriter struct {
	mu  sync.Mutex
	f   *os.File
	err error
}

// openReport opens the report for appending (resume) or creates it.
func openReport(file string, resume bool) (*reportWriter, error) {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if resume {
		flags = os.O_RDWR | os.O_CREATE | os.O_APPEND
	}
	f, err := os.OpenFile(file, flags, 0o644)
	if err != nil {
		return nil, err
	}
	w := &reportWriter{f: f}
	if resume {
		// A truncated last line must not swallow the first new one.
		if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
			b := make([]byte, 1)
			if _, err := f.ReadAt(b, fi.Size()-1); err == nil && b[0] != '\n' {
				if _, err := f.Write([]byte("\n")); err != nil {
					f.Close()
					return nil, err
				}
			}
		}
	}
	return w, nil
}

// write appends r's line; a nil *reportWriter (no -report) writes nothing.
func (w *reportWriter) write(r service.Result) {
	if w == nil {
		return
	}
	b, err := marshalLine(lineOf(r))
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	if err == nil {
		_, err = w.f.Write(b)
	}
	w.err = err
}

// close syncs and closes the file and returns the first error; a nil
// *reportWriter has nothing to close.
func (w *reportWriter) close() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.f.Sync(); w.err == nil {
		w.err = err
	}
	if err := w.f.Close(); w.err == nil {
		w.err = err
	}
	return w.err
}

// marshalLine encodes a line without HTML escaping, newline-terminated.
func marshalLine(l line) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(l); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// openReport opens -report FILE, for appending with -resume; without
// -report it returns a nil *reportWriter, which writes nothing.
func (r *fleetRun) openReport() (*reportWriter, error) {
	if r.cfg.report == "" {
		return nil, nil
	}
	rw, err := openReport(r.cfg.report, r.cfg.resume)
	if err != nil {
		return nil, fmt.Errorf("-report: %w", err)
	}
	return rw, nil
}
