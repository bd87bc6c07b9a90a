package sqlstore

import (
	"context"
	"strings"

	"github.com/sacred-go/sacred/pkg/observer"
)

// LogMetrics appends the new points to our metric table in one
// transaction, so a failed call leaves nothing behind to be doubled when
// the runner sends the points again.
func (o *Observer) LogMetrics(ctx context.Context, ev *observer.MetricsEvent) error {
	type row struct {
		name string
		p    observer.MetricPoint
	}
	var rows []row
	for _, s := range ev.Metrics {
		for _, p := range s.Points {
			rows = append(rows, row{truncate(s.Name, 256), p})
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
	for len(rows) > 0 {
		n := min(len(rows), metricBatch)
		var b strings.Builder
		b.WriteString("INSERT INTO metric (run_id, name, step, value, timestamp) VALUES ")
		args := make([]any, 0, 5*n)
		for i, r := range rows[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?)")
			args = append(args, o.runID, r.name, r.p.Step, o.float(r.p.Value), o.d.tm(r.p.Time))
		}
		if _, err := tx.ExecContext(ctx, o.q(b.String()), args...); err != nil {
			return o.wrap("insert metrics", err)
		}
		rows = rows[n:]
	}
	return o.wrap("metrics: commit", tx.Commit())
}
