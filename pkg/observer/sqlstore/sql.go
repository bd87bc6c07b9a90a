// Package sqlstore is the SQL observer (`-s URL`, `--sql=URL`): it records
// runs in PostgreSQL, MySQL/MariaDB or SQLite with the tables of Python
// Sacred's SqlObserver, so that either can read what the other wrote, plus
// a few extension tables of ours (metrics, the full output, the full
// result). See docs/observers/sql.md.
package sqlstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

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

// Queued implements observer.Observer.
func (o *Observer) Queued(ctx context.Context, ev *observer.StartEvent) (string, error) {
	return o.insertRun(ctx, ev, observer.StatusQueued)
}

// Started implements observer.Observer.
func (o *Observer) Started(ctx context.Context, ev *observer.StartEvent) (string, error) {
	return o.insertRun(ctx, ev, observer.StatusRunning)
}

// errRetry asks insertRun for one more attempt after a lost race.
var errRetry = errors.New("run_id taken concurrently")

func (o *Observer) insertRun(ctx context.Context, ev *observer.StartEvent, status string) (string, error) {
	if len(ev.ID) > 24 {
		return "", fmt.Errorf("%s: the run id %q is longer than the 24 characters of run.run_id", o.name, ev.ID)
	}
	for attempt := 0; ; attempt++ {
		id, err := o.tryInsertRun(ctx, ev, status)
		if errors.Is(err, errRetry) && attempt < 20 {
			continue
		}
		if err != nil {
			return "", err
		}
		o.runID = id
		return id, nil
	}
}

