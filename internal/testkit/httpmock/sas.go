package httpmock

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Reasons VerifySAS rejects a token. The hub answers each with 401 /
// 401002 IotHubUnauthorizedAccess.
var (
	// ErrSASMalformed: the token is not "SharedAccessSignature " followed
	// by sr, sig, se and skn fields, or se is not a Unix time in seconds.
	ErrSASMalformed = errors.New("iothubtest: malformed SharedAccessSignature")
	// ErrSASAudience: the token's resource (sr) is not the hub.
	ErrSASAudience = errors.New("iothubtest: SharedAccessSignature audience is not this hub")
	// ErrSASPolicy: skn names no policy of the hub.
	ErrSASPolicy = errors.New("iothubtest: SharedAccessSignature names an unknown policy")
	// ErrSASSignature: the signature does not verify with the policy's key.
	ErrSASSignature = errors.New("iothubtest: SharedAccessSignature signature does not verify")
	// ErrSASExpired: the token expired longer ago than the clock skew.
	ErrSASExpired = errors.New("iothubtest: SharedAccessSignature has expired")
)

// sasPrefix starts every SAS token; the hub matches it exactly.
const sasPrefix = "SharedAccessSignature"

// maxExpiry is the last second .NET's DateTime can hold (9999-12-31
// 23:59:59 UTC); a later se is not a valid time.
const maxExpiry = 253402300799

// VerifySAS checks a service SAS token as IoT Hub does and returns the name
// of the policy that signed it. The token is the whole Authorization value:
//
//	SharedAccessSignature sr=<URL-encoded host>&sig=<URL-encoded base64 HMAC>&se=<unix seconds>&skn=<policy>
//
// Fields may come in any order and their names in any case; unknown fields
// are ignored, duplicates are not. sig is percent-decoded once, keeping '+'
// literal. The signature is the HMAC-SHA256, keyed with the base64-decoded
// policy key, of the sr value exactly as it appears in the token, a newline
// and se. The decoded sr must equal hostName, compared case-insensitively.
// The token is accepted until se + skew; skew < 0 counts as 0.
//
// The error is one of the ErrSAS… sentinels. Neither it nor anything else
// VerifySAS produces contains the token or a key.
func VerifySAS(token, hostName string, policies []Policy, now time.Time, skew time.Duration) (policy string, err error) {
	parts := strings.Fields(token)
	if len(parts) != 2 || parts[0] != sasPrefix {
		return "", ErrSASMalformed
	}
	fields := make(map[string]string, 4)
	for f := range strings.SplitSeq(parts[1], "&") {
		if f == "" {
			continue
		}
		name, value, ok := strings.Cut(f, "=")
		if !ok {
			return "", ErrSASMalformed
		}
		name = strings.ToLower(name)
		if _, dup := fields[name]; dup {
			return "", ErrSASMalformed
		}
		fields[name] = value
	}
	sr, sig, se, skn := fields["sr"], fields["sig"], fields["se"], fields["skn"]
	if sr == "" || sig == "" || se == "" || skn == "" {
		return "", ErrSASMalformed
	}
	expiry, ok := parseExpiry(se)
	if !ok {
		return "", ErrSASMalformed
	}
	rawSig, err := url.PathUnescape(sig)
	if err != nil {
		return "", ErrSASMalformed
	}
	audience, err := url.PathUnescape(sr)
	if err != nil {
		return "", ErrSASMalformed
	}
	if !strings.EqualFold(audience, hostName) {
		return "", ErrSASAudience
	}
	var p *Policy
	for i := range policies {
		if policies[i].Name == skn {
			p = &policies[i]
			break
		}
	}
	if p == nil {
		return "", ErrSASPolicy
	}
	key, err := base64.StdEncoding.DecodeString(p.Key)
	if err != nil {
		return "", ErrSASSignature
	}
	want := signSAS(key, sr, se)
	if !hmac.Equal([]byte(want), []byte(rawSig)) {
		return "", ErrSASSignature
	}
	if skew < 0 {
		skew = 0
	}
	if now.After(time.Unix(expiry, 0).Add(skew)) {
		return "", ErrSASExpired
	}
	return p.Name, nil
}

// signSAS returns the standard base64 HMAC-SHA256 of sr + "\n" + se.
func signSAS(key []byte, sr, se string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(sr + "\n" + se))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// parseExpiry parses se: decimal digits only, no sign, within .NET's
// DateTime range.
func parseExpiry(se string) (int64, bool) {
	if len(se) > 19 {
		return 0, false
	}
	for _, c := range []byte(se) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(se, 10, 64)
	if err != nil || n > maxExpiry {
		return 0, false
	}
	return n, true
}
