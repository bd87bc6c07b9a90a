// Package retry is the decorator that lets an observer fail without losing
// the run's data: it keeps what the wrapped observer did not store, sends
// it again with backoff, and bounds every call with a timeout. Stores stay
// simple and honest (an error means "not stored"); the runner wraps every
// observer with Wrap and decides, through Options.Report and Pending, what
// to tell the user and when to hold metrics back.
//
// What each call does:
//
//   - Queued, Started and Close are passed through with the call timeout
//     and never retried: a store allocates ids itself, so only the caller
//     can decide what a failed start means.
//   - LogMetrics: points the store refused are kept, merged by name in
//     the order names first appeared, and sent again before newer points
//     at the next LogMetrics once the backoff has elapsed. While in
//     backoff, new points are appended and the call returns nil at once.
//     The store always receives the caller's ev.Info map (it may add keys
//     to it, which the runner reads back); the final flush uses the map of
//     the last LogMetrics.
//   - Heartbeat: the decorator knows where the output the store
//     acknowledged ends and hands the store that offset as From, so a
//     failed or skipped beat loses no output: the next beat's range starts
//     where the store stopped, or where a failed beat says it stopped
//     (*observer.OutputStored). A kept beat is superseded by the next one
//     (info and result are whole state). A kept beat's Info and Result are
//     copied, since events belong to the caller.
//   - Artifact and Resource: once a file is pending, later ones queue
//     behind it, in order. Pending files are sent first at the next call
//     after the backoff, before that call's metrics or beat.
//   - Completed, Interrupted and Failed flush everything pending (files,
//     metrics, the last beat) and then send the final event, in rounds
//     that sleep with backoff (cancellable) until the caller's deadline
//     (two minutes when ctx has none). The final event waits for the
//     pending data while the store takes some of it; after three rounds
//     in a row that stored nothing, it is sent at the end of every round
//     regardless, so a store that refuses one file (too large for it,
//     say) still gets the final status. Once that is written nothing more
//     is sent (the contract ends a run with it). If anything is left, the
//     error says what was not recorded (Pending.String) and whether the
//     final status was written.
//
// Non-final calls never sleep and return nil: what failed is kept and
// Report hears of every failure, and of the recovery once everything that
// had failed is written. The backoff grows exponentially from MinBackoff
// to MaxBackoff with jitter and resets after a round without failure.
// Within a round a failure does not stop the calls that follow (a store
// may refuse one file and take everything else), except when the call ran
// into its timeout or the caller's context is done: a hanging store is not
// asked again until the backoff has passed.
//
// Every call to the wrapped observer gets its own context bounded by
// CallTimeout and by the caller's deadline; the wrapped observer must
// honour it (the observertest suite checks this). Calls are serialised, so
// the wrapped observer is never called concurrently; Pending may be called
// from any goroutine. The decorator holds only what failed: the runner
// reads Pending().Points to stop handing points to an observer that lags.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Defaults of Options.
const (
	DefaultCallTimeout = 30 * time.Second
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = time.Minute
)

// finalWithoutDeadline bounds the final flush when the caller gave no
// deadline: a store that never comes back must not keep the wrapper alive.
const finalWithoutDeadline = 2 * time.Minute

// stuckRounds is how many rounds of the final flush in a row may store
// nothing before the final event is sent regardless of what is pending:
// the store then refuses that data (a file too large for it, say), and the
// final status must not wait for it.
const stuckRounds = 3

// Options configure Wrap. Zero values mean the defaults.
type Options struct {
	// CallTimeout bounds every call to the wrapped observer (default
	// 30s); the caller's deadline also applies.
	CallTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before data that failed
	// is sent again (default 1s and 1m).
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// Report is told of every failure and every recovery; it may be nil.
	// It is called from the goroutine that made the call, during it, so
	// it may call Pending but no event method.
	Report func(Event)

	// Test hooks: the clock, the final flush's sleep and the jitter.
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func(d time.Duration) time.Duration
}

// Event is a failure or a recovery of the wrapped observer.
type Event struct {
	Observer string // Name() of the wrapped observer
	// Op is the call: "log_metrics", "heartbeat", "artifact NAME",
	// "resource PATH", "completed", "interrupted" or "failed".
	Op string
	// Err is the error of the call, or nil for a recovery: everything
	// that had failed is now written.
	Err error
}

// pendingFile is a pending artifact or resource.
type pendingFile struct {
	artifact *observer.ArtifactEvent
	resource *observer.ResourceEvent
}

func (f pendingFile) op() string {
	if f.artifact != nil {
		return "artifact " + f.artifact.Name
	}
	return "resource " + f.resource.Path
}

