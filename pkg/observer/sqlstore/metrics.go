package sqlstore

import (
	"context"
	"strings"

	"github.com/sacred-go/sacred/pkg/observer"
)

// LogMetrics appends the new points to our metric table in one
// transaction. Each point is written at its position in its metric's
// series (metric.seq, unique per run and name) and a point already there
// is left alone, so a batch sent again after an error (the retry
// decorator puts the failed points first) is never stored twice, even
// when the error hid a commit that went through.
//
// A name is stored as clean text of at most 256 characters (see fit): a
// name with NUL or bytes that are not UTF-8, which PostgreSQL refuses,
// would otherwise fail the whole batch at every beat.
func (o *Observer) LogMetrics(ctx context.Context, ev *observer.MetricsEvent) error {
	ctx, cancel := o.opContext(ctx)
	defer cancel()
	type row struct {
		name string
		seq  int64
		p    observer.MetricPoint
	}
	var rows []row
	next := map[string]int64{}
	for _, s := range ev.Metrics {
		name := fit(s.Name, 256)
		if name != s.Name {
			o.warnOnce("metric "+s.Name, "metric name %q stored as %q (NUL, bytes that are not UTF-8 or more than 256 characters)", s.Name, name)
		}
		if _, ok := next[name]; !ok {
			next[name] = o.points[name]
		}
		for _, p := range s.Points {
			rows = append(rows, row{name, next[name], p})
			next[name]++
		}
	}
	if len(rows) == 0 {
		return nil
	}
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return o.wrap("metrics: begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	conflict := o.d.onConflict([]string{"run_id", "name", "seq"}, nil)
	for len(rows) > 0 {
		n := min(len(rows), metricBatch)
		var b strings.Builder
		b.WriteString("INSERT INTO metric (run_id, name, seq, step, value, timestamp) VALUES ")
		args := make([]any, 0, 6*n)
		for i, r := range rows[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?, ?)")
			args = append(args, o.runID, r.name, r.seq, r.p.Step, o.float(r.p.Value), o.d.tm(r.p.Time))
		}
		b.WriteString(conflict)
		if _, err := tx.ExecContext(ctx, o.q(b.String()), args...); err != nil {
			return o.wrap("insert metrics", err)
		}
		rows = rows[n:]
	}
	if err := tx.Commit(); err != nil {
		return o.wrap("metrics: commit", err)
	}
	for name, n := range next {
		o.points[name] = n
	}
	return nil
}
