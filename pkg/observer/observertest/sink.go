package observertest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Sink is what an observer with no reader hands to the suite.
type Sink struct {
	// Value is the value the observer is configured with (a URL, a
	// token, a path), as a user gives it. Every secret must occur in it.
	Value string
	// Secrets are the passwords and tokens in Value: they must appear in
	// no error, no Name() and (through RunKind) no warning.
	Secrets []string
	// New returns a new observer of the sink under test, for one run.
	New func(t *testing.T) observer.Observer
	// Break, when set, makes the sink fail from now on (its server
	// answers 500, refuses connections, ...); the suite then checks that
	// calls return errors, free of secrets, rather than panic or hang.
	Break func(t *testing.T)
	// Stall, when set, makes the sink's destination hang (accept a
	// request and never answer) until resume is called; the suite then
	// checks that every call still returns by its context's deadline.
	// Without it those checks only catch an observer that is always slow.
	Stall func(t *testing.T) (resume func())
}

// Timing of the deadline checks: calls get shortDeadline, and may return
// up to grace after it (a loaded machine schedules late, but a call that
// ignores its context hangs for as long as its destination does).
const (
	shortDeadline = 200 * time.Millisecond
	grace         = 3 * time.Second
)

// RunSink runs the sink tier against s: the contract checks, a whole run
// of each ending, and, with Break, the errors of a broken sink.
func RunSink(t *testing.T, s Sink) {
	if s.New == nil {
		t.Fatal("observertest: Sink.New is required")
	}
	if s.Value != "" {
		checkSecretsInValue(t, s.Value, s.Secrets)
	}
	runContract(t, contract{New: s.New, Secrets: s.Secrets, Stall: s.Stall})
	t.Run("Lifecycle", func(t *testing.T) { testSinkLifecycle(t, s) })
	t.Run("Errors", func(t *testing.T) { testSinkErrors(t, s) })
}

// contract is what every observer must do, store or sink.
type contract struct {
	New     func(t *testing.T) observer.Observer
	Secrets []string
	Stall   func(t *testing.T) (resume func())
}

func runContract(t *testing.T, c contract) {
	t.Run("Name", func(t *testing.T) {
		o := c.New(t)
		name := o.Name()
		if name == "" {
			t.Error("Name() is empty")
		}
		checkText(t, "Name()", name, c.Secrets)
		closeObserver(t, o)
	})
	t.Run("GivenID", func(t *testing.T) {
		o := c.New(t)
		ev := StartEvent()
		ev.ID = givenID()
		start(t, o, ev)
		completeRun(t, o, ev.Time.Add(time.Second))
		closeObserver(t, o)

		o = c.New(t)
		ev = StartEvent()
		ev.Host = nil
		ev.ID = givenID()
		qt := ev.Time
		ev.Meta.QueueTime = &qt
		var id string
		must(t, "Queued", func(ctx context.Context) (err error) { id, err = o.Queued(ctx, ev); return err })
		if id != ev.ID {
			t.Errorf("Queued was given id %q but returned %q", ev.ID, id)
		}
		closeObserver(t, o)
	})
	// Each way of running out of time gets a whole run, each with
	// another ending, so that every call is checked.
	t.Run("ShortDeadline", func(t *testing.T) {
		testDeadlines(t, c, "Completed", func() (context.Context, func(), time.Duration) {
			ctx, cancel := context.WithTimeout(context.Background(), shortDeadline)
			return ctx, cancel, shortDeadline + grace
		})
	})
	t.Run("Cancelled", func(t *testing.T) {
		testDeadlines(t, c, "Failed", func() (context.Context, func(), time.Duration) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel, grace
		})
	})
	t.Run("CancelledDuring", func(t *testing.T) {
		testDeadlines(t, c, "Interrupted", func() (context.Context, func(), time.Duration) {
			ctx, cancel := context.WithCancel(context.Background())
			stop := time.AfterFunc(shortDeadline, cancel)
			return ctx, func() { stop.Stop(); cancel() }, shortDeadline + grace
		})
	})
}

