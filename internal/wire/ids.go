package wire

import (
	"fmt"
	"strings"
)

// MaxIDLen is the longest device or module id IoT Hub accepts.
const MaxIDLen = 128

// IDChars lists the characters IoT Hub accepts in a device or module id
// besides ASCII letters and digits.
const IDChars = "-:.+%_#*?!(),=@;$'"

// CheckID returns "" when id is a valid device or module id, or the rule it
// breaks: 1 to 128 characters, ASCII letters, digits and -:.+%_#*?!(),=@;$'.
func CheckID(id string) string {
	if id == "" {
		return "must not be empty"
	}
	if len(id) > MaxIDLen {
		return fmt.Sprintf("must be at most %d characters (got %d)", MaxIDLen, len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strings.IndexByte(IDChars, c) >= 0 {
			continue
		}
		return fmt.Sprintf("has %q at byte %d; ids use ASCII letters, digits and %s", rune(c), i, IDChars)
	}
	return ""
}

// EscapeID percent-encodes every byte of s outside [A-Za-z0-9-._~], so that a
// segment means the same to every server, whatever its decoding of '+'.
func EscapeID(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	return string(b)
}

func unreserved(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~'
}
