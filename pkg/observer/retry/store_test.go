package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// errDown is what the test stores fail with.
var errDown = errors.New("store is down")

// recorder is an in-memory store that keeps exactly what it accepted. It
// trusts From as the contract says, and notes a From that does not match
// the end of what it stored, which would duplicate or lose output.
type recorder struct {
	observer.Base
	mu        sync.Mutex
	id        string
	metrics   []observer.MetricSeries
	output    []byte
	artifacts []string // "name=content"
	resources []string
	info      map[string]any
	result    any
	status    string
	froms     []int64 // From of every accepted beat
	problems  []string
}

func (s *recorder) Name() string { return "recorder" }

// OutputFile makes the recorder an observer.OutputFileOwner, to be found
// through the decorator.
func (s *recorder) OutputFile() (*os.File, error) { return nil, nil }

func (s *recorder) Started(_ context.Context, ev *observer.StartEvent) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.id = ev.ID
	if s.id == "" {
		s.id = "1"
	}
	s.status = observer.StatusRunning
	return s.id, nil
}

func (s *recorder) LogMetrics(_ context.Context, ev *observer.MetricsEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range ev.Metrics {
		i := 0
		for i < len(s.metrics) && s.metrics[i].Name != m.Name {
			i++
		}
		if i == len(s.metrics) {
			s.metrics = append(s.metrics, observer.MetricSeries{Name: m.Name})
		}
		s.metrics[i].Points = append(s.metrics[i].Points, m.Points...)
	}
	return nil
}

func (s *recorder) Heartbeat(_ context.Context, ev *observer.HeartbeatEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ev.From != int64(len(s.output)) {
		s.problems = append(s.problems, fmt.Sprintf("heartbeat From %d, but the stored output ends at %d", ev.From, len(s.output)))
	}
	b, err := io.ReadAll(ev.NewOutput())
	if err != nil {
		return err
	}
	s.output = append(s.output[:min(ev.From, int64(len(s.output)))], b...)
	s.froms = append(s.froms, ev.From)
	s.info = observer.CloneMap(ev.Info)
	s.result = ev.Result
	return nil
}

func (s *recorder) Artifact(_ context.Context, ev *observer.ArtifactEvent) error {
	b, err := os.ReadFile(ev.Path)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.artifacts = append(s.artifacts, ev.Name+"="+string(b))
	return nil
}

func (s *recorder) Resource(_ context.Context, ev *observer.ResourceEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resources = append(s.resources, ev.Path)
	return nil
}

func (s *recorder) end(status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
	return nil
}

func (s *recorder) Completed(context.Context, *observer.CompletedEvent) error {
	return s.end(observer.StatusCompleted)
}

func (s *recorder) Interrupted(_ context.Context, ev *observer.InterruptedEvent) error {
	return s.end(ev.Status)
}

func (s *recorder) Failed(context.Context, *observer.FailedEvent) error {
	return s.end(observer.StatusFailed)
}

// flaky fails calls before they reach the observer it wraps: the first
// failFirst calls of every kind that the decorator retries, and every call
// of a kind while down[kind] is set. It counts the calls that reached it.
type flaky struct {
	observer.Observer
	failFirst int

	mu    sync.Mutex
	calls map[string]int // calls made, by kind
	down  map[string]bool
	hang  map[string]bool // calls of this kind block until their ctx is done
}

func newFlaky(inner observer.Observer, failFirst int) *flaky {
	return &flaky{Observer: inner, failFirst: failFirst, calls: map[string]int{}, down: map[string]bool{}, hang: map[string]bool{}}
}

// Unwrap lets observer.As look through the test wrapper too.
func (f *flaky) Unwrap() observer.Observer { return f.Observer }

// setDown makes every call of the kinds fail (or succeed again).
func (f *flaky) setDown(down bool, kinds ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range kinds {
		f.down[k] = down
	}
}

func (f *flaky) setHang(hang bool, kinds ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range kinds {
		f.hang[k] = hang
	}
}

func (f *flaky) count(kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[kind]
}

func (f *flaky) gate(ctx context.Context, kind string) error {
	f.mu.Lock()
	f.calls[kind]++
	n, down, hang := f.calls[kind], f.down[kind], f.hang[kind]
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return fmt.Errorf("%s: %w", kind, ctx.Err())
	}
	if n <= f.failFirst || down {
		return fmt.Errorf("%s call %d: %w", kind, n, errDown)
	}
	return nil
}

func (f *flaky) LogMetrics(ctx context.Context, ev *observer.MetricsEvent) error {
	if err := f.gate(ctx, "log_metrics"); err != nil {
		return err
	}
	return f.Observer.LogMetrics(ctx, ev)
}

func (f *flaky) Heartbeat(ctx context.Context, ev *observer.HeartbeatEvent) error {
	if err := f.gate(ctx, "heartbeat"); err != nil {
		return err
	}
	return f.Observer.Heartbeat(ctx, ev)
}

func (f *flaky) Artifact(ctx context.Context, ev *observer.ArtifactEvent) error {
	if err := f.gate(ctx, "artifact"); err != nil {
		return err
	}
	return f.Observer.Artifact(ctx, ev)
}

func (f *flaky) Resource(ctx context.Context, ev *observer.ResourceEvent) error {
	if err := f.gate(ctx, "resource"); err != nil {
		return err
	}
	return f.Observer.Resource(ctx, ev)
}

func (f *flaky) Completed(ctx context.Context, ev *observer.CompletedEvent) error {
	if err := f.gate(ctx, "final"); err != nil {
		return err
	}
	return f.Observer.Completed(ctx, ev)
}

func (f *flaky) Interrupted(ctx context.Context, ev *observer.InterruptedEvent) error {
	if err := f.gate(ctx, "final"); err != nil {
		return err
	}
	return f.Observer.Interrupted(ctx, ev)
}

func (f *flaky) Failed(ctx context.Context, ev *observer.FailedEvent) error {
	if err := f.gate(ctx, "final"); err != nil {
		return err
	}
	return f.Observer.Failed(ctx, ev)
}

// fakeClock is the decorator's clock in tests: time moves only when the
// test advances it or the final flush sleeps.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	c.sleeps = append(c.sleeps, d)
	return nil
}

// wrapWithClock wraps o with the fake clock and no jitter.
func wrapWithClock(o observer.Observer, c *fakeClock, opt Options) *Observer {
	opt.now = c.now
	opt.sleep = c.sleep
	opt.jitter = func(d time.Duration) time.Duration { return d }
	return Wrap(o, opt)
}