// givenID is an id as -i 5 would give: digits only, far above what a
// store picks, and within a 32-bit integer column.
func givenID() string {
	return strconv.FormatInt(1_000_000_000+rand.Int64N(1_000_000_000), 10)
}

// step is one call of a run. check, when set, runs on the test's
// goroutine after the call returned nil.
type step struct {
	what  string
	f     func(ctx context.Context, o observer.Observer) error
	check func(t *testing.T)
}

// runSteps is a whole run ending with ending ("Completed", "Failed",
// "Interrupted" or "Timeout"), each call a step; the observer is not
// closed.
func runSteps(t *testing.T, ending string) []step {
	ev := StartEvent()
	ev.ID = givenID()
	t0 := ev.Time
	b := NewBeats()
	art := tempFile(t, "artifact", []byte("weights: 0.1 0.2\n"))
	res := tempFile(t, "input.csv", []byte("a,b\n1,2\n"))
	info := map[string]any{"epoch": 1}
	var id string
	steps := []step{
		{"Started", func(ctx context.Context, o observer.Observer) (err error) {
			id, err = o.Started(ctx, ev)
			return err
		}, func(t *testing.T) {
			if id != ev.ID {
				t.Errorf("Started was given id %q but returned %q", ev.ID, id)
			}
		}},
		{"LogMetrics", func(ctx context.Context, o observer.Observer) error {
			return o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: points(t0, 0, 1, 0.5)}}, Info: observer.CloneMap(info)})
		}, nil},
		{"Heartbeat", func(ctx context.Context, o observer.Observer) error {
			b.Out.Append([]byte("epoch 1\n"))
			return o.Heartbeat(ctx, b.Next(t0.Add(time.Second), info))
		}, nil},
		{"Resource", func(ctx context.Context, o observer.Observer) error {
			return o.Resource(ctx, &observer.ResourceEvent{Path: res, MD5: md5sum([]byte("a,b\n1,2\n"))})
		}, nil},
		{"Artifact", func(ctx context.Context, o observer.Observer) error {
			return o.Artifact(ctx, &observer.ArtifactEvent{Name: "model.txt", Path: art, OrigPath: "/home/user/exp/model.txt"})
		}, nil},
		{"final Heartbeat", func(ctx context.Context, o observer.Observer) error {
			b.Out.Append([]byte("done\n"))
			hb := b.Next(t0.Add(2*time.Second), info)
			hb.Final = true
			return o.Heartbeat(ctx, hb)
		}, nil},
	}
	stop := t0.Add(3 * time.Second)
	switch ending {
	case "Completed":
		steps = append(steps, step{ending, func(ctx context.Context, o observer.Observer) error {
			return o.Completed(ctx, &observer.CompletedEvent{StopTime: stop, Result: 0.93, HasResult: true})
		}, nil})
	case "Failed":
		steps = append(steps, step{ending, func(ctx context.Context, o observer.Observer) error {
			return o.Failed(ctx, &observer.FailedEvent{StopTime: stop, Trace: []string{"exit status 1\n", "ValueError: boom\n"}})
		}, nil})
	case "Interrupted", "Timeout":
		status := observer.StatusInterrupted
		if ending == "Timeout" {
			status = observer.StatusTimeout
		}
		steps = append(steps, step{ending, func(ctx context.Context, o observer.Observer) error {
			return o.Interrupted(ctx, &observer.InterruptedEvent{StopTime: stop, Status: status})
		}, nil})
	default:
		panic("observertest: unknown ending " + ending)
	}
	return steps
}

