package registry_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/registry"
)

// TestFaultQueryEveryDeviceOnce pages through a registry query while the
// hub throttles, is busy, drops connections and loses answers: queries are
// reads, so each page is retried, and every device is still yielded
// exactly once. A fault that outlasts the retries ends the sequence with
// one error that says what happened, after the devices of the pages read
// so far and no others.
func TestFaultQueryEveryDeviceOnce(t *testing.T) {
	t.Parallel()
	const n = 250
	html := []byte("<html><head><title>502 Bad Gateway</title></head></html>")
	tests := []struct {
		name    string
		faults  []httpmock.Fault
		wantErr error // nil: the query completes
		errText string
	}{
		{name: "throttled pages", faults: []httpmock.Fault{{Operation: httpmock.OperationQuery, Code: 429001, RetryAfter: "2", Skip: 1, Times: 2}}},
		{name: "503 burst", faults: []httpmock.Fault{{Operation: httpmock.OperationQuery, Code: 503005, Skip: 2, Times: 3}}},
		{name: "reset before write", faults: []httpmock.Fault{{Operation: httpmock.OperationQuery, Drop: httpmock.DropBeforeWrite, Skip: 1, Times: 3}}},
		{name: "reset after read", faults: []httpmock.Fault{{Operation: httpmock.OperationQuery, Drop: httpmock.DropAfterRead, Skip: 3, Times: 2}}},
		{name: "lost answers (500)", faults: []httpmock.Fault{{Operation: httpmock.OperationQuery, Code: 500001, Skip: 1, Times: 2}}},
		{name: "proxy page", faults: []httpmock.Fault{{Operation: httpmock.OperationQuery, Status: 502, Body: html, Skip: 1, Times: 1}}},
		{
			name:    "endless 503",
			faults:  []httpmock.Fault{{Operation: httpmock.OperationQuery, Code: 503005, Skip: 2, Times: -1}},
			wantErr: iothub.ErrServerBusy, errText: "after 4 attempts",
		},
		{
			name:    "truncated page",
			faults:  []httpmock.Fault{{Operation: httpmock.OperationQuery, Status: 200, Body: []byte(`[{"deviceId":"x"`), Skip: 1, Times: 1}},
			wantErr: iothub.ErrOutcomeUnknown, errText: "decode answer",
		},
		{
			name:    "HTML page with status 200",
			faults:  []httpmock.Fault{{Operation: httpmock.OperationQuery, Status: 200, Body: html, ContentType: "text/html", Skip: 1, Times: 1}},
			wantErr: iothub.ErrOutcomeUnknown, errText: "decode answer",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub, client := setup(t)
				for i := range n {
					hub.AddDevice(fmt.Sprintf("dev-%04d", i), nil)
				}
				for _, f := range tt.faults {
					hub.AddFault(f)
				}
				seen := make(map[string]int)
				var errs []error
				for twin, err := range client.QueryTwins(t.Context(), "SELECT * FROM devices", &registry.QueryOptions{PageSize: 40}) {
					if err != nil {
						errs = append(errs, err)
						continue
					}
					if len(errs) > 0 {
						t.Fatal("a twin after the error")
					}
					seen[twin.DeviceID]++
				}
				for id, c := range seen {
					if c != 1 {
						t.Errorf("%s yielded %d times", id, c)
					}
				}
				if tt.wantErr == nil {
					if len(errs) != 0 || len(seen) != n {
						t.Errorf("%d devices, errors %v; want all %d and no error", len(seen), errs, n)
					}
					return
				}
				if len(errs) != 1 || !errors.Is(errs[0], tt.wantErr) || !strings.Contains(errs[0].Error(), tt.errText) {
					t.Fatalf("errors %v, want one matching %v and saying %q", errs, tt.wantErr, tt.errText)
				}
				if len(seen)%40 != 0 || len(seen) >= n {
					t.Errorf("%d devices before the error; want whole pages only", len(seen))
				}
			})
		})
	}
}
