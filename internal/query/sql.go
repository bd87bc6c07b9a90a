package query

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Dialect is an SQL database kind, named as sqlstore's Config.Dialect
// names it.
type Dialect string

// The dialects of the SQL store.
const (
	SQLite     Dialect = "sqlite"
	PostgreSQL Dialect = "postgresql"
	MySQL      Dialect = "mysql" // MySQL and MariaDB
)

// SQLPlan is a query compiled for Sacred's SQL schema. The tables have
// the aliases r (run), e (experiment) and, when extended, x (our
// run_extra); placeholders are the dialect's own (? or $1).
type SQLPlan struct {
	From    string
	Where   string // never empty
	Args    []any
	OrderBy string // never empty; ends with r.id, the store order
	// Limit is the number of rows to fetch, 0 for all. It is set only
	// when the WHERE, the ORDER BY and the limit are exactly the query's.
	Limit int
	// Residual is true when the WHERE selects more runs than the query
	// (a necessary condition): Select removes the rest.
	Residual bool
}

// IDQuery is the statement that lists the run ids the plan selects, in
// order.
func (p *SQLPlan) IDQuery() string {
	s := "SELECT r.run_id FROM " + p.From + " WHERE " + p.Where + " ORDER BY " + p.OrderBy
	if p.Limit > 0 {
		s += " LIMIT " + strconv.Itoa(p.Limit)
	}
	return s
}

// SQL compiles the query for a database of Sacred's schema; extended says
// that our run_extra table exists (the reader's fields then come from it
// first, as sqlstore's reader reads them). now fixes the moment DIED? is
// judged at.
func (q *Query) SQL(d Dialect, extended bool, now time.Time) SQLPlan {
	c := &sqlCompiler{d: d, ext: extended, cut: cutoff(now, q.deadAfter)}
	a := sqlAlgebra{}
	cd := compileQuery(q, a, c.leaf)
	plan := SQLPlan{
		From:     "run r LEFT JOIN experiment e ON e.experiment_id = r.experiment_id",
		Residual: !cd.exact,
	}
	if extended {
		plan.From += " LEFT JOIN run_extra x ON x.run_id = r.run_id"
	}
	where := a.And(frag{s: "r.run_id IS NOT NULL"}, cd.p)
	plan.Where, plan.Args = where.sql(), where.args
	var order []string
	sortPushed := true
	for _, k := range q.sort {
		expr, nullable, ok := c.sortExpr(k.path.segs)
		if !ok {
			sortPushed = false
			break
		}
		dir := "ASC"
		nulls := "DESC" // missing and null sort first, as in Select
		if k.desc {
			dir, nulls = "DESC", "ASC"
		}
		if nullable {
			order = append(order, "("+expr+" IS NULL) "+nulls)
		}
		order = append(order, expr+" "+dir)
	}
	if !sortPushed {
		order = nil // Select sorts
	}
	plan.OrderBy = strings.Join(append(order, "r.id"), ", ")
	if cd.exact && sortPushed && len(q.opts.Indices) == 0 && q.opts.Last == 0 {
		plan.Limit = q.opts.Limit
	}
	if d == PostgreSQL {
		plan.Where = dollarPlaceholders(plan.Where)
	}
	return plan
}

