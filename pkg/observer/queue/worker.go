package queue

import (
	"context"
	"crypto/md5"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Opener opens the wrapped observer. The worker calls it, with backoff,
// until it succeeds, so a store that is down when the run starts is
// opened once it is back.
type Opener func(ctx context.Context) (observer.Observer, error)

// maxSpanPoints bounds the metric points handed to the store in one
// LogMetrics when the worker catches up (as the runner's backlog does).
const maxSpanPoints = 100_000

// permanentError marks an error that no retry can cure.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err} }

func isPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p) || errors.Is(err, observer.ErrIDTaken)
}

// unreachable tells whether err says the store could not be reached (the
// network, a timeout, a server going away), as opposed to the store
// refusing this call. Unreachable errors are retried for as long as the
// worker runs; refusals only MaxAttempts times.
func unreachable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	// Not net.Error: every syscall.Errno has its methods, "file exists"
	// too.
	var oe *net.OpError
	var de *net.DNSError
	if errors.As(err, &oe) || errors.As(err, &de) {
		return true
	}
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		return true
	}
	// Drivers label their network errors (MongoDB's NetworkError).
	var le interface{ HasErrorLabel(string) bool }
	if errors.As(err, &le) && (le.HasErrorLabel("NetworkError") || le.HasErrorLabel("RetryableWriteError")) {
		return true
	}
	// Some drivers keep the cause only in the text (MongoDB's server
	// selection timeout names the last dial error).
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"server selection", "connection refused", "connection reset", "broken pipe", "no reachable servers", "i/o timeout", "no such host", "network is unreachable", "connection closed", "bad connection"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// worker delivers the events of a journal to the store in order, from
// one goroutine, and appends an ack record after each one the store
// accepted. It serves both a live run (the decorator) and `sacred sync`.
type worker struct {
	j      *journal
	open   Opener
	opt    *Options
	target string // the ack key: option and redacted value
	name   string // the store in messages
	live   bool   // the journal is still being written

	// Owned by the worker goroutine (read by others once done is closed).
	st        ackState
	start     *startRecord
	out       outputIndex
	blobs     blobIndex
	indexedTo int64
	tmp       string
	extracted map[uint64]string
	added     map[string]any // info keys the store added (MongoDB's "metrics")
	refused   int            // refusals in a row of the head event
	ackWarned bool

	mu         sync.Mutex
	inner      observer.Observer
	lastErr    error
	firstTry   chan struct{} // closed after the first attempt at the start
	firstTried bool
	startErr   error  // the store refused the start for good
	startedID  string // the run's id in the store, once it recorded the start
	startOK    bool
	blocked    error // the worker gave up on the journal
	opened     bool

	done chan struct{}
	kick chan struct{} // ends a backoff early: the run is ending
}

func newWorker(j *journal, open Opener, opt *Options, target, name string, st ackState, live bool) *worker {
	st.Target = target
	if st.Next == 0 {
		st.Next = int64(len(magic))
	}
	w := &worker{
		j: j, open: open, opt: opt, target: target, name: name, st: st, live: live,
		out: outputIndex{r: j.f}, blobs: blobIndex{r: j.f}, indexedTo: int64(len(magic)),
		extracted: map[uint64]string{}, added: map[string]any{},
		firstTry: make(chan struct{}), done: make(chan struct{}), kick: make(chan struct{}, 1),
	}
	return w
}

// innerObserver is the wrapped observer, or nil while it is not open.
func (w *worker) innerObserver() observer.Observer {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inner
}

func (w *worker) setErr(err error) {
	w.mu.Lock()
	w.lastErr = err
	w.mu.Unlock()
}

// lastError is the last error of the store, or nil.
func (w *worker) lastError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastErr
}

// tried closes firstTry once: the start had its first attempt (or the
// store could not even be opened).
func (w *worker) tried() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.firstTried {
		w.firstTried = true
		close(w.firstTry)
	}
}

// started returns the run's id in the store once the store recorded the
// start, and the error if it refused it for good.
func (w *worker) started() (id string, ok bool, refused error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.startedID, w.startOK, w.startErr
}

