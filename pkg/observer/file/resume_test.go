package file

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

func TestResume(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "runs")
	observertest.RunResume(t, observertest.Store{
		New:    func(t *testing.T) observer.Observer { return newObserver(t, dir, observer.Settings{}) },
		Reader: func(t *testing.T) observer.Reader { return openReader(t, dir) },
	})
}

// A resumed run's run.json is the one written before, with only what the
// new events change: the bytes are those a single observer writes.
func TestResumeKeepsRunJSON(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "runs")
	a := newObserver(t, dir, observer.Settings{})
	ev := observertest.StartEvent()
	id, err := a.Started(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	beats := observertest.NewBeats()
	beats.Out.Append([]byte("some output\n"))
	if err := a.Heartbeat(ctx, beats.Next(ev.Time, nil)); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(dir, id, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	b := newObserver(t, dir, observer.Settings{})
	ev.ID = id
	if err := b.Resume(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if f, err := b.OutputFile(); err != nil || f != nil {
		t.Errorf("OutputFile after Resume = %v, %v; want nil: the runner must not capture into a cout.txt that has output", f, err)
	}
	if err := b.writeRun(false); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(filepath.Join(dir, id, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Errorf("run.json changed by Resume:\nbefore %s\nafter  %s", before, after)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
