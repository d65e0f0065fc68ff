package httpmock

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// jobCursor is what a jobs continuation token carries: how many items were
// returned so far and a hash of the query it belongs to.
type jobCursor struct {
	Offset int    `json:"o"`
	Hash   uint64 `json:"h"`
}

func (c jobCursor) token() string { return base64.RawURLEncoding.EncodeToString(marshal(c)) }

func parseJobCursor(tok string, hash uint64) (int, bool) {
	var c jobCursor
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || json.Unmarshal(b, &c) != nil || c.Hash != hash || c.Offset < 0 {
		return 0, false
	}
	return c.Offset, true
}

// pageHeaders reads x-ms-max-item-count and x-ms-continuation.
func pageHeaders(r *http.Request, hash uint64) (size, offset int, e *hubError) {
	size = DefaultQueryPageSize
	if v := r.Header.Values("x-ms-max-item-count"); len(v) > 0 {
		n, err := strconv.Atoi(strings.TrimSpace(v[0]))
		if err != nil || len(v) > 1 || n < 1 || n > MaxQueryPageSize {
			return 0, 0, invalid("x-ms-max-item-count must be an integer within [1; %d].", MaxQueryPageSize)
		}
		size = n
	}
	if tok := r.Header.Get("x-ms-continuation"); tok != "" {
		o, ok := parseJobCursor(tok, hash)
		if !ok {
			return 0, 0, invalid("The continuation token is not valid for this query.")
		}
		offset = o
	}
	return size, offset, nil
}

// writePage sends items[offset:offset+size] as a bare array, with the
// item type and, when more follow, the continuation token.
func writePage[T any](w http.ResponseWriter, itemType string, items []T, offset, size int, hash uint64) {
	offset = min(offset, len(items))
	end := min(offset+size, len(items))
	page := items[offset:end]
	if page == nil {
		page = []T{}
	}
	w.Header().Set("x-ms-item-type", itemType)
	if end < len(items) {
		w.Header().Set("x-ms-continuation", jobCursor{Offset: end, Hash: hash}.token())
	}
	writeJSON(w, http.StatusOK, marshal(page))
}

// queryJobs serves GET /jobs/v2/query?jobType=&jobStatus=. Parameter names
// and values match case-insensitively: the C# SDKs send PascalCase values
// (ScheduleDeviceMethod, Completed), Java and Node camelCase.
func (h *Hub) queryJobs(w http.ResponseWriter, r *http.Request, rq *routed) {
	var typ, status string
	for k, vs := range r.URL.Query() {
		switch {
		case strings.EqualFold(k, "jobType"):
			typ = vs[0]
		case strings.EqualFold(k, "jobStatus"):
			status = vs[0]
		}
	}
	hash := queryHash("jobs\x00" + strings.ToLower(typ) + "\x00" + strings.ToLower(status))
	size, offset, e := pageHeaders(r, hash)
	if e != nil {
		e.write(w, rq.now)
		return
	}
	h.mu.Lock()
	var items []jobWire
	for _, j := range h.jobs.order {
		if (typ == "" || strings.EqualFold(typ, j.typ)) && (status == "" || strings.EqualFold(status, j.status)) {
			items = append(items, j.wire())
		}
	}
	h.mu.Unlock()
	writePage(w, "jobResponse", items, offset, size, hash)
}

// queryDevicesOrJobs serves POST /devices/query: queries over devices.jobs
// here, the others in queryDevices.
func (h *Hub) queryDevicesOrJobs(w http.ResponseWriter, r *http.Request, rq *routed) {
	var fields map[string]json.RawMessage
	var text string
	if json.Unmarshal(rq.body, &fields) != nil {
		h.queryDevices(w, r, rq)
		return
	}
	if raw, ok := lookup(fields, "query"); !ok || json.Unmarshal(raw, &text) != nil {
		h.queryDevices(w, r, rq)
		return
	}
	q, isJobs, err := parseJobsQuery(text)
	if !isJobs {
		h.queryDevices(w, r, rq)
		return
	}
	if e := checkJSONContentType(r, rq.body); e != nil {
		e.write(w, rq.now)
		return
	}
	if err != nil {
		invalid("Invalid query: %v.", err).write(w, rq.now)
		return
	}
	hash := queryHash(text)
	size, offset, e := pageHeaders(r, hash)
	if e != nil {
		e.write(w, rq.now)
		return
	}
	h.mu.Lock()
	var items []deviceJobWire
	for _, j := range h.jobs.order {
		for _, d := range j.devices {
			row := d.wire(j)
			if q.where != nil && !q.where.eval(jobRowObject(row)).truthy() {
				continue
			}
			items = append(items, row)
			if q.top >= 0 && len(items) == q.top {
				break
			}
		}
		if q.top >= 0 && len(items) == q.top {
			break
		}
	}
	h.mu.Unlock()
	writePage(w, "deviceJob", items, offset, size, hash)
}

// jobRowObject is a devices.jobs row as the query evaluator sees it: its
// fields, also reachable as devices.jobs.<field>.
func jobRowObject(row deviceJobWire) map[string]any {
	var m map[string]any
	_ = json.Unmarshal(marshal(row), &m)
	m["devices"] = map[string]any{"jobs": m}
	return m
}

// parseJobsQuery parses SELECT [TOP n] * FROM devices.jobs [WHERE cond].
// isJobs is false when the query is not over devices.jobs; err reports a
// devices.jobs query this hub (or IoT Hub) does not accept.
func parseJobsQuery(text string) (q *query, isJobs bool, err error) {
	toks, lerr := lex(text)
	if lerr != nil {
		return nil, false, nil
	}
	from := -1
	for i := 0; i+3 < len(toks); i++ {
		t := toks[i : i+4]
		if t[0].kind == tokIdent && strings.EqualFold(t[0].text, "FROM") &&
			t[1].kind == tokIdent && strings.EqualFold(t[1].text, "devices") &&
			t[2].kind == tokPunct && t[2].text == "." &&
			t[3].kind == tokIdent && strings.EqualFold(t[3].text, "jobs") {
			from = i
			break
		}
	}
	if from < 0 {
		return nil, false, nil
	}
	q = &query{top: -1, star: true}
	p := &parser{toks: toks}
	if !p.keyword("SELECT") {
		return nil, true, p.unexpected("SELECT")
	}
	if p.keyword("TOP") {
		t := p.next()
		if t.kind != tokNumber || t.num < 0 || t.num != math.Trunc(t.num) || t.num > math.MaxInt32 {
			return nil, true, qerr("syntax error: TOP takes a non-negative integer")
		}
		q.top = int(t.num)
	}
	if !p.punct("*") || p.i != from {
		return nil, true, qerr("devices.jobs supports only SELECT * (no projections or aggregates)")
	}
	p.i = from + 4
	if p.keyword("WHERE") {
		e, err := p.or()
		if err != nil {
			return nil, true, err
		}
		q.where = e
	}
	if p.peek().kind != tokEOF {
		return nil, true, p.unexpected("the end of the query")
	}
	return q, true, nil
}
