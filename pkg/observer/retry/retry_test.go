package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// want is what a driven run must leave in the recorder.
type want struct {
	metrics   []observer.MetricSeries
	output    []byte
	artifacts []string
	resources []string
	lastBeat  int
}

// driveRun makes a run of beats with metrics, output, artifacts and
// resources through w as the runner would (From of each beat where the
// previous one ended, since the decorator always returns nil), advancing
// the clock by step after every beat, and ends it with a final beat.
func driveRun(t *testing.T, w *Observer, clock *fakeClock, step time.Duration) want {
	t.Helper()
	ctx := context.Background()
	if _, err := w.Started(ctx, &observer.StartEvent{ID: "7"}); err != nil {
		t.Fatalf("Started: %v", err)
	}
	var wt want
	add := func(name string, p observer.MetricPoint) {
		i := slices.IndexFunc(wt.metrics, func(s observer.MetricSeries) bool { return s.Name == name })
		if i < 0 {
			i = len(wt.metrics)
			wt.metrics = append(wt.metrics, observer.MetricSeries{Name: name})
		}
		wt.metrics[i].Points = append(wt.metrics[i].Points, p)
	}
	dir := t.TempDir()
	b := observertest.NewBeats()
	t0 := clock.now()
	const beats = 30
	for i := range beats {
		if i%4 == 1 {
			name := fmt.Sprintf("model-%d.txt", i)
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(fmt.Sprintf("weights %d", i)), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := w.Artifact(ctx, &observer.ArtifactEvent{Name: name, Path: p, Metadata: map[string]any{"i": i}}); err != nil {
				t.Fatalf("Artifact %d: %v", i, err)
			}
			wt.artifacts = append(wt.artifacts, fmt.Sprintf("%s=weights %d", name, i))
		}
		if i%6 == 2 {
			p := fmt.Sprintf("/data/input-%d.csv", i)
			if err := w.Resource(ctx, &observer.ResourceEvent{Path: p, MD5: "d41d8cd98f00b204e9800998ecf8427e"}); err != nil {
				t.Fatalf("Resource %d: %v", i, err)
			}
			wt.resources = append(wt.resources, p)
		}
		at := t0.Add(time.Duration(i) * time.Second)
		ms := []observer.MetricSeries{{Name: "loss", Points: []observer.MetricPoint{{Step: int64(i), Value: 1 / float64(i+1), Time: at}}}}
		if i >= 5 {
			ms = append(ms, observer.MetricSeries{Name: "acc", Points: []observer.MetricPoint{
				{Step: int64(2 * i), Value: float64(i) / 100, Time: at},
				{Step: int64(2*i + 1), Value: float64(i) / 99, Time: at},
			}})
		}
		for _, s := range ms {
			for _, p := range s.Points {
				add(s.Name, p)
			}
		}
		info := map[string]any{"beat": i, "nested": map[string]any{"i": i}}
		if err := w.LogMetrics(ctx, &observer.MetricsEvent{Metrics: ms, Info: info}); err != nil {
			t.Fatalf("LogMetrics %d: %v", i, err)
		}
		if i%3 != 0 {
			b.Out.Append([]byte(fmt.Sprintf("line %d\n", i)))
		}
		hb := b.Next(at, info)
		hb.Result, hb.HasResult = i, true
		if err := w.Heartbeat(ctx, hb); err != nil {
			t.Fatalf("Heartbeat %d: %v", i, err)
		}
		clock.advance(step)
	}
	b.Out.Append([]byte("last words, no newline"))
	final := b.Next(t0.Add(beats*time.Second), map[string]any{"beat": beats})
	final.Result, final.HasResult, final.Final = beats, true, true
	if err := w.Heartbeat(ctx, final); err != nil {
		t.Fatalf("final Heartbeat: %v", err)
	}
	wt.output = b.Out.Bytes()
	wt.lastBeat = beats
	return wt
}

