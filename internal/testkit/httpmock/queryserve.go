package httpmock

import (
	"encoding/base64"
	"encoding/json"
	"hash/fnv"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hubkit/iothub"
)

// Query paging limits.
const (
	// DefaultQueryPageSize is the page size of a query without
	// x-ms-max-item-count.
	DefaultQueryPageSize = 100
	// MaxQueryPageSize is the largest x-ms-max-item-count accepted.
	MaxQueryPageSize = 1000
)

// cursor is what a continuation token carries: the key of the last twin
// returned, how many were returned so far (for TOP) and a hash of the
// query it belongs to.
type cursor struct {
	Device string `json:"d"`
	Module string `json:"m,omitempty"`
	Count  int    `json:"n"`
	Hash   uint64 `json:"h"`
}

func queryHash(q string) uint64 {
	f := fnv.New64a()
	f.Write([]byte(q))
	return f.Sum64()
}

func (c cursor) token() string {
	return base64.RawURLEncoding.EncodeToString(marshal(c))
}

// parseCursor decodes and checks a continuation token.
func parseCursor(tok, q string) (cursor, bool) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || json.Unmarshal(b, &c) != nil || c.Hash != queryHash(q) || c.Count < 0 || c.Device == "" {
		return cursor{}, false
	}
	return c, true
}

// queryDevices serves POST /devices/query.
func (h *Hub) queryDevices(w http.ResponseWriter, r *http.Request, rq *routed) {
	if e := h.throttle.query(); e != nil {
		e.write(w, rq.now)
		return
	}
	if e := checkJSONContentType(r, rq.body); e != nil {
		e.write(w, rq.now)
		return
	}
	var fields map[string]json.RawMessage
	if e := decodeObject(rq.body, &fields); e != nil {
		e.write(w, rq.now)
		return
	}
	var text string
	if raw, ok := lookup(fields, "query"); !ok || isNull(raw) {
		newError(iothub.ErrorCodeArgumentNull, "The query cannot be null or empty.").write(w, rq.now)
		return
	} else if json.Unmarshal(raw, &text) != nil {
		invalid("The query must be a string.").write(w, rq.now)
		return
	}
	pageSize := DefaultQueryPageSize
	if v := r.Header.Values("x-ms-max-item-count"); len(v) > 0 {
		n, err := strconv.Atoi(strings.TrimSpace(v[0]))
		if err != nil || len(v) > 1 || n < 1 || n > MaxQueryPageSize {
			invalid("x-ms-max-item-count must be an integer within [1; %d].", MaxQueryPageSize).write(w, rq.now)
			return
		}
		pageSize = n
	}
	q, err := parseQuery(text)
	if err != nil {
		invalid("Invalid query: %v.", err).write(w, rq.now)
		return
	}
	var cur *cursor
	if tok := r.Header.Get("x-ms-continuation"); tok != "" {
		c, ok := parseCursor(tok, text)
		if !ok {
			invalid("The continuation token is not valid for this query.").write(w, rq.now)
			return
		}
		cur = &c
	}

	itemType := "raw"
	if q.star {
		itemType = "twin"
	}
	h.mu.Lock()
	var items []any
	var next *cursor
	if q.aggregate() {
		items = h.aggregate(q)
	} else {
		items, next = h.page(q, cur, pageSize, queryHash(text))
	}
	body := marshal(items)
	h.mu.Unlock()
	w.Header().Set("x-ms-item-type", itemType)
	if next != nil {
		w.Header().Set("x-ms-continuation", next.token())
	}
	writeJSON(w, http.StatusOK, body)
}

