package tinydb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

func newTestObserver(t *testing.T, dir string) *Observer {
	t.Helper()
	cfg, err := ParseConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	o, err := New(context.Background(), cfg, observer.Settings{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return o
}

func TestResume(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tiny")
	observertest.RunResume(t, observertest.Store{
		New: func(t *testing.T) observer.Observer { return newTestObserver(t, dir) },
		Reader: func(t *testing.T) observer.Reader {
			r, err := Open(context.Background(), Config{Dir: dir, Abs: dir}, observer.Settings{})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return r
		},
	})
}

// The document of a resumed run is written back byte for byte where
// nothing changed it; a field sacred does not write stops Resume rather
// than being lost.
func TestResumeDocument(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "tiny")
	a := newTestObserver(t, dir)
	ev := observertest.StartEvent()
	id, err := a.Started(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: []observer.MetricPoint{{Step: 1, Value: 0.5, Time: ev.Time}}}}}); err != nil {
		t.Fatal(err)
	}
	beats := observertest.NewBeats()
	beats.Out.Append([]byte("out\n"))
	if err := a.Heartbeat(ctx, beats.Next(ev.Time, map[string]any{"k": 1})); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, MetadataFile)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b := newTestObserver(t, dir)
	ev.ID = id
	if err := b.Resume(ctx, ev); err != nil {
		t.Fatal(err)
	}
	b.metricsDirty = true // encode the metrics field again from what was read
	if err := b.save(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Errorf("the document changed by Resume and save:\nbefore %s\nafter  %s", before, after)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}

	odd := strings.Replace(string(after), `"_id": `, `"extra": 1, "_id": `, 1)
	if err := os.WriteFile(path, []byte(odd), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newTestObserver(t, dir)
	err = c.Resume(ctx, ev)
	if err == nil || !strings.Contains(err.Error(), `"extra"`) || errors.Is(err, observer.ErrNotFound) {
		t.Errorf("Resume of a document with a field sacred does not write = %v, want an error naming it", err)
	}
}