// checkRecorded compares what the recorder accepted with w.
func checkRecorded(t *testing.T, rec *recorder, wt want, status string) {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, p := range rec.problems {
		t.Error(p)
	}
	if rec.status != status {
		t.Errorf("status %q, want %q", rec.status, status)
	}
	if !bytes.Equal(rec.output, wt.output) {
		t.Errorf("output:\n got %q\nwant %q", rec.output, wt.output)
	}
	if !reflect.DeepEqual(rec.metrics, wt.metrics) {
		t.Errorf("metrics:\n got %v\nwant %v", rec.metrics, wt.metrics)
	}
	if !slices.Equal(rec.artifacts, wt.artifacts) {
		t.Errorf("artifacts:\n got %q\nwant %q", rec.artifacts, wt.artifacts)
	}
	if !slices.Equal(rec.resources, wt.resources) {
		t.Errorf("resources:\n got %q\nwant %q", rec.resources, wt.resources)
	}
	if rec.info["beat"] != wt.lastBeat || rec.result != wt.lastBeat {
		t.Errorf("last beat stored: info %v result %v, want beat %d", rec.info, rec.result, wt.lastBeat)
	}
}

// TestFailingStoreGetsEverythingOnceInOrder is issue 9's "done means": a
// store that fails its first calls of every kind, wrapped in the
// decorator, receives every point, every byte of output and every file
// exactly once and in order, and optional interfaces are still found
// through the wrapper.
func TestFailingStoreGetsEverythingOnceInOrder(t *testing.T) {
	for _, step := range []time.Duration{0, 700 * time.Millisecond, 3 * time.Second, 2 * time.Minute} {
		t.Run("clock steps "+step.String(), func(t *testing.T) {
			rec := &recorder{}
			fl := newFlaky(rec, 3)
			clock := newFakeClock()
			var events []Event
			w := wrapWithClock(fl, clock, Options{Report: func(e Event) { events = append(events, e) }})

			if got, ok := observer.As[observer.OutputFileOwner](w); !ok || got != observer.OutputFileOwner(rec) {
				t.Errorf("As[OutputFileOwner] through the decorator = %v, %v; want the inner store", got, ok)
			}
			if observer.Innermost(w) != observer.Observer(rec) {
				t.Errorf("Innermost is not the inner store")
			}

			wt := driveRun(t, w, clock, step)
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			if err := w.Completed(ctx, &observer.CompletedEvent{StopTime: clock.now(), HasResult: true, Result: 1}); err != nil {
				t.Fatalf("Completed: %v", err)
			}
			checkRecorded(t, rec, wt, observer.StatusCompleted)
			if p := w.Pending(); !p.Empty() {
				t.Errorf("pending after the final flush: %s", p)
			}

			failed := 0
			for _, kind := range []string{"log_metrics", "heartbeat", "artifact", "resource", "final"} {
				if n := fl.count(kind); n <= 3 {
					t.Errorf("%s reached the store %d times, want more than the 3 that fail", kind, n)
				}
				failed += 3
			}
			var reported int
			for _, e := range events {
				if e.Err != nil {
					reported++
				}
				if e.Observer != "recorder" {
					t.Errorf("event names observer %q, want recorder", e.Observer)
				}
			}
			if reported != failed {
				t.Errorf("%d failures reported, want %d", reported, failed)
			}
			if last := events[len(events)-1]; last.Err != nil {
				t.Errorf("last event %+v, want a recovery", last)
			}
		})
	}
}

