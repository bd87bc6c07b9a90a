package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// TestResume runs the Resume tier of the suite over a local directory,
// with and without server-side appends.
func TestResume(t *testing.T) {
	for _, minAppend := range []int64{-1, 0, 16} {
		t.Run(fmt.Sprintf("minAppend=%d", minAppend), func(t *testing.T) {
			root := t.TempDir()
			bucket := dirBuckets(root, minAppend)
			observertest.RunResume(t, observertest.Store{
				New:    func(t *testing.T) observer.Observer { return newObserver(t, bucket(), "runs/", io.Discard) },
				Reader: func(t *testing.T) observer.Reader { return NewReader(bucket(), "runs/", "test") },
			})
		})
	}
}

// coutCounter counts the bytes of cout.txt sent by Put and by Append.
type coutCounter struct {
	appendingDir
	sent, appends atomic.Int64
}

func (c *coutCounter) Put(ctx context.Context, key string, src io.ReaderAt, size int64, ct string) error {
	if strings.HasSuffix(key, "/"+layout.CoutFile) {
		c.sent.Add(size)
	}
	return c.appendingDir.Put(ctx, key, src, size, ct)
}

func (c *coutCounter) Append(ctx context.Context, key string, size int64, src io.ReaderAt, n int64) error {
	c.sent.Add(n)
	c.appends.Add(1)
	return c.appendingDir.Append(ctx, key, size, src, n)
}

