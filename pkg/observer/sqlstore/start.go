package sqlstore

import (
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Queued implements observer.Observer.
func (o *Observer) Queued(ctx context.Context, ev *observer.StartEvent) (string, error) {
	ctx, cancel := o.opContext(ctx)
	defer cancel()
	return o.insertRun(ctx, ev, observer.StatusQueued)
}

// Started implements observer.Observer.
func (o *Observer) Started(ctx context.Context, ev *observer.StartEvent) (string, error) {
	ctx, cancel := o.opContext(ctx)
	defer cancel()
	return o.insertRun(ctx, ev, observer.StatusRunning)
}

// errRetry asks insertRun for one more attempt after a lost race.
var errRetry = errors.New("run_id taken concurrently")

func (o *Observer) insertRun(ctx context.Context, ev *observer.StartEvent, status string) (string, error) {
	if len(ev.ID) > 24 {
		return "", fmt.Errorf("%s: the run id %q is longer than the 24 characters of run.run_id", o.name, ev.ID)
	}
	if cleanText(ev.ID) != ev.ID {
		return "", fmt.Errorf("%s: the run id %q is not text (it holds NUL or bytes that are not UTF-8)", o.name, ev.ID)
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
		defer releaseLock(ctx, conn, "sacred_run_insert")
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
	js, err := marshal(ev.Config)
	if err != nil {
		return "", o.wrap("encode config", err)
	}
	config := o.fits("config", js)
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
	args := []any{runID, fit(ev.Command, 64), start, queue, prio, cleanText(ev.Meta.Comment),
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
	// Omitted lists the sources whose content is not in table source
	// (larger than the source size cap, or than one value may be).
	Omitted []omittedSource `json:"omitted_sources,omitempty"`
}

type omittedSource struct {
	Name string `json:"name"`
	MD5  string `json:"md5"`
	Size int64  `json:"size"`
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
	Command       string           `json:"command"`
	Argv          []string         `json:"argv,omitempty"`
	Cwd           string           `json:"cwd,omitempty"`
	Options       map[string]any   `json:"options,omitempty"`
	Comment       string           `json:"comment,omitempty"`
	Priority      *float64         `json:"priority,omitempty"`
	ConfigUpdates map[string]any   `json:"config_updates,omitempty"`
	NamedConfigs  []string         `json:"named_configs,omitempty"`
	QueueTime     string           `json:"queue_time,omitempty"`
	RerunOf       *observer.RunRef `json:"rerun_of,omitempty"`
}

// exInfo is the experiment as run_extra keeps it, strings escaped for
// marshal.
func (o *Observer) exInfo(e *observer.Experiment) extraExperiment {
	x := extraExperiment{Name: esc(e.Name), BaseDir: esc(e.BaseDir), MainFile: esc(e.MainFile),
		Sources: [][2]string{}, Dependencies: escAll(e.Dependencies), Repositories: []observer.Repository{}}
	if x.Dependencies == nil {
		x.Dependencies = []string{}
	}
	for _, s := range e.Sources {
		x.Sources = append(x.Sources, [2]string{esc(s.Name), s.MD5})
		if o.omitSource(s) {
			x.Omitted = append(x.Omitted, omittedSource{Name: esc(s.Name), MD5: s.MD5, Size: sourceSize(s)})
		}
	}
	for _, r := range e.Repositories {
		x.Repositories = append(x.Repositories, observer.Repository{URL: esc(r.URL), Commit: esc(r.Commit), Dirty: r.Dirty})
	}
	return x
}

// omitSource tells whether a source is recorded without its content:
// larger than the source size cap, or than one value may be.
func (o *Observer) omitSource(s observer.Source) bool {
	return s.Omitted || sourceSize(s) > o.maxValue
}

// sourceSize is the size of a source, from the file when the event does
// not say (0 when it cannot be known).
func sourceSize(s observer.Source) int64 {
	if s.Size > 0 || s.Omitted {
		return s.Size
	}
	if fi, err := os.Stat(s.Path); err == nil {
		return fi.Size()
	}
	return 0
}

func (o *Observer) insertExtra(ctx context.Context, tx *sql.Tx, id string, ev *observer.StartEvent) error {
	ex, err := marshal(o.exInfo(&ev.Experiment))
	if err != nil {
		return o.wrap("encode experiment", err)
	}
	var host any
	if h := ev.Host; h != nil {
		env := h.ENV
		if needsPrep(env) {
			env = prep(env).(map[string]string)
		}
		s, err := marshal(extraHost{Hostname: esc(h.Hostname), OS: [2]string{esc(h.OS[0]), esc(h.OS[1])}, CPU: esc(h.CPU),
			CPUCount: h.CPUCount, MemoryTotal: h.MemoryTotal, GPUs: h.GPUs, ENV: env})
		if err != nil {
			return o.wrap("encode host", err)
		}
		host = o.fits("host info", s)
	}
	m := ev.Meta
	em := extraMeta{Command: esc(m.Command), Argv: escAll(m.Argv), Cwd: esc(m.Cwd), Options: m.Options,
		Comment: esc(m.Comment), Priority: m.Priority, ConfigUpdates: m.ConfigUpdates, NamedConfigs: escAll(m.NamedConfigs)}
	if r := m.RerunOf; r != nil {
		em.RerunOf = &observer.RunRef{Kind: esc(r.Kind), Store: esc(r.Store), ID: esc(r.ID)}
	}
	if needsPrep(em.Options) {
		em.Options = prep(em.Options).(map[string]any)
	}
	if needsPrep(em.ConfigUpdates) {
		em.ConfigUpdates = prep(em.ConfigUpdates).(map[string]any)
	}
	if m.QueueTime != nil {
		em.QueueTime = m.QueueTime.UTC().Format("2006-01-02T15:04:05.000000")
	}
	meta, err := marshal(em)
	if err != nil {
		return o.wrap("encode meta", err)
	}
	_, err = tx.ExecContext(ctx, o.q(`INSERT INTO run_extra (run_id, command, experiment, host, meta) VALUES (?, ?, ?, ?, ?)`),
		id, cleanText(ev.Command), o.fits("experiment info", ex), host, o.fits("meta info", meta))
	return o.wrap("insert run_extra", err)
}

// experimentID gets or creates the experiment row, deduplicated as Sacred
// does by name and the md5 of the experiment's JSON; sources, dependencies
// and repositories are linked when the row is new.
func (o *Observer) experimentID(ctx context.Context, tx *sql.Tx, e *observer.Experiment) (int64, error) {
	js, err := marshal(o.exInfo(e))
	if err != nil {
		return 0, o.wrap("encode experiment", err)
	}
	sum := md5.Sum([]byte(js))
	md5hex := hex.EncodeToString(sum[:])
	name := fit(e.Name, 32)
	var id int64
	err = tx.QueryRowContext(ctx, o.q("SELECT experiment_id FROM experiment WHERE name = ? AND md5sum = ? ORDER BY experiment_id LIMIT 1"), name, md5hex).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, o.wrap("look up experiment", err)
	}
	id, err = o.insertID(ctx, tx, "experiment", "experiment_id", "name, md5sum, base_dir", name, md5hex, fit(e.BaseDir, 64))
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
		did, err := o.getOrCreate(ctx, tx, "dependency", "dependency_id", []string{"name", "version"}, []any{fit(n, 32), fit(v, 16)})
		if err != nil {
			return 0, o.wrap("dependency "+dep, err)
		}
		if _, err := tx.ExecContext(ctx, o.q("INSERT INTO experiments_dependencies (experiment_id, dependency_id) VALUES (?, ?)"), id, did); err != nil {
			return 0, o.wrap("link dependency", err)
		}
	}
	commit := o.d.types().commit
	for _, r := range e.Repositories {
		rid, err := o.getOrCreate(ctx, tx, "repository", "repository_id", []string{"url", commit, "dirty"}, []any{fit(r.URL, 2048), fit(r.Commit, 40), r.Dirty})
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
// text. A source larger than the source size cap (or than one value may
// be) is stored without content, and so is a file that cannot be read any
// more, rather than failing the run.
func (o *Observer) sourceID(ctx context.Context, tx *sql.Tx, s observer.Source) (int64, error) {
	name := fit(s.Name, 256)
	var id int64
	err := tx.QueryRowContext(ctx, o.q("SELECT source_id FROM source WHERE filename = ? AND md5sum = ? ORDER BY source_id LIMIT 1"), name, s.MD5).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, o.wrap("look up source "+s.Name, err)
	}
	var content any
	if o.omitSource(s) {
		if !s.Omitted {
			o.warnOnce("source "+s.Name, "source %s stored without its content: its %d bytes are more than %s", s.Name, sourceSize(s), o.limitText())
		}
	} else if b, err := os.ReadFile(s.Path); err == nil {
		content = o.fits("source "+s.Name, decodeText(b))
	}
	id, err = o.insertID(ctx, tx, "source", "source_id", "filename, md5sum, content", name, s.MD5, content)
	return id, o.wrap("insert source "+s.Name, err)
}

// hostID gets or creates the host row, deduplicated by all five columns.
// python_version is NULL: the child may be in any language.
func (o *Observer) hostID(ctx context.Context, tx *sql.Tx, h *observer.Host) (int64, error) {
	var cpu any
	if h.CPU != "" {
		cpu = fit(h.CPU, 64)
	}
	id, err := o.getOrCreate(ctx, tx, "host", "host_id",
		[]string{"cpu", "hostname", "os", "os_info", "python_version"},
		[]any{cpu, fit(h.Hostname, 64), fit(h.OS[0], 16), fit(h.OS[1], 64), nil})
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