// dollarPlaceholders numbers the ? of a statement as $1, $2, ...; the
// statements built here have no other "?".
func dollarPlaceholders(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// frag is an SQL boolean expression that is never NULL, with its
// arguments; k marks the constants TRUE (1) and FALSE (-1).
type frag struct {
	s    string
	args []any
	k    int8
}

func (f frag) sql() string {
	switch f.k {
	case 1:
		return "TRUE"
	case -1:
		return "FALSE"
	}
	return f.s
}

type sqlAlgebra struct{}

func (sqlAlgebra) True() frag  { return frag{k: 1} }
func (sqlAlgebra) False() frag { return frag{k: -1} }
func (sqlAlgebra) And(a, b frag) frag {
	switch {
	case a.k == -1 || b.k == -1:
		return frag{k: -1}
	case a.k == 1:
		return b
	case b.k == 1:
		return a
	}
	return frag{s: "(" + a.s + " AND " + b.s + ")", args: concat(a.args, b.args)}
}
func (sqlAlgebra) Or(a, b frag) frag {
	switch {
	case a.k == 1 || b.k == 1:
		return frag{k: 1}
	case a.k == -1:
		return b
	case b.k == -1:
		return a
	}
	return frag{s: "(" + a.s + " OR " + b.s + ")", args: concat(a.args, b.args)}
}
func (sqlAlgebra) Not(a frag) frag {
	if a.k != 0 {
		return frag{k: -a.k}
	}
	return frag{s: "NOT " + a.s, args: a.args}
}

func concat(a, b []any) []any {
	out := make([]any, 0, len(a)+len(b))
	return append(append(out, a...), b...)
}

// expr is an SQL expression with the arguments of its placeholders.
type expr struct {
	s    string
	args []any
}

// build joins pieces of SQL text and expressions into one expression;
// a piece is a string (text) or an expr.
func build(pieces ...any) expr {
	var b strings.Builder
	var args []any
	for _, p := range pieces {
		switch x := p.(type) {
		case string:
			b.WriteString(x)
		case expr:
			b.WriteString(x.s)
			args = append(args, x.args...)
		case frag:
			b.WriteString(x.sql())
			args = append(args, x.args...)
		default:
			panic(fmt.Sprintf("query: build: %T", p))
		}
	}
	return expr{b.String(), args}
}

func param(v any) expr { return expr{"?", []any{v}} }

// boolean makes a never-NULL condition of an expression.
func boolean(e expr) frag {
	return frag{s: "COALESCE(" + e.s + ", FALSE)", args: e.args}
}

func exactCond(f frag) cond[frag] { return cond[frag]{t: f, p: f, exact: true} }

type sqlCompiler struct {
	d   Dialect
	ext bool
	cut time.Time
}

// sqlTime is the text form SQLAlchemy writes into SQLite's DATETIME
// columns; the other dialects cast it.
const sqlTime = "2006-01-02 15:04:05.000000"

func (c *sqlCompiler) timeParam(t time.Time) expr {
	s := t.UTC().Format(sqlTime)
	switch c.d {
	case PostgreSQL:
		return build("CAST(", param(s), " AS TIMESTAMP)")
	case MySQL:
		return build("CAST(", param(s), " AS DATETIME(6))")
	}
	return param(s)
}

// bin makes string comparisons go by code point (UTF-8 bytes), whatever
// the collation of the column.
func (c *sqlCompiler) bin(e expr) expr {
	switch c.d {
	case PostgreSQL:
		return build("(", e, ") COLLATE \"C\"")
	case MySQL:
		return build("CAST(", e, " AS BINARY)")
	}
	return e
}

// like is a substring test, exact in bytes (a superset of a regular
// expression that requires lit).
func (c *sqlCompiler) like(e expr, lit string) expr {
	pat := "%" + strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(lit) + "%"
	return build(c.bin(e), " LIKE ", c.bin(param(pat)), " ESCAPE '!'")
}

func (c *sqlCompiler) nameExpr() expr {
	if !c.ext {
		return build("COALESCE(e.name, '')")
	}
	var js string
	switch c.d {
	case PostgreSQL:
		js = "(CAST(x.experiment AS JSONB) ->> 'name')"
	case MySQL:
		js = "JSON_UNQUOTE(JSON_EXTRACT(x.experiment, '$.name'))"
	default:
		js = "json_extract(x.experiment, '$.name')"
	}
	return build("(CASE WHEN x.experiment IS NOT NULL THEN COALESCE(" + js + ", '') ELSE COALESCE(e.name, '') END)")
}

func (c *sqlCompiler) commandExpr() expr {
	if !c.ext {
		return build("COALESCE(r.command, '')")
	}
	return build("COALESCE(x.command, r.command, '')")
}

var sqlOps = map[string]string{"==": "=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

func (c *sqlCompiler) leaf(segs []string, op string, lit any, re *regexp.Regexp) cond[frag] {
	a := sqlAlgebra{}
	root, rest := segs[0], segs[1:]
	switch {
	case root == "status" && len(rest) == 0:
		return c.statusLeaf(op, lit)
	case (root == "name" && len(rest) == 0) || (root == "experiment" && len(rest) == 1 && rest[0] == "name"):
		return c.stringLeaf(c.nameExpr(), op, lit, re)
	case root == "command" && len(rest) == 0:
		return c.stringLeaf(c.commandExpr(), op, lit, re)
	case (root == "start_time" || root == "stop_time" || root == "heartbeat" || root == "queue_time") && len(rest) == 0:
		return c.timeLeaf(build("r."+root), op, lit)
	case root == "result":
		return c.resultLeaf(rest, op, lit, re)
	case (root == "config" || root == "info") && len(rest) > 0:
		return c.jsonLeaf("r."+root, rest, op, lit, re)
	}
	return unknownCond(a)
}

func (c *sqlCompiler) statusLeaf(op string, lit any) cond[frag] {
	a := sqlAlgebra{}
	switch op {
	case "exists", "isstring":
		return constCond(a, true)
	case "==":
	default:
		return unknownCond(a)
	}
	s, ok := lit.(string)
	if !ok {
		return constCond(a, false)
	}
	stale := boolean(build("COALESCE(r.heartbeat, r.start_time) < ", c.timeParam(c.cut)))
	running := boolean(build("r.status = 'RUNNING'"))
	switch s {
	case StatusDied:
		return exactCond(a.And(running, stale))
	case "RUNNING":
		return exactCond(a.And(running, a.Not(stale)))
	}
	col := build("r.status")
	if c.d == PostgreSQL {
		col = build("CAST(r.status AS TEXT)")
	}
	return exactCond(boolean(build(c.bin(col), " = ", c.bin(param(s)))))
}

func (c *sqlCompiler) stringLeaf(e expr, op string, lit any, re *regexp.Regexp) cond[frag] {
	a := sqlAlgebra{}
	switch op {
	case "exists", "isstring":
		return constCond(a, true)
	case "=~":
		l := requiredLiteral(re)
		if l == "" {
			return unknownCond(a)
		}
		return cond[frag]{t: a.False(), p: boolean(c.like(e, l))}
	}
	s, ok := lit.(string)
	if !ok {
		return constCond(a, false)
	}
	return exactCond(boolean(build(c.bin(e), " "+sqlOps[op]+" ", c.bin(param(s)))))
}

func (c *sqlCompiler) timeLeaf(col expr, op string, lit any) cond[frag] {
	a := sqlAlgebra{}
	switch op {
	case "exists":
		return constCond(a, true) // a missing time reads as null
	case "isstring", "=~":
		return constCond(a, false)
	}
	if lit == nil && op == "==" {
		return exactCond(frag{s: col.s + " IS NULL", args: col.args})
	}
	s, ok := lit.(string)
	if !ok {
		return constCond(a, false)
	}
	t, ok := parseTime(s)
	if !ok {
		return constCond(a, false)
	}
	return exactCond(boolean(build(col, " "+sqlOps[op]+" ", c.timeParam(t))))
}

// numberLeaf is a leaf over Sacred's run.result FLOAT column.
func (c *sqlCompiler) numberLeaf(col string, op string, lit any) cond[frag] {
	a := sqlAlgebra{}
	switch op {
	case "exists":
		return exactCond(frag{s: col + " IS NOT NULL"})
	case "isstring", "=~":
		return constCond(a, false)
	}
	f, ok := lit.(float64)
	if !ok {
		return constCond(a, false)
	}
	e := build(col, " "+sqlOps[op]+" ", param(f))
	if c.d == PostgreSQL && op != "==" {
		// PostgreSQL orders NaN above every number; here NaN compares
		// with nothing.
		e = build(col, " <> CAST('NaN' AS FLOAT8) AND ", e)
	}
	return exactCond(boolean(e))
}

func (c *sqlCompiler) resultLeaf(rest []string, op string, lit any, re *regexp.Regexp) cond[frag] {
	a := sqlAlgebra{}
	num := constCond(a, false) // result.key of a number is absent
	if len(rest) == 0 {
		num = c.numberLeaf("r.result", op, lit)
	}
	if !c.ext {
		return num
	}
	j := c.jsonLeaf("x.result", rest, op, lit, re)
	pick := func(x, y frag) frag {
		return boolean(build("CASE WHEN x.result IS NOT NULL THEN ", x, " ELSE ", y, " END"))
	}
	return cond[frag]{t: pick(j.t, num.t), p: pick(j.p, num.p), exact: j.exact && num.exact}
}

// jsonDoc gives the pieces of a JSON value at path segs in a text column:
// the value's type name (typ), its number, its string, the type names
// per class, and guard: rows whose JSON the database cannot read (NaN,
// Infinity) though the reader can, where the store must not decide.
type jsonDoc struct {
	typ, num, str, present expr
	guard                  frag
	tNum, tStr, tNull      string
	isBool                 func(v bool) expr
}

func (c *sqlCompiler) jsonDoc(col string, segs []string) (jsonDoc, bool) {
	for _, s := range segs {
		// Keys that the path syntaxes cannot hold, and array indices,
		// whose meaning differs between the dialects: decided in process.
		if s == "" || allDigits(s) || strings.ContainsAny(s, "\"\\") {
			return jsonDoc{}, false
		}
	}
	var j jsonDoc
	switch c.d {
	case PostgreSQL:
		base := build("(CASE WHEN " + col + " IS NULL OR " + col + " = '' OR " + col + " ~ '(NaN|Infinity)' THEN NULL ELSE CAST(" + col + " AS JSONB) END)")
		v := base
		if len(segs) > 0 {
			ps := []any{"jsonb_extract_path(", base}
			for _, s := range segs {
				ps = append(ps, ", ", param(s))
			}
			v = build(append(ps, ")")...)
		}
		j = jsonDoc{
			typ: build("jsonb_typeof(", v, ")"), num: build("CAST(", v, " AS FLOAT8)"), str: build("(", v, " #>> '{}')"),
			present: build("(", v, " IS NOT NULL)"),
			guard:   boolean(build(col + " ~ '(NaN|Infinity)'")),
			tNum:    "'number'", tStr: "'string'", tNull: "'null'",
		}
		j.isBool = func(b bool) expr {
			return build("(CASE WHEN jsonb_typeof(", v, ") = 'boolean' THEN CAST(", v, " AS BOOLEAN) = ", strings.ToUpper(strconv.FormatBool(b)), " ELSE FALSE END)")
		}
	case MySQL:
		v := build("(CASE WHEN JSON_VALID("+col+") THEN JSON_EXTRACT("+col+", ", param(jsonPath(segs)), ") END)")
		j = jsonDoc{
			typ: build("JSON_TYPE(", v, ")"), num: build("CAST(JSON_UNQUOTE(", v, ") AS DOUBLE)"), str: build("JSON_UNQUOTE(", v, ")"),
			present: build("(", v, " IS NOT NULL)"),
			guard:   boolean(build("(" + col + " IS NOT NULL AND " + col + " <> '' AND NOT JSON_VALID(" + col + "))")),
			tNum:    "'INTEGER', 'DOUBLE', 'DECIMAL', 'UNSIGNED INTEGER'", tStr: "'STRING'", tNull: "'NULL'",
		}
		j.isBool = func(b bool) expr {
			return build("(JSON_TYPE(", v, ") = 'BOOLEAN' AND JSON_UNQUOTE(", v, ") = '", strconv.FormatBool(b), "')")
		}
	default:
		p := jsonPath(segs)
		typ := build("(CASE WHEN json_valid("+col+") THEN json_type("+col+", ", param(p), ") END)")
		v := build("(CASE WHEN json_valid("+col+") THEN json_extract("+col+", ", param(p), ") END)")
		j = jsonDoc{
			typ: typ, num: v, str: v,
			present: build("(", typ, " IS NOT NULL)"),
			guard:   boolean(build("(" + col + " IS NOT NULL AND " + col + " <> '' AND NOT json_valid(" + col + "))")),
			tNum:    "'integer', 'real'", tStr: "'text'", tNull: "'null'",
		}
		j.isBool = func(b bool) expr {
			return build("(", typ, " = '", strconv.FormatBool(b), "')")
		}
	}
	return j, true
}

// jsonPath is a MySQL and SQLite JSON path with every key quoted.
func jsonPath(segs []string) string {
	var b strings.Builder
	b.WriteString("$")
	for _, s := range segs {
		b.WriteString(`."` + s + `"`)
	}
	return b.String()
}

func (c *sqlCompiler) jsonLeaf(col string, segs []string, op string, lit any, re *regexp.Regexp) cond[frag] {
	a := sqlAlgebra{}
	j, ok := c.jsonDoc(col, segs)
	if !ok {
		return unknownCond(a)
	}
	when := func(types string, then expr) frag {
		return boolean(build("CASE WHEN ", j.typ, " IN ("+types+") THEN ", then, " ELSE FALSE END"))
	}
	var f frag
	switch op {
	case "exists":
		f = boolean(j.present)
	case "isstring":
		f = boolean(build(j.typ, " IN ("+j.tStr+")"))
	case "=~":
		l := requiredLiteral(re)
		p := boolean(build(j.typ, " IN ("+j.tStr+")"))
		if l != "" {
			p = when(j.tStr, c.like(j.str, l))
		}
		return cond[frag]{t: a.False(), p: a.Or(j.guard, p)}
	default:
		switch v := lit.(type) {
		case float64:
			f = when(j.tNum, build(j.num, " "+sqlOps[op]+" ", param(v)))
		case string:
			f = when(j.tStr, build(c.bin(j.str), " "+sqlOps[op]+" ", c.bin(param(v))))
		case bool:
			if op != "==" {
				return constCond(a, false)
			}
			f = boolean(j.isBool(v))
		case nil:
			if op != "==" {
				return constCond(a, false)
			}
			f = boolean(build(j.typ, " IN ("+j.tNull+")"))
		default:
			return unknownCond(a)
		}
	}
	return cond[frag]{t: f, p: a.Or(j.guard, f)}
}

// sortExpr is the SQL of a sort key the database orders exactly as Select
// does; nullable tells whether it may be NULL (null sorts first).
func (c *sqlCompiler) sortExpr(segs []string) (string, bool, bool) {
	if len(segs) != 1 {
		if len(segs) == 2 && segs[0] == "experiment" && segs[1] == "name" {
			return c.inline(c.bin(c.nameExpr())), false, true
		}
		return "", false, false
	}
	switch segs[0] {
	case "name":
		return c.inline(c.bin(c.nameExpr())), false, true
	case "command":
		return c.inline(c.bin(c.commandExpr())), false, true
	case "start_time", "stop_time", "heartbeat", "queue_time":
		return "r." + segs[0], true, true
	}
	return "", false, false
}

// inline returns the SQL of an expression that has no arguments.
func (c *sqlCompiler) inline(e expr) string {
	if len(e.args) > 0 {
		panic("query: a sort expression with arguments")
	}
	return e.s
}
