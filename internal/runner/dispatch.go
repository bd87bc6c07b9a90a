package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// driver feeds one observer from its own goroutine, so that a slow or dead
// observer delays neither the child nor the other observers. Events wait in
// a queue; beats that pile up behind a slow observer are merged into one
// (their metrics appended, their output ranges joined), so the queue stays
// short whatever the observer's speed.
type driver struct {
	obs    observer.Observer
	report func(op string, err error) // reports an observer error to the user
	onInfo func(added map[string]any) // keys an observer added to the info dict

	mu      sync.Mutex
	queue   []*item
	wake    chan struct{}
	closed  bool
	done    chan struct{}
	outFrom int64                   // end of the output range last delivered
	retry   []observer.MetricSeries // points whose LogMetrics failed
	failed  error                   // first error, for the summary

	// points counts the metric points queued for this observer, so the
	// runner can hold metrics back while it lags (bounded memory).
	points   atomic.Int64
	progress chan<- struct{} // told whenever a beat was handled
}

type itemKind int

const (
	kindBeat itemKind = iota
	kindArtifact
	kindResource
	kindFinal
)

type item struct {
	kind     itemKind
	metrics  []observer.MetricSeries
	beat     observer.HeartbeatEvent
	artifact *observer.ArtifactEvent
	resource *observer.ResourceEvent
	final    func(ctx context.Context, o observer.Observer) error
	finalOp  string
	finalCtx context.Context
}

func newDriver(obs observer.Observer, report func(string, error), onInfo func(map[string]any), progress chan<- struct{}) *driver {
	d := &driver{
		obs:      obs,
		report:   report,
		onInfo:   onInfo,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		progress: progress,
	}
	go d.loop()
	return d
}

func (d *driver) push(it *item) {
	d.points.Add(countPoints(it.metrics))
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	if it.kind == kindBeat && len(d.queue) > 0 {
		if last := d.queue[len(d.queue)-1]; last.kind == kindBeat {
			// Not started yet: fold the new beat into it. The output
			// range is set by the driver when the beat is delivered.
			last.metrics = mergeSeries(last.metrics, it.metrics)
			last.beat = it.beat
			d.mu.Unlock()
			return
		}
	}
	d.queue = append(d.queue, it)
	if it.kind == kindFinal {
		d.closed = true
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *driver) loop() {
	defer close(d.done)
	for {
		d.mu.Lock()
		if len(d.queue) == 0 {
			closed := d.closed
			d.mu.Unlock()
			if closed {
				return
			}
			<-d.wake
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

func (d *driver) handle(it *item) {
	ctx := context.Background()
	switch it.kind {
	case kindBeat:
		d.beat(ctx, it)
		select {
		case d.progress <- struct{}{}:
		default:
		}
	case kindArtifact:
		d.check("artifact "+it.artifact.Name, d.obs.Artifact(ctx, it.artifact))
	case kindResource:
		d.check("resource "+it.resource.Path, d.obs.Resource(ctx, it.resource))
	case kindFinal:
		d.check(it.finalOp, it.final(it.finalCtx, d.obs))
	}
}

func (d *driver) beat(ctx context.Context, it *item) {
	metrics := mergeSeries(d.retry, it.metrics)
	d.retry = nil
	info := it.beat.Info
	before := make(map[string]bool, len(info))
	for k := range info {
		before[k] = true
	}
	ev := &observer.MetricsEvent{Metrics: metrics, Info: info}
	if err := d.obs.LogMetrics(ctx, ev); err != nil {
		d.retry = metrics
		d.check("log_metrics", err)
	} else {
		d.points.Add(-countPoints(metrics))
	}
	if d.onInfo != nil {
		added := map[string]any{}
		for k, v := range ev.Info {
			if !before[k] {
				added[k] = v
			}
		}
		if len(added) > 0 {
			d.onInfo(added)
		}
	}
	hb := it.beat
	hb.Info = ev.Info
	hb.From = d.outFrom
	if err := d.obs.Heartbeat(ctx, &hb); err != nil {
		d.check("heartbeat", err)
		return
	}
	d.outFrom = hb.To
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

// wait blocks until the final event was handled or ctx is done.
func (d *driver) wait(ctx context.Context) error {
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func countPoints(ms []observer.MetricSeries) int64 {
	var n int64
	for _, s := range ms {
		n += int64(len(s.Points))
	}
	return n
}

// mergeSeries appends the points of b to those of a, by name, keeping the
// order in which names first appeared. a is not modified.
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
	// progress receives when some observer handled a beat.
	progress chan struct{}

	mu       sync.Mutex
	reported map[observer.Observer]bool
}

func newFanout(obs []observer.Observer, warn io.Writer, onInfo func(map[string]any)) *fanout {
	f := &fanout{warn: warn, reported: map[observer.Observer]bool{}, progress: make(chan struct{}, 1)}
	for _, o := range obs {
		o := o
		f.drivers = append(f.drivers, newDriver(o, func(op string, err error) { f.reportOnce(o, op, err) }, onInfo, f.progress))
	}
	return f
}

// backlog is the largest number of metric points waiting for one observer.
func (f *fanout) backlog() int64 {
	var most int64
	for _, d := range f.drivers {
		most = max(most, d.points.Load())
	}
	return most
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
	fmt.Fprintf(f.warn, "sacred: observer %s: %s failed: %v (the run goes on; later errors of this observer are not shown)\n", o.Name(), op, err)
}

func (f *fanout) beat(metrics []observer.MetricSeries, hb observer.HeartbeatEvent) {
	for _, d := range f.drivers {
		b := hb
		b.Info = observer.CloneMap(hb.Info)
		d.push(&item{kind: kindBeat, metrics: metrics, beat: b})
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

// finish queues the final event for every observer and waits for all of
// them until the deadline. It returns the observers that did not finish.
func (f *fanout) finish(deadline time.Time, op string, fn func(ctx context.Context, o observer.Observer) error) []observer.Observer {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for _, d := range f.drivers {
		d.push(&item{kind: kindFinal, final: fn, finalOp: op, finalCtx: ctx})
	}
	var late []observer.Observer
	for _, d := range f.drivers {
		if err := d.wait(ctx); err != nil {
			late = append(late, d.obs)
		}
	}
	return late
}

// failures lists the first error of each observer that had one.
func (f *fanout) failures() error {
	var errs []error
	for _, d := range f.drivers {
		select {
		case <-d.done:
			if d.failed != nil {
				errs = append(errs, fmt.Errorf("%s: %w", d.obs.Name(), d.failed))
			}
		default:
			errs = append(errs, fmt.Errorf("%s: did not finish in time", d.obs.Name()))
		}
	}
	return errors.Join(errs...)
}
