package observertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Store is what an observer package hands to the suite.
type Store struct {
	// New returns a new observer writing into the one store under test.
	New func(t *testing.T) observer.Observer
	// Reader returns a reader over the same store.
	Reader func(t *testing.T) observer.Reader
	// Break, when set, makes the store fail from now on (e.g. close the
	// server, chmod a dir); the suite then checks that events return
	// errors instead of panicking or hanging, and that nothing already
	// written is corrupted. Reader is still called after Break: it should
	// read what was kept (the file store's follows the moved directory),
	// or return a reader whose calls fail, and then that check is skipped.
	Break func(t *testing.T)
	// NoMetrics / NoOutput: set when the store cannot keep metrics or
	// output.
	NoMetrics, NoOutput bool
	// Secrets are the passwords and tokens of the store's configuration:
	// Name() and the errors after Break must not contain them.
	Secrets []string
}

// callTimeout bounds every call into the store: a call that takes longer
// counts as hanging.
const callTimeout = 2 * time.Minute

// Run runs the whole suite against s. Failure runs last, since it breaks
// the store.
func Run(t *testing.T, s Store) {
	if s.New == nil || s.Reader == nil {
		t.Fatal("observertest: Store.New and Store.Reader are required")
	}
	s.Secrets = slices.DeleteFunc(slices.Clone(s.Secrets), func(x string) bool { return x == "" })
	t.Run("Lifecycle", func(t *testing.T) { testLifecycle(t, s) })
	t.Run("IDs", func(t *testing.T) { testIDs(t, s) })
	t.Run("HeartbeatDeltas", func(t *testing.T) { testHeartbeatDeltas(t, s) })
	t.Run("Failed", func(t *testing.T) { testFailed(t, s) })
	t.Run("Interrupted", func(t *testing.T) { testInterrupted(t, s, observer.StatusInterrupted) })
	t.Run("Timeout", func(t *testing.T) { testInterrupted(t, s, observer.StatusTimeout) })
	t.Run("Queued", func(t *testing.T) { testQueued(t, s) })
	t.Run("Artifacts", func(t *testing.T) { testArtifacts(t, s) })
	t.Run("Resources", func(t *testing.T) { testResources(t, s) })
	t.Run("Concurrency", func(t *testing.T) { testConcurrency(t, s) })
	t.Run("Failure", func(t *testing.T) { testFailure(t, s) })
}

// call runs f with a deadline and turns a panic into an error.
func call(t *testing.T, what string, f func(ctx context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("%s panicked: %v\n%s", what, r, debug.Stack())
			}
		}()
		done <- f(ctx)
	}()
	timer := time.NewTimer(callTimeout + 10*time.Second)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		t.Fatalf("%s did not return within %v", what, callTimeout)
		return nil
	}
}

// must calls f and fails the test on an error.
func must(t *testing.T, what string, f func(ctx context.Context) error) {
	t.Helper()
	if err := call(t, what, f); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func start(t *testing.T, o observer.Observer, ev *observer.StartEvent) string {
	t.Helper()
	var id string
	must(t, "Started", func(ctx context.Context) (err error) {
		id, err = o.Started(ctx, ev)
		return err
	})
	if id == "" {
		t.Fatal("Started returned an empty id")
	}
	if ev.ID != "" && id != ev.ID {
		t.Fatalf("Started was given id %q but returned %q", ev.ID, id)
	}
	return id
}

func closeObserver(t *testing.T, o observer.Observer) {
	t.Helper()
	must(t, "Close", func(ctx context.Context) error { return o.Close(ctx) })
}

// readRun opens a reader and fetches one run.
func readRun(t *testing.T, s Store, id string) *observer.Run {
	t.Helper()
	r := s.Reader(t)
	defer r.Close()
	var run *observer.Run
	must(t, "Reader.Run("+id+")", func(ctx context.Context) (err error) {
		run, err = r.Run(ctx, id)
		return err
	})
	if run == nil {
		t.Fatalf("Reader.Run(%q) returned nil", id)
	}
	if run.ID != id {
		t.Errorf("run.ID = %q, want %q", run.ID, id)
	}
	return run
}

func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if got.IsZero() {
		t.Errorf("%s is not set, want %v", what, want)
		return
	}
	if got.Location() != time.UTC {
		t.Errorf("%s = %v is not in UTC", what, got)
	}
	if d := got.Sub(want); d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func checkEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if !Equal(got, want) {
		t.Errorf("%s differs:\n got: %#v\nwant: %#v", what, Normalize(got), Normalize(want))
	}
}

