package queue

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sacred-go/sacred/internal/testutil"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

func testOptions(t *testing.T, warn *testutil.SyncBuffer) Options {
	return Options{
		Dir: t.TempDir(), Option: "fake", Title: "Fake", Value: "db://h/x", Warn: warn,
		StartWait: 5 * time.Second, CallTimeout: 5 * time.Second,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxAttempts: 3,
	}
}

func target(db *fakeDB) Target {
	return Target{Option: "fake", Title: "Fake", Value: "db://h/x", Open: db.opener()}
}

// want is what a scripted run sent, to compare with what the store got.
type want struct {
	out      []byte
	points   map[string][]observer.MetricPoint
	names    []string
	artifact []byte
	source   []byte
	resource string
}

// script drives a whole run through o: a start with one source, beats
// with output and metrics (a NaN among them), an artifact, a resource,
// then Completed with finalTimeout. hook runs after each beat.
func script(t *testing.T, o observer.Observer, beats int, finalTimeout time.Duration, hook func(beat int)) (string, *want, error) {
	t.Helper()
	dir := t.TempDir()
	w := &want{points: map[string][]observer.MetricPoint{}, names: []string{"loss", "acc"}}
	w.source = []byte("print('hello')\n")
	src := filepath.Join(dir, "train.py")
	if err := os.WriteFile(src, w.source, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(w.source)
	ev := observertest.StartEvent()
	ev.Experiment.BaseDir = dir
	ev.Experiment.Sources = []observer.Source{{Name: "train.py", Path: src, MD5: hex.EncodeToString(sum[:]), Size: int64(len(w.source))}}
	ctx := context.Background()
	id, err := o.Started(ctx, ev)
	if err != nil {
		return "", nil, err
	}
	out := observertest.NewOutput()
	var from int64
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for i := 1; i <= beats; i++ {
		line := fmt.Sprintf("epoch %d\n\x00\xff binary\r", i)
		if i == 2 {
			line += strings.Repeat("x", chunkSize+10) // more than one output record
		}
		out.Append([]byte(line))
		at := base.Add(time.Duration(i) * time.Second)
		loss := observer.MetricPoint{Step: int64(i), Value: 1 / float64(i), Time: at}
		acc := observer.MetricPoint{Step: int64(i), Value: float64(i), Time: at}
		if i == 3 {
			acc.Value = math.NaN()
		}
		w.points["loss"] = append(w.points["loss"], loss)
		w.points["acc"] = append(w.points["acc"], acc)
		info := map[string]any{"epoch": int64(i), "big": int64(1) << 60}
		if err := o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: []observer.MetricPoint{loss}}, {Name: "acc", Points: []observer.MetricPoint{acc}}}, Info: observer.CloneMap(info)}); err != nil {
			t.Fatalf("LogMetrics: %v", err)
		}
		hb := &observer.HeartbeatEvent{Info: info, BeatTime: at, Output: out, From: from, To: out.Size(), Final: i == beats, Result: float64(i), HasResult: true}
		if err := o.Heartbeat(ctx, hb); err != nil {
			t.Fatalf("Heartbeat: %v", err)
		}
		from = out.Size()
		if i == 2 {
			w.artifact = []byte("weights\x00\x01")
			p := filepath.Join(dir, "model.bin")
			if err := os.WriteFile(p, w.artifact, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := o.Artifact(ctx, &observer.ArtifactEvent{Name: "model.bin", Path: p, OrigPath: p}); err != nil {
				t.Fatalf("Artifact: %v", err)
			}
			// The runner's private copy is gone by the time the store
			// may get it.
			os.Remove(p)
		}
		if i == 3 {
			w.resource = src
			if err := o.Resource(ctx, &observer.ResourceEvent{Path: src, MD5: ev.Experiment.Sources[0].MD5}); err != nil {
				t.Fatalf("Resource: %v", err)
			}
		}
		if hook != nil {
			hook(i)
		}
	}
	w.out = out.Bytes()
	fctx, cancel := context.WithTimeout(ctx, finalTimeout)
	defer cancel()
	err = o.Completed(fctx, &observer.CompletedEvent{StopTime: base.Add(time.Hour), Result: 0.5, HasResult: true})
	return id, w, err
}