// Observer wraps an observer; see the package documentation.
type Observer struct {
	inner observer.Observer
	opt   Options

	// calls serialises the calls; the fields up to mu belong to its
	// holder.
	calls    sync.Mutex
	files    []pendingFile
	metrics  []observer.MetricSeries
	index    map[string]int // metric name → position in metrics
	points   int64
	info     map[string]any // Info of the last LogMetrics
	beat     *observer.HeartbeatEvent
	seenBeat bool
	acked    int64 // end of the output the store acknowledged
	final    bool  // the final event is being sent
	failures int   // consecutive rounds with a failure
	nextTry  time.Time
	behind   bool  // something failed and is not written yet
	lastErr  error // the last failure, with its op

	mu      sync.Mutex
	pending Pending
}

var (
	_ observer.Observer  = (*Observer)(nil)
	_ observer.Unwrapper = (*Observer)(nil)
)

// Wrap returns o wrapped in the retry decorator.
func Wrap(o observer.Observer, opt Options) *Observer {
	if opt.CallTimeout <= 0 {
		opt.CallTimeout = DefaultCallTimeout
	}
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = DefaultMinBackoff
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = DefaultMaxBackoff
	}
	opt.MaxBackoff = max(opt.MaxBackoff, opt.MinBackoff)
	if opt.now == nil {
		opt.now = time.Now
	}
	if opt.sleep == nil {
		opt.sleep = sleep
	}
	if opt.jitter == nil {
		opt.jitter = jitter
	}
	return &Observer{inner: o, opt: opt, index: map[string]int{}}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// jitter spreads d over [0.75d, 1.25d), so that wrappers that failed
// together do not retry together.
func jitter(d time.Duration) time.Duration {
	if d < 4 {
		return d
	}
	return d - d/4 + rand.N(d/2)
}

// Unwrap returns the wrapped observer.
func (r *Observer) Unwrap() observer.Observer { return r.inner }

// Pending returns what the wrapped observer has not accepted yet. It is
// safe to call from any goroutine.
func (r *Observer) Pending() Pending {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pending
}

// Name returns the wrapped observer's name.
func (r *Observer) Name() string { return r.inner.Name() }

// Priority returns the wrapped observer's priority.
func (r *Observer) Priority() int { return r.inner.Priority() }

// Queued is passed through with the call timeout.
func (r *Observer) Queued(ctx context.Context, ev *observer.StartEvent) (string, error) {
	r.calls.Lock()
	defer r.calls.Unlock()
	ctx, cancel := context.WithTimeout(ctx, r.opt.CallTimeout)
	defer cancel()
	return r.inner.Queued(ctx, ev)
}

// Started is passed through with the call timeout.
func (r *Observer) Started(ctx context.Context, ev *observer.StartEvent) (string, error) {
	r.calls.Lock()
	defer r.calls.Unlock()
	ctx, cancel := context.WithTimeout(ctx, r.opt.CallTimeout)
	defer cancel()
	return r.inner.Started(ctx, ev)
}

// Close is passed through with the call timeout. What is still pending is
// dropped: the final event already said what was not recorded.
func (r *Observer) Close(ctx context.Context) error {
	r.calls.Lock()
	defer r.calls.Unlock()
	ctx, cancel := context.WithTimeout(ctx, r.opt.CallTimeout)
	defer cancel()
	return r.inner.Close(ctx)
}

// LogMetrics sends the points kept from earlier calls and ev's, or keeps
// them all while in backoff or when the store refuses them.
func (r *Observer) LogMetrics(ctx context.Context, ev *observer.MetricsEvent) error {
	r.calls.Lock()
	defer r.calls.Unlock()
	r.info = ev.Info
	if !r.due() {
		r.keepMetrics(ev.Metrics)
		r.publish()
		return nil
	}
	failed, stop := r.flushFiles(ctx)
	if stop {
		r.keepMetrics(ev.Metrics)
	} else if err := r.sendMetrics(ctx, ev); err != nil {
		failed = true
	}
	r.settle("log_metrics", failed)
	return nil
}

// Heartbeat sends the beat with From where the store's output ends, or
// keeps it (superseding a kept one) while in backoff or when it fails.
func (r *Observer) Heartbeat(ctx context.Context, ev *observer.HeartbeatEvent) error {
	r.calls.Lock()
	defer r.calls.Unlock()
	if !r.seenBeat {
		// The caller's From is right until the first beat fails.
		r.seenBeat = true
		r.acked = ev.From
	}
	if !r.due() {
		r.keepBeat(ev)
		r.publish()
		return nil
	}
	failed, stop := r.flushFiles(ctx)
	if stop {
		r.keepBeat(ev)
	} else if err := r.sendBeat(ctx, ev); err != nil {
		failed = true
	}
	r.settle("heartbeat", failed)
	return nil
}