func (w *worker) warnf(format string, args ...any) {
	fmt.Fprintf(w.opt.Warn, "sacred: "+format+"\n", args...)
}

// run delivers records until the final event is recorded, the journal
// ends (not live), the worker is blocked, or ctx is done.
func (w *worker) run(ctx context.Context) {
	defer close(w.done)
	defer w.cleanup()
	defer w.tried()
	if w.live && !w.ensureOpen(ctx) {
		return
	}
	off := int64(len(magic))
	for ctx.Err() == nil {
		end, changed := w.j.snapshot()
		if off >= end {
			if w.st.Done || !w.live {
				return
			}
			select {
			case <-changed:
			case <-ctx.Done():
			}
			continue
		}
		payload, next, err := readRecord(w.j.f, off, end)
		if err != nil {
			w.block(fmt.Errorf("read the journal: %w", err))
			return
		}
		typ := payload[0]
		switch {
		case typ == recOutput || typ == recBlob:
			w.index(off, payload)
			off = next
			continue
		case typ == recHeader || typ == recAck:
			off = next
			continue
		case off < w.st.Next:
			// Recorded by an earlier process: only the start is needed,
			// for Resume and the sources.
			if typ == recStarted || typ == recQueued {
				if err := w.readStart(payload); err != nil {
					w.block(err)
					return
				}
			}
			off = next
			continue
		}
		next, ok := w.deliver(ctx, off, typ, payload, next)
		if !ok {
			return
		}
		off = next
		if w.st.Done {
			return
		}
	}
}

func (w *worker) readStart(payload []byte) error {
	d, err := decodeDoc(payload)
	if err == nil {
		w.start, err = decodeStart(d)
	}
	if err != nil {
		return fmt.Errorf("the journal's start record is damaged: %w", err)
	}
	return nil
}

// index notes where an output or blob record's bytes are, once.
func (w *worker) index(off int64, payload []byte) {
	if off < w.indexedTo {
		return
	}
	v, data, at, err := parseChunk(payload)
	if err == nil {
		n := int64(len(data))
		fileAt := off + 8 + int64(at)
		if payload[0] == recOutput {
			w.out.add(int64(v), fileAt, n)
		} else {
			w.blobs.add(v, fileAt, n)
		}
	}
	w.indexedTo = off + 8 + int64(len(payload))
}

// ensureOpen opens the store, with backoff, and resumes the run in it when
// an earlier process recorded its start. It returns false when ctx is
// done or the worker is blocked.
func (w *worker) ensureOpen(ctx context.Context) bool {
	if w.innerObserver() != nil {
		return true
	}
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, w.opt.CallTimeout)
		o, err := w.open(cctx)
		cancel()
		if err == nil {
			w.mu.Lock()
			w.inner = o
			w.opened = true
			w.mu.Unlock()
			break
		}
		if ctx.Err() != nil {
			if w.lastError() == nil {
				w.setErr(err) // the store's words say more than the deadline
			}
			return false
		}
		w.setErr(err)
		w.tried()
		if !w.sleep(ctx, w.backoff(attempt)) {
			return false
		}
	}
	if !w.st.Started {
		return true
	}
	return w.resume(ctx)
}

// resume re-attaches a fresh observer to the run an earlier process
// started in the store.
func (w *worker) resume(ctx context.Context) bool {
	inner := w.innerObserver()
	r, ok := observer.As[observer.Resumer](inner)
	if !ok {
		w.block(fmt.Errorf("%s cannot go on with run %s, whose start an earlier process recorded there (the observer cannot resume a run); the journal keeps the rest of the run: replay it into another store (sacred sync JOURNAL -F DIR) to keep it", w.name, w.st.ID))
		return false
	}
	if w.start == nil {
		w.block(errors.New("the journal has no start record"))
		return false
	}
	for attempt := 1; ; attempt++ {
		ev, cleanup, err := w.startEvent()
		if err == nil {
			ev.ID = w.st.ID
			err = w.call(ctx, func(ctx context.Context) error { return r.Resume(ctx, ev) })
			cleanup()
		}
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		w.setErr(err)
		// A run the store no longer has is not coming back.
		if isPermanent(err) || errors.Is(err, observer.ErrNotFound) || (!w.opt.Transient(err) && attempt >= w.opt.MaxAttempts) {
			w.block(fmt.Errorf("%s could not resume run %s: %w", w.name, w.st.ID, err))
			return false
		}
		if !w.sleep(ctx, w.backoff(attempt)) {
			return false
		}
	}
}

