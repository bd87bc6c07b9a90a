package runner

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/retry"
)

// driver feeds one observer from its own goroutine, so that a slow or dead
// observer delays neither the child nor the other observers. Metric points
// wait in the observer's own backlog (bounded memory, see backlog); other
// events wait in a queue, where beats that pile up behind a slow observer
// are merged into one (the output range is joined, the latest info and
// result win), so the queue stays short whatever the observer's speed.
type driver struct {
	obs     observer.Observer
	ctx     context.Context // done when the run abandons this observer
	cancel  context.CancelFunc
	changes *atomic.Int64 // counts the info changes of all observers
	report  func(op string, err error)
	onInfo  func(changed map[string]any)
	metrics *backlog

	mu      sync.Mutex
	queue   []*item
	closed  bool   // the final event is queued or the driver was stopped
	current string // the call in progress, "" between calls
	waiting bool   // waiting for the others before the final event
	wake    chan struct{}
	done    chan struct{} // closed when the loop has ended

	// store is the retry decorator around the observer, nil without one.
	store pendingHolder

	// Owned by the loop's goroutine; read by others only after done.
	handedTo int64         // end of the output range of the last beat handed over
	failed   error         // the first error a call returned
	dropped  retry.Pending // what an abandoned driver never handed over
	finalErr error         // the final event's error
	finalOK  bool          // the final event was recorded
}

type itemKind int

const (
	kindBeat itemKind = iota
	kindArtifact
	kindResource
	kindSync
	kindFinal
)

type item struct {
	kind     itemKind
	beat     observer.HeartbeatEvent
	artifact *observer.ArtifactEvent
	resource *observer.ResourceEvent
	sync     *finalSync
	final    func(ctx context.Context, o observer.Observer) error
	finalOp  string
	deadline time.Time // of the final call
}

func (d *driver) push(it *item) bool {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return false
	}
	if it.kind == kindBeat && len(d.queue) > 0 {
		if last := d.queue[len(d.queue)-1]; last.kind == kindBeat {
			// Not started yet: the new beat replaces it. Its output
			// range starts where the driver's last delivery ended.
			last.beat = it.beat
			d.mu.Unlock()
			return true
		}
	}
	d.queue = append(d.queue, it)
	if it.kind == kindFinal {
		d.closed = true
	}
	d.mu.Unlock()
	d.poke()
	return true
}

func (d *driver) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *driver) loop() {
	defer close(d.done)
	defer d.metrics.close()
	for {
		d.mu.Lock()
		if d.ctx.Err() != nil {
			// Abandoned: what is still queued is not recorded.
			d.dropQueue()
			d.mu.Unlock()
			return
		}
		if len(d.queue) == 0 {
			closed := d.closed
			d.mu.Unlock()
			if closed {
				return
			}
			select {
			case <-d.wake:
			case <-d.ctx.Done():
			}
			continue
		}
		it := d.queue[0]
		d.queue = d.queue[1:]
		d.mu.Unlock()
		d.handle(it)
		if it.kind == kindFinal {
			return
		}
	}
}

// dropQueue notes what an abandoned driver leaves unrecorded; d.mu held.
func (d *driver) dropQueue() {
	d.dropped.Points += d.metrics.points()
	for _, it := range d.queue {
		switch it.kind {
		case kindBeat:
			d.dropped.Beat = true
		case kindArtifact, kindResource:
			d.dropped.Files++
		case kindSync:
			it.sync.beaten.Done()
		}
	}
	d.queue = nil
}

func (d *driver) setWaiting(w bool) {
	d.mu.Lock()
	d.waiting = w
	d.mu.Unlock()
}

func (d *driver) call(op string, f func() error) error {
	d.mu.Lock()
	d.current = op
	d.mu.Unlock()
	err := f()
	d.mu.Lock()
	d.current = ""
	d.mu.Unlock()
	return err
}

func (d *driver) handle(it *item) {
	switch it.kind {
	case kindBeat:
		d.beat(it.beat)
	case kindArtifact:
		err := d.call("an artifact", func() error { return d.obs.Artifact(d.ctx, it.artifact) })
		d.check("artifact "+it.artifact.Name, err)
	case kindResource:
		err := d.call("a resource", func() error { return d.obs.Resource(d.ctx, it.resource) })
		d.check("resource "+it.resource.Path, err)
	case kindSync:
		d.sync(it.sync)
	case kindFinal:
		ctx, cancel := context.WithDeadline(d.ctx, it.deadline)
		err := d.call("the final status ("+it.finalOp+")", func() error { return it.final(ctx, d.obs) })
		cancel()
		d.finalErr, d.finalOK = err, err == nil
		// Not reported here: the end of the run sums up every observer.
	}
}