// Artifact queues a copy of ev behind the pending files and sends them
// when due.
func (r *Observer) Artifact(ctx context.Context, ev *observer.ArtifactEvent) error {
	r.calls.Lock()
	defer r.calls.Unlock()
	e := *ev
	if ev.Metadata != nil {
		e.Metadata = observer.CloneMap(ev.Metadata)
	}
	r.files = append(r.files, pendingFile{artifact: &e})
	r.sendFilesIfDue(ctx, "artifact "+ev.Name)
	return nil
}

// Resource queues a copy of ev behind the pending files and sends them
// when due.
func (r *Observer) Resource(ctx context.Context, ev *observer.ResourceEvent) error {
	r.calls.Lock()
	defer r.calls.Unlock()
	e := *ev
	r.files = append(r.files, pendingFile{resource: &e})
	r.sendFilesIfDue(ctx, "resource "+ev.Path)
	return nil
}

// Completed flushes what is pending and writes the final status.
func (r *Observer) Completed(ctx context.Context, ev *observer.CompletedEvent) error {
	return r.finish(ctx, "completed", observer.StatusCompleted, func(ctx context.Context) error {
		return r.inner.Completed(ctx, ev)
	})
}

// Interrupted flushes what is pending and writes the final status.
func (r *Observer) Interrupted(ctx context.Context, ev *observer.InterruptedEvent) error {
	return r.finish(ctx, "interrupted", ev.Status, func(ctx context.Context) error {
		return r.inner.Interrupted(ctx, ev)
	})
}

// Failed flushes what is pending and writes the final status.
func (r *Observer) Failed(ctx context.Context, ev *observer.FailedEvent) error {
	return r.finish(ctx, "failed", observer.StatusFailed, func(ctx context.Context) error {
		return r.inner.Failed(ctx, ev)
	})
}

// finish runs rounds of files, metrics and beat, each followed by the
// final event once nothing else is pending, or once stuckRounds rounds in
// a row stored nothing, until the final event is written or ctx is done.
func (r *Observer) finish(ctx context.Context, op, status string, send func(context.Context) error) error {
	r.calls.Lock()
	defer r.calls.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, finalWithoutDeadline)
		defer cancel()
	}
	r.final = true
	r.lastErr = nil
	before := r.publish()
	stuck := 0
	for {
		r.flushFiles(ctx)
		if len(r.metrics) > 0 {
			_ = r.sendMetrics(ctx, &observer.MetricsEvent{Info: r.info})
		}
		if r.beat != nil {
			_ = r.sendBeat(ctx, r.beat)
		}
		now := r.publish()
		if now == before {
			stuck++
		} else {
			stuck = 0
		}
		before = now
		rest := now
		rest.Final = false
		if rest.Empty() || stuck >= stuckRounds {
			if r.call(ctx, op, send) == nil {
				r.final = false
				break
			}
		}
		if ctx.Err() != nil || r.opt.sleep(ctx, r.backoff(max(stuck, 1))) != nil {
			break
		}
	}
	p := r.publish()
	if p.Empty() {
		r.failures = 0
		if r.behind {
			r.behind = false
			r.report(op, nil)
		}
		return nil
	}
	return r.notRecorded(ctx, p, status)
}

// notRecorded is the error of a final flush that left p behind.
func (r *Observer) notRecorded(ctx context.Context, p Pending, status string) error {
	cause := r.lastErr
	if cause == nil {
		cause = ctx.Err()
	}
	written := "was written"
	if p.Final {
		written = "was not written"
	}
	when := ""
	if ctx.Err() != nil {
		when = " before the deadline"
		if errors.Is(ctx.Err(), context.Canceled) {
			when = " before the flush was cancelled"
		}
	}
	rest := p
	rest.Final = false
	if rest.Empty() {
		return fmt.Errorf("the final status %s %s%s (last error: %w)", status, written, when, cause)
	}
	return fmt.Errorf("not recorded%s: %s; the final status %s %s (last error: %w)", when, rest, status, written, cause)
}

// due tells whether a non-final call may call the store now.
func (r *Observer) due() bool {
	return r.failures == 0 || !r.opt.now().Before(r.nextTry)
}

// backoff is the wait after the nth consecutive failed round.
func (r *Observer) backoff(n int) time.Duration {
	d := r.opt.MinBackoff
	for i := 1; i < n && d < r.opt.MaxBackoff; i++ {
		d *= 2
	}
	d = r.opt.jitter(min(d, r.opt.MaxBackoff))
	return min(max(d, r.opt.MinBackoff), r.opt.MaxBackoff)
}

// call makes one call into the store with its own timeout, and reports a
// failure.
func (r *Observer) call(ctx context.Context, op string, f func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		// The caller gave up; not a failure of the store.
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.opt.CallTimeout)
	defer cancel()
	err := f(ctx)
	if err != nil {
		r.behind = true
		r.lastErr = fmt.Errorf("%s: %w", op, err)
		r.report(op, err)
	}
	return err
}