// checkRun compares what the store recorded with what the script sent.
func checkRun(t *testing.T, db *fakeDB, id string, w *want) {
	t.Helper()
	r := db.run(id)
	if r == nil {
		t.Fatalf("no run %s in the store (runs %v)", id, db.order)
	}
	if r.status != observer.StatusCompleted {
		t.Errorf("status %s, want COMPLETED", r.status)
	}
	if !bytes.Equal(r.output, w.out) {
		t.Errorf("output: %d bytes, want %d (equal prefix: %v)", len(r.output), len(w.out), bytes.HasPrefix(w.out, r.output))
	}
	if strings.Join(r.names, ",") != strings.Join(w.names, ",") {
		t.Errorf("metric names %v, want %v", r.names, w.names)
	}
	for name, pts := range w.points {
		got := r.metrics[name]
		if len(got) != len(pts) {
			t.Errorf("metric %s: %d points, want %d", name, len(got), len(pts))
			continue
		}
		for i := range pts {
			g, x := got[i], pts[i]
			same := g.Value == x.Value || (math.IsNaN(g.Value) && math.IsNaN(x.Value))
			if g.Step != x.Step || !same || !g.Time.Equal(x.Time) {
				t.Errorf("metric %s point %d: %+v, want %+v", name, i, g, x)
			}
		}
	}
	if got := r.files["model.bin"]; !bytes.Equal(got, w.artifact) || len(r.artifacts) != 1 {
		t.Errorf("artifacts %v, content %q, want model.bin %q", r.artifacts, got, w.artifact)
	}
	if len(r.resources) != 1 || r.resources[0] != w.resource {
		t.Errorf("resources %v, want [%s]", r.resources, w.resource)
	}
	if got := r.sources["train.py"]; !bytes.Equal(got, w.source) {
		t.Errorf("source %q, want %q", got, w.source)
	}
	if r.info["epoch"] != int64(4) || r.info["big"] != int64(1)<<60 || r.info["fake_metrics"] != int64(2) {
		t.Errorf("info %v", r.info)
	}
	if c, ok := r.final.(*observer.CompletedEvent); !ok || c.Result != 0.5 {
		t.Errorf("final event %#v", r.final)
	}
}

