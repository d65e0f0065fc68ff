package registry_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/registry"
)

// pageTransport answers the first query request with body and the
// continuation token cont, and every later one with an empty last page.
type pageTransport struct {
	body  []byte
	cont  string
	calls atomic.Int32
}

func (p *pageTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	h := http.Header{"Content-Type": {"application/json; charset=utf-8"}, "X-Ms-Item-Type": {"twin"}}
	body := []byte("[]")
	if p.calls.Add(1) == 1 {
		body = p.body
		if p.cont != "" {
			h.Set("X-Ms-Continuation", p.cont)
		}
	}
	return &http.Response{
		StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: r,
	}, nil
}

// FuzzQueryPage decodes arbitrary query answers through the client's
// pager and iterator: whatever the hub sends, the SDK does not panic, an
// answer that is not a JSON array of twins is one *iothub.BodyError
// (outcome unknown) that ends the sequence, and an answer that is yields
// each twin once.
func FuzzQueryPage(f *testing.F) {
	f.Add([]byte(`[{"deviceId":"d1","etag":"AAAA","version":2,"status":"enabled","connectionState":"Connected","tags":{"plant":"3"},"properties":{"desired":{"$version":1},"reported":{"$version":1}}}]`), "")
	f.Add([]byte(`[{"deviceId":"d1","moduleId":"m1"},{"deviceId":"d2"}]`), `{"token":"+RID:~abc==#RT:1#TRC:2","range":{"min":"","max":"FF"}}`)
	f.Add([]byte(`[]`), "")
	f.Add([]byte(`null`), "")
	f.Add([]byte(`[1,"x",null]`), "")
	f.Add([]byte(`{"Message":"not a page"}`), "")
	f.Add([]byte(`<html><body>502 Bad Gateway</body></html>`), "")
	f.Add([]byte(`[{"deviceId":"d1","lastActivityTime":"not a time"}]`), "")
	f.Add([]byte(`[{"deviceId":"d1"`), "")
	hub := httpmock.New(nil)
	cs := hub.ConnectionString("iothubowner")
	f.Fuzz(func(t *testing.T, body []byte, cont string) {
		tr := &pageTransport{body: body, cont: cont}
		c, err := registry.NewClientFromConnectionString(cs, &iothub.ClientOptions{Transport: tr, Retry: iothub.RetryOptions{MaxAttempts: 1}})
		if err != nil {
			t.Fatal(err)
		}
		var twins []registry.Twin
		wantOK := json.Unmarshal(body, &twins) == nil
		n, errs := 0, 0
		for _, err := range c.QueryTwins(t.Context(), "SELECT * FROM devices", nil) {
			if err != nil {
				errs++
				if !errors.Is(err, iothub.ErrOutcomeUnknown) {
					t.Errorf("error %v does not match ErrOutcomeUnknown", err)
				}
				if _, ok := errors.AsType[*iothub.BodyError](err); !ok {
					t.Errorf("error %T %v, want an *iothub.BodyError", err, err)
				}
				if len(err.Error()) > 1024 {
					t.Errorf("error is %d bytes long", len(err.Error()))
				}
				continue
			}
			if errs > 0 {
				t.Fatal("an item after the error")
			}
			n++
		}
		if errs > 1 {
			t.Errorf("%d errors; an error is yielded once", errs)
		}
		if wantOK && (errs != 0 || n != len(twins)) {
			t.Errorf("valid page of %d twins: yielded %d, %d errors", len(twins), n, errs)
		}
		if !wantOK && errs != 1 {
			t.Errorf("invalid page %q: %d errors, want 1", body, errs)
		}
		if calls := int(tr.calls.Load()); calls > 2 {
			t.Errorf("%d requests, want at most 2: %s", calls, strconv.Quote(cont))
		}
	})
}
