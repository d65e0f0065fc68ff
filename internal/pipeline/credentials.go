package pipeline

import (
	"errors"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/auth"
)

// The three ways a client of the module is built, shared by every client
// package so that each constructor is a one-line call.

// FromConnectionString builds a pipeline from a shared access policy
// connection string: a ready-made SharedAccessSignature is used as is;
// otherwise the key signs cached, renewed tokens.
func FromConnectionString(connectionString string, opts *iothub.ClientOptions) (*Pipeline, error) {
	cs, err := auth.ParseConnectionString(connectionString)
	if err != nil {
		return nil, err
	}
	var a Authorizer
	if sig := cs.SharedAccessSignature(); sig != "" {
		a, err = auth.NewStaticSASAuthorizer(sig)
	} else {
		var cred *auth.SharedAccessKeyCredential
		var sasOpts *auth.SharedAccessKeyCredentialOptions
		if opts != nil && opts.SASTokenTTL != 0 {
			sasOpts = &auth.SharedAccessKeyCredentialOptions{TTL: opts.SASTokenTTL}
		}
		cred, err = auth.NewSharedAccessKeyCredential(cs.SharedAccessKeyName, cs.SharedAccessKey(), sasOpts)
		if err == nil {
			a = cred.Authorizer(cs.HostName)
		}
	}
	if err != nil {
		return nil, err
	}
	return New(cs.HostName, a, opts)
}

// FromTokenCredential builds a pipeline that authenticates with Microsoft
// Entra ID, requesting ClientOptions.TokenScope or, by default,
// auth.ScopePublicCloud, which IoT Hub accepts in every cloud.
func FromTokenCredential(hostName string, cred azcore.TokenCredential, opts *iothub.ClientOptions) (*Pipeline, error) {
	if err := ValidateHostName(hostName); err != nil {
		return nil, err
	}
	if cred == nil {
		return nil, errors.New("iothub: NewClient needs a TokenCredential")
	}
	scope := auth.ScopePublicCloud
	if opts != nil && opts.TokenScope != "" {
		scope = opts.TokenScope
	}
	a, err := auth.NewTokenCredentialAuthorizer(cred, &auth.TokenCredentialOptions{Scopes: []string{scope}})
	if err != nil {
		return nil, err
	}
	return New(hostName, a, opts)
}

// FromSharedAccessKey builds a pipeline that signs with a shared access key
// credential the caller keeps (to rotate its key).
func FromSharedAccessKey(hostName string, cred *auth.SharedAccessKeyCredential, opts *iothub.ClientOptions) (*Pipeline, error) {
	if err := ValidateHostName(hostName); err != nil {
		return nil, err
	}
	if cred == nil {
		return nil, errors.New("iothub: NewClientWithSharedAccessKey needs a SharedAccessKeyCredential")
	}
	return New(hostName, cred.Authorizer(hostName), opts)
}
