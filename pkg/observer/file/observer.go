package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout"
	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// Observer writes one run into BASEDIR/<id>/. It implements
// observer.Observer and observer.OutputFileOwner; create it with New.
//
// Errors are honest, as the contract asks: a failed call keeps nothing for
// later (the retry decorator sends the data again), and the observer keeps
// only a note of what the run's record lacks (losses), which it reports
// when the run ends.
type Observer struct {
	cfg      Config
	settings observer.Settings

	mu         sync.Mutex
	id         string
	runDir     string
	run        layout.Run // the content of run.json
	configJSON []byte     // config.json as written, for the report
	infoJSON   []byte     // info.json as last written
	cout       *os.File   // cout.txt, open for reading and writing
	// coutOwned is set once the runner captures straight into cout.txt:
	// the output is then already there and beats only check it.
	coutOwned bool
	metrics   *metricsFile
	lost      losses
}

var _ observer.Observer = (*Observer)(nil)
var _ observer.OutputFileOwner = (*Observer)(nil)

// New returns a file-storage observer for a parsed -F value. The directory
// is created when the run starts.
func New(_ context.Context, cfg Config, s observer.Settings) (*Observer, error) {
	if cfg.Abs == "" {
		return nil, errors.New("file storage: no directory (use ParseConfig)")
	}
	if s.Warn == nil {
		s.Warn = s.Warner()
	}
	return &Observer{cfg: cfg, settings: s}, nil
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
	o.metrics = newMetricsFile(filepath.Join(o.runDir, layout.MetricsFile))

	sources, err := o.saveSources(&ev.Experiment)
	if err != nil {
		return "", err
	}
	config := ev.Config
	if config == nil {
		config = map[string]any{}
	}
	o.configJSON, err = sacredjson.Marshal(config)
	if err != nil {
		return "", fmt.Errorf("file storage: run %s: encoding %s: %w", o.id, layout.ConfigFile, err)
	}
	o.run = layout.NewRun(ev, sources, queued)
	if err := o.writeRun(false); err != nil {
		return "", err
	}
	if err := writeFileAtomic(filepath.Join(o.runDir, layout.ConfigFile), o.configJSON); err != nil {
		return "", fmt.Errorf("file storage: run %s: writing %s: %w", o.id, layout.ConfigFile, err)
	}
	if !queued {
		if err := o.openCout(); err != nil {
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
// with a concurrent run, at most layout.MaxIDTries times, as Sacred does).
func (o *Observer) makeRunDir(id string) (string, error) {
	if id != "" {
		if err := layout.CheckID(id); err != nil {
			return "", fmt.Errorf("file storage: %w", err)
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
	for range layout.MaxIDTries {
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
// experiment.sources: [name, "_sources/<stem>_<md5><ext>"] pairs, or
// [name, md5] for a source whose content is not recorded (Omitted: larger
// than the source size cap), which is neither read nor copied.
func (o *Observer) saveSources(e *observer.Experiment) ([]any, error) {
	out := make([]any, 0, len(e.Sources))
	dir := filepath.Join(o.cfg.Abs, layout.SourcesDir)
	for _, s := range e.Sources {
		if s.Omitted {
			out = append(out, layout.SourceEntry(s, ""))
			continue
		}
		path := s.Path
		if path == "" {
			path = filepath.Join(e.BaseDir, s.Name)
		}
		name, err := storeShared(path, dir, s.MD5)
		if err != nil {
			return nil, fmt.Errorf("file storage: source %s: %w", s.Name, err)
		}
		out = append(out, layout.SourceEntry(s, layout.SourcesDir+"/"+name))
	}
	return out, nil
}

// writeRun writes run.json; see writeRunJSON for how a full disk is met.
func (o *Observer) writeRun(final bool) error {
	data, err := sacredjson.Marshal(o.run)
	if err != nil {
		return fmt.Errorf("file storage: run %s: encoding %s: %w", o.id, layout.RunFile, err)
	}
	// A queued run keeps no room: it is not ended by this observer.
	running := o.run.Status() == observer.StatusRunning
	if err := writeRunJSON(filepath.Join(o.runDir, layout.RunFile), data, running, final); err != nil {
		return fmt.Errorf("file storage: run %s: writing %s: %w", o.id, layout.RunFile, err)
	}
	return nil
}

func (o *Observer) ready(event string) error {
	if o.run == nil {
		return fmt.Errorf("file storage: %s before the run was started", event)
	}
	return nil
}
