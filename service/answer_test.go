package service

import (
	"bytes"
	"encoding/json"
	"testing"
)

// decodeAnswer is what decodeMethodResult decodes with encoding/json.
func decodeAnswer(b []byte) (status *int, payload json.RawMessage, err error) {
	var wire struct {
		Status  *int            `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}
	err = json.Unmarshal(b, &wire)
	return wire.Status, wire.Payload, err
}

// checkAnswer fails t when parseMethodAnswer accepts b but reads other
// than encoding/json does.
func checkAnswer(t *testing.T, b []byte) (ok bool) {
	t.Helper()
	status, payload, ok := parseMethodAnswer(b)
	if !ok {
		return false
	}
	want, wantPayload, err := decodeAnswer(b)
	if err != nil || want == nil {
		t.Fatalf("parseMethodAnswer(%q) accepted what encoding/json refuses (%v, status %v)", b, err, want)
	}
	if status != *want || !bytes.Equal(payload, wantPayload) {
		t.Fatalf("parseMethodAnswer(%q) = %d, %q; encoding/json: %d, %q", b, status, payload, *want, wantPayload)
	}
	return true
}

func TestParseMethodAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body string
		ok   bool // read without encoding/json
	}{
		{`{"status":200,"payload":{"rebooting":true}}`, true},
		{`{"status":200,"payload":null}`, true},
		{`{"status":0,"payload":"x"}`, true},
		{`{"status":-1,"payload":[1,{"a":"}"}]}`, true},
		{`{"status":-0,"payload":1}`, true},
		{`{"status":999999999,"payload":1.5e3}`, true},
		{`{"status":404,"payload":{"error":"no \"disk\""}}`, true},
		{`{"status": 200, "payload": {"rebooting": true}}`, true}, // the REST reference's sample
		{"\n{ \"status\" :\t200 ,\r\n \"payload\" : 1 }\n", true},
		{`{"status":200,"payload": 1}`, true},
		{`{"status":200,"payload":1 }`, true},
		// Other forms go to encoding/json.
		{`{"status":1000000000,"payload":1}`, false}, // ten digits
		{`{"status":0200,"payload":1}`, false},
		{`{"status":200.0,"payload":1}`, false},
		{`{"status":2e2,"payload":1}`, false},
		{`{"status":null,"payload":1}`, false},
		{`{"status":"200","payload":1}`, false},
		{`{"status":-,"payload":1}`, false},
		{`{"status":200}`, false},
		{`{"status":200,"payload":}`, false},
		{`{"status":200,"payload":1}}`, false},
		{`{"status":200,"payload":1},"x":2}`, false},
		{`{"status":200,"payload":{"a":1}`, false},
		{`{"payload":1,"status":200}`, false},
		{`{"Status":200,"payload":1}`, false},
		{`{"status":200,"payload":1,"extra":true}`, false},
		{`{"status":200,"payload":1,}`, false},
		{`{"status":200,"payload":1} x`, false},
		{"{\"status\":200,\"payload\":\v1}", false},
		{``, false},
	}
	for _, tt := range tests {
		if got := checkAnswer(t, []byte(tt.body)); got != tt.ok {
			t.Errorf("parseMethodAnswer(%q) ok = %v, want %v", tt.body, got, tt.ok)
		}
	}
}

// FuzzParseMethodAnswer checks that whatever parseMethodAnswer accepts,
// encoding/json decodes to the same status and payload.
func FuzzParseMethodAnswer(f *testing.F) {
	for _, s := range []string{
		`{"status":200,"payload":{"rebooting":true}}`,
		`{"status":-5,"payload":[1,"}",null]}`,
		`{"status":200,"payload":"\u00e9\\"}`,
		`{"status":7,"payload":{"a":{"b":[true,false]}}}`,
		"{ \"status\" : 200 , \"payload\" : [ 1 ] }\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkAnswer(t, b) })
}