// checkOutput compares output read back with what was sent.
func checkOutput(t *testing.T, s Store, got, want []byte) {
	t.Helper()
	if s.NoOutput || bytes.Equal(got, want) {
		return
	}
	if bytes.Equal(got, []byte(strings.ToValidUTF8(string(want), "\uFFFD"))) ||
		bytes.Equal(got, []byte(string([]rune(string(want))))) {
		t.Logf("output came back as text: invalid UTF-8 bytes were replaced by U+FFFD")
		return
	}
	t.Errorf("output differs:\n got %d bytes: %q\nwant %d bytes: %q", len(got), clip(got), len(want), clip(want))
}

func clip(b []byte) []byte {
	if len(b) > 400 {
		return append(append([]byte{}, b[:200]...), append([]byte(" … "), b[len(b)-200:]...)...)
	}
	return b
}

func points(base time.Time, step0 int64, values ...float64) []observer.MetricPoint {
	out := make([]observer.MetricPoint, len(values))
	for i, v := range values {
		out[i] = observer.MetricPoint{Step: step0 + int64(i), Value: v, Time: base.Add(time.Duration(i) * time.Millisecond)}
	}
	return out
}

func testLifecycle(t *testing.T, s Store) {
	o := s.New(t)
	if o.Name() == "" {
		t.Error("Name() is empty")
	}
	checkText(t, "Name()", o.Name(), s.Secrets)
	ev := StartEvent()
	t0 := ev.Time
	id := start(t, o, ev)

	b := NewBeats()
	info1 := map[string]any{"foo": "bar"}
	info2 := map[string]any{"foo": "bar", "epoch": 2, "nested": map[string]any{"best": 0.5, "tags": []any{"a", "b"}}}
	loss := points(t0.Add(100*time.Millisecond), 0, 1.0, 0.5, 0.333333)
	loss2 := points(t0.Add(1100*time.Millisecond), 3, 0.25, 1e-05)
	acc := points(t0.Add(1200*time.Millisecond), 10, 0.75)

	b.Out.Append([]byte("INFO - train - Started run\nepoch 1 ✓\n"))
	must(t, "LogMetrics 1", func(ctx context.Context) error {
		return o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: loss}}, Info: info1})
	})
	must(t, "Heartbeat 1", func(ctx context.Context) error { return o.Heartbeat(ctx, b.Next(t0.Add(time.Second), info1)) })

	b.Out.Append([]byte("progress  50%\rprogress 100%\n\x1b[1mbold\x1b[0m\n"))
	must(t, "LogMetrics 2", func(ctx context.Context) error {
		return o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{
			{Name: "loss", Points: loss2}, {Name: "acc", Points: acc},
		}, Info: info2})
	})
	hb := b.Next(t0.Add(2*time.Second), info2)
	hb.Result, hb.HasResult = 0.5, true
	must(t, "Heartbeat 2", func(ctx context.Context) error { return o.Heartbeat(ctx, hb) })

	b.Out.Append([]byte("INFO - train - Result: 0.93\n"))
	must(t, "LogMetrics 3", func(ctx context.Context) error {
		return o.LogMetrics(ctx, &observer.MetricsEvent{Info: info2})
	})
	final := b.Next(t0.Add(3*time.Second), info2)
	final.Result, final.HasResult, final.Final = 0.5, true, true
	must(t, "final Heartbeat", func(ctx context.Context) error { return o.Heartbeat(ctx, final) })
	stop := t0.Add(4 * time.Second)
	must(t, "Completed", func(ctx context.Context) error {
		return o.Completed(ctx, &observer.CompletedEvent{StopTime: stop, Result: 0.93, HasResult: true})
	})
	closeObserver(t, o)

	run := readRun(t, s, id)
	if run.Status != observer.StatusCompleted {
		t.Errorf("status = %q, want %q", run.Status, observer.StatusCompleted)
	}
	checkTime(t, "start time", run.StartTime, t0)
	checkTime(t, "heartbeat", run.Heartbeat, t0.Add(3*time.Second))
	checkTime(t, "stop time", run.StopTime, stop)
	if run.StopTime.Before(run.StartTime) || run.Heartbeat.Before(run.StartTime) {
		t.Errorf("times out of order: start %v, heartbeat %v, stop %v", run.StartTime, run.Heartbeat, run.StopTime)
	}
	if !run.QueueTime.IsZero() {
		t.Errorf("a started run has queue time %v", run.QueueTime)
	}
	checkEqual(t, "config", run.Config, ev.Config)
	for k, v := range info2 {
		checkEqual(t, "info["+k+"]", run.Info[k], v)
	}
	if !run.HasResult {
		t.Error("the result is missing")
	}
	checkEqual(t, "result", run.Result, 0.93)
	checkOutput(t, s, run.Output, b.Out.Bytes())
	if run.Command != ev.Command {
		t.Errorf("command = %q, want %q", run.Command, ev.Command)
	}
	if run.Experiment.Name != ev.Experiment.Name {
		t.Errorf("experiment name = %q, want %q", run.Experiment.Name, ev.Experiment.Name)
	}
	if run.Host == nil || run.Host.Hostname != ev.Host.Hostname {
		t.Errorf("host = %+v, want hostname %q", run.Host, ev.Host.Hostname)
	}
	if run.Meta.Command != ev.Meta.Command {
		t.Errorf("meta command = %q, want %q", run.Meta.Command, ev.Meta.Command)
	}
	if !s.NoMetrics {
		checkSeries(t, run.Metrics, "loss", append(loss, loss2...))
		checkSeries(t, run.Metrics, "acc", acc)
	}
	r := s.Reader(t)
	defer r.Close()
	var ids []string
	must(t, "Reader.Runs", func(ctx context.Context) (err error) { ids, err = r.Runs(ctx); return err })
	if !slices.Contains(ids, id) {
		t.Errorf("Reader.Runs() = %v does not list %q", ids, id)
	}
	must(t, "Reader.Run of a missing run", func(ctx context.Context) error {
		_, err := r.Run(ctx, "no-such-run-"+strconv.Itoa(rand.IntN(1e9)))
		if !errors.Is(err, observer.ErrNotFound) {
			return fmt.Errorf("got %v, want an error wrapping observer.ErrNotFound", err)
		}
		return nil
	})
}