func TestHeartbeatFromIsWhereTheStoreStopped(t *testing.T) {
	rec := &recorder{}
	fl := newFlaky(rec, 0)
	clock := newFakeClock()
	w := wrapWithClock(fl, clock, Options{})
	ctx := context.Background()
	b := observertest.NewBeats()
	b.Out.Append([]byte("0123456789"))
	fl.setDown(true, "heartbeat")
	w.Heartbeat(ctx, b.Next(clock.now(), map[string]any{"n": 1}))
	if p := w.Pending(); !p.Beat || p.OutputBytes != 10 {
		t.Fatalf("pending after a failed beat: %+v, want the beat and 10 bytes", p)
	}
	fl.setDown(false, "heartbeat")
	clock.advance(time.Hour)
	b.Out.Append([]byte("abcdefghijklmno"))
	hb := b.Next(clock.now(), map[string]any{"n": 2})
	if hb.From != 10 {
		t.Fatalf("test setup: From = %d", hb.From)
	}
	w.Heartbeat(ctx, hb)
	if hb.From != 10 {
		t.Errorf("the decorator changed the caller's event: From = %d", hb.From)
	}
	if !slices.Equal(rec.froms, []int64{0}) || string(rec.output) != "0123456789abcdefghijklmno" {
		t.Errorf("store got beats from %v, output %q; want one beat from 0 with all the output", rec.froms, rec.output)
	}
	if rec.info["n"] != 2 {
		t.Errorf("store has info %v, want the newer beat's", rec.info)
	}
	if p := w.Pending(); !p.Empty() {
		t.Errorf("pending: %s", p)
	}
}

func TestBackoffNotRetriedBeforeDue(t *testing.T) {
	rec := &recorder{}
	fl := newFlaky(rec, 0)
	fl.setDown(true, "log_metrics")
	clock := newFakeClock()
	min := 2 * time.Second
	w := wrapWithClock(fl, clock, Options{MinBackoff: min, MaxBackoff: 5 * time.Second})
	ctx := context.Background()
	point := func(step int64) *observer.MetricsEvent {
		return &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: []observer.MetricPoint{{Step: step}}}}}
	}
	step := int64(0)
	log := func() {
		step++
		if err := w.LogMetrics(ctx, point(step)); err != nil {
			t.Fatalf("LogMetrics: %v", err)
		}
	}
	expectCalls := func(n int) {
		t.Helper()
		if got := fl.count("log_metrics"); got != n {
			t.Fatalf("the store was called %d times, want %d", got, n)
		}
	}

	log() // fails: backoff 2s
	expectCalls(1)
	log()
	expectCalls(1)
	clock.advance(min - time.Nanosecond)
	log()
	expectCalls(1)
	clock.advance(time.Nanosecond)
	log() // due, fails again: backoff 4s
	expectCalls(2)
	clock.advance(min)
	log()
	expectCalls(2)
	clock.advance(min)
	log() // due, fails: backoff would be 8s, capped at 5s
	expectCalls(3)
	clock.advance(5*time.Second - time.Nanosecond)
	log()
	expectCalls(3)
	if p := w.Pending(); p.Points != step {
		t.Fatalf("pending %d points, want %d", p.Points, step)
	}
	fl.setDown(false, "log_metrics")
	clock.advance(time.Nanosecond)
	log()
	expectCalls(4)
	if p := w.Pending(); !p.Empty() {
		t.Fatalf("pending after the store came back: %s", p)
	}
	var steps []int64
	for _, p := range rec.metrics[0].Points {
		steps = append(steps, p.Step)
	}
	if want := []int64{1, 2, 3, 4, 5, 6, 7, 8}; !slices.Equal(steps, want) {
		t.Errorf("stored steps %v, want %v", steps, want)
	}
	// A success reset the backoff: the next failure waits MinBackoff.
	fl.setDown(true, "log_metrics")
	log()
	expectCalls(5)
	clock.advance(min)
	log()
	expectCalls(6)
}

func TestJitterStaysWithinBounds(t *testing.T) {
	w := Wrap(&recorder{}, Options{MinBackoff: time.Second, MaxBackoff: 10 * time.Second})
	for n := 1; n < 100; n++ {
		d := w.backoff(n)
		base := min(time.Second<<min(n-1, 10), 10*time.Second)
		if d < time.Second || d > 10*time.Second || d < base*3/4 || d > base*5/4 {
			t.Fatalf("backoff after %d failures = %v, want within [%v, %v] and [1s, 10s]", n, d, base*3/4, base*5/4)
		}
	}
}

