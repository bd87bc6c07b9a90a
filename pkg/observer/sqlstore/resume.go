package sqlstore

import (
	"context"
	"fmt"

	"github.com/sacred-go/sacred/pkg/observer"
)

var _ observer.Resumer = (*Observer)(nil)

// Resume takes up run ev.ID of the database (observer.Resumer): the run
// row must be there, and each metric series goes on at the position after
// its last stored point. The output needs nothing loaded: run_output rows
// are keyed by their offset, so the next beat's range [From, To) lands at
// From whatever this observer wrote before (the output stored so far ends
// where the last row, by pos, ends).
func (o *Observer) Resume(ctx context.Context, ev *observer.StartEvent) error {
	if o.runID != "" {
		return fmt.Errorf("%s: run %s was already started", o.name, o.runID)
	}
	ctx, cancel := o.opContext(ctx)
	defer cancel()
	var n int
	if err := o.db.QueryRowContext(ctx, o.q("SELECT COUNT(*) FROM run WHERE run_id = ?"), ev.ID).Scan(&n); err != nil {
		return o.wrap("look up run "+ev.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: no run %s: %w", o.name, ev.ID, observer.ErrNotFound)
	}
	rows, err := o.db.QueryContext(ctx, o.q("SELECT name, MAX(seq) FROM metric WHERE run_id = ? GROUP BY name"), ev.ID)
	if err != nil {
		return o.wrap("read the metrics of run "+ev.ID, err)
	}
	defer rows.Close()
	points := map[string]int64{}
	for rows.Next() {
		var name string
		var last int64
		if err := rows.Scan(&name, &last); err != nil {
			return o.wrap("read the metrics of run "+ev.ID, err)
		}
		points[name] = last + 1
	}
	if err := rows.Err(); err != nil {
		return o.wrap("read the metrics of run "+ev.ID, err)
	}
	o.runID, o.points = ev.ID, points
	return nil
}
