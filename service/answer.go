package service

import (
	"bytes"
	"encoding/json"
)

// parseMethodAnswer reads the hub's answer to an invocation when it has
// the compact form {"status":N,"payload":V}: those two members in that
// order, no white space outside V, N an integer of at most nine digits and
// V one JSON value. The simulated hub writes that form; that IoT Hub does
// too is an assumption (its REST reference shows the members with spaces),
// and an answer in any other form only takes the slower path. It returns what encoding/json would decode
// from it into {Status *int; Payload json.RawMessage} (TestParseMethodAnswer
// and FuzzParseMethodAnswer check that), with payload a slice of b, in one
// pass over V and no allocation. For any other form ok is false, and the
// caller decodes b with encoding/json.
func parseMethodAnswer(b []byte) (status int, payload []byte, ok bool) {
	const head, mid = `{"status":`, `,"payload":`
	rest, found := bytes.CutPrefix(b, []byte(head))
	if !found {
		return 0, nil, false
	}
	i, neg := 0, false
	if len(rest) > 0 && rest[0] == '-' {
		i, neg = 1, true
	}
	digits := i
	for i < len(rest) && '0' <= rest[i] && rest[i] <= '9' {
		status = status*10 + int(rest[i]-'0')
		i++
	}
	// JSON has no leading zero but in 0 itself; nine digits fit any int.
	if n := i - digits; n == 0 || n > 9 || n > 1 && rest[digits] == '0' {
		return 0, nil, false
	}
	if neg {
		status = -status
	}
	rest, found = bytes.CutPrefix(rest[i:], []byte(mid))
	if !found || len(rest) < 2 || rest[len(rest)-1] != '}' {
		return 0, nil, false
	}
	v := rest[:len(rest)-1]
	if isJSONSpace(v[0]) || isJSONSpace(v[len(v)-1]) || !json.Valid(v) {
		return 0, nil, false
	}
	return status, v, true
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
