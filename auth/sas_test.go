package auth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// sasVector is one case of testdata/sas_vectors.json, produced with the
// official Node SDK.
type sasVector struct {
	ResourceURI     string `json:"resourceUri"`
	Policy          string `json:"policy"`
	Key             string `json:"key"`
	Expiry          int64  `json:"expiry"`
	StringToSign    string `json:"stringToSign"`
	SignatureBase64 string `json:"signatureBase64"`
	TokenNodeOrder  string `json:"tokenNodeOrder"`
}

func loadSASVectors(t testing.TB) []sasVector {
	t.Helper()
	data, err := os.ReadFile("testdata/sas_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []sasVector `json:"cases"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) == 0 {
		t.Fatal("testdata/sas_vectors.json has no cases")
	}
	return file.Cases
}

// tokenFields splits a SAS token into its fields (values still escaped) and
// fails the test if the shape is wrong.
func tokenFields(t testing.TB, token string) map[string]string {
	t.Helper()
	rest, ok := strings.CutPrefix(token, "SharedAccessSignature ")
	if !ok {
		t.Fatalf("token does not start with %q", "SharedAccessSignature ")
	}
	fields := map[string]string{}
	for f := range strings.SplitSeq(rest, "&") {
		name, value, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("token field %q has no '='", f)
		}
		if _, dup := fields[name]; dup {
			t.Fatalf("token field %q repeated", name)
		}
		fields[name] = value
	}
	return fields
}

// verifyToken checks a token's signature the way the hub does: HMAC over the
// literal sr and se with the decoded key. It returns the expiry.
func verifyToken(t testing.TB, token, wantSR, wantPolicy, key string) time.Time {
	t.Helper()
	f := tokenFields(t, token)
	if f["sr"] != wantSR || f["skn"] != wantPolicy {
		t.Errorf("token sr=%q skn=%q, want sr=%q skn=%q", f["sr"], f["skn"], wantSR, wantPolicy)
	}
	se, err := strconv.ParseInt(f["se"], 10, 64)
	if err != nil {
		t.Fatalf("token se %q: %v", f["se"], err)
	}
	sig, err := url.QueryUnescape(f["sig"])
	if err != nil {
		t.Fatalf("token sig: %v", err)
	}
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		t.Fatal(err)
	}
	if want := signSAS(k, f["sr"], se); sig != want {
		t.Errorf("token signature does not verify with the expected key")
	}
	return time.Unix(se, 0)
}

func TestSASVectors(t *testing.T) {
	t.Parallel()
	for _, v := range loadSASVectors(t) {
		t.Run(v.ResourceURI+"/"+v.Policy, func(t *testing.T) {
			t.Parallel()
			sr := url.QueryEscape(v.ResourceURI)
			if diff := cmp.Diff(v.StringToSign, stringToSign(sr, v.Expiry)); diff != "" {
				t.Errorf("stringToSign mismatch (-want +got):\n%s", diff)
			}
			key, err := base64.StdEncoding.DecodeString(v.Key)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(v.SignatureBase64, signSAS(key, sr, v.Expiry)); diff != "" {
				t.Errorf("signature mismatch (-want +got):\n%s", diff)
			}

			got, err := NewSASToken(v.ResourceURI, v.Policy, v.Key, time.Unix(v.Expiry, 0))
			if err != nil {
				t.Fatalf("NewSASToken: %v", err)
			}
			if diff := cmp.Diff(tokenFields(t, v.TokenNodeOrder), tokenFields(t, got)); diff != "" {
				t.Errorf("token fields mismatch (-want +got):\n%s", diff)
			}
			// C# and Java order: sr, sig, se, skn.
			if want := "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(v.SignatureBase64) +
				"&se=" + strconv.FormatInt(v.Expiry, 10) + "&skn=" + v.Policy; got != want {
				t.Errorf("NewSASToken = %q, want %q", got, want)
			}
		})
	}
}

func TestNewSASTokenEscaping(t *testing.T) {
	t.Parallel()
	const key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	tests := []struct {
		resource string
		wantSR   string
	}{
		{"myhub.azure-devices.net", "myhub.azure-devices.net"},
		{"localhost:8443", "localhost%3A8443"},
		{"myhub.azure-devices.net/devices/dev 1", "myhub.azure-devices.net%2Fdevices%2Fdev+1"},
	}
	for _, tt := range tests {
		got, err := NewSASToken(tt.resource, "service", key, time.Unix(1700000000, 0))
		if err != nil {
			t.Fatalf("NewSASToken(%q): %v", tt.resource, err)
		}
		verifyToken(t, got, tt.wantSR, "service", key)
		sig := tokenFields(t, got)["sig"]
		if strings.ContainsAny(sig, "+/=") {
			t.Errorf("sig %q is not fully URL-escaped", sig)
		}
	}
}

