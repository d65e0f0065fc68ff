package otelsetup

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// userAgent names the exporter to the collector.
const userAgent = "hubkit-iothub-examples-otlp/1 (OTLP over HTTP/protobuf)"

// Backoff between retries without Retry-After: first, doubled each time,
// capped; each wait is drawn from its upper half.
const (
	backoffFirst = 500 * time.Millisecond
	backoffMax   = 5 * time.Second
)

// maxAnswer is as much of a collector's answer body as is read.
const maxAnswer = 64 << 10

// sender posts one signal's export bodies to its collector URL. It is safe
// for concurrent use.
type sender struct {
	cfg    signalConfig
	where  string // the URL without its query and user info, for errors
	signal string // "spans" or "data points", for partial success
	client *http.Client

	mu      sync.Mutex
	stopped bool
}

// stop makes later sends fail and closes the idle connections: an
// exporter's Shutdown.
func (s *sender) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.client.CloseIdleConnections()
}

// live returns an error once stop was called.
func (s *sender) live() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return fmt.Errorf("OTLP export of %s: the exporter is shut down", s.signal)
	}
	return nil
}

func newSender(cfg signalConfig, signal string) *sender {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.tls != nil {
		t.TLSClientConfig = cfg.tls
	}
	return &sender{
		cfg:    cfg,
		where:  redactURL(cfg.url),
		signal: signal,
		client: &http.Client{
			Transport: t,
			// A redirect is refused, not followed: net/http would carry the
			// configured headers (API keys) to wherever it points.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// String is the configuration's String: no header value, no query.
func (s *sender) String() string { return s.cfg.String() }

// GoString is String, for %#v.
func (s *sender) GoString() string { return s.cfg.String() }

// exportError is a collector's answer other than success. Its message names
// the URL (without query) and the status; never a header value.
type exportError struct {
	where    string
	status   string // such as "503 Service Unavailable"
	attempts int
	message  string // the collector's own, header values redacted
	reason   string // why it was not retried further, "" if not retryable
}

func (e *exportError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "OTLP export to %s: %s", e.where, e.status)
	if e.message != "" {
		fmt.Fprintf(&b, ": %s", e.message)
	}
	if e.attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.attempts)
	}
	if e.reason != "" {
		fmt.Fprintf(&b, "; %s", e.reason)
	}
	return b.String()
}

// send posts body, retrying 429, 502, 503 and 504 answers (after
// Retry-After when the collector gives one) within the configured timeout.
func (s *sender) send(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	encoding := ""
	if s.cfg.gzip {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(body) // a bytes.Buffer does not fail
		_ = zw.Close()
		body, encoding = buf.Bytes(), "gzip"
	}
	for attempt := 1; ; attempt++ {
		resp, answer, err := s.post(ctx, body, encoding)
		if err != nil {
			return fmt.Errorf("OTLP export to %s: %w", s.where, err)
		}
		if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
			return s.partialSuccess(answer)
		}
		e := &exportError{where: s.where, status: resp.Status, attempts: attempt, message: s.redact(statusMessage(answer))}
		if e.status == "" {
			e.status = strconv.Itoa(resp.StatusCode)
		}
		switch resp.StatusCode {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		default:
			return e
		}
		wait, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now())
		if !ok {
			d := min(backoffFirst<<(attempt-1), backoffMax)
			wait = d/2 + rand.N(d/2+1)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			e.reason = fmt.Sprintf("not retried: the next attempt, in %v, would pass the export timeout of %v", wait.Round(time.Millisecond), s.cfg.timeout)
			return e
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			e.reason = "not retried: " + ctx.Err().Error()
			return e
		case <-t.C:
		}
	}
}

