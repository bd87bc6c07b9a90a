// Package queue is the durable queue: a decorator that lets a run be
// recorded by a store that is down, slow or far away, without losing
// anything and without making the run wait. Sacred's QueueObserver (and
// QueuedMongoObserver) is its model, minus its faults: events are kept on
// local disk rather than in memory, a failing event does not block the
// others for ever, and the end of the run never hangs.
//
// Every event first goes to a journal on local disk, one file per run and
// observer: an append-only file of checksummed, length-prefixed records,
// synced at each heartbeat, artifact, start and end (fsync in batches).
// The heartbeat's output is copied into the journal once, as byte ranges
// in order, and artifacts' and sources' contents likewise, so the journal
// holds everything a later replay needs after the run's private files are
// gone. A background worker sends the journal's events to the wrapped
// observer in order, with exponential backoff and jitter, and notes in the
// journal what the store acknowledged (an ack record after each event), so
// that `sacred sync` later replays exactly the rest: see Replay.
//
// The decorator's own calls only append to the journal, so they are fast
// and fail only with the local disk. The runner wraps every observer in
// the retry decorator; the stack is retry(queue(store)): retry sees a
// store that always takes its data, and the queue's worker does the
// retrying towards the real store, with its own backoff and per-call
// timeout. The final event (Completed, Interrupted, Failed) waits for the
// worker until the caller's deadline (--flush-timeout) and returns an
// error naming what is still only in the journal; Close then stops the
// worker, says how many events are left and prints the command that
// replays them.
//
// Ids: when the store is reachable the start is recorded at once (the
// decorator waits up to Options.StartWait for it) and the run gets the
// store's id. When it is not, the run gets the id chosen by another
// observer, or else the journal's own id as a provisional id; the store
// chooses its id when the start finally reaches it, and the journal notes
// the mapping.
//
// A store that refuses an event (a call that fails for another reason
// than the store being unreachable) MaxAttempts times in a row: the event
// goes to the dead-letter file beside the journal (NAME.dead, JSON lines),
// with one warning, and the worker goes on with the next event.
package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Defaults of Options.
const (
	DefaultStartWait   = 2 * time.Second
	DefaultCallTimeout = 30 * time.Second
	DefaultMinBackoff  = 500 * time.Millisecond
	DefaultMaxBackoff  = 10 * time.Second
	DefaultMaxAttempts = 5
)

// Options configure New (and Replay).
type Options struct {
	// Dir is the directory of the journals (see DefaultDir).
	Dir string
	// Option, Title and Value name the wrapped observer: its kind's
	// option ("mongo_db"), title ("MongoDB") and value. Value must be
	// redacted already; Secret tells that secrets were taken out of it.
	// The journal records them so that `sacred sync` can open the same
	// store later.
	Option, Title, Value string
	Secret               bool
	// Warn receives the one-line messages for the user (a dead event,
	// what is left at the end).
	Warn io.Writer

	// StartWait bounds the wait for the store to record the start
	// (default 2s); the run starts after it with a provisional id.
	StartWait time.Duration
	// CallTimeout bounds every call to the wrapped observer (default 30s).
	CallTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts (defaults
	// 0.5s and 10s); it doubles from one to the other, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// MaxAttempts is how many times in a row the store may refuse an event
	// before it goes to the dead-letter file (default 5).
	MaxAttempts int
	// Transient tells an error of an unreachable store (retried without
	// limit) from a refusal; the default recognises network errors and
	// timeouts.
	Transient func(error) bool
}

func (o *Options) defaults() {
	if o.StartWait <= 0 {
		o.StartWait = DefaultStartWait
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Transient == nil {
		o.Transient = unreachable
	}
	if o.Warn == nil {
		o.Warn = io.Discard
	}
}

// DefaultDir is where journals go when no directory is given:
// $XDG_STATE_HOME/sacred/queue, else ~/.local/state/sacred/queue (on
// Windows %LOCALAPPDATA%\sacred\queue). getenv reads the environment.
func DefaultDir(getenv func(string) string) (string, error) {
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return joinPath(d, "sacred", "queue"), nil
	}
	if d := getenv("LOCALAPPDATA"); d != "" && os.PathSeparator == '\\' {
		return joinPath(d, "sacred", "queue"), nil
	}
	home := getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", errors.New("no journal directory: set XDG_STATE_HOME or HOME, or give --journal-dir")
		}
	}
	return joinPath(home, ".local", "state", "sacred", "queue"), nil
}

