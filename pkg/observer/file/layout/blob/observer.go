package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout"
	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// DefaultPriority is Sacred's priority of its S3 and GCS observers.
const DefaultPriority = 20

// Content types of the objects of a run.
const (
	typeJSON = "application/json"
	typeText = "text/plain; charset=utf-8"
)

// Config configures an Observer.
type Config struct {
	Bucket Bucket
	// Prefix is the key prefix of the layout: "" for the bucket's root,
	// otherwise it ends in "/" (see CleanPrefix).
	Prefix string
	// Name is Observer.Name(), e.g. "S3 s3://bucket/runs"; it must hold
	// no secret.
	Name string
	// Title starts error messages, e.g. "S3".
	Title string
	// Warn receives one-line warnings (nil: discarded).
	Warn io.Writer
	// CheckConditional asks Started to check, once, that the store
	// honoured the conditional create that allocated the run id (some
	// S3-compatible stores ignore If-None-Match), and to warn if not.
	CheckConditional bool
	// TempDir holds the local copy of metrics.json ("": the system's).
	TempDir string
	// AppendChunk is the most output one request sends to a store that
	// appends (0: DefaultAppendChunk). A part that runs into the call's
	// deadline although it began with most of the call's time halves the
	// size of the next ones, down to AppendChunk/64; a part sent in under
	// a quarter of the call's time doubles it again, up to AppendChunk.
	AppendChunk int64
}

// DefaultAppendChunk: a beat's output goes in requests of at most 64 MiB.
// What a call stored before its deadline stays stored and the call sent
// again goes on from there, so a burst of output larger than one call can
// upload (1 GiB written in seconds) is stored in a few calls instead of
// being sent whole again at each try and never landing; on a link too slow
// for 64 MiB in one call the parts shrink (see Config.AppendChunk). Each
// request also costs the store a server-side copy or compose of the
// object, which is why the parts are not smaller.
const DefaultAppendChunk = 64 << 20

// CleanPrefix turns a path given by the user ("runs", "/a/b/", "") into a
// key prefix: no leading slash, no empty or "." components, and a
// trailing slash unless it is empty. ".." is refused, as is a NUL byte.
func CleanPrefix(p string) (string, error) {
	var parts []string
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("the path %q must not contain \"..\"", p)
		}
		if strings.ContainsRune(c, 0) {
			return "", fmt.Errorf("the path %q contains a NUL byte", p)
		}
		parts = append(parts, c)
	}
	if len(parts) == 0 {
		return "", nil
	}
	return strings.Join(parts, "/") + "/", nil
}

// Observer writes one run into PREFIX/<id>/ of a Bucket, in the layout of
// Sacred's file storage. It implements observer.Observer. Errors are
// honest: a failed call keeps nothing for later (the retry decorator sends
// the data again), and a call sent again after a failure is harmless.
type Observer struct {
	cfg Config

	mu        sync.Mutex
	id        string
	runPrefix string     // PREFIX/<id>/
	run       layout.Run // the content of run.json
	infoJSON  []byte     // info.json as last stored
	metrics   *metricsBlob
	// coutUnsure is set when a write of cout.txt failed: the object may
	// or may not hold the failed range (a request can fail after the
	// store took it), so the next write asks its size first.
	coutUnsure bool
	// coutResumed is set by Resume until the first write of cout.txt:
	// the object then held coutSize bytes, the output's first bytes, so
	// the write sends the output from there on (what the beat repeats of
	// them is not sent again).
	coutResumed bool
	coutSize    int64
	// coutBroken is set when an append landed on a changed object
	// (ErrAppendMisplaced): cout.txt is written again from the start.
	coutBroken bool
	// noAppend is set once the store refused a server-side append.
	noAppend bool
	// part is the size of the next part of output (see AppendChunk).
	part int64
}

var _ observer.Observer = (*Observer)(nil)

// New returns an observer over cfg.Bucket. It does no I/O.
func New(cfg Config) (*Observer, error) {
	if cfg.Bucket == nil {
		return nil, errors.New("blob: no bucket")
	}
	if cfg.Prefix != "" && !strings.HasSuffix(cfg.Prefix, "/") {
		return nil, fmt.Errorf("blob: prefix %q must end in /", cfg.Prefix)
	}
	if cfg.Title == "" {
		cfg.Title = "object store"
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Title
	}
	if cfg.Warn == nil {
		cfg.Warn = io.Discard
	}
	if cfg.AppendChunk <= 0 {
		cfg.AppendChunk = DefaultAppendChunk
	}
	return &Observer{cfg: cfg, part: cfg.AppendChunk}, nil
}

