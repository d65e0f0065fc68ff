package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Canaries: secrets the fuzzer cannot guess, appended to its inputs. No
// error or printed form may contain any 8-byte window of them.
const (
	canaryKey = "Q2FuYXJ5IGtleTogZG8gbm90IGxlYWsgbWUhIQ=="
	canarySig = "Zm9yYmlkZGVuK3NpZ25hdHVyZS9jYW5hcnk%3D"
)

// printedForms renders c every way a program might print or log it.
func printedForms(c ConnectionString) string {
	var b strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		fmt.Fprintf(&b, verb+"|", c)
	}
	b.WriteString(c.String() + "|" + c.GoString() + "|")
	noTime := &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}}
	slog.New(slog.NewJSONHandler(&b, noTime)).Info("", "c", c)
	slog.New(slog.NewTextHandler(&b, noTime)).Info("", "c", c)
	return b.String()
}

func containsFragment(text, secret string) bool {
	for i := 0; i+8 <= len(secret); i++ {
		if strings.Contains(text, secret[i:i+8]) {
			return true
		}
	}
	return false
}

func FuzzParseConnectionString(f *testing.F) {
	for _, seed := range []string{
		"HostName=myhub.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=" + testKey,
		"hostname = h ; sharedaccesskeyname = p ; sharedaccesskey = AAAA ;",
		"HostName=myhub.azure-devices.net;SharedAccessSignature=" + testSig,
		"HostName=localhost:8443;SharedAccessKeyName=service;SharedAccessKey=AAAA;GatewayHostName=g",
		"HostName=h;DeviceId=d;SharedAccessKey=AAAA",
		"HostName=https://h/x;SharedAccessKeyName=p;SharedAccessKey=AAAA",
		"HostName=h;SharedAccessKeyName=p;SharedAccessKey=AAAA;SharedAccessSignature=SharedAccessSignature sr=h&sig=x&se=1",
		"HostName=h;;;Foo=bar",
		"HostName=h;SharedAccessKeyName=p;SharedAccessKey",
		"=;=;=",
		"HostName=[::1]:1;SharedAccessKeyName=p;SharedAccessKey=AA==",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cs, err := ParseConnectionString(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidConnectionString) {
				t.Fatalf("error %v does not wrap ErrInvalidConnectionString", err)
			}
		} else {
			checkParsed(t, cs)
		}

		// Canaries placed where secrets go, before and after the fuzzed text.
		for _, v := range []string{
			s + ";SharedAccessKey=" + canaryKey,
			"SharedAccessKey=" + canaryKey + ";" + s,
			s + ";SharedAccessSignature=SharedAccessSignature sr=h&sig=" + canarySig + "&se=1",
			"SharedAccessSignature=SharedAccessSignature sr=h&se=1&sig=" + canarySig + ";" + s,
		} {
			cs, err := ParseConnectionString(v)
			text := ""
			if err != nil {
				text = err.Error()
			} else {
				text = printedForms(cs)
			}
			if containsFragment(text, canaryKey) || containsFragment(text, canarySig) {
				t.Fatalf("secret leaked for input %q:\n%s", v, text)
			}
		}
	})
}

// checkParsed checks the properties of a successful parse: printing does not
// depend on the secret, and the parsed fields survive a round trip.
func checkParsed(t *testing.T, cs ConnectionString) {
	t.Helper()
	other := cs
	if cs.SharedAccessSignature() != "" {
		other.secrets = hideSecrets(connSecrets{sig: "SharedAccessSignature sr=x&sig=y&se=1"})
	} else {
		other.secrets = hideSecrets(connSecrets{key: "AAAA"})
	}
	if a, b := printedForms(cs), printedForms(other); a != b {
		t.Fatalf("printed form depends on the secret:\n%s\n%s", a, b)
	}

	var b strings.Builder
	b.WriteString("HostName=" + cs.HostName)
	if cs.SharedAccessKeyName != "" {
		b.WriteString(";SharedAccessKeyName=" + cs.SharedAccessKeyName)
	}
	if sig := cs.SharedAccessSignature(); sig != "" {
		b.WriteString(";SharedAccessSignature=" + sig)
	} else {
		b.WriteString(";SharedAccessKey=" + cs.SharedAccessKey())
	}
	again, err := ParseConnectionString(b.String())
	if err != nil {
		t.Fatalf("re-parsing the canonical form failed: %v", err)
	}
	if diff := cmp.Diff(viewOf(cs), viewOf(again)); diff != "" {
		t.Fatalf("round trip mismatch (-first +second):\n%s", diff)
	}
}
