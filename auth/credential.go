package auth

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Limits and default for [SharedAccessKeyCredentialOptions.TTL].
const (
	DefaultSASTTL = time.Hour
	MinSASTTL     = time.Minute
	MaxSASTTL     = 365 * 24 * time.Hour
)

// SharedAccessKeyCredentialOptions configures a [SharedAccessKeyCredential].
// The zero value, like a nil pointer, selects the defaults.
type SharedAccessKeyCredentialOptions struct {
	// TTL is the lifetime of each minted token. Zero means [DefaultSASTTL]
	// (one hour, as the official SDKs use). It must lie between [MinSASTTL]
	// and [MaxSASTTL]. A token is renewed once less than TTL/2 of it remains,
	// so every token sent has at least TTL/2 of validity left, which absorbs
	// clock skew between this machine and the hub.
	TTL time.Duration
}

// SharedAccessKeyCredential holds the name and key of an IoT Hub shared
// access policy and mints shared access signature tokens from it.
//
// Use [SharedAccessKeyCredential.Authorizer] to get the [Authorizer] for a
// hub. The key can be rotated with [SharedAccessKeyCredential.Update]; every
// Authorizer derived from the credential signs with the new key from its next
// call. The key is never returned by any method and is redacted in every
// printed form. A SharedAccessKeyCredential is safe for concurrent use.
type SharedAccessKeyCredential struct {
	ttl   time.Duration
	mu    sync.Mutex // serialises Update
	state atomic.Pointer[keyState]
}

// keyState is one generation of policy name and decoded key. It is never
// modified after it is published.
type keyState struct {
	policy string
	key    []byte
	gen    uint64
}

// NewSharedAccessKeyCredential returns a credential for the shared access
// policy policyName with the base64 key key, as shown in the hub's "Shared
// access policies" page. opts may be nil.
//
// It returns an error wrapping [ErrInvalidCredential] if the name is empty or
// malformed, the key is not valid standard base64, or opts.TTL is out of
// range. The error never includes the key.
func NewSharedAccessKeyCredential(policyName, key string, opts *SharedAccessKeyCredentialOptions) (*SharedAccessKeyCredential, error) {
	ttl := DefaultSASTTL
	if opts != nil && opts.TTL != 0 {
		ttl = opts.TTL
	}
	if ttl < MinSASTTL || ttl > MaxSASTTL {
		return nil, fmt.Errorf("%w: SAS token TTL %v is outside the allowed range [%v, %v]", ErrInvalidCredential, ttl, MinSASTTL, MaxSASTTL)
	}
	st, err := newKeyState(policyName, key, 1)
	if err != nil {
		return nil, err
	}
	c := &SharedAccessKeyCredential{ttl: ttl}
	c.state.Store(st)
	return c, nil
}

func newKeyState(policyName, key string, gen uint64) (*keyState, error) {
	if err := validatePolicyName(policyName); err != nil {
		return nil, err
	}
	k, err := decodeKey(key)
	if err != nil {
		return nil, err
	}
	return &keyState{policy: policyName, key: k, gen: gen}, nil
}

// Update replaces the policy name and key, for example after the key was
// regenerated in the portal. The new values are validated first; on error
// the credential keeps the old ones. Authorizers derived from the credential
// discard their cached tokens and sign with the new key from their next
// call.
func (c *SharedAccessKeyCredential) Update(policyName, key string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := newKeyState(policyName, key, c.state.Load().gen+1)
	if err != nil {
		return err
	}
	c.state.Store(st)
	return nil
}

// PolicyName returns the name of the shared access policy currently in use.
func (c *SharedAccessKeyCredential) PolicyName() string {
	return c.state.Load().policy
}

// TTL returns the lifetime of the tokens the credential mints.
func (c *SharedAccessKeyCredential) TTL() time.Duration {
	return c.ttl
}

// String describes the credential without its key.
func (c *SharedAccessKeyCredential) String() string {
	return fmt.Sprintf("SharedAccessKeyCredential(SharedAccessKeyName=%s;SharedAccessKey=%s;TTL=%v)", c.PolicyName(), redacted, c.ttl)
}

// GoString describes the credential without its key, for %#v.
func (c *SharedAccessKeyCredential) GoString() string {
	return fmt.Sprintf("&auth.SharedAccessKeyCredential{SharedAccessKeyName:%q, SharedAccessKey:%s, TTL:%v}", c.PolicyName(), redacted, c.ttl)
}

