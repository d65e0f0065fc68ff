package httpmock

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file holds the IoT Hub query language's subset the hub simulates:
// a hand-written lexer and recursive-descent parser producing a query,
// and its evaluator over twin JSON.
//
//	query      = SELECT [TOP n] selection FROM collection [WHERE cond] [GROUP BY path]
//	selection  = "*" | item {"," item}
//	item       = (COUNT "(" ")" | path) [AS name]
//	collection = devices | devices.modules
//	cond       = and {OR and}
//	and        = not {AND not}
//	not        = NOT not | compare
//	compare    = operand [(= | != | <> | < | > | <= | >=) operand | IN list | NIN list]
//	operand    = "(" cond ")" | IS_DEFINED "(" path ")" | literal | path
//	list       = "[" [literal {"," literal}] "]"
//	literal    = string | number | true | false | null

// tokKind is a lexical token's kind.
type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokNumber
	tokString
	tokPunct // * , ( ) [ ] . and the operators
)

type token struct {
	kind tokKind
	text string  // identifier or punctuation as written; decoded string
	num  float64 // tokNumber
	pos  int     // byte offset, for messages
}

// queryError is a syntax or semantic error in a query.
type queryError struct{ msg string }

func (e *queryError) Error() string { return e.msg }

func qerr(format string, args ...any) error { return &queryError{fmt.Sprintf(format, args...)} }

// lex splits a query into tokens.
func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{kind: tokIdent, text: src[i:j], pos: i})
			i = j
		case c >= '0' && c <= '9':
			t, n, err := lexNumber(src, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, t)
			i = n
		case c == '\'' || c == '"':
			t, n, err := lexString(src, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, t)
			i = n
		default:
			two := ""
			if i+1 < len(src) {
				two = src[i : i+2]
			}
			switch two {
			case "!=", "<>", "<=", ">=":
				toks = append(toks, token{kind: tokPunct, text: two, pos: i})
				i += 2
				continue
			}
			switch c {
			case '*', ',', '(', ')', '[', ']', '.', '=', '<', '>':
				toks = append(toks, token{kind: tokPunct, text: string(c), pos: i})
				i++
			case '+', '-', '/', '%':
				if c == '-' && i+1 < len(src) && src[i+1] >= '0' && src[i+1] <= '9' && negativeAllowed(toks) {
					t, n, err := lexNumber(src, i+1)
					if err != nil {
						return nil, err
					}
					t.num, t.pos = -t.num, i
					toks = append(toks, t)
					i = n
					continue
				}
				return nil, qerr("arithmetic operator '%c' at position %d is not supported", c, i)
			default:
				r, _ := utf8.DecodeRuneInString(src[i:])
				return nil, qerr("unexpected character %q at position %d", r, i)
			}
		}
	}
	return append(toks, token{kind: tokEOF, pos: len(src)}), nil
}

// negativeAllowed reports whether a '-' after toks starts a negative
// number: after an operator, a comma or an opening bracket.
func negativeAllowed(toks []token) bool {
	if len(toks) == 0 {
		return true
	}
	last := toks[len(toks)-1]
	return last.kind == tokPunct && last.text != ")" && last.text != "]" && last.text != "*" ||
		last.kind == tokIdent && isKeyword(last.text)
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '$'
}

