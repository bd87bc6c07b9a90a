package runner

// Regression tests of the runner's contract items of the hardening issue
// (8), run in process with observers that play slow, stuck or
// info-changing stores.

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sacred-go/sacred/internal/capture"
	"github.com/sacred-go/sacred/pkg/observer"
)

// testRun is an in-process run of argv with the given observers; its
// stderr is kept in a file.
type testRun struct {
	cfg    Config
	stderr *os.File
}

func newTestRun(t *testing.T, argv []string, obs ...observer.Observer) *testRun {
	t.Helper()
	// A short TMPDIR: the child API's socket path must fit in sun_path.
	tmp, err := os.MkdirTemp("", "rt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	t.Setenv("TMPDIR", tmp)
	dir := t.TempDir()
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdout.Close(); stderr.Close() })
	return &testRun{stderr: stderr, cfg: Config{
		Argv:         argv,
		Observers:    obs,
		Start:        &observer.StartEvent{Meta: observer.Meta{Cwd: dir}},
		Capture:      capture.ModePipe,
		KillAfter:    time.Second,
		StartTimeout: 10 * time.Second,
		FlushTimeout: 10 * time.Second,
		Stdout:       stdout,
		Stderr:       stderr,
		Env:          os.Environ(),
	}}
}

func (tr *testRun) messages(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(tr.stderr.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// callTracker notes calls that overlap (the contract forbids them, Close
// included).
type callTracker struct {
	in      atomic.Int32
	overlap atomic.Bool
	closed  atomic.Bool
}

func (c *callTracker) enter() func() {
	if c.in.Add(1) > 1 {
		c.overlap.Store(true)
	}
	return func() { c.in.Add(-1) }
}

// stuckObserver's Completed blocks until release is closed; it honours its
// context only when polite.
type stuckObserver struct {
	observer.Base
	callTracker
	polite  bool
	release chan struct{}
}

func (s *stuckObserver) Name() string { return "stuck" }
func (s *stuckObserver) Completed(ctx context.Context, _ *observer.CompletedEvent) error {
	defer s.enter()()
	if s.polite {
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	<-s.release
	return nil
}
func (s *stuckObserver) Close(context.Context) error {
	defer s.enter()()
	s.closed.Store(true)
	return nil
}

// An observer that misses the flush deadline is never closed while it is
// still inside a call; one that returns when its context ends is closed
// after it returned.
func TestHardening28CloseNeverDuringACall(t *testing.T) {
	for _, polite := range []bool{false, true} {
		s := &stuckObserver{polite: polite, release: make(chan struct{})}
		tr := newTestRun(t, []string{"true"}, s)
		tr.cfg.FlushTimeout = 100 * time.Millisecond
		code := Run(tr.cfg)
		if code != 0 {
			t.Errorf("polite=%v: exit %d, want the child's 0", polite, code)
		}
		if s.overlap.Load() {
			t.Errorf("polite=%v: Close ran while Completed was still running", polite)
		}
		if s.closed.Load() != polite {
			t.Errorf("polite=%v: closed=%v", polite, s.closed.Load())
		}
		msgs := tr.messages(t)
		if !strings.Contains(msgs, "stays RUNNING there") {
			t.Errorf("polite=%v: the messages do not say the run stays RUNNING:\n%s", polite, msgs)
		}
		if !polite && !strings.Contains(msgs, "not closed") {
			t.Errorf("the messages do not say the stuck observer was not closed:\n%s", msgs)
		}
		close(s.release)
	}
}

// The per-observer goroutines end on every path where the command never
// starts.
func TestHardening31NoDriverLeftOnAbort(t *testing.T) {
	tr := newTestRun(t, []string{"true"}, infoAdder{}, &infoKeeper{})
	tr.cfg.MetricPattern = "(" // refused after the observers' start
	if code := Run(tr.cfg); code != ExitUsage {
		t.Fatalf("exit %d, want %d", code, ExitUsage)
	}
	tr = newTestRun(t, []string{"true"}, infoAdder{})
	tr.cfg.Start.Config = map[string]any{"bad": func() {}} // cannot be encoded for the child
	if code := Run(tr.cfg); code != ExitSetupFailed {
		t.Fatalf("exit %d, want %d", code, ExitSetupFailed)
	}
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "(*driver).loop") {
		t.Fatalf("driver goroutines left after Run returned:\n%s", stacks)
	}
}

// infoAdder adds a key to its copy of the info dict at every LogMetrics,
// as Mongo's observer adds info.metrics.
type infoAdder struct{ observer.Base }

func (infoAdder) Name() string  { return "adder" }
func (infoAdder) Priority() int { return 0 }
func (infoAdder) LogMetrics(_ context.Context, ev *observer.MetricsEvent) error {
	ev.Info["metrics"] = []any{map[string]any{"name": "loss", "id": "x1"}}
	return nil
}

// infoKeeper keeps the info of its last heartbeat before the final event.
type infoKeeper struct {
	observer.Base
	mu    sync.Mutex
	beats int
	info  map[string]any
	final map[string]any
}

func (*infoKeeper) Name() string  { return "keeper" }
func (*infoKeeper) Priority() int { return 10 } // goes first, before the adder
func (k *infoKeeper) Heartbeat(_ context.Context, ev *observer.HeartbeatEvent) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.beats++
	k.info = observer.CloneMap(ev.Info)
	return nil
}
func (k *infoKeeper) Completed(context.Context, *observer.CompletedEvent) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.final = k.info
	return nil
}

