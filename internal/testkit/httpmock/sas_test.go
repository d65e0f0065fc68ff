package httpmock

import (
	"encoding/base64"
	"errors"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestVerifySAS(t *testing.T) {
	t.Parallel()
	const host = "my-hub.azure-devices.net"
	now := time.Unix(1_700_000_000, 0)
	key, otherKey := NewKey(), NewKey()
	policies := []Policy{{Name: "service", Key: key, Rights: ServiceConnect}, {Name: "other", Key: otherKey}}
	se := now.Add(time.Hour).Unix()
	sr, sig, ses := testSASParts(host, key, se)
	good := testSAS(host, "service", key, se)

	// A signature that contains '/', for the Python-style token that
	// leaves it unescaped.
	var slashToken string
	for s := se; slashToken == ""; s++ {
		sr, sig, ses := testSASParts(host, key, s)
		if strings.Contains(sig, "/") {
			slashToken = "SharedAccessSignature sr=" + sr + "&sig=" + strings.ReplaceAll(url.QueryEscape(sig), "%2F", "/") + "&se=" + ses + "&skn=service"
		}
	}
	// And one with a literal '+', which must not turn into a space.
	var plusToken string
	for s := se; plusToken == ""; s++ {
		sr, sig, ses := testSASParts(host, key, s)
		if strings.Contains(sig, "+") {
			plusToken = "SharedAccessSignature sr=" + sr + "&sig=" + strings.ReplaceAll(url.QueryEscape(sig), "%2B", "+") + "&se=" + ses + "&skn=service"
		}
	}
	upperSr, upperSig, upperSe := testSASParts(strings.ToUpper(host), key, se)
	tampered := []byte(sig)
	if tampered[0] == 'A' {
		tampered[0] = 'B'
	} else {
		tampered[0] = 'A'
	}

	tests := []struct {
		name       string
		token      string
		skew       time.Duration
		wantPolicy string
		wantErr    error
	}{
		{name: "C# order", token: good, wantPolicy: "service"},
		{name: "Node order sr sig skn se", token: "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(sig) + "&skn=service&se=" + ses, wantPolicy: "service"},
		{name: "reversed order", token: "SharedAccessSignature skn=service&se=" + ses + "&sig=" + url.QueryEscape(sig) + "&sr=" + sr, wantPolicy: "service"},
		{name: "upper-case field names", token: "SharedAccessSignature SR=" + sr + "&Sig=" + url.QueryEscape(sig) + "&SE=" + ses + "&SKN=service", wantPolicy: "service"},
		{name: "trailing ampersand", token: good + "&", wantPolicy: "service"},
		{name: "unknown field ignored", token: good + "&foo=bar", wantPolicy: "service"},
		{name: "literal slash in sig", token: slashToken, wantPolicy: "service"},
		{name: "literal plus in sig", token: plusToken, wantPolicy: "service"},
		{name: "upper-case host audience", token: "SharedAccessSignature sr=" + upperSr + "&sig=" + url.QueryEscape(upperSig) + "&se=" + upperSe + "&skn=service", wantPolicy: "service"},
		{name: "tampered sig", token: "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(string(tampered)) + "&se=" + ses + "&skn=service", wantErr: ErrSASSignature},
		{name: "sig with plus as space", token: strings.Replace(plusToken, "+", " ", 1), wantErr: ErrSASMalformed},
		{name: "tampered se", token: "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(sig) + "&se=" + strconv.FormatInt(se+1, 10) + "&skn=service", wantErr: ErrSASSignature},
		{name: "unknown policy", token: testSAS(host, "nobody", key, se), wantErr: ErrSASPolicy},
		{name: "wrong key for policy", token: testSAS(host, "service", otherKey, se), wantErr: ErrSASSignature},
		{name: "other policy's name with this key", token: testSAS(host, "other", key, se), wantErr: ErrSASSignature},
		{name: "expired beyond skew", token: testSAS(host, "service", key, now.Add(-6*time.Minute).Unix()), skew: 5 * time.Minute, wantErr: ErrSASExpired},
		{name: "expired within skew", token: testSAS(host, "service", key, now.Add(-4*time.Minute).Unix()), skew: 5 * time.Minute, wantPolicy: "service"},
		{name: "expired, no skew", token: testSAS(host, "service", key, now.Add(-time.Second).Unix()), wantErr: ErrSASExpired},
		{name: "expiring now", token: testSAS(host, "service", key, now.Unix()), wantPolicy: "service"},
		{name: "audience mismatch", token: testSAS("other-hub.azure-devices.net", "service", key, se), wantErr: ErrSASAudience},
		{name: "audience with path", token: testSAS(host+"/devices/d1", "service", key, se), wantErr: ErrSASAudience},
		{name: "no prefix", token: strings.TrimPrefix(good, "SharedAccessSignature "), wantErr: ErrSASMalformed},
		{name: "lower-case prefix", token: "sharedaccesssignature " + strings.TrimPrefix(good, "SharedAccessSignature "), wantErr: ErrSASMalformed},
		{name: "bearer", token: "Bearer abc", wantErr: ErrSASMalformed},
		{name: "extra part", token: good + " x", wantErr: ErrSASMalformed},
		{name: "empty", token: "", wantErr: ErrSASMalformed},
		{name: "missing skn", token: "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(sig) + "&se=" + ses, wantErr: ErrSASMalformed},
		{name: "missing sig", token: "SharedAccessSignature sr=" + sr + "&se=" + ses + "&skn=service", wantErr: ErrSASMalformed},
		{name: "duplicate field", token: good + "&skn=service", wantErr: ErrSASMalformed},
		{name: "field without value", token: good + "&x", wantErr: ErrSASMalformed},
		{name: "se not an integer", token: "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(sig) + "&se=1.5&skn=service", wantErr: ErrSASMalformed},
		{name: "se signed", token: "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(sig) + "&se=+" + ses + "&skn=service", wantErr: ErrSASMalformed},
		{name: "se beyond year 9999", token: testSAS(host, "service", key, 253402300800), wantErr: ErrSASMalformed},
		{name: "bad escape in sig", token: "SharedAccessSignature sr=" + sr + "&sig=%zz&se=" + ses + "&skn=service", wantErr: ErrSASMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := VerifySAS(tt.token, host, policies, now, tt.skew)
			if !errors.Is(err, tt.wantErr) || got != tt.wantPolicy {
				t.Errorf("VerifySAS = %q, %v; want %q, %v", got, err, tt.wantPolicy, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "sig=") {
				t.Errorf("error quotes the token: %v", err)
			}
		})
	}
}

var keyNameRE = regexp.MustCompile(`^[a-zA-Z0-9_\-@.]+$`)
var hostRE = regexp.MustCompile(`^[a-zA-Z0-9.\-]+(:[0-9]+)?$`)

func FuzzVerifySAS(f *testing.F) {
	key := NewKey()
	f.Add(testSAS("h.azure-devices.net", "service", key, 2_000_000_000), "h.azure-devices.net", "service", []byte("0123456789abcdef"), int64(2_000_000_000))
	f.Add("SharedAccessSignature sr=&sig=&se=&skn=", "", "", []byte{}, int64(0))
	f.Add("SharedAccessSignature sr=a&sig=%&se=99999999999999999999&skn=b&SR=c", "localhost:8443", "x@y", []byte{1}, int64(-1))
	f.Fuzz(func(t *testing.T, token, host, name string, keyBytes []byte, se int64) {
		now := time.Unix(1_700_000_000, 0)
		policies := []Policy{{Name: "service", Key: key}, {Name: "bad", Key: "%%%"}}
		// Arbitrary input never panics, and never verifies by chance.
		if p, err := VerifySAS(token, host, policies, now, time.Minute); err == nil && p == "" {
			t.Fatalf("accepted with empty policy")
		}

		// A token the test helper mints verifies.
		if !hostRE.MatchString(host) || !keyNameRE.MatchString(name) || len(keyBytes) == 0 {
			return
		}
		if se < 0 {
			se = -se
		}
		se = now.Unix() + se%(253402300799-now.Unix())
		k := base64.StdEncoding.EncodeToString(keyBytes)
		tok := testSAS(host, name, k, se)
		got, err := VerifySAS(tok, strings.ToUpper(host), []Policy{{Name: name, Key: k}}, now, 0)
		if err != nil || got != name {
			t.Fatalf("VerifySAS(%q) = %q, %v", tok, got, err)
		}
	})
}
