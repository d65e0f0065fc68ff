package auth

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Microsoft Entra ID scopes for the IoT Hub service API.
//
// The cloud-specific scopes are less certain than the public one: the Java
// and C# SDKs briefly shipped a separate Azure Government audience in 2021
// and removed it after the IoT Hub team said hubs in every cloud accept the
// public audience, and no official SDK has a China-specific scope. If a
// cloud-specific scope is rejected, use [ScopePublicCloud].
const (
	// ScopePublicCloud is the scope for hubs in the global Azure cloud
	// (*.azure-devices.net) and the default for every hub.
	ScopePublicCloud = "https://iothubs.azure.net/.default"

	// ScopeUSGovernment is the scope for hubs in Azure Government
	// (*.azure-devices.us).
	ScopeUSGovernment = "https://iothubs.azure.us/.default"

	// ScopeChina is the scope for hubs in Azure operated by 21Vianet
	// (*.azure-devices.cn), built from the token resource name that the Azure
	// China documentation gives for IoT Hub, https://iothubs.chinacloudapi.cn.
	ScopeChina = "https://iothubs.chinacloudapi.cn/.default"
)

// Defaults for [TokenCredentialOptions].
const (
	// DefaultRefreshBefore is how long before expiry a token is refreshed,
	// matching the C# SDK.
	DefaultRefreshBefore = 10 * time.Minute

	// refreshRetryDelay is how long a failed refresh of a token that is
	// still valid waits before it is tried again.
	refreshRetryDelay = 30 * time.Second
)

// ScopeForHost returns the Entra scope for a hub host name, chosen by its
// DNS suffix: .azure-devices.us gives [ScopeUSGovernment],
// .azure-devices.cn gives [ScopeChina], and anything else
// [ScopePublicCloud]. A port and a trailing dot are ignored, and the match is
// case-insensitive.
func ScopeForHost(hostName string) string {
	h := hostName
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	switch {
	case strings.HasSuffix(h, ".azure-devices.us"):
		return ScopeUSGovernment
	case strings.HasSuffix(h, ".azure-devices.cn"):
		return ScopeChina
	default:
		return ScopePublicCloud
	}
}

// TokenCredentialOptions configures [NewTokenCredentialAuthorizer]. The zero
// value, like a nil pointer, selects the defaults.
type TokenCredentialOptions struct {
	// Scopes are requested from the credential. Empty means
	// []string{ScopePublicCloud}; see also [ScopeForHost].
	Scopes []string

	// RefreshBefore is how long before a token's expiry it is refreshed. Zero
	// means [DefaultRefreshBefore]; it must not be negative. A RefreshOn time
	// suggested by the credential is honoured when it comes earlier.
	RefreshBefore time.Duration
}

// NewTokenCredentialAuthorizer returns a [TokenCredentialAuthorizer] that sends
// "Bearer <token>" with access tokens from cred, a Microsoft Entra ID
// credential such as one from the azidentity module. The principal needs an
// IoT Hub data-plane role: invoking direct methods needs IoT Hub Data
// Contributor (or a custom role with directMethods/invoke/action).
//
// The token is cached. When it enters its refresh window (RefreshBefore
// before expiry, or the credential's RefreshOn), one caller refreshes it,
// waiting for the new token, while the others keep using the cached token
// without waiting; if that refresh fails, the
// cached token is still used and the refresh is tried again 30 seconds later.
// When there is no valid token, all callers wait for one shared fetch, each
// for as long as its own context allows.
//
// It returns an error wrapping [ErrInvalidCredential] if cred is nil or opts
// is invalid. It does no I/O.
func NewTokenCredentialAuthorizer(cred azcore.TokenCredential, opts *TokenCredentialOptions) (*TokenCredentialAuthorizer, error) {
	if cred == nil {
		return nil, fmt.Errorf("%w: the Entra token credential is nil", ErrInvalidCredential)
	}
	var o TokenCredentialOptions
	if opts != nil {
		o = *opts
	}
	if o.RefreshBefore < 0 {
		return nil, fmt.Errorf("%w: RefreshBefore %v is negative", ErrInvalidCredential, o.RefreshBefore)
	}
	if o.RefreshBefore == 0 {
		o.RefreshBefore = DefaultRefreshBefore
	}
	if len(o.Scopes) == 0 {
		o.Scopes = []string{ScopePublicCloud}
	} else {
		o.Scopes = slices.Clone(o.Scopes)
	}
	if slices.Contains(o.Scopes, "") {
		return nil, fmt.Errorf("%w: an Entra scope is empty", ErrInvalidCredential)
	}
	return &TokenCredentialAuthorizer{
		cred:          cred,
		scopes:        o.Scopes,
		scopeText:     strings.Join(o.Scopes, " "),
		refreshBefore: o.RefreshBefore,
	}, nil
}

