package wire

import (
	"encoding/json"
	"strconv"

	"github.com/hubkit/iothub"
)

// ParseCode reads an error code that the hub sends as a JSON string (a name
// such as "DeviceNotOnline", or digits) or a JSON number. It returns the code,
// 0 when the SDK does not know it, and its name: the name as sent, or, for
// a number, the name the SDK knows for it ("" when none). Unknown names,
// such as "JobExecutionTimeExceeded", are kept as the name with code 0.
func ParseCode(raw json.RawMessage) (iothub.ErrorCode, string) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		s = string(raw)
		if s == "null" {
			s = ""
		}
	}
	code, _ := iothub.ParseErrorCode(s)
	if _, err := strconv.Atoi(s); err == nil {
		return code, code.Name()
	}
	return code, s
}
