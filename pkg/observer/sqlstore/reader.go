package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Reader reads runs back from an SQL database written by us or by Python
// Sacred; our extension tables are used when they exist.
type Reader struct {
	cfg  *Config
	db   *sql.DB
	d    dialect
	name string
	ext  bool // run_extra, run_output and metric exist
}

var _ observer.Reader = (*Reader)(nil)

// Open connects to the database of cfg for reading back runs written by
// us or by Python Sacred. It creates nothing.
func Open(ctx context.Context, cfg *Config, _ observer.Settings) (*Reader, error) {
	ctx, cancel := withTimeout(ctx, OpTimeout)
	defer cancel()
	db, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	r := &Reader{cfg: cfg, db: db, d: cfg.dialect, name: "sql " + Redact(cfg.raw)}
	// A database written only by Python Sacred lacks our tables.
	var n int
	r.ext = db.QueryRowContext(ctx, "SELECT COUNT(*) FROM run_extra WHERE 1 = 0").Scan(&n) == nil &&
		db.QueryRowContext(ctx, "SELECT COUNT(*) FROM file_chunk WHERE 1 = 0").Scan(&n) == nil &&
		db.QueryRowContext(ctx, "SELECT COUNT(seq) FROM metric WHERE 1 = 0").Scan(&n) == nil &&
		db.QueryRowContext(ctx, "SELECT COUNT(pos) FROM run_output WHERE 1 = 0").Scan(&n) == nil
	return r, nil
}

func (r *Reader) q(s string) string { return r.d.rebind(s) }

func (r *Reader) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return r.cfg.scrub(fmt.Errorf("%s: %s: %w", r.name, op, err))
}

// Close implements observer.Reader.
func (r *Reader) Close() error { return r.wrap("close", r.db.Close()) }

// Runs implements observer.Reader: run ids in the order they were created.
func (r *Reader) Runs(ctx context.Context) ([]string, error) {
	ctx, cancel := withTimeout(ctx, OpTimeout)
	defer cancel()
	rows, err := r.db.QueryContext(ctx, "SELECT run_id FROM run WHERE run_id IS NOT NULL ORDER BY id")
	if err != nil {
		return nil, r.wrap("list runs", err)
	}
	defer rows.Close()
	ids := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, r.wrap("list runs", err)
		}
		ids = append(ids, id)
	}
	return ids, r.wrap("list runs", rows.Err())
}

// Run implements observer.Reader.
func (r *Reader) Run(ctx context.Context, id string) (*observer.Run, error) {
	ctx, cancel := withTimeout(ctx, OpTimeout)
	defer cancel()
	var (
		command, status, comment, failTrace, capturedOut, config, info sql.NullString
		start, beat, stop, queue                                       dbTime
		priority, result                                               sql.NullFloat64
		hostID, expID                                                  sql.NullInt64
	)
	err := r.db.QueryRowContext(ctx, r.q(`SELECT command, status, comment, fail_trace, captured_out, config, info,
		start_time, heartbeat, stop_time, queue_time, priority, result, host_id, experiment_id
		FROM run WHERE run_id = ?`), id).Scan(&command, &status, &comment, &failTrace, &capturedOut, &config, &info,
		&start, &beat, &stop, &queue, &priority, &result, &hostID, &expID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s: run %s: %w", r.name, id, observer.ErrNotFound)
	}
	if err != nil {
		return nil, r.wrap("read run "+id, err)
	}
	run := &observer.Run{ID: id, Status: status.String, Command: command.String,
		StartTime: start.T, Heartbeat: beat.T, StopTime: stop.T, QueueTime: queue.T,
		Output: []byte(capturedOut.String)}
	run.Meta.Comment = comment.String
	if priority.Valid && priority.Float64 != 0 {
		p := priority.Float64
		run.Meta.Priority = &p
	}
	if config.Valid && config.String != "" {
		if err := unmarshal(config.String, &run.Config); err != nil {
			return nil, r.wrap("decode config of run "+id, err)
		}
	}
	if info.Valid && info.String != "" {
		if err := unmarshal(info.String, &run.Info); err != nil {
			return nil, r.wrap("decode info of run "+id, err)
		}
	}
	if result.Valid {
		run.Result, run.HasResult = result.Float64, true
	}
	if failTrace.Valid && failTrace.String != "" {
		// Sacred joins lines that end in "\n" with "\n".
		for _, l := range strings.Split(failTrace.String, "\n\n") {
			run.FailTrace = append(run.FailTrace, strings.TrimSuffix(l, "\n")+"\n")
		}
	}
	if expID.Valid {
		if err := r.experiment(ctx, expID.Int64, &run.Experiment); err != nil {
			return nil, err
		}
	}
	if hostID.Valid {
		if run.Host, err = r.host(ctx, hostID.Int64); err != nil {
			return nil, err
		}
	}
	if r.ext {
		if err := r.extra(ctx, run); err != nil {
			return nil, err
		}
	}
	if err := r.files(ctx, run); err != nil {
		return nil, err
	}
	return run, nil
}