func checkSeries(t *testing.T, got []observer.MetricSeries, name string, want []observer.MetricPoint) {
	t.Helper()
	i := slices.IndexFunc(got, func(s observer.MetricSeries) bool { return s.Name == name })
	if i < 0 {
		t.Errorf("metric %q is missing (have %d series)", name, len(got))
		return
	}
	pts := got[i].Points
	if len(pts) != len(want) {
		t.Errorf("metric %q has %d points, want %d", name, len(pts), len(want))
		return
	}
	for j, p := range pts {
		if p.Step != want[j].Step || !Equal(p.Value, want[j].Value) {
			t.Errorf("metric %q point %d = (step %d, %v), want (step %d, %v)", name, j, p.Step, p.Value, want[j].Step, want[j].Value)
		}
		checkTime(t, fmt.Sprintf("metric %q point %d time", name, j), p.Time, want[j].Time)
	}
}

func completeRun(t *testing.T, o observer.Observer, at time.Time) {
	t.Helper()
	must(t, "Completed", func(ctx context.Context) error {
		return o.Completed(ctx, &observer.CompletedEvent{StopTime: at, Result: nil, HasResult: true})
	})
}

func testIDs(t *testing.T, s Store) {
	seen := map[string]bool{}
	for i := range 3 {
		o := s.New(t)
		ev := StartEvent()
		id := start(t, o, ev)
		if seen[id] {
			t.Errorf("observer %d got id %q again", i, id)
		}
		seen[id] = true
		completeRun(t, o, ev.Time.Add(time.Second))
		closeObserver(t, o)
	}

	// A given id is used as it is. Digits only, as -i 5 would give, but
	// far above what a store picks.
	given := strconv.FormatInt(1_000_000_000+rand.Int64N(1_000_000_000), 10)
	o := s.New(t)
	ev := StartEvent()
	ev.ID = given
	start(t, o, ev)
	completeRun(t, o, ev.Time.Add(time.Second))
	closeObserver(t, o)
	if run := readRun(t, s, given); run.Status != observer.StatusCompleted {
		t.Errorf("run %s: status %q, want %q", given, run.Status, observer.StatusCompleted)
	}

	// The same id again is taken.
	o = s.New(t)
	ev = StartEvent()
	ev.ID = given
	err := call(t, "Started with a taken id", func(ctx context.Context) error {
		_, err := o.Started(ctx, ev)
		return err
	})
	if !errors.Is(err, observer.ErrIDTaken) {
		t.Errorf("Started with the taken id %q: got %v, want an error wrapping observer.ErrIDTaken", given, err)
	}
	closeObserver(t, o)
	// The first run with that id is intact.
	if run := readRun(t, s, given); run.Status != observer.StatusCompleted {
		t.Errorf("run %s after the clash: status %q, want %q", given, run.Status, observer.StatusCompleted)
	}
}

