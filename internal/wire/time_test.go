package wire

import (
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Time
	}{
		{`"0001-01-01T00:00:00"`, time.Time{}},
		{`"0001-01-01T00:00:00Z"`, time.Time{}},
		{`"0001-01-01T00:00:00.0000000Z"`, time.Time{}},
		{`null`, time.Time{}},
		{`"2020-07-17T06:12:26.8402249Z"`, time.Date(2020, 7, 17, 6, 12, 26, 840224900, time.UTC)},
		{`"2020-07-17T06:12:26.8402249"`, time.Date(2020, 7, 17, 6, 12, 26, 840224900, time.UTC)},
		{`"2020-07-17T06:12:26"`, time.Date(2020, 7, 17, 6, 12, 26, 0, time.UTC)},
		{`"2020-07-17T08:12:26.5+02:00"`, time.Date(2020, 7, 17, 6, 12, 26, 5e8, time.UTC)},
	}
	for _, tt := range tests {
		got, err := ParseTime([]byte(tt.in))
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("ParseTime(%s) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{`12`, `"yesterday"`, `"`, ``, `"2020-13-01T00:00:00Z"`} {
		if got, err := ParseTime([]byte(bad)); err == nil {
			t.Errorf("ParseTime(%s) = %v; want an error", bad, got)
		}
	}
}

func TestAppendTime(t *testing.T) {
	t.Parallel()
	plus2 := time.FixedZone("plus2", 2*3600)
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Time{}, `"0001-01-01T00:00:00Z"`},
		{time.Date(2020, 7, 17, 6, 12, 26, 840224900, time.UTC), `"2020-07-17T06:12:26.8402249Z"`},
		{time.Date(2020, 7, 17, 6, 12, 26, 0, time.UTC), `"2020-07-17T06:12:26.0000000Z"`},
		{time.Date(2020, 7, 17, 8, 12, 26, 77e6, plus2), `"2020-07-17T06:12:26.0770000Z"`},
		// The hub keeps 100 ns; finer digits are cut, as the hub would.
		{time.Date(2020, 7, 17, 6, 12, 26, 123456789, time.UTC), `"2020-07-17T06:12:26.1234567Z"`},
	}
	for _, tt := range tests {
		got := string(AppendTime(nil, tt.in))
		if got != tt.want {
			t.Errorf("AppendTime(%v) = %s, want %s", tt.in, got, tt.want)
		}
		back, err := ParseTime([]byte(got))
		if err != nil || !back.Equal(tt.in.Truncate(100*time.Nanosecond)) {
			t.Errorf("ParseTime(AppendTime(%v)) = %v, %v", tt.in, back, err)
		}
	}
}
