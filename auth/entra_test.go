package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/google/go-cmp/cmp"
)

// fakeCred is a TokenCredential whose answers the test scripts. Each call
// returns token "tok-N" (N counting from 1) valid for life, unless fail is
// set or gate is non-nil, in which case the call waits for a value on gate
// (or for ctx to end) first.
type fakeCred struct {
	calls  atomic.Int32
	life   time.Duration
	refOn  time.Duration // RefreshOn offset from now, if non-zero
	mu     sync.Mutex
	fail   error
	gate   chan struct{}
	scopes [][]string
}

func (f *fakeCred) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	n := f.calls.Add(1)
	f.mu.Lock()
	gate, fail := f.gate, f.fail
	f.scopes = append(f.scopes, opts.Scopes)
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return azcore.AccessToken{}, ctx.Err()
		}
	}
	if fail != nil {
		return azcore.AccessToken{}, fail
	}
	now := time.Now()
	at := azcore.AccessToken{Token: fmt.Sprintf("tok-%d", n), ExpiresOn: now.Add(f.life)}
	if f.refOn != 0 {
		at.RefreshOn = now.Add(f.refOn)
	}
	return at, nil
}

func (f *fakeCred) set(gate chan struct{}, fail error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate, f.fail = gate, fail
}

var errBoom = errors.New("entra is down")

func mustAuthorize(t *testing.T, ctx context.Context, a Authorizer, want string) {
	t.Helper()
	got, err := a.Authorization(ctx)
	if err != nil {
		t.Fatalf("Authorization() error = %v", err)
	}
	if got != want {
		t.Fatalf("Authorization() = %q, want %q", got, want)
	}
}

func TestNewTokenCredentialAuthorizerErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cred azcore.TokenCredential
		opts *TokenCredentialOptions
		want string
	}{
		{"nil credential", nil, nil, "credential is nil"},
		{"negative refresh", &fakeCred{}, &TokenCredentialOptions{RefreshBefore: -time.Second}, "RefreshBefore -1s is negative"},
		{"empty scope", &fakeCred{}, &TokenCredentialOptions{Scopes: []string{ScopePublicCloud, ""}}, "scope is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := NewTokenCredentialAuthorizer(tt.cred, tt.opts)
			if !errors.Is(err, ErrInvalidCredential) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewTokenCredentialAuthorizer() = %v, %v; want ErrInvalidCredential containing %q", a, err, tt.want)
			}
		})
	}
}

