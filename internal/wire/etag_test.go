package wire

import "testing"

func TestCheckETag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		etag string
		ok   bool
	}{
		{"", true},
		{"*", true},
		{`"AAAAAAAAAAE="`, true},
		{`W/"AAAAAAAAAAw="`, true},
		{"AAAAAAAAAAE=", true},
		{" W/\"x\" ", true},
		{"caf\xc3\xa9", true},
		{"x y", false},
		{"x\ny", false},
		{"W/\"x\r\ny\"", false},
		{`a"b`, false},
		{"x\x00", false},
		{"x\x7f", false},
		{"x\ty", false},
	}
	for _, tt := range tests {
		if got := CheckETag(tt.etag); (got == "") != tt.ok {
			t.Errorf("CheckETag(%q) = %q, want ok %v", tt.etag, got, tt.ok)
		}
	}
}