// deltaChunks is output as a child may write it: invalid UTF-8, a
// multi-byte character split over beats, carriage returns, ANSI codes,
// empty beats and a large chunk.
func deltaChunks() [][]byte {
	chunks := [][]byte{
		[]byte("start\n"),
		{},
		[]byte("progress 10%\r"),
		[]byte("progress 20%\r"),
		[]byte("\xff\xfe raw bytes \x00 nul\n"),
		{0xc3}, {0xa9}, // é split in two beats
		{0xf0, 0x9f}, {0x98}, {0x80}, // 😀 split in three beats
		[]byte("\r\n\x1b[31mred\x1b[0m\b\b\n"),
		{},
		bytes.Repeat([]byte("0123456789abcdef"), 8192), // 128 KiB
		[]byte("\n"),
	}
	for i := range 40 {
		chunks = append(chunks, []byte(fmt.Sprintf("line %d\r", i)))
	}
	return append(chunks, []byte("end without newline"))
}

func testHeartbeatDeltas(t *testing.T, s Store) {
	if s.NoOutput {
		t.Skip("the store keeps no output")
	}
	o := s.New(t)
	ev := StartEvent()
	id := start(t, o, ev)
	b := NewBeats()
	at := ev.Time
	for i, c := range deltaChunks() {
		b.Out.Append(c)
		at = at.Add(time.Millisecond)
		hb := b.Next(at, nil)
		must(t, fmt.Sprintf("Heartbeat %d", i), func(ctx context.Context) error { return o.Heartbeat(ctx, hb) })
	}
	completeRun(t, o, at.Add(time.Millisecond))
	closeObserver(t, o)
	checkOutput(t, s, readRun(t, s, id).Output, b.Out.Bytes())
}

