package tinydb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// Bounds of captured_out in the document. TinyDB rewrites the whole file
// at every change, so a run's document must stay small: when the output
// is longer than head+tail bytes, captured_out holds its first and last
// bytes around a marker, and the whole output is in OutputDir.
const (
	DefaultOutputHead = 256 << 10
	DefaultOutputTail = 768 << 10
)

// Observer records one run into a TinyDB store. Create it with New.
type Observer struct {
	cfg Config
	st  *store

	mu  sync.Mutex
	key string // the TinyDB doc id; "" until the run is in the file
	id  string // the run id, "_id"
	d   doc
	buf []byte // the encoded document, reused

	resources, artifacts [][]byte // encoded entries
	m                    metrics
	metricsDirty         bool // points not yet in the "metrics" field
	// unsaved is set when the document changed since it was last
	// written, so that a call repeated after a failed write writes it
	// even when it adds nothing new.
	unsaved bool

	outputHead, outputTail int
	// outFile holds the whole output once it is too long for
	// captured_out or not valid UTF-8; outRel is its path in the store.
	outFile *os.File
	outRel  string
}

var _ observer.Observer = (*Observer)(nil)

// New returns an observer for one run into the store cfg names. It creates
// the directory, as Sacred does, so that a path that cannot be a store is
// reported before the child starts.
func New(_ context.Context, cfg Config, _ observer.Settings) (*Observer, error) {
	if err := os.MkdirAll(cfg.Abs, 0o755); err != nil {
		return nil, fmt.Errorf("tinydb: creating the store directory: %w", err)
	}
	return &Observer{
		cfg:        cfg,
		st:         newStore(cfg.Abs, cfg.Dir),
		outputHead: DefaultOutputHead,
		outputTail: DefaultOutputTail,
	}, nil
}

// Name is "TinyDB DIR".
func (o *Observer) Name() string { return "TinyDB " + o.cfg.Dir }

// Priority is 0, as Sacred's TinyDbObserver.
func (o *Observer) Priority() int { return DefaultPriority }

// Started inserts the run's document (status RUNNING) after storing the
// sources in hashfs.
func (o *Observer) Started(ctx context.Context, ev *observer.StartEvent) (string, error) {
	return o.start(ctx, ev, false)
}

// Queued inserts a document with status QUEUED. Sacred's TinyDbObserver
// raises NotImplementedError here; see docs/observers/tinydb.md for the
// shape.
func (o *Observer) Queued(ctx context.Context, ev *observer.StartEvent) (string, error) {
	return o.start(ctx, ev, true)
}

func (o *Observer) start(ctx context.Context, ev *observer.StartEvent, queued bool) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.key != "" {
		return "", fmt.Errorf("tinydb: run %s was already started", o.id)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("tinydb: %w", err)
	}
	id := ev.ID
	if id == "" {
		var err error
		if id, err = uuid4Hex(); err != nil {
			return "", fmt.Errorf("tinydb: choosing a run id: %w", err)
		}
	}
	sources, err := o.saveSources(&ev.Experiment)
	if err != nil {
		return "", err
	}
	o.d = doc{}
	o.d[fExperiment] = experimentJSON(&ev.Experiment, sources)
	o.d.setString(fFormat, Format)
	o.d.setString(fCommand, ev.Command)
	o.d[fHost] = hostJSON(ev.Host)
	meta := ev.Meta
	if queued {
		// A queued run has not started: start_time is null (present, so
		// that Sacred's fetch_files still works), meta.queue_time set.
		o.d.setNull(fStartTime)
		if meta.QueueTime == nil {
			t := ev.Time
			meta.QueueTime = &t
		}
		o.d.setString(fStatus, observer.StatusQueued)
	} else {
		o.d.setDate(fStartTime, ev.Time)
		o.d.setString(fStatus, observer.StatusRunning)
	}
	if err := o.d.set(fConfig, orEmpty(ev.Config)); err != nil {
		return "", fmt.Errorf("tinydb: encoding the config: %w", err)
	}
	if o.d[fMeta], err = metaJSON(&meta); err != nil {
		return "", fmt.Errorf("tinydb: encoding meta: %w", err)
	}
	o.d[fResources] = []byte("[]")
	o.d[fArtifacts] = []byte("[]")
	o.d.setString(fCapturedOut, "")
	o.d[fInfo] = []byte("{}")
	o.d.setNull(fHeartbeat)
	o.d.setString(fID, id)

	body := o.d.encode(nil)
	var key string
	err = o.st.modify(ctx, func(ix *index) (*splice, error) {
		if ev.ID != "" && ix.runs != nil && ix.runs.hasRun(id) {
			return nil, fmt.Errorf("tinydb: run %q is already in %s: %w", id, filepath.Join(o.cfg.Dir, MetadataFile), observer.ErrIDTaken)
		}
		var next int64 = 1
		if ix.runs != nil {
			next = ix.runs.maxID + 1
		}
		key = strconv.FormatInt(next, 10)
		entry := sacredjson.AppendString(nil, key)
		entry = append(entry, ": "...)
		switch {
		case ix.blank:
			data := append([]byte(`{"`+RunsTable+`": {`), entry...)
			data = append(append(data, body...), "}}"...)
			return &splice{data: data}, nil
		case ix.runs == nil:
			var data []byte
			if !ix.topEmpty {
				data = append(data, ", "...)
			}
			data = append(data, `"`+RunsTable+`": {`...)
			data = append(append(append(data, entry...), body...), '}')
			return &splice{at: ix.topClose, end: ix.topClose, data: data}, nil
		}
		var data []byte
		if len(ix.runs.docs) > 0 {
			data = append(data, ", "...)
		}
		data = append(data, entry...)
		at := ix.runs.close
		bodyAt := at + int64(len(data))
		data = append(data, body...)
		return &splice{at: at, end: at, data: data, commit: func(ix *index) {
			ix.runs.docs = append(ix.runs.docs, docEntry{key: key, start: bodyAt, end: bodyAt + int64(len(body)), runID: id, hasRunID: true})
			ix.runs.maxID = next
		}}, nil
	})
	if err != nil {
		return "", err
	}
	o.key, o.id = key, id
	// The document is in place; a failing directory sync only leaves its
	// durability in doubt, and failing the start would leave it RUNNING
	// for ever. The final event syncs again and reports it.
	_ = o.st.syncDir()
	return id, nil
}

