package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/sacred-go/sacred/internal/readback"
	"github.com/sacred-go/sacred/pkg/observer"
)

var (
	_ readback.Finder     = (*Reader)(nil)
	_ readback.FileOpener = (*Reader)(nil)
)

// Find implements readback.Finder with one SELECT over run, experiment,
// host and (ours) run_extra whose WHERE, ORDER BY and LIMIT are the
// query's push-down. More statements only when the selection reads more:
// one for the metrics, one per experiment for the sources of a database
// Python Sacred wrote, one per run for artifacts and resources. The
// output is not read.
func (r *Reader) Find(ctx context.Context, req *readback.Request) ([]*observer.Run, error) {
	ctx, cancel := withTimeout(ctx, OpTimeout)
	defer cancel()
	plan := req.SQL(r.cfg.Dialect(), r.ext)
	cols := []string{"r.run_id", "r.command", "r.status", "r.comment", "r.fail_trace",
		"r.start_time", "r.heartbeat", "r.stop_time", "r.queue_time", "r.priority", "r.result",
		"r.experiment_id", "e.name", "e.base_dir", "h.cpu", "h.hostname", "h.os", "h.os_info"}
	withConfig, withInfo := req.Needs("config"), req.Needs("info")
	if withConfig {
		cols = append(cols, "r.config")
	}
	if withInfo {
		cols = append(cols, "r.info")
	}
	if r.ext {
		// JSON decoded only when the selection reads it: the host and
		// meta documents are most of a row.
		cols = append(cols, "x.command", "x.experiment", orNull(req.Needs("host"), "x.host"),
			orNull(req.Needs("meta"), "x.meta"), "x.result", "x.fail_trace")
	}
	stmt := "SELECT " + strings.Join(cols, ", ") + " FROM " + plan.From +
		" LEFT JOIN host h ON h.host_id = r.host_id WHERE " + plan.Where + " ORDER BY " + plan.OrderBy
	if plan.Limit > 0 {
		stmt += fmt.Sprintf(" LIMIT %d", plan.Limit)
	}
	rows, err := r.db.QueryContext(ctx, stmt, plan.Args...)
	if err != nil {
		return nil, r.wrap("find runs", err)
	}
	defer rows.Close()
	var (
		runs   []*observer.Run
		expIDs []sql.NullInt64
	)
	for rows.Next() {
		var (
			row                                          runRow
			expID                                        sql.NullInt64
			name, baseDir, cpu, hostname, osName, osInfo sql.NullString
			config, info                                 sql.NullString
			xc, xe, xh, xm, xr, xt                       sql.NullString
		)
		dst := []any{&row.id, &row.command, &row.status, &row.comment, &row.failTrace,
			&row.start, &row.beat, &row.stop, &row.queue, &row.priority, &row.result,
			&expID, &name, &baseDir, &cpu, &hostname, &osName, &osInfo}
		if withConfig {
			dst = append(dst, &config)
		}
		if withInfo {
			dst = append(dst, &info)
		}
		if r.ext {
			dst = append(dst, &xc, &xe, &xh, &xm, &xr, &xt)
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, r.wrap("find runs", err)
		}
		run := row.run()
		if err := r.decodeMaps(run, config, info); err != nil {
			return nil, err
		}
		run.Experiment.Name, run.Experiment.BaseDir = name.String, baseDir.String
		if hostname.Valid || osName.Valid || cpu.Valid {
			run.Host = &observer.Host{CPU: cpu.String, Hostname: hostname.String, OS: [2]string{osName.String, osInfo.String}}
		}
		if r.ext {
			if err := r.overlay(run, xc, xe, xh, xm, xr, xt); err != nil {
				return nil, err
			}
		}
		runs = append(runs, run)
		expIDs = append(expIDs, expID)
	}
	if err := rows.Err(); err != nil {
		return nil, r.wrap("find runs", err)
	}
	rows.Close()

	if req.Needs("experiment") && !r.ext {
		// Sacred's own tables: the sources, dependencies and
		// repositories of each experiment, read once per experiment.
		seen := map[int64]*observer.Experiment{}
		for i, run := range runs {
			if !expIDs[i].Valid {
				continue
			}
			e, ok := seen[expIDs[i].Int64]
			if !ok {
				e = &observer.Experiment{}
				if err := r.experiment(ctx, expIDs[i].Int64, e); err != nil {
					return nil, err
				}
				seen[expIDs[i].Int64] = e
			}
			run.Experiment.Sources, run.Experiment.Dependencies, run.Experiment.Repositories = e.Sources, e.Dependencies, e.Repositories
		}
	}
	if req.Needs("artifacts") {
		for _, run := range runs {
			if err := r.files(ctx, run); err != nil {
				return nil, err
			}
		}
	}
	if req.Needs("metrics") && r.ext {
		if err := r.findMetrics(ctx, plan, runs); err != nil {
			return nil, err
		}
	}
	return runs, nil
}