func TestTokenCredentialScopes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts *TokenCredentialOptions
		want []string
	}{
		{"nil options", nil, []string{ScopePublicCloud}},
		{"empty scopes", &TokenCredentialOptions{Scopes: []string{}}, []string{ScopePublicCloud}},
		{"custom", &TokenCredentialOptions{Scopes: []string{ScopeUSGovernment}}, []string{ScopeUSGovernment}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cred := &fakeCred{life: time.Hour}
			a, err := NewTokenCredentialAuthorizer(cred, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if tt.opts != nil && len(tt.opts.Scopes) > 0 {
				tt.opts.Scopes[0] = "mutated after construction"
			}
			mustAuthorize(t, t.Context(), a, "Bearer tok-1")
			if diff := cmp.Diff([][]string{tt.want}, cred.scopes); diff != "" {
				t.Errorf("requested scopes mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScopeForHost(t *testing.T) {
	t.Parallel()
	tests := []struct{ host, want string }{
		{"myhub.azure-devices.net", ScopePublicCloud},
		{"MyHub.Azure-Devices.NET", ScopePublicCloud},
		{"myhub.azure-devices.us", ScopeUSGovernment},
		{"myhub.AZURE-DEVICES.US.", ScopeUSGovernment},
		{"myhub.azure-devices.us:443", ScopeUSGovernment},
		{"myhub.azure-devices.cn", ScopeChina},
		{"myhub.privatelink.azure-devices.net", ScopePublicCloud},
		{"myhub.azure-devices.de", ScopePublicCloud},
		{"azure-devices.us", ScopePublicCloud},
		{"localhost:8443", ScopePublicCloud},
		{"", ScopePublicCloud},
	}
	for _, tt := range tests {
		if got := ScopeForHost(tt.host); got != tt.want {
			t.Errorf("ScopeForHost(%q) = %q, want %q", tt.host, got, tt.want)
		}
	}
}

// TestTokenRefreshWindow: the token is cached until RefreshBefore before its
// expiry, then refreshed once.
func TestTokenRefreshWindow(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		cred := &fakeCred{life: time.Hour}
		a, err := NewTokenCredentialAuthorizer(cred, nil)
		if err != nil {
			t.Fatal(err)
		}
		mustAuthorize(t, ctx, a, "Bearer tok-1")
		time.Sleep(50*time.Minute - time.Nanosecond)
		mustAuthorize(t, ctx, a, "Bearer tok-1")
		if n := cred.calls.Load(); n != 1 {
			t.Fatalf("credential called %d times before the refresh window, want 1", n)
		}
		time.Sleep(time.Nanosecond)
		mustAuthorize(t, ctx, a, "Bearer tok-2")
		mustAuthorize(t, ctx, a, "Bearer tok-2")
		if n := cred.calls.Load(); n != 2 {
			t.Fatalf("credential called %d times, want 2", n)
		}
	})
}

func TestTokenRefreshBeforeOption(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		cred := &fakeCred{life: time.Hour}
		a, err := NewTokenCredentialAuthorizer(cred, &TokenCredentialOptions{RefreshBefore: 30 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		mustAuthorize(t, ctx, a, "Bearer tok-1")
		time.Sleep(29 * time.Minute)
		mustAuthorize(t, ctx, a, "Bearer tok-1")
		time.Sleep(time.Minute)
		mustAuthorize(t, ctx, a, "Bearer tok-2")
	})
}

func TestTokenRefreshOn(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		// RefreshOn (20 min) comes before expiry - RefreshBefore (50 min).
		cred := &fakeCred{life: time.Hour, refOn: 20 * time.Minute}
		a, err := NewTokenCredentialAuthorizer(cred, nil)
		if err != nil {
			t.Fatal(err)
		}
		mustAuthorize(t, ctx, a, "Bearer tok-1")
		time.Sleep(20*time.Minute - time.Second)
		mustAuthorize(t, ctx, a, "Bearer tok-1")
		time.Sleep(time.Second)
		mustAuthorize(t, ctx, a, "Bearer tok-2")

		// A RefreshOn later than expiry - RefreshBefore is ignored.
		cred2 := &fakeCred{life: time.Hour, refOn: 55 * time.Minute}
		a2, _ := NewTokenCredentialAuthorizer(cred2, nil)
		mustAuthorize(t, ctx, a2, "Bearer tok-1")
		time.Sleep(50 * time.Minute)
		mustAuthorize(t, ctx, a2, "Bearer tok-2")
	})
}

// TestTokenShortLived: a token that arrives already inside its refresh
// window is refreshed at half its remaining life, not on every call.
func TestTokenShortLived(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		cred := &fakeCred{life: 4 * time.Minute}
		a, err := NewTokenCredentialAuthorizer(cred, nil)
		if err != nil {
			t.Fatal(err)
		}
		mustAuthorize(t, ctx, a, "Bearer tok-1")
		mustAuthorize(t, ctx, a, "Bearer tok-1")
		time.Sleep(2*time.Minute - time.Second)
		mustAuthorize(t, ctx, a, "Bearer tok-1")
		time.Sleep(time.Second)
		mustAuthorize(t, ctx, a, "Bearer tok-2")
	})
}

// TestTokenRefreshSharedInWindow: while a valid token is in its refresh
// window, exactly one caller refreshes and the rest keep the cached token
// without waiting.
func TestTokenRefreshSharedInWindow(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		cred := &fakeCred{life: time.Hour}
		a, err := NewTokenCredentialAuthorizer(cred, nil)
		if err != nil {
			t.Fatal(err)
		}
		mustAuthorize(t, ctx, a, "Bearer tok-1")
		time.Sleep(55 * time.Minute)

		gate := make(chan struct{})
		cred.set(gate, nil)
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			results = map[string]int{}
		)
		for range 20 {
			wg.Go(func() {
				got, err := a.Authorization(ctx)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				results[got]++
				mu.Unlock()
			})
		}
		synctest.Wait() // the refresher is blocked in GetToken; the rest returned
		mu.Lock()
		if diff := cmp.Diff(map[string]int{"Bearer tok-1": 19}, results); diff != "" {
			t.Errorf("results while refreshing (-want +got):\n%s", diff)
		}
		mu.Unlock()
		if n := cred.calls.Load(); n != 2 {
			t.Errorf("credential called %d times, want 2", n)
		}
		close(gate)
		wg.Wait()
		if diff := cmp.Diff(map[string]int{"Bearer tok-1": 19, "Bearer tok-2": 1}, results); diff != "" {
			t.Errorf("final results (-want +got):\n%s", diff)
		}
		mustAuthorize(t, ctx, a, "Bearer tok-2")
	})
}