func TestFinalFlushWithinDeadline(t *testing.T) {
	rec := &recorder{}
	fl := newFlaky(rec, 5)
	clock := newFakeClock()
	w := wrapWithClock(fl, clock, Options{})
	// The clock stands still during the run: after the first failures
	// everything waits for the final flush.
	wt := driveRun(t, w, clock, 0)
	if p := w.Pending(); p.Points == 0 || p.OutputBytes == 0 || p.Files == 0 || !p.Beat {
		t.Fatalf("pending before the final flush: %+v, want points, output, files and a beat", p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if err := w.Failed(ctx, &observer.FailedEvent{StopTime: clock.now(), Trace: []string{"exit status 1\n"}}); err != nil {
		t.Fatalf("Failed: %v", err)
	}
	checkRecorded(t, rec, wt, observer.StatusFailed)
	if len(clock.sleeps) == 0 {
		t.Fatal("the final flush never waited between rounds")
	}
	for _, d := range clock.sleeps {
		if d < DefaultMinBackoff || d > DefaultMaxBackoff {
			t.Errorf("final flush waits %v, want each within [MinBackoff, MaxBackoff]", clock.sleeps)
		}
	}
}

func TestDeadlineErrorSaysWhatWasNotRecorded(t *testing.T) {
	rec := &recorder{}
	fl := newFlaky(rec, 0)
	fl.setDown(true, "log_metrics", "heartbeat", "artifact", "resource", "final")
	w := Wrap(fl, Options{MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond})
	ctx := context.Background()
	w.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{
		{Name: "loss", Points: make([]observer.MetricPoint, 100)},
		{Name: "acc", Points: make([]observer.MetricPoint, 20)},
	}})
	b := observertest.NewBeats()
	b.Out.Append(bytes.Repeat([]byte("x"), 3_200_000))
	w.Heartbeat(ctx, b.Next(time.Now(), nil))
	w.Resource(ctx, &observer.ResourceEvent{Path: "/data/a.csv"})
	w.Resource(ctx, &observer.ResourceEvent{Path: "/data/b.csv"})

	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err := w.Completed(dctx, &observer.CompletedEvent{})
	if err == nil {
		t.Fatal("Completed against a dead store returned nil")
	}
	want := "not recorded before the deadline: 120 metric points, 3.2 MB of output, 2 artifacts or resources; the final status COMPLETED was not written (last error: "
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error:\n %q\nwant it to start with\n %q", err, want)
	}
	if !errors.Is(err, errDown) {
		t.Errorf("error %v does not wrap the store's error", err)
	}
	if p := w.Pending(); !p.Final || p.Points != 120 || p.Files != 2 || p.OutputBytes != 3_200_000 {
		t.Errorf("pending after the deadline: %+v", p)
	}
}

func TestFinalStatusWrittenDespiteARefusedFile(t *testing.T) {
	rec := &recorder{}
	fl := newFlaky(rec, 0)
	fl.setDown(true, "artifact")
	clock := newFakeClock()
	w := wrapWithClock(fl, clock, Options{})
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "big.bin")
	os.WriteFile(p, []byte("too big"), 0o644)
	w.Artifact(ctx, &observer.ArtifactEvent{Name: "big.bin", Path: p})
	w.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "m", Points: make([]observer.MetricPoint, 1)}}})
	err := w.Interrupted(ctx, &observer.InterruptedEvent{Status: observer.StatusTimeout})
	want := "not recorded: 1 artifact or resource; the final status TIMEOUT was written (last error: artifact big.bin: artifact call 5: store is down)"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n %v\nwant\n %s", err, want)
	}
	if rec.status != observer.StatusTimeout {
		t.Errorf("status %q, want TIMEOUT", rec.status)
	}
	// Once in the run, then in the first round (which stores the
	// metrics) and in three rounds that store nothing.
	if n := fl.count("artifact"); n != 5 {
		t.Errorf("the artifact was tried %d times, want 5", n)
	}
	if len(rec.metrics) != 1 {
		t.Errorf("the metrics behind the refused file were not stored: %v", rec.metrics)
	}
}