// TokenCredentialAuthorizer is the [Authorizer] that sends Microsoft Entra
// ID bearer tokens from an azcore.TokenCredential, caching them and
// coordinating their refresh. Get one from [NewTokenCredentialAuthorizer];
// the zero value is not usable. It is safe for concurrent use, and no
// printed or logged form of it contains a token.
type TokenCredentialAuthorizer struct {
	cred          azcore.TokenCredential
	scopes        []string // never modified
	scopeText     string
	refreshBefore time.Duration

	cur atomic.Pointer[bearerToken]

	mu        sync.Mutex
	inflight  *tokenFetch // the fetch under way, if any
	nextRetry time.Time   // no refresh of a valid token starts before this
}

// bearerToken is one cached token. It is never modified after it is
// published.
type bearerToken struct {
	header    string    // "Bearer " + token
	expiresOn time.Time // wall clock
	refreshAt time.Time // wall clock; before expiresOn
}

// tokenFetch is one call of the credential, shared by every caller that
// waits for it. tok and err are written before done is closed.
type tokenFetch struct {
	done chan struct{}
	tok  *bearerToken
	err  error
	// abandoned reports that the fetch failed because the context of the
	// caller that ran it ended; waiters with live contexts try again.
	abandoned bool
}

// Authorization returns "Bearer <token>". See [NewTokenCredentialAuthorizer]
// for the caching and refresh rules.
func (a *TokenCredentialAuthorizer) Authorization(ctx context.Context) (string, error) {
	if a.cred == nil {
		return "", fmt.Errorf("%w: a zero TokenCredentialAuthorizer; get one from NewTokenCredentialAuthorizer", ErrInvalidCredential)
	}
	now := time.Now()
	t := a.cur.Load()
	if t != nil && now.Before(t.refreshAt) {
		return t.header, nil
	}
	if t != nil && now.Before(t.expiresOn) {
		// In the refresh window: at most one caller refreshes, and only when
		// no recent refresh failed; everyone else keeps the cached token.
		if f := a.startRefresh(now); f != nil {
			a.run(ctx, f)
			if f.err == nil {
				return f.tok.header, nil
			}
		}
		// t, or a newer token another caller fetched meanwhile.
		return a.cur.Load().header, nil
	}
	return a.waitForToken(ctx)
}

// startRefresh claims a refresh of a still-valid token for the caller, or
// returns nil if one is under way or a failed one is backing off.
func (a *TokenCredentialAuthorizer) startRefresh(now time.Time) *tokenFetch {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inflight != nil || now.Before(a.nextRetry) {
		return nil
	}
	if t := a.cur.Load(); t != nil && now.Before(t.refreshAt) {
		return nil // another caller has just refreshed
	}
	a.inflight = &tokenFetch{done: make(chan struct{})}
	return a.inflight
}