func testFailed(t *testing.T, s Store) {
	o := s.New(t)
	ev := StartEvent()
	id := start(t, o, ev)
	b := NewBeats()
	b.Out.Append([]byte("about to fail\n"))
	must(t, "Heartbeat", func(ctx context.Context) error { return o.Heartbeat(ctx, b.Next(ev.Time.Add(time.Second), nil)) })
	// Output written just before the failure reaches the final beat.
	b.Out.Append([]byte("Traceback (most recent call last):\nValueError: boom\n"))
	final := b.Next(ev.Time.Add(2*time.Second), nil)
	final.Final = true
	must(t, "final Heartbeat", func(ctx context.Context) error { return o.Heartbeat(ctx, final) })
	trace := []string{
		"exit status 1\n",
		"Traceback (most recent call last):\n",
		"  File \"/home/user/exp/train.py\", line 42, in main\n    raise ValueError(\"boom ✗\")\n",
		"ValueError: boom ✗\n",
	}
	stop := ev.Time.Add(3 * time.Second)
	must(t, "Failed", func(ctx context.Context) error {
		return o.Failed(ctx, &observer.FailedEvent{StopTime: stop, Trace: trace})
	})
	closeObserver(t, o)
	run := readRun(t, s, id)
	if run.Status != observer.StatusFailed {
		t.Errorf("status = %q, want %q", run.Status, observer.StatusFailed)
	}
	if !slices.Equal(run.FailTrace, trace) {
		t.Errorf("fail trace = %q, want %q", run.FailTrace, trace)
	}
	checkTime(t, "stop time", run.StopTime, stop)
	checkOutput(t, s, run.Output, b.Out.Bytes())
}

func testInterrupted(t *testing.T, s Store, status string) {
	o := s.New(t)
	ev := StartEvent()
	id := start(t, o, ev)
	b := NewBeats()
	b.Out.Append([]byte("working\n^C"))
	final := b.Next(ev.Time.Add(time.Second), map[string]any{"k": "v"})
	final.Final = true
	must(t, "final Heartbeat", func(ctx context.Context) error { return o.Heartbeat(ctx, final) })
	stop := ev.Time.Add(2 * time.Second)
	must(t, "Interrupted", func(ctx context.Context) error {
		return o.Interrupted(ctx, &observer.InterruptedEvent{StopTime: stop, Status: status})
	})
	closeObserver(t, o)
	run := readRun(t, s, id)
	if run.Status != status {
		t.Errorf("status = %q, want %q", run.Status, status)
	}
	checkTime(t, "stop time", run.StopTime, stop)
	if len(run.FailTrace) != 0 {
		t.Errorf("an interrupted run has a fail trace %q", run.FailTrace)
	}
	checkOutput(t, s, run.Output, b.Out.Bytes())
}

func testQueued(t *testing.T, s Store) {
	o := s.New(t)
	ev := StartEvent()
	ev.Host = nil
	qt := ev.Time
	ev.Meta.QueueTime = &qt
	var id string
	must(t, "Queued", func(ctx context.Context) (err error) { id, err = o.Queued(ctx, ev); return err })
	if id == "" {
		t.Fatal("Queued returned an empty id")
	}
	closeObserver(t, o)
	run := readRun(t, s, id)
	if run.Status != observer.StatusQueued {
		t.Errorf("status = %q, want %q", run.Status, observer.StatusQueued)
	}
	if !run.StartTime.IsZero() {
		t.Errorf("a queued run has start time %v", run.StartTime)
	}
	if !run.StopTime.IsZero() {
		t.Errorf("a queued run has stop time %v", run.StopTime)
	}
	checkTime(t, "queue time", run.QueueTime, qt)
	checkEqual(t, "config", run.Config, ev.Config)
}