func isIdentPart(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

func isKeyword(s string) bool {
	switch strings.ToUpper(s) {
	case "SELECT", "TOP", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "NIN", "AS", "GROUP", "BY":
		return true
	}
	return false
}

func lexNumber(src string, i int) (token, int, error) {
	start := i
	if strings.HasPrefix(src[i:], "0x") || strings.HasPrefix(src[i:], "0X") {
		j := i + 2
		for j < len(src) && strings.IndexByte("0123456789abcdefABCDEF", src[j]) >= 0 {
			j++
		}
		n, err := strconv.ParseUint(src[i+2:j], 16, 53)
		if err != nil || j == i+2 {
			return token{}, 0, qerr("invalid hexadecimal number at position %d", start)
		}
		return token{kind: tokNumber, num: float64(n), text: src[start:j], pos: start}, j, nil
	}
	j := i
	digits := func() {
		for j < len(src) && src[j] >= '0' && src[j] <= '9' {
			j++
		}
	}
	digits()
	if j < len(src) && src[j] == '.' && j+1 < len(src) && src[j+1] >= '0' && src[j+1] <= '9' {
		j++
		digits()
	}
	if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
		k := j + 1
		if k < len(src) && (src[k] == '+' || src[k] == '-') {
			k++
		}
		if k < len(src) && src[k] >= '0' && src[k] <= '9' {
			j = k
			digits()
		}
	}
	if j < len(src) && isIdentStart(src[j]) {
		return token{}, 0, qerr("invalid number at position %d", start)
	}
	n, err := strconv.ParseFloat(src[i:j], 64)
	if err != nil || math.IsInf(n, 0) {
		return token{}, 0, qerr("invalid number at position %d", start)
	}
	return token{kind: tokNumber, num: n, text: src[start:j], pos: start}, j, nil
}

func lexString(src string, i int) (token, int, error) {
	quote := src[i]
	var b strings.Builder
	j := i + 1
	for j < len(src) {
		c := src[j]
		switch {
		case c == quote:
			return token{kind: tokString, text: b.String(), pos: i}, j + 1, nil
		case c == '\\':
			if j+1 >= len(src) {
				return token{}, 0, qerr("unterminated string starting at position %d", i)
			}
			switch e := src[j+1]; e {
			case '\'', '"', '\\', '/':
				b.WriteByte(e)
				j += 2
			case 'b':
				b.WriteByte('\b')
				j += 2
			case 'f':
				b.WriteByte('\f')
				j += 2
			case 'n':
				b.WriteByte('\n')
				j += 2
			case 'r':
				b.WriteByte('\r')
				j += 2
			case 't':
				b.WriteByte('\t')
				j += 2
			case 'u':
				if j+6 > len(src) {
					return token{}, 0, qerr("invalid \\u escape at position %d", j)
				}
				n, err := strconv.ParseUint(src[j+2:j+6], 16, 16)
				if err != nil {
					return token{}, 0, qerr("invalid \\u escape at position %d", j)
				}
				b.WriteRune(rune(n))
				j += 6
			default:
				return token{}, 0, qerr("invalid escape '\\%c' at position %d", e, j)
			}
		default:
			b.WriteByte(c)
			j++
		}
	}
	return token{}, 0, qerr("unterminated string starting at position %d", i)
}

// Query AST.

type collection int

const (
	collDevices collection = iota
	collModules
)

// selectItem is one projection: a path or COUNT().
type selectItem struct {
	path  []string // nil for COUNT()
	count bool
	alias string // "" when none was given
}

// query is a parsed query.
type query struct {
	top     int // -1: no TOP
	star    bool
	items   []selectItem
	from    collection
	where   expr // nil: every twin
	groupBy []string
}

// aggregate reports whether the query counts rather than lists.
func (q *query) aggregate() bool {
	for _, it := range q.items {
		if it.count {
			return true
		}
	}
	return false
}

// expr is a WHERE expression.
type expr interface {
	eval(twin map[string]any) value
}

// value is an evaluated operand: undefined, or a JSON value.
type value struct {
	defined bool
	v       any // nil, bool, float64, string, or an object/array
}

var (
	undefined = value{}
	valTrue   = value{defined: true, v: true}
	valFalse  = value{defined: true, v: false}
)

func boolValue(b bool) value {
	if b {
		return valTrue
	}
	return valFalse
}

func (v value) truthy() bool { b, ok := v.v.(bool); return v.defined && ok && b }

type literalExpr struct{ v value }

func (e literalExpr) eval(map[string]any) value { return e.v }

type pathExpr struct{ path []string }

func (e pathExpr) eval(twin map[string]any) value { return lookupPath(twin, e.path) }

type definedExpr struct{ path []string }

func (e definedExpr) eval(twin map[string]any) value {
	return boolValue(lookupPath(twin, e.path).defined)
}

type notExpr struct{ x expr }

func (e notExpr) eval(twin map[string]any) value { return boolValue(!e.x.eval(twin).truthy()) }

type logicExpr struct {
	and  bool
	l, r expr
}

