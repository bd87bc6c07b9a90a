// Package sqlstore is the SQL observer (`-s URL`, `--sql=URL`): it records
// runs in PostgreSQL, MySQL/MariaDB or SQLite with the tables of Python
// Sacred's SqlObserver, so that either can read what the other wrote, plus
// a few extension tables of ours (metrics, the full output, the full
// result). See docs/observers/sql.md.
package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"io"

	"github.com/sacred-go/sacred/pkg/observer"
)

const (
	// outputChunk is the size of one row of run_output: well below
	// MySQL's default max_allowed_packet of 16 MiB.
	outputChunk = 1 << 20
	// outputCap bounds captured_out, which is rewritten at every beat.
	// Larger outputs keep their head and tail there; run_output always
	// holds all of it.
	outputCap  = 4 << 20
	outputHead = 1 << 20
	// metricBatch rows go into one INSERT.
	metricBatch = 200
)

// Observer records one run in an SQL database.
type Observer struct {
	observer.Base
	cfg  *Config
	db   *sql.DB
	d    dialect
	name string

	runID     string
	outStored int64 // bytes of output already in run_output
	outSeq    int   // next run_output.seq
	outCap    int   // bytes of captured_out we may write
	outHead   int
	warn      io.Writer // one-line warnings for the user
}

// New connects to the database of cfg and creates the tables that are
// missing, so that a wrong URL or an unreachable server is reported before
// the command starts. Errors are one line and never contain the password.
func New(ctx context.Context, cfg *Config, s observer.Settings) (*Observer, error) {
	db, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	o := &Observer{cfg: cfg, db: db, d: cfg.dialect, name: "sql " + Redact(cfg.raw),
		outCap: outputCap, outHead: outputHead, warn: s.Warner()}
	if err := ensureSchema(ctx, db, cfg.dialect); err != nil {
		db.Close()
		return nil, cfg.scrub(fmt.Errorf("%s: %w", o.name, err))
	}
	if cfg.dialect == dialectMySQL {
		if err := o.mysqlLimits(ctx); err != nil {
			db.Close()
			return nil, cfg.scrub(fmt.Errorf("%s: %w", o.name, err))
		}
	}
	return o, nil
}

// mysqlLimits shrinks the captured_out cap to what the column and the
// server's packet size allow: a run table made by SQLAlchemy has TEXT
// (64 KiB) there.
func (o *Observer) mysqlLimits(ctx context.Context) error {
	var octets sql.NullInt64
	err := o.db.QueryRowContext(ctx, `SELECT CHARACTER_OCTET_LENGTH FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'run' AND COLUMN_NAME = 'captured_out'`).Scan(&octets)
	if err != nil {
		return fmt.Errorf("read the size of run.captured_out: %w", err)
	}
	var packet int64
	if err := o.db.QueryRowContext(ctx, "SELECT @@max_allowed_packet").Scan(&packet); err != nil {
		return fmt.Errorf("read max_allowed_packet: %w", err)
	}
	limit := int64(o.outCap)
	if octets.Valid && octets.Int64 < limit {
		limit = octets.Int64
	}
	// Leave room for the other values of the heartbeat's UPDATE.
	if p := packet/2 - (1 << 10); p < limit {
		limit = p
	}
	o.outCap = int(limit)
	if o.outHead > o.outCap/4 {
		o.outHead = o.outCap / 4
	}
	return nil
}

// Name implements observer.Observer.
func (o *Observer) Name() string { return o.name }

// Priority implements observer.Observer.
func (o *Observer) Priority() int { return DefaultPriority }

// DB gives tests and tools the connection; it is closed by Close.
func (o *Observer) DB() *sql.DB { return o.db }

func (o *Observer) q(s string) string { return o.d.rebind(s) }

// wrap adds the operation and the observer's name, and scrubs secrets.
func (o *Observer) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return o.cfg.scrub(fmt.Errorf("%s: %s: %w", o.name, op, err))
}

// Close implements observer.Observer.
func (o *Observer) Close(context.Context) error {
	return o.wrap("close", o.db.Close())
}