// Keys an observer adds to info at the final beat reach the other
// observers' final records, also for a run shorter than one beat.
func TestHardening34InfoAddedAtTheFinalBeatReachesTheOthers(t *testing.T) {
	keeper := &infoKeeper{}
	tr := newTestRun(t, []string{"true"}, keeper, infoAdder{})
	if code := Run(tr.cfg); code != 0 {
		t.Fatalf("exit %d: %s", code, tr.messages(t))
	}
	if _, ok := keeper.final["metrics"]; !ok {
		t.Fatalf("the keeper's final info lacks the adder's key: %v (%d beats)", keeper.final, keeper.beats)
	}
	if keeper.beats != 2 {
		t.Errorf("%d beats, want the final beat and one info beat", keeper.beats)
	}
}

// pointCounter counts the points it is given and tells when it has want.
type pointCounter struct {
	observer.Base
	name string
	gate chan struct{} // when set, the first heartbeat waits for it
	in   chan struct{} // told when the first heartbeat is entered

	mu     sync.Mutex
	steps  []int64
	want   int
	gotAll chan struct{}
}

func (p *pointCounter) Name() string { return p.name }
func (p *pointCounter) LogMetrics(_ context.Context, ev *observer.MetricsEvent) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range ev.Metrics {
		for _, pt := range s.Points {
			p.steps = append(p.steps, pt.Step)
		}
	}
	if len(p.steps) >= p.want && p.gotAll != nil {
		close(p.gotAll)
		p.gotAll = nil
	}
	return nil
}
func (p *pointCounter) Heartbeat(context.Context, *observer.HeartbeatEvent) error {
	if p.gate != nil {
		close(p.in)
		<-p.gate
		p.gate = nil
	}
	return nil
}

