package wire

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCheckPageSize(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 100, MaxPageSize} {
		if rule := CheckPageSize(n); rule != "" {
			t.Errorf("CheckPageSize(%d) = %q, want valid", n, rule)
		}
	}
	for _, n := range []int{-1, MaxPageSize + 1} {
		if rule := CheckPageSize(n); rule == "" {
			t.Errorf("CheckPageSize(%d) is valid, want a rule", n)
		}
	}
}

// fakePages answers page i with pages[i] and a continuation token to the
// next, none after the last; it records the paging headers it was sent.
type fakePages struct {
	pages []string
	sent  []http.Header
	fail  error // returned instead of the page after the last
}

func (f *fakePages) fetch(_ context.Context, h http.Header) (int, http.Header, []byte, error) {
	i := len(f.sent)
	f.sent = append(f.sent, h)
	if i >= len(f.pages) {
		return 0, nil, nil, f.fail
	}
	rh := http.Header{"X-Ms-Item-Type": {"twin"}}
	if i+1 < len(f.pages) || f.fail != nil {
		rh.Set("x-ms-continuation", fmt.Sprintf("tok%d", i+1))
	}
	return http.StatusOK, rh, []byte(f.pages[i]), nil
}

func TestPagerFollowsTokens(t *testing.T) {
	t.Parallel()
	f := &fakePages{pages: []string{`[1,2]`, `[3]`, `[]`}}
	p := NewPager(f.fetch, 2, "start")
	var bodies []string
	for p.More() {
		page, err := p.Next(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if page.ItemType != "twin" || page.StatusCode != http.StatusOK {
			t.Errorf("page %+v", page)
		}
		bodies = append(bodies, string(page.Body))
	}
	if diff := cmp.Diff([]string{`[1,2]`, `[3]`, `[]`}, bodies); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
	want := []http.Header{
		{"X-Ms-Max-Item-Count": {"2"}, "X-Ms-Continuation": {"start"}},
		{"X-Ms-Max-Item-Count": {"2"}, "X-Ms-Continuation": {"tok1"}},
		{"X-Ms-Max-Item-Count": {"2"}, "X-Ms-Continuation": {"tok2"}},
	}
	if diff := cmp.Diff(want, f.sent); diff != "" {
		t.Errorf("paging headers (-want +got):\n%s", diff)
	}
	if p.ContinuationToken() != "" {
		t.Errorf("token after the last page = %q", p.ContinuationToken())
	}
	if page, err := p.Next(t.Context()); err != nil || page.Body != nil || len(f.sent) != 3 {
		t.Errorf("Next after the end = %+v, %v after %d requests; want an empty page and no request", page, err, len(f.sent))
	}
}

func TestPagerDefaultSizeSendsNoHeaders(t *testing.T) {
	t.Parallel()
	f := &fakePages{pages: []string{`[]`}}
	if _, err := NewPager(f.fetch, 0, "").Next(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(f.sent) != 1 || len(f.sent[0]) != 0 {
		t.Errorf("headers %v, want none", f.sent)
	}
}

func TestItems(t *testing.T) {
	t.Parallel()
	lost := errors.New("lost")
	decodeErr := func(page Page, err error) error { return fmt.Errorf("decode %d: %w", page.StatusCode, err) }
	tests := []struct {
		name    string
		f       *fakePages
		stopAt  int // stop after this item; 0 reads all
		want    []int
		wantErr string
		wantReq int
	}{
		{"all pages", &fakePages{pages: []string{`[1,2]`, `[3]`}}, 0, []int{1, 2, 3}, "", 2},
		{"stop early reads no further page", &fakePages{pages: []string{`[1,2]`, `[3]`}}, 2, []int{1, 2}, "", 1},
		{"fetch error once", &fakePages{pages: []string{`[1]`}, fail: lost}, 0, []int{1}, "lost", 2},
		{"bad page", &fakePages{pages: []string{`[1]`, `<html>`}}, 0, []int{1}, "decode 200", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []int
			var errs []error
			Items(t.Context(), NewPager(tt.f.fetch, 0, ""), decodeErr, func(n int, err error) bool {
				if err != nil {
					errs = append(errs, err)
					return true
				}
				got = append(got, n)
				return n != tt.stopAt
			})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("items (-want +got):\n%s", diff)
			}
			switch {
			case tt.wantErr == "" && len(errs) != 0:
				t.Errorf("errors %v, want none", errs)
			case tt.wantErr != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.wantErr)):
				t.Errorf("errors %v, want one saying %q", errs, tt.wantErr)
			}
			if len(tt.f.sent) != tt.wantReq {
				t.Errorf("%d requests, want %d", len(tt.f.sent), tt.wantReq)
			}
		})
	}
}
