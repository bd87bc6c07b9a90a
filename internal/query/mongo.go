package query

import (
	"regexp"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// MongoPlan is a query compiled for Sacred's runs documents: a find
// filter and a projection. Sort, indices, last and limit are Select's:
// MongoDB orders mixed types, and ids among equal keys, otherwise than
// the readers do.
type MongoPlan struct {
	Filter bson.D
	// Projection leaves out what no query reads (the output).
	Projection bson.D
	// Residual is true when the filter selects more runs than the query
	// (a necessary condition): Select removes the rest.
	Residual bool
}

// FindOptions are the options of the find: the projection.
func (p MongoPlan) FindOptions() *options.FindOptionsBuilder {
	return options.Find().SetProjection(p.Projection)
}

// Mongo compiles the query's filters for a runs collection. now fixes the
// moment DIED? is judged at.
func (q *Query) Mongo(now time.Time) MongoPlan {
	c := &mongoCompiler{cut: cutoff(now, q.deadAfter)}
	cd := compileQuery(q, mongoAlgebra{}, c.leaf)
	f := cd.p.d
	switch cd.p.k {
	case 1:
		f = bson.D{}
	case -1:
		f = bson.D{{Key: "_id", Value: bson.D{{Key: "$exists", Value: false}}}}
	}
	return MongoPlan{Filter: f, Projection: bson.D{{Key: "captured_out", Value: 0}}, Residual: !cd.exact}
}

// mdoc is a filter document; k marks the constants (1 all, -1 none).
type mdoc struct {
	d bson.D
	k int8
}

type mongoAlgebra struct{}

func (mongoAlgebra) True() mdoc  { return mdoc{k: 1} }
func (mongoAlgebra) False() mdoc { return mdoc{k: -1} }
func (mongoAlgebra) And(a, b mdoc) mdoc {
	switch {
	case a.k == -1 || b.k == -1:
		return mdoc{k: -1}
	case a.k == 1:
		return b
	case b.k == 1:
		return a
	}
	return mdoc{d: bson.D{{Key: "$and", Value: append(parts("$and", a.d), parts("$and", b.d)...)}}}
}
func (mongoAlgebra) Or(a, b mdoc) mdoc {
	switch {
	case a.k == 1 || b.k == 1:
		return mdoc{k: 1}
	case a.k == -1:
		return b
	case b.k == -1:
		return a
	}
	return mdoc{d: bson.D{{Key: "$or", Value: append(parts("$or", a.d), parts("$or", b.d)...)}}}
}
func (mongoAlgebra) Not(a mdoc) mdoc {
	if a.k != 0 {
		return mdoc{k: -a.k}
	}
	return mdoc{d: bson.D{{Key: "$nor", Value: bson.A{a.d}}}}
}

// parts flattens nested $and (or $or) into one list.
func parts(op string, d bson.D) bson.A {
	if len(d) == 1 && d[0].Key == op {
		return append(bson.A{}, d[0].Value.(bson.A)...)
	}
	return bson.A{d}
}

func mexact(d bson.D) cond[mdoc] {
	m := mdoc{d: d}
	return cond[mdoc]{t: m, p: m, exact: true}
}

type mongoCompiler struct{ cut time.Time }

var mongoOps = map[string]string{"==": "$eq", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}

func (c *mongoCompiler) leaf(segs []string, op string, lit any, re *regexp.Regexp) cond[mdoc] {
	a := mongoAlgebra{}
	root, rest := segs[0], segs[1:]
	switch {
	case root == "status" && len(rest) == 0:
		return c.statusLeaf(op, lit)
	case (root == "name" && len(rest) == 0) || (root == "experiment" && len(rest) == 1 && rest[0] == "name"):
		return c.stringLeaf("experiment.name", op, lit, re)
	case root == "command" && len(rest) == 0:
		return c.stringLeaf("command", op, lit, re)
	case (root == "start_time" || root == "stop_time" || root == "heartbeat") && len(rest) == 0:
		return c.timeLeaf(root, op, lit)
	case root == "queue_time" && len(rest) == 0:
		return c.timeLeaf("meta.queue_time", op, lit)
	case root == "result" || ((root == "config" || root == "info") && len(rest) > 0):
		return c.valueLeaf(segs, op, lit, re)
	}
	return unknownCond(a)
}

func (c *mongoCompiler) statusLeaf(op string, lit any) cond[mdoc] {
	a := mongoAlgebra{}
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
	running := mdoc{d: bson.D{{Key: "status", Value: "RUNNING"}}}
	stale := mdoc{d: bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "heartbeat", Value: bson.D{{Key: "$lt", Value: c.cut}}}},
		bson.D{{Key: "heartbeat", Value: nil}, {Key: "start_time", Value: bson.D{{Key: "$lt", Value: c.cut}}}},
	}}}}
	switch s {
	case StatusDied:
		return mexact(a.And(running, stale).d)
	case "RUNNING":
		return mexact(a.And(running, a.Not(stale)).d)
	}
	return mexact(bson.D{{Key: "status", Value: s}})
}

