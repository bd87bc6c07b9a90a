package runner

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/retry"
)

// memOutput is an in-memory observer.Output.
type memOutput struct {
	mu  sync.Mutex
	buf []byte
}

func (m *memOutput) Append(p []byte) { m.mu.Lock(); m.buf = append(m.buf, p...); m.mu.Unlock() }
func (m *memOutput) Size() int64     { m.mu.Lock(); defer m.mu.Unlock(); return int64(len(m.buf)) }
func (m *memOutput) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off >= int64(len(m.buf)) {
		return 0, io.EOF
	}
	n := copy(p, m.buf[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// recorder keeps what it was given; gate, when set, blocks each beat until
// a value arrives, to play a slow observer; failBeats fails that many
// heartbeats and log_metrics calls first.
type recorder struct {
	observer.Base
	gate      chan struct{}
	failBeats int

	target   int // caughtUp is closed once this much output arrived
	caughtUp chan struct{}

	mu      sync.Mutex
	out     bytes.Buffer
	points  map[string][]observer.MetricPoint
	beats   int
	final   string
	entered chan struct{}
}

func newRecorder() *recorder {
	return &recorder{points: map[string][]observer.MetricPoint{}, entered: make(chan struct{}, 100)}
}

func (r *recorder) Name() string { return "recorder" }
func (r *recorder) LogMetrics(_ context.Context, ev *observer.MetricsEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failBeats > 0 {
		return errors.New("store down")
	}
	for _, s := range ev.Metrics {
		r.points[s.Name] = append(r.points[s.Name], s.Points...)
	}
	return nil
}
func (r *recorder) Heartbeat(_ context.Context, ev *observer.HeartbeatEvent) error {
	r.entered <- struct{}{}
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failBeats > 0 {
		r.failBeats--
		return errors.New("store down")
	}
	if _, err := io.Copy(&r.out, ev.NewOutput()); err != nil {
		return err
	}
	r.beats++
	if r.caughtUp != nil && r.out.Len() >= r.target {
		close(r.caughtUp)
		r.caughtUp = nil
	}
	return nil
}
func (r *recorder) Completed(context.Context, *observer.CompletedEvent) error {
	r.mu.Lock()
	r.final = "completed"
	r.mu.Unlock()
	return nil
}

// finish queues Completed for every observer and waits for all of them
// until the deadline; it returns the observers that did not finish.
func finish(fo *fanout, deadline time.Time) []observer.Observer {
	done, _ := fo.finish(deadline, deadline, fo.infoChanges.Load(), nil, observer.StatusCompleted, func(ctx context.Context, o observer.Observer) error {
		return o.Completed(ctx, &observer.CompletedEvent{})
	})
	waitAtMost(time.Until(deadline), done)
	fo.stop(callGrace)
	var late []observer.Observer
	for _, d := range fo.drivers {
		if !d.finalOK {
			late = append(late, d.obs)
		}
	}
	return late
}

func point(step int64) observer.MetricPoint {
	return observer.MetricPoint{Step: step, Value: float64(step), Time: time.Unix(step, 0)}
}

func TestSlowObserverDoesNotBlockOthersAndLosesNothing(t *testing.T) {
	slow, fast := newRecorder(), newRecorder()
	slow.gate = make(chan struct{})
	var warn bytes.Buffer
	var want bytes.Buffer
	for i := 0; i < 50; i++ {
		want.WriteString(strings.Repeat(string(rune('a'+i%26)), i+1))
	}
	fastDone := make(chan struct{})
	fast.target, fast.caughtUp = want.Len(), fastDone
	fo := newFanout([]observer.Observer{slow, fast}, t.TempDir(), &warn, nil)
	out := &memOutput{}
	for i := 0; i < 50; i++ {
		chunk := []byte(strings.Repeat(string(rune('a'+i%26)), i+1))
		out.Append(chunk)
		fo.beat([]observer.MetricSeries{{Name: "loss", Points: []observer.MetricPoint{point(int64(i))}}},
			observer.HeartbeatEvent{Output: out, To: out.Size()})
		if i == 0 {
			<-slow.entered // the slow observer is now stuck in its first beat
		}
	}
	// The fast observer gets all the output while the slow one is stuck.
	<-fastDone
	close(slow.gate)
	late := finish(fo, time.Now().Add(10*time.Second))
	if len(late) != 0 {
		t.Fatalf("late observers: %v", late)
	}
	for _, r := range []*recorder{slow, fast} {
		if r.out.String() != want.String() {
			t.Errorf("output differs: got %d bytes, want %d", r.out.Len(), want.Len())
		}
		if n := len(r.points["loss"]); n != 50 {
			t.Errorf("%d points, want 50", n)
		}
		for i, p := range r.points["loss"] {
			if p.Step != int64(i) {
				t.Fatalf("point %d has step %d: order lost", i, p.Step)
			}
		}
		if r.final != "completed" {
			t.Errorf("final event not delivered")
		}
	}
	if slow.beats >= 50 {
		t.Errorf("slow observer had %d beats: piled-up beats were not merged", slow.beats)
	}
}

// Through the retry decorator (as the runner wraps every observer), beats
// and points that failed arrive later, once each and in order.
func TestFailedBeatsAreDeliveredAgain(t *testing.T) {
	r := newRecorder()
	r.failBeats = 2
	var events []retry.Event
	w := retry.Wrap(r, retry.Options{MinBackoff: time.Nanosecond, MaxBackoff: time.Nanosecond, Report: func(ev retry.Event) { events = append(events, ev) }})
	fo := newFanout([]observer.Observer{w}, t.TempDir(), io.Discard, nil)
	out := &memOutput{}
	for i := 0; i < 4; i++ {
		out.Append([]byte{byte('0' + i)})
		fo.beat([]observer.MetricSeries{{Name: "m", Points: []observer.MetricPoint{point(int64(i))}}},
			observer.HeartbeatEvent{Output: out, To: out.Size()})
		<-r.entered
	}
	if late := finish(fo, time.Now().Add(10*time.Second)); len(late) != 0 {
		t.Fatalf("not finished: %v", late)
	}
	if got := r.out.String(); got != "0123" {
		t.Errorf("output %q, want 0123", got)
	}
	if n := len(r.points["m"]); n != 4 {
		t.Errorf("%d points, want 4", n)
	}
	for i, p := range r.points["m"] {
		if p.Step != int64(i) {
			t.Errorf("point %d has step %d", i, p.Step)
		}
	}
	if len(events) == 0 || events[len(events)-1].Err != nil {
		t.Errorf("the decorator did not report the failures and the recovery: %v", events)
	}
	if d := fo.drivers[0]; d.failed != nil || !d.finalOK {
		t.Errorf("the driver saw an error through the decorator: %v (final ok %v)", d.failed, d.finalOK)
	}
}

func TestFinishReportsObserversPastTheDeadline(t *testing.T) {
	stuck := newRecorder()
	stuck.gate = make(chan struct{})
	defer close(stuck.gate)
	fo := newFanout([]observer.Observer{stuck}, t.TempDir(), io.Discard, nil)
	out := &memOutput{}
	fo.beat(nil, observer.HeartbeatEvent{Output: out})
	<-stuck.entered
	late := finish(fo, time.Now().Add(50*time.Millisecond))
	if len(late) != 1 {
		t.Fatalf("want the stuck observer reported late, got %v", late)
	}
}

func TestMergeSeriesKeepsFirstAppearanceOrder(t *testing.T) {
	a := []observer.MetricSeries{{Name: "x", Points: []observer.MetricPoint{point(0)}}, {Name: "y", Points: []observer.MetricPoint{point(0)}}}
	b := []observer.MetricSeries{{Name: "z", Points: []observer.MetricPoint{point(0)}}, {Name: "x", Points: []observer.MetricPoint{point(1)}}}
	m := mergeSeries(a, b)
	var names []string
	for _, s := range m {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "x,y,z" || len(m[0].Points) != 2 || len(a[0].Points) != 1 {
		t.Fatalf("merge = %v (a modified: %v)", m, a)
	}
}
