package registry

import (
	"time"

	"github.com/hubkit/iothub/internal/wire"
)

// Time is a timestamp as IoT Hub writes it. The hub writes "never" as
// 0001-01-01T00:00:00, with or without a zone, and real times with seven
// fractional digits, sometimes without a zone (then UTC). The zero Time is
// "never"; IsZero reports it.
type Time struct {
	time.Time
}

// UnmarshalJSON reads a JSON string or null.
func (t *Time) UnmarshalJSON(b []byte) error {
	v, err := wire.ParseTime(b)
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

// MarshalJSON writes the time as IoT Hub does: UTC with seven fractional
// digits, and "never" as 0001-01-01T00:00:00Z.
func (t Time) MarshalJSON() ([]byte, error) {
	return wire.AppendTime(make([]byte, 0, 30), t.Time), nil
}
