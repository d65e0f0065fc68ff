package auth

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// parseSASTexts holds the fixed texts of parseSAS's errors: a value found
// in an error is a leak only if it is not part of them.
const parseSASTexts = `a shared access signature must start with "SharedAccessSignature "
a shared access signature must be "SharedAccessSignature " followed by one run of name=value fields without spaces
a shared access signature field is not a name=value pair
the shared access signature has more than one sr sig se skn field
the shared access signature's se field is not a positive whole number of Unix seconds
the shared access signature has no sr (resource) field
the shared access signature has no sig (signature) field
the shared access signature has no se (expiry) field`

// FuzzParseSAS parses arbitrary shared access signatures, as
// NewStaticSASAuthorizer does with one taken from a connection string: it never panics, its errors
// never repeat the token's values and wrap ErrInvalidCredential, and a
// token minted from any key, audience and policy name parses back to its
// fields.
func FuzzParseSAS(f *testing.F) {
	f.Add("SharedAccessSignature sr=h.azure-devices.net&sig=abc%3D&se=2000000000&skn=service", []byte("key"), "h.azure-devices.net", "service", int64(2000000000))
	f.Add("SharedAccessSignature SR=h&SIG=abc&SE=10&x=y", []byte{0}, "localhost:8443", "p", int64(1))
	f.Add("SharedAccessSignature sr=h&sig=abc&Sig=def&se=10", []byte{}, "", "", int64(0))
	f.Add("SharedAccessSignature sr=h&sig=abc&se=99999999999999999999", []byte("k"), "h/devices/d1", "a@b", int64(-5))
	f.Add("SharedAccessSignature &&&=&", []byte("k"), "h", "n", int64(9223372036854775807))
	f.Fuzz(func(t *testing.T, token string, key []byte, host, policy string, se int64) {
		fields, err := parseSAS(token)
		if err != nil {
			msg := err.Error()
			for v := range strings.SplitSeq(strings.TrimPrefix(token, sasPrefix), "&") {
				_, value, _ := strings.Cut(v, "=")
				if len(value) >= 6 && strings.Contains(msg, value) && !strings.Contains(parseSASTexts, value) {
					t.Errorf("error %q repeats the value %q", msg, value)
				}
			}
			if _, err := NewStaticSASAuthorizer(token); !errors.Is(err, ErrInvalidCredential) {
				t.Errorf("NewStaticSASAuthorizer error %v does not wrap ErrInvalidCredential", err)
			}
		} else if fields.sr == "" || fields.sig == "" || fields.se <= 0 {
			t.Errorf("parsed %q into %+v without sr, sig or a positive se", token, fields)
		}

		if se <= 0 || host == "" || policy == "" {
			return
		}
		sr := url.QueryEscape(host)
		skn := url.QueryEscape(policy)
		got, err := parseSAS(mintSAS(key, sr, skn, se))
		if err != nil {
			t.Fatalf("a minted token does not parse: %v", err)
		}
		if got.sr != sr || got.skn != skn || got.se != se || got.sig == "" {
			t.Errorf("minted sr=%q skn=%q se=%d, parsed %+v", sr, skn, se, got)
		}
	})
}