// waitForToken is the path for callers without a valid cached token: it
// joins the fetch under way or starts one, then waits for it or for ctx.
func (a *TokenCredentialAuthorizer) waitForToken(ctx context.Context) (string, error) {
	for {
		a.mu.Lock()
		if t := a.cur.Load(); t != nil && time.Now().Before(t.expiresOn) {
			a.mu.Unlock()
			return t.header, nil
		}
		f := a.inflight
		owner := f == nil
		if owner {
			f = &tokenFetch{done: make(chan struct{})}
			a.inflight = f
		}
		a.mu.Unlock()

		if owner {
			a.run(ctx, f)
		} else {
			select {
			case <-f.done:
			case <-ctx.Done():
				return "", fmt.Errorf("auth: wait for Entra token for scope %s: %w", a.scopeText, context.Cause(ctx))
			}
		}
		if f.err == nil {
			return f.tok.header, nil
		}
		if f.abandoned && !owner && ctx.Err() == nil {
			continue // the caller running the fetch gave up; try again
		}
		return "", f.err
	}
}

// run calls the credential with the caller's ctx, publishes the outcome to
// f and to the cache, and releases the waiters.
func (a *TokenCredentialAuthorizer) run(ctx context.Context, f *tokenFetch) {
	tok, err := a.fetch(ctx)
	now := time.Now()

	a.mu.Lock()
	switch {
	case err == nil:
		a.cur.Store(tok)
		a.nextRetry = time.Time{}
	case ctx.Err() != nil:
		f.abandoned = true // not the credential's fault: no back-off
	default:
		a.nextRetry = now.Add(refreshRetryDelay)
	}
	f.tok, f.err = tok, err
	a.inflight = nil
	a.mu.Unlock()
	close(f.done)
}

// fetch gets and checks one token from the credential.
func (a *TokenCredentialAuthorizer) fetch(ctx context.Context) (*bearerToken, error) {
	at, err := a.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: a.scopes})
	if err != nil {
		return nil, fmt.Errorf("auth: get Entra token for scope %s: %w", a.scopeText, err)
	}
	now := time.Now()
	switch {
	case at.Token == "":
		return nil, fmt.Errorf("auth: get Entra token for scope %s: %w: the credential returned an empty token", a.scopeText, ErrInvalidCredential)
	case at.ExpiresOn.IsZero():
		return nil, fmt.Errorf("auth: get Entra token for scope %s: %w: the credential returned a token without an expiry time", a.scopeText, ErrInvalidCredential)
	case !now.Before(at.ExpiresOn):
		return nil, fmt.Errorf("auth: get Entra token for scope %s: %w: the credential returned a token that expired at %s",
			a.scopeText, ErrTokenExpired, at.ExpiresOn.UTC().Format(time.RFC3339))
	}
	expiresOn := at.ExpiresOn.Round(0)
	refreshAt := expiresOn.Add(-a.refreshBefore)
	if !at.RefreshOn.IsZero() && at.RefreshOn.Before(refreshAt) {
		refreshAt = at.RefreshOn.Round(0)
	}
	if !refreshAt.After(now) {
		// A token that is already in its refresh window would be refreshed
		// on every call; refresh it at half its remaining life instead.
		refreshAt = now.Add(expiresOn.Sub(now) / 2).Round(0)
	}
	return &bearerToken{header: "Bearer " + at.Token, expiresOn: expiresOn, refreshAt: refreshAt}, nil
}

// String describes the authorizer with its scopes and refresh margin.
func (a *TokenCredentialAuthorizer) String() string {
	return fmt.Sprintf("TokenCredentialAuthorizer(Scopes=%s;RefreshBefore=%v)", a.scopeText, a.refreshBefore)
}

// GoString is String's counterpart for %#v; the token is redacted.
func (a *TokenCredentialAuthorizer) GoString() string {
	return fmt.Sprintf("&auth.TokenCredentialAuthorizer{Scopes:%q, RefreshBefore:%v, Token:%s}", a.scopes, a.refreshBefore, redacted)
}

// Format implements [fmt.Formatter] so that no verb prints the token.
func (a *TokenCredentialAuthorizer) Format(f fmt.State, verb rune) {
	formatRedacted(f, verb, a.String(), a.GoString())
}

// LogValue implements [slog.LogValuer]; the token is never included.
func (a *TokenCredentialAuthorizer) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("Scopes", a.scopeText),
		slog.Duration("RefreshBefore", a.refreshBefore),
	)
}