// saveSources stores the sources in hashfs (once per content) and returns
// experiment.sources.
func (o *Observer) saveSources(e *observer.Experiment) ([]sourceRef, error) {
	out := make([]sourceRef, 0, len(e.Sources))
	for _, s := range e.Sources {
		ref := sourceRef{name: s.Name, md5: s.MD5}
		if !s.Omitted {
			path := s.Path
			if path == "" {
				path = filepath.Join(e.BaseDir, s.Name)
			}
			id, err := putFile(o.st.dir, path, s.MD5, "")
			if err != nil {
				return nil, fmt.Errorf("tinydb: storing source %s: %w", s.Name, err)
			}
			ref.stored = id
		}
		out = append(out, ref)
	}
	return out, nil
}

func (o *Observer) ready(event string) error {
	if o.key == "" {
		return fmt.Errorf("tinydb: %s before the run was started", event)
	}
	return nil
}

// save writes the document over its old version in metadata.json.
func (o *Observer) save(ctx context.Context) error {
	o.unsaved = true // until the write succeeds
	if o.metricsDirty {
		o.d[fMetrics] = o.m.encode(o.d[fMetrics][:0])
	}
	o.buf = o.d.encode(o.buf[:0])
	data := o.buf
	err := o.st.modify(ctx, func(ix *index) (*splice, error) {
		i := -1
		if ix.runs != nil {
			i = ix.runs.find(o.key)
		}
		if i < 0 {
			return nil, fmt.Errorf("tinydb: run %s (document %s) is no longer in %s; not writing it again", o.id, o.key, filepath.Join(o.cfg.Dir, MetadataFile))
		}
		de := ix.runs.docs[i]
		if !de.hasRunID || de.runID != o.id {
			return nil, fmt.Errorf("tinydb: document %s of %s is no longer run %s; not overwriting it", o.key, filepath.Join(o.cfg.Dir, MetadataFile), o.id)
		}
		return &splice{at: de.start, end: de.end, data: data, commit: func(ix *index) {
			ix.runs.docs[i].end = ix.runs.docs[i].start + int64(len(data))
		}}, nil
	})
	if err != nil {
		return err
	}
	o.metricsDirty, o.unsaved = false, false
	return nil
}

// LogMetrics adds the points to the run's "metrics" field. They are
// written with the heartbeat that follows (the runner sends one right
// after), or by the final event or Close.
func (o *Observer) LogMetrics(_ context.Context, ev *observer.MetricsEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready("log_metrics"); err != nil {
		return err
	}
	before := len(o.m.series)
	o.m.add(ev.Metrics)
	if len(ev.Metrics) > 0 || len(o.m.series) != before {
		o.metricsDirty, o.unsaved = true, true
	}
	return nil
}

// Heartbeat sets captured_out, info, heartbeat and result, and writes the
// document.
func (o *Observer) Heartbeat(ctx context.Context, ev *observer.HeartbeatEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready("heartbeat"); err != nil {
		return err
	}
	var errOut error
	if ev.Output != nil {
		errOut = o.output(ev)
	}
	if ev.Info != nil {
		if err := o.d.set(fInfo, ev.Info); err != nil {
			return fmt.Errorf("tinydb: run %s: encoding info: %w", o.id, err)
		}
	}
	o.d.setDate(fHeartbeat, ev.BeatTime)
	if err := o.setResult(ev.Result, ev.HasResult); err != nil {
		return err
	}
	return errors.Join(errOut, o.save(ctx))
}

func (o *Observer) setResult(v any, has bool) error {
	if !has {
		v = nil
	}
	if err := o.d.set(fResult, v); err != nil {
		return fmt.Errorf("tinydb: run %s: encoding the result: %w", o.id, err)
	}
	return nil
}