// TestResumeSendsOnlyNewOutput: after Resume, the output cout.txt holds
// is not sent again. A beat that repeats stored bytes (its From before
// the stored size, as after a lost acknowledgement) sends the bytes after
// them only, appended; a beat wholly inside them sends nothing; and a beat
// whose From is past the stored size (the store kept less than it
// acknowledged) sends the gap too, so that nothing is missing.
func TestResumeSendsOnlyNewOutput(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	ev := observertest.StartEvent()
	out := observertest.NewOutput()
	// beat sends [from, to) through o and returns the bytes of output
	// that reached the bucket, and in how many appends.
	beat := func(o *Observer, b *coutCounter, from, to int64) (sent, appends int64) {
		t.Helper()
		s0, a0 := b.sent.Load(), b.appends.Load()
		if err := o.Heartbeat(ctx, &observer.HeartbeatEvent{BeatTime: ev.Time, Output: out, From: from, To: to}); err != nil {
			t.Fatal(err)
		}
		return b.sent.Load() - s0, b.appends.Load() - a0
	}
	resumed := func() (*Observer, *coutCounter) {
		t.Helper()
		b := &coutCounter{appendingDir: appendingDir{&dirBucket{root: root, minAppend: 16}}}
		return newObserverAt(t, b, ev), b
	}
	check := func(what string, sent, appends, wantSent int64) {
		t.Helper()
		if sent != wantSent || (wantSent > 0) != (appends == 1) {
			t.Errorf("%s: %d bytes of output sent in %d appends, want %d bytes in %d", what, sent, appends, wantSent, min(wantSent, 1))
		}
		got, err := os.ReadFile(filepath.Join(root, ev.ID, layout.CoutFile))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, out.Bytes()) {
			t.Fatalf("%s: cout.txt = %q, want %q", what, got, out.Bytes())
		}
	}

	a := newObserver(t, &dirBucket{root: root}, "", io.Discard)
	ev.ID = start(t, a, ev)
	out.Append([]byte("first beat, long enough to append to\n"))
	if err := a.Heartbeat(ctx, &observer.HeartbeatEvent{BeatTime: ev.Time, Output: out, From: 0, To: out.Size()}); err != nil {
		t.Fatal(err)
	}
	mid := out.Size()
	out.Append([]byte("second beat\n"))
	if err := a.Heartbeat(ctx, &observer.HeartbeatEvent{BeatTime: ev.Time, Output: out, From: mid, To: out.Size()}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// The last beat comes again, with more.
	o, b := resumed()
	out.Append([]byte("third\n"))
	sent, appends := beat(o, b, mid, out.Size())
	check("a repeated range", sent, appends, 6)
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// A beat inside what is stored, then one after it.
	o, b = resumed()
	stored := out.Size()
	sent, appends = beat(o, b, 0, stored)
	check("a range stored already", sent, appends, 0)
	out.Append([]byte("fourth\n"))
	sent, appends = beat(o, b, stored, out.Size())
	check("the beat after it", sent, appends, 7)
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// From past the stored size: the gap is sent too.
	o, b = resumed()
	stored = out.Size()
	out.Append([]byte("fifth beat\n"))
	sent, appends = beat(o, b, stored+5, out.Size())
	check("a From past the stored output", sent, appends, 11)
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// newObserverAt returns an observer that has resumed ev.ID.
func newObserverAt(t *testing.T, b Bucket, ev *observer.StartEvent) *Observer {
	t.Helper()
	o := newObserver(t, b, "", io.Discard)
	if err := o.Resume(context.Background(), ev); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	return o
}

// TestResumeKeepsRunJSON: a resumed run's run.json is the one stored
// before, with only what the new events change; info.json is not stored
// again when the info did not change.
func TestResumeKeepsRunJSON(t *testing.T) {
	ctx := context.Background()
	d := &dirBucket{root: t.TempDir()}
	a := newObserver(t, d, "", io.Discard)
	ev := observertest.StartEvent()
	id := start(t, a, ev)
	beats := observertest.NewBeats()
	beats.Out.Append([]byte("some output\n"))
	info := map[string]any{"k": 1}
	if err := a.Heartbeat(ctx, beats.Next(ev.Time, info)); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(d.root, id, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	before := read(layout.RunFile)
	ev.ID = id
	b := newObserverAt(t, d, ev)
	if err := b.putRun(ctx); err != nil {
		t.Fatal(err)
	}
	if after := read(layout.RunFile); !bytes.Equal(before, after) {
		t.Errorf("run.json changed by Resume:\nbefore %s\nafter  %s", before, after)
	}
	sent := d.putBytes.Load()
	if err := b.Heartbeat(ctx, beats.Next(ev.Time, info)); err != nil {
		t.Fatal(err)
	}
	// run.json only: no output, the same info.
	if got, want := d.putBytes.Load()-sent, int64(len(read(layout.RunFile))); got != want {
		t.Errorf("a beat with no new output and the same info sent %d bytes, want the %d of run.json", got, want)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestResumeQueued: a queued run is taken up with no output, as after
// Queued: no cout.txt is looked for or made.
func TestResumeQueued(t *testing.T) {
	ctx := context.Background()
	d := &dirBucket{root: t.TempDir()}
	a := newObserver(t, d, "", io.Discard)
	ev := observertest.StartEvent()
	id, err := a.Queued(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	ev.ID = id
	b := newObserverAt(t, d, ev)
	if b.coutResumed {
		t.Error("a queued run was resumed with output")
	}
	stop := ev.Time.Add(time.Minute)
	if err := b.Failed(ctx, &observer.FailedEvent{StopTime: stop, Trace: []string{"never ran\n"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.root, id, layout.CoutFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cout.txt of a queued run: %v, want none", err)
	}
	run, err := NewReader(d, "", "test").Run(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != observer.StatusFailed || !run.StopTime.Equal(stop) {
		t.Errorf("status %s, stop time %s; want FAILED at %s", run.Status, run.StopTime, stop)
	}
}

// TestResumeFailureKeepsNothing: a Resume that fails (the store away)
// leaves the observer as new, so it can be called again; a missing run
// and an id that is no run id are observer.ErrNotFound.
func TestResumeFailureKeepsNothing(t *testing.T) {
	ctx := context.Background()
	d := &dirBucket{root: t.TempDir()}
	a := newObserver(t, d, "", io.Discard)
	ev := observertest.StartEvent()
	id := start(t, a, ev)
	o := newObserver(t, d, "", io.Discard)
	for _, bad := range []string{"404", "../1", ""} {
		ev.ID = bad
		if err := o.Resume(ctx, ev); !errors.Is(err, observer.ErrNotFound) {
			t.Errorf("Resume(%q) = %v, want observer.ErrNotFound", bad, err)
		}
	}
	ev.ID = id
	d.broken.Store(true)
	if err := o.Resume(ctx, ev); err == nil || errors.Is(err, observer.ErrNotFound) {
		t.Fatalf("Resume with the store away = %v, want a failure that is not ErrNotFound", err)
	}
	d.broken.Store(false)
	if err := o.Resume(ctx, ev); err != nil {
		t.Fatalf("Resume again: %v", err)
	}
	if o.ID() != id {
		t.Errorf("ID() = %q, want %q", o.ID(), id)
	}
	if err := o.Resume(ctx, ev); err == nil {
		t.Error("a second Resume was accepted")
	}
}

// TestResumeMetricsReadFails: metrics.json is read from the bucket at the
// first write after Resume; when that read fails, the points are dropped
// (the caller sends them again), and once it works every point is there
// once.
func TestResumeMetricsReadFails(t *testing.T) {
	ctx := context.Background()
	d := &dirBucket{root: t.TempDir()}
	a := newObserver(t, d, "", io.Discard)
	ev := observertest.StartEvent()
	id := start(t, a, ev)
	pt := func(step int64) observer.MetricsEvent {
		return observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: []observer.MetricPoint{
			{Step: step, Value: float64(step) / 2, Time: ev.Time.Add(time.Duration(step) * time.Second)},
		}}}}
	}
	for step := range int64(2) {
		m := pt(step)
		if err := a.LogMetrics(ctx, &m); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ev.ID = id
	o := newObserverAt(t, d, ev)
	d.broken.Store(true)
	m := pt(2)
	if err := o.LogMetrics(ctx, &m); err == nil {
		t.Fatal("LogMetrics with the store away succeeded")
	}
	d.broken.Store(false)
	for step := int64(2); step < 4; step++ { // 2 again, as the retry decorator sends it
		m := pt(step)
		if err := o.LogMetrics(ctx, &m); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	run, err := NewReader(d, "", "test").Run(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Metrics) != 1 || len(run.Metrics[0].Points) != 4 {
		t.Fatalf("metrics = %+v, want loss with 4 points", run.Metrics)
	}
	for i, p := range run.Metrics[0].Points {
		if p.Step != int64(i) || p.Value != float64(i)/2 {
			t.Errorf("point %d = step %d value %v", i, p.Step, p.Value)
		}
	}
}
