package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"unicode/utf8"

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

// reportWriter writes one line per result to the file as results arrive:
// each line is in the file (the kernel's) before the program waits for
// another result; see write.
type reportWriter struct {
	mu  sync.Mutex
	f   *os.File
	buf []byte       // lines not yet written
	pay bytes.Buffer // scratch for compacting its payload
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
// With more false the line, and any held before it, is written with one
// write call before write returns. With more true (another result is
// already waiting to be handled, FanOut.Buffered) the line is held for
// that one: results that arrive together are written together, and none
// waits for a call still running.
func (w *reportWriter) write(r service.Result, more bool) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	b, err := appendLine(w.buf, &w.pay, r)
	if err != nil {
		// The lines held before this one still go out.
		w.err = cmp.Or(w.flushLocked(), err)
		return
	}
	w.buf = b
	if !more || len(w.buf) >= maxHeld {
		w.err = w.flushLocked()
	}
}

// maxHeld bounds the bytes of the lines held back for one write.
const maxHeld = 64 << 10

// flushLocked writes the held lines; the caller holds w.mu.
func (w *reportWriter) flushLocked() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.f.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}

// close syncs and closes the file and returns the first error; a nil
// *reportWriter has nothing to close.
func (w *reportWriter) close() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = w.flushLocked()
	}
	if err := w.f.Sync(); w.err == nil {
		w.err = err
	}
	if err := w.f.Close(); w.err == nil {
		w.err = err
	}
	return w.err
}

// appendLine appends r's line to b, newline-terminated: the JSON of a
// line as encoding/json writes it without HTML escaping, field for field
// (TestAppendLine checks that), without reflection. pay is scratch space
// for compacting the payload; a payload that is not valid JSON is an
// error.
func appendLine(b []byte, pay *bytes.Buffer, r service.Result) ([]byte, error) {
	b = append(b, `{"deviceId":`...)
	b = appendString(b, r.DeviceID)
	if r.ModuleID != "" {
		b = append(b, `,"moduleId":`...)
		b = appendString(b, r.ModuleID)
	}
	b = append(b, `,"outcome":`...)
	b = appendString(b, string(r.Outcome))
	if r.Status != 0 {
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(r.Status), 10)
	}
	if len(r.Payload) > 0 {
		b = append(b, `,"payload":`...)
		pay.Reset()
		if err := json.Compact(pay, r.Payload); err != nil {
			return b, fmt.Errorf("payload of %s: %w", r.DeviceID, err)
		}
		b = append(b, pay.Bytes()...)
	}
	if r.ErrorCode != 0 {
		b = append(b, `,"errorCode":`...)
		b = strconv.AppendInt(b, int64(r.ErrorCode), 10)
	}
	if r.Err != nil {
		if msg := r.Err.Error(); msg != "" {
			b = append(b, `,"error":`...)
			b = appendString(b, msg)
		}
	}
	if r.TrackingID != "" {
		b = append(b, `,"trackingId":`...)
		b = appendString(b, r.TrackingID)
	}
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(r.Attempts), 10)
	b = append(b, `,"ms":`...)
	b = strconv.AppendInt(b, r.Latency.Milliseconds(), 10)
	return append(b, "}\n"...), nil
}

// appendString appends s as a JSON string the way encoding/json does
// without HTML escaping: quote, backslash and control characters escaped,
// U+2028 and U+2029 escaped, invalid UTF-8 replaced by U+FFFD.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
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