// orNull is col when wanted, else a NULL in its place.
func orNull(wanted bool, col string) string {
	if wanted {
		return col
	}
	return "NULL"
}

// runRow is the columns of Sacred's run table that every reading needs.
type runRow struct {
	id, command, status, comment, failTrace sql.NullString
	start, beat, stop, queue                dbTime
	priority, result                        sql.NullFloat64
}

func (row *runRow) run() *observer.Run {
	run := &observer.Run{ID: row.id.String, Status: row.status.String, Command: row.command.String,
		StartTime: row.start.T, Heartbeat: row.beat.T, StopTime: row.stop.T, QueueTime: row.queue.T}
	run.Meta.Comment = row.comment.String
	if row.priority.Valid && row.priority.Float64 != 0 {
		p := row.priority.Float64
		run.Meta.Priority = &p
	}
	if row.result.Valid {
		run.Result, run.HasResult = row.result.Float64, true
	}
	if row.failTrace.Valid && row.failTrace.String != "" {
		// Sacred joins lines that end in "\n" with "\n".
		for _, l := range strings.Split(row.failTrace.String, "\n\n") {
			run.FailTrace = append(run.FailTrace, strings.TrimSuffix(l, "\n")+"\n")
		}
	}
	return run
}

// decodeMaps decodes the config and info columns.
func (r *Reader) decodeMaps(run *observer.Run, config, info sql.NullString) error {
	if config.Valid && config.String != "" {
		if err := unmarshal(config.String, &run.Config); err != nil {
			return r.wrap("decode config of run "+run.ID, err)
		}
	}
	if info.Valid && info.String != "" {
		if err := unmarshal(info.String, &run.Info); err != nil {
			return r.wrap("decode info of run "+run.ID, err)
		}
	}
	return nil
}

// overlay puts what our run_extra keeps over Sacred's columns: full
// values where Sacred's columns are short, the result of any type.
func (r *Reader) overlay(run *observer.Run, command, ex, host, meta, result, trace sql.NullString) error {
	if command.Valid {
		run.Command = command.String
	}
	if ex.Valid {
		var x extraExperiment
		if err := unmarshal(ex.String, &x); err != nil {
			return r.wrap("decode experiment", err)
		}
		run.Experiment.Name, run.Experiment.BaseDir, run.Experiment.MainFile = x.Name, x.BaseDir, x.MainFile
		run.Experiment.Dependencies = x.Dependencies
		run.Experiment.Repositories = x.Repositories
		run.Experiment.Sources = nil
		for _, s := range x.Sources {
			src := observer.Source{Name: s[0], MD5: s[1]}
			for _, om := range x.Omitted {
				if om.Name == src.Name && om.MD5 == src.MD5 {
					src.Size, src.Omitted = om.Size, true
				}
			}
			run.Experiment.Sources = append(run.Experiment.Sources, src)
		}
	}
	if host.Valid {
		var h extraHost
		if err := unmarshal(host.String, &h); err != nil {
			return r.wrap("decode host", err)
		}
		run.Host = &observer.Host{Hostname: h.Hostname, OS: h.OS, CPU: h.CPU, CPUCount: h.CPUCount,
			MemoryTotal: h.MemoryTotal, GPUs: h.GPUs, ENV: h.ENV}
	}
	if meta.Valid {
		var m extraMeta
		if err := unmarshal(meta.String, &m); err != nil {
			return r.wrap("decode meta", err)
		}
		run.Meta = observer.Meta{Command: m.Command, Argv: m.Argv, Cwd: m.Cwd, Options: m.Options,
			Comment: m.Comment, Priority: m.Priority, ConfigUpdates: m.ConfigUpdates, NamedConfigs: m.NamedConfigs}
		if m.QueueTime != "" {
			var t dbTime
			if t.parse(m.QueueTime) == nil {
				run.Meta.QueueTime = &t.T
			}
		}
	}
	if result.Valid {
		run.Result, run.HasResult = nil, true
		if err := unmarshal(result.String, &run.Result); err != nil {
			return r.wrap("decode result", err)
		}
	}
	if trace.Valid {
		run.FailTrace = nil
		if err := unmarshal(trace.String, &run.FailTrace); err != nil {
			return r.wrap("decode fail trace", err)
		}
	}
	return nil
}

