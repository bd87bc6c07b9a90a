// Package query is one query over runs for every store: a small, safe
// expression language for --where, selection by name, status, index, last
// N, sort and limit, evaluated in process over observer.Run (Match,
// Select) and compiled for MongoDB (Mongo) and SQL (SQL).
//
// A compiled push-down is a necessary condition: the store returns every
// run the query selects, perhaps more, and Select over what it returned
// gives exactly the in-process result. A reader therefore always does
//
//	q, err := query.Compile(opts)
//	plan := q.SQL(query.PostgreSQL, extended, now) // or q.Mongo(now)
//	... fetch the runs the plan selects, in store order (oldest first) ...
//	runs, err = q.Select(runs, now)
//
// The language, its type rules and what is pushed down where are in
// docs/query.md.
package query

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Options is a query as the user gives it (sacred ls flags).
type Options struct {
	// Name is a regular expression searched in the experiment name
	// (Python's re.search: a match anywhere); "" selects every name.
	Name string
	// Where is an expression of the language, "" for none.
	Where string
	// Status selects runs whose display status is one of these;
	// StatusDied selects RUNNING runs that look dead. Empty for any.
	Status []string
	// Indices pick runs by position among those that match, as Sacred's
	// TinyDbReader: 0 the oldest, -1 the latest.
	Indices []int
	// Last keeps the N latest of the runs that match; 0 for all.
	Last int
	// Sort keys: a field path, "-" in front for descending.
	Sort []string
	// Limit keeps the first N after sorting; 0 for all.
	Limit int
	// Columns are field paths the caller will show; they count for
	// NeedsConfig, NeedsInfo and NeedsMetrics.
	Columns []string
	// DeadAfter is the age of the last heartbeat that makes a RUNNING
	// run StatusDied; 0 means DefaultDeadAfter.
	DeadAfter time.Duration
}

// Query is a compiled, checked query.
type Query struct {
	opts      Options
	name      *regexp.Regexp
	where     node // nil for none
	status    []string
	sort      []sortKey
	columns   []*pathNode
	deadAfter time.Duration
	needs     need
	unknown   []string
}

type sortKey struct {
	path *pathNode
	desc bool
	raw  string
}

// knownStatuses are upper-cased when given in another case.
var knownStatuses = []string{observer.StatusQueued, observer.StatusRunning, observer.StatusCompleted,
	observer.StatusFailed, observer.StatusInterrupted, observer.StatusTimeout, StatusDied}

