package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

const testBearer = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.c2VjcmV0LWJlYXJlci10b2tlbg.c2lnbmF0dXJl"

// secretFragments lists every secret used by the tests, escaped and
// unescaped, cut into 8-byte windows: no output may contain any of them.
var secretFragments = func() []string {
	secrets := []string{
		testKey, testKey2, testSigRaw, testBearer,
		"2r7mDTRCM+eYIBhdHce0LGV/vT7cphyJ3aS/lRJkf8c=",
	}
	var out []string
	for _, s := range secrets {
		for i := 0; i+8 <= len(s); i++ {
			out = append(out, s[i:i+8])
		}
	}
	return out
}()

// assertNoSecrets fails the test if text contains a fragment of a test
// secret.
func assertNoSecrets(t testing.TB, text string) {
	t.Helper()
	for _, f := range secretFragments {
		if strings.Contains(text, f) {
			t.Errorf("output contains secret fragment %q:\n%s", f, text)
			return
		}
	}
}

// staticCred is a TokenCredential that always returns the same token.
type staticCred struct{}

func (staticCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: testBearer, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestNothingPrintsSecrets(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	keyCS, err := ParseConnectionString("HostName=" + testHost + ";SharedAccessKeyName=service;SharedAccessKey=" + testKey)
	if err != nil {
		t.Fatal(err)
	}
	sigCS, err := ParseConnectionString("HostName=" + testHost + ";SharedAccessSignature=" + testSig)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := NewSharedAccessKeyCredential("service", testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	sasAuth := cred.Authorizer(testHost)
	staticAuth, err := NewStaticSASAuthorizer(testSig)
	if err != nil {
		t.Fatal(err)
	}
	entraAuth, err := NewTokenCredentialAuthorizer(staticCred{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Fill every cache so the tokens exist in memory.
	for _, a := range []Authorizer{sasAuth, entraAuth} {
		if _, err := a.Authorization(ctx); err != nil {
			t.Fatal(err)
		}
	}
	_, staticErr := staticAuth.Authorization(ctx) // expired in 2025

	values := map[string]any{
		"key connection string":       keyCS,
		"key connection string ptr":   &keyCS,
		"sig connection string":       sigCS,
		"credential":                  cred,
		"SAS authorizer":              sasAuth,
		"static SAS authorizer":       staticAuth,
		"Entra authorizer":            entraAuth,
		"unexported embedding":        struct{ cs ConnectionString }{keyCS},
		"unexported credential field": struct{ c *SharedAccessKeyCredential }{cred},
		"unexported authorizer field": struct{ a, b, c Authorizer }{sasAuth, staticAuth, entraAuth},
		"slice":                       []any{keyCS, sigCS, cred, sasAuth, staticAuth, entraAuth},
		"expired static SAS error":    staticErr,
		"zero SAS authorizer":         &SharedAccessKeyAuthorizer{},
		"zero static SAS authorizer":  &StaticSASAuthorizer{},
		"zero Entra authorizer":       &TokenCredentialAuthorizer{},
	}
	if staticErr == nil {
		t.Fatal("the test signature should have expired")
	}
	// Errors from every validation path.
	bad := []string{
		"HostName=" + testHost + ";SharedAccessKeyName=service;SharedAccessKey=" + testKey + ";SharedAccessSignature=" + testSig,
		"HostName=" + testHost + ";SharedAccessKey=" + testKey,
		"HostName=" + testHost + ";DeviceId=d;SharedAccessKey=" + testKey,
		"HostName=" + testHost + " SharedAccessKey=" + testKey + ";SharedAccessKeyName=service",
		"HostName=" + testHost + ";SharedAccessKeyName=service;SharedAccessKey=" + testKey + ";" + testKey[:10] + "=x",
		"HostName=" + testHost + ";SharedAccessKeyName=service;SharedAccessKey=" + testKey + "!",
		"HostName=" + testHost + ";SharedAccessSignature=" + strings.TrimPrefix(testSig, "SharedAccessSignature "),
		"HostName=" + testHost + ";SharedAccessSignature=" + testSig + "&sig=" + testSigRaw,
		"HostName=" + testHost + ";SharedAccessKeyName=" + testKey + ";SharedAccessKey=" + testKey,
		testKey,
	}
	for i, s := range bad {
		_, err := ParseConnectionString(s)
		if err == nil {
			t.Fatalf("bad connection string %d parsed", i)
		}
		values[fmt.Sprintf("parse error %d", i)] = err
	}
	_, err = NewSASToken(testHost, "service", testKey+"x", time.Now())
	values["NewSASToken error"] = err
	_, err = NewSharedAccessKeyCredential("service", testKey[1:], nil)
	values["credential error"] = err
	values["update error"] = cred.Update("service", "*"+testKey)
	_, err = NewStaticSASAuthorizer(strings.ToLower(testSig))
	values["StaticSAS error"] = err

	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%20.5s", "%d"}
	for name, v := range values {
		var out strings.Builder
		for _, verb := range verbs {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		fmt.Fprintln(&out, v)
		if s, ok := v.(fmt.Stringer); ok {
			fmt.Fprintln(&out, s.String())
		}
		if g, ok := v.(fmt.GoStringer); ok {
			fmt.Fprintln(&out, g.GoString())
		}
		for _, h := range []func(*bytes.Buffer) slog.Handler{
			func(b *bytes.Buffer) slog.Handler {
				return slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})
			},
			func(b *bytes.Buffer) slog.Handler {
				return slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})
			},
		} {
			var buf bytes.Buffer
			slog.New(h(&buf)).Debug("value", "v", v, slog.Any("any", v), slog.Group("g", "v", v))
			out.Write(buf.Bytes())
		}
		text := out.String()
		if !strings.Contains(text, "redacted") && !strings.Contains(name, "error") && !strings.Contains(name, "unexported") {
			t.Errorf("%s: printed form never says <redacted>:\n%s", name, text)
		}
		t.Run(name, func(t *testing.T) { assertNoSecrets(t, text) })
	}
}

// TestAuthorizerForms checks that the authorizer types print under their
// own names with their secrets redacted, and that their zero values fail
// cleanly instead of panicking.
func TestAuthorizerForms(t *testing.T) {
	t.Parallel()
	cred, err := NewSharedAccessKeyCredential("service", testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	static, err := NewStaticSASAuthorizer(testSig)
	if err != nil {
		t.Fatal(err)
	}
	entra, err := NewTokenCredentialAuthorizer(staticCred{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		a          Authorizer
		zero       Authorizer
		str, goStr string
	}{
		{"SAS", cred.Authorizer(testHost), &SharedAccessKeyAuthorizer{},
			"SharedAccessKeyAuthorizer(HostName=" + testHost + ";SharedAccessKeyName=service;SharedAccessKey=<redacted>)",
			`&auth.SharedAccessKeyAuthorizer{HostName:"` + testHost + `", SharedAccessKeyName:"service", SharedAccessKey:<redacted>}`},
		{"static SAS", static, &StaticSASAuthorizer{}, "StaticSASAuthorizer(", "&auth.StaticSASAuthorizer{"},
		{"Entra", entra, &TokenCredentialAuthorizer{}, "TokenCredentialAuthorizer(", "&auth.TokenCredentialAuthorizer{"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := fmt.Sprint(tt.a); !strings.HasPrefix(got, tt.str) || !strings.Contains(got, "<redacted>") && tt.name != "Entra" {
				t.Errorf("Sprint = %q, want it to start with %q and redact the secret", got, tt.str)
			}
			if got := fmt.Sprintf("%#v", tt.a); !strings.HasPrefix(got, tt.goStr) || !strings.Contains(got, "<redacted>") {
				t.Errorf("%%#v = %q, want it to start with %q and redact the secret", got, tt.goStr)
			}
			if _, err := tt.zero.Authorization(t.Context()); !errors.Is(err, ErrInvalidCredential) {
				t.Errorf("zero value: Authorization() error = %v, want ErrInvalidCredential", err)
			}
			_ = fmt.Sprintf("%v %#v", tt.zero, tt.zero) // must not panic
		})
	}
}

func TestRedactedForms(t *testing.T) {
	t.Parallel()
	cs, err := ParseConnectionString("HostName=" + testHost + ";SharedAccessKeyName=service;SharedAccessKey=" + testKey)
	if err != nil {
		t.Fatal(err)
	}
	const want = "HostName=myhub.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=<redacted>"
	const wantGo = `auth.ConnectionString{HostName:"myhub.azure-devices.net", SharedAccessKeyName:"service", SharedAccessKey:<redacted>}`
	tests := []struct{ format, want string }{
		{"%v", want},
		{"%+v", want},
		{"%s", want},
		{"%q", `"` + want + `"`},
		{"%#v", wantGo},
		{"%.8s", want[:8]},
	}
	for _, tt := range tests {
		if got := fmt.Sprintf(tt.format, cs); got != tt.want {
			t.Errorf("Sprintf(%q) = %q, want %q", tt.format, got, tt.want)
		}
	}
	if got := cs.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := cs.GoString(); got != wantGo {
		t.Errorf("GoString() = %q, want %q", got, wantGo)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "cs", cs)
	if !strings.Contains(buf.String(), `"cs":{"HostName":"myhub.azure-devices.net","SharedAccessKeyName":"service","SharedAccessKey":"<redacted>"}`) {
		t.Errorf("slog JSON = %s", buf.String())
	}

	sig, err := ParseConnectionString("HostName=" + testHost + ";SharedAccessSignature=" + testSig)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(sig), "HostName=myhub.azure-devices.net;SharedAccessSignature=<redacted>"; got != want {
		t.Errorf("Sprint(signature connection string) = %q, want %q", got, want)
	}
}
