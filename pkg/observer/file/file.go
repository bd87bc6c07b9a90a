package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// Observer writes one run into BASEDIR/<id>/. It implements
// observer.Observer; create it with New.
type Observer struct {
	cfg      Config
	settings observer.Settings

	mu       sync.Mutex
	id       string
	runDir   string
	run      map[string]any // the content of run.json
	config   map[string]any
	info     map[string]any
	infoJSON []byte // info.json as last written
	resources,
	artifacts []any
	cout     *os.File
	coutSize int64 // bytes of output in cout.txt
	// coutOwned is set once the runner captures straight into cout.txt:
	// the output is then already there and is not appended again.
	coutOwned bool
	metrics   *metricsFile
}

var _ observer.Observer = (*Observer)(nil)

// New returns a file-storage observer for the -F value dir.
func New(dir string, s observer.Settings) (*Observer, error) {
	cfg, err := ParseConfig(dir)
	if err != nil {
		return nil, err
	}
	return NewFromConfig(cfg, s), nil
}

// NewFromConfig returns a file-storage observer for a parsed -F value.
func NewFromConfig(cfg Config, s observer.Settings) *Observer {
	if s.Warn == nil {
		s.Warn = io.Discard
	}
	return &Observer{cfg: cfg, settings: s}
}

// Name is "file storage DIR".
func (o *Observer) Name() string { return "file storage " + o.cfg.BaseDir }

// Priority is 20, as Sacred's FileStorageObserver.
func (o *Observer) Priority() int { return DefaultPriority }

// RunDir is the directory of the run, empty before Started or Queued.
func (o *Observer) RunDir() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.runDir
}

// Started creates the run directory and writes run.json, config.json and an
// empty cout.txt, after copying the sources to BASEDIR/_sources.
func (o *Observer) Started(ctx context.Context, ev *observer.StartEvent) (string, error) {
	return o.start(ctx, ev, false)
}

// Queued creates the run directory and writes run.json (status QUEUED) and
// config.json.
func (o *Observer) Queued(ctx context.Context, ev *observer.StartEvent) (string, error) {
	return o.start(ctx, ev, true)
}

func (o *Observer) start(ctx context.Context, ev *observer.StartEvent, queued bool) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.runDir != "" {
		return "", fmt.Errorf("file storage: run %s was already started", o.id)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("file storage: %w", err)
	}
	if err := os.MkdirAll(o.cfg.Abs, 0o755); err != nil {
		return "", fmt.Errorf("file storage: creating the directory: %w", err)
	}
	id, err := o.makeRunDir(ev.ID)
	if err != nil {
		return "", err
	}
	o.id, o.runDir = id, filepath.Join(o.cfg.Abs, id)
	o.metrics = newMetricsFile(filepath.Join(o.runDir, MetricsFile))

	sources, err := o.saveSources(&ev.Experiment)
	if err != nil {
		return "", err
	}
	o.config = ev.Config
	if o.config == nil {
		o.config = map[string]any{}
	}
	meta := metaMap(&ev.Meta)
	o.run = map[string]any{
		"command":    ev.Command,
		"experiment": experimentMap(&ev.Experiment, sources),
		"meta":       meta,
	}
	if queued {
		qt := ev.Time
		if ev.Meta.QueueTime != nil {
			qt = *ev.Meta.QueueTime
		}
		meta["queue_time"] = sacredjson.FormatTime(qt)
		o.run["status"] = observer.StatusQueued
	} else {
		if ev.Host != nil {
			o.run["host"] = hostMap(ev.Host)
		}
		o.run["status"] = observer.StatusRunning
		o.run["start_time"] = sacredjson.FormatTime(ev.Time)
		o.run["heartbeat"] = nil
		o.resources, o.artifacts = []any{}, []any{}
		o.run["resources"], o.run["artifacts"] = o.resources, o.artifacts
	}
	if err := o.writeRun(); err != nil {
		return "", err
	}
	if _, err := writeJSONAtomic(filepath.Join(o.runDir, ConfigFile), o.config); err != nil {
		return "", fmt.Errorf("file storage: run %s: %w", o.id, err)
	}
	if !queued {
		if _, err := o.coutFile(); err != nil {
			return "", err
		}
	}
	if ev.ID != "" {
		return ev.ID, nil
	}
	return id, nil
}

