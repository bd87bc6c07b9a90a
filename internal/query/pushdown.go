package query

import (
	"regexp"
	"regexp/syntax"
	"time"
)

// A push-down compiles each condition into two store conditions: t holds
// only for runs that certainly match, p for every run that may match
// (t implies p). Where the store can decide exactly as Match does, t and p
// are the same condition and the leaf is exact. Negation swaps them
// (not p, not t), which is why both are kept: a condition the store can
// only approximate from above can still be negated soundly. The store is
// sent p; Select confirms in process.

// algebra builds the conditions of one store; constants are folded.
type algebra[F any] interface {
	True() F
	False() F
	And(a, b F) F
	Or(a, b F) F
	Not(a F) F
}

// cond is a condition pushed down: t ⊆ p.
type cond[F any] struct {
	t, p  F
	exact bool
}

// leafer compiles one primitive condition on a field for a store:
// op is one of == < <= > >= (against the literal lit), =~ (re), exists
// (the field is present, null included) or isstring. Every other
// operator is built from these by compileNode.
type leafer[F any] func(segs []string, op string, lit any, re *regexp.Regexp) cond[F]

func unknownCond[F any](a algebra[F]) cond[F] { return cond[F]{t: a.False(), p: a.True()} }
func constCond[F any](a algebra[F], b bool) cond[F] {
	if b {
		return cond[F]{t: a.True(), p: a.True(), exact: true}
	}
	return cond[F]{t: a.False(), p: a.False(), exact: true}
}

func andCond[F any](a algebra[F], x, y cond[F]) cond[F] {
	return cond[F]{t: a.And(x.t, y.t), p: a.And(x.p, y.p), exact: x.exact && y.exact}
}

func orCond[F any](a algebra[F], x, y cond[F]) cond[F] {
	return cond[F]{t: a.Or(x.t, y.t), p: a.Or(x.p, y.p), exact: x.exact && y.exact}
}

func notCond[F any](a algebra[F], x cond[F]) cond[F] {
	return cond[F]{t: a.Not(x.p), p: a.Not(x.t), exact: x.exact}
}

// flipped is the operator with its sides swapped: 1 < x is x > 1.
var flipped = map[string]string{"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

// compileNode pushes down one node of the syntax tree.
func compileNode[F any](a algebra[F], leaf leafer[F], n node) cond[F] {
	switch x := n.(type) {
	case *andNode:
		return andCond(a, compileNode(a, leaf, x.l), compileNode(a, leaf, x.r))
	case *orNode:
		return orCond(a, compileNode(a, leaf, x.l), compileNode(a, leaf, x.r))
	case *notNode:
		return notCond(a, compileNode(a, leaf, x.x))
	case *litNode:
		b, ok := x.v.(bool)
		return constCond(a, ok && b)
	case *pathNode: // a bare field is true when it is the boolean true
		return leaf(x.segs, "==", true, nil)
	case *callNode: // exists
		return leaf(x.path.segs, "exists", nil, nil)
	case *cmpNode:
		return compileCmp(a, leaf, x)
	}
	return unknownCond(a)
}

func compileCmp[F any](a algebra[F], leaf leafer[F], c *cmpNode) cond[F] {
	lp, lPath := c.l.(*pathNode)
	rp, rPath := c.r.(*pathNode)
	_, lConst := c.l.(*litNode)
	_, rConst := c.r.(*litNode)
	_, rList := c.r.(*listNode)
	rConst = rConst || rList
	switch {
	case lConst && rConst:
		// No field involved: the answer is the same for every run.
		return constCond(a, compare(c, nil, time.Time{}))
	case lPath && rConst:
	case rPath && lConst && flipped[c.op] != "":
		lp = rp
		c = &cmpNode{op: flipped[c.op], l: c.r, r: c.l}
	default:
		return unknownCond(a) // field against field, or a sub-condition
	}
	segs := lp.segs
	if _, isList := c.r.(*listNode); isList && c.op != "in" && c.op != "not in" {
		return unknownCond(a) // a list compared whole: decided in process
	}
	switch c.op {
	case "==", "<", "<=", ">", ">=":
		return leaf(segs, c.op, c.r.(*litNode).v, nil)
	case "!=":
		return andCond(a, leaf(segs, "exists", nil, nil), notCond(a, leaf(segs, "==", c.r.(*litNode).v, nil)))
	case "=~":
		return leaf(segs, "=~", nil, c.re)
	case "!~":
		return andCond(a, leaf(segs, "isstring", nil, nil), notCond(a, leaf(segs, "=~", nil, c.re)))
	case "in", "not in":
		anyOf := constCond(a, false)
		for _, e := range c.r.(*listNode).elems {
			anyOf = orCond(a, anyOf, leaf(segs, "==", e, nil))
		}
		if c.op == "in" {
			return anyOf
		}
		return andCond(a, leaf(segs, "exists", nil, nil), notCond(a, anyOf))
	}
	return unknownCond(a)
}

// compileQuery pushes down the name, status and where filters together.
func compileQuery[F any](q *Query, a algebra[F], leaf leafer[F]) cond[F] {
	c := constCond(a, true)
	if q.name != nil {
		c = andCond(a, c, leaf([]string{"name"}, "=~", nil, q.name))
	}
	if len(q.status) > 0 {
		anyOf := constCond(a, false)
		for _, s := range q.status {
			anyOf = orCond(a, anyOf, leaf([]string{"status"}, "==", s, nil))
		}
		c = andCond(a, c, anyOf)
	}
	if q.where != nil {
		c = andCond(a, c, compileNode(a, leaf, q.where))
	}
	return c
}

// requiredLiteral returns a piece of text every match of re contains, or
// "" when there is none the stores can use. It serves as a necessary
// condition (a substring search) that stores run before the exact
// regular expression runs in process.
func requiredLiteral(re *regexp.Regexp) string {
	r, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return ""
	}
	r = r.Simplify()
	lit := func(x *syntax.Regexp) string {
		if x.Op == syntax.OpLiteral && x.Flags&syntax.FoldCase == 0 {
			return string(x.Rune)
		}
		return ""
	}
	if s := lit(r); s != "" {
		return s
	}
	best := ""
	if r.Op == syntax.OpConcat {
		for _, s := range r.Sub {
			if l := lit(s); len(l) > len(best) {
				best = l
			}
		}
	}
	return best
}