// block stops the worker for good: the journal keeps what is left.
func (w *worker) block(err error) {
	w.mu.Lock()
	w.blocked = err
	w.mu.Unlock()
}

// blockedBy is why the worker gave up, or nil.
func (w *worker) blockedBy() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.blocked
}

func (w *worker) backoff(attempt int) time.Duration {
	d := w.opt.MinBackoff
	for i := 1; i < attempt && d < w.opt.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, w.opt.MaxBackoff)
	if d >= 4 {
		d = d - d/4 + rand.N(d/2) // jitter: writers that failed together do not retry together
	}
	return d
}

// sleep waits d, or less when kicked, or when ctx is done (then false).
func (w *worker) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.kick:
		return true
	case <-ctx.Done():
		return false
	}
}

// wake makes a worker in backoff try again now.
func (w *worker) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// call makes one call into the store with the call timeout.
func (w *worker) call(ctx context.Context, f func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, w.opt.CallTimeout)
	defer cancel()
	return f(cctx)
}

// deliver sends the event at off (and, for metrics and beats, the ones
// that follow it) until the store takes it or it is dead. It returns the
// offset after what it delivered, or false when ctx is done or the worker
// is blocked.
func (w *worker) deliver(ctx context.Context, off int64, typ byte, payload []byte, next int64) (int64, bool) {
	for attempt := 1; ; attempt++ {
		if !w.ensureOpen(ctx) {
			return 0, false
		}
		after, op, err := w.try(ctx, off, typ, payload, next)
		isStart := typ == recStarted || typ == recQueued
		if err == nil {
			w.refused = 0
			w.setErr(nil)
			if isStart {
				w.tried() // after sendStart noted the id
			}
			return after, true
		}
		if ctx.Err() != nil {
			return 0, false
		}
		w.setErr(fmt.Errorf("%s: %w", op, err))
		if isStart && !isPermanent(err) {
			w.tried()
		}
		perm := isPermanent(err)
		if !perm {
			if w.opt.Transient(err) {
				w.refused = 0
			} else {
				w.refused++
				perm = w.refused >= w.opt.MaxAttempts
			}
		}
		if perm {
			w.refused = 0
			if isStart {
				w.mu.Lock()
				w.startErr = err
				w.mu.Unlock()
				w.tried()
				// Not a dead letter: the journal keeps the whole run, for
				// another store (sync), or the run never starts (live).
				w.block(fmt.Errorf("%s refused the start of the run: %w", w.name, err))
				return 0, false
			}
			w.dead(off, after, op, err)
			return after, true
		}
		if !w.sleep(ctx, w.backoff(attempt)) {
			return 0, false
		}
	}
}

