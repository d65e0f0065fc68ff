package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
)

// Authorizer supplies the value of the Authorization header for requests to
// IoT Hub.
//
// The HTTP pipeline calls Authorization once for every request attempt, so
// an implementation must be cheap when it can answer from a cache and safe
// for concurrent use. The returned value is a secret: callers must not log
// it. An implementation may block to fetch a new token; it then honours ctx.
type Authorizer interface {
	Authorization(ctx context.Context) (string, error)
}

// Sentinel errors, for use with [errors.Is]. Every validation error of this
// package wraps one of them; a failure of an Entra credential or the end of
// a caller's context is wrapped as it is (test for it with errors.Is too).
// Error messages never contain keys, signatures or tokens.
var (
	// ErrInvalidConnectionString reports a connection string that cannot be
	// used to authenticate a back-end application. The message names the
	// offending entry but never repeats a key or signature.
	ErrInvalidConnectionString = errors.New("auth: invalid connection string")

	// ErrInvalidCredential reports an unusable credential input: an empty
	// policy name or resource, a key that is not base64, a malformed shared
	// access signature, an out-of-range option, or a nil credential.
	ErrInvalidCredential = errors.New("auth: invalid credential")

	// ErrTokenExpired reports a token that has expired and cannot be renewed
	// by this package, such as a shared access signature passed to
	// [NewStaticSASAuthorizer].
	ErrTokenExpired = errors.New("auth: token expired")
)

// redacted replaces secrets in every printed form.
const redacted = "<redacted>"

// policyNamePattern is the character set IoT Hub allows in shared access
// policy names. Enforcing it also keeps the name safe to place unescaped in
// the skn field of a token and to print.
var policyNamePattern = regexp.MustCompile(`^[A-Za-z0-9_\-@.]+$`)

// validatePolicyName checks a shared access policy name. The returned error
// does not repeat the name: a malformed name is often a mis-pasted key.
func validatePolicyName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: the shared access policy name is empty", ErrInvalidCredential)
	case len(name) > 256 || !policyNamePattern.MatchString(name):
		return fmt.Errorf("%w: the shared access policy name may contain only letters, digits, '_', '-', '@' and '.'", ErrInvalidCredential)
	}
	return nil
}

// formatRedacted implements fmt.Formatter for the types here that hold
// secrets: %#v prints goStr, every other verb formats str (which never holds
// a secret) as a string, honouring flags, width and precision.
func formatRedacted(f fmt.State, verb rune, str, goStr string) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, goStr)
		return
	}
	if verb == 'v' {
		verb = 's'
	}
	_, _ = fmt.Fprintf(f, fmt.FormatString(f, verb), str)
}
