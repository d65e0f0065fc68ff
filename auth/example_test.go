package auth_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"

	"github.com/hubkit/iothub/auth"
)

func ExampleParseConnectionString() {
	// An illustrative key; real ones come from the hub's "Shared access
	// policies" page in the Azure portal.
	cs, err := auth.ParseConnectionString(
		"HostName=myhub.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cs.HostName)
	fmt.Println(cs.SharedAccessKeyName)
	fmt.Println(cs)         // the key is redacted
	fmt.Printf("%#v\n", cs) // in every format

	_, err = auth.ParseConnectionString("HostName=myhub.azure-devices.net;DeviceId=thermostat;SharedAccessKey=AAAA")
	fmt.Println(err)
	// Output:
	// myhub.azure-devices.net
	// service
	// HostName=myhub.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=<redacted>
	// auth.ConnectionString{HostName:"myhub.azure-devices.net", SharedAccessKeyName:"service", SharedAccessKey:<redacted>}
	// auth: invalid connection string: this is a device connection string (it has DeviceId); the service API needs a service connection string from a shared access policy, such as the "service" or "iothubowner" policy under "Shared access policies" in the hub's Azure portal page
}

func ExampleNewSASToken() {
	expiry := time.Unix(1700000000, 0) // fixed so that the output is stable
	token, err := auth.NewSASToken("myhub.azure-devices.net", "service",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", expiry)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(token)
	// Output:
	// SharedAccessSignature sr=myhub.azure-devices.net&sig=iIzEw6hi6GK79RY5jNXO6QeQkSL%2FAx4zTmy44X2G1VY%3D&se=1700000000&skn=service
}

func ExampleSharedAccessKeyCredential() {
	cred, err := auth.NewSharedAccessKeyCredential("service",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", &auth.SharedAccessKeyCredentialOptions{TTL: 2 * time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	a := cred.Authorizer("myhub.azure-devices.net")
	header, err := a.Authorization(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(header[:len("SharedAccessSignature sr=myhub.azure-devices.net")])

	// Rotate the key at run time; the Authorizer signs with it from its next call.
	if err := cred.Update("iothubowner", "1veS3zuIszRs8QSd+lvhin9XWq8HZxop50vCOsXqUlE="); err != nil {
		log.Fatal(err)
	}
	fmt.Println(cred)
	// Output:
	// SharedAccessSignature sr=myhub.azure-devices.net
	// SharedAccessKeyCredential(SharedAccessKeyName=iothubowner;SharedAccessKey=<redacted>;TTL=2h0m0s)
}

func ExampleScopeForHost() {
	fmt.Println(auth.ScopeForHost("myhub.azure-devices.net"))
	fmt.Println(auth.ScopeForHost("myhub.azure-devices.us"))
	// Output:
	// https://iothubs.azure.net/.default
	// https://iothubs.azure.us/.default
}

func ExampleNewTokenCredentialAuthorizer() {
	// In production, pass a credential from the azidentity module, such as
	// azidentity.NewDefaultAzureCredential(nil). The fake keeps the example
	// self-contained.
	cred := &fake.TokenCredential{}
	a, err := auth.NewTokenCredentialAuthorizer(cred, &auth.TokenCredentialOptions{
		Scopes: []string{auth.ScopeForHost("myhub.azure-devices.net")},
	})
	if err != nil {
		log.Fatal(err)
	}
	header, err := a.Authorization(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(header)
	fmt.Println(a)
	// Output:
	// Bearer fake_token
	// TokenCredentialAuthorizer(Scopes=https://iothubs.azure.net/.default;RefreshBefore=10m0s)
}