// Format implements [fmt.Formatter] so that every verb redacts the key.
func (c *SharedAccessKeyCredential) Format(f fmt.State, verb rune) {
	formatRedacted(f, verb, c.String(), c.GoString())
}

// LogValue implements [slog.LogValuer]; the key is redacted.
func (c *SharedAccessKeyCredential) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("SharedAccessKeyName", c.PolicyName()),
		slog.String("SharedAccessKey", redacted),
		slog.Duration("TTL", c.ttl),
	)
}

// Authorizer returns a [SharedAccessKeyAuthorizer] for the hub hostName
// (for example "myhub.azure-devices.net"), whose tokens use the bare host
// name as their resource. Each Authorizer caches its token and mints a new one only when
// less than half of the TTL remains or after [SharedAccessKeyCredential.Update];
// concurrent callers at renewal time share one mint.
//
// If hostName is empty, the Authorizer's calls fail with
// [ErrInvalidCredential].
func (c *SharedAccessKeyCredential) Authorizer(hostName string) *SharedAccessKeyAuthorizer {
	return &SharedAccessKeyAuthorizer{cred: c, host: hostName, sr: url.QueryEscape(hostName)}
}

// SharedAccessKeyAuthorizer is the [Authorizer] that signs SAS tokens for
// one hub with a [SharedAccessKeyCredential], caching each token until half
// its lifetime has passed. Get one from [SharedAccessKeyCredential.Authorizer];
// the zero value is not usable. It is safe for concurrent use, and no printed
// or logged form of it contains the key or a token.
type SharedAccessKeyAuthorizer struct {
	cred *SharedAccessKeyCredential
	host string
	sr   string // url.QueryEscape(host), exactly as placed in the token

	mu    sync.Mutex // serialises minting
	cur   atomic.Pointer[sasToken]
	mints atomic.Uint64 // tokens minted, for tests
}

// sasToken is one minted token. It is never modified after it is published.
type sasToken struct {
	header  string
	renewAt time.Time // wall clock only (no monotonic reading)
	gen     uint64    // keyState generation it was signed with
}

// usable reports whether t can still be sent at now for the key generation
// gen.
func (t *sasToken) usable(now time.Time, gen uint64) bool {
	return t != nil && t.gen == gen && now.Before(t.renewAt)
}

// Authorization returns a cached token while it has more than half its
// lifetime left, and mints a new one otherwise. It never blocks on I/O and
// ignores ctx.
func (a *SharedAccessKeyAuthorizer) Authorization(ctx context.Context) (string, error) {
	if a.cred == nil {
		return "", fmt.Errorf("%w: a zero SharedAccessKeyAuthorizer; get one from SharedAccessKeyCredential.Authorizer", ErrInvalidCredential)
	}
	if t := a.cur.Load(); t.usable(time.Now(), a.cred.state.Load().gen) {
		return t.header, nil
	}
	return a.renew()
}

// renew mints a token under the lock, unless another caller did so while
// this one waited for it.
func (a *SharedAccessKeyAuthorizer) renew() (string, error) {
	if a.host == "" {
		return "", fmt.Errorf("%w: the hub host name for the SAS token is empty", ErrInvalidCredential)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.cred.state.Load()
	now := time.Now()
	if t := a.cur.Load(); t.usable(now, st.gen) {
		return t.header, nil
	}
	ttl := a.cred.ttl
	se := now.Add(ttl).Unix()
	t := &sasToken{
		header: mintSAS(st.key, a.sr, st.policy, se),
		// Measured from the truncated expiry, so at least TTL/2 remains
		// whenever the token is served. time.Unix carries no monotonic
		// reading, so the comparison uses the wall clock, as the hub does.
		renewAt: time.Unix(se, 0).Add(-ttl / 2),
		gen:     st.gen,
	}
	a.cur.Store(t)
	a.mints.Add(1)
	return t.header, nil
}

// policyName is the credential's policy name, or "" for a zero authorizer.
func (a *SharedAccessKeyAuthorizer) policyName() string {
	if a.cred == nil {
		return ""
	}
	return a.cred.PolicyName()
}

// String describes the authorizer with its host and policy name; the key is
// redacted.
func (a *SharedAccessKeyAuthorizer) String() string {
	return fmt.Sprintf("SharedAccessKeyAuthorizer(HostName=%s;SharedAccessKeyName=%s;SharedAccessKey=%s)", a.host, a.policyName(), redacted)
}

// GoString is String's counterpart for %#v; the key is redacted.
func (a *SharedAccessKeyAuthorizer) GoString() string {
	return fmt.Sprintf("&auth.SharedAccessKeyAuthorizer{HostName:%q, SharedAccessKeyName:%q, SharedAccessKey:%s}", a.host, a.policyName(), redacted)
}

// Format implements [fmt.Formatter] so that no verb prints the token.
func (a *SharedAccessKeyAuthorizer) Format(f fmt.State, verb rune) {
	formatRedacted(f, verb, a.String(), a.GoString())
}

// LogValue implements [slog.LogValuer]; the key and token are redacted.
func (a *SharedAccessKeyAuthorizer) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("HostName", a.host),
		slog.String("SharedAccessKeyName", a.policyName()),
		slog.String("SharedAccessKey", redacted),
	)
}