func (c *mongoCompiler) stringLeaf(field, op string, lit any, re *regexp.Regexp) cond[mdoc] {
	a := mongoAlgebra{}
	switch op {
	case "exists", "isstring":
		return constCond(a, true) // the readers give "" for a missing one
	case "=~":
		l := requiredLiteral(re)
		if l == "" {
			return unknownCond(a)
		}
		return cond[mdoc]{t: a.False(), p: mdoc{d: bson.D{{Key: field, Value: bson.D{{Key: "$regex", Value: regexp.QuoteMeta(l)}}}}}}
	}
	s, ok := lit.(string)
	if !ok {
		return constCond(a, false)
	}
	return mexact(bson.D{{Key: field, Value: bson.D{{Key: mongoOps[op], Value: s}}}})
}

// timeLeaf compares a BSON date field. The stored times are whole
// milliseconds, so a literal between two milliseconds is rounded the way
// that keeps the comparison exact.
func (c *mongoCompiler) timeLeaf(field, op string, lit any) cond[mdoc] {
	a := mongoAlgebra{}
	switch op {
	case "exists":
		return constCond(a, true) // a missing time reads as null
	case "isstring", "=~":
		return constCond(a, false)
	}
	if lit == nil && op == "==" {
		return mexact(bson.D{{Key: field, Value: nil}})
	}
	s, ok := lit.(string)
	if !ok {
		return constCond(a, false)
	}
	t, ok := parseTime(s)
	if !ok {
		return constCond(a, false)
	}
	floor := t.Truncate(time.Millisecond)
	whole := floor.Equal(t)
	ceil := floor
	if !whole {
		ceil = floor.Add(time.Millisecond)
	}
	var m bson.D
	switch op {
	case "==":
		if !whole {
			return constCond(a, false)
		}
		m = bson.D{{Key: "$eq", Value: t}}
	case ">":
		if whole {
			m = bson.D{{Key: "$gt", Value: t}}
		} else {
			m = bson.D{{Key: "$gte", Value: ceil}}
		}
	case ">=":
		m = bson.D{{Key: "$gte", Value: ceil}}
	case "<":
		if whole {
			m = bson.D{{Key: "$lt", Value: t}}
		} else {
			m = bson.D{{Key: "$lte", Value: floor}}
		}
	case "<=":
		m = bson.D{{Key: "$lte", Value: floor}}
	}
	return mexact(bson.D{{Key: field, Value: m}})
}

// notArray keeps MongoDB from looking into arrays: a query on a.b matches
// a document whose a or a.b is an array with a matching element, where
// Match sees an array (which equals no scalar) or nothing.
var notArray = bson.E{Key: "$not", Value: bson.D{{Key: "$type", Value: "array"}}}

// valueLeaf is a leaf over a result, config or info value.
func (c *mongoCompiler) valueLeaf(segs []string, op string, lit any, re *regexp.Regexp) cond[mdoc] {
	a := mongoAlgebra{}
	for _, s := range segs[1:] {
		// Keys MongoDB paths cannot name, and array indices (a.0 also
		// means key "0" in MongoDB): decided in process.
		if s == "" || strings.ContainsAny(s, ".") || strings.HasPrefix(s, "$") || allDigits(s) {
			return unknownCond(a)
		}
	}
	field := strings.Join(segs, ".")
	var guards bson.D
	for i := 1; i < len(segs); i++ {
		guards = append(guards, bson.E{Key: strings.Join(segs[:i], "."), Value: bson.D{notArray}})
	}
	with := func(m bson.D) cond[mdoc] {
		return mexact(append(append(bson.D{}, guards...), bson.E{Key: field, Value: m}))
	}
	switch op {
	case "exists":
		return with(bson.D{{Key: "$exists", Value: true}})
	case "isstring":
		return with(bson.D{{Key: "$type", Value: "string"}, notArray})
	case "=~":
		l := requiredLiteral(re)
		m := bson.D{{Key: "$type", Value: "string"}}
		if l != "" {
			m = bson.D{{Key: "$regex", Value: regexp.QuoteMeta(l)}}
		}
		return cond[mdoc]{t: a.False(), p: with(m).p}
	}
	switch v := lit.(type) {
	case float64, string:
		return with(bson.D{{Key: mongoOps[op], Value: v}, notArray})
	case bool:
		if op != "==" {
			return constCond(a, false)
		}
		return with(bson.D{{Key: "$eq", Value: v}, notArray})
	case nil:
		if op != "==" {
			return constCond(a, false)
		}
		return with(bson.D{{Key: "$type", Value: "null"}, notArray})
	}
	return unknownCond(a)
}