// Compile checks a query. Its errors are one line naming the flag, what is
// wrong and where; a *SyntaxError is wrapped for a malformed --where.
func Compile(o Options) (*Query, error) {
	q := &Query{opts: o, deadAfter: o.DeadAfter}
	if q.deadAfter <= 0 {
		q.deadAfter = DefaultDeadAfter
	}
	if o.Name != "" {
		re, err := regexp.Compile(o.Name)
		if err != nil {
			return nil, fmt.Errorf("--name: invalid regular expression %q: %s", o.Name, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		q.name = re
	}
	if strings.TrimSpace(o.Where) != "" {
		n, err := parseExpr(o.Where)
		if err != nil {
			return nil, fmt.Errorf("--where: %w", err)
		}
		q.where = n
		q.visit(n)
	}
	for _, s := range o.Status {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, errors.New("--status: empty status; use one of " + strings.Join(knownStatuses, ", "))
		}
		for _, k := range knownStatuses {
			if strings.EqualFold(s, k) {
				s = k
			}
		}
		q.status = append(q.status, s)
	}
	if o.Last < 0 {
		return nil, fmt.Errorf("--last: %d is negative; give a number of runs", o.Last)
	}
	if o.Limit < 0 {
		return nil, fmt.Errorf("--limit: %d is negative; give a number of runs", o.Limit)
	}
	for _, s := range o.Sort {
		raw := strings.TrimSpace(s)
		k := sortKey{raw: raw}
		switch {
		case strings.HasPrefix(raw, "-"):
			k.desc, raw = true, raw[1:]
		case strings.HasPrefix(raw, "+"):
			raw = raw[1:]
		}
		p, err := parsePath(raw)
		if err != nil {
			return nil, fmt.Errorf("--sort %q: %w", s, err)
		}
		k.path = p
		q.addPath(p)
		q.sort = append(q.sort, k)
	}
	for _, c := range o.Columns {
		p, err := parsePath(strings.TrimSpace(c))
		if err != nil {
			return nil, fmt.Errorf("--columns %q: %w", c, err)
		}
		q.addPath(p)
		q.columns = append(q.columns, p)
	}
	return q, nil
}

// visit records the fields an expression reads.
func (q *Query) visit(n node) {
	switch x := n.(type) {
	case *pathNode:
		q.addPath(x)
	case *callNode:
		q.addPath(x.path)
	case *notNode:
		q.visit(x.x)
	case *andNode:
		q.visit(x.l)
		q.visit(x.r)
	case *orNode:
		q.visit(x.l)
		q.visit(x.r)
	case *cmpNode:
		q.visit(x.l)
		q.visit(x.r)
	}
}

func (q *Query) addPath(p *pathNode) {
	n, ok := roots[p.segs[0]]
	if !ok {
		q.unknown = append(q.unknown, strings.Join(p.segs, "."))
	}
	q.needs |= n
}

// NeedsConfig, NeedsInfo and NeedsMetrics tell whether the query (its
// where, sort keys or columns) reads the config, the info or the metrics:
// the file store reads config.json, info.json and metrics.json only then.
// Everything else is in run.json.
func (q *Query) NeedsConfig() bool  { return q.needs&needConfig != 0 }
func (q *Query) NeedsInfo() bool    { return q.needs&needInfo != 0 }
func (q *Query) NeedsMetrics() bool { return q.needs&needMetrics != 0 }

// UnknownFields lists the paths whose first part is not a field of a run
// (a likely typo: they match nothing), for a warning.
func (q *Query) UnknownFields() []string { return q.unknown }

// Columns returns the column paths as given.
func (q *Query) Columns() []string { return q.opts.Columns }

// Column returns the value of column i for a run: ok is false when the
// run has no such field. Times are time.Time, numbers float64.
func (q *Query) Column(r *observer.Run, i int, now time.Time) (any, bool) {
	return lookup(r, q.columns[i].segs, cutoff(now, q.deadAfter))
}

// Field returns the value of a field path for a run (see Column).
func Field(r *observer.Run, path string, now time.Time) (any, bool, error) {
	p, err := parsePath(path)
	if err != nil {
		return nil, false, err
	}
	v, ok := lookup(r, p.segs, cutoff(now, DefaultDeadAfter))
	return v, ok, nil
}

// Status returns the status to show for a run: its stored status, or
// StatusDied for a RUNNING run that looks dead at now.
func (q *Query) Status(r *observer.Run, now time.Time) string {
	return displayStatus(r, cutoff(now, q.deadAfter))
}

// Match tells whether a run passes the name, status and where filters.
func (q *Query) Match(r *observer.Run, now time.Time) bool {
	return q.match(r, cutoff(now, q.deadAfter))
}

func (q *Query) match(r *observer.Run, cut time.Time) bool {
	if q.name != nil && !q.name.MatchString(r.Experiment.Name) {
		return false
	}
	if len(q.status) > 0 {
		s, found := displayStatus(r, cut), false
		for _, w := range q.status {
			if s == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return q.where == nil || truth(q.where, r, cut)
}

// IndexError is an index past either end of the runs that match.
type IndexError struct {
	Index, Count int
}

func (e *IndexError) Error() string {
	switch {
	case e.Count == 0:
		return fmt.Sprintf("index %d: there are no runs to pick from", e.Index)
	case e.Index >= 0:
		return fmt.Sprintf("index %d must be less than the number of runs (%d): use 0 to %d, or -1 to -%d", e.Index, e.Count, e.Count-1, e.Count)
	}
	return fmt.Sprintf("index %d reaches before the first of the %d runs: use -1 to -%d, or 0 to %d", e.Index, e.Count, e.Count, e.Count-1)
}

// Select applies the whole query to runs given in store order (oldest
// first): the filters (Match), then the indices, then the last N, then
// the sort (stable: ties keep store order), then the limit. It returns a
// new slice; an index out of range is an *IndexError.
func (q *Query) Select(runs []*observer.Run, now time.Time) ([]*observer.Run, error) {
	cut := cutoff(now, q.deadAfter)
	out := make([]*observer.Run, 0, len(runs))
	for _, r := range runs {
		if q.match(r, cut) {
			out = append(out, r)
		}
	}
	if len(q.opts.Indices) > 0 {
		picked := make([]*observer.Run, 0, len(q.opts.Indices))
		for _, i := range q.opts.Indices {
			j := i
			if j < 0 {
				j += len(out)
			}
			if j < 0 || j >= len(out) {
				return nil, &IndexError{Index: i, Count: len(out)}
			}
			picked = append(picked, out[j])
		}
		out = picked
	}
	if q.opts.Last > 0 && len(out) > q.opts.Last {
		out = out[len(out)-q.opts.Last:]
	}
	if len(q.sort) > 0 {
		type keyed struct {
			r    *observer.Run
			vals []any
			oks  []bool
		}
		ks := make([]keyed, len(out))
		for i, r := range out {
			k := keyed{r: r, vals: make([]any, len(q.sort)), oks: make([]bool, len(q.sort))}
			for j, s := range q.sort {
				k.vals[j], k.oks[j] = lookup(r, s.path.segs, cut)
			}
			ks[i] = k
		}
		sort.SliceStable(ks, func(a, b int) bool {
			for j, s := range q.sort {
				c := sortCompare(ks[a].vals[j], ks[a].oks[j], ks[b].vals[j], ks[b].oks[j])
				if s.desc {
					c = -c
				}
				if c != 0 {
					return c < 0
				}
			}
			return false
		})
		for i := range ks {
			out[i] = ks[i].r
		}
	}
	if q.opts.Limit > 0 && len(out) > q.opts.Limit {
		out = out[:q.opts.Limit]
	}
	return out, nil
}

// truth evaluates a node as a condition: only true is true.
func truth(n node, r *observer.Run, cut time.Time) bool {
	switch x := n.(type) {
	case *andNode:
		return truth(x.l, r, cut) && truth(x.r, r, cut)
	case *orNode:
		return truth(x.l, r, cut) || truth(x.r, r, cut)
	case *notNode:
		return !truth(x.x, r, cut)
	}
	v, ok := value(n, r, cut)
	b, isBool := v.(bool)
	return ok && isBool && b
}

// value evaluates a node: ok is false for an absent field.
func value(n node, r *observer.Run, cut time.Time) (any, bool) {
	switch x := n.(type) {
	case *litNode:
		return x.v, true
	case *listNode:
		return x.elems, true
	case *pathNode:
		return lookup(r, x.segs, cut)
	case *callNode: // exists
		_, ok := lookup(r, x.path.segs, cut)
		return ok, true
	case *andNode, *orNode, *notNode:
		return truth(n, r, cut), true
	case *cmpNode:
		return compare(x, r, cut), true
	}
	return nil, false
}

func compare(c *cmpNode, r *observer.Run, cut time.Time) bool {
	a, aok := value(c.l, r, cut)
	b, bok := value(c.r, r, cut)
	if !aok || !bok {
		return false // an absent field matches nothing
	}
	switch c.op {
	case "==":
		return equal(a, b)
	case "!=":
		return !equal(a, b)
	case "<", "<=", ">", ">=":
		o, ok := order(a, b)
		if !ok {
			return false
		}
		switch c.op {
		case "<":
			return o < 0
		case "<=":
			return o <= 0
		case ">":
			return o > 0
		}
		return o >= 0
	case "=~", "!~":
		s, ok := a.(string)
		if !ok {
			return false
		}
		return c.re.MatchString(s) == (c.op == "=~")
	case "in", "not in":
		found := false
		for _, e := range b.([]any) {
			if equal(a, e) {
				found = true
				break
			}
		}
		return found == (c.op == "in")
	}
	return false
}
