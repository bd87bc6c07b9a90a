package observertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// RunResume checks a store's observer.Resumer: a run started by one
// observer, which then goes away without ending it (a wrapper killed, a
// journal replayed later), is continued by a fresh observer from the same
// store, and reads back as one run, exactly:
//
//   - output byte for byte, including when the first beat after Resume
//     starts where the last beat before it started (its acknowledgement
//     was lost, so the range comes again), and across the lengths at which
//     stores move the output out of the record (more than 1 MiB);
//   - every metric point once, in order, in series continued and new;
//   - info and result of the last beat, artifacts and resources of both
//     observers in order, the final status, stop time and fail trace;
//   - Resume then Failed alone (what `sacred reap` does) keeps the
//     record's output, metrics and result as the first observer left them;
//   - Resume of a run the store does not have is an error wrapping
//     observer.ErrNotFound.
func RunResume(t *testing.T, s Store) {
	if s.New == nil || s.Reader == nil {
		t.Fatal("observertest: Store.New and Store.Reader are required")
	}
	t.Run("Continue", func(t *testing.T) { testResumeContinue(t, s, 1) })
	t.Run("ContinueLongOutput", func(t *testing.T) { testResumeContinue(t, s, 700<<10) })
	t.Run("FailOnly", func(t *testing.T) { testResumeFail(t, s) })
	t.Run("Missing", func(t *testing.T) { testResumeMissing(t, s) })
}

// resumer finds the Resumer of a fresh observer of s.
func resumer(t *testing.T, s Store) (observer.Observer, observer.Resumer) {
	t.Helper()
	o := s.New(t)
	r, ok := observer.As[observer.Resumer](o)
	if !ok {
		closeObserver(t, o)
		t.Fatalf("%s does not implement observer.Resumer", o.Name())
	}
	return o, r
}

func resume(t *testing.T, r observer.Resumer, ev *observer.StartEvent, id string) {
	t.Helper()
	again := *ev
	again.ID = id
	must(t, "Resume("+id+")", func(ctx context.Context) error { return r.Resume(ctx, &again) })
}

// lines returns about n bytes of numbered lines, so that a byte out of
// place shows.
func lines(tag string, n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%s line %06d ✓\n", tag, i)
	}
	return b.Bytes()
}

func testResumeContinue(t *testing.T, s Store, chunk int) {
	ev := StartEvent()
	t0 := ev.Time
	b := NewBeats()
	loss1 := points(t0.Add(100*time.Millisecond), 0, 1.0, 0.5)
	loss2 := points(t0.Add(1100*time.Millisecond), 2, 0.25)
	loss3 := points(t0.Add(2100*time.Millisecond), 3, 0.125, 0.0625)
	acc := points(t0.Add(2200*time.Millisecond), 0, 0.75)
	info := map[string]any{"epoch": 1}
	res := tempFile(t, "data.csv", []byte("a,b\n1,2\n"))

	// The first observer: two beats, an artifact and a resource, then it
	// goes away without an end.
	a := s.New(t)
	id := start(t, a, ev)
	b.Out.Append(lines("first", chunk))
	must(t, "LogMetrics 1", func(ctx context.Context) error {
		return a.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: loss1}}, Info: info})
	})
	must(t, "Heartbeat 1", func(ctx context.Context) error { return a.Heartbeat(ctx, b.Next(t0.Add(time.Second), info)) })
	must(t, "Artifact 1", func(ctx context.Context) error {
		return a.Artifact(ctx, &observer.ArtifactEvent{Name: "first.txt", Path: tempFile(t, "first.txt", []byte("one\n"))})
	})
	must(t, "Resource", func(ctx context.Context) error {
		return a.Resource(ctx, &observer.ResourceEvent{Path: res, MD5: md5sum([]byte("a,b\n1,2\n"))})
	})
	b.Out.Append(lines("second", chunk))
	lastFrom := b.last
	must(t, "LogMetrics 2", func(ctx context.Context) error {
		return a.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: loss2}}, Info: info})
	})
	hb := b.Next(t0.Add(2*time.Second), info)
	hb.Result, hb.HasResult = 0.5, true
	must(t, "Heartbeat 2", func(ctx context.Context) error { return a.Heartbeat(ctx, hb) })
	closeObserver(t, a)

	// A fresh observer takes the run up. Its first beat starts where the
	// first observer's last beat started: that beat's acknowledgement was
	// lost, so the range comes again, with more after it.
	o, r := resumer(t, s)
	resume(t, r, ev, id)
	info2 := map[string]any{"epoch": 2, "phase": "resumed"}
	b.Out.Append(lines("third", chunk))
	must(t, "LogMetrics 3", func(ctx context.Context) error {
		return o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{
			{Name: "loss", Points: loss3}, {Name: "acc", Points: acc},
		}, Info: info2})
	})
	b.last = lastFrom
	hb = b.Next(t0.Add(3*time.Second), info2)
	hb.Result, hb.HasResult = 0.25, true
	must(t, "Heartbeat 3", func(ctx context.Context) error { return o.Heartbeat(ctx, hb) })
	must(t, "Artifact 2", func(ctx context.Context) error {
		return o.Artifact(ctx, &observer.ArtifactEvent{Name: "second.txt", Path: tempFile(t, "second.txt", []byte("two\n"))})
	})
	b.Out.Append([]byte("the end\n"))
	final := b.Next(t0.Add(4*time.Second), info2)
	final.Result, final.HasResult, final.Final = 0.25, true, true
	must(t, "final Heartbeat", func(ctx context.Context) error { return o.Heartbeat(ctx, final) })
	stop := t0.Add(5 * time.Second)
	trace := []string{"exit status 3\n", "Traceback: it went wrong\n"}
	must(t, "Failed", func(ctx context.Context) error {
		return o.Failed(ctx, &observer.FailedEvent{StopTime: stop, Trace: trace})
	})
	closeObserver(t, o)

	run := readRun(t, s, id)
	if run.Status != observer.StatusFailed {
		t.Errorf("status = %q, want %q", run.Status, observer.StatusFailed)
	}
	checkTime(t, "start time", run.StartTime, t0)
	checkTime(t, "heartbeat", run.Heartbeat, t0.Add(4*time.Second))
	checkTime(t, "stop time", run.StopTime, stop)
	checkEqual(t, "fail trace", joinTrace(run.FailTrace), joinTrace(trace))
	checkEqual(t, "config", run.Config, ev.Config)
	for k, v := range info2 {
		checkEqual(t, "info["+k+"]", run.Info[k], v)
	}
	checkEqual(t, "result", run.Result, 0.25)
	checkOutput(t, s, run.Output, b.Out.Bytes())
	if !s.NoMetrics {
		checkSeries(t, run.Metrics, "loss", slices.Concat(loss1, loss2, loss3))
		checkSeries(t, run.Metrics, "acc", acc)
	}
	if !slices.Equal(run.Artifacts, []string{"first.txt", "second.txt"}) {
		t.Errorf("artifacts = %q, want [first.txt second.txt]", run.Artifacts)
	}
	if len(run.Resources) != 1 || run.Resources[0].Path != res {
		t.Errorf("resources = %+v, want one: %s", run.Resources, res)
	}
}

