package wire

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hubkit/iothub"
)

// ErrorInfo is what an IoT Hub error answer says about itself.
type ErrorInfo struct {
	Code       iothub.ErrorCode
	CodeName   string
	Message    string
	TrackingID string
}

// maxMessage bounds the message kept from a body that is not IoT Hub JSON
// (a proxy's HTML page, say), so that errors stay readable.
const maxMessage = 512

// ParseError reads an error body in any of the shapes IoT Hub uses, together
// with the iothub-errorcode header (which carries the code's name):
//
//  1. {"Message":"ErrorCode:Name;text","ExceptionMessage":"Tracking ID:…-G:…-TimeStamp:…"}
//  2. {"Message":"{\"errorCode\":404103,\"trackingId\":…,\"message\":…}","ExceptionMessage":""}
//  3. {"Message":{"errorCode":404103,"trackingId":…,"message":…}}
//  4. {"Message":"routing text"} with no code
//
// and a bare {"errorCode":…,"trackingId":…,"message":…}. A body that is not
// JSON becomes the message, trimmed and clipped; an HTML page (a proxy's or
// a gateway's error page) becomes "HTML page: " and its title, or its text
// without markup. It never fails: what cannot be read is left empty.
func ParseError(body []byte, headerCode string) ErrorInfo {
	var info ErrorInfo
	body = bytes.TrimSpace(body)
	var outer struct {
		Message          json.RawMessage `json:"Message"`
		ExceptionMessage string          `json:"ExceptionMessage"`
		innerError
	}
	if len(body) > 0 && body[0] == '{' && json.Unmarshal(body, &outer) == nil {
		switch {
		case len(outer.Message) > 0 && outer.Message[0] == '{':
			// Shape 3: Message is an object.
			var in innerError
			if json.Unmarshal(outer.Message, &in) == nil {
				in.fill(&info)
			}
		case len(outer.Message) > 0 && outer.Message[0] == '"':
			var msg string
			_ = json.Unmarshal(outer.Message, &msg)
			parseMessageString(msg, outer.ExceptionMessage, &info)
		default:
			// A bare inner object at the top level (Message may have
			// been matched case-insensitively to "message" here).
			outer.innerError.fill(&info)
		}
	} else if len(body) > 0 && body[0] == '<' {
		info.Message = "HTML page: " + clip(htmlText(body))
	} else if len(body) > 0 {
		info.Message = clip(string(body))
	}
	applyHeader(headerCode, &info)
	return info
}

// innerError is the object inside shapes 2 and 3.
type innerError struct {
	ErrorCode  json.RawMessage `json:"errorCode"`
	TrackingID string          `json:"trackingId"`
	Msg        string          `json:"message"`
}

func (in innerError) fill(info *ErrorInfo) {
	if len(in.ErrorCode) > 0 {
		s := strings.Trim(string(in.ErrorCode), `"`)
		if c, ok := iothub.ParseErrorCode(s); ok {
			info.Code = c
			if _, err := strconv.Atoi(s); err != nil {
				info.CodeName = s
			}
		}
	}
	info.TrackingID = in.TrackingID
	info.Message = in.Msg
}

func parseMessageString(msg, exception string, info *ErrorInfo) {
	trimmed := strings.TrimSpace(msg)
	if strings.HasPrefix(trimmed, "{") {
		var in innerError
		if json.Unmarshal([]byte(trimmed), &in) == nil {
			in.fill(info)
			if info.TrackingID == "" {
				info.TrackingID = trackingFromException(exception)
			}
			return
		}
	}
	if rest, ok := strings.CutPrefix(trimmed, "ErrorCode:"); ok {
		// Shape 1: "ErrorCode:<Name or number>;<text>".
		name, text, _ := strings.Cut(rest, ";")
		name = strings.TrimSpace(name)
		if c, ok := iothub.ParseErrorCode(name); ok {
			info.Code = c
		}
		if _, err := strconv.Atoi(name); err != nil && name != "" {
			info.CodeName = name
		}
		info.Message = clip(strings.TrimSpace(text))
		info.TrackingID = trackingFromException(exception)
		return
	}
	info.Message = clip(trimmed)
	info.TrackingID = trackingFromException(exception)
}

// trackingFromException reads "Tracking ID:<id>" out of the legacy
// ExceptionMessage. The ID runs to the end of the text, as in
// "e4cb…-G:11-TimeStamp:07/16/2016 00:12:41".
func trackingFromException(s string) string {
	_, after, ok := strings.Cut(s, "Tracking ID:")
	if !ok {
		return ""
	}
	return strings.TrimSpace(after)
}

func applyHeader(h string, info *ErrorInfo) {
	h = strings.TrimSpace(h)
	if h == "" {
		return
	}
	c, ok := iothub.ParseErrorCode(h)
	if !ok {
		if info.CodeName == "" {
			info.CodeName = clip(h)
		}
		return
	}
	if info.Code == 0 {
		info.Code = c
	}
	if _, err := strconv.Atoi(h); err != nil && info.CodeName == "" && c == info.Code {
		info.CodeName = h
	}
}

// htmlText returns an HTML page's title or, without one, its text with the
// markup taken out and the spaces collapsed.
func htmlText(page []byte) string {
	lower := asciiLower(page)
	if i := bytes.Index(lower, []byte("<title")); i >= 0 {
		if j := bytes.IndexByte(lower[i:], '>'); j >= 0 {
			rest := page[i+j+1:]
			if k := bytes.Index(lower[i+j+1:], []byte("</title")); k >= 0 {
				if t := strings.Join(strings.Fields(string(rest[:k])), " "); t != "" {
					return t
				}
			}
		}
	}
	var b strings.Builder
	in := false
	for _, r := range string(page) {
		switch {
		case r == '<':
			in = true
			b.WriteByte(' ')
		case r == '>':
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// asciiLower lowers ASCII letters only, so that offsets stay those of b.
func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

func clip(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	s = s[:maxMessage]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date
// (relative to now). It returns 0 when the header is absent or unreadable.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(24*time.Hour/time.Second) {
			n = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