func (e logicExpr) eval(twin map[string]any) value {
	if e.and {
		return boolValue(e.l.eval(twin).truthy() && e.r.eval(twin).truthy())
	}
	return boolValue(e.l.eval(twin).truthy() || e.r.eval(twin).truthy())
}

type compareExpr struct {
	op   string
	l, r expr
}

func (e compareExpr) eval(twin map[string]any) value {
	return boolValue(compare(e.op, e.l.eval(twin), e.r.eval(twin)))
}

type inExpr struct {
	not  bool
	x    expr
	list []value
}

func (e inExpr) eval(twin map[string]any) value {
	v := e.x.eval(twin)
	if !isPrimitive(v) {
		return valFalse
	}
	for _, c := range e.list {
		if compare("=", v, c) {
			return boolValue(!e.not)
		}
	}
	return boolValue(e.not)
}

func isPrimitive(v value) bool {
	if !v.defined {
		return false
	}
	switch v.v.(type) {
	case nil, bool, float64, string:
		return true
	}
	return false
}

// compare applies a comparison; it is false unless both sides are
// primitives of the same type (null equals only null).
func compare(op string, a, b value) bool {
	if !isPrimitive(a) || !isPrimitive(b) {
		return false
	}
	var c int
	switch x := a.v.(type) {
	case nil:
		if b.v != nil {
			return false
		}
	case bool:
		y, ok := b.v.(bool)
		if !ok {
			return false
		}
		switch {
		case x == y:
		case !x:
			c = -1
		default:
			c = 1
		}
	case float64:
		y, ok := b.v.(float64)
		if !ok {
			return false
		}
		switch {
		case x < y:
			c = -1
		case x > y:
			c = 1
		}
	case string:
		y, ok := b.v.(string)
		if !ok {
			return false
		}
		c = strings.Compare(x, y)
	}
	switch op {
	case "=":
		return c == 0
	case "!=", "<>":
		return c != 0
	case "<":
		return c < 0
	case ">":
		return c > 0
	case "<=":
		return c <= 0
	case ">=":
		return c >= 0
	}
	return false
}

// lookupPath resolves a path in a twin for comparisons.
func lookupPath(twin map[string]any, path []string) value {
	v, ok := lookupRaw(twin, path)
	if !ok {
		return undefined
	}
	return value{defined: true, v: normalize(v)}
}

// lookupRaw resolves a path in a twin. The first segment, and the section
// name after properties, match case-insensitively: they are system names.
func lookupRaw(twin map[string]any, path []string) (any, bool) {
	var cur any = twin
	for i, seg := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		next, ok := obj[seg]
		if !ok && (i == 0 || i == 1 && strings.EqualFold(path[0], "properties")) {
			for k, v := range obj {
				if strings.EqualFold(k, seg) {
					next, ok = v, true
					break
				}
			}
		}
		if !ok {
			return nil, false
		}
		cur = next
	}
	return cur, true
}

// normalize turns json.Number and int64 into float64 for comparisons.
func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case int64:
		return float64(x)
	case int:
		return float64(x)
	case *string:
		if x == nil {
			return nil
		}
		return *x
	}
	return v
}

// parser is a recursive-descent parser over tokens.
type parser struct {
	toks  []token
	i     int
	depth int // open parentheses
}