func newQueue(t *testing.T, db *fakeDB, opt Options) *Observer {
	t.Helper()
	q, err := New(db.opener(), opt)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func closeQueue(t *testing.T, q *Observer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestDeliversEverythingInOrder(t *testing.T) {
	db := newFakeDB()
	warn := &testutil.SyncBuffer{}
	q := newQueue(t, db, testOptions(t, warn))
	id, w, err := script(t, q, 4, 10*time.Second, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if id != "1" {
		t.Errorf("id %q, want the store's 1", id)
	}
	closeQueue(t, q)
	checkRun(t, db, id, w)
	if _, err := os.Stat(q.Path()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("journal of a recorded run still there: %v", err)
	}
	if _, err := os.Stat(lockPath(q.Path())); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock file still there: %v", err)
	}
	if warn.String() != "" {
		t.Errorf("warnings: %s", warn)
	}
}

// A store down for the whole run: the run starts at once with the
// journal's id, the end says what is left and how to replay it, and a
// replay records the whole run once the store is back.
func TestStoreDownForTheWholeRunThenReplay(t *testing.T) {
	db := newFakeDB()
	db.down = true
	warn := &testutil.SyncBuffer{}
	opt := testOptions(t, warn)
	opt.StartWait = time.Hour // must not be waited out: the first attempt failed
	q := newQueue(t, db, opt)
	id, w, err := script(t, q, 4, 50*time.Millisecond, nil)
	if err == nil || !strings.Contains(err.Error(), "not yet recorded in Fake db://h/x") || !strings.Contains(err.Error(), q.Path()) {
		t.Fatalf("final error %v", err)
	}
	if id != strings.TrimSuffix(filepath.Base(q.Path()), Ext) {
		t.Errorf("id %q is not the journal's id (%s)", id, q.Path())
	}
	closeQueue(t, q)
	msg := warn.String()
	for _, s := range []string{"12 events of run " + id + " are not yet recorded in Fake db://h/x", "connection refused", "replay them with: sacred sync " + q.Path()} {
		if !strings.Contains(msg, s) {
			t.Errorf("warning lacks %q:\n%s", s, msg)
		}
	}

	db.setDown(false)
	res, err := Replay(context.Background(), q.Path(), []Target{target(db)}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Targets) != 1 || !res.Targets[0].Done || res.Targets[0].RunID != "1" || !res.Removed || res.Header.ID != id {
		t.Fatalf("replay %+v %+v", res, res.Targets)
	}
	checkRun(t, db, "1", w)
	if _, err := os.Stat(q.Path()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("journal still there after a complete replay: %v", err)
	}
}

// A store that goes down mid-run and comes back before the end: nothing
// lost, order kept, no point twice.
func TestStoreDownMidRun(t *testing.T) {
	db := newFakeDB()
	db.downAfter = 3 // start, the first metrics and beat
	warn := &testutil.SyncBuffer{}
	q := newQueue(t, db, testOptions(t, warn))
	id, w, err := script(t, q, 4, 10*time.Second, func(beat int) {
		if beat == 3 {
			db.setDown(false)
		}
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	closeQueue(t, q)
	checkRun(t, db, id, w)
	db.mu.Lock()
	calls := strings.Join(db.calls, ",")
	db.mu.Unlock()
	if !strings.Contains(calls, "log_metrics,heartbeat,log_metrics") {
		t.Errorf("the store was never down and back: calls %s", calls)
	}
}

// A store that refuses one event: it goes to the dead-letter file with one
// warning, and the rest of the run is recorded.
func TestRefusedEventGoesToTheDeadLetterFile(t *testing.T) {
	db := newFakeDB()
	db.refuse = func(op string) bool { return op == "artifact model.bin" }
	warn := &testutil.SyncBuffer{}
	q := newQueue(t, db, testOptions(t, warn))
	id, w, err := script(t, q, 4, 10*time.Second, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	closeQueue(t, q)
	r := db.run(id)
	if r.status != observer.StatusCompleted || !bytes.Equal(r.output, w.out) || len(r.artifacts) != 0 || len(r.resources) != 1 {
		t.Fatalf("run %+v", r)
	}
	dead, err := os.ReadFile(deadPath(q.Path()))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(dead, []byte("\n")); n != 1 || !bytes.Contains(dead, []byte(`"event":"artifact model.bin"`)) || !bytes.Contains(dead, []byte("refused: artifact model.bin")) {
		t.Errorf("dead letters:\n%s", dead)
	}
	msg := warn.String()
	if strings.Count(msg, "will never take artifact model.bin") != 1 || !strings.Contains(msg, "run 1: 1 event could not be recorded") {
		t.Errorf("warnings:\n%s", msg)
	}
	if _, err := os.Stat(q.Path()); err != nil {
		t.Errorf("the journal of a run with a dead letter must stay: %v", err)
	}
	db.mu.Lock()
	attempts := strings.Count(strings.Join(db.calls, ","), "artifact model.bin")
	db.mu.Unlock()
	if attempts != 3 {
		t.Errorf("%d attempts at the refused artifact, want MaxAttempts = 3", attempts)
	}
}

// journalOfDownRun runs the script against a store that is down and
// returns the journal it left.
func journalOfDownRun(t *testing.T, db *fakeDB, opt Options) (string, *want) {
	t.Helper()
	db.setDown(true)
	q := newQueue(t, db, opt)
	_, w, err := script(t, q, 4, time.Millisecond, nil)
	if err == nil {
		t.Fatal("the final event was recorded by a store that is down")
	}
	closeQueue(t, q)
	db.setDown(false)
	return q.Path(), w
}

// A journal cut short by a crash: replay keeps every whole record and
// says that the tail was torn.
func TestTornTailIsReportedAndCut(t *testing.T) {
	db := newFakeDB()
	warn := &testutil.SyncBuffer{}
	opt := testOptions(t, warn)
	path, w := journalOfDownRun(t, db, opt)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// The final record is the last; cut into it.
	if err := os.Truncate(path, fi.Size()-5); err != nil {
		t.Fatal(err)
	}
	warn.Reset()
	res, err := Replay(context.Background(), path, []Target{target(db)}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Torn == 0 || res.Ends || !strings.Contains(warn.String(), "are a record cut short") {
		t.Errorf("torn %d ends %v warnings %s", res.Torn, res.Ends, warn)
	}
	r := db.run("1")
	if r == nil || r.status != observer.StatusRunning || !bytes.Equal(r.output, w.out) || len(r.metrics["loss"]) != 4 || len(r.artifacts) != 1 {
		t.Fatalf("run %+v", r)
	}
	if !res.Removed {
		t.Errorf("a journal without an end whose every whole record is recorded should be removed: %+v", res)
	}
}

// Two replays of one journal at the same time, and one more after: the
// store gets the run once, with every point once.
func TestConcurrentReplaysSendNothingTwice(t *testing.T) {
	db := newFakeDB()
	opt := testOptions(t, &testutil.SyncBuffer{})
	path, w := journalOfDownRun(t, db, opt)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Replay(context.Background(), path, []Target{target(db)}, opt)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case IsBusy(err), errors.Is(err, fs.ErrNotExist):
		default:
			t.Errorf("replay: %v", err)
		}
	}
	if ok == 0 {
		t.Fatal("no replay ran")
	}
	if _, err := Replay(context.Background(), path, []Target{target(db)}, opt); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("replay after the journal was recorded: %v, want not exist", err)
	}
	if len(db.order) != 1 {
		t.Fatalf("runs %v, want one", db.order)
	}
	checkRun(t, db, "1", w)
}

// A replay stopped part-way and started again sends only the rest.
func TestReplayAgainSendsOnlyTheRest(t *testing.T) {
	db := newFakeDB()
	warn := &testutil.SyncBuffer{}
	opt := testOptions(t, warn)
	path, w := journalOfDownRun(t, db, opt)
	db.resumable = true
	db.downAfter = 4 // start, metrics, a beat, the artifact
	ctx, cancel := context.WithCancel(context.Background())
	db.onDown = cancel // the replay gives up when the store goes away
	res, err := Replay(ctx, path, []Target{target(db)}, opt)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Targets[0]; r.Done || r.Left == 0 || r.Err == nil || r.RunID != "1" {
		t.Fatalf("first replay %+v", r)
	}
	db.setDown(false)
	res, err = Replay(context.Background(), path, []Target{target(db)}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Targets[0]; !r.Done || r.Left != 0 || r.Err != nil {
		t.Fatalf("second replay %+v", r)
	}
	checkRun(t, db, "1", w)
}

// Without Resume, a run whose start an earlier process recorded cannot be
// continued: the replay says so and keeps the journal.
func TestReplayWithoutResumeKeepsTheJournal(t *testing.T) {
	db := newFakeDB()
	opt := testOptions(t, &testutil.SyncBuffer{})
	path, _ := journalOfDownRun(t, db, opt)
	db.downAfter = 2
	ctx, cancel := context.WithCancel(context.Background())
	db.onDown = cancel
	if _, err := Replay(ctx, path, []Target{target(db)}, opt); err != nil {
		t.Fatal(err)
	}
	cancel()
	db.setDown(false)
	res, err := Replay(context.Background(), path, []Target{target(db)}, opt)
	if err != nil {
		t.Fatal(err)
	}
	r := res.Targets[0]
	if r.Done || r.Err == nil || !strings.Contains(r.Err.Error(), "cannot go on with run 1") || res.Removed {
		t.Fatalf("replay %+v", r)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("journal: %v", err)
	}
}

// A taken id fails the start as the store itself would, and leaves no
// journal.
func TestTakenIDFailsTheStart(t *testing.T) {
	db := newFakeDB()
	db.runs["5"] = &fakeRun{id: "5"}
	q := newQueue(t, db, testOptions(t, &testutil.SyncBuffer{}))
	ev := observertest.StartEvent()
	ev.ID = "5"
	_, err := q.Started(context.Background(), ev)
	if !errors.Is(err, observer.ErrIDTaken) {
		t.Fatalf("Started with a taken id: %v", err)
	}
	closeQueue(t, q)
	for _, p := range []string{q.Path(), deadPath(q.Path()), lockPath(q.Path())} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s of a run that never started: %v", p, err)
		}
	}
}

// Two journaled observers of one run whose stores are down: the second
// does not ask its store for the first one's provisional id.
func TestProvisionalIDIsNotGivenToAnotherStore(t *testing.T) {
	db1, db2 := newFakeDB(), newFakeDB()
	db1.down, db2.down = true, true
	opt := testOptions(t, &testutil.SyncBuffer{})
	q1, q2 := newQueue(t, db1, opt), newQueue(t, db2, opt)
	ev := observertest.StartEvent()
	id1, err := q1.Started(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	ev.ID = id1
	id2, err := q2.Started(context.Background(), ev)
	if err != nil || id2 != id1 {
		t.Fatalf("second Started: %q %v, want %q", id2, err, id1)
	}
	closeQueue(t, q1)
	closeQueue(t, q2)
	db2.setDown(false)
	res, err := Replay(context.Background(), q2.Path(), []Target{target(db2)}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Targets[0].RunID != "1" {
		t.Errorf("the store got id %q, want one of its own", res.Targets[0].RunID)
	}
}

func TestOpenNotAJournal(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x"+Ext)
	if err := os.WriteFile(p, []byte("hello world, no journal"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Replay(context.Background(), p, nil, Options{})
	if err == nil || !strings.Contains(err.Error(), "is not a sacred journal") {
		t.Fatalf("err %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{errDown, true},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("mongo: insert: server selection error: server selection timeout, current topology: ..."), true},
		{errors.New("refused: too large"), false},
		{&os.LinkError{Op: "rename", Old: "a", New: "b", Err: syscall.EEXIST}, false},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("no route")}, true},
		{fmt.Errorf("x: %w", observer.ErrIDTaken), false},
	} {
		if got := unreachable(c.err); got != c.want {
			t.Errorf("unreachable(%v) = %v", c.err, got)
		}
	}
}
