package queue_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
	"github.com/sacred-go/sacred/pkg/observer/queue"

	_ "github.com/sacred-go/sacred/pkg/observer/file"
	_ "github.com/sacred-go/sacred/pkg/observer/sqlstore"
)

// storeThroughQueue is the store tier for a registered kind wrapped in the
// queue: every observer is a fresh journal in front of a fresh observer of
// the kind, and the reader reads the store itself.
func storeThroughQueue(t *testing.T, option, value string) observertest.Store {
	k, ok := observer.Lookup(option)
	if !ok {
		t.Fatalf("%s is not registered", option)
	}
	journals := t.TempDir()
	return observertest.Store{
		New: func(t *testing.T) observer.Observer {
			q, err := queue.New(func(ctx context.Context) (observer.Observer, error) {
				return k.OpenObserver(ctx, value, observer.Settings{})
			}, queue.Options{Dir: journals, Option: option, Title: k.Title, Value: k.RedactValue(value), StartWait: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			return q
		},
		Reader: func(t *testing.T) observer.Reader {
			r, err := k.OpenReader(context.Background(), value, observer.Settings{})
			if err != nil {
				t.Fatal(err)
			}
			return r
		},
	}
}

// TestConformanceFileStorage: the queue in front of file storage passes
// the store tier (what is read back equals what was sent).
func TestConformanceFileStorage(t *testing.T) {
	observertest.Run(t, storeThroughQueue(t, "file_storage", filepath.Join(t.TempDir(), "runs")))
}

// TestConformanceSQLite: the same in front of the SQL store on SQLite.
func TestConformanceSQLite(t *testing.T) {
	observertest.Run(t, storeThroughQueue(t, "sql", "sqlite:///"+filepath.Join(t.TempDir(), "runs.db")))
}

// TestCopyRunBetweenStores copies a finished run from file storage into
// SQLite and reads both back: the same metrics, output, artifacts, status.
func TestCopyRunBetweenStores(t *testing.T) {
	ctx := context.Background()
	fileKind, _ := observer.Lookup("file_storage")
	sqlKind, _ := observer.Lookup("sql")
	src := filepath.Join(t.TempDir(), "runs")
	dst := "sqlite:///" + filepath.Join(t.TempDir(), "runs.db")

	o, err := fileKind.OpenObserver(ctx, src, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	ev := observertest.StartEvent()
	id, err := o.Started(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	at := ev.Time.Add(time.Second)
	beats := observertest.NewBeats()
	beats.Out.Append([]byte("hello\n\xffbytes\n"))
	if err := o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: []observer.MetricPoint{{Step: 0, Value: 0.5, Time: at}, {Step: 1, Value: 0.25, Time: at}}}}, Info: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	if err := o.Heartbeat(ctx, beats.Next(at, map[string]any{"k": "v"})); err != nil {
		t.Fatal(err)
	}
	art := filepath.Join(t.TempDir(), "model.bin")
	if err := os.WriteFile(art, []byte("weights"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := o.Artifact(ctx, &observer.ArtifactEvent{Name: "model.bin", Path: art, OrigPath: art}); err != nil {
		t.Fatal(err)
	}
	if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: at.Add(time.Second), Result: 3.5, HasResult: true}); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}

	r, err := fileKind.OpenReader(ctx, src, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d, err := sqlKind.OpenObserver(ctx, dst, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	var warn bytes.Buffer
	newID, err := queue.CopyRun(ctx, r, id, d, time.Minute, &warn)
	if err != nil {
		t.Fatalf("copy: %v (%s)", err, warn.String())
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want, err := r.Run(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	dr, err := sqlKind.OpenReader(ctx, dst, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer dr.Close()
	got, err := dr.Run(ctx, newID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != observer.StatusCompleted || !bytes.Equal(got.Output, want.Output) || !observertest.Equal(got.Result, want.Result) {
		t.Errorf("copy: status %s output %q result %v; want %q %v", got.Status, got.Output, got.Result, want.Output, want.Result)
	}
	if len(got.Metrics) != 1 || len(got.Metrics[0].Points) != 2 || got.Metrics[0].Points[1].Value != 0.25 {
		t.Errorf("metrics %+v", got.Metrics)
	}
	if len(got.Artifacts) != 1 || got.Artifacts[0] != "model.bin" {
		t.Fatalf("artifacts %v", got.Artifacts)
	}
	rc, err := dr.Artifact(ctx, newID, "model.bin")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "weights" {
		t.Errorf("artifact %q", b)
	}
	if len(got.Experiment.Sources) != len(want.Experiment.Sources) {
		t.Errorf("sources %v, want %v", got.Experiment.Sources, want.Experiment.Sources)
	}
}