// parseQuery parses a query text.
func parseQuery(src string) (*query, error) {
	if strings.TrimSpace(src) == "" {
		return nil, qerr("the query is empty")
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	return p.query()
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

// keyword consumes the keyword kw (case-insensitive) if it is next.
func (p *parser) keyword(kw string) bool {
	if t := p.peek(); t.kind == tokIdent && strings.EqualFold(t.text, kw) {
		p.i++
		return true
	}
	return false
}

func (p *parser) punct(s string) bool {
	if t := p.peek(); t.kind == tokPunct && t.text == s {
		p.i++
		return true
	}
	return false
}

func (p *parser) expectPunct(s string) error {
	if !p.punct(s) {
		return p.unexpected("'" + s + "'")
	}
	return nil
}

func (p *parser) unexpected(want string) error {
	t := p.peek()
	if t.kind == tokEOF {
		return qerr("syntax error: expected %s at the end of the query", want)
	}
	text := t.text
	if t.kind == tokString {
		text = strconv.Quote(t.text)
	}
	return qerr("syntax error: expected %s, found '%s' at position %d", want, text, t.pos)
}

func (p *parser) query() (*query, error) {
	q := &query{top: -1}
	if !p.keyword("SELECT") {
		return nil, p.unexpected("SELECT")
	}
	if p.keyword("TOP") {
		t := p.next()
		if t.kind != tokNumber || t.num < 0 || t.num != math.Trunc(t.num) || t.num > math.MaxInt32 {
			return nil, qerr("syntax error: TOP takes a non-negative integer")
		}
		q.top = int(t.num)
	}
	if err := p.selection(q); err != nil {
		return nil, err
	}
	if !p.keyword("FROM") {
		return nil, p.unexpected("FROM")
	}
	if err := p.collection(q); err != nil {
		return nil, err
	}
	if p.keyword("WHERE") {
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		q.where = e
	}
	if p.keyword("GROUP") {
		if !p.keyword("BY") {
			return nil, p.unexpected("BY")
		}
		path, err := p.path()
		if err != nil {
			return nil, err
		}
		q.groupBy = path
	}
	if p.peek().kind != tokEOF {
		return nil, p.unexpected("the end of the query")
	}
	return q, q.check()
}

// check applies the rules that span clauses.
func (q *query) check() error {
	if q.groupBy != nil {
		if !q.aggregate() {
			return qerr("GROUP BY needs COUNT() in the SELECT list")
		}
		for _, it := range q.items {
			if !it.count && !samePath(it.path, q.groupBy) {
				return qerr("'%s' in the SELECT list is not the GROUP BY path", strings.Join(it.path, "."))
			}
		}
		return nil
	}
	if q.aggregate() {
		for _, it := range q.items {
			if !it.count {
				return qerr("'%s' cannot be selected with COUNT() without GROUP BY", strings.Join(it.path, "."))
			}
		}
	}
	return nil
}

func samePath(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !(i == 0 && strings.EqualFold(a[i], b[i])) {
			return false
		}
	}
	return true
}

func (p *parser) selection(q *query) error {
	if p.punct("*") {
		q.star = true
		return nil
	}
	for {
		var it selectItem
		t := p.peek()
		switch {
		case t.kind == tokIdent && strings.EqualFold(t.text, "COUNT") && p.toks[p.i+1].text == "(":
			p.i += 2
			if err := p.expectPunct(")"); err != nil {
				return qerr("syntax error: COUNT takes no arguments")
			}
			it.count = true
		case t.kind == tokIdent && isAggregate(t.text) && p.toks[p.i+1].text == "(":
			return qerr("the aggregate %s is not supported; use COUNT()", strings.ToUpper(t.text))
		default:
			path, err := p.path()
			if err != nil {
				return err
			}
			it.path = path
		}
		if p.keyword("AS") {
			t := p.next()
			if t.kind != tokIdent || isKeyword(t.text) {
				return qerr("syntax error: AS takes a name")
			}
			it.alias = t.text
		}
		q.items = append(q.items, it)
		if !p.punct(",") {
			return nil
		}
	}
}

func isAggregate(s string) bool {
	switch strings.ToUpper(s) {
	case "AVG", "SUM", "MIN", "MAX":
		return true
	}
	return false
}

func (p *parser) collection(q *query) error {
	t := p.next()
	if t.kind != tokIdent || !strings.EqualFold(t.text, "devices") {
		p.i--
		return p.unexpected("devices or devices.modules")
	}
	if !p.punct(".") {
		q.from = collDevices
		return nil
	}
	t = p.next()
	switch {
	case t.kind == tokIdent && strings.EqualFold(t.text, "modules"):
		q.from = collModules
		return nil
	case t.kind == tokIdent && strings.EqualFold(t.text, "jobs"):
		return qerr("the collection devices.jobs is not supported by this simulator")
	}
	p.i--
	return p.unexpected("modules")
}

// path parses ident {"." ident}.
func (p *parser) path() ([]string, error) {
	t := p.peek()
	if t.kind != tokIdent || isKeyword(t.text) {
		return nil, p.unexpected("a property path")
	}
	p.i++
	path := []string{t.text}
	for p.punct(".") {
		t := p.next()
		if t.kind != tokIdent {
			p.i--
			return nil, p.unexpected("a property name after '.'")
		}
		path = append(path, t.text)
	}
	return path, nil
}

func (p *parser) or() (expr, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.keyword("OR") {
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = logicExpr{and: false, l: l, r: r}
	}
	return l, nil
}

func (p *parser) and() (expr, error) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	for p.keyword("AND") {
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		l = logicExpr{and: true, l: l, r: r}
	}
	return l, nil
}