// try makes one attempt at the event at off. It returns the offset after
// the records it covers and the event's name for messages.
func (w *worker) try(ctx context.Context, off int64, typ byte, payload []byte, next int64) (int64, string, error) {
	inner := w.innerObserver()
	switch typ {
	case recStarted, recQueued:
		op := "the start"
		if typ == recQueued {
			op = "the queued run"
		}
		if err := w.readStart(payload); err != nil {
			return next, op, permanent(err)
		}
		return next, op, w.sendStart(ctx, inner, typ == recQueued, next)
	case recMetrics, recBeat:
		return w.sendSpan(ctx, inner, off)
	case recArtifact:
		d, err := decodeDoc(payload)
		if err != nil {
			return next, "an artifact", permanent(err)
		}
		a, err := decodeArtifact(d)
		if err != nil {
			return next, "an artifact", permanent(err)
		}
		op := "artifact " + a.ev.Name
		return next, op, w.sendArtifact(ctx, inner, a, next)
	case recResource:
		d, err := decodeDoc(payload)
		if err != nil {
			return next, "a resource", permanent(err)
		}
		ev, err := decodeResource(d)
		if err != nil {
			return next, "a resource", permanent(err)
		}
		op := "resource " + ev.Path
		if _, err := os.Stat(ev.Path); err != nil {
			return next, op, permanent(fmt.Errorf("the file is no longer there to be copied: %w", err))
		}
		err = w.call(ctx, func(ctx context.Context) error { return inner.Resource(ctx, ev) })
		if err == nil {
			w.st.Next = next
			w.ack()
		}
		return next, op, err
	case recCompleted, recInterrupted, recFailed:
		d, err := decodeDoc(payload)
		if err != nil {
			return next, "the final event", permanent(err)
		}
		f, err := decodeFinal(typ, d)
		if err != nil {
			return next, "the final event", permanent(err)
		}
		var op string
		err = w.call(ctx, func(ctx context.Context) error {
			switch {
			case f.completed != nil:
				op = "the end (COMPLETED)"
				return inner.Completed(ctx, f.completed)
			case f.interrupted != nil:
				op = "the end (" + f.interrupted.Status + ")"
				return inner.Interrupted(ctx, f.interrupted)
			default:
				op = "the end (FAILED)"
				return inner.Failed(ctx, f.failed)
			}
		})
		if err == nil {
			w.st.Next, w.st.Done = next, true
			w.ack()
		}
		return next, op, err
	}
	return next, fmt.Sprintf("a record of type %q", typ), permanent(errors.New("unknown record type (written by a newer sacred?)"))
}

// startEvent rebuilds the start event, with every source at a path whose
// content has the recorded md5: the original file when it is unchanged,
// else a copy extracted from the journal.
func (w *worker) startEvent() (*observer.StartEvent, func(), error) {
	ev := w.start.ev
	ev.Experiment.Sources = append([]observer.Source(nil), w.start.ev.Experiment.Sources...)
	var extracted []string
	cleanup := func() {
		for _, p := range extracted {
			_ = os.Remove(p)
		}
	}
	for i := range ev.Experiment.Sources {
		s := &ev.Experiment.Sources[i]
		blob := w.start.blobs[i]
		if s.Omitted || blob == 0 || sameContent(s.Path, s.Size, s.MD5) {
			continue
		}
		dir, err := w.tempDir()
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		p, err := w.blobs.extract(blob, dir, "source-*")
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		extracted = append(extracted, p)
		s.Path = p
	}
	return &ev, cleanup, nil
}

