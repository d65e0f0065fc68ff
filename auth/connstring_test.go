package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	testKey    = "1veS3zuIszRs8QSd+lvhin9XWq8HZxop50vCOsXqUlE="
	testSig    = "SharedAccessSignature sr=myhub.azure-devices.net&sig=2r7mDTRCM%2BeYIBhdHce0LGV%2FvT7cphyJ3aS%2FlRJkf8c%3D&se=1764115200&skn=service"
	testSigRaw = "2r7mDTRCM%2BeYIBhdHce0LGV%2FvT7cphyJ3aS%2FlRJkf8c%3D"
)

// csView is the comparable content of a ConnectionString.
type csView struct {
	HostName, SharedAccessKeyName, SharedAccessKey, SharedAccessSignature string
}

func viewOf(c ConnectionString) csView {
	return csView{c.HostName, c.SharedAccessKeyName, c.SharedAccessKey(), c.SharedAccessSignature()}
}

func TestParseConnectionString(t *testing.T) {
	t.Parallel()
	keyed := csView{HostName: "myhub.azure-devices.net", SharedAccessKeyName: "service", SharedAccessKey: testKey}
	tests := []struct {
		name string
		in   string
		want csView
	}{
		{"canonical", "HostName=myhub.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=" + testKey, keyed},
		{"other order", "SharedAccessKey=" + testKey + ";HostName=myhub.azure-devices.net;SharedAccessKeyName=service", keyed},
		{"names in any case", "hostname=myhub.azure-devices.net;SHAREDACCESSKEYNAME=service;sharedAccessKey=" + testKey, keyed},
		{"spaces and empty entries", "  HostName = myhub.azure-devices.net ;; SharedAccessKeyName= service;SharedAccessKey =" + testKey + " ;", keyed},
		{"trailing semicolon", "HostName=myhub.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=" + testKey + ";", keyed},
		{"gateway host name ignored", "HostName=myhub.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=" + testKey + ";GatewayHostName=edge", keyed},
		{"key with == padding", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=AAAAAAAAAA==",
			csView{HostName: "h", SharedAccessKeyName: "p", SharedAccessKey: "AAAAAAAAAA=="}},
		{"emulator port", "HostName=localhost:8443;SharedAccessKeyName=service;SharedAccessKey=" + testKey,
			csView{HostName: "localhost:8443", SharedAccessKeyName: "service", SharedAccessKey: testKey}},
		{"ipv6 with port", "HostName=[::1]:8443;SharedAccessKeyName=service;SharedAccessKey=" + testKey,
			csView{HostName: "[::1]:8443", SharedAccessKeyName: "service", SharedAccessKey: testKey}},
		{"signature", "HostName=myhub.azure-devices.net;SharedAccessSignature=" + testSig,
			csView{HostName: "myhub.azure-devices.net", SharedAccessSignature: testSig}},
		{"signature with key name", "HostName=myhub.azure-devices.net;SharedAccessKeyName=service;SharedAccessSignature=" + testSig,
			csView{HostName: "myhub.azure-devices.net", SharedAccessKeyName: "service", SharedAccessSignature: testSig}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseConnectionString(tt.in)
			if err != nil {
				t.Fatalf("ParseConnectionString() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, viewOf(got)); diff != "" {
				t.Errorf("ParseConnectionString() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseConnectionStringErrors(t *testing.T) {
	t.Parallel()
	const (
		host = "HostName=myhub.azure-devices.net;"
		pol  = "SharedAccessKeyName=service;"
		key  = "SharedAccessKey=" + testKey
	)
	tests := []struct {
		name    string
		in      string
		wantMsg []string
	}{
		{"empty", "", []string{"HostName is missing"}},
		{"only separators", " ; ;", []string{"HostName is missing"}},
		{"missing host", pol + key, []string{"HostName is missing"}},
		{"empty host", "HostName=;" + pol + key, []string{"HostName is missing"}},
		{"neither key nor signature", host + pol, []string{"neither SharedAccessKey nor SharedAccessSignature"}},
		{"both key and signature", host + pol + key + ";SharedAccessSignature=" + testSig, []string{"both SharedAccessKey and SharedAccessSignature"}},
		{"key without key name", host + key, []string{"SharedAccessKeyName is missing"}},
		{"key with empty key name", host + "SharedAccessKeyName=;" + key, []string{"SharedAccessKeyName is missing"}},
		{"malformed key name", host + "SharedAccessKeyName=ser vice;" + key, []string{"SharedAccessKeyName may contain only"}},
		{"empty key", host + pol + "SharedAccessKey=", []string{"SharedAccessKey is empty"}},
		{"key not base64", host + pol + "SharedAccessKey=" + strings.ReplaceAll(testKey, "+", "*"), []string{"SharedAccessKey is not valid standard (padded) base64"}},
		{"key unpadded", host + pol + "SharedAccessKey=" + strings.TrimSuffix(testKey, "="), []string{"not valid standard (padded) base64"}},
		{"repeated name", host + pol + key + ";hostname=other", []string{"HostName appears more than once"}},
		{"repeated key", host + pol + key + ";SharedAccessKey=" + testKey, []string{"SharedAccessKey appears more than once"}},
		{"pair without =", host + "service;" + key, []string{"entry 2 is not a Name=value pair"}},
		{"empty name", host + "=x;" + pol + key, []string{"entry 2 has an empty name"}},
		{"unknown name", host + pol + key + ";Endpoint=sb://x", []string{`unknown name "Endpoint"`, "known names: HostName"}},
		{"unknown odd name not echoed", host + pol + key + ";a b=c", []string{"unknown name, not shown"}},
		{"unknown name overlapping the key not echoed", host + pol + key + ";1veS3zuI=c", []string{"unknown name, not shown"}},
		{"device connection string", host + "DeviceId=dev1;" + key, []string{"device connection string", "service connection string", `"service" or "iothubowner"`, "Shared access policies"}},
		{"module connection string", host + "ModuleId=m1;" + pol + key, []string{"module connection string", "shared access policy"}},
		{"host with scheme", "HostName=https://myhub.azure-devices.net;" + pol + key, []string{"HostName has a URL scheme", "bare host name"}},
		{"host with path", "HostName=x/y;" + pol + key, []string{"bare host name"}},
		{"host with trailing slash", "HostName=myhub.azure-devices.net/;" + pol + key, []string{"bare host name"}},
		{"host with space", "HostName=myhub azure;" + pol + key, []string{"bare host name"}},
		{"host with bad port", "HostName=localhost:99999;" + pol + key, []string{"invalid port"}},
		{"host with empty port", "HostName=localhost:;" + pol + key, []string{"invalid port"}},
		{"missing separator swallows key into host", "HostName=myhub.azure-devices.net SharedAccessKey=" + testKey + ";" + pol, []string{"bare host name"}},
		{"empty key name with signature", host + "SharedAccessKeyName=;SharedAccessSignature=" + testSig, []string{"SharedAccessKeyName is empty"}},
		{"empty signature", host + "SharedAccessSignature=", []string{"SharedAccessSignature is empty"}},
		{"malformed signature", host + "SharedAccessSignature=sr=h&sig=" + testSigRaw + "&se=1", []string{"SharedAccessSignature: a shared access signature must start with"}},
		{"signature without se", host + "SharedAccessSignature=SharedAccessSignature sr=h&sig=" + testSigRaw, []string{"no se (expiry) field"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseConnectionString(tt.in)
			if !errors.Is(err, ErrInvalidConnectionString) {
				t.Fatalf("ParseConnectionString() = %v, %v; want error wrapping ErrInvalidConnectionString", got, err)
			}
			msg := err.Error()
			for _, want := range tt.wantMsg {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			assertNoSecrets(t, msg)
		})
	}
}

func TestConnectionStringAuthorizer(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	cs, err := ParseConnectionString("HostName=myhub.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=" + testKey)
	if err != nil {
		t.Fatal(err)
	}
	a, err := cs.Authorizer(&SharedAccessKeyCredentialOptions{TTL: 2 * MinSASTTL})
	if err != nil {
		t.Fatalf("Authorizer() error = %v", err)
	}
	tok, err := a.Authorization(ctx)
	if err != nil {
		t.Fatalf("Authorization() error = %v", err)
	}
	verifyToken(t, tok, "myhub.azure-devices.net", "service", testKey)

	cs, err = ParseConnectionString("HostName=myhub.azure-devices.net;SharedAccessSignature=" + testSig)
	if err != nil {
		t.Fatal(err)
	}
	a, err = cs.Authorizer(nil)
	if err != nil {
		t.Fatalf("Authorizer() error = %v", err)
	}
	if _, ok := a.(*StaticSASAuthorizer); !ok {
		t.Errorf("Authorizer() = %T, want *StaticSASAuthorizer", a)
	}

	if _, err := cs.Authorizer(&SharedAccessKeyCredentialOptions{TTL: -1}); err != nil {
		t.Errorf("Authorizer() with a signature must ignore options, got %v", err)
	}
	keyed, _ := ParseConnectionString("HostName=h;SharedAccessKeyName=service;SharedAccessKey=" + testKey)
	if _, err := keyed.Authorizer(&SharedAccessKeyCredentialOptions{TTL: -1}); !errors.Is(err, ErrInvalidCredential) {
		t.Errorf("Authorizer() with a bad TTL error = %v, want ErrInvalidCredential", err)
	}
	if _, err := (ConnectionString{}).Authorizer(nil); !errors.Is(err, ErrInvalidConnectionString) {
		t.Errorf("zero ConnectionString.Authorizer() error = %v, want ErrInvalidConnectionString", err)
	}
}

func TestConnectionStringZeroValue(t *testing.T) {
	t.Parallel()
	var cs ConnectionString
	if cs.SharedAccessKey() != "" || cs.SharedAccessSignature() != "" {
		t.Error("zero ConnectionString has secrets")
	}
	if got, want := cs.String(), "HostName=;SharedAccessKey=<redacted>"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
