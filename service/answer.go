package service

import (
	"bytes"
	"encoding/json"
)

// parseMethodAnswer reads the hub's answer to an invocation when it has
// the form {"status":N,"payload":V}: those two members in that order, JSON
// white space allowed between the tokens (the REST reference's sample has
// spaces; the simulated hub writes none), N an integer of at most nine
// digits and V one JSON value. It returns what encoding/json would decode
// from it into {Status *int; Payload json.RawMessage}
// (TestParseMethodAnswer and FuzzParseMethodAnswer check that), with
// payload a slice of b, in one pass over V and no allocation. For any
// other form (another order, other members, a status that is not such an
// integer) ok is false, and the caller decodes b with encoding/json.
func parseMethodAnswer(b []byte) (status int, payload []byte, ok bool) {
	p := answerParser{b: b}
	if !p.token("{") || !p.token(`"status"`) || !p.token(":") {
		return 0, nil, false
	}
	status, ok = p.integer()
	if !ok || !p.token(",") || !p.token(`"payload"`) || !p.token(":") {
		return 0, nil, false
	}
	// V runs to the closing brace, white space trimmed on both sides.
	v := bytes.Trim(b[p.i:], " \t\n\r")
	if len(v) < 2 || v[len(v)-1] != '}' {
		return 0, nil, false
	}
	v = bytes.TrimRight(v[:len(v)-1], " \t\n\r")
	if len(v) == 0 || !json.Valid(v) {
		return 0, nil, false
	}
	return status, v, true
}

// answerParser walks the fixed part of a method answer.
type answerParser struct {
	b []byte
	i int
}

// skipSpace moves past JSON white space.
func (p *answerParser) skipSpace() {
	for p.i < len(p.b) && isJSONSpace(p.b[p.i]) {
		p.i++
	}
}

// token skips white space, then tok, and reports whether it was there.
func (p *answerParser) token(tok string) bool {
	p.skipSpace()
	if !bytes.HasPrefix(p.b[p.i:], []byte(tok)) {
		return false
	}
	p.i += len(tok)
	return true
}

// integer skips white space and reads -?(0|[1-9][0-9]*) of at most nine
// digits, which fit any int; a fraction or exponent after it is refused
// by the token that must follow.
func (p *answerParser) integer() (n int, ok bool) {
	p.skipSpace()
	neg := p.i < len(p.b) && p.b[p.i] == '-'
	if neg {
		p.i++
	}
	start := p.i
	for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
		n = n*10 + int(p.b[p.i]-'0')
		p.i++
	}
	if d := p.i - start; d == 0 || d > 9 || d > 1 && p.b[start] == '0' {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
