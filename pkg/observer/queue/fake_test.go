package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/sacred-go/sacred/pkg/observer"
)

// fakeDB is an in-memory store shared by fake observers, so that tests can
// play a store that goes down, comes back, refuses an event, and see what
// it recorded across observers and processes.
type fakeDB struct {
	mu     sync.Mutex
	runs   map[string]*fakeRun
	order  []string
	nextID int
	down   bool                 // every call fails as unreachable
	refuse func(op string) bool // the store refuses this op (not unreachable)
	calls  []string
	opens  int
	// downAfter: the store goes down after this many successful calls
	// (0: never).
	downAfter int
	ok        int
	resumable bool
	// onDown is called when downAfter takes the store down.
	onDown func()
}

type fakeRun struct {
	id        string
	status    string
	start     observer.StartEvent
	sources   map[string][]byte // by name: content read at Started
	metrics   map[string][]observer.MetricPoint
	names     []string
	output    []byte
	info      map[string]any
	beats     int
	artifacts []string
	files     map[string][]byte
	resources []string
	final     any
}

func newFakeDB() *fakeDB { return &fakeDB{runs: map[string]*fakeRun{}} }

var errDown = fmt.Errorf("dial tcp 127.0.0.1:1: %w", syscall.ECONNREFUSED)

// check fails a call as the store's state says, else counts it.
func (db *fakeDB) check(op string) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.calls = append(db.calls, op)
	if db.down {
		return errDown
	}
	if db.refuse != nil && db.refuse(op) {
		return errors.New("refused: " + op)
	}
	db.ok++
	if db.downAfter > 0 && db.ok >= db.downAfter {
		db.down = true
		db.downAfter = 0
		if db.onDown != nil {
			db.onDown()
		}
	}
	return nil
}

func (db *fakeDB) setDown(down bool) {
	db.mu.Lock()
	db.down = down
	db.mu.Unlock()
}

func (db *fakeDB) run(id string) *fakeRun {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.runs[id]
}

func (db *fakeDB) opener() Opener {
	return func(ctx context.Context) (observer.Observer, error) {
		db.mu.Lock()
		down := db.down
		db.opens++
		db.mu.Unlock()
		if down {
			return nil, errDown
		}
		if db.resumable {
			return &fakeResumer{fakeObs{db: db}}, nil
		}
		return &fakeObs{db: db}, nil
	}
}

type fakeObs struct {
	observer.Base
	db *fakeDB
	r  *fakeRun
}

type fakeResumer struct{ fakeObs }

func (o *fakeResumer) Resume(_ context.Context, ev *observer.StartEvent) error {
	if err := o.db.check("resume"); err != nil {
		return err
	}
	o.r = o.db.run(ev.ID)
	if o.r == nil {
		return errors.New("no run " + ev.ID)
	}
	return nil
}

func (o *fakeObs) Name() string { return "fake" }

func (o *fakeObs) start(ev *observer.StartEvent, status string) (string, error) {
	if err := o.db.check("started"); err != nil {
		return "", err
	}
	db := o.db
	db.mu.Lock()
	defer db.mu.Unlock()
	id := ev.ID
	if id == "" {
		db.nextID++
		id = fmt.Sprint(db.nextID)
	}
	if _, ok := db.runs[id]; ok {
		return "", fmt.Errorf("fake: run %s: %w", id, observer.ErrIDTaken)
	}
	r := &fakeRun{id: id, status: status, start: *ev, sources: map[string][]byte{}, metrics: map[string][]observer.MetricPoint{}, files: map[string][]byte{}}
	for _, s := range ev.Experiment.Sources {
		if s.Omitted {
			continue
		}
		b, err := os.ReadFile(s.Path)
		if err != nil {
			return "", err
		}
		r.sources[s.Name] = b
	}
	db.runs[id] = r
	db.order = append(db.order, id)
	o.r = r
	return id, nil
}

func (o *fakeObs) Started(_ context.Context, ev *observer.StartEvent) (string, error) {
	return o.start(ev, observer.StatusRunning)
}

func (o *fakeObs) Queued(_ context.Context, ev *observer.StartEvent) (string, error) {
	return o.start(ev, observer.StatusQueued)
}

func (o *fakeObs) LogMetrics(_ context.Context, ev *observer.MetricsEvent) error {
	if err := o.db.check("log_metrics"); err != nil {
		return err
	}
	o.db.mu.Lock()
	defer o.db.mu.Unlock()
	for _, s := range ev.Metrics {
		if _, ok := o.r.metrics[s.Name]; !ok {
			o.r.names = append(o.r.names, s.Name)
		}
		o.r.metrics[s.Name] = append(o.r.metrics[s.Name], s.Points...)
	}
	ev.Info["fake_metrics"] = int64(len(o.r.names))
	return nil
}

func (o *fakeObs) Heartbeat(_ context.Context, ev *observer.HeartbeatEvent) error {
	if err := o.db.check("heartbeat"); err != nil {
		return err
	}
	o.db.mu.Lock()
	defer o.db.mu.Unlock()
	if ev.From != int64(len(o.r.output)) {
		return fmt.Errorf("fake: heartbeat From %d, but %d bytes are stored", ev.From, len(o.r.output))
	}
	b := make([]byte, ev.To-ev.From)
	if _, err := ev.Output.ReadAt(b, ev.From); err != nil && !(errors.Is(err, io.EOF) && len(b) == 0) {
		return err
	}
	o.r.output = append(o.r.output, b...)
	o.r.info = observer.CloneMap(ev.Info)
	o.r.beats++
	return nil
}

func (o *fakeObs) Artifact(_ context.Context, ev *observer.ArtifactEvent) error {
	if err := o.db.check("artifact " + ev.Name); err != nil {
		return err
	}
	b, err := os.ReadFile(ev.Path)
	if err != nil {
		return err
	}
	o.db.mu.Lock()
	defer o.db.mu.Unlock()
	o.r.artifacts = append(o.r.artifacts, ev.Name)
	o.r.files[ev.Name] = b
	return nil
}

func (o *fakeObs) Resource(_ context.Context, ev *observer.ResourceEvent) error {
	if err := o.db.check("resource " + ev.Path); err != nil {
		return err
	}
	o.db.mu.Lock()
	defer o.db.mu.Unlock()
	o.r.resources = append(o.r.resources, ev.Path)
	return nil
}

func (o *fakeObs) end(op, status string, ev any) error {
	if err := o.db.check(op); err != nil {
		return err
	}
	o.db.mu.Lock()
	defer o.db.mu.Unlock()
	o.r.status, o.r.final = status, ev
	return nil
}

func (o *fakeObs) Completed(_ context.Context, ev *observer.CompletedEvent) error {
	return o.end("completed", observer.StatusCompleted, ev)
}

func (o *fakeObs) Interrupted(_ context.Context, ev *observer.InterruptedEvent) error {
	return o.end("interrupted", ev.Status, ev)
}

func (o *fakeObs) Failed(_ context.Context, ev *observer.FailedEvent) error {
	return o.end("failed", observer.StatusFailed, ev)
}
