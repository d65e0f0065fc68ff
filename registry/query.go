package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"strconv"
	"strings"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/pipeline"
)

// MaxPageSize is the largest page size the SDK asks for.
const MaxPageSize = 1000

// QueryOptions are the options of a query. A nil *QueryOptions gives the
// defaults.
type QueryOptions struct {
	// PageSize is the number of items asked for per page
	// (x-ms-max-item-count), 1 to MaxPageSize; 0 lets the hub choose (100).
	// The hub may return fewer.
	PageSize int
	// ContinuationToken resumes a query where a QueryPager stopped.
	ContinuationToken string
}

// QueryPage is one page of a query's results.
type QueryPage struct {
	// Items are the rows, as JSON.
	Items []json.RawMessage
	// ItemType is the hub's x-ms-item-type: "twin" for SELECT * over
	// devices or devices.modules, "raw" for projections and aggregates,
	// "deviceJob" or "jobResponse" for jobs.
	ItemType string
	// ContinuationToken resumes after this page; empty on the last page.
	ContinuationToken string
}

// QueryPager reads a query page by page and exposes the continuation token,
// so that a long scan can stop and resume later, even in another process.
// It does no I/O until NextPage. It is not safe for concurrent use.
type QueryPager struct {
	c     *Client
	query string
	size  int
	token string
	done  bool
}

// NewQueryPager returns a pager over query, such as
// "SELECT * FROM devices WHERE tags.plant = '3'". It checks its arguments
// and does no I/O.
func (c *Client) NewQueryPager(query string, options *QueryOptions) (*QueryPager, error) {
	p := &QueryPager{c: c, query: strings.TrimSpace(query)}
	if options != nil {
		p.size, p.token = options.PageSize, options.ContinuationToken
	}
	if p.query == "" {
		return nil, &iothub.ArgumentError{Operation: "Query", Field: "query", Rule: "must not be empty"}
	}
	if p.size < 0 || p.size > MaxPageSize {
		return nil, &iothub.ArgumentError{Operation: "Query", Field: "QueryOptions.PageSize", Rule: fmt.Sprintf("must be within [0, %d]; got %d", MaxPageSize, p.size)}
	}
	return p, nil
}

// More reports whether another page may follow.
func (p *QueryPager) More() bool { return !p.done }

// ContinuationToken returns the token that resumes after the last page
// read, or the one the pager started from; empty once the query is done.
func (p *QueryPager) ContinuationToken() string { return p.token }

// NextPage reads the next page. Once More is false it returns an empty page.
func (p *QueryPager) NextPage(ctx context.Context) (QueryPage, error) {
	var page QueryPage
	if p.done {
		return page, nil
	}
	h := http.Header{}
	if p.size > 0 {
		h.Set("x-ms-max-item-count", strconv.Itoa(p.size))
	}
	if p.token != "" {
		h.Set("x-ms-continuation", p.token)
	}
	resp, err := p.c.do(ctx, call{
		op: "Query", method: http.MethodPost, path: "/devices/query", header: h,
		body: struct {
			Query string `json:"query"`
		}{p.query},
		retry: pipeline.RetryIdempotent,
	}, &page.Items)
	if err != nil {
		return QueryPage{}, err
	}
	page.ItemType = resp.Header.Get("x-ms-item-type")
	page.ContinuationToken = resp.Header.Get("x-ms-continuation")
	p.token = page.ContinuationToken
	p.done = p.token == ""
	return page, nil
}

// QueryTwins runs a SELECT * query over devices or devices.modules and
// yields each twin as its page arrives; nothing is read until the loop
// starts, and the sequence can be ranged again to rerun the query. An error
// is yielded once, and ends the sequence.
//
//	for twin, err := range client.QueryTwins(ctx, "SELECT * FROM devices WHERE tags.plant = '3'", nil) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(twin.DeviceID)
//	}
func (c *Client) QueryTwins(ctx context.Context, query string, options *QueryOptions) iter.Seq2[Twin, error] {
	return queryItems[Twin](ctx, c, query, options)
}

// QueryRaw runs any query, including projections ("SELECT deviceId,
// tags.plant FROM devices") and aggregates ("SELECT COUNT() AS n FROM
// devices"), and yields each row as JSON; see QueryTwins.
func (c *Client) QueryRaw(ctx context.Context, query string, options *QueryOptions) iter.Seq2[json.RawMessage, error] {
	return queryItems[json.RawMessage](ctx, c, query, options)
}

func queryItems[T any](ctx context.Context, c *Client, query string, options *QueryOptions) iter.Seq2[T, error] {
	var opts QueryOptions
	if options != nil {
		opts = *options
	}
	return func(yield func(T, error) bool) {
		var zero T
		p, err := c.NewQueryPager(query, &opts)
		if err != nil {
			yield(zero, err)
			return
		}
		for p.More() {
			page, err := p.NextPage(ctx)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, raw := range page.Items {
				var item T
				if err := json.Unmarshal(raw, &item); err != nil {
					yield(zero, &iothub.BodyError{Operation: "Query", StatusCode: http.StatusOK, Err: fmt.Errorf("decode query row: %w", err)})
					return
				}
				if !yield(item, nil) {
					return
				}
			}
		}
	}
}