// NewStaticSASAuthorizer returns a [StaticSASAuthorizer] that sends token,
// a ready-made shared access signature such as the SharedAccessSignature
// entry of a connection string, unchanged. The token must start with "SharedAccessSignature " and
// carry sr, sig and se fields; otherwise NewStaticSASAuthorizer returns an
// error wrapping [ErrInvalidCredential].
//
// The token is never renewed. Once its expiry (se) has passed, Authorization
// returns an error wrapping [ErrTokenExpired] that says when it expired; the
// application must then supply a new one. Errors never include the token.
func NewStaticSASAuthorizer(token string) (*StaticSASAuthorizer, error) {
	f, err := parseSAS(token)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidCredential, err)
	}
	return &StaticSASAuthorizer{token: hideSecrets(token), expiresAt: time.Unix(f.se, 0), resource: f.sr, policy: f.skn}, nil
}

// StaticSASAuthorizer is the [Authorizer] that sends a ready-made shared
// access signature, which it cannot renew. Get one from
// [NewStaticSASAuthorizer]; the zero value is not usable. It is safe for
// concurrent use, and no printed or logged form of it contains the
// signature.
type StaticSASAuthorizer struct {
	token     func() string // a closure, so that reflection cannot print it
	expiresAt time.Time     // wall clock only
	resource  string        // sr as it appears in the token
	policy    string        // skn, possibly empty
}

// Authorization returns the token, or an error wrapping [ErrTokenExpired]
// once it has expired. It ignores ctx.
func (s *StaticSASAuthorizer) Authorization(ctx context.Context) (string, error) {
	if s.token == nil {
		return "", fmt.Errorf("%w: a zero StaticSASAuthorizer; get one from NewStaticSASAuthorizer", ErrInvalidCredential)
	}
	if time.Now().Before(s.expiresAt) {
		return s.token(), nil
	}
	return "", fmt.Errorf("%w: the supplied shared access signature expired at %s and must be replaced with a new one",
		ErrTokenExpired, s.expiresAt.UTC().Format(time.RFC3339))
}

// String describes the signature's resource, policy and expiry; the
// signature itself is redacted.
func (s *StaticSASAuthorizer) String() string {
	return fmt.Sprintf("StaticSASAuthorizer(sr=%s;skn=%s;sig=%s;ExpiresAt=%s)", s.resource, s.policy, redacted, s.expiresAt.UTC().Format(time.RFC3339))
}

// GoString is String's counterpart for %#v; the signature is redacted.
func (s *StaticSASAuthorizer) GoString() string {
	return fmt.Sprintf("&auth.StaticSASAuthorizer{Resource:%q, PolicyName:%q, Signature:%s, ExpiresAt:%q}", s.resource, s.policy, redacted, s.expiresAt.UTC().Format(time.RFC3339))
}

// Format implements [fmt.Formatter] so that no verb prints the signature.
func (s *StaticSASAuthorizer) Format(f fmt.State, verb rune) {
	formatRedacted(f, verb, s.String(), s.GoString())
}

// LogValue implements [slog.LogValuer]; the signature is redacted.
func (s *StaticSASAuthorizer) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("sr", s.resource),
		slog.String("skn", s.policy),
		slog.String("sig", redacted),
		slog.Time("ExpiresAt", s.expiresAt.UTC()),
	)
}