// Name is the name given in Config.
func (o *Observer) Name() string { return o.cfg.Name }

// Priority is 20, as Sacred's S3 and GCS observers.
func (o *Observer) Priority() int { return DefaultPriority }

// ID is the run id, empty before Started or Queued.
func (o *Observer) ID() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.id
}

// Started stores the sources in PREFIX/_sources (once per content), then
// allocates the run id by creating PREFIX/<id>/run.json only if absent,
// and writes config.json and an empty cout.txt.
func (o *Observer) Started(ctx context.Context, ev *observer.StartEvent) (string, error) {
	return o.start(ctx, ev, false)
}

// Queued is Started for a queued run: run.json (status QUEUED) and
// config.json, no cout.txt.
func (o *Observer) Queued(ctx context.Context, ev *observer.StartEvent) (string, error) {
	return o.start(ctx, ev, true)
}

func (o *Observer) start(ctx context.Context, ev *observer.StartEvent, queued bool) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.run != nil {
		return "", fmt.Errorf("%s: run %s was already started", o.cfg.Title, o.id)
	}
	if ev.ID != "" {
		if err := layout.CheckID(ev.ID); err != nil {
			return "", fmt.Errorf("%s: %w", o.cfg.Title, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("%s: %w", o.cfg.Title, err)
	}
	// Sources first, as Sacred does: they are shared and named by
	// content, so storing them before the run exists is harmless.
	sources, err := o.saveSources(ctx, &ev.Experiment)
	if err != nil {
		return "", err
	}
	config := ev.Config
	if config == nil {
		config = map[string]any{}
	}
	configJSON, err := sacredjson.Marshal(config)
	if err != nil {
		return "", fmt.Errorf("%s: encoding %s: %w", o.cfg.Title, layout.ConfigFile, err)
	}
	run := layout.NewRun(ev, sources, queued)
	runJSON, err := sacredjson.Marshal(run)
	if err != nil {
		return "", fmt.Errorf("%s: encoding %s: %w", o.cfg.Title, layout.RunFile, err)
	}
	id, err := o.allocate(ctx, ev.ID, runJSON)
	if err != nil {
		return "", err
	}
	o.id, o.runPrefix, o.run = id, o.cfg.Prefix+id+"/", run
	o.metrics = &metricsBlob{key: o.runPrefix + layout.MetricsFile, m: layout.NewMetrics(), tempDir: o.cfg.TempDir}
	if err := o.putBytes(ctx, layout.ConfigFile, configJSON, typeJSON); err != nil {
		return "", err
	}
	if !queued {
		if err := o.putBytes(ctx, layout.CoutFile, nil, typeText); err != nil {
			return "", err
		}
	}
	return id, nil
}

// allocate creates PREFIX/<id>/run.json, the first object of a run, only
// if it does not exist: with the given id, or with the next free number
// (the largest numeric run + 1, the next one on a collision with a
// concurrent run, at most layout.MaxIDTries times, without listing again,
// as Sacred's file storage does).
func (o *Observer) allocate(ctx context.Context, given string, runJSON []byte) (string, error) {
	if given != "" {
		err := o.cfg.Bucket.Create(ctx, o.cfg.Prefix+given+"/"+layout.RunFile, runJSON, typeJSON)
		if errors.Is(err, ErrExist) {
			return "", fmt.Errorf("%s: run %s exists already in %s: %w", o.cfg.Title, given, o.cfg.Name, observer.ErrIDTaken)
		}
		if err != nil {
			return "", fmt.Errorf("%s: creating run %s: %w", o.cfg.Title, given, err)
		}
		o.checkConditional(ctx, o.cfg.Prefix+given+"/"+layout.RunFile, runJSON)
		return given, nil
	}
	dirs, err := o.cfg.Bucket.Dirs(ctx, o.cfg.Prefix)
	if err != nil {
		return "", fmt.Errorf("%s: listing runs: %w", o.cfg.Title, err)
	}
	next := layout.NextID(dirs)
	for range layout.MaxIDTries {
		id := strconv.FormatUint(next, 10)
		key := o.cfg.Prefix + id + "/" + layout.RunFile
		err := o.cfg.Bucket.Create(ctx, key, runJSON, typeJSON)
		if err == nil {
			o.checkConditional(ctx, key, runJSON)
			return id, nil
		}
		if !errors.Is(err, ErrExist) {
			return "", fmt.Errorf("%s: creating run %s: %w", o.cfg.Title, id, err)
		}
		next++
	}
	return "", fmt.Errorf("%s: no free run id after %d tries (runs %d to %d exist)",
		o.cfg.Title, layout.MaxIDTries, next-layout.MaxIDTries, next-1)
}

// checkConditional creates the object just created once more: a store
// that honours the condition refuses. One that does not (it overwrote the
// object with the same bytes, which is harmless) cannot keep concurrent
// runs apart, which the user hears of.
func (o *Observer) checkConditional(ctx context.Context, key string, data []byte) {
	if !o.cfg.CheckConditional {
		return
	}
	if err := o.cfg.Bucket.Create(ctx, key, data, typeJSON); err == nil {
		fmt.Fprintf(o.cfg.Warn, "sacred: %s: the store ignores conditional writes (If-None-Match): runs started at the same moment may get the same id; give each run its own with -i, or use a store that honours them\n", o.cfg.Name)
	}
}

// saveSources stores the sources in PREFIX/_sources and returns
// experiment.sources: [name, "_sources/<stem>_<md5><ext>"] (relative to
// the prefix, as Sacred records them), or [name, md5] for a source whose
// content is not recorded (Omitted), which is neither read nor stored.
func (o *Observer) saveSources(ctx context.Context, e *observer.Experiment) ([]any, error) {
	out := make([]any, 0, len(e.Sources))
	for _, s := range e.Sources {
		if s.Omitted {
			out = append(out, layout.SourceEntry(s, ""))
			continue
		}
		path := s.Path
		if path == "" {
			path = e.BaseDir + string(os.PathSeparator) + s.Name
		}
		name, err := o.storeShared(ctx, layout.SourcesDir, path, s.MD5)
		if err != nil {
			return nil, fmt.Errorf("%s: source %s: %w", o.cfg.Title, s.Name, err)
		}
		out = append(out, layout.SourceEntry(s, layout.SourcesDir+"/"+name))
	}
	return out, nil
}

// storeShared stores the file at path as PREFIX/<dir>/<stem>_<md5><ext>
// unless that object exists, and returns its name. md5 is computed when
// not given.
func (o *Observer) storeShared(ctx context.Context, dir, path, md5 string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("reading %w", err)
	}
	if md5 == "" {
		if md5, err = md5Of(f, fi.Size()); err != nil {
			return "", fmt.Errorf("reading %s: %w", path, err)
		}
	}
	name := layout.SharedName(path, md5)
	key := o.cfg.Prefix + dir + "/" + name
	_, err = o.cfg.Bucket.Size(ctx, key)
	switch {
	case err == nil:
		return name, nil // stored by an earlier run
	case !errors.Is(err, ErrNotExist):
		return "", err // the bucket's errors name the key
	}
	if err := o.cfg.Bucket.Put(ctx, key, f, fi.Size(), ""); err != nil {
		return "", err
	}
	return name, nil
}