func TestFinalStatusFailingIsAnError(t *testing.T) {
	fl := newFlaky(&recorder{}, 0)
	fl.setDown(true, "final")
	w := Wrap(fl, Options{MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := w.Completed(ctx, &observer.CompletedEvent{})
	want := "the final status COMPLETED was not written before the deadline (last error: completed: final call "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error:\n %v\nwant it to start with\n %s", err, want)
	}
	if fl.count("final") < 2 {
		t.Errorf("the final event was tried %d times, want it retried", fl.count("final"))
	}
}

func TestCallTimeoutOnHangingStore(t *testing.T) {
	rec := &recorder{}
	fl := newFlaky(rec, 0)
	fl.setHang(true, "heartbeat", "artifact")
	clock := newFakeClock()
	var events []Event
	w := wrapWithClock(fl, clock, Options{CallTimeout: 10 * time.Millisecond, Report: func(e Event) { events = append(events, e) }})
	ctx := context.Background()

	b := observertest.NewBeats()
	b.Out.Append([]byte("hello\n"))
	if err := w.Heartbeat(ctx, b.Next(clock.now(), nil)); err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	if len(events) != 1 || !errors.Is(events[0].Err, context.DeadlineExceeded) || events[0].Op != "heartbeat" {
		t.Fatalf("events %+v, want one heartbeat failure from the call timeout", events)
	}
	if p := w.Pending(); !p.Beat || p.OutputBytes != 6 {
		t.Errorf("pending %+v, want the beat kept", p)
	}

	// A hanging file ends the round: the metrics of the same call are
	// not sent into a store that hangs.
	clock.advance(time.Hour)
	w.Artifact(ctx, &observer.ArtifactEvent{Name: "a", Path: "/nonexistent"})
	clock.advance(time.Hour)
	w.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "m", Points: make([]observer.MetricPoint, 3)}}})
	if n := fl.count("log_metrics"); n != 0 {
		t.Errorf("LogMetrics reached the store %d times behind a hanging artifact", n)
	}
	if p := w.Pending(); p.Points != 3 || p.Files != 1 {
		t.Errorf("pending %+v, want 3 points and 1 file", p)
	}

	// The caller's deadline applies too: Started may not wait for the
	// hour of CallTimeout.
	w2 := Wrap(hangingStart{}, Options{CallTimeout: time.Hour})
	sctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := w2.Started(sctx, &observer.StartEvent{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Started on a hanging store: %v, want the caller's deadline", err)
	}
}

type hangingStart struct{ observer.Base }

func (hangingStart) Name() string { return "hanging" }
func (hangingStart) Started(ctx context.Context, _ *observer.StartEvent) (string, error) {
	<-ctx.Done()
	return "", ctx.Err()
}

func TestReportFailuresAndRecovery(t *testing.T) {
	fl := newFlaky(&recorder{}, 2)
	clock := newFakeClock()
	var events []Event
	w := wrapWithClock(fl, clock, Options{Report: func(e Event) { events = append(events, e) }})
	ctx := context.Background()
	for range 3 {
		w.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "m", Points: make([]observer.MetricPoint, 1)}}})
		clock.advance(time.Hour)
	}
	if len(events) != 3 {
		t.Fatalf("events %+v, want two failures and a recovery", events)
	}
	for i, e := range events {
		if e.Observer != "recorder" || e.Op != "log_metrics" {
			t.Errorf("event %d = %+v, want observer recorder, op log_metrics", i, e)
		}
	}
	if !errors.Is(events[0].Err, errDown) || !errors.Is(events[1].Err, errDown) || events[2].Err != nil {
		t.Errorf("events %+v: want failure, failure, recovery", events)
	}
}

