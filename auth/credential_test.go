package auth

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	testKey2 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	testHost = "myhub.azure-devices.net"
)

func TestNewSharedAccessKeyCredential(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		policy  string
		key     string
		opts    *SharedAccessKeyCredentialOptions
		wantTTL time.Duration
		wantErr string
	}{
		{name: "nil options", policy: "service", key: testKey, wantTTL: time.Hour},
		{name: "zero options", policy: "service", key: testKey, opts: &SharedAccessKeyCredentialOptions{}, wantTTL: time.Hour},
		{name: "minimum TTL", policy: "service", key: testKey, opts: &SharedAccessKeyCredentialOptions{TTL: time.Minute}, wantTTL: time.Minute},
		{name: "maximum TTL", policy: "service", key: testKey, opts: &SharedAccessKeyCredentialOptions{TTL: 365 * 24 * time.Hour}, wantTTL: 365 * 24 * time.Hour},
		{name: "TTL too short", policy: "service", key: testKey, opts: &SharedAccessKeyCredentialOptions{TTL: 59 * time.Second}, wantErr: "outside the allowed range"},
		{name: "TTL too long", policy: "service", key: testKey, opts: &SharedAccessKeyCredentialOptions{TTL: 366 * 24 * time.Hour}, wantErr: "outside the allowed range"},
		{name: "negative TTL", policy: "service", key: testKey, opts: &SharedAccessKeyCredentialOptions{TTL: -time.Hour}, wantErr: "outside the allowed range"},
		{name: "empty policy", key: testKey, wantErr: "policy name is empty"},
		{name: "policy with space", policy: "my policy", key: testKey, wantErr: "policy name may contain only"},
		{name: "empty key", policy: "service", wantErr: "key is empty"},
		{name: "key not base64", policy: "service", key: "abc", wantErr: "not valid standard (padded) base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := NewSharedAccessKeyCredential(tt.policy, tt.key, tt.opts)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalidCredential) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewSharedAccessKeyCredential() error = %v, want ErrInvalidCredential containing %q", err, tt.wantErr)
				}
				assertNoSecrets(t, err.Error())
				return
			}
			if err != nil {
				t.Fatalf("NewSharedAccessKeyCredential() error = %v", err)
			}
			if c.TTL() != tt.wantTTL || c.PolicyName() != tt.policy {
				t.Errorf("TTL() = %v, PolicyName() = %q; want %v, %q", c.TTL(), c.PolicyName(), tt.wantTTL, tt.policy)
			}
		})
	}
}

// TestSASRenewal walks a token through its life: it is reused while more
// than TTL/2 remains and re-minted after, and every token served has at
// least TTL/2 left.
func TestSASRenewal(t *testing.T) {
	t.Parallel()
	for _, ttl := range []time.Duration{time.Minute, time.Hour, 90*time.Minute + 500*time.Millisecond} {
		t.Run(ttl.String(), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				cred, err := NewSharedAccessKeyCredential("service", testKey, &SharedAccessKeyCredentialOptions{TTL: ttl})
				if err != nil {
					t.Fatal(err)
				}
				a := cred.Authorizer(testHost)
				first, err := a.Authorization(ctx)
				if err != nil {
					t.Fatal(err)
				}
				firstExpiry := verifyToken(t, first, testHost, "service", testKey)
				if got, want := firstExpiry, time.Now().Add(ttl).Truncate(time.Second); !got.Equal(want) {
					t.Errorf("first token expires at %v, want %v", got, want)
				}

				// Step through two TTLs in small increments.
				step := ttl / 40
				var tokens []string
				for range 80 {
					time.Sleep(step)
					tok, err := a.Authorization(ctx)
					if err != nil {
						t.Fatal(err)
					}
					exp := verifyToken(t, tok, testHost, "service", testKey)
					if left := time.Until(exp); left < ttl/2 {
						t.Fatalf("served a token with %v left, less than TTL/2 = %v", left, ttl/2)
					}
					if len(tokens) == 0 || tokens[len(tokens)-1] != tok {
						tokens = append(tokens, tok)
					}
				}
				// 2 TTLs at one renewal per TTL/2, starting from the first token.
				if len(tokens) < 4 || len(tokens) > 5 {
					t.Errorf("saw %d distinct tokens over 2 TTLs, want 4 or 5", len(tokens))
				}
				if got := a.mints.Load(); got != uint64(len(tokens)) && got != uint64(len(tokens)+1) {
					t.Errorf("minted %d tokens, saw %d distinct ones", got, len(tokens))
				}
			})
		})
	}
}

func TestSASRenewalBoundary(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		cred, err := NewSharedAccessKeyCredential("service", testKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		a := cred.Authorizer(testHost)
		first, _ := a.Authorization(ctx)

		time.Sleep(30*time.Minute - time.Nanosecond)
		if got, _ := a.Authorization(ctx); got != first {
			t.Error("token renewed before half its lifetime passed")
		}
		time.Sleep(time.Nanosecond)
		second, _ := a.Authorization(ctx)
		if second == first {
			t.Fatal("token not renewed once half its lifetime passed")
		}
		if got, want := verifyToken(t, second, testHost, "service", testKey), time.Now().Add(time.Hour); !got.Equal(want) {
			t.Errorf("renewed token expires at %v, want %v", got, want)
		}
	})
}