// putBytes stores data as <run>/<name>.
func (o *Observer) putBytes(ctx context.Context, name string, data []byte, contentType string) error {
	err := o.cfg.Bucket.Put(ctx, o.runPrefix+name, bytesReaderAt(data), int64(len(data)), contentType)
	if err != nil {
		return fmt.Errorf("%s: run %s: %w", o.cfg.Title, o.id, err) // the bucket's errors name the key
	}
	return nil
}

// putRun stores run.json.
func (o *Observer) putRun(ctx context.Context) error {
	data, err := sacredjson.Marshal(o.run)
	if err != nil {
		return fmt.Errorf("%s: run %s: encoding %s: %w", o.cfg.Title, o.id, layout.RunFile, err)
	}
	return o.putBytes(ctx, layout.RunFile, data, typeJSON)
}

func (o *Observer) ready(event string) error {
	if o.run == nil {
		return fmt.Errorf("%s: %s before the run was started", o.cfg.Title, event)
	}
	return nil
}

// LogMetrics adds the new points to metrics.json, which exists (maybe as
// {}) from the first beat on.
func (o *Observer) LogMetrics(ctx context.Context, ev *observer.MetricsEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready("log_metrics"); err != nil {
		return err
	}
	o.metrics.m.Add(ev)
	if err := o.metrics.flush(ctx, o.cfg.Bucket); err != nil {
		return fmt.Errorf("%s: run %s: %w", o.cfg.Title, o.id, err)
	}
	return nil
}

// Heartbeat rewrites run.json (heartbeat, result), stores info.json when
// info is not empty and changed, and then the beat's output in cout.txt.
// The small objects go first: a burst of output that takes the whole call
// must not keep the heartbeat from the store (sacred reap reads it).
func (o *Observer) Heartbeat(ctx context.Context, ev *observer.HeartbeatEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready("heartbeat"); err != nil {
		return err
	}
	o.run.Beat(ev)
	errRun := o.putRun(ctx)
	var errInfo error
	if len(ev.Info) > 0 {
		errInfo = o.writeInfo(ctx, ev.Info)
	}
	errOut := o.writeOutput(ctx, ev)
	return errors.Join(errRun, errInfo, errOut)
}