func joinPath(parts ...string) string {
	return strings.Join(parts, string(os.PathSeparator))
}

// provisional holds the provisional ids this process gave out, so that a
// second journaled observer of the same run does not ask its store for an
// id that no store chose.
var provisional sync.Map

// Observer is the durable queue around one observer; see the package
// documentation.
type Observer struct {
	opt    Options
	header Header
	j      *journal
	w      *worker
	stop   context.CancelFunc

	// Owned by the caller (the runner calls one method at a time).
	outEnd   int64  // end of the output journaled
	nextBlob uint64 // last blob id used
	startAt  bool   // a start (or queued) record is in the journal
	final    bool   // a final record is in the journal
	runID    string // the id Started returned
	closed   bool
}

var (
	_ observer.Observer        = (*Observer)(nil)
	_ observer.Unwrapper       = (*Observer)(nil)
	_ observer.OutputFileOwner = (*Observer)(nil)
)

// New creates a journal for one run in opt.Dir and starts the worker,
// which opens the wrapped observer with open (retrying while it fails) and
// feeds it. The child need not wait for the store: New fails only when
// the journal cannot be created.
func New(open Opener, opt Options) (*Observer, error) {
	opt.defaults()
	if opt.Dir == "" {
		return nil, errors.New("queue: no journal directory")
	}
	host, _ := os.Hostname()
	h := Header{
		ID: newID(time.Now()), Created: time.Now().UTC(), Option: opt.Option, Title: opt.Title,
		Value: opt.Value, Secret: opt.Secret, Host: host, PID: os.Getpid(),
	}
	j, err := createJournal(opt.Dir, &h)
	if err != nil {
		return nil, fmt.Errorf("%w (give another directory with --journal-dir)", err)
	}
	q := &Observer{opt: opt, header: h, j: j}
	ctx, cancel := context.WithCancel(context.Background())
	q.stop = cancel
	q.w = newWorker(j, open, &q.opt, targetKey(opt.Option, opt.Value), q.storeName(), ackState{}, true)
	go q.w.run(ctx)
	return q, nil
}

// targetKey names a store in ack records: its kind and redacted value.
func targetKey(option, redacted string) string { return option + " " + redacted }

func (q *Observer) storeName() string {
	return strings.TrimSpace(q.opt.Title + " " + q.opt.Value)
}

// Path is the journal's file.
func (q *Observer) Path() string { return q.j.path }

// Name names the wrapped store; it holds no secret.
func (q *Observer) Name() string { return q.storeName() + " (journaled)" }

// Priority is 0, as for Sacred's QueueObserver: whatever the store, so
// that the order of observers (and who chooses the id) does not depend on
// whether the store was reachable.
func (q *Observer) Priority() int { return 0 }

// Unwrap returns the wrapped observer, or nil while it is not open.
func (q *Observer) Unwrap() observer.Observer { return q.w.innerObserver() }

// OutputFile declines: the output reaches the store through the journal,
// never straight from the capture.
func (q *Observer) OutputFile() (*os.File, error) { return nil, nil }

// Queued journals a queued run; ids as in Started.
func (q *Observer) Queued(ctx context.Context, ev *observer.StartEvent) (string, error) {
	return q.begin(ctx, recQueued, ev)
}

// Started journals the start with the sources' contents, then waits up to
// StartWait for the store to record it. It returns the store's id, else
// the id it was given, else the journal's id (provisional). A store that
// refuses the start for good (an id it has already) makes it fail, as the
// store itself would.
func (q *Observer) Started(ctx context.Context, ev *observer.StartEvent) (string, error) {
	return q.begin(ctx, recStarted, ev)
}

