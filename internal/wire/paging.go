package wire

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// MaxPageSize is the largest page size a query may ask for
// (x-ms-max-item-count).
const MaxPageSize = 1000

// CheckPageSize returns the rule a page size breaks, or "" when it is valid:
// 0 (the hub chooses) to MaxPageSize.
func CheckPageSize(n int) string {
	if n < 0 || n > MaxPageSize {
		return fmt.Sprintf("must be within [0, %d] (0 lets the hub choose); got %d", MaxPageSize, n)
	}
	return ""
}

// Page is one page of a paged answer: the body (a JSON array on the wire)
// and the continuation token that resumes after it, empty on the last page.
type Page struct {
	Body              []byte
	StatusCode        int
	ItemType          string // x-ms-item-type
	ContinuationToken string // x-ms-continuation
}

// FetchPage sends one page request with the paging headers h and returns
// the answer's status, headers and body.
type FetchPage func(ctx context.Context, h http.Header) (status int, header http.Header, body []byte, err error)

// Pager walks a paged IoT Hub answer: it sends x-ms-max-item-count and
// x-ms-continuation and follows the continuation token until the hub
// sends none. It does no I/O until Next and is not safe for concurrent use.
type Pager struct {
	fetch FetchPage
	size  int
	token string
	done  bool
}

// NewPager returns a pager that asks for pages of size items (0: the hub
// chooses) starting at token (empty: the start). It checks nothing: callers
// check the size with CheckPageSize first.
func NewPager(fetch FetchPage, size int, token string) *Pager {
	return &Pager{fetch: fetch, size: size, token: token}
}

// More reports whether another page may follow.
func (p *Pager) More() bool { return !p.done }

// ContinuationToken returns the token that resumes after the last page
// read, or the one the pager started from; empty once the answer is done.
func (p *Pager) ContinuationToken() string { return p.token }

// Next reads the next page. Once More is false it returns an empty page.
func (p *Pager) Next(ctx context.Context) (Page, error) {
	if p.done {
		return Page{}, nil
	}
	h := make(http.Header, 2)
	if p.size > 0 {
		h["X-Ms-Max-Item-Count"] = []string{strconv.Itoa(p.size)}
	}
	if p.token != "" {
		h["X-Ms-Continuation"] = []string{p.token}
	}
	status, rh, body, err := p.fetch(ctx, h)
	if err != nil {
		return Page{}, err
	}
	page := Page{Body: body, StatusCode: status, ItemType: rh.Get("x-ms-item-type"), ContinuationToken: rh.Get("x-ms-continuation")}
	p.token = page.ContinuationToken
	p.done = p.token == ""
	return page, nil
}

// Items reads every page of p and yields its items decoded as T, stopping
// when yield returns false. An error is yielded once, and ends the
// sequence; decodeErr turns a page that does not decode into the error to
// yield.
//
// A page is split into its rows first and each row decoded as it is
// yielded, so that one decoded item at a time is live, not a page of them
// (a page of twins decodes to several times its size).
func Items[T any](ctx context.Context, p *Pager, decodeErr func(page Page, err error) error, yield func(T, error) bool) {
	var zero T
	for p.More() {
		page, err := p.Next(ctx)
		if err != nil {
			yield(zero, err)
			return
		}
		var rows []json.RawMessage
		if err := json.Unmarshal(page.Body, &rows); err != nil {
			yield(zero, decodeErr(page, err))
			return
		}
		page.Body = nil // the rows hold copies
		for i, raw := range rows {
			rows[i] = nil // free each row once decoded
			var item T
			if err := json.Unmarshal(raw, &item); err != nil {
				yield(zero, decodeErr(page, err))
				return
			}
			if !yield(item, nil) {
				return
			}
		}
	}
}
