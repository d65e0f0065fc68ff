package auth

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
)

// ConnectionString is a parsed IoT Hub service connection string: the hub's
// host name and the shared access policy name and key (or a ready-made shared
// access signature) that authenticate to it. Create one with
// [ParseConnectionString].
//
// The key and signature are unexported and reachable only through accessor
// methods; every printed form (fmt with any verb, [ConnectionString.String],
// [ConnectionString.GoString] and log/slog) shows them as <redacted>. To
// keep them out of reflection-based printing too, they are held in a func
// field, which makes ConnectionString not comparable with ==.
type ConnectionString struct {
	// HostName is the hub's host name, such as "myhub.azure-devices.net",
	// possibly with a ":port" for a local emulator.
	HostName string

	// SharedAccessKeyName is the name of the shared access policy, such as
	// "service" or "iothubowner". It may be empty when the connection string
	// carries a SharedAccessSignature instead of a key.
	SharedAccessKeyName string

	// secrets is a closure rather than a struct or pointer: when a
	// ConnectionString sits in an unexported field, fmt cannot call its
	// methods and falls back to reflection, which prints a func as an
	// address but expands strings and (with some verbs) pointed-to structs.
	secrets func() connSecrets
}

type connSecrets struct {
	key string // base64 policy key
	sig string // complete "SharedAccessSignature ..." token
}

func (c ConnectionString) secret() connSecrets {
	if c.secrets == nil {
		return connSecrets{}
	}
	return c.secrets()
}

// SharedAccessKey returns the base64 policy key, or "" if the connection
// string carries a shared access signature instead. Treat it as a secret.
func (c ConnectionString) SharedAccessKey() string {
	return c.secret().key
}

// SharedAccessSignature returns the ready-made shared access signature, or ""
// if the connection string carries a key instead. Treat it as a secret.
func (c ConnectionString) SharedAccessSignature() string {
	return c.secret().sig
}

// String returns the connection string with its secret replaced by
// <redacted>, for example
//
//	HostName=myhub.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=<redacted>
func (c ConnectionString) String() string {
	var b strings.Builder
	b.WriteString("HostName=")
	b.WriteString(c.HostName)
	if c.SharedAccessKeyName != "" {
		b.WriteString(";SharedAccessKeyName=")
		b.WriteString(c.SharedAccessKeyName)
	}
	if c.SharedAccessSignature() != "" {
		b.WriteString(";SharedAccessSignature=" + redacted)
	} else {
		b.WriteString(";SharedAccessKey=" + redacted)
	}
	return b.String()
}

// GoString returns a Go-syntax-like form with the secret redacted, for %#v.
func (c ConnectionString) GoString() string {
	secret := "SharedAccessKey"
	if c.SharedAccessSignature() != "" {
		secret = "SharedAccessSignature"
	}
	return fmt.Sprintf("auth.ConnectionString{HostName:%q, SharedAccessKeyName:%q, %s:%s}", c.HostName, c.SharedAccessKeyName, secret, redacted)
}

// Format implements [fmt.Formatter]: %#v prints [ConnectionString.GoString]
// and every other verb formats [ConnectionString.String], so no verb can
// print the secret.
func (c ConnectionString) Format(f fmt.State, verb rune) {
	formatRedacted(f, verb, c.String(), c.GoString())
}

// LogValue implements [slog.LogValuer] with the secret redacted.
func (c ConnectionString) LogValue() slog.Value {
	secret := "SharedAccessKey"
	if c.SharedAccessSignature() != "" {
		secret = "SharedAccessSignature"
	}
	return slog.GroupValue(
		slog.String("HostName", c.HostName),
		slog.String("SharedAccessKeyName", c.SharedAccessKeyName),
		slog.String(secret, redacted),
	)
}