// experiment fills e from Sacred's tables.
func (r *Reader) experiment(ctx context.Context, id int64, e *observer.Experiment) error {
	var name, baseDir sql.NullString
	if err := r.db.QueryRowContext(ctx, r.q("SELECT name, base_dir FROM experiment WHERE experiment_id = ?"), id).Scan(&name, &baseDir); err != nil {
		return r.wrap("read experiment", err)
	}
	e.Name, e.BaseDir = name.String, baseDir.String
	rows, err := r.db.QueryContext(ctx, r.q(`SELECT s.filename, s.md5sum FROM source s JOIN experiments_sources es ON es.source_id = s.source_id
		WHERE es.experiment_id = ? ORDER BY s.filename`), id)
	if err != nil {
		return r.wrap("read sources", err)
	}
	for rows.Next() {
		var f, m sql.NullString
		if err := rows.Scan(&f, &m); err != nil {
			rows.Close()
			return r.wrap("read sources", err)
		}
		e.Sources = append(e.Sources, observer.Source{Name: f.String, MD5: m.String})
	}
	rows.Close()
	rows, err = r.db.QueryContext(ctx, r.q(`SELECT d.name, d.version FROM dependency d JOIN experiments_dependencies ed ON ed.dependency_id = d.dependency_id
		WHERE ed.experiment_id = ? ORDER BY d.name`), id)
	if err != nil {
		return r.wrap("read dependencies", err)
	}
	for rows.Next() {
		var n, v sql.NullString
		if err := rows.Scan(&n, &v); err != nil {
			rows.Close()
			return r.wrap("read dependencies", err)
		}
		e.Dependencies = append(e.Dependencies, n.String+"=="+v.String)
	}
	rows.Close()
	commit := r.d.types().commit
	rows, err = r.db.QueryContext(ctx, r.q(`SELECT p.url, p.`+commit+`, p.dirty FROM repository p JOIN experiments_repositories er ON er.repository_id = p.repository_id
		WHERE er.experiment_id = ? ORDER BY p.repository_id`), id)
	if err != nil {
		return r.wrap("read repositories", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u, c sql.NullString
		var d sql.NullBool
		if err := rows.Scan(&u, &c, &d); err != nil {
			return r.wrap("read repositories", err)
		}
		e.Repositories = append(e.Repositories, observer.Repository{URL: u.String, Commit: c.String, Dirty: d.Bool})
	}
	return r.wrap("read repositories", rows.Err())
}

func (r *Reader) host(ctx context.Context, id int64) (*observer.Host, error) {
	var cpu, hostname, osName, osInfo sql.NullString
	err := r.db.QueryRowContext(ctx, r.q("SELECT cpu, hostname, os, os_info FROM host WHERE host_id = ?"), id).Scan(&cpu, &hostname, &osName, &osInfo)
	if err != nil {
		return nil, r.wrap("read host", err)
	}
	return &observer.Host{CPU: cpu.String, Hostname: hostname.String, OS: [2]string{osName.String, osInfo.String}}, nil
}

// extra overlays what our extension tables keep: full values where
// Sacred's columns are short, the full result, the output, the metrics.
func (r *Reader) extra(ctx context.Context, run *observer.Run) error {
	var command, ex, host, meta, result, trace sql.NullString
	err := r.db.QueryRowContext(ctx, r.q("SELECT command, experiment, host, meta, result, fail_trace FROM run_extra WHERE run_id = ?"), run.ID).
		Scan(&command, &ex, &host, &meta, &result, &trace)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return r.wrap("read run_extra", err)
	}
	if err == nil {
		if err := r.overlay(run, command, ex, host, meta, result, trace); err != nil {
			return err
		}
	}

	// The whole output, when we stored it: rows keyed by their offset.
	// A range written again from the same offset replaced its row, so
	// rows never overlap; should one do, its bytes already read are
	// skipped.
	rows, err := r.db.QueryContext(ctx, r.q("SELECT pos, content FROM run_output WHERE run_id = ? ORDER BY pos"), run.ID)
	if err != nil {
		return r.wrap("read output", err)
	}
	var out bytes.Buffer
	chunks := 0
	for rows.Next() {
		var pos int64
		var b []byte
		if err := rows.Scan(&pos, &b); err != nil {
			rows.Close()
			return r.wrap("read output", err)
		}
		if have := int64(out.Len()); pos < have {
			b = b[min(have-pos, int64(len(b))):]
		} else if pos > have {
			rows.Close()
			return fmt.Errorf("%s: output of run %s: bytes %d to %d are missing", r.name, run.ID, have, pos)
		}
		out.Write(b)
		chunks++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return r.wrap("read output", err)
	}
	if chunks > 0 {
		run.Output = out.Bytes()
	}

	rows, err = r.db.QueryContext(ctx, r.q("SELECT name, step, value, timestamp FROM metric WHERE run_id = ? ORDER BY metric_id"), run.ID)
	if err != nil {
		return r.wrap("read metrics", err)
	}
	defer rows.Close()
	index := map[string]int{}
	for rows.Next() {
		var name string
		var step sql.NullInt64
		var value sql.NullFloat64
		var ts dbTime
		if err := rows.Scan(&name, &step, &value, &ts); err != nil {
			return r.wrap("read metrics", err)
		}
		v := math.NaN() // what a NULL value stands for
		if value.Valid {
			v = value.Float64
		}
		i, ok := index[name]
		if !ok {
			i = len(run.Metrics)
			index[name] = i
			run.Metrics = append(run.Metrics, observer.MetricSeries{Name: name})
		}
		run.Metrics[i].Points = append(run.Metrics[i].Points, observer.MetricPoint{Step: step.Int64, Value: v, Time: ts.T})
	}
	return r.wrap("read metrics", rows.Err())
}