// writeOutput makes cout.txt hold the output [0, To). From is where the
// last successful beat ended (the observer contract), so normally only
// [From, To) is sent, appended on the server side in parts of at most
// AppendChunk bytes; an object too small to append to (under
// MinAppendSize) is rewritten, which costs at most that much more. After a
// failed write the object's size is asked first: the failed request may
// have been carried out after all, and parts stored before it stay, so the
// write goes on from what the object holds.
func (o *Observer) writeOutput(ctx context.Context, ev *observer.HeartbeatEvent) error {
	if ev.Output == nil {
		return nil
	}
	key := o.runPrefix + layout.CoutFile
	from, to := ev.From, ev.To
	if o.coutBroken {
		from = 0
	} else if o.coutUnsure {
		size, err := o.cfg.Bucket.Size(ctx, key)
		switch {
		case errors.Is(err, ErrNotExist):
			size = 0
		case err != nil:
			return fmt.Errorf("%s: run %s: output bytes %d to %d not stored in %s: %w", o.cfg.Title, o.id, from, to, layout.CoutFile, err)
		}
		switch {
		case size == to:
			o.coutUnsure = false
			return nil
		case size < to:
			// Every write replaces the object at once with a longer
			// start of the output, so it holds the first size bytes
			// (more than From when the failed write landed after all,
			// or parts of it did): only the rest is sent.
			from = size
		default:
			from = 0 // longer than the output: not ours to extend
		}
	} else if o.coutResumed {
		if to <= o.coutSize {
			return nil // stored before Resume
		}
		from = o.coutSize
	}
	if to <= from {
		return nil
	}
	if stored, err := o.putOutput(ctx, key, ev.Output, from, to); err != nil {
		// The next write asks the object's size (coutUnsure) instead.
		o.coutUnsure, o.coutResumed = true, false
		return &observer.OutputStored{Stored: stored, Err: fmt.Errorf("%s: run %s: output bytes %d to %d not stored in %s: %w", o.cfg.Title, o.id, stored, to, layout.CoutFile, err)}
	}
	o.coutUnsure, o.coutResumed = false, false
	return nil
}

// putOutput makes key, which holds the output [0, from), hold [0, to). It
// returns how far the object is known to hold the output when it fails:
// the parts before the failed request are stored.
func (o *Observer) putOutput(ctx context.Context, key string, out observer.Output, from, to int64) (int64, error) {
	ap, ok := o.cfg.Bucket.(Appender)
	if !ok || o.noAppend {
		if err := o.cfg.Bucket.Put(ctx, key, sectionOf(out, 0, to), to, typeText); err != nil {
			return from, err
		}
		o.coutBroken = false
		return to, nil
	}
	minAppend := ap.MinAppendSize()
	var budget time.Duration // the time the call has for the output
	if deadline, ok := ctx.Deadline(); ok {
		budget = time.Until(deadline)
	}
	for from < to {
		var err error
		end := min(to, from+o.part)
		rewrite := from == 0 || from < minAppend
		began := time.Now()
		if rewrite {
			// Too small to append to: rewritten, up to a size that can
			// be appended to next.
			end = min(to, max(end, minAppend))
			err = o.cfg.Bucket.Put(ctx, key, sectionOf(out, 0, end), end, typeText)
		} else {
			err = ap.Append(ctx, key, from, sectionOf(out, from, end-from), end-from)
		}
		o.fitPart(ctx, budget, began, err)
		switch {
		case err == nil:
		case errors.Is(err, ErrAppendMisplaced):
			fmt.Fprintf(o.cfg.Warn, "sacred: %s: an append to cout.txt landed on an object changed meanwhile (%v): it is written again from the start\n", o.cfg.Name, err)
			o.coutBroken = true
			return 0, err
		case errors.Is(err, ErrAppendUnsupported):
			o.noAppend = true
			fmt.Fprintf(o.cfg.Warn, "sacred: %s: the store cannot append on the server side (%v): cout.txt is rewritten whole at every beat from now on, which costs as much as the output so far\n", o.cfg.Name, err)
			return o.putOutput(ctx, key, out, from, to)
		default:
			return from, err
		}
		if rewrite {
			o.coutBroken = false // a start of the output again
		}
		from = end
	}
	return to, nil
}