func TestMetricsInfoIsTheCallersMap(t *testing.T) {
	in := &infoAdder{}
	fl := newFlaky(in, 1)
	clock := newFakeClock()
	w := wrapWithClock(fl, clock, Options{})
	ctx := context.Background()
	info1 := map[string]any{}
	w.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "a", Points: make([]observer.MetricPoint, 1)}}, Info: info1})
	if len(info1) != 0 {
		t.Fatalf("info of a failed call changed: %v", info1)
	}
	clock.advance(time.Hour)
	info2 := map[string]any{}
	w.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "b", Points: make([]observer.MetricPoint, 1)}}, Info: info2})
	if got := info2["metrics"]; !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("the caller's info has metrics %v, want the store's key [a b] for the kept and the new points", got)
	}
}

// infoAdder adds the names it stored to the info dict, as the Mongo
// observer adds "metrics".
type infoAdder struct{ observer.Base }

func (infoAdder) Name() string { return "info adder" }
func (infoAdder) LogMetrics(_ context.Context, ev *observer.MetricsEvent) error {
	var names []string
	for _, s := range ev.Metrics {
		names = append(names, s.Name)
	}
	ev.Info["metrics"] = names
	return nil
}

func TestKeptDataIsACopy(t *testing.T) {
	rec := &recorder{}
	fl := newFlaky(rec, 1)
	clock := newFakeClock()
	w := wrapWithClock(fl, clock, Options{})
	ctx := context.Background()
	pts := []observer.MetricPoint{{Step: 1}}
	info := map[string]any{"k": "before", "list": []any{1}}
	meta := map[string]any{"m": "before"}
	w.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "a", Points: pts}}})
	b := observertest.NewBeats()
	w.Heartbeat(ctx, b.Next(clock.now(), info))
	w.Artifact(ctx, &observer.ArtifactEvent{Name: "x", Path: "/nonexistent", Metadata: meta})
	// The caller reuses what it owns.
	pts[0].Step = 99
	info["k"] = "after"
	info["list"].([]any)[0] = 2
	meta["m"] = "after"
	if w.metrics[0].Points[0].Step != 1 || w.beat.Info["k"] != "before" || w.beat.Info["list"].([]any)[0] != 1 || w.files[0].artifact.Metadata["m"] != "before" {
		t.Errorf("kept data changed with the caller's: points %v, info %v, metadata %v", w.metrics, w.beat.Info, w.files[0].artifact.Metadata)
	}
}

// TestPendingRaceFree reads Pending from another goroutine while calls
// fail and recover; run with -race.
// TestPendingRaceFree reads Pending from another goroutine while the
// decorator works (the race detector checks the reads), and checks in the
// caller's goroutine that Pending tells the points a down store did not
// take.
func TestPendingRaceFree(t *testing.T) {
	fl := newFlaky(&recorder{}, 0)
	clock := newFakeClock()
	w := wrapWithClock(fl, clock, Options{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = w.Pending().String()
		}
	}()
	ctx := context.Background()
	b := observertest.NewBeats()
	sawPending := false
	for i := range 200 {
		down := i%50 < 25
		fl.setDown(down, "log_metrics", "heartbeat", "resource")
		w.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "m", Points: make([]observer.MetricPoint, 2)}}})
		if p := w.Pending(); down && p.Points == 0 {
			t.Fatalf("beat %d: the store is down but Pending says no point waits", i)
		} else if p.Points > 0 {
			sawPending = true
		}
		b.Out.Append([]byte("x"))
		w.Heartbeat(ctx, b.Next(clock.now(), map[string]any{"i": i}))
		w.Resource(ctx, &observer.ResourceEvent{Path: fmt.Sprint(i)})
		clock.advance(time.Second)
	}
	close(stop)
	wg.Wait()
	if !sawPending {
		t.Error("Pending never told a waiting point")
	}
}