// beat hands the observer the metric points waiting for it, then the
// heartbeat. Points that arrive meanwhile wait for the next beat.
func (d *driver) beat(hb observer.HeartbeatEvent) {
	shared := hb.Info
	info := observer.CloneMap(shared)
	d.logMetrics(info)
	d.noteInfo(shared, info)
	hb.Info = info
	// The range new since the last beat handed over; the retry decorator
	// replaces From with where the store's output really ends.
	hb.From = min(d.handedTo, hb.To)
	d.handedTo = hb.To
	err := d.call("the heartbeat", func() error { return d.obs.Heartbeat(d.ctx, &hb) })
	d.check("the heartbeat (info, result, output)", err)
}

// logMetrics hands over the points waiting at the start of the beat, in
// bounded batches. An observer whose store holds many points it could not
// store yet (the retry decorator's Pending) gets no new ones until it
// caught up: they wait in its backlog, on disk if need be, so the
// decorator's memory stays bounded too.
func (d *driver) logMetrics(info map[string]any) {
	left := d.metrics.points()
	for first := true; first || left > 0; first = false {
		var ms []observer.MetricSeries
		if left > 0 && !d.held() {
			var err error
			ms, err = d.metrics.take(deliverPoints)
			d.check("metric points", err)
			left -= countPoints(ms)
		} else {
			left = 0
		}
		err := d.call("metric points", func() error { return d.obs.LogMetrics(d.ctx, &observer.MetricsEvent{Metrics: ms, Info: info}) })
		if err != nil {
			// Only an observer without the retry decorator fails here
			// (the decorator keeps what failed): those points are lost.
			d.check("metric points", err)
			return
		}
	}
}

// held tells whether the observer's store holds back enough points that
// no more should be handed to it for now.
func (d *driver) held() bool {
	return d.store != nil && d.store.Pending().Points >= memPoints
}

// noteInfo passes on the keys the observer added to its copy of the info
// dict or changed in it (Mongo's info.metrics), so that they reach the
// other observers.
func (d *driver) noteInfo(before, after map[string]any) {
	if d.onInfo == nil {
		return
	}
	changed := map[string]any{}
	for k, v := range after {
		if old, ok := before[k]; !ok || !reflect.DeepEqual(old, v) {
			changed[k] = v
		}
	}
	if len(changed) > 0 {
		d.onInfo(changed)
	}
}

// pendingHolder is the retry decorator's view of what its store holds.
type pendingHolder interface {
	Pending() retry.Pending
}

func (d *driver) check(op string, err error) {
	if err == nil {
		return
	}
	if d.failed == nil {
		d.failed = fmt.Errorf("%s: %w", op, err)
	}
	d.report(op, err)
}

// pending says what the observer has not recorded yet, for the messages
// of a long flush.
func (d *driver) pending() string {
	var queued retry.Pending
	d.mu.Lock()
	var parts []string
	if d.current != "" {
		parts = append(parts, "busy with "+d.current)
	}
	if d.waiting {
		parts = append(parts, "waiting for the other observers")
	}
	for _, it := range d.queue {
		switch it.kind {
		case kindBeat:
			queued.Beat = true
		case kindArtifact, kindResource:
			queued.Files++
		case kindFinal:
			queued.Final = true
		}
	}
	d.mu.Unlock()
	queued.Points = d.metrics.points()
	if !queued.Empty() {
		parts = append(parts, "still to send: "+queued.String())
	}
	if d.store != nil {
		if p := d.store.Pending(); !p.Empty() {
			parts = append(parts, "kept after errors: "+p.String())
		}
	}
	return strings.Join(parts, "; ")
}

func countPoints(ms []observer.MetricSeries) int64 {
	var n int64
	for _, s := range ms {
		n += int64(len(s.Points))
	}
	return n
}