// One slow observer holds back only itself: the others get every point at
// once, and the slow one's backlog goes to disk beyond memPoints and comes
// back in order when it catches up.
func TestHardening30SlowObserverHoldsBackOnlyItself(t *testing.T) {
	const per, beats = 50_000, 10
	slow := &pointCounter{name: "slow", gate: make(chan struct{}), in: make(chan struct{}), want: per * beats, gotAll: make(chan struct{})}
	fast := &pointCounter{name: "fast", want: per * beats, gotAll: make(chan struct{})}
	slowAll, fastAll := slow.gotAll, fast.gotAll
	fo := newFanout([]observer.Observer{slow, fast}, t.TempDir(), io.Discard, nil)
	out := &memOutput{}
	for i := 0; i < beats; i++ {
		pts := make([]observer.MetricPoint, per)
		for j := range pts {
			pts[j].Step = int64(i*per + j)
		}
		fo.beat([]observer.MetricSeries{{Name: "m", Points: pts}}, observer.HeartbeatEvent{Output: out})
		if i == 0 {
			<-slow.in // stuck in its first heartbeat from now on
		}
	}
	<-fastAll
	sd := fo.drivers[0]
	sd.metrics.mu.Lock()
	inMem, spilled := sd.metrics.nmem, sd.metrics.nfile
	sd.metrics.mu.Unlock()
	if inMem > memPoints || spilled == 0 || inMem+spilled != per*(beats-1) {
		t.Fatalf("slow observer's backlog: %d in memory, %d on disk; want at most %d in memory and %d in all", inMem, spilled, memPoints, per*(beats-1))
	}
	close(slow.gate)
	<-slowAll
	if late := finish(fo, time.Now().Add(time.Minute)); len(late) != 0 {
		t.Fatalf("late: %v", late)
	}
	for _, p := range []*pointCounter{slow, fast} {
		if len(p.steps) != per*beats {
			t.Fatalf("%s got %d points, want %d", p.name, len(p.steps), per*beats)
		}
		for i, s := range p.steps {
			if s != int64(i) {
				t.Fatalf("%s: point %d has step %d: order lost", p.name, i, s)
			}
		}
	}
}

// deadlineChecker notes every call made without a deadline, or with one
// further away than its bound.
type deadlineChecker struct {
	observer.Base
	bound map[string]time.Duration
	mu    sync.Mutex
	calls []string
	bad   []string
}

func (c *deadlineChecker) note(op string, ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, op)
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > c.bound[op] {
		c.bad = append(c.bad, op)
	}
}

func (c *deadlineChecker) Name() string { return "deadlines" }
func (c *deadlineChecker) Started(ctx context.Context, ev *observer.StartEvent) (string, error) {
	c.note("started", ctx)
	return "1", nil
}
func (c *deadlineChecker) LogMetrics(ctx context.Context, _ *observer.MetricsEvent) error {
	c.note("log_metrics", ctx)
	return nil
}
func (c *deadlineChecker) Heartbeat(ctx context.Context, _ *observer.HeartbeatEvent) error {
	c.note("heartbeat", ctx)
	return nil
}
func (c *deadlineChecker) Completed(ctx context.Context, _ *observer.CompletedEvent) error {
	c.note("completed", ctx)
	return nil
}
func (c *deadlineChecker) Close(ctx context.Context) error {
	c.note("close", ctx)
	return nil
}

// Every call to an observer is bounded: beats and metrics by the call
// timeout, the start by the start timeout, the end by the flush timeout,
// Close by its own bound. A store that stops answering cannot freeze its
// observer.
func TestHardening29EveryCallIsBounded(t *testing.T) {
	c := &deadlineChecker{bound: map[string]time.Duration{
		"started": 5 * time.Second, "log_metrics": 5 * time.Second, "heartbeat": 5 * time.Second,
		"completed": 30 * time.Second, "close": closeTimeout,
	}}
	tr := newTestRun(t, []string{"true"}, c)
	tr.cfg.CallTimeout = 5 * time.Second
	tr.cfg.StartTimeout = 5 * time.Second
	tr.cfg.FlushTimeout = 30 * time.Second
	if code := Run(tr.cfg); code != 0 {
		t.Fatalf("exit %d: %s", code, tr.messages(t))
	}
	want := "started log_metrics heartbeat completed close"
	if got := strings.Join(c.calls, " "); got != want {
		t.Fatalf("calls %q, want %q", got, want)
	}
	if len(c.bad) > 0 {
		t.Errorf("calls without a deadline within their bound: %v", c.bad)
	}
}