// findMetrics reads the metrics of the runs found in one statement: the
// plan's WHERE joined with our metric table, or, under a LIMIT (which a
// join cannot carry), the runs' ids.
func (r *Reader) findMetrics(ctx context.Context, plan readback.SQLPlan, runs []*observer.Run) error {
	if len(runs) == 0 {
		return nil
	}
	byID := make(map[string]*observer.Run, len(runs))
	for _, run := range runs {
		byID[run.ID] = run
	}
	var (
		stmt string
		args []any
	)
	if plan.Limit > 0 {
		ph := make([]string, len(runs))
		for i, run := range runs {
			ph[i] = "?"
			args = append(args, run.ID)
		}
		stmt = r.q("SELECT run_id, name, step, value, timestamp FROM metric WHERE run_id IN (" + strings.Join(ph, ", ") + ") ORDER BY metric_id")
	} else {
		stmt = "SELECT m.run_id, m.name, m.step, m.value, m.timestamp FROM " + plan.From +
			" JOIN metric m ON m.run_id = r.run_id WHERE " + plan.Where + " ORDER BY m.metric_id"
		args = plan.Args
	}
	rows, err := r.db.QueryContext(ctx, stmt, args...)
	if err != nil {
		return r.wrap("read metrics", err)
	}
	defer rows.Close()
	index := map[*observer.Run]map[string]int{}
	for rows.Next() {
		var (
			id, name string
			step     sql.NullInt64
			value    sql.NullFloat64
			ts       dbTime
		)
		if err := rows.Scan(&id, &name, &step, &value, &ts); err != nil {
			return r.wrap("read metrics", err)
		}
		run := byID[id]
		if run == nil {
			continue
		}
		v := math.NaN() // what a NULL value stands for
		if value.Valid {
			v = value.Float64
		}
		ix := index[run]
		if ix == nil {
			ix = map[string]int{}
			index[run] = ix
		}
		i, ok := ix[name]
		if !ok {
			i = len(run.Metrics)
			ix[name] = i
			run.Metrics = append(run.Metrics, observer.MetricSeries{Name: name})
		}
		run.Metrics[i].Points = append(run.Metrics[i].Points, observer.MetricPoint{Step: step.Int64, Value: v, Time: ts.T})
	}
	return r.wrap("read metrics", rows.Err())
}

// OpenSource implements readback.FileOpener: the content column of
// Sacred's source table (text).
func (r *Reader) OpenSource(ctx context.Context, id, name string) (io.ReadCloser, error) {
	ctx, cancel := withTimeout(ctx, OpTimeout)
	defer cancel()
	var content sql.NullString
	err := r.db.QueryRowContext(ctx, r.q(`SELECT s.content FROM run r JOIN experiments_sources es ON es.experiment_id = r.experiment_id
		JOIN source s ON s.source_id = es.source_id WHERE r.run_id = ? AND s.filename = ? ORDER BY s.source_id DESC LIMIT 1`), id, fit(name, 256)).Scan(&content)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s: run %s has no source %q: %w", r.name, id, name, observer.ErrNotFound)
	}
	if err != nil {
		return nil, r.wrap("read source "+name, err)
	}
	if !content.Valid {
		return nil, fmt.Errorf("%s: run %s: source %s: %w", r.name, id, name, readback.ErrNotStored)
	}
	return io.NopCloser(strings.NewReader(content.String)), nil
}

// OpenResource implements readback.FileOpener: the content of Sacred's
// resource table, or our file_chunk rows when it was too large for one
// value.
func (r *Reader) OpenResource(ctx context.Context, id, path string) (io.ReadCloser, error) {
	ctx, cancel := withTimeout(ctx, OpTimeout)
	defer cancel()
	var resID int64
	var b []byte
	err := r.db.QueryRowContext(ctx, r.q(`SELECT s.resource_id, s.content FROM resource s JOIN runs_resources rr ON rr.resource_id = s.resource_id
		WHERE rr.run_id = ? AND s.filename = ? ORDER BY s.resource_id DESC LIMIT 1`), id, fit(path, 256)).Scan(&resID, &b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s: run %s has no resource %q: %w", r.name, id, path, observer.ErrNotFound)
	}
	if err != nil {
		return nil, r.wrap("read resource "+path, err)
	}
	if b == nil && r.ext {
		if b, err = r.chunks(ctx, "resource", resID); err != nil {
			return nil, r.wrap("read resource "+path, err)
		}
	}
	if b == nil && !r.ext {
		return nil, fmt.Errorf("%s: run %s: resource %s: %w", r.name, id, path, readback.ErrNotStored)
	}
	return io.NopCloser(strings.NewReader(string(b))), nil
}