// TestTokenFetchSharedWhenNoToken: with no valid token, every caller waits
// for one shared fetch.
func TestTokenFetchSharedWhenNoToken(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		gate := make(chan struct{})
		cred := &fakeCred{life: time.Hour, gate: gate}
		a, err := NewTokenCredentialAuthorizer(cred, nil)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		got := make([]string, 20)
		for i := range got {
			wg.Go(func() {
				tok, err := a.Authorization(ctx)
				if err != nil {
					t.Error(err)
				}
				got[i] = tok
			})
		}
		synctest.Wait()
		if n := cred.calls.Load(); n != 1 {
			t.Fatalf("credential called %d times by 20 waiting callers, want 1", n)
		}
		close(gate)
		wg.Wait()
		for i, tok := range got {
			if tok != "Bearer tok-1" {
				t.Errorf("caller %d got %q, want Bearer tok-1", i, tok)
			}
		}

		// Again after expiry.
		gate = make(chan struct{})
		cred.set(gate, nil)
		time.Sleep(time.Hour)
		for i := range got {
			wg.Go(func() { got[i], _ = a.Authorization(ctx) })
		}
		synctest.Wait()
		close(gate)
		wg.Wait()
		if n := cred.calls.Load(); n != 2 {
			t.Fatalf("credential called %d times in total, want 2", n)
		}
		for i, tok := range got {
			if tok != "Bearer tok-2" {
				t.Errorf("caller %d got %q after expiry, want Bearer tok-2", i, tok)
			}
		}
	})
}

// TestTokenFetchSharedError: the waiters share the fetch's error; the next
// call tries again.
func TestTokenFetchSharedError(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		gate := make(chan struct{})
		cred := &fakeCred{life: time.Hour, gate: gate, fail: errBoom}
		a, err := NewTokenCredentialAuthorizer(cred, nil)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 5)
		for i := range errs {
			wg.Go(func() { _, errs[i] = a.Authorization(ctx) })
		}
		synctest.Wait()
		close(gate)
		wg.Wait()
		for _, err := range errs {
			if !errors.Is(err, errBoom) {
				t.Fatalf("Authorization() error = %v, want errBoom", err)
			}
			want := "auth: get Entra token for scope https://iothubs.azure.net/.default: entra is down"
			if err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
		}
		if n := cred.calls.Load(); n != 1 {
			t.Errorf("credential called %d times, want 1", n)
		}
		cred.set(nil, nil)
		mustAuthorize(t, ctx, a, "Bearer tok-2")
	})
}

// TestTokenRefreshFailureBackoff: a failed refresh of a still-valid token
// keeps the old token and is retried only after 30 s.
func TestTokenRefreshFailureBackoff(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		cred := &fakeCred{life: time.Hour}
		a, err := NewTokenCredentialAuthorizer(cred, nil)
		if err != nil {
			t.Fatal(err)
		}
		mustAuthorize(t, ctx, a, "Bearer tok-1")
		time.Sleep(51 * time.Minute)
		cred.set(nil, errBoom)
		for range 5 {
			mustAuthorize(t, ctx, a, "Bearer tok-1")
		}
		if n := cred.calls.Load(); n != 2 {
			t.Fatalf("credential called %d times, want 2 (one failed refresh)", n)
		}
		time.Sleep(30*time.Second - time.Nanosecond)
		mustAuthorize(t, ctx, a, "Bearer tok-1")
		if n := cred.calls.Load(); n != 2 {
			t.Fatalf("refresh retried after %d calls within the back-off", n)
		}
		time.Sleep(time.Nanosecond)
		mustAuthorize(t, ctx, a, "Bearer tok-1")
		if n := cred.calls.Load(); n != 3 {
			t.Fatalf("credential called %d times, want 3 (retry after back-off)", n)
		}
		cred.set(nil, nil)
		time.Sleep(30 * time.Second)
		mustAuthorize(t, ctx, a, "Bearer tok-4")

		// Once the old token has expired, the error surfaces.
		cred.set(nil, errBoom)
		time.Sleep(time.Hour)
		if _, err := a.Authorization(ctx); !errors.Is(err, errBoom) {
			t.Fatalf("Authorization() after expiry error = %v, want errBoom", err)
		}
	})
}

