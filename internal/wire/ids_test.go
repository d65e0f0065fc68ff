package wire

import (
	"net/url"
	"strings"
	"testing"
)

func TestCheckID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   string
		want string // "" or a fragment of the rule
	}{
		{"dev-1", ""},
		{"$edgeAgent", ""},
		{"a:b.c+d%e_f#g*h?i!j(k)l,m=n@o;p$q'r", ""},
		{strings.Repeat("x", 128), ""},
		{"", "must not be empty"},
		{strings.Repeat("x", 129), "at most 128"},
		{"a b", "' ' at byte 1"},
		{"a/b", "'/' at byte 1"},
		{"é", "at byte 0"},
	}
	for _, tt := range tests {
		got := CheckID(tt.id)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("CheckID(%q) = %q, want %q", tt.id, got, tt.want)
		}
	}
}

func TestEscapeID(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"dev-1.a_b~c": "dev-1.a_b~c",
		"a+b":         "a%2Bb",
		"a b":         "a%20b",
		"a/b":         "a%2Fb",
		"$edgeAgent":  "%24edgeAgent",
		"a%b":         "a%25b",
		"x#y?z":       "x%23y%3Fz",
	}
	for in, want := range tests {
		got := EscapeID(in)
		if got != want {
			t.Errorf("EscapeID(%q) = %q, want %q", in, got, want)
		}
		if back, err := url.PathUnescape(got); err != nil || back != in {
			t.Errorf("PathUnescape(EscapeID(%q)) = %q, %v", in, back, err)
		}
	}
}

func FuzzEscapeID(f *testing.F) {
	f.Add("a+b c/d%e")
	f.Fuzz(func(t *testing.T, s string) {
		got := EscapeID(s)
		if back, err := url.PathUnescape(got); err != nil || back != s {
			t.Fatalf("round trip of %q: %q, %v", s, back, err)
		}
		if strings.ContainsAny(got, "/?#+ ") {
			t.Fatalf("EscapeID(%q) = %q keeps a delimiter", s, got)
		}
	})
}