func TestSASRotation(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		cred, err := NewSharedAccessKeyCredential("service", testKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		a1 := cred.Authorizer(testHost)
		a2 := cred.Authorizer("other.azure-devices.net")
		old1, _ := a1.Authorization(ctx)
		old2, _ := a2.Authorization(ctx)

		time.Sleep(time.Minute)
		if err := cred.Update("iothubowner", testKey2); err != nil {
			t.Fatalf("Update() error = %v", err)
		}
		if got := cred.PolicyName(); got != "iothubowner" {
			t.Errorf("PolicyName() = %q after Update, want iothubowner", got)
		}
		new1, _ := a1.Authorization(ctx)
		new2, _ := a2.Authorization(ctx)
		if new1 == old1 || new2 == old2 {
			t.Fatal("Authorizers kept their old tokens after Update")
		}
		verifyToken(t, new1, testHost, "iothubowner", testKey2)
		verifyToken(t, new2, "other.azure-devices.net", "iothubowner", testKey2)

		// A rejected update keeps the current key and the cached token.
		for _, bad := range []struct{ policy, key string }{{"", testKey}, {"service", "%%%"}, {"service", ""}} {
			if err := cred.Update(bad.policy, bad.key); !errors.Is(err, ErrInvalidCredential) {
				t.Errorf("Update(%q, ...) error = %v, want ErrInvalidCredential", bad.policy, err)
			}
		}
		if got, _ := a1.Authorization(ctx); got != new1 {
			t.Error("a rejected Update changed the token")
		}
		if got := cred.PolicyName(); got != "iothubowner" {
			t.Errorf("PolicyName() = %q after a rejected Update, want iothubowner", got)
		}

		// Authorizers created after an update use the new key too.
		tok, _ := cred.Authorizer(testHost).Authorization(ctx)
		verifyToken(t, tok, testHost, "iothubowner", testKey2)
	})
}

// TestSASConcurrentRenewal checks that callers arriving together at renewal
// time share one mint.
func TestSASConcurrentRenewal(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		cred, err := NewSharedAccessKeyCredential("service", testKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		a := cred.Authorizer(testHost)
		for round := range 3 {
			var (
				wg    sync.WaitGroup
				start = make(chan struct{})
				got   = make([]string, 32)
			)
			for i := range got {
				wg.Go(func() {
					<-start
					tok, err := a.Authorization(ctx)
					if err != nil {
						t.Error(err)
					}
					got[i] = tok
				})
			}
			synctest.Wait()
			close(start)
			wg.Wait()
			if n := a.mints.Load(); n != uint64(round+1) {
				t.Fatalf("round %d: %d mints in total, want %d", round, n, round+1)
			}
			for _, tok := range got[1:] {
				if tok != got[0] {
					t.Fatal("concurrent callers got different tokens")
				}
			}
			time.Sleep(31 * time.Minute) // into the renewal window
		}
	})
}

func TestSASAuthorizerEmptyHost(t *testing.T) {
	t.Parallel()
	cred, err := NewSharedAccessKeyCredential("service", testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cred.Authorizer("").Authorization(t.Context())
	if !errors.Is(err, ErrInvalidCredential) {
		t.Errorf("Authorization() error = %v, want ErrInvalidCredential", err)
	}
}

func TestSASAuthorizationAllocs(t *testing.T) {
	cred, err := NewSharedAccessKeyCredential("service", testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := cred.Authorizer(testHost)
	ctx := t.Context()
	if _, err := a.Authorization(ctx); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = a.Authorization(ctx) }); n != 0 {
		t.Errorf("Authorization() allocates %v times per cached call, want 0", n)
	}
}

func BenchmarkSASAuthorization(b *testing.B) {
	cred, err := NewSharedAccessKeyCredential("service", testKey, nil)
	if err != nil {
		b.Fatal(err)
	}
	a := cred.Authorizer(testHost)
	ctx := b.Context()
	if _, err := a.Authorization(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authorization(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSASAuthorizationParallel(b *testing.B) {
	cred, err := NewSharedAccessKeyCredential("service", testKey, nil)
	if err != nil {
		b.Fatal(err)
	}
	a := cred.Authorizer(testHost)
	ctx := b.Context()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.Authorization(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestStaticSASAuthorizer(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		expiry := time.Now().Add(time.Hour)
		token, err := NewSASToken(testHost, "service", testKey, expiry)
		if err != nil {
			t.Fatal(err)
		}
		a, err := NewStaticSASAuthorizer(token)
		if err != nil {
			t.Fatalf("NewStaticSASAuthorizer() error = %v", err)
		}
		for range 3 {
			got, err := a.Authorization(ctx)
			if err != nil {
				t.Fatalf("Authorization() error = %v", err)
			}
			if diff := cmp.Diff(token, got); diff != "" {
				t.Fatalf("Authorization() changed the token (-want +got):\n%s", diff)
			}
			time.Sleep(20*time.Minute - time.Second)
		}
		time.Sleep(3 * time.Second) // now past se
		got, err := a.Authorization(ctx)
		if !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("Authorization() = %q, %v after expiry; want ErrTokenExpired", got, err)
		}
		for _, want := range []string{"supplied shared access signature expired at 2000-01-01T01:00:00Z", "must be replaced"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		}
		if strings.Contains(err.Error(), tokenFields(t, token)["sig"]) {
			t.Errorf("error %q contains the signature", err)
		}
	})
}