func TestPendingString(t *testing.T) {
	for _, c := range []struct {
		p    Pending
		want string
	}{
		{Pending{}, "nothing"},
		{Pending{Points: 120, OutputBytes: 3_200_000, Files: 2, Beat: true, Final: true}, "120 metric points, 3.2 MB of output, 2 artifacts or resources, the final status"},
		{Pending{Points: 1, Files: 1}, "1 metric point, 1 artifact or resource"},
		{Pending{Beat: true}, "the last heartbeat"},
		{Pending{OutputBytes: 1, Beat: true}, "1 byte of output"},
		{Pending{OutputBytes: 999}, "999 bytes of output"},
		{Pending{OutputBytes: 1000}, "1.0 kB of output"},
		{Pending{OutputBytes: 999_999}, "1.0 MB of output"},
		{Pending{OutputBytes: 5_500_000_000}, "5.5 GB of output"},
		{Pending{Final: true}, "the final status"},
	} {
		if got := c.p.String(); got != c.want {
			t.Errorf("%+v.String() = %q, want %q", c.p, got, c.want)
		}
		if c.p.Empty() != (c.want == "nothing") {
			t.Errorf("%+v.Empty() = %v", c.p, c.p.Empty())
		}
	}
}

func TestPassThrough(t *testing.T) {
	fl := newFlaky(&recorder{}, 0)
	w := Wrap(fl, Options{})
	if w.Name() != "recorder" || w.Priority() != 0 || w.Unwrap() != observer.Observer(fl) {
		t.Errorf("name %q priority %d unwrap %v", w.Name(), w.Priority(), w.Unwrap())
	}
	id, err := w.Started(context.Background(), &observer.StartEvent{ID: "42"})
	if err != nil || id != "42" {
		t.Errorf("Started = %q, %v", id, err)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// partStore stores at most part bytes of a beat's output per call and
// fails on the rest, saying how far it got (*observer.OutputStored), as
// an object store that sends a long range in parts does when the call's
// deadline passes.
type partStore struct {
	*recorder
	part int64
}

func (p *partStore) Heartbeat(ctx context.Context, ev *observer.HeartbeatEvent) error {
	if ev.To-ev.From <= p.part {
		return p.recorder.Heartbeat(ctx, ev)
	}
	hb := *ev
	hb.To = ev.From + p.part
	if err := p.recorder.Heartbeat(ctx, &hb); err != nil {
		return err
	}
	return &observer.OutputStored{Stored: hb.To, Err: fmt.Errorf("output bytes %d to %d not stored: %w", hb.To, ev.To, context.DeadlineExceeded)}
}

// TestPartlyStoredBeatGoesOnFromThere: a beat that stored part of its
// output before failing is sent again from where it stopped, and the
// final flush goes on while each round stores more (here ten rounds, more
// than the rounds that may store nothing), so the whole output is stored
// before the final status.
func TestPartlyStoredBeatGoesOnFromThere(t *testing.T) {
	rec := &recorder{}
	clock := newFakeClock()
	w := wrapWithClock(&partStore{recorder: rec, part: 100}, clock, Options{})
	ctx := context.Background()
	b := observertest.NewBeats()
	b.Out.Append(bytes.Repeat([]byte("0123456789"), 100))
	w.Heartbeat(ctx, b.Next(clock.now(), nil))
	if p := w.Pending(); p.OutputBytes != 900 {
		t.Fatalf("pending after the first beat: %+v, want the 900 bytes not stored", p)
	}
	if err := w.Completed(ctx, &observer.CompletedEvent{}); err != nil {
		t.Fatalf("Completed: %v", err)
	}
	if !bytes.Equal(rec.output, b.Out.Bytes()) {
		t.Errorf("stored %d bytes of output, want the %d of the run", len(rec.output), b.Out.Size())
	}
	if want := []int64{0, 100, 200, 300, 400, 500, 600, 700, 800, 900}; !slices.Equal(rec.froms, want) {
		t.Errorf("beats from %v, want %v", rec.froms, want)
	}
	if len(rec.problems) > 0 {
		t.Errorf("the store saw %v", rec.problems)
	}
	if rec.status != observer.StatusCompleted {
		t.Errorf("status %q", rec.status)
	}
}