// sameContent tells whether the file at path still has the given size
// and md5.
func sameContent(path string, size int64, sum string) bool {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() != size {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	return hex.EncodeToString(h.Sum(nil)) == sum
}

func (w *worker) tempDir() (string, error) {
	if w.tmp == "" {
		dir, err := os.MkdirTemp("", "sacred-journal-")
		if err != nil {
			return "", fmt.Errorf("temp dir for files from the journal: %w", err)
		}
		w.tmp = dir
	}
	return w.tmp, nil
}

func (w *worker) cleanup() {
	if w.tmp != "" {
		_ = os.RemoveAll(w.tmp)
	}
}

func (w *worker) sendStart(ctx context.Context, inner observer.Observer, queued bool, next int64) error {
	ev, cleanup, err := w.startEvent()
	if err != nil {
		return err
	}
	defer cleanup()
	var id string
	err = w.call(ctx, func(ctx context.Context) (err error) {
		if queued {
			id, err = inner.Queued(ctx, ev)
		} else {
			id, err = inner.Started(ctx, ev)
		}
		return err
	})
	if err != nil {
		return err
	}
	if id == "" {
		id = ev.ID
	}
	w.st.ID, w.st.Started = id, true
	w.st.Next, w.st.Metrics = next, max(w.st.Metrics, next)
	if queued {
		w.st.Done = true
	}
	w.mu.Lock()
	w.startedID, w.startOK = id, true
	w.mu.Unlock()
	w.ack()
	return nil
}

// span is a run of metrics and heartbeat records delivered together: the
// new points merged by name, the info of the last metrics record, and the
// last heartbeat.
type span struct {
	metrics    []observer.MetricSeries
	points     int
	hasMetrics bool
	metricsEnd int64
	info       map[string]any
	beat       *beatRecord
	end        int64
	docs       []any // the records' documents, for the dead-letter file
}

// gather reads the span that starts at off.
func (w *worker) gather(off int64) (*span, error) {
	end, _ := w.j.snapshot()
	sp := &span{}
	idx := map[string]int{}
	for p := off; p < end; {
		payload, next, err := readRecord(w.j.f, p, end)
		if err != nil {
			return nil, err
		}
		switch typ := payload[0]; typ {
		case recOutput, recBlob:
			w.index(p, payload)
		case recHeader, recAck:
		case recMetrics:
			if p < w.st.Metrics {
				break // recorded already, before its beat was
			}
			d, err := decodeDoc(payload)
			if err != nil {
				return nil, permanent(err)
			}
			ev, err := decodeMetrics(d)
			if err != nil {
				return nil, permanent(err)
			}
			n := 0
			for _, s := range ev.Metrics {
				n += len(s.Points)
			}
			if sp.points > 0 && sp.points+n > maxSpanPoints {
				sp.end = p
				return sp, nil
			}
			for _, s := range ev.Metrics {
				i, ok := idx[s.Name]
				if !ok {
					i = len(sp.metrics)
					idx[s.Name] = i
					sp.metrics = append(sp.metrics, observer.MetricSeries{Name: s.Name})
				}
				sp.metrics[i].Points = append(sp.metrics[i].Points, s.Points...)
			}
			sp.points += n
			sp.hasMetrics, sp.metricsEnd, sp.info = true, next, ev.Info
			sp.docs = append(sp.docs, d)
		case recBeat:
			d, err := decodeDoc(payload)
			if err != nil {
				return nil, permanent(err)
			}
			if sp.beat, err = decodeBeat(d); err != nil {
				return nil, permanent(err)
			}
			sp.docs = append(sp.docs, d)
		default:
			sp.end = p
			return sp, nil
		}
		p = next
	}
	sp.end = end
	return sp, nil
}

// sendSpan delivers the metrics and the last heartbeat of the span at
// off: LogMetrics, then Heartbeat with the info the store may have added
// keys to, as the runner calls them.
func (w *worker) sendSpan(ctx context.Context, inner observer.Observer, off int64) (int64, string, error) {
	sp, err := w.gather(off)
	if err != nil {
		return off, "metrics and heartbeat", err
	}
	op := "a heartbeat"
	if sp.hasMetrics {
		op = fmt.Sprintf("%d metric points", sp.points)
		if sp.beat != nil {
			op += " and a heartbeat"
		}
		info := observer.CloneMap(sp.info)
		before := make(map[string]bool, len(info))
		for k := range info {
			before[k] = true
		}
		ev := &observer.MetricsEvent{Metrics: sp.metrics, Info: info}
		if err := w.call(ctx, func(ctx context.Context) error { return inner.LogMetrics(ctx, ev) }); err != nil {
			return sp.end, op, err
		}
		for k, v := range ev.Info {
			if !before[k] {
				w.added[k] = v
			}
		}
		w.st.Metrics = sp.metricsEnd
		if sp.beat == nil {
			w.st.Next = sp.end
		}
		w.ack()
	}
	if sp.beat != nil {
		b := sp.beat
		info := observer.CloneMap(b.info)
		for k, v := range w.added {
			if _, ok := info[k]; !ok {
				info[k] = v
			}
		}
		hb := &observer.HeartbeatEvent{
			Info: info, BeatTime: b.time, Result: b.result, HasResult: b.hasResult,
			Output: &w.out, From: min(w.st.Out, b.to), To: b.to, Final: b.final,
		}
		if w.out.Size() < b.to {
			return sp.end, op, permanent(fmt.Errorf("the journal holds %d bytes of output, the heartbeat needs %d", w.out.Size(), b.to))
		}
		if err := w.call(ctx, func(ctx context.Context) error { return inner.Heartbeat(ctx, hb) }); err != nil {
			return sp.end, op, err
		}
		w.st.Out = max(w.st.Out, b.to)
		w.st.Next, w.st.Metrics = sp.end, max(w.st.Metrics, sp.end)
		w.ack()
	}
	return sp.end, op, nil
}

func (w *worker) sendArtifact(ctx context.Context, inner observer.Observer, a *artifactRecord, next int64) error {
	if got := w.blobs.size(a.blob); got != a.size {
		return permanent(fmt.Errorf("the journal holds %d of its %d bytes", got, a.size))
	}
	path, ok := w.extracted[a.blob]
	if !ok {
		dir, err := w.tempDir()
		if err != nil {
			return err
		}
		if path, err = w.blobs.extract(a.blob, dir, "artifact-*"); err != nil {
			return err
		}
		w.extracted[a.blob] = path
	}
	ev := a.ev
	ev.Path = path
	if err := w.call(ctx, func(ctx context.Context) error { return inner.Artifact(ctx, &ev) }); err != nil {
		return err
	}
	// The file stays until the worker ends, as the runner's private copy
	// stays until the run ends: a store may read it later.
	w.blobs.drop(a.blob)
	w.st.Next = next
	w.ack()
	return nil
}

// ack appends the worker's state to the journal and makes it durable, so
// that no later replay sends the same event again.
func (w *worker) ack() {
	payload, err := encodeDoc(recAck, w.st.doc())
	if err == nil {
		_, err = w.j.append(payload)
	}
	if err == nil {
		err = w.j.sync()
	}
	if err != nil && !w.ackWarned {
		w.ackWarned = true
		w.warnf("journal %s: cannot note what %s recorded (%v): a later sacred sync may send some events again", w.j.path, w.name, err)
	}
}

// dead copies the event at [off, after) to the dead-letter file, warns
// once, and notes it as done, so that the worker goes on after it.
func (w *worker) dead(off, after int64, op string, cause error) {
	var docs []any
	end, _ := w.j.snapshot()
	for p := off; p < after && p < end; {
		payload, next, err := readRecord(w.j.f, p, end)
		if err != nil {
			break
		}
		switch payload[0] {
		case recOutput, recBlob, recHeader, recAck:
		default:
			if d, err := decodeDoc(payload); err == nil {
				d["record"] = string(payload[0])
				docs = append(docs, d)
			}
		}
		p = next
	}
	line, err := appendJSON(nil, doc{
		"time": time.Now().UTC().Format(time.RFC3339Nano), "journal": w.j.path, "offset": off,
		"store": w.name, "event": op, "error": cause.Error(), "records": docs,
	})
	path := deadPath(w.j.path)
	if err == nil {
		err = appendLine(path, line)
	}
	kept := "it is kept in the dead-letter file " + path
	if err != nil {
		kept = fmt.Sprintf("it could not be written to the dead-letter file %s (%v); the journal %s keeps it", path, err, w.j.path)
	}
	w.warnf("%s will never take %s of run %s (%v); %s", w.name, op, w.runID(), cause, kept)
	w.st.Dead++
	w.st.Next = max(w.st.Next, after)
	w.st.Metrics = max(w.st.Metrics, after)
	w.ack()
}

// runID names the run in messages: its id in the store, or the journal's.
func (w *worker) runID() string {
	if w.st.ID != "" {
		return w.st.ID
	}
	if w.start != nil && w.start.ev.ID != "" {
		return w.start.ev.ID
	}
	return strings.TrimSuffix(filepath.Base(w.j.path), Ext)
}

func appendLine(path string, line []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(line, '\n'))
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// remaining counts the events of the journal not yet recorded; the
// worker must be done.
func (w *worker) remaining() int {
	end, _ := w.j.snapshot()
	n := 0
	for p := w.st.Next; p < end; {
		payload, next, err := readRecord(w.j.f, p, end)
		if err != nil {
			break
		}
		switch payload[0] {
		case recOutput, recBlob, recHeader, recAck:
		case recMetrics:
			if p >= w.st.Metrics {
				n++
			}
		default:
			n++
		}
		p = next
	}
	return n
}
