package registry

import (
	"bytes"
	"time"
)

// Time is a timestamp as IoT Hub writes it. The hub writes "never" as
// 0001-01-01T00:00:00, with or without a zone, and real times with seven
// fractional digits, sometimes without a zone (then UTC). The zero Time is
// "never"; IsZero reports it.
type Time struct {
	time.Time
}

// wireLayouts are the layouts IoT Hub's timestamps come in.
var wireLayouts = [...]string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05"}

// UnmarshalJSON reads a JSON string or null.
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		t.Time = time.Time{}
		return nil
	}
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return &time.ParseError{Layout: time.RFC3339, Value: string(b), Message: ": IoT Hub timestamp must be a JSON string"}
	}
	s := string(b[1 : len(b)-1])
	var err error
	for _, layout := range wireLayouts {
		var v time.Time
		if v, err = time.Parse(layout, s); err == nil {
			if v.Year() <= 1 {
				v = time.Time{}
			}
			t.Time = v
			return nil
		}
	}
	return err
}

// MarshalJSON writes RFC 3339 with nanoseconds, and "never" as IoT Hub
// does: 0001-01-01T00:00:00Z.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte(`"0001-01-01T00:00:00Z"`), nil
	}
	return t.UTC().MarshalJSON()
}
