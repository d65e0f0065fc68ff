package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"strings"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/pipeline"
	"github.com/hubkit/iothub/internal/wire"
)

// MaxPageSize is the largest page size the SDK asks for.
const MaxPageSize = wire.MaxPageSize

// QueryOptions are the options of a query. A nil *QueryOptions gives the
// defaults.
type QueryOptions struct {
	// PageSize is the number of items asked for per page
	// (x-ms-max-item-count), 0 to MaxPageSize; 0 lets the hub choose (100).
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
	p *wire.Pager
}

// opQuery names queries in errors and logs.
const opQuery = "Query"

// NewQueryPager returns a pager over query, such as
// "SELECT * FROM devices WHERE tags.plant = '3'". It checks its arguments
// and does no I/O.
func (c *Client) NewQueryPager(query string, options *QueryOptions) (*QueryPager, error) {
	p, err := c.newPager(query, options)
	if err != nil {
		return nil, err
	}
	return &QueryPager{p: p}, nil
}

// newPager checks a query and its options and returns the wire pager
// that runs it.
func (c *Client) newPager(query string, options *QueryOptions) (*wire.Pager, error) {
	var opts QueryOptions
	if options != nil {
		opts = *options
	}
	query = strings.TrimSpace(query)
	if query == "" {
		return nil, &iothub.ArgumentError{Operation: opQuery, Field: "query", Rule: "must not be empty"}
	}
	if rule := wire.CheckPageSize(opts.PageSize); rule != "" {
		return nil, &iothub.ArgumentError{Operation: opQuery, Field: "QueryOptions.PageSize", Rule: rule}
	}
	body := struct {
		Query string `json:"query"`
	}{query}
	fetch := func(ctx context.Context, h http.Header) (int, http.Header, []byte, error) {
		resp, err := c.do(ctx, call{op: opQuery, method: http.MethodPost, path: "/devices/query", header: h, body: body, retry: pipeline.RetryIdempotent}, nil)
		if err != nil {
			return 0, nil, nil, err
		}
		return resp.StatusCode, resp.Header, resp.Body, nil
	}
	return wire.NewPager(fetch, opts.PageSize, opts.ContinuationToken), nil
}

// More reports whether another page may follow.
func (p *QueryPager) More() bool { return p.p.More() }

// ContinuationToken returns the token that resumes after the last page
// read, or the one the pager started from; empty once the query is done.
func (p *QueryPager) ContinuationToken() string { return p.p.ContinuationToken() }

// NextPage reads the next page. Once More is false it returns an empty page.
func (p *QueryPager) NextPage(ctx context.Context) (QueryPage, error) {
	if !p.p.More() {
		return QueryPage{}, nil
	}
	wp, err := p.p.Next(ctx)
	if err != nil {
		return QueryPage{}, err
	}
	page := QueryPage{ItemType: wp.ItemType, ContinuationToken: wp.ContinuationToken}
	if err := json.Unmarshal(wp.Body, &page.Items); err != nil {
		return QueryPage{}, decodeRowsError(wp, err)
	}
	return page, nil
}

// decodeRowsError reports a query page that does not decode.
func decodeRowsError(page wire.Page, err error) error {
	return &iothub.BodyError{Operation: opQuery, StatusCode: page.StatusCode, Err: fmt.Errorf("decode answer: %w", err)}
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
		p, err := c.newPager(query, &opts)
		if err != nil {
			var zero T
			yield(zero, err)
			return
		}
		wire.Items(ctx, p, decodeRowsError, yield)
	}
}
