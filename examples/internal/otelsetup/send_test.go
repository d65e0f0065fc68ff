package otelsetup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	colltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// roundTripFunc is an in-process transport: a real httptest.Server inside
// a synctest bubble would hang.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// answer is one scripted collector answer; err, when set, is a transport
// failure instead.
type answer struct {
	status int
	header http.Header
	body   []byte
	err    error
}

// rpcStatus is a google.rpc.Status body with message.
func rpcStatus(code int, message string) []byte {
	b := protowire.AppendTag(nil, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(code))
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendString(b, message)
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSendRetries runs send against scripted answers on the bubble's fake
// clock: which answers are retried, after how long, and what the error
// says; the header values (API keys) and the URL's query are never in it.
func TestSendRetries(t *testing.T) {
	t.Parallel()
	const secret = "k3y-s3cret"
	partial := mustMarshal(t, &colltracepb.ExportTraceServiceResponse{PartialSuccess: &colltracepb.ExportTracePartialSuccess{RejectedSpans: 2, ErrorMessage: "too old for " + secret}})
	tests := []struct {
		name         string
		answers      []answer
		wantAttempts int
		wantElapsed  time.Duration // -1: any, within the timeout
		wantErr      []string      // substrings; none: success
	}{
		{name: "200", answers: []answer{{status: 200}}, wantAttempts: 1},
		{name: "503 then 200", answers: []answer{{status: 503}, {status: 200}}, wantAttempts: 2, wantElapsed: -1},
		{name: "502, 504 then 200", answers: []answer{{status: 502}, {status: 504}, {status: 200}}, wantAttempts: 3, wantElapsed: -1},
		{
			name:         "429 with Retry-After then 200",
			answers:      []answer{{status: 429, header: http.Header{"Retry-After": {"3"}}}, {status: 200}},
			wantAttempts: 2, wantElapsed: 3 * time.Second,
		},
		{
			name:         "400 is not retried and the collector's message is redacted",
			answers:      []answer{{status: 400, body: rpcStatus(3, "bad header Api-Key: "+secret)}},
			wantAttempts: 1,
			wantErr:      []string{"OTLP export to http://collector:4318/v1/traces: 400 Bad Request: bad header Api-Key: [redacted]"},
		},
		{name: "401", answers: []answer{{status: 401}}, wantAttempts: 1, wantErr: []string{"401 Unauthorized"}},
		{
			name:         "Retry-After past the timeout is not waited for",
			answers:      []answer{{status: 503, header: http.Header{"Retry-After": {"60"}}}},
			wantAttempts: 1,
			wantErr:      []string{"503 Service Unavailable; not retried: the next attempt, in 1m0s, would pass the export timeout of 10s"},
		},
		{
			name:         "503 until the timeout",
			answers:      []answer{{status: 503}, {status: 503}, {status: 503}, {status: 503}, {status: 503}, {status: 503}, {status: 503}, {status: 503}},
			wantAttempts: -1, wantElapsed: -1,
			wantErr: []string{"503 Service Unavailable (after ", " attempts); not retried: "},
		},
		{
			name:         "a redirect is not followed",
			answers:      []answer{{status: 307, header: http.Header{"Location": {"http://elsewhere/v1/traces"}}}},
			wantAttempts: 1,
			wantErr:      []string{"307 Temporary Redirect"},
		},
		{
			name:         "partial success",
			answers:      []answer{{status: 200, body: partial}},
			wantAttempts: 1,
			wantErr:      []string{"OTLP export to http://collector:4318/v1/traces: the collector rejected 2 spans: too old for [redacted]"},
		},
		{
			name:         "a transport failure is not retried and does not show the query",
			answers:      []answer{{err: errors.New("connection refused")}},
			wantAttempts: 1,
			wantErr:      []string{"OTLP export to http://collector:4318/v1/traces: connection refused"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				cfg := signalConfig{
					url:     "http://collector:4318/v1/traces?tenant=" + secret,
					headers: http.Header{"Api-Key": {secret}},
					timeout: defaultTimeout,
				}
				s := newSender(cfg, "spans")
				body := []byte("the body")
				attempts := 0
				s.client.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
					got, _ := io.ReadAll(r.Body)
					if !bytes.Equal(got, body) || r.Header.Get("Api-Key") != secret || r.Header.Get("Content-Type") != "application/x-protobuf" {
						t.Errorf("attempt %d: body %q, Api-Key %q, Content-Type %q", attempts+1, got, r.Header.Get("Api-Key"), r.Header.Get("Content-Type"))
					}
					if attempts >= len(tt.answers) {
						t.Fatalf("attempt %d, beyond the %d scripted answers", attempts+1, len(tt.answers))
					}
					a := tt.answers[attempts]
					attempts++
					if a.err != nil {
						return nil, a.err
					}
					h := a.header.Clone()
					if h == nil {
						h = http.Header{}
					}
					return &http.Response{
						StatusCode: a.status, Status: fmt.Sprintf("%d %s", a.status, http.StatusText(a.status)),
						Header: h, Body: io.NopCloser(bytes.NewReader(a.body)), Request: r,
					}, nil
				})
				start := time.Now()
				err := s.send(t.Context(), body)
				elapsed := time.Since(start)

				if tt.wantAttempts >= 0 && attempts != tt.wantAttempts {
					t.Errorf("%d attempts, want %d", attempts, tt.wantAttempts)
				}
				if tt.wantAttempts < 0 && attempts < 3 {
					t.Errorf("%d attempts, want retries until the timeout", attempts)
				}
				switch {
				case tt.wantElapsed >= 0 && elapsed != tt.wantElapsed:
					t.Errorf("took %v, want %v", elapsed, tt.wantElapsed)
				case elapsed > defaultTimeout:
					t.Errorf("took %v, more than the timeout %v", elapsed, defaultTimeout)
				}
				if len(tt.wantErr) == 0 {
					if err != nil {
						t.Errorf("send: %v, want success", err)
					}
					return
				}
				if err == nil {
					t.Fatalf("send succeeded, want an error with %q", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows a header value or the URL's query", err)
				}
			})
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"7", 7 * time.Second, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
	}
	for _, tt := range tests {
		got, ok := retryAfter(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}