// fitPart adapts the size of the next part of output to the link: half
// after a part that ran into the deadline although it began with more
// than half of the time the call had for the output (a part that began
// late in the call says nothing of the link), double after one sent in
// under a quarter of that time.
func (o *Observer) fitPart(ctx context.Context, budget time.Duration, began time.Time, err error) {
	deadline, bounded := ctx.Deadline()
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		if !bounded || 2*deadline.Sub(began) > budget {
			o.part = max(o.part/2, o.cfg.AppendChunk/64)
		}
	case err == nil && bounded && 4*time.Since(began) < budget:
		o.part = min(o.part*2, o.cfg.AppendChunk)
	}
}

// writeInfo stores info.json when it changed.
func (o *Observer) writeInfo(ctx context.Context, info map[string]any) error {
	data, err := sacredjson.Marshal(info)
	if err != nil {
		return fmt.Errorf("%s: run %s: encoding %s: %w", o.cfg.Title, o.id, layout.InfoFile, err)
	}
	if string(data) == string(o.infoJSON) {
		return nil
	}
	if err := o.putBytes(ctx, layout.InfoFile, data, typeJSON); err != nil {
		return err
	}
	o.infoJSON = data
	return nil
}

// Resource stores the file in PREFIX/_resources (once per content) and
// records [path, key] in run.json: the full key, as Sacred's S3 observer
// records it.
func (o *Observer) Resource(ctx context.Context, ev *observer.ResourceEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready("resource"); err != nil {
		return err
	}
	name, err := o.storeShared(ctx, layout.ResourcesDir, ev.Path, ev.MD5)
	if err != nil {
		return fmt.Errorf("%s: run %s: resource %s not stored: %w", o.cfg.Title, o.id, ev.Path, err)
	}
	prev := o.run["resources"]
	o.run.AddResource(ev.Path, o.cfg.Prefix+layout.ResourcesDir+"/"+name)
	if err := o.putRun(ctx); err != nil {
		o.run["resources"] = prev // a repeat of the call must not list it twice
		return err
	}
	return nil
}

// Artifact stores the file as <run>/<name>, streamed from disk (in parts
// when large), and records the name in run.json.
func (o *Observer) Artifact(ctx context.Context, ev *observer.ArtifactEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready("artifact"); err != nil {
		return err
	}
	clean, err := layout.CheckArtifactName(ev.Name)
	if err != nil {
		return fmt.Errorf("%s: run %s: %w", o.cfg.Title, o.id, err)
	}
	if err := o.putFile(ctx, o.runPrefix+clean, ev.Path, ev.ContentType); err != nil {
		return fmt.Errorf("%s: run %s: artifact %q not stored: %w", o.cfg.Title, o.id, ev.Name, err)
	}
	prev := o.run["artifacts"]
	o.run.AddArtifact(ev.Name)
	if err := o.putRun(ctx); err != nil {
		o.run["artifacts"] = prev
		return err
	}
	return nil
}

func (o *Observer) putFile(ctx context.Context, key, path, contentType string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return o.cfg.Bucket.Put(ctx, key, f, fi.Size(), contentType)
}

// Completed records status COMPLETED, stop_time and the result.
func (o *Observer) Completed(ctx context.Context, ev *observer.CompletedEvent) error {
	return o.finish(ctx, "completed", func() { o.run.Complete(ev) })
}

// Interrupted records the status (INTERRUPTED, TIMEOUT or a custom one)
// and stop_time.
func (o *Observer) Interrupted(ctx context.Context, ev *observer.InterruptedEvent) error {
	return o.finish(ctx, "interrupted", func() { o.run.Interrupt(ev) })
}

// Failed records status FAILED, stop_time and fail_trace.
func (o *Observer) Failed(ctx context.Context, ev *observer.FailedEvent) error {
	return o.finish(ctx, "failed", func() { o.run.Fail(ev) })
}

// finish writes the final run.json. Applying the event again after a
// failure gives the same record, so a repeat is harmless.
func (o *Observer) finish(ctx context.Context, event string, update func()) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready(event); err != nil {
		return err
	}
	update()
	data, err := sacredjson.Marshal(o.run)
	if err == nil {
		err = o.cfg.Bucket.Put(ctx, o.runPrefix+layout.RunFile, bytesReaderAt(data), int64(len(data)), typeJSON)
	}
	if err != nil {
		return fmt.Errorf("%s: run %s: its end could not be recorded in %s: %w", o.cfg.Title, o.id, layout.RunFile, err)
	}
	return nil
}

// Close removes the local copy of metrics.json.
func (o *Observer) Close(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.metrics != nil {
		o.metrics.close()
	}
	return nil
}

// bytesReaderAt is an io.ReaderAt over a byte slice.
type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