// mergeSeries appends the points of b to those of a, by name, keeping the
// order in which names first appeared. a and b are not modified.
func mergeSeries(a, b []observer.MetricSeries) []observer.MetricSeries {
	if len(a) == 0 {
		return b
	}
	if len(b) == 0 {
		return a
	}
	out := make([]observer.MetricSeries, len(a), len(a)+len(b))
	idx := make(map[string]int, len(a))
	for i, s := range a {
		out[i] = observer.MetricSeries{Name: s.Name, Points: append([]observer.MetricPoint(nil), s.Points...)}
		idx[s.Name] = i
	}
	for _, s := range b {
		if i, ok := idx[s.Name]; ok {
			out[i].Points = append(out[i].Points, s.Points...)
			continue
		}
		idx[s.Name] = len(out)
		out = append(out, s)
	}
	return out
}

// fanout drives all observers of a run.
type fanout struct {
	drivers []*driver
	warn    io.Writer
	ctx     context.Context
	abandon context.CancelFunc // stops every call and every driver
	// infoChanges counts the times an observer changed the info dict.
	infoChanges atomic.Int64

	mu       sync.Mutex
	reported map[observer.Observer]bool
	spillErr map[observer.Observer]bool
}

// newFanout starts one driver per observer. spillDir receives the files
// of observers whose metric backlog outgrows memory ("" keeps it all in
// memory). onInfo receives the keys an observer added to or changed in the
// info dict.
func newFanout(obs []observer.Observer, spillDir string, warn io.Writer, onInfo func(map[string]any)) *fanout {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fanout{
		warn:     warn,
		ctx:      ctx,
		abandon:  cancel,
		reported: map[observer.Observer]bool{},
		spillErr: map[observer.Observer]bool{},
	}
	noteInfo := func(changed map[string]any) {
		f.infoChanges.Add(1)
		if onInfo != nil {
			onInfo(changed)
		}
	}
	for _, o := range obs {
		dctx, dcancel := context.WithCancel(ctx)
		d := &driver{
			obs:     o,
			ctx:     dctx,
			cancel:  dcancel,
			changes: &f.infoChanges,
			report:  func(op string, err error) { f.reportOnce(o, op, err) },
			onInfo:  noteInfo,
			metrics: newBacklog(spillDir),
			store:   storeOf(o),
			wake:    make(chan struct{}, 1),
			done:    make(chan struct{}),
		}
		f.drivers = append(f.drivers, d)
		go d.loop()
	}
	return f
}

// storeOf finds the retry decorator around o, if any.
func storeOf(o observer.Observer) pendingHolder {
	if p, ok := observer.As[pendingHolder](o); ok {
		return p
	}
	return nil
}

// reportOnce prints the first error of each observer; later ones are
// counted in the summary only, so a dead server does not flood stderr.
func (f *fanout) reportOnce(o observer.Observer, op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reported[o] {
		return
	}
	f.reported[o] = true
	fmt.Fprintf(f.warn, "sacred: observer %s: could not record %s: %v (the run goes on; later errors of this observer are not shown)\n", o.Name(), op, oneLine(err))
}

// beat hands new metric points to every observer's backlog and queues a
// heartbeat for each. It never blocks.
func (f *fanout) beat(metrics []observer.MetricSeries, hb observer.HeartbeatEvent) {
	f.addMetrics(metrics)
	for _, d := range f.drivers {
		d.push(&item{kind: kindBeat, beat: hb})
	}
}

// addMetrics hands new metric points to every observer's backlog, to be
// delivered with its next beat.
func (f *fanout) addMetrics(metrics []observer.MetricSeries) {
	if len(metrics) == 0 {
		return
	}
	for _, d := range f.drivers {
		if err := d.metrics.push(metrics); err != nil {
			f.mu.Lock()
			first := !f.spillErr[d.obs]
			f.spillErr[d.obs] = true
			f.mu.Unlock()
			if first {
				fmt.Fprintf(f.warn, "sacred: observer %s lags behind and its metric points cannot go to disk (%v): they are held in memory\n", d.obs.Name(), oneLine(err))
			}
		}
	}
}

func (f *fanout) artifact(ev observer.ArtifactEvent) {
	for _, d := range f.drivers {
		e := ev
		d.push(&item{kind: kindArtifact, artifact: &e})
	}
}