func (o *Observer) tryInsertRun(ctx context.Context, ev *observer.StartEvent, status string) (string, error) {
	// Get-or-create of experiments and hosts is a check then an insert;
	// runs starting together take turns so that no duplicate rows
	// appear. SQLite's write lock does it by itself; PostgreSQL takes a
	// lock that ends with the transaction; MySQL's named lock belongs to
	// the session, so it is held on one connection until after commit.
	var tx *sql.Tx
	var err error
	if o.d == dialectMySQL {
		conn, err := o.db.Conn(ctx)
		if err != nil {
			return "", o.wrap("connect", err)
		}
		defer conn.Close()
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK('sacred_run_insert', 30)").Scan(&got); err != nil {
			return "", o.wrap("lock", err)
		}
		if got.Int64 != 1 {
			return "", fmt.Errorf("%s: another process held the lock sacred_run_insert for more than 30 s", o.name)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK('sacred_run_insert')") //nolint:errcheck // released on disconnect anyway
		tx, err = conn.BeginTx(ctx, nil)
		if err != nil {
			return "", o.wrap("begin", err)
		}
	} else {
		tx, err = o.db.BeginTx(ctx, nil)
		if err != nil {
			return "", o.wrap("begin", err)
		}
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if o.d == dialectPostgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(7305043)"); err != nil {
			return "", o.wrap("lock", err)
		}
	}
	if ev.ID != "" {
		var n int
		err := tx.QueryRowContext(ctx, o.q("SELECT COUNT(*) FROM run WHERE run_id = ?"), ev.ID).Scan(&n)
		if err != nil {
			return "", o.wrap("look up run "+ev.ID, err)
		}
		if n > 0 {
			return "", fmt.Errorf("%s: run %s: %w", o.name, ev.ID, observer.ErrIDTaken)
		}
	}
	expID, err := o.experimentID(ctx, tx, &ev.Experiment)
	if err != nil {
		return "", err
	}
	var hostID any
	if ev.Host != nil {
		h, err := o.hostID(ctx, tx, ev.Host)
		if err != nil {
			return "", err
		}
		hostID = h
	}
	config, err := marshal(ev.Config)
	if err != nil {
		return "", o.wrap("encode config", err)
	}
	prio := 0.0
	if ev.Meta.Priority != nil {
		prio = *ev.Meta.Priority
	}
	var start, queue any
	if status == observer.StatusQueued {
		qt := ev.Time
		if ev.Meta.QueueTime != nil {
			qt = *ev.Meta.QueueTime
		}
		queue = o.d.tm(qt)
	} else {
		start = o.d.tm(ev.Time)
	}
	var runID any // NULL until the row's own id is known
	if ev.ID != "" {
		runID = ev.ID
	}
	args := []any{runID, truncate(ev.Command, 64), start, queue, prio, ev.Meta.Comment,
		config, "{}", status, hostID, expID}
	const ins = `INSERT INTO run (run_id, command, start_time, queue_time, priority, comment, config, info, status, host_id, experiment_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	var rowID int64
	if o.d == dialectPostgres {
		err = tx.QueryRowContext(ctx, o.q(ins+" RETURNING id"), args...).Scan(&rowID)
	} else {
		var res sql.Result
		res, err = tx.ExecContext(ctx, ins, args...)
		if err == nil {
			rowID, err = res.LastInsertId()
		}
	}
	if err != nil {
		if isUnique(err) && ev.ID != "" {
			return "", fmt.Errorf("%s: run %s: %w", o.name, ev.ID, observer.ErrIDTaken)
		}
		if isUnique(err) {
			return "", errRetry
		}
		return "", o.wrap("insert run", err)
	}
	id := ev.ID
	if id == "" {
		// Our sequence: run_id is the row's autoincrement id, moved on
		// past run_ids taken by -i or by Python Sacred (which uses
		// max(id)+1).
		n := rowID
		for ; ; n++ {
			var c int
			if err := tx.QueryRowContext(ctx, o.q("SELECT COUNT(*) FROM run WHERE run_id = ?"), strconv.FormatInt(n, 10)).Scan(&c); err != nil {
				return "", o.wrap("look up run id", err)
			}
			if c == 0 {
				break
			}
		}
		id = strconv.FormatInt(n, 10)
		if _, err := tx.ExecContext(ctx, o.q("UPDATE run SET run_id = ? WHERE id = ?"), id, rowID); err != nil {
			if isUnique(err) {
				return "", errRetry
			}
			return "", o.wrap("set run_id", err)
		}
	}
	if err := o.insertExtra(ctx, tx, id, ev); err != nil {
		return "", err
	}
	if err := tx.Commit(); err != nil {
		if isUnique(err) {
			return "", errRetry
		}
		return "", o.wrap("commit run "+id, err)
	}
	return id, nil
}

// extraExperiment, extraHost and extraMeta are what run_extra keeps of
// the start event beyond Sacred's columns.
type extraExperiment struct {
	Name         string                `json:"name"`
	BaseDir      string                `json:"base_dir"`
	MainFile     string                `json:"mainfile,omitempty"`
	Sources      [][2]string           `json:"sources"`
	Dependencies []string              `json:"dependencies"`
	Repositories []observer.Repository `json:"repositories"`
}

type extraHost struct {
	Hostname    string            `json:"hostname"`
	OS          [2]string         `json:"os"`
	CPU         string            `json:"cpu,omitempty"`
	CPUCount    int               `json:"cpu_count"`
	MemoryTotal uint64            `json:"memory_total"`
	GPUs        *observer.GPUInfo `json:"gpus,omitempty"`
	ENV         map[string]string `json:"ENV,omitempty"`
}

type extraMeta struct {
	Command       string         `json:"command"`
	Argv          []string       `json:"argv,omitempty"`
	Cwd           string         `json:"cwd,omitempty"`
	Options       map[string]any `json:"options,omitempty"`
	Comment       string         `json:"comment,omitempty"`
	Priority      *float64       `json:"priority,omitempty"`
	ConfigUpdates map[string]any `json:"config_updates,omitempty"`
	NamedConfigs  []string       `json:"named_configs,omitempty"`
	QueueTime     string         `json:"queue_time,omitempty"`
}

func exInfo(e *observer.Experiment) extraExperiment {
	x := extraExperiment{Name: e.Name, BaseDir: e.BaseDir, MainFile: e.MainFile,
		Sources: [][2]string{}, Dependencies: e.Dependencies, Repositories: e.Repositories}
	for _, s := range e.Sources {
		x.Sources = append(x.Sources, [2]string{s.Name, s.MD5})
	}
	if x.Dependencies == nil {
		x.Dependencies = []string{}
	}
	if x.Repositories == nil {
		x.Repositories = []observer.Repository{}
	}
	return x
}

func (o *Observer) insertExtra(ctx context.Context, tx *sql.Tx, id string, ev *observer.StartEvent) error {
	ex, err := marshal(exInfo(&ev.Experiment))
	if err != nil {
		return o.wrap("encode experiment", err)
	}
	var host any
	if h := ev.Host; h != nil {
		s, err := marshal(extraHost{Hostname: h.Hostname, OS: h.OS, CPU: h.CPU, CPUCount: h.CPUCount,
			MemoryTotal: h.MemoryTotal, GPUs: h.GPUs, ENV: h.ENV})
		if err != nil {
			return o.wrap("encode host", err)
		}
		host = s
	}
	m := ev.Meta
	em := extraMeta{Command: m.Command, Argv: m.Argv, Cwd: m.Cwd, Options: m.Options, Comment: m.Comment,
		Priority: m.Priority, ConfigUpdates: m.ConfigUpdates, NamedConfigs: m.NamedConfigs}
	if m.QueueTime != nil {
		em.QueueTime = m.QueueTime.UTC().Format("2006-01-02T15:04:05.000000")
	}
	meta, err := marshal(em)
	if err != nil {
		return o.wrap("encode meta", err)
	}
	_, err = tx.ExecContext(ctx, o.q(`INSERT INTO run_extra (run_id, command, experiment, host, meta) VALUES (?, ?, ?, ?, ?)`),
		id, ev.Command, ex, host, meta)
	return o.wrap("insert run_extra", err)
}

// experimentID gets or creates the experiment row, deduplicated as Sacred
// does by name and the md5 of the experiment's JSON; sources, dependencies
// and repositories are linked when the row is new.
func (o *Observer) experimentID(ctx context.Context, tx *sql.Tx, e *observer.Experiment) (int64, error) {
	js, err := marshal(exInfo(e))
	if err != nil {
		return 0, o.wrap("encode experiment", err)
	}
	sum := md5.Sum([]byte(js))
	md5hex := hex.EncodeToString(sum[:])
	name := truncate(e.Name, 32)
	var id int64
	err = tx.QueryRowContext(ctx, o.q("SELECT experiment_id FROM experiment WHERE name = ? AND md5sum = ? ORDER BY experiment_id LIMIT 1"), name, md5hex).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, o.wrap("look up experiment", err)
	}
	id, err = o.insertID(ctx, tx, "experiment", "experiment_id", "name, md5sum, base_dir", name, md5hex, truncate(e.BaseDir, 64))
	if err != nil {
		return 0, o.wrap("insert experiment", err)
	}
	for _, s := range e.Sources {
		sid, err := o.sourceID(ctx, tx, s)
		if err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, o.q("INSERT INTO experiments_sources (experiment_id, source_id) VALUES (?, ?)"), id, sid); err != nil {
			return 0, o.wrap("link source", err)
		}
	}
	for _, dep := range e.Dependencies {
		n, v, _ := strings.Cut(dep, "==")
		did, err := o.getOrCreate(ctx, tx, "dependency", "dependency_id", []string{"name", "version"}, []any{truncate(n, 32), truncate(v, 16)})
		if err != nil {
			return 0, o.wrap("dependency "+dep, err)
		}
		if _, err := tx.ExecContext(ctx, o.q("INSERT INTO experiments_dependencies (experiment_id, dependency_id) VALUES (?, ?)"), id, did); err != nil {
			return 0, o.wrap("link dependency", err)
		}
	}
	commit := o.d.types().commit
	for _, r := range e.Repositories {
		rid, err := o.getOrCreate(ctx, tx, "repository", "repository_id", []string{"url", commit, "dirty"}, []any{truncate(r.URL, 2048), truncate(r.Commit, 40), r.Dirty})
		if err != nil {
			return 0, o.wrap("repository", err)
		}
		if _, err := tx.ExecContext(ctx, o.q("INSERT INTO experiments_repositories (experiment_id, repository_id) VALUES (?, ?)"), id, rid); err != nil {
			return 0, o.wrap("link repository", err)
		}
	}
	return id, nil
}

// sourceID gets or creates a source row; the content is the file read as
// text. A file that cannot be read any more is stored without content
// rather than failing the run.
func (o *Observer) sourceID(ctx context.Context, tx *sql.Tx, s observer.Source) (int64, error) {
	name := truncate(s.Name, 256)
	var id int64
	err := tx.QueryRowContext(ctx, o.q("SELECT source_id FROM source WHERE filename = ? AND md5sum = ? ORDER BY source_id LIMIT 1"), name, s.MD5).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, o.wrap("look up source "+s.Name, err)
	}
	var content any
	if b, err := os.ReadFile(s.Path); err == nil {
		content = decodeText(b)
	}
	id, err = o.insertID(ctx, tx, "source", "source_id", "filename, md5sum, content", name, s.MD5, content)
	return id, o.wrap("insert source "+s.Name, err)
}

// hostID gets or creates the host row, deduplicated by all five columns.
// python_version is NULL: the child may be in any language.
func (o *Observer) hostID(ctx context.Context, tx *sql.Tx, h *observer.Host) (int64, error) {
	var cpu any
	if h.CPU != "" {
		cpu = truncate(h.CPU, 64)
	}
	id, err := o.getOrCreate(ctx, tx, "host", "host_id",
		[]string{"cpu", "hostname", "os", "os_info", "python_version"},
		[]any{cpu, truncate(h.Hostname, 64), truncate(h.OS[0], 16), truncate(h.OS[1], 64), nil})
	return id, o.wrap("host", err)
}

// getOrCreate finds a row whose columns equal vals (NULL equal to NULL) or
// inserts one, and returns its id.
func (o *Observer) getOrCreate(ctx context.Context, tx *sql.Tx, table, idCol string, cols []string, vals []any) (int64, error) {
	conds := make([]string, len(cols))
	for i, c := range cols {
		conds[i] = c + " " + o.d.nullEq() + " ?"
	}
	var id int64
	err := tx.QueryRowContext(ctx, o.q(fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s LIMIT 1", idCol, table, strings.Join(conds, " AND "), idCol)), vals...).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	return o.insertID(ctx, tx, table, idCol, strings.Join(cols, ", "), vals...)
}

// insertID inserts one row and returns its autoincrement id.
func (o *Observer) insertID(ctx context.Context, tx *sql.Tx, table, idCol, cols string, vals ...any) (int64, error) {
	ph := strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ")
	q := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", table, cols, ph)
	if o.d == dialectPostgres {
		var id int64
		err := tx.QueryRowContext(ctx, o.q(q+" RETURNING "+idCol), vals...).Scan(&id)
		return id, err
	}
	res, err := tx.ExecContext(ctx, q, vals...)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

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

// float gives what a FLOAT column of the dialect can hold: NaN and the
// infinities only where the database stores them.
func (o *Observer) float(v float64) any {
	switch {
	case math.IsNaN(v):
		if o.d == dialectPostgres {
			return v
		}
		return nil
	case math.IsInf(v, 0):
		if o.d == dialectMySQL {
			return nil
		}
		return v
	}
	return v
}

// resultFloat is the value of run.result for a result: the number when it
// is one, NULL otherwise.
func (o *Observer) resultFloat(r any) any {
	var f float64
	switch x := r.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case int32:
		f = float64(x)
	case uint64:
		f = float64(x)
	case uint:
		f = float64(x)
	case interface{ Float64() (float64, error) }: // json.Number
		v, err := x.Float64()
		if err != nil {
			return nil
		}
		f = v
	default:
		return nil
	}
	return o.float(f)
}

// Heartbeat stores the new output, the captured_out text, info, beat time
// and result in one transaction.
func (o *Observer) Heartbeat(ctx context.Context, ev *observer.HeartbeatEvent) error {
	info, err := marshal(ev.Info)
	if err != nil {
		return o.wrap("encode info", err)
	}
	var out string
	var newBytes int64
	// Unchanged output is not rewritten: captured_out is the costly part
	// of a beat.
	writeOut := ev.Output != nil && (ev.To != o.outStored || o.outSeq == 0)
	if writeOut {
		out, err = o.capturedOut(ev.Output, ev.To)
		if err != nil {
			return o.wrap("read output", err)
		}
	}
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return o.wrap("heartbeat: begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	seq := o.outSeq
	if ev.Output != nil && ev.To > o.outStored {
		// Only the bytes not stored yet, whatever From says, so a failed
		// beat is caught up by the next one.
		buf := make([]byte, outputChunk)
		for off := o.outStored; off < ev.To; {
			n := min(int64(outputChunk), ev.To-off)
			if _, err := ev.Output.ReadAt(buf[:n], off); err != nil && !(errors.Is(err, io.EOF) && n > 0) {
				return o.wrap("read output", err)
			}
			if _, err := tx.ExecContext(ctx, o.q("INSERT INTO run_output (run_id, seq, content) VALUES (?, ?, ?)"), o.runID, seq, buf[:n]); err != nil {
				return o.wrap("insert output", err)
			}
			seq++
			off += n
		}
		newBytes = ev.To - o.outStored
	}
	q := "UPDATE run SET info = ?, heartbeat = ?"
	args := []any{info, o.d.tm(ev.BeatTime)}
	if writeOut {
		q += ", captured_out = ?"
		args = append(args, out)
	}
	if ev.HasResult {
		q += ", result = ?"
		args = append(args, o.resultFloat(ev.Result))
	}
	args = append(args, o.runID)
	if _, err := tx.ExecContext(ctx, o.q(q+" WHERE run_id = ?"), args...); err != nil {
		return o.wrap("update run", err)
	}
	if ev.HasResult {
		if err := o.setResultJSON(ctx, tx, ev.Result); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return o.wrap("heartbeat: commit", err)
	}
	o.outSeq = seq
	o.outStored += newBytes
	return nil
}

func (o *Observer) setResultJSON(ctx context.Context, tx *sql.Tx, r any) error {
	js, err := marshal(r)
	if err != nil {
		return o.wrap("encode result", err)
	}
	_, err = tx.ExecContext(ctx, o.q("UPDATE run_extra SET result = ? WHERE run_id = ?"), js, o.runID)
	return o.wrap("update result", err)
}

// capturedOut is the text for run.captured_out: the whole output decoded
// as UTF-8 with invalid bytes replaced, or its head and tail around a
// marker when it is larger than the cap.
func (o *Observer) capturedOut(out observer.Output, size int64) (string, error) {
	read := func(off, n int64) ([]byte, error) {
		b := make([]byte, n)
		if _, err := out.ReadAt(b, off); err != nil && !(errors.Is(err, io.EOF) && n > 0) {
			return nil, err
		}
		return b, nil
	}
	if size <= int64(o.outCap) {
		b, err := read(0, size)
		if err != nil {
			return "", err
		}
		s := decodeText(b)
		if len(s) <= o.outCap {
			return s, nil
		}
	}
	headN := int64(o.outHead)
	tailN := int64(o.outCap-o.outHead) - 200 // room for the marker
	head, err := read(0, min(headN, size))
	if err != nil {
		return "", err
	}
	tail, err := read(max(size-tailN, 0), min(tailN, size))
	if err != nil {
		return "", err
	}
	// Cut at character boundaries so no character is split in two.
	for j := len(head) - 1; j >= 0 && j >= len(head)-utf8.UTFMax; j-- {
		if utf8.RuneStart(head[j]) {
			if !utf8.FullRune(head[j:]) {
				head = head[:j]
			}
			break
		}
	}
	for i := 0; i < 3 && len(tail) > 0 && !utf8.RuneStart(tail[0]); i++ {
		tail = tail[1:]
	}
	hs, ts := decodeText(head), decodeText(tail)
	// Replacement characters can make the text longer than the bytes.
	hs = clipHead(hs, int(headN))
	ts = clipTail(ts, int(tailN))
	omitted := size - int64(len(head)) - int64(len(tail))
	return hs + fmt.Sprintf("\n[sacred: %d bytes of output omitted here; the whole output is in table run_output]\n", omitted) + ts, nil
}

func clipHead(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func clipTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return s[i:]
}

// decodeText decodes bytes as UTF-8, replacing each invalid byte with
// U+FFFD as Python's errors="replace" does, and NUL too, which PostgreSQL
// text cannot hold.
func decodeText(b []byte) string {
	if utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == 0 {
			r = utf8.RuneError
		}
		sb.WriteRune(r)
		b = b[n:]
	}
	return sb.String()
}

// Resource stores the file once per (filename, md5) and links it to the run.
func (o *Observer) Resource(ctx context.Context, ev *observer.ResourceEvent) error {
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return o.wrap("resource: begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	name := truncate(ev.Path, 256)
	var id int64
	err = tx.QueryRowContext(ctx, o.q("SELECT resource_id FROM resource WHERE filename = ? AND md5sum = ? ORDER BY resource_id LIMIT 1"), name, ev.MD5).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		content, rerr := os.ReadFile(ev.Path)
		if rerr != nil {
			return o.wrap("resource", rerr)
		}
		id, err = o.insertID(ctx, tx, "resource", "resource_id", "filename, md5sum, content", name, ev.MD5, content)
	}
	if err != nil {
		return o.wrap("resource "+ev.Path, err)
	}
	var linked int
	if err := tx.QueryRowContext(ctx, o.q("SELECT COUNT(*) FROM runs_resources WHERE run_id = ? AND resource_id = ?"), o.runID, id).Scan(&linked); err != nil {
		return o.wrap("resource link", err)
	}
	if linked == 0 {
		if _, err := tx.ExecContext(ctx, o.q("INSERT INTO runs_resources (run_id, resource_id) VALUES (?, ?)"), o.runID, id); err != nil {
			return o.wrap("resource link", err)
		}
	}
	return o.wrap("resource: commit", tx.Commit())
}

// Artifact stores the file as a new artifact row, as Sacred does.
func (o *Observer) Artifact(ctx context.Context, ev *observer.ArtifactEvent) error {
	content, err := os.ReadFile(ev.Path)
	if err != nil {
		return o.wrap("artifact "+ev.Name, err)
	}
	_, err = o.db.ExecContext(ctx, o.q("INSERT INTO artifact (filename, content, run_id) VALUES (?, ?, ?)"), truncate(ev.Name, 64), content, o.runID)
	return o.wrap("artifact "+ev.Name, err)
}

// Completed implements observer.Observer.
func (o *Observer) Completed(ctx context.Context, ev *observer.CompletedEvent) error {
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
	trace := ev.Trace
	if trace == nil {
		trace = []string{}
	}
	js, err := marshal(trace)
	if err != nil {
		return o.wrap("encode fail trace", err)
	}
	return o.finish(ctx, "failed", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, o.q("UPDATE run SET stop_time = ?, status = ?, fail_trace = ? WHERE run_id = ?"),
			o.d.tm(ev.StopTime), observer.StatusFailed, decodeText([]byte(strings.Join(trace, "\n"))), o.runID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, o.q("UPDATE run_extra SET fail_trace = ? WHERE run_id = ?"), js, o.runID)
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

// Close implements observer.Observer.
func (o *Observer) Close(context.Context) error {
	return o.wrap("close", o.db.Close())
}
