package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// sasPrefix starts every shared access signature token, including the one
// space that separates it from the fields.
const sasPrefix = "SharedAccessSignature "

// NewSASToken mints a shared access signature token for resourceURI, signed
// with key, the base64 key of the shared access policy policyName, and valid
// until expiry (truncated to whole seconds).
//
// For the service API, resourceURI is the hub's host name, for example
// "myhub.azure-devices.net". The result has the form
//
//	SharedAccessSignature sr=<resource>&sig=<signature>&se=<unix seconds>&skn=<policy>
//
// and is ready for use as an Authorization header value. Callers that send
// many requests should prefer [SharedAccessKeyCredential], which caches and
// renews tokens.
//
// NewSASToken returns an error wrapping [ErrInvalidCredential] if
// resourceURI is empty, policyName is empty or not a valid policy name, key
// is not valid standard base64, or expiry is zero or before 1970. The error
// never includes the key.
func NewSASToken(resourceURI, policyName, key string, expiry time.Time) (string, error) {
	if resourceURI == "" {
		return "", fmt.Errorf("%w: the SAS resource URI is empty", ErrInvalidCredential)
	}
	if err := validatePolicyName(policyName); err != nil {
		return "", err
	}
	k, err := decodeKey(key)
	if err != nil {
		return "", err
	}
	if expiry.IsZero() {
		return "", fmt.Errorf("%w: the SAS expiry time is zero", ErrInvalidCredential)
	}
	se := expiry.Unix()
	if se <= 0 {
		return "", fmt.Errorf("%w: the SAS expiry time %s is not after 1970", ErrInvalidCredential, expiry.UTC().Format(time.RFC3339))
	}
	return mintSAS(k, url.QueryEscape(resourceURI), policyName, se), nil
}

// decodeKey decodes a shared access key. The error never includes the key.
func decodeKey(key string) ([]byte, error) {
	if key == "" {
		return nil, fmt.Errorf("%w: the shared access key is empty", ErrInvalidCredential)
	}
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		// The decoder's error names a byte offset only, but keep the message
		// fixed so that nothing derived from the key can leak.
		return nil, fmt.Errorf("%w: the shared access key is not valid standard (padded) base64", ErrInvalidCredential)
	}
	return k, nil
}

// stringToSign is the message a SAS signature covers: the escaped resource,
// exactly as it appears in the sr field, a newline, and the expiry in Unix
// seconds.
func stringToSign(sr string, se int64) string {
	return sr + "\n" + strconv.FormatInt(se, 10)
}

// signSAS returns the standard base64 HMAC-SHA256 of the string to sign,
// keyed with the already decoded policy key, before URL escaping.
func signSAS(key []byte, sr string, se int64) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(stringToSign(sr, se)))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// mintSAS builds a complete token. sr must already be escaped with
// url.QueryEscape, skn must be a valid policy name, and key is the decoded
// policy key. Fields are written in the order the C# and Java SDKs use; IoT
// Hub accepts any order.
func mintSAS(key []byte, sr, skn string, se int64) string {
	sig := url.QueryEscape(signSAS(key, sr, se))
	var b strings.Builder
	b.Grow(len(sasPrefix) + len(sr) + len(sig) + len(skn) + 40)
	b.WriteString(sasPrefix)
	b.WriteString("sr=")
	b.WriteString(sr)
	b.WriteString("&sig=")
	b.WriteString(sig)
	b.WriteString("&se=")
	b.WriteString(strconv.FormatInt(se, 10))
	b.WriteString("&skn=")
	b.WriteString(skn)
	return b.String()
}

// sasFields holds the fields of a parsed token, still URL-escaped as they
// appeared in it.
type sasFields struct {
	sr, sig, skn string
	se           int64
}

// parseSAS validates the shape of a shared access signature token: the exact
// "SharedAccessSignature " prefix followed by &-separated name=value fields,
// names matched case-insensitively, with sr, sig and se present once each and
// se a positive integer. Unknown fields are allowed. Errors carry no sentinel
// (callers add one) and never repeat the token or any of its values.
func parseSAS(token string) (sasFields, error) {
	var f sasFields
	rest, ok := strings.CutPrefix(token, sasPrefix)
	if !ok {
		return f, fmt.Errorf("a shared access signature must start with %q", sasPrefix)
	}
	if rest == "" || strings.ContainsAny(rest, " \t\r\n") {
		return f, fmt.Errorf("a shared access signature must be %q followed by one run of name=value fields without spaces", sasPrefix)
	}
	var seen [4]bool
	names := [4]string{"sr", "sig", "se", "skn"}
	for field := range strings.SplitSeq(rest, "&") {
		name, value, ok := strings.Cut(field, "=")
		if !ok {
			return f, errors.New("a shared access signature field is not a name=value pair")
		}
		i := -1
		for j, n := range names {
			if strings.EqualFold(name, n) {
				i = j
			}
		}
		if i < 0 {
			continue
		}
		if seen[i] {
			return f, fmt.Errorf("the shared access signature has more than one %s field", names[i])
		}
		seen[i] = true
		switch i {
		case 0:
			f.sr = value
		case 1:
			f.sig = value
		case 2:
			se, err := strconv.ParseInt(value, 10, 64)
			if err != nil || se <= 0 {
				return f, errors.New("the shared access signature's se field is not a positive whole number of Unix seconds")
			}
			f.se = se
		case 3:
			f.skn = value
		}
	}
	switch {
	case f.sr == "":
		return f, errors.New("the shared access signature has no sr (resource) field")
	case f.sig == "":
		return f, errors.New("the shared access signature has no sig (signature) field")
	case !seen[2]:
		return f, errors.New("the shared access signature has no se (expiry) field")
	}
	return f, nil
}
