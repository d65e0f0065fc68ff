package wire

import (
	"bytes"
	"time"
)

// timeLayouts are the layouts IoT Hub's timestamps come in: RFC 3339, or
// seven fractional digits (or none) without a zone, which means UTC.
var timeLayouts = [...]string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05"}

// hubTimeLayout is how IoT Hub writes a timestamp: UTC, seven fractional
// digits.
const hubTimeLayout = "2006-01-02T15:04:05.0000000Z"

// neverJSON is how IoT Hub writes "never".
const neverJSON = `"0001-01-01T00:00:00Z"`

// ParseTime reads an IoT Hub timestamp from JSON: a string in one of the
// layouts the hub writes, or null. "Never" (0001-01-01T00:00:00, with or
// without a zone) and null are the zero time.
func ParseTime(b []byte) (time.Time, error) {
	if bytes.Equal(b, []byte("null")) {
		return time.Time{}, nil
	}
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return time.Time{}, &time.ParseError{Layout: time.RFC3339, Value: string(b), Message: ": IoT Hub timestamp must be a JSON string"}
	}
	s := string(b[1 : len(b)-1])
	var err error
	for _, layout := range timeLayouts {
		var v time.Time
		if v, err = time.Parse(layout, s); err == nil {
			if v.Year() <= 1 {
				v = time.Time{}
			}
			return v, nil
		}
	}
	return time.Time{}, err
}

// AppendTime appends t as JSON the way IoT Hub writes it: UTC with seven
// fractional digits, and the zero time as "never",
// "0001-01-01T00:00:00Z".
func AppendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, neverJSON...)
	}
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, hubTimeLayout)
	return append(b, '"')
}