// tempFile writes content to a new file in t's temp dir.
func tempFile(t *testing.T, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func testArtifacts(t *testing.T, s Store) {
	o := s.New(t)
	ev := StartEvent()
	id := start(t, o, ev)
	arts := []struct {
		name    string
		content []byte
	}{
		{"model.txt", []byte("weights: 0.1 0.2\n")},
		{"plots/loss.csv", []byte("step,loss\n0,1.0\n1,0.5\n")},
		{"blob.bin", append(bytes.Repeat([]byte{0, 0xff, 0x80}, 100_000), '\n')},
	}
	for _, a := range arts {
		p := tempFile(t, "artifact", a.content)
		must(t, "Artifact "+a.name, func(ctx context.Context) error {
			return o.Artifact(ctx, &observer.ArtifactEvent{Name: a.name, Path: p, OrigPath: "/home/user/exp/" + a.name})
		})
	}
	completeRun(t, o, ev.Time.Add(time.Second))
	closeObserver(t, o)

	run := readRun(t, s, id)
	var want []string
	for _, a := range arts {
		want = append(want, a.name)
	}
	if !slices.Equal(run.Artifacts, want) {
		t.Errorf("artifacts = %q, want %q", run.Artifacts, want)
	}
	r := s.Reader(t)
	defer r.Close()
	for _, a := range arts {
		var got []byte
		must(t, "Reader.Artifact "+a.name, func(ctx context.Context) error {
			rc, err := r.Artifact(ctx, id, a.name)
			if err != nil {
				return err
			}
			defer rc.Close()
			got, err = io.ReadAll(rc)
			return err
		})
		if !bytes.Equal(got, a.content) {
			t.Errorf("artifact %s: got %d bytes, want %d", a.name, len(got), len(a.content))
		}
	}
	must(t, "Reader.Artifact of a missing name", func(ctx context.Context) error {
		rc, err := r.Artifact(ctx, id, "never-stored.txt")
		if err == nil {
			rc.Close()
		}
		if !errors.Is(err, observer.ErrNotFound) {
			return fmt.Errorf("got %v, want an error wrapping observer.ErrNotFound", err)
		}
		return nil
	})
}

func testResources(t *testing.T, s Store) {
	o := s.New(t)
	ev := StartEvent()
	id := start(t, o, ev)
	var want []observer.ResourceEvent
	for i, content := range []string{"a,b\n1,2\n", "vocabulary\n", "a,b\n1,2\n"} {
		p := tempFile(t, fmt.Sprintf("input%d.csv", i), []byte(content))
		sum := md5sum([]byte(content))
		res := observer.ResourceEvent{Path: p, MD5: sum}
		must(t, "Resource "+p, func(ctx context.Context) error { return o.Resource(ctx, &res) })
		want = append(want, res)
	}
	completeRun(t, o, ev.Time.Add(time.Second))
	closeObserver(t, o)
	run := readRun(t, s, id)
	if len(run.Resources) != len(want) {
		t.Fatalf("resources = %+v, want %+v", run.Resources, want)
	}
	for i, r := range run.Resources {
		if r.Path != want[i].Path {
			t.Errorf("resource %d path = %q, want %q", i, r.Path, want[i].Path)
		}
		if r.MD5 != "" && r.MD5 != want[i].MD5 {
			t.Errorf("resource %d md5 = %q, want %q", i, r.MD5, want[i].MD5)
		}
	}
}

func testConcurrency(t *testing.T, s Store) {
	const n = 20
	obs := make([]observer.Observer, n)
	for i := range obs {
		obs[i] = s.New(t)
	}
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, o := range obs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = func() (err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
					}
				}()
				ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
				defer cancel()
				ev := StartEvent()
				if ids[i], err = o.Started(ctx, ev); err != nil {
					return fmt.Errorf("started: %w", err)
				}
				b := NewBeats()
				b.Out.Append([]byte(fmt.Sprintf("run %d\n", i)))
				if err := o.Heartbeat(ctx, b.Next(ev.Time.Add(time.Second), nil)); err != nil {
					return fmt.Errorf("heartbeat: %w", err)
				}
				if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time.Add(2 * time.Second), Result: i, HasResult: true}); err != nil {
					return fmt.Errorf("completed: %w", err)
				}
				return o.Close(ctx)
			}()
		}()
	}
	wg.Wait()
	seen := map[string]int{}
	for i, err := range errs {
		if err != nil {
			t.Errorf("observer %d: %v", i, err)
			continue
		}
		if j, dup := seen[ids[i]]; dup {
			t.Errorf("observers %d and %d both got id %q", j, i, ids[i])
		}
		seen[ids[i]] = i
	}
	if t.Failed() {
		return
	}
	for i, id := range ids {
		run := readRun(t, s, id)
		if run.Status != observer.StatusCompleted {
			t.Errorf("run %s: status %q, want %q", id, run.Status, observer.StatusCompleted)
		}
		checkEqual(t, "run "+id+" result", run.Result, i)
		checkOutput(t, s, run.Output, []byte(fmt.Sprintf("run %d\n", i)))
	}
}