func (q *Observer) begin(ctx context.Context, typ byte, ev *observer.StartEvent) (string, error) {
	if q.startAt {
		return "", errors.New("queue: the run was started already")
	}
	blobs := make([]uint64, len(ev.Experiment.Sources))
	for i, s := range ev.Experiment.Sources {
		if s.Omitted {
			continue
		}
		path := s.Path
		if path == "" {
			path = joinPath(ev.Experiment.BaseDir, s.Name)
		}
		id, _, err := q.copyFile(path)
		if err != nil {
			// The store could not read it either; it will say so.
			continue
		}
		blobs[i] = id
	}
	rec := *ev
	if _, ok := provisional.Load(ev.ID); ok {
		rec.ID = "" // another journal's provisional id: the store chooses
	}
	payload, err := encodeDoc(typ, encodeStart(&rec, blobs))
	if err != nil {
		return "", err
	}
	if _, err := q.j.append(payload); err != nil {
		return "", err
	}
	if err := q.j.sync(); err != nil {
		return "", err
	}
	q.startAt = true
	if typ == recQueued {
		q.final = true
	}

	t := time.NewTimer(q.opt.StartWait)
	defer t.Stop()
	select {
	case <-q.w.firstTry:
	case <-t.C:
	case <-ctx.Done():
	}
	id, ok, refused := q.w.started()
	switch {
	case ok:
		q.runID = id
	case refused != nil:
		return "", fmt.Errorf("%s: %w", q.storeName(), refused)
	case ev.ID != "":
		q.runID = ev.ID
	default:
		q.runID = q.header.ID
		provisional.Store(q.runID, true)
	}
	return q.runID, nil
}

// copyFile appends the content of the file at path to the journal as a
// new blob and returns its id and size.
func (q *Observer) copyFile(path string) (id uint64, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	q.nextBlob++
	id = q.nextBlob
	buf := make([]byte, chunkSize)
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			if _, werr := q.j.append(chunkHead(recBlob, id), buf[:n]); werr != nil {
				return 0, 0, werr
			}
			size += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return id, size, nil
		}
		if err != nil {
			return 0, 0, fmt.Errorf("read %s: %w", path, err)
		}
	}
}

func (q *Observer) appendDoc(typ byte, d doc, durable bool) error {
	payload, err := encodeDoc(typ, d)
	if err != nil {
		return err
	}
	if _, err := q.j.append(payload); err != nil {
		return err
	}
	if durable {
		return q.j.sync()
	}
	return nil
}

// LogMetrics journals the points; the heartbeat that follows makes them
// durable.
func (q *Observer) LogMetrics(_ context.Context, ev *observer.MetricsEvent) error {
	return q.appendDoc(recMetrics, encodeMetrics(ev), false)
}

// Heartbeat copies the new output into the journal, journals the beat and
// syncs.
func (q *Observer) Heartbeat(_ context.Context, ev *observer.HeartbeatEvent) error {
	// From is where this observer's output ended, which is outEnd; a
	// range already journaled (after a failed sync) is not copied again.
	if ev.Output != nil && ev.To > q.outEnd {
		buf := make([]byte, min(chunkSize, ev.To-q.outEnd))
		for q.outEnd < ev.To {
			n := min(int64(len(buf)), ev.To-q.outEnd)
			got, err := ev.Output.ReadAt(buf[:n], q.outEnd)
			if got > 0 {
				if _, werr := q.j.append(chunkHead(recOutput, uint64(q.outEnd)), buf[:got]); werr != nil {
					return werr
				}
				q.outEnd += int64(got)
			}
			if err != nil && !(errors.Is(err, io.EOF) && int64(got) == n) {
				return fmt.Errorf("read the output at %d: %w", q.outEnd, err)
			}
		}
	}
	return q.appendDoc(recBeat, encodeBeat(ev), true)
}

// Resource journals the resource's path and md5; the store copies the
// file when the event reaches it.
func (q *Observer) Resource(_ context.Context, ev *observer.ResourceEvent) error {
	return q.appendDoc(recResource, encodeResource(ev), false)
}

// Artifact copies the artifact's content into the journal.
func (q *Observer) Artifact(_ context.Context, ev *observer.ArtifactEvent) error {
	id, size, err := q.copyFile(ev.Path)
	if err != nil {
		return fmt.Errorf("journal artifact %s: %w", ev.Name, err)
	}
	return q.appendDoc(recArtifact, encodeArtifact(ev, id, size), true)
}

// Completed journals the end and waits for the store to record the run.
func (q *Observer) Completed(ctx context.Context, ev *observer.CompletedEvent) error {
	return q.finish(ctx, recCompleted, encodeCompleted(ev))
}