// post makes one attempt. The answer body is read, at most maxAnswer of it,
// and the response closed.
func (s *sender) post(ctx context.Context, body []byte, encoding string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, errors.New("the endpoint is not a valid URL")
	}
	if s.cfg.headers != nil {
		req.Header = s.cfg.headers.Clone() // not shared between concurrent uploads
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", userAgent)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		// *url.Error repeats the full URL, query included: keep its cause.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil && resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		answer = nil // the data was accepted; the partial-success detail is lost
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer)) // reuse the connection
	return resp, answer, nil
}

// redact removes every configured header value from a collector's message,
// in case it echoes the request.
func (s *sender) redact(msg string) string {
	for _, vs := range s.cfg.headers {
		for _, v := range vs {
			if v != "" {
				msg = strings.ReplaceAll(msg, v, "[redacted]")
			}
		}
	}
	return msg
}

// partialSuccess reads a success answer, an Export*ServiceResponse whose
// field 1 is partial_success {int64 rejected = 1; string error_message = 2}
// for both signals; an error when the collector rejected part of the data.
func (s *sender) partialSuccess(answer []byte) error {
	ps, ok := field(answer, 1)
	if !ok {
		return nil
	}
	var rejected uint64
	var msg string
	for f := range fields(ps) {
		switch {
		case f.num == 1 && f.typ == varintType:
			rejected = f.varint
		case f.num == 2 && f.typ == bytesType:
			msg = string(f.val)
		}
	}
	if rejected == 0 && msg == "" {
		return nil
	}
	e := fmt.Sprintf("OTLP export to %s: the collector rejected %d %s", s.where, int64(rejected), s.signal)
	if msg != "" {
		e += ": " + s.redact(msg)
	}
	return errors.New(e)
}

// statusMessage is the message of a google.rpc.Status answer body
// (string message = 2), "" if the body is not one.
func statusMessage(answer []byte) string {
	b, ok := field(answer, 2)
	if !ok || !utf8Printable(b) {
		return ""
	}
	return string(b)
}

// utf8Printable reports whether b is a short text worth putting in an error.
func utf8Printable(b []byte) bool {
	if len(b) > 512 {
		return false
	}
	for _, r := range string(b) {
		if r == '\uFFFD' || (r < ' ' && r != '\t') {
			return false
		}
	}
	return true
}

// field is the content of the first length-delimited field num of the
// protobuf message b.
func field(b []byte, num fieldNum) ([]byte, bool) {
	for f := range fields(b) {
		if f.num == num && f.typ == bytesType {
			return f.val, true
		}
	}
	return nil, false
}

// pbField is one field of a protobuf message: its number, its wire type and
// its value: the content of a length-delimited value (without its length),
// the bytes of a fixed one, or the bytes of a varint, whose value is in
// varint.
type pbField struct {
	num    fieldNum
	typ    wireType
	val    []byte
	varint uint64
}

// fields yields the fields of the protobuf message b; it stops at the first
// malformed field, and at a group (wire types 3 and 4), which OTLP does not
// use.
func fields(b []byte) iter.Seq[pbField] {
	return func(yield func(pbField) bool) {
		for len(b) > 0 {
			key, n := binary.Uvarint(b)
			if n <= 0 || key>>3 < 1 || key>>3 > maxFieldNum {
				return
			}
			f := pbField{num: fieldNum(key >> 3), typ: wireType(key & 7)}
			b = b[n:]
			switch f.typ {
			case varintType:
				f.varint, n = binary.Uvarint(b)
				if n <= 0 {
					return
				}
				f.val = b[:n]
			case fixed64Type, fixed32Type:
				n = 8
				if f.typ == fixed32Type {
					n = 4
				}
				if len(b) < n {
					return
				}
				f.val = b[:n]
			case bytesType:
				size, m := binary.Uvarint(b)
				if m <= 0 || size > uint64(len(b)-m) {
					return
				}
				n = m + int(size)
				f.val = b[m:n]
			default:
				return
			}
			if !yield(f) {
				return
			}
			b = b[n:]
		}
	}
}

// retryAfter parses a Retry-After value, delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