// Resource stores the file in hashfs and adds [path, md5, TinyFile] to
// resources, once per path and content.
func (o *Observer) Resource(ctx context.Context, ev *observer.ResourceEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready("resource"); err != nil {
		return err
	}
	id, err := putFile(o.st.dir, ev.Path, ev.MD5, "")
	if err != nil {
		return fmt.Errorf("tinydb: run %s: storing resource %s: %w", o.id, ev.Path, err)
	}
	entry := sacredjson.AppendString([]byte{'['}, ev.Path)
	entry = append(entry, ", "...)
	entry = sacredjson.AppendString(entry, id)
	entry = append(entry, ", "...)
	entry = append(appendFile(entry, id), ']')
	if !o.addEntry(&o.resources, fResources, entry) && !o.unsaved {
		return nil
	}
	return o.save(ctx)
}

// Artifact stores the file in hashfs and adds [name, path, md5, TinyFile]
// to artifacts.
func (o *Observer) Artifact(ctx context.Context, ev *observer.ArtifactEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready("artifact"); err != nil {
		return err
	}
	id, err := putFile(o.st.dir, ev.Path, "", ev.OrigPath)
	if err != nil {
		return fmt.Errorf("tinydb: run %s: storing artifact %q: %w", o.id, ev.Name, err)
	}
	orig := ev.OrigPath
	if orig == "" {
		orig = ev.Path
	}
	entry := sacredjson.AppendString([]byte{'['}, ev.Name)
	entry = append(entry, ", "...)
	entry = sacredjson.AppendString(entry, orig)
	entry = append(entry, ", "...)
	entry = sacredjson.AppendString(entry, id)
	entry = append(entry, ", "...)
	entry = append(appendFile(entry, id), ']')
	if !o.addEntry(&o.artifacts, fArtifacts, entry) && !o.unsaved {
		return nil
	}
	return o.save(ctx)
}

// addEntry appends entry to a list field unless it is there already (as
// Sacred does); it reports whether the list changed.
func (o *Observer) addEntry(list *[][]byte, field int, entry []byte) bool {
	for _, e := range *list {
		if string(e) == string(entry) {
			return false
		}
	}
	*list = append(*list, entry)
	o.unsaved = true
	b := []byte{'['}
	for i, e := range *list {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, e...)
	}
	o.d[field] = append(b, ']')
	return true
}

// Completed records status COMPLETED, stop_time and the result.
func (o *Observer) Completed(ctx context.Context, ev *observer.CompletedEvent) error {
	return o.finish(ctx, "completed", func() error {
		o.d.setDate(fStopTime, ev.StopTime)
		if err := o.setResult(ev.Result, ev.HasResult); err != nil {
			return err
		}
		o.d.setString(fStatus, observer.StatusCompleted)
		return nil
	})
}

// Interrupted records the status (INTERRUPTED, TIMEOUT or a custom one)
// and stop_time.
func (o *Observer) Interrupted(ctx context.Context, ev *observer.InterruptedEvent) error {
	return o.finish(ctx, "interrupted", func() error {
		status := ev.Status
		if status == "" {
			status = observer.StatusInterrupted
		}
		o.d.setDate(fStopTime, ev.StopTime)
		o.d.setString(fStatus, status)
		return nil
	})
}

// Failed records status FAILED, stop_time and fail_trace.
func (o *Observer) Failed(ctx context.Context, ev *observer.FailedEvent) error {
	return o.finish(ctx, "failed", func() error {
		o.d.setDate(fStopTime, ev.StopTime)
		o.d.setString(fStatus, observer.StatusFailed)
		trace := ev.Trace
		if trace == nil {
			trace = []string{}
		}
		o.d[fFailTrace] = strList(trace)
		return nil
	})
}

// finish makes the full output durable, writes the final document and
// syncs the directory, so that the end of the run survives a crash.
func (o *Observer) finish(ctx context.Context, event string, update func() error) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready(event); err != nil {
		return err
	}
	var errSync error
	if o.outFile != nil {
		if err := o.outFile.Sync(); err != nil {
			errSync = fmt.Errorf("tinydb: run %s: syncing %s: %w", o.id, o.outRel, err)
		}
	}
	if err := update(); err != nil {
		return errors.Join(errSync, err)
	}
	if err := o.save(ctx); err != nil {
		return errors.Join(errSync, err)
	}
	return errors.Join(errSync, o.st.syncDir())
}

// Close writes metric points no heartbeat wrote yet and closes the output
// file.
func (o *Observer) Close(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	var err error
	if o.key != "" && o.unsaved {
		err = o.save(ctx)
	}
	if o.outFile != nil {
		if cerr := o.outFile.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("tinydb: run %s: closing %s: %w", o.id, o.outRel, cerr))
		}
		o.outFile = nil
	}
	return err
}

// uuid4Hex is Python's uuid.uuid4().hex.
func uuid4Hex() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return hex.EncodeToString(b[:]), nil
}