// Authorizer returns the [Authorizer] the connection string calls for: with
// a SharedAccessSignature, a [StaticSASAuthorizer] of it (opts is then ignored);
// otherwise the [SharedAccessKeyAuthorizer] of a [SharedAccessKeyCredential]
// built with opts, for HostName.
// Callers that want to rotate the key later should build the credential
// themselves with [NewSharedAccessKeyCredential].
func (c ConnectionString) Authorizer(opts *SharedAccessKeyCredentialOptions) (Authorizer, error) {
	if sig := c.SharedAccessSignature(); sig != "" {
		a, err := NewStaticSASAuthorizer(sig)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return a, nil
	}
	if c.HostName == "" {
		return nil, fmt.Errorf("%w: HostName is missing", ErrInvalidConnectionString)
	}
	cred, err := NewSharedAccessKeyCredential(c.SharedAccessKeyName, c.SharedAccessKey(), opts)
	if err != nil {
		return nil, err
	}
	return cred.Authorizer(c.HostName), nil
}

// Connection string entry names, in their canonical spelling.
const (
	csHostName              = "HostName"
	csSharedAccessKeyName   = "SharedAccessKeyName"
	csSharedAccessKey       = "SharedAccessKey"
	csSharedAccessSignature = "SharedAccessSignature"
	csDeviceID              = "DeviceId"
	csModuleID              = "ModuleId"
	csGatewayHostName       = "GatewayHostName"
)

var csNames = [...]string{
	csHostName, csSharedAccessKeyName, csSharedAccessKey, csSharedAccessSignature,
	csDeviceID, csModuleID, csGatewayHostName,
}

// csError builds an error wrapping ErrInvalidConnectionString.
func csError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConnectionString}, args...)...)
}

// ParseConnectionString parses an IoT Hub service connection string, a
// ;-separated list of Name=value entries such as
//
//	HostName=myhub.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=<base64 key>
//
// Each entry is split at its first '=' (base64 keys end in '='); spaces
// around names and values are ignored, names are matched case-insensitively,
// and empty entries (such as after a trailing ';') are skipped. The known
// names are HostName, SharedAccessKeyName, SharedAccessKey,
// SharedAccessSignature, DeviceId, ModuleId and GatewayHostName;
// GatewayHostName is accepted and ignored.
//
// The connection string must name the hub (HostName, a host name without
// scheme or path; a ":port" is allowed for emulators) and carry either a
// SharedAccessKey together with its SharedAccessKeyName, or a
// SharedAccessSignature, but not both. A device connection string (one with
// DeviceId) is rejected: the service API needs a shared access policy such as
// "service" or "iothubowner".
//
// Errors wrap [ErrInvalidConnectionString] and never contain the key or the
// signature.
func ParseConnectionString(s string) (ConnectionString, error) {
	var (
		vals [len(csNames)]string
		seen [len(csNames)]bool
	)
	part := 0
	for seg := range strings.SplitSeq(s, ";") {
		if strings.TrimSpace(seg) == "" {
			continue
		}
		part++
		rawName, rawValue, ok := strings.Cut(seg, "=")
		if !ok {
			return ConnectionString{}, csError("entry %d is not a Name=value pair", part)
		}
		name := strings.TrimSpace(rawName)
		if name == "" {
			return ConnectionString{}, csError("entry %d has an empty name", part)
		}
		i := csNameIndex(name)
		if i < 0 {
			return ConnectionString{}, unknownNameError(name, s)
		}
		if seen[i] {
			return ConnectionString{}, csError("%s appears more than once", csNames[i])
		}
		seen[i], vals[i] = true, strings.TrimSpace(rawValue)
	}
	get := func(n string) (string, bool) {
		i := csNameIndex(n)
		return vals[i], seen[i]
	}

	if _, ok := get(csDeviceID); ok {
		return ConnectionString{}, csError("this is a device connection string (it has DeviceId); " +
			"the service API needs a service connection string from a shared access policy, " +
			`such as the "service" or "iothubowner" policy under "Shared access policies" in the hub's Azure portal page`)
	}
	if _, ok := get(csModuleID); ok {
		return ConnectionString{}, csError("this is a module connection string (it has ModuleId); " +
			"the service API needs a service connection string from a shared access policy, " +
			`such as the "service" or "iothubowner" policy under "Shared access policies" in the hub's Azure portal page`)
	}
	host, _ := get(csHostName)
	if host == "" {
		return ConnectionString{}, csError("HostName is missing or empty")
	}
	if err := validateHostName(host); err != nil {
		return ConnectionString{}, err
	}
	keyName, hasKeyName := get(csSharedAccessKeyName)
	key, hasKey := get(csSharedAccessKey)
	sig, hasSig := get(csSharedAccessSignature)
	switch {
	case hasKey && hasSig:
		return ConnectionString{}, csError("both SharedAccessKey and SharedAccessSignature are present; give only one")
	case !hasKey && !hasSig:
		return ConnectionString{}, csError("neither SharedAccessKey nor SharedAccessSignature is present")
	}
	switch {
	case hasKey && keyName == "":
		return ConnectionString{}, csError("SharedAccessKey is present but SharedAccessKeyName is missing or empty")
	case hasKeyName && keyName == "":
		return ConnectionString{}, csError("SharedAccessKeyName is empty")
	case keyName != "" && validatePolicyName(keyName) != nil:
		return ConnectionString{}, csError("SharedAccessKeyName may contain only letters, digits, '_', '-', '@' and '.'")
	}
	if hasKey {
		if key == "" {
			return ConnectionString{}, csError("SharedAccessKey is empty")
		}
		if _, err := decodeKey(key); err != nil {
			return ConnectionString{}, csError("SharedAccessKey is not valid standard (padded) base64")
		}
	}
	if hasSig {
		if sig == "" {
			return ConnectionString{}, csError("SharedAccessSignature is empty")
		}
		if _, err := parseSAS(sig); err != nil {
			return ConnectionString{}, csError("SharedAccessSignature: %v", err)
		}
	}
	return ConnectionString{
		HostName:            host,
		SharedAccessKeyName: keyName,
		secrets:             hideSecrets(connSecrets{key: key, sig: sig}),
	}, nil
}