// joinTrace compares fail traces as text: a store may keep the lines
// joined.
func joinTrace(lines []string) string {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l)
		if len(l) == 0 || l[len(l)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func testResumeFail(t *testing.T, s Store) {
	ev := StartEvent()
	t0 := ev.Time
	b := NewBeats()
	loss := points(t0.Add(100*time.Millisecond), 0, 1.0, 0.5)
	a := s.New(t)
	id := start(t, a, ev)
	b.Out.Append([]byte("working\nstill working\n"))
	must(t, "LogMetrics", func(ctx context.Context) error {
		return a.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: loss}}, Info: map[string]any{"k": "v"}})
	})
	hb := b.Next(t0.Add(time.Second), map[string]any{"k": "v"})
	hb.Result, hb.HasResult = 0.5, true
	must(t, "Heartbeat", func(ctx context.Context) error { return a.Heartbeat(ctx, hb) })
	closeObserver(t, a)

	o, r := resumer(t, s)
	resume(t, r, ev, id)
	stop := t0.Add(time.Hour)
	trace := []string{"sacred reap: the wrapper of this run was killed\n"}
	must(t, "Failed", func(ctx context.Context) error {
		return o.Failed(ctx, &observer.FailedEvent{StopTime: stop, Trace: trace})
	})
	closeObserver(t, o)

	run := readRun(t, s, id)
	if run.Status != observer.StatusFailed {
		t.Errorf("status = %q, want %q", run.Status, observer.StatusFailed)
	}
	checkTime(t, "heartbeat", run.Heartbeat, t0.Add(time.Second))
	checkTime(t, "stop time", run.StopTime, stop)
	checkEqual(t, "fail trace", joinTrace(run.FailTrace), joinTrace(trace))
	checkEqual(t, "result", run.Result, 0.5)
	checkEqual(t, "info[k]", run.Info["k"], "v")
	checkOutput(t, s, run.Output, b.Out.Bytes())
	if !s.NoMetrics {
		checkSeries(t, run.Metrics, "loss", loss)
	}
}

func testResumeMissing(t *testing.T, s Store) {
	o, r := resumer(t, s)
	defer closeObserver(t, o)
	ev := StartEvent()
	ev.ID = fmt.Sprintf("no-such-run-%d", time.Now().UnixNano()%1e9)
	err := call(t, "Resume of a missing run", func(ctx context.Context) error { return r.Resume(ctx, ev) })
	if !errors.Is(err, observer.ErrNotFound) {
		t.Errorf("Resume(%q) = %v, want an error wrapping observer.ErrNotFound", ev.ID, err)
	}
	checkText(t, "the error of Resume", fmt.Sprint(err), s.Secrets)
}
