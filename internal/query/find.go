package query

import (
	"context"
	"errors"
	"time"

	"github.com/sacred-go/sacred/internal/readback"
	"github.com/sacred-go/sacred/pkg/observer"
)

// Find selects the query's runs from a store. A reader that is a
// readback.Finder evaluates the push-down where the data is (one find on
// MongoDB, one SELECT on SQL, only the needed files of the file store);
// any other reader is read run by run (Reader.Runs, then Reader.Run).
// Either way the result is exactly Select's. The runs a Finder returns
// carry no Output.
func (q *Query) Find(ctx context.Context, r observer.Reader, now time.Time) ([]*observer.Run, error) {
	if f, ok := r.(readback.Finder); ok {
		runs, err := f.Find(ctx, q.Request(now))
		if err != nil {
			return nil, err
		}
		return q.Select(runs, now)
	}
	ids, err := r.Runs(ctx)
	if err != nil {
		return nil, err
	}
	runs := make([]*observer.Run, 0, len(ids))
	for _, id := range ids {
		run, err := r.Run(ctx, id)
		if errors.Is(err, observer.ErrNotFound) {
			continue // deleted since it was listed
		}
		if err != nil {
			return nil, err
		}
		runs = append(runs, run)
	}
	return q.Select(runs, now)
}

// Request is the query as a readback.Finder is given it, with DIED?
// judged at now.
func (q *Query) Request(now time.Time) *readback.Request {
	return &readback.Request{
		Reads: q.reads(),
		Mongo: func() readback.MongoPlan {
			return readback.MongoPlan{Filter: q.Mongo(now).Filter}
		},
		SQL: func(dialect string, extended bool) readback.SQLPlan {
			p := q.SQL(Dialect(dialect), extended, now)
			return readback.SQLPlan{From: p.From, Where: p.Where, Args: p.Args, OrderBy: p.OrderBy, Limit: p.Limit}
		},
	}
}

// reads lists the top-level fields the where, the sort keys and the
// columns read.
func (q *Query) reads() map[string]bool {
	m := map[string]bool{}
	var visit func(n node)
	visit = func(n node) {
		switch x := n.(type) {
		case *pathNode:
			m[x.segs[0]] = true
		case *callNode:
			m[x.path.segs[0]] = true
		case *notNode:
			visit(x.x)
		case *andNode:
			visit(x.l)
			visit(x.r)
		case *orNode:
			visit(x.l)
			visit(x.r)
		case *cmpNode:
			visit(x.l)
			visit(x.r)
		}
	}
	if q.where != nil {
		visit(q.where)
	}
	for _, k := range q.sort {
		m[k.path.segs[0]] = true
	}
	for _, c := range q.columns {
		m[c.segs[0]] = true
	}
	return m
}