// hideSecrets wraps v in a closure, which reflection-based printing shows
// only as an address.
func hideSecrets[T any](v T) func() T {
	return func() T { return v }
}

func csNameIndex(name string) int {
	for i, n := range csNames {
		if strings.EqualFold(name, n) {
			return i
		}
	}
	return -1
}

// unknownNameError names an unknown entry, unless the name does not look
// like one or overlaps a secret in s (a mangled connection string can put
// key material where a name belongs).
func unknownNameError(name, s string) error {
	if len(name) <= 64 && isIdentifier(name) && !overlapsSecret(name, s) {
		return csError("unknown name %q (known names: %s)", name, strings.Join(csNames[:], ", "))
	}
	return csError("an entry has an unknown name, not shown because it does not look like a name (known names: %s)", strings.Join(csNames[:], ", "))
}

func isIdentifier(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// overlapsSecret reports whether name shares text with the value of any
// SharedAccessKey or SharedAccessSignature entry of s.
func overlapsSecret(name, s string) bool {
	for seg := range strings.SplitSeq(s, ";") {
		n, v, ok := strings.Cut(seg, "=")
		if !ok {
			continue
		}
		n, v = strings.TrimSpace(n), strings.TrimSpace(v)
		if !strings.EqualFold(n, csSharedAccessKey) && !strings.EqualFold(n, csSharedAccessSignature) {
			continue
		}
		if v != "" && (strings.Contains(v, name) || strings.Contains(name, v)) {
			return true
		}
	}
	return false
}

// validateHostName accepts a DNS host name or IP address, optionally with a
// port, and rejects anything with a scheme, path, credentials or spaces. The
// error does not repeat the value: a malformed one may hold pasted secrets.
func validateHostName(host string) error {
	const hint = "HostName must be a bare host name such as myhub.azure-devices.net (no scheme, path or spaces; a :port is allowed)"
	if strings.Contains(host, "://") {
		return csError("HostName has a URL scheme; %s", hint)
	}
	h := host
	if strings.Contains(host, ":") {
		hh, port, err := net.SplitHostPort(host)
		if err != nil {
			return csError("%s", hint)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return csError("HostName has an invalid port; %s", hint)
		}
		h = hh
		if strings.Contains(h, ":") {
			if net.ParseIP(h) == nil {
				return csError("%s", hint)
			}
			return nil
		}
	}
	if h == "" || len(h) > 253 || !isIdentifier(h) {
		return csError("%s", hint)
	}
	return nil
}