// maxNesting bounds NOT and parentheses, so that hostile input cannot
// exhaust the stack.
const maxNesting = 100

func (p *parser) not() (expr, error) {
	n := 0
	for p.keyword("NOT") {
		if n++; n > maxNesting {
			return nil, qerr("the condition is nested too deeply")
		}
	}
	e, err := p.compare()
	if err != nil {
		return nil, err
	}
	for range n {
		e = notExpr{e}
	}
	return e, nil
}

func (p *parser) compare() (expr, error) {
	l, err := p.operand()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	if t.kind == tokPunct {
		switch t.text {
		case "=", "!=", "<>", "<", ">", "<=", ">=":
			p.i++
			r, err := p.operand()
			if err != nil {
				return nil, err
			}
			return compareExpr{op: t.text, l: l, r: r}, nil
		}
	}
	switch {
	case p.keyword("IN"):
		list, err := p.list()
		return inExpr{x: l, list: list}, err
	case p.keyword("NIN"):
		list, err := p.list()
		return inExpr{not: true, x: l, list: list}, err
	case p.keyword("NOT"):
		if p.keyword("IN") {
			list, err := p.list()
			return inExpr{not: true, x: l, list: list}, err
		}
		return nil, p.unexpected("IN")
	}
	return l, nil
}

func (p *parser) list() ([]value, error) {
	if err := p.expectPunct("["); err != nil {
		return nil, err
	}
	var out []value
	if p.punct("]") {
		return out, nil
	}
	for {
		v, ok := p.literal()
		if !ok {
			return nil, p.unexpected("a literal in the list")
		}
		out = append(out, v)
		if p.punct("]") {
			return out, nil
		}
		if err := p.expectPunct(","); err != nil {
			return nil, err
		}
	}
}

// literal consumes a literal if one is next.
func (p *parser) literal() (value, bool) {
	t := p.peek()
	switch t.kind {
	case tokString:
		p.i++
		return value{defined: true, v: t.text}, true
	case tokNumber:
		p.i++
		return value{defined: true, v: t.num}, true
	case tokIdent:
		switch strings.ToLower(t.text) {
		case "true":
			p.i++
			return valTrue, true
		case "false":
			p.i++
			return valFalse, true
		case "null":
			p.i++
			return value{defined: true}, true
		}
	}
	return value{}, false
}

// operand parses a literal, a parenthesized condition, IS_DEFINED or a
// path.
func (p *parser) operand() (expr, error) {
	if v, ok := p.literal(); ok {
		return literalExpr{v}, nil
	}
	t := p.peek()
	if t.kind == tokPunct && t.text == "(" {
		p.i++
		if p.depth++; p.depth > maxNesting {
			return nil, qerr("the condition is nested too deeply")
		}
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		if err := p.expectPunct(")"); err != nil {
			return nil, err
		}
		p.depth--
		return e, nil
	}
	if t.kind == tokIdent && p.toks[p.i+1].kind == tokPunct && p.toks[p.i+1].text == "(" {
		if !strings.EqualFold(t.text, "IS_DEFINED") {
			return nil, qerr("the function %s is not supported; only IS_DEFINED is", t.text)
		}
		p.i += 2
		path, err := p.path()
		if err != nil {
			return nil, err
		}
		if err := p.expectPunct(")"); err != nil {
			return nil, err
		}
		return definedExpr{path}, nil
	}
	path, err := p.path()
	if err != nil {
		return nil, err
	}
	return pathExpr{path}, nil
}