// makeRunDir creates the run directory: the given id, or the next free
// number (the largest numeric directory + 1, incremented on a collision
// with a concurrent run, at most 1000 times, as Sacred does).
func (o *Observer) makeRunDir(id string) (string, error) {
	if id != "" {
		if err := checkID(id); err != nil {
			return "", err
		}
		dir := filepath.Join(o.cfg.Abs, id)
		if err := os.Mkdir(dir, 0o755); err != nil {
			if errors.Is(err, os.ErrExist) {
				return "", fmt.Errorf("file storage: %s already exists: %w", dir, observer.ErrIDTaken)
			}
			return "", fmt.Errorf("file storage: creating the run directory: %w", err)
		}
		return id, nil
	}
	last, err := maxNumericDir(o.cfg.Abs)
	if err != nil {
		return "", fmt.Errorf("file storage: listing runs: %w", err)
	}
	next := last + 1
	var mkErr error
	for range maxIDTries {
		id := strconv.FormatUint(next, 10)
		mkErr = os.Mkdir(filepath.Join(o.cfg.Abs, id), 0o755)
		if mkErr == nil {
			return id, nil
		}
		if !errors.Is(mkErr, os.ErrExist) {
			break
		}
		next++
	}
	return "", fmt.Errorf("file storage: creating a run directory: %w", mkErr)
}

// saveSources copies the sources to BASEDIR/_sources and returns
// experiment.sources: [name, "_sources/<stem>_<md5><ext>"] pairs.
func (o *Observer) saveSources(e *observer.Experiment) ([]any, error) {
	out := make([]any, 0, len(e.Sources))
	dir := filepath.Join(o.cfg.Abs, SourcesDir)
	for _, s := range e.Sources {
		path := s.Path
		if path == "" {
			path = filepath.Join(e.BaseDir, s.Name)
		}
		name, err := storeShared(path, dir, s.MD5)
		if err != nil {
			return nil, fmt.Errorf("file storage: source %s: %w", s.Name, err)
		}
		out = append(out, []any{s.Name, SourcesDir + "/" + name})
	}
	return out, nil
}

