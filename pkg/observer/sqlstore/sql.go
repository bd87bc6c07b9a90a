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
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

const (
	// outputChunk is the largest row of run_output: well below MySQL's
	// default max_allowed_packet of 16 MiB.
	outputChunk = 1 << 20
	// outputCap bounds captured_out, which is rewritten at every beat.
	// Larger outputs keep their head and tail there; run_output always
	// holds all of it.
	outputCap  = 4 << 20
	outputHead = 1 << 20
	// metricBatch rows go into one INSERT.
	metricBatch = 200
	// maxBlob is the largest artifact or resource stored as one BLOB in
	// PostgreSQL and SQLite (both hold up to 1 GB); larger files, and in
	// MySQL files larger than a packet, go into file_chunk rows.
	maxBlob = 256 << 20
	// OpTimeout bounds every database operation whose context has no
	// deadline of its own, so that a server that stops answering cannot
	// freeze the observer.
	OpTimeout = 30 * time.Second
)

// Observer records one run in an SQL database.
type Observer struct {
	observer.Base
	cfg  *Config
	db   *sql.DB
	d    dialect
	name string
	warn io.Writer // one-line warnings for the user

	opTimeout time.Duration
	outCap    int // bytes of captured_out we may write
	outHead   int
	// maxValue is the largest text or BLOB value one statement may carry:
	// in MySQL what max_allowed_packet leaves (packet is its value).
	maxValue int64
	packet   int64

	runID string
	// points counts, per stored metric name, the points committed: the
	// position of the next point, so a batch sent again after an error is
	// written at the same positions and not doubled.
	points map[string]int64
	warned map[string]bool // warnings given once per run
}

// New connects to the database of cfg and creates the tables that are
// missing, so that a wrong URL or an unreachable server is reported before
// the command starts. Errors are one line and never contain the password.
func New(ctx context.Context, cfg *Config, s observer.Settings) (*Observer, error) {
	ctx, cancel := withTimeout(ctx, OpTimeout)
	defer cancel()
	db, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	o := &Observer{cfg: cfg, db: db, d: cfg.dialect, name: "sql " + Redact(cfg.raw), warn: s.Warner(),
		opTimeout: OpTimeout, outCap: outputCap, outHead: outputHead, maxValue: maxBlob,
		points: map[string]int64{}, warned: map[string]bool{}}
	if err := ensureSchema(ctx, db, cfg.dialect); err != nil {
		db.Close()
		return nil, cfg.scrub(fmt.Errorf("%s: %w", o.name, err))
	}
	if err := checkLayout(ctx, db); err != nil {
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

// mysqlLimits reads the server's max_allowed_packet, which bounds every
// value (a larger one resets the connection), and shrinks the captured_out
// cap to what the column and the packet allow: a run table made by
// SQLAlchemy has TEXT (64 KiB) there.
func (o *Observer) mysqlLimits(ctx context.Context) error {
	var octets sql.NullInt64
	err := o.db.QueryRowContext(ctx, `SELECT CHARACTER_OCTET_LENGTH FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'run' AND COLUMN_NAME = 'captured_out'`).Scan(&octets)
	if err != nil {
		return fmt.Errorf("read the size of run.captured_out: %w", err)
	}
	if err := o.db.QueryRowContext(ctx, "SELECT @@max_allowed_packet").Scan(&o.packet); err != nil {
		return fmt.Errorf("read max_allowed_packet: %w", err)
	}
	// The rest of a statement is small; leave it room.
	o.maxValue = max(o.packet-(16<<10), 1<<10)
	limit := int64(o.outCap)
	if octets.Valid && octets.Int64 < limit {
		limit = octets.Int64
	}
	if p := o.maxValue / 2; p < limit {
		limit = p
	}
	o.outCap = int(limit)
	if o.outHead > o.outCap/4 {
		o.outHead = o.outCap / 4
	}
	return nil
}

// withTimeout bounds ctx by d unless it has a deadline already.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// opContext bounds one operation of the observer (see OpTimeout).
func (o *Observer) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return withTimeout(ctx, o.opTimeout)
}

// fits returns s, or NULL with a warning when s is larger than one value
// may be: a value larger than MySQL's max_allowed_packet would reset the
// connection and fail every later call.
func (o *Observer) fits(what, s string) any {
	if int64(len(s)) <= o.maxValue {
		return s
	}
	o.warnOnce(what, "%s not stored: its %d bytes are more than %s", what, len(s), o.limitText())
	return nil
}

// limitText describes the limit of one value, naming the server setting.
func (o *Observer) limitText() string {
	if o.d == dialectMySQL {
		return fmt.Sprintf("the server's max_allowed_packet (%d bytes) allows; raise max_allowed_packet to keep it", o.packet)
	}
	return fmt.Sprintf("the %d bytes one value may have", o.maxValue)
}

// warnOnce writes a one-line warning, once per key and run.
func (o *Observer) warnOnce(key, format string, args ...any) {
	if o.warned[key] {
		return
	}
	o.warned[key] = true
	fmt.Fprintf(o.warn, "sacred: %s: %s\n", o.name, fmt.Sprintf(format, args...))
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

// Close implements observer.Observer. It returns when ctx is done even if
// the driver still waits for a connection to close.
func (o *Observer) Close(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- o.db.Close() }()
	select {
	case err := <-done:
		return o.wrap("close", err)
	case <-ctx.Done():
		return o.wrap("close", ctx.Err())
	}
}