// TestTokenWaiterContext: a waiting caller gives up when its own context
// ends, without disturbing the fetch or the other callers.
func TestTokenWaiterContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		cred := &fakeCred{life: time.Hour, gate: gate}
		a, err := NewTokenCredentialAuthorizer(cred, nil)
		if err != nil {
			t.Fatal(err)
		}
		var (
			wg       sync.WaitGroup
			ownerTok string
		)
		wg.Go(func() { ownerTok, _ = a.Authorization(t.Context()) })
		synctest.Wait() // the owner is inside GetToken

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err = a.Authorization(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Authorization() error = %v, want context.DeadlineExceeded", err)
		}
		if !strings.Contains(err.Error(), "wait for Entra token") {
			t.Errorf("error %q does not say what it waited for", err)
		}
		close(gate)
		wg.Wait()
		if ownerTok != "Bearer tok-1" || cred.calls.Load() != 1 {
			t.Errorf("owner got %q after %d calls, want Bearer tok-1 after 1", ownerTok, cred.calls.Load())
		}
	})
}

// TestTokenOwnerContext: when the caller running the fetch gives up, a
// waiter with a live context runs a new fetch instead of failing.
func TestTokenOwnerContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		cred := &fakeCred{life: time.Hour, gate: gate}
		a, err := NewTokenCredentialAuthorizer(cred, nil)
		if err != nil {
			t.Fatal(err)
		}
		ownerCtx, cancelOwner := context.WithCancel(t.Context())
		var (
			wg                 sync.WaitGroup
			ownerErr, waiterEr error
			waiterTok          string
		)
		wg.Go(func() { _, ownerErr = a.Authorization(ownerCtx) })
		synctest.Wait()
		wg.Go(func() { waiterTok, waiterEr = a.Authorization(t.Context()) })
		synctest.Wait()

		cancelOwner()
		synctest.Wait() // the waiter has started its own fetch
		if n := cred.calls.Load(); n != 2 {
			t.Fatalf("credential called %d times, want 2", n)
		}
		close(gate)
		wg.Wait()
		if !errors.Is(ownerErr, context.Canceled) {
			t.Errorf("owner error = %v, want context.Canceled", ownerErr)
		}
		if waiterEr != nil || waiterTok != "Bearer tok-2" {
			t.Errorf("waiter got %q, %v; want Bearer tok-2", waiterTok, waiterEr)
		}
		// A cancelled fetch does not start a back-off.
		mustAuthorize(t, t.Context(), a, "Bearer tok-2")
	})
}

func TestTokenCredentialBadTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		tok      azcore.AccessToken
		sentinel error
		want     string
	}{
		{"empty token", azcore.AccessToken{ExpiresOn: time.Now().Add(time.Hour)}, ErrInvalidCredential, "empty token"},
		{"expired token", azcore.AccessToken{Token: testBearer, ExpiresOn: time.Unix(1700000000, 0)}, ErrTokenExpired, "expired at 2023-11-14T22:13:20Z"},
		{"no expiry", azcore.AccessToken{Token: testBearer}, ErrInvalidCredential, "without an expiry time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := NewTokenCredentialAuthorizer(credFunc(func() (azcore.AccessToken, error) { return tt.tok, nil }), nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = a.Authorization(t.Context())
			if !errors.Is(err, tt.sentinel) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Authorization() error = %v, want %v containing %q", err, tt.sentinel, tt.want)
			}
			assertNoSecrets(t, err.Error())
		})
	}
}

type credFunc func() (azcore.AccessToken, error)

func (f credFunc) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return f()
}

func TestTokenAuthorizationAllocs(t *testing.T) {
	a, err := NewTokenCredentialAuthorizer(staticCred{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	mustAuthorize(t, ctx, a, "Bearer "+testBearer)
	if n := testing.AllocsPerRun(100, func() { _, _ = a.Authorization(ctx) }); n != 0 {
		t.Errorf("Authorization() allocates %v times per cached call, want 0", n)
	}
}

func BenchmarkTokenCredentialAuthorization(b *testing.B) {
	a, err := NewTokenCredentialAuthorizer(staticCred{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authorization(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