// files lists the artifacts and resources of a run.
func (r *Reader) files(ctx context.Context, run *observer.Run) error {
	rows, err := r.db.QueryContext(ctx, r.q("SELECT filename FROM artifact WHERE run_id = ? ORDER BY artifact_id"), run.ID)
	if err != nil {
		return r.wrap("read artifacts", err)
	}
	seen := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return r.wrap("read artifacts", err)
		}
		// A name stored twice is one artifact, its latest content.
		if !seen[n] {
			seen[n] = true
			run.Artifacts = append(run.Artifacts, n)
		}
	}
	rows.Close()
	rows, err = r.db.QueryContext(ctx, r.q(`SELECT s.filename, s.md5sum FROM resource s JOIN runs_resources rr ON rr.resource_id = s.resource_id
		WHERE rr.run_id = ? ORDER BY s.resource_id`), run.ID)
	if err != nil {
		return r.wrap("read resources", err)
	}
	defer rows.Close()
	for rows.Next() {
		var f, m sql.NullString
		if err := rows.Scan(&f, &m); err != nil {
			return r.wrap("read resources", err)
		}
		run.Resources = append(run.Resources, observer.ResourceEvent{Path: f.String, MD5: m.String})
	}
	return r.wrap("read resources", rows.Err())
}

// Artifact implements observer.Reader: the latest content stored under
// that name.
func (r *Reader) Artifact(ctx context.Context, id, name string) (io.ReadCloser, error) {
	ctx, cancel := withTimeout(ctx, OpTimeout)
	defer cancel()
	var artifactID int64
	var b []byte
	err := r.db.QueryRowContext(ctx, r.q("SELECT artifact_id, content FROM artifact WHERE run_id = ? AND filename = ? ORDER BY artifact_id DESC LIMIT 1"), id, fit(name, 64)).Scan(&artifactID, &b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s: artifact %q of run %s: %w", r.name, name, id, observer.ErrNotFound)
	}
	if err != nil {
		return nil, r.wrap("read artifact "+name, err)
	}
	if b == nil && r.ext {
		// Too large for one value: in file_chunk.
		if b, err = r.chunks(ctx, "artifact", artifactID); err != nil {
			return nil, r.wrap("read artifact "+name, err)
		}
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// chunks reads the content of a file stored in file_chunk rows.
func (r *Reader) chunks(ctx context.Context, kind string, id int64) ([]byte, error) {
	rows, err := r.db.QueryContext(ctx, r.q("SELECT pos, content FROM file_chunk WHERE kind = ? AND file_id = ? ORDER BY pos"), kind, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var buf bytes.Buffer
	for rows.Next() {
		var pos int64
		var b []byte
		if err := rows.Scan(&pos, &b); err != nil {
			return nil, err
		}
		if pos != int64(buf.Len()) {
			return nil, fmt.Errorf("chunk at byte %d missing", buf.Len())
		}
		buf.Write(b)
	}
	return buf.Bytes(), rows.Err()
}