// testDeadlines makes a queued run and a whole run, every call with a
// context from newCtx, and fails when a call has not returned within the
// limit newCtx gives. With Stall the destination hangs meanwhile.
func testDeadlines(t *testing.T, c contract, ending string, newCtx func() (context.Context, func(), time.Duration)) {
	if c.Stall != nil {
		resume := c.Stall(t)
		defer resume()
	}
	byDeadline := func(o observer.Observer, what string, f func(ctx context.Context, o observer.Observer) error) error {
		t.Helper()
		ctx, cancel, limit := newCtx()
		defer cancel()
		err := callWithin(t, what, limit, func() error { return f(ctx, o) })
		checkErr(t, what, err, c.Secrets)
		if err != nil {
			t.Logf("%s: %v", what, hide(err.Error(), c.Secrets))
		}
		return err
	}
	o := c.New(t)
	for _, s := range runSteps(t, ending) {
		if byDeadline(o, s.what, s.f) == nil && s.check != nil {
			s.check(t)
		}
	}
	byDeadline(o, "Close", func(ctx context.Context, o observer.Observer) error { return o.Close(ctx) })

	o = c.New(t)
	ev := StartEvent()
	ev.Host = nil
	ev.ID = givenID()
	byDeadline(o, "Queued", func(ctx context.Context, o observer.Observer) error {
		_, err := o.Queued(ctx, ev)
		return err
	})
	byDeadline(o, "Close after Queued", func(ctx context.Context, o observer.Observer) error { return o.Close(ctx) })
}

// callWithin runs f and fails the test when it has not returned within
// limit. It turns a panic into an error.
func callWithin(t *testing.T, what string, limit time.Duration, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("%s panicked: %v\n%s", what, r, debug.Stack())
			}
		}()
		done <- f()
	}()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		t.Fatalf("%s did not return within %v of its context's deadline or cancellation: every call must honour its context", what, grace)
		return nil
	}
}

func testSinkLifecycle(t *testing.T, s Sink) {
	for _, ending := range []string{"Completed", "Failed", "Interrupted", "Timeout"} {
		t.Run(ending, func(t *testing.T) {
			o := s.New(t)
			for _, st := range runSteps(t, ending) {
				must(t, st.what, func(ctx context.Context) error { return st.f(ctx, o) })
				if st.check != nil {
					st.check(t)
				}
			}
			closeObserver(t, o)
		})
	}
	t.Run("Large", func(t *testing.T) {
		// Many beats, a large output and a binary artifact, as a long
		// run gives them.
		o := s.New(t)
		ev := StartEvent()
		ev.ID = givenID()
		start(t, o, ev)
		b := NewBeats()
		at := ev.Time
		for i, c := range deltaChunks() {
			b.Out.Append(c)
			at = at.Add(time.Millisecond)
			must(t, fmt.Sprintf("LogMetrics %d", i), func(ctx context.Context) error {
				return o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: points(at, int64(i), 1/float64(i+1))}}, Info: map[string]any{}})
			})
			hb := b.Next(at, map[string]any{"i": i})
			must(t, fmt.Sprintf("Heartbeat %d", i), func(ctx context.Context) error { return o.Heartbeat(ctx, hb) })
		}
		p := tempFile(t, "blob.bin", append(bytes.Repeat([]byte{0, 0xff, 0x80}, 100_000), '\n'))
		must(t, "Artifact blob.bin", func(ctx context.Context) error {
			return o.Artifact(ctx, &observer.ArtifactEvent{Name: "blob.bin", Path: p, OrigPath: p, ContentType: "application/octet-stream", Metadata: map[string]any{"k": 1}})
		})
		completeRun(t, o, at.Add(time.Millisecond))
		closeObserver(t, o)
	})
}

func testSinkErrors(t *testing.T, s Sink) {
	if s.Break == nil {
		t.Skip("the sink has no Break")
	}
	o := s.New(t)
	steps := runSteps(t, "Completed")
	must(t, "Started before the break", func(ctx context.Context) error { return steps[0].f(ctx, o) })
	s.Break(t)
	failures := 0
	for _, st := range steps[1:] {
		err := call(t, st.what+" after the break", func(ctx context.Context) error { return st.f(ctx, o) })
		checkErr(t, st.what+" after the break", err, s.Secrets)
		if err != nil {
			failures++
			t.Logf("%s after the break: %s", st.what, hide(err.Error(), s.Secrets))
		}
	}
	err := call(t, "Close after the break", func(ctx context.Context) error { return o.Close(ctx) })
	checkErr(t, "Close after the break", err, s.Secrets)
	checkText(t, "Name() after the break", o.Name(), s.Secrets)
	if failures == 0 {
		t.Error("no call returned an error after the sink broke")
	}
}