func TestNewSASTokenErrors(t *testing.T) {
	t.Parallel()
	const key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	expiry := time.Unix(1700000000, 0)
	tests := []struct {
		name                  string
		resource, policy, key string
		expiry                time.Time
		wantMsg               string
	}{
		{"empty resource", "", "service", key, expiry, "resource URI is empty"},
		{"empty policy", "h", "", key, expiry, "policy name is empty"},
		{"bad policy", "h", "serv ice", key, expiry, "policy name may contain only"},
		{"empty key", "h", "service", "", expiry, "key is empty"},
		{"bad base64", "h", "service", "not*base64!", expiry, "not valid standard (padded) base64"},
		{"unpadded base64", "h", "service", strings.TrimRight(key, "="), expiry, "not valid standard (padded) base64"},
		{"url base64", "h", "service", "-_-_", expiry, "not valid standard (padded) base64"},
		{"zero expiry", "h", "service", key, time.Time{}, "expiry time is zero"},
		{"pre-1970 expiry", "h", "service", key, time.Unix(-5, 0), "not after 1970"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := NewSASToken(tt.resource, tt.policy, tt.key, tt.expiry)
			if !errors.Is(err, ErrInvalidCredential) {
				t.Fatalf("NewSASToken() = %q, %v; want error wrapping ErrInvalidCredential", got, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			if tt.key != "" && strings.Contains(err.Error(), tt.key) {
				t.Errorf("error %q contains the key", err)
			}
		})
	}
}

func TestParseSAS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		token   string
		want    sasFields
		wantErr string
	}{
		{name: "c# order", token: "SharedAccessSignature sr=h&sig=abc%3D&se=10&skn=service", want: sasFields{sr: "h", sig: "abc%3D", se: 10, skn: "service"}},
		{name: "node order", token: "SharedAccessSignature sr=h&sig=abc&skn=service&se=10", want: sasFields{sr: "h", sig: "abc", se: 10, skn: "service"}},
		{name: "no skn, upper-case names, extra field", token: "SharedAccessSignature SR=h&SIG=abc&SE=10&x=y", want: sasFields{sr: "h", sig: "abc", se: 10}},
		{name: "no prefix", token: "sr=h&sig=abc&se=10", wantErr: "must start with"},
		{name: "lower-case prefix", token: "sharedaccesssignature sr=h&sig=abc&se=10", wantErr: "must start with"},
		{name: "bearer", token: "Bearer abc", wantErr: "must start with"},
		{name: "only prefix", token: "SharedAccessSignature ", wantErr: "followed by one run"},
		{name: "two spaces", token: "SharedAccessSignature  sr=h&sig=abc&se=10", wantErr: "followed by one run"},
		{name: "no sr", token: "SharedAccessSignature sig=abc&se=10", wantErr: "no sr"},
		{name: "empty sig", token: "SharedAccessSignature sr=h&sig=&se=10", wantErr: "no sig"},
		{name: "no se", token: "SharedAccessSignature sr=h&sig=abc", wantErr: "no se"},
		{name: "se not a number", token: "SharedAccessSignature sr=h&sig=abc&se=soon", wantErr: "se field is not"},
		{name: "se negative", token: "SharedAccessSignature sr=h&sig=abc&se=-1", wantErr: "se field is not"},
		{name: "duplicate sig", token: "SharedAccessSignature sr=h&sig=abc&Sig=def&se=10", wantErr: "more than one sig"},
		{name: "field without =", token: "SharedAccessSignature sr=h&sig=abc&se=10&junk", wantErr: "not a name=value pair"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseSAS(tt.token)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseSAS() error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "abc") {
					t.Errorf("error %q repeats the signature", err)
				}
				// The exported entry point adds the sentinel.
				if _, err := NewStaticSASAuthorizer(tt.token); !errors.Is(err, ErrInvalidCredential) {
					t.Errorf("NewStaticSASAuthorizer() error = %v, want ErrInvalidCredential", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseSAS() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(sasFields{})); diff != "" {
				t.Errorf("parseSAS() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
