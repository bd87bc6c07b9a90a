package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Completed implements observer.Observer.
func (o *Observer) Completed(ctx context.Context, ev *observer.CompletedEvent) error {
	ctx, cancel := o.opContext(ctx)
	defer cancel()
	return o.finish(ctx, "completed", func(tx *sql.Tx) error {
		q := "UPDATE run SET stop_time = ?, status = ?"
		args := []any{o.d.tm(ev.StopTime), observer.StatusCompleted}
		if ev.HasResult {
			q += ", result = ?"
			args = append(args, o.resultFloat(ev.Result))
		}
		if _, err := tx.ExecContext(ctx, o.q(q+" WHERE run_id = ?"), append(args, o.runID)...); err != nil {
			return err
		}
		if ev.HasResult {
			return o.setResultJSON(ctx, tx, ev.Result)
		}
		return nil
	})
}

// Interrupted implements observer.Observer.
func (o *Observer) Interrupted(ctx context.Context, ev *observer.InterruptedEvent) error {
	ctx, cancel := o.opContext(ctx)
	defer cancel()
	status := ev.Status
	if status != observer.StatusTimeout {
		status = observer.StatusInterrupted
	}
	return o.finish(ctx, "interrupted", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, o.q("UPDATE run SET stop_time = ?, status = ? WHERE run_id = ?"), o.d.tm(ev.StopTime), status, o.runID)
		return err
	})
}

// Failed implements observer.Observer. fail_trace is the lines joined with
// "\n" as Sacred writes it; run_extra keeps the list.
func (o *Observer) Failed(ctx context.Context, ev *observer.FailedEvent) error {
	ctx, cancel := o.opContext(ctx)
	defer cancel()
	trace := ev.Trace
	if trace == nil {
		trace = []string{}
	}
	js, err := marshal(escAll(trace))
	if err != nil {
		return o.wrap("encode fail trace", err)
	}
	return o.finish(ctx, "failed", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, o.q("UPDATE run SET stop_time = ?, status = ?, fail_trace = ? WHERE run_id = ?"),
			o.d.tm(ev.StopTime), observer.StatusFailed, o.fits("fail trace", cleanText(strings.Join(trace, "\n"))), o.runID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, o.q("UPDATE run_extra SET fail_trace = ? WHERE run_id = ?"), o.fits("fail trace", js), o.runID)
		return err
	})
}

func (o *Observer) finish(ctx context.Context, op string, f func(*sql.Tx) error) error {
	if o.runID == "" {
		return fmt.Errorf("%s: %s: the run was never started in this store", o.name, op)
	}
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return o.wrap(op+": begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if err := f(tx); err != nil {
		return o.wrap(op, err)
	}
	return o.wrap(op+": commit", tx.Commit())
}
