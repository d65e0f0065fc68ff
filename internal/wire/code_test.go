package wire

import (
	"encoding/json"
	"testing"

	"github.com/hubkit/iothub"
)

func TestParseCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw      string
		wantCode iothub.ErrorCode
		wantName string
	}{
		{`"DeviceNotOnline"`, iothub.ErrorCodeDeviceNotOnline, "DeviceNotOnline"},
		{`404103`, iothub.ErrorCodeDeviceNotOnline, "DeviceNotOnline"},
		{`"404103"`, iothub.ErrorCodeDeviceNotOnline, "DeviceNotOnline"},
		{`"JobExecutionTimeExceeded"`, 0, "JobExecutionTimeExceeded"},
		{`400999`, 400999, ""},
		{`null`, 0, ""},
		{``, 0, ""},
	}
	for _, tt := range tests {
		code, name := ParseCode(json.RawMessage(tt.raw))
		if code != tt.wantCode || name != tt.wantName {
			t.Errorf("ParseCode(%s) = %d, %q; want %d, %q", tt.raw, code, name, tt.wantCode, tt.wantName)
		}
	}
}