// eachTwin calls fn for every twin of the collection after the cursor, in
// order of device id then module id, until fn returns false. The caller
// holds h.mu.
func (h *Hub) eachTwin(from collection, after *cursor, fn func(d *Device, m *Module) bool) {
	ids := h.sortedDeviceIDs()
	start := 0
	if after != nil {
		start = sort.SearchStrings(ids, after.Device)
	}
	for _, id := range ids[start:] {
		d := h.devices[id]
		resume := after != nil && id == after.Device
		if from == collDevices {
			if resume {
				continue
			}
			if !fn(d, nil) {
				return
			}
			continue
		}
		for _, mid := range sortedKeys(d.modules) {
			if resume && mid <= after.Module {
				continue
			}
			if !fn(d, d.modules[mid]) {
				return
			}
		}
	}
}

// page returns one page of a listing query and the cursor of the next
// page, nil when there is none. The caller holds h.mu.
func (h *Hub) page(q *query, after *cursor, pageSize int, hash uint64) ([]any, *cursor) {
	items := []any{}
	done := 0
	if after != nil {
		done = after.Count
	}
	limit := pageSize
	if q.top >= 0 {
		limit = min(limit, q.top-done)
	}
	if limit <= 0 {
		return items, nil
	}
	var last cursor
	more := false
	h.eachTwin(q.from, after, func(d *Device, m *Module) bool {
		tw := twinWire(d, m)
		if q.where != nil && !q.where.eval(tw).truthy() {
			return true
		}
		if len(items) == limit {
			more = true
			return false
		}
		items = append(items, project(q, tw))
		last = cursor{Device: d.id, Count: done + len(items), Hash: hash}
		if m != nil {
			last.Module = m.id
		}
		return true
	})
	if !more || q.top >= 0 && last.Count >= q.top {
		return items, nil
	}
	return items, &last
}

// project applies the SELECT list to a twin.
func project(q *query, tw map[string]any) any {
	if q.star {
		return tw
	}
	out := make(map[string]any, len(q.items))
	for _, it := range q.items {
		if v := lookupPath(tw, it.path); v.defined {
			out[itemName(it)] = rawValue(tw, it.path)
		}
	}
	return out
}

// rawValue is a path's value as stored, for output (numbers keep their
// text). The path must be defined.
func rawValue(tw map[string]any, path []string) any {
	v, _ := lookupRaw(tw, path)
	return v
}

// itemName is the property name of a projection: its alias, else the
// path's last name; COUNT() without alias is "$1".
func itemName(it selectItem) string {
	switch {
	case it.alias != "":
		return it.alias
	case it.count:
		return "$1"
	}
	return it.path[len(it.path)-1]
}

// aggregate evaluates a COUNT() query, grouped or not. The caller holds
// h.mu.
func (h *Hub) aggregate(q *query) []any {
	type group struct {
		key   value
		raw   any
		count int
	}
	groups := make(map[string]*group)
	total := 0
	h.eachTwin(q.from, nil, func(d *Device, m *Module) bool {
		tw := twinWire(d, m)
		if q.where != nil && !q.where.eval(tw).truthy() {
			return true
		}
		total++
		if q.groupBy == nil {
			return true
		}
		k := lookupPath(tw, q.groupBy)
		ks := "u"
		var raw any
		if k.defined {
			raw = rawValue(tw, q.groupBy)
			ks = "d" + string(marshal(raw))
		}
		g := groups[ks]
		if g == nil {
			g = &group{key: k, raw: raw}
			groups[ks] = g
		}
		g.count++
		return true
	})
	if q.groupBy == nil {
		row := make(map[string]any)
		for _, it := range q.items {
			row[itemName(it)] = total
		}
		return []any{row}
	}
	keys := sortedKeys(groups)
	out := []any{}
	for _, k := range keys {
		g := groups[k]
		row := make(map[string]any)
		for _, it := range q.items {
			switch {
			case it.count:
				row[itemName(it)] = g.count
			case g.key.defined:
				row[itemName(it)] = g.raw
			}
		}
		out = append(out, row)
	}
	if q.top >= 0 && len(out) > q.top {
		out = out[:q.top]
	}
	return slices.Clip(out)
}