func (r *Observer) report(op string, err error) {
	if r.opt.Report != nil {
		r.opt.Report(Event{Observer: r.inner.Name(), Op: op, Err: err})
	}
}

// stops tells whether a failure ends the round: the caller gave up, or
// the store hangs (the call ran into its timeout), so that a further call
// would hang as well.
func stops(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded)
}

// settle ends a non-final round: a failure starts or extends the backoff,
// a round without one resets it, and once nothing is pending after a
// failure, Report hears of the recovery.
func (r *Observer) settle(op string, failed bool) {
	if failed {
		r.failures++
		r.nextTry = r.opt.now().Add(r.backoff(r.failures))
	} else {
		r.failures = 0
	}
	if p := r.publish(); r.behind && p.Empty() {
		r.behind = false
		r.report(op, nil)
	}
}

// publish makes the state visible to Pending and returns it.
func (r *Observer) publish() Pending {
	p := Pending{Points: r.points, Files: len(r.files), Beat: r.beat != nil, Final: r.final}
	if r.beat != nil {
		p.OutputBytes = max(r.beat.To-r.acked, 0)
	}
	r.mu.Lock()
	r.pending = p
	r.mu.Unlock()
	return p
}

// sendFilesIfDue ends a call that queued a file.
func (r *Observer) sendFilesIfDue(ctx context.Context, op string) {
	if !r.due() {
		r.publish()
		return
	}
	failed, _ := r.flushFiles(ctx)
	r.settle(op, failed)
}

// flushFiles sends the pending files in order and stops at the first
// failure.
func (r *Observer) flushFiles(ctx context.Context) (failed, stop bool) {
	for len(r.files) > 0 {
		f := r.files[0]
		err := r.call(ctx, f.op(), func(ctx context.Context) error {
			if f.artifact != nil {
				return r.inner.Artifact(ctx, f.artifact)
			}
			return r.inner.Resource(ctx, f.resource)
		})
		if err != nil {
			return true, stops(ctx, err)
		}
		r.files[0] = pendingFile{}
		r.files = r.files[1:]
		r.publish()
	}
	r.files = nil
	return false, false
}

// keepMetrics appends copies of ms to the pending points.
func (r *Observer) keepMetrics(ms []observer.MetricSeries) {
	for _, s := range ms {
		if len(s.Points) == 0 {
			continue
		}
		i, ok := r.index[s.Name]
		if !ok {
			i = len(r.metrics)
			r.index[s.Name] = i
			r.metrics = append(r.metrics, observer.MetricSeries{Name: s.Name})
		}
		r.metrics[i].Points = append(r.metrics[i].Points, s.Points...)
		r.points += int64(len(s.Points))
	}
}

// sendMetrics sends the pending points followed by ev's, with ev.Info.
// With nothing pending ev goes to the store as it is, uncopied.
func (r *Observer) sendMetrics(ctx context.Context, ev *observer.MetricsEvent) error {
	send := ev
	kept := len(r.metrics) > 0
	if kept {
		r.keepMetrics(ev.Metrics)
		send = &observer.MetricsEvent{Metrics: r.metrics, Info: ev.Info}
	}
	err := r.call(ctx, "log_metrics", func(ctx context.Context) error {
		return r.inner.LogMetrics(ctx, send)
	})
	if err != nil {
		if !kept {
			r.keepMetrics(ev.Metrics)
		}
		return err
	}
	r.metrics, r.points = nil, 0
	clear(r.index)
	return nil
}

// keepBeat makes ev the pending beat, copying what the caller owns.
func (r *Observer) keepBeat(ev *observer.HeartbeatEvent) {
	if ev == r.beat {
		return
	}
	hb := *ev
	if ev.Info != nil {
		hb.Info = observer.CloneMap(ev.Info)
	}
	hb.Result = observer.CloneValue(ev.Result)
	r.beat = &hb
}

// sendBeat sends ev with From where the store's output ends.
func (r *Observer) sendBeat(ctx context.Context, ev *observer.HeartbeatEvent) error {
	hb := *ev
	hb.From = min(r.acked, ev.To)
	err := r.call(ctx, "heartbeat", func(ctx context.Context) error {
		return r.inner.Heartbeat(ctx, &hb)
	})
	if err != nil {
		var stored *observer.OutputStored
		if errors.As(err, &stored) {
			// Lower too: a store that must write its output again
			// from the start says so.
			r.acked = min(max(stored.Stored, 0), ev.To)
		}
		r.keepBeat(ev)
		return err
	}
	r.acked = max(r.acked, ev.To)
	r.beat = nil
	return nil
}