func testFailure(t *testing.T, s Store) {
	if s.Break == nil {
		t.Skip("the store has no Break")
	}
	o := s.New(t)
	ev := StartEvent()
	id := start(t, o, ev)
	b := NewBeats()
	b.Out.Append([]byte("before the break\n"))
	must(t, "Heartbeat before the break", func(ctx context.Context) error {
		return o.Heartbeat(ctx, b.Next(ev.Time.Add(time.Second), map[string]any{"k": 1}))
	})
	before := b.Out.Bytes()

	s.Break(t)

	failures := 0
	count := func(what string, err error) {
		checkErr(t, what+" after the break", err, s.Secrets)
		if err != nil {
			failures++
			t.Logf("%s after the break: %s", what, hide(err.Error(), s.Secrets))
		}
	}
	b.Out.Append([]byte("after the break\n"))
	count("LogMetrics", call(t, "LogMetrics after the break", func(ctx context.Context) error {
		return o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: points(ev.Time, 0, 1)}}})
	}))
	count("Heartbeat", call(t, "Heartbeat after the break", func(ctx context.Context) error {
		return o.Heartbeat(ctx, b.Next(ev.Time.Add(2*time.Second), map[string]any{"k": 2}))
	}))
	p := tempFile(t, "artifact", []byte("x"))
	count("Artifact", call(t, "Artifact after the break", func(ctx context.Context) error {
		return o.Artifact(ctx, &observer.ArtifactEvent{Name: "late.txt", Path: p})
	}))
	count("Completed", call(t, "Completed after the break", func(ctx context.Context) error {
		return o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time.Add(3 * time.Second), HasResult: true, Result: 1})
	}))
	checkErr(t, "Close after the break", call(t, "Close after the break", func(ctx context.Context) error { return o.Close(ctx) }), s.Secrets)
	checkText(t, "Name() after the break", o.Name(), s.Secrets)
	if failures == 0 {
		t.Error("no event returned an error after the store broke")
	}

	// What was written before the break must still read back intact, if
	// the store can be read at all.
	r := s.Reader(t)
	defer r.Close()
	var run *observer.Run
	err := call(t, "Reader.Run after the break", func(ctx context.Context) (err error) {
		run, err = r.Run(ctx, id)
		return err
	})
	if err != nil {
		t.Logf("the broken store cannot be read (%v); not checking what it kept", err)
		return
	}
	switch run.Status {
	case observer.StatusRunning, observer.StatusCompleted:
	default:
		t.Errorf("status after the break = %q, want RUNNING or COMPLETED", run.Status)
	}
	checkEqual(t, "config after the break", run.Config, ev.Config)
	if !s.NoOutput && !bytes.HasPrefix(run.Output, before) && !bytes.HasPrefix(run.Output, []byte(strings.ToValidUTF8(string(before), "\uFFFD"))) {
		t.Errorf("output after the break = %q, want it to start with %q", clip(run.Output), before)
	}
}