// coutFile opens cout.txt for appending, once.
func (o *Observer) coutFile() (*os.File, error) {
	if o.cout != nil {
		return o.cout, nil
	}
	path := filepath.Join(o.runDir, CoutFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("file storage: run %s: %w", o.id, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("file storage: run %s: %w", o.id, err)
	}
	o.cout, o.coutSize = f, fi.Size()
	return f, nil
}

// OutputFile hands the runner a descriptor of the still empty cout.txt to
// capture into (observer.OutputFileOwner); from then on the observer only
// keeps the file durable at the end.
func (o *Observer) OutputFile() (*os.File, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.run == nil || o.coutOwned || o.coutSize != 0 {
		return nil, nil
	}
	if _, err := o.coutFile(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(o.runDir, CoutFile), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("file storage: run %s: %w", o.id, err)
	}
	o.coutOwned = true
	return f, nil
}

func (o *Observer) writeRun() error {
	if _, err := writeJSONAtomic(filepath.Join(o.runDir, RunFile), o.run); err != nil {
		return fmt.Errorf("file storage: run %s: %w", o.id, err)
	}
	return nil
}

func (o *Observer) ready(event string) error {
	if o.run == nil {
		return fmt.Errorf("file storage: %s before the run was started", event)
	}
	return nil
}

// LogMetrics appends the new points to metrics.json, which exists (maybe as
// {}) from the first beat on.
func (o *Observer) LogMetrics(_ context.Context, ev *observer.MetricsEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready("log_metrics"); err != nil {
		return err
	}
	o.metrics.add(ev)
	if err := o.metrics.flush(); err != nil {
		return fmt.Errorf("file storage: run %s: %w", o.id, err)
	}
	return nil
}

// Heartbeat appends the new output to cout.txt, rewrites run.json
// (heartbeat, result) and writes info.json when info is not empty.
func (o *Observer) Heartbeat(_ context.Context, ev *observer.HeartbeatEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready("heartbeat"); err != nil {
		return err
	}
	errOut := o.appendOutput(ev)
	o.run["heartbeat"] = sacredjson.FormatTime(ev.BeatTime)
	o.run["result"] = nil
	if ev.HasResult {
		o.run["result"] = ev.Result
	}
	errRun := o.writeRun()
	var errInfo error
	if len(ev.Info) > 0 {
		o.info = ev.Info
		errInfo = o.writeInfo()
	}
	return errors.Join(errOut, errRun, errInfo)
}

// appendOutput appends to cout.txt what the file lacks of the output: the
// bytes from the size of cout.txt up to To. Normally that is exactly
// [From, To) of the beat; after a beat that failed part way (disk full) it
// starts earlier, so nothing is lost or written twice.
func (o *Observer) appendOutput(ev *observer.HeartbeatEvent) error {
	if o.coutOwned {
		o.coutSize = max(o.coutSize, ev.To)
		return nil
	}
	if ev.Output == nil || ev.To <= o.coutSize {
		return nil
	}
	f, err := o.coutFile()
	if err != nil {
		return err
	}
	from := o.coutSize
	n, err := io.Copy(f, io.NewSectionReader(ev.Output, from, ev.To-from))
	o.coutSize = from + n
	if err != nil {
		return fmt.Errorf("file storage: run %s: appending to %s: %w", o.id, f.Name(), err)
	}
	return nil
}

func (o *Observer) writeInfo() error {
	data, err := sacredjson.Marshal(o.info)
	if err != nil {
		return fmt.Errorf("file storage: run %s: encoding info.json: %w", o.id, err)
	}
	if string(data) == string(o.infoJSON) {
		return nil
	}
	path := filepath.Join(o.runDir, InfoFile)
	if err := writeFileAtomic(path, data); err != nil {
		return fmt.Errorf("file storage: run %s: writing %s: %w", o.id, path, err)
	}
	o.infoJSON = data
	return nil
}

// Resource copies the file to BASEDIR/_resources (once per content) and
// records [path, store path] in run.json.
func (o *Observer) Resource(_ context.Context, ev *observer.ResourceEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready("resource"); err != nil {
		return err
	}
	name, err := storeShared(ev.Path, filepath.Join(o.cfg.Abs, ResourcesDir), ev.MD5)
	if err != nil {
		return fmt.Errorf("file storage: run %s: resource %s: %w", o.id, ev.Path, err)
	}
	// Sacred records the store path built from BASEDIR as given, so a
	// relative BASEDIR gives a path relative to the working directory.
	o.resources = append(o.resources, []any{ev.Path, pyPathJoin(o.cfg.BaseDir, ResourcesDir, name)})
	o.run["resources"] = o.resources
	return o.writeRun()
}

// Artifact copies the file into the run directory under its name and
// records the name in run.json.
func (o *Observer) Artifact(_ context.Context, ev *observer.ArtifactEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready("artifact"); err != nil {
		return err
	}
	dst, err := artifactPath(o.runDir, ev.Name)
	if err != nil {
		return fmt.Errorf("file storage: run %s: %w", o.id, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("file storage: run %s: artifact %q: %w", o.id, ev.Name, err)
	}
	if err := copyFileAtomic(ev.Path, dst); err != nil {
		return fmt.Errorf("file storage: run %s: storing artifact %q: %w", o.id, ev.Name, err)
	}
	o.artifacts = append(o.artifacts, ev.Name)
	o.run["artifacts"] = o.artifacts
	return o.writeRun()
}

// Completed records status COMPLETED, stop_time and the result.
func (o *Observer) Completed(_ context.Context, ev *observer.CompletedEvent) error {
	return o.finish("completed", func() {
		o.run["status"] = observer.StatusCompleted
		o.run["stop_time"] = sacredjson.FormatTime(ev.StopTime)
		o.run["result"] = nil
		if ev.HasResult {
			o.run["result"] = ev.Result
		}
	})
}

// Interrupted records the status (INTERRUPTED, TIMEOUT or a custom one)
// and stop_time.
func (o *Observer) Interrupted(_ context.Context, ev *observer.InterruptedEvent) error {
	return o.finish("interrupted", func() {
		status := ev.Status
		if status == "" {
			status = observer.StatusInterrupted
		}
		o.run["status"] = status
		o.run["stop_time"] = sacredjson.FormatTime(ev.StopTime)
	})
}

// Failed records status FAILED, stop_time and fail_trace.
func (o *Observer) Failed(_ context.Context, ev *observer.FailedEvent) error {
	return o.finish("failed", func() {
		o.run["status"] = observer.StatusFailed
		o.run["stop_time"] = sacredjson.FormatTime(ev.StopTime)
		trace := ev.Trace
		if trace == nil {
			trace = []string{}
		}
		o.run["fail_trace"] = trace
	})
}

// finish makes cout.txt durable, writes the final run.json and renders the
// report.
func (o *Observer) finish(event string, update func()) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready(event); err != nil {
		return err
	}
	// Earlier writes were atomic but not synced; make the run durable
	// once, at its end.
	var errSync error
	for _, name := range []string{CoutFile, MetricsFile, InfoFile, ConfigFile} {
		if err := syncPath(filepath.Join(o.runDir, name)); err != nil {
			errSync = errors.Join(errSync, fmt.Errorf("file storage: run %s: syncing %s: %w", o.id, name, err))
		}
	}
	update()
	data, err := sacredjson.Marshal(o.run)
	if err == nil {
		err = writeSynced(filepath.Join(o.runDir, RunFile), data)
	}
	if err != nil {
		return errors.Join(errSync, fmt.Errorf("file storage: run %s: writing %s: %w", o.id, RunFile, err))
	}
	o.renderReport()
	return errSync
}

// Close closes cout.txt.
func (o *Observer) Close(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cout == nil {
		return nil
	}
	err := o.cout.Close()
	o.cout = nil
	if err != nil {
		return fmt.Errorf("file storage: run %s: closing cout.txt: %w", o.id, err)
	}
	return nil
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func strList(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func experimentMap(e *observer.Experiment, sources []any) map[string]any {
	repos := make([]any, len(e.Repositories))
	for i, r := range e.Repositories {
		repos[i] = map[string]any{"url": r.URL, "commit": r.Commit, "dirty": r.Dirty}
	}
	return map[string]any{
		"base_dir":     e.BaseDir,
		"dependencies": strList(e.Dependencies),
		"mainfile":     nilIfEmpty(e.MainFile),
		"name":         e.Name,
		"repositories": repos,
		"sources":      sources,
	}
}

func hostMap(h *observer.Host) map[string]any {
	env := map[string]any{}
	for k, v := range h.ENV {
		env[k] = v
	}
	m := map[string]any{
		"ENV":          env,
		"cpu":          nilIfEmpty(h.CPU),
		"hostname":     h.Hostname,
		"os":           []any{h.OS[0], h.OS[1]},
		"cpu_count":    h.CPUCount,
		"memory_total": h.MemoryTotal,
	}
	if h.GPUs != nil {
		gpus := make([]any, len(h.GPUs.GPUs))
		for i, g := range h.GPUs.GPUs {
			gpus[i] = map[string]any{"model": g.Model, "total_memory": g.TotalMemory, "persistence_mode": g.PersistenceMode}
		}
		m["gpus"] = map[string]any{"gpus": gpus, "driver_version": h.GPUs.DriverVersion}
	}
	return m
}

func metaMap(m *observer.Meta) map[string]any {
	out := map[string]any{
		"command":        m.Command,
		"argv":           strList(m.Argv),
		"cwd":            m.Cwd,
		"options":        orEmpty(m.Options),
		"config_updates": orEmpty(m.ConfigUpdates),
		"named_configs":  strList(m.NamedConfigs),
	}
	if m.Comment != "" {
		out["comment"] = m.Comment
	}
	if m.Priority != nil {
		out["priority"] = *m.Priority
	}
	return out
}