// Interrupted journals the end and waits for the store to record the run.
func (q *Observer) Interrupted(ctx context.Context, ev *observer.InterruptedEvent) error {
	return q.finish(ctx, recInterrupted, encodeInterrupted(ev))
}

// Failed journals the end and waits for the store to record the run.
func (q *Observer) Failed(ctx context.Context, ev *observer.FailedEvent) error {
	return q.finish(ctx, recFailed, encodeFailed(ev))
}

// finish journals the final event (once: a repeated call only waits
// again) and waits for the worker until ctx is done. The error says what
// the store has not recorded; the journal keeps it.
func (q *Observer) finish(ctx context.Context, typ byte, d doc) error {
	if !q.final {
		if err := q.appendDoc(typ, d, true); err != nil {
			return err
		}
		q.final = true
		// The end is near: a store that came back should not wait out
		// the worker's backoff.
		q.w.wake()
	}
	select {
	case <-q.w.done:
	case <-ctx.Done():
	}
	select {
	case <-q.w.done:
		if q.w.st.Done {
			return nil
		}
		if err := q.w.blockedBy(); err != nil {
			return fmt.Errorf("the run is kept in the journal %s: %w", q.j.path, err)
		}
	default:
	}
	// The last error of the store comes in Close's message.
	return fmt.Errorf("not yet recorded in %s: the journal %s keeps the rest of the run", q.storeName(), q.j.path)
}

// Close stops the worker, closes the wrapped observer and the journal, and
// tells the user what is left in it and how to replay it. A journal whose
// every event the store recorded is removed.
func (q *Observer) Close(ctx context.Context) error {
	if q.closed {
		return nil
	}
	q.closed = true
	q.stop()
	select {
	case <-q.w.done:
	case <-ctx.Done():
		// The store holds the in-flight call beyond its context; the
		// journal stays as it is, its lock is released at exit.
		q.opt.Warn.Write([]byte(fmt.Sprintf("sacred: %s did not return in time; the journal %s keeps the run: replay it with: sacred sync %s\n", q.storeName(), q.j.path, shellQuote(q.j.path))))
		return ctx.Err()
	}
	var err error
	if inner := q.w.innerObserver(); inner != nil {
		err = inner.Close(ctx)
	}
	q.report()
	remove := !q.startAt || (q.w.st.Done && q.w.st.Dead == 0)
	if _, _, refused := q.w.started(); refused != nil {
		remove = true // the run never started
	}
	if cerr := q.j.close(remove); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// report prints what happened to the run in the store, once the worker
// is done.
func (q *Observer) report() {
	if !q.startAt {
		return
	}
	if _, _, refused := q.w.started(); refused != nil {
		return
	}
	st := &q.w.st
	warn := func(format string, args ...any) {
		fmt.Fprintf(q.opt.Warn, "sacred: "+format+"\n", args...)
	}
	if st.Started && q.runID != "" && st.ID != q.runID {
		warn("run %s is run %s in %s", q.runID, st.ID, q.storeName())
	}
	if st.Dead > 0 {
		warn("run %s: %s could not be recorded in %s: see the dead-letter file %s (the journal %s is kept)", q.runID, events(st.Dead), q.storeName(), deadPath(q.j.path), q.j.path)
	}
	if st.Done {
		return
	}
	left := q.w.remaining()
	why := ""
	if err := q.w.blockedBy(); err != nil {
		why = fmt.Sprintf(" (%v)", err)
	} else if err := q.w.lastError(); err != nil {
		why = fmt.Sprintf(" (last error: %v)", err)
	}
	verb := "are"
	if left == 1 {
		verb = "is"
	}
	warn("%s of run %s %s not yet recorded in %s%s; the journal %s keeps them", events(int64(left)), q.runID, verb, q.storeName(), why, q.j.path)
	cmd := "sacred sync " + shellQuote(q.j.path)
	if q.opt.Secret {
		warn("replay them with: %s (it needs the password that the journal does not keep: set %s, or give --%s with the full value after the journal)", cmd, observer.EnvVar(q.opt.Option), q.opt.Option)
	} else {
		warn("replay them with: %s", cmd)
	}
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// events counts events in words: "1 event", "3 events".
func events(n int64) string {
	if n == 1 {
		return "1 event"
	}
	return fmt.Sprintf("%d events", n)
}