func (f *fanout) resource(ev observer.ResourceEvent) {
	for _, d := range f.drivers {
		e := ev
		d.push(&item{kind: kindResource, resource: &e})
	}
}

// finalSync lines the observers up between the final beat and the final
// event: an observer may add keys to the info dict at its final beat (as
// Mongo adds info.metrics), and those keys belong in every observer's
// final record. Each driver waits at the line until all have passed their
// final beat (or release is closed: a deadline, an abandoned flush), then
// beats once more with the merged info if any observer changed it since
// the final beat, then sends its final event.
type finalSync struct {
	beaten  sync.WaitGroup // one per driver, done once past its final beat
	all     chan struct{}  // closed when every driver is past its final beat
	release chan struct{}  // closed to stop waiting for the others
	once    sync.Once
	changes int64                          // infoChanges when the final beat was queued
	infoHB  func() observer.HeartbeatEvent // the extra beat, built once for all
	hb      observer.HeartbeatEvent
}

// sync waits at the line, then beats with the merged info when an
// observer changed it after the final beat was built.
func (d *driver) sync(s *finalSync) {
	s.beaten.Done()
	d.setWaiting(true)
	select {
	case <-s.all:
	case <-s.release:
	case <-d.ctx.Done():
	}
	d.setWaiting(false)
	if d.ctx.Err() != nil {
		return
	}
	if d.changes.Load() == s.changes {
		return
	}
	s.once.Do(func() { s.hb = s.infoHB() })
	d.beat(s.hb)
}

// finish queues, for every observer, the line-up after the final beat and
// the final event, whose context ends at deadline. Drivers stop waiting at
// the line at syncBy. infoBeat builds the extra beat when an observer
// changed the info dict. It returns a channel closed when every driver
// ended, and a function that releases the line early.
func (f *fanout) finish(deadline, syncBy time.Time, changes int64, infoBeat func() observer.HeartbeatEvent, op string, fn func(ctx context.Context, o observer.Observer) error) (<-chan struct{}, func()) {
	s := &finalSync{all: make(chan struct{}), release: make(chan struct{}), changes: changes, infoHB: infoBeat}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(s.release) }) }
	s.beaten.Add(len(f.drivers))
	for _, d := range f.drivers {
		if !d.push(&item{kind: kindSync, sync: s}) {
			s.beaten.Done()
		}
		d.push(&item{kind: kindFinal, final: fn, finalOp: op, deadline: deadline})
	}
	go func() { s.beaten.Wait(); close(s.all) }()
	t := time.AfterFunc(time.Until(syncBy), release)
	done := make(chan struct{})
	go func() {
		for _, d := range f.drivers {
			<-d.done
		}
		t.Stop()
		close(done)
	}()
	return done, release
}

// cutBehind abandons the observers that are inside a call or still have
// more than their final event to send, and lets the others (waiting idle
// for the final event) go on with it: an interrupted flush gives up only
// on what is still pending.
func (f *fanout) cutBehind() {
	for _, d := range f.drivers {
		d.mu.Lock()
		behind := d.current != ""
		for _, it := range d.queue {
			if it.kind != kindSync && it.kind != kindFinal {
				behind = true
			}
		}
		d.mu.Unlock()
		if behind {
			d.cancel()
		}
	}
}

// stop abandons every observer and waits at most grace for the drivers to
// return from the calls they are in (a well-behaved observer returns at
// once when its context is cancelled). It returns the observers still in a
// call: they must not be closed.
func (f *fanout) stop(grace time.Duration) (busy []observer.Observer) {
	f.abandon()
	for _, d := range f.drivers {
		d.cancel()
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
		d.poke()
	}
	expired := time.After(grace)
	timedOut := false
	for _, d := range f.drivers {
		if !timedOut {
			select {
			case <-d.done:
				continue
			case <-expired:
				timedOut = true
			}
		}
		select {
		case <-d.done:
		default:
			busy = append(busy, d.obs)
		}
	}
	return busy
}

// pending lists, per observer that has not finished, what it has not
// recorded yet.
func (f *fanout) pending() []string {
	var out []string
	for _, d := range f.drivers {
		select {
		case <-d.done:
			continue
		default:
		}
		p := d.pending()
		if p == "" {
			p = "finishing"
		}
		out = append(out, d.obs.Name()+": "+p)
	}
	return out
}
