package mongo

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

func TestResume(t *testing.T) {
	s := newStore(t)
	observertest.RunResume(t, observertest.Store{
		New:    func(t *testing.T) observer.Observer { return s.open(t, "", nil) },
		Reader: func(t *testing.T) observer.Reader { return s.reader(t) },
	})
}

// A series that continues over several documents is taken up at its last
// document, with the length the guard of the next append needs; a run
// with a string id (-i) is found as such.
func TestResumeSeriesParts(t *testing.T) {
	s := newStore(t)
	ev := observertest.StartEvent()
	ev.ID = "my-run"
	base := ev.Time
	pts := func(from, n int) []observer.MetricPoint {
		var out []observer.MetricPoint
		for i := from; i < from+n; i++ {
			out = append(out, observer.MetricPoint{Step: int64(i), Value: float64(i) / 2, Time: base.Add(time.Duration(i) * time.Millisecond)})
		}
		return out
	}
	a := s.open(t, "", nil)
	a.metricDocLimit = 400 // about ten points a document
	if _, err := a.Started(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if err := a.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: pts(0, 25)}}, Info: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}

	b := s.open(t, "", nil)
	b.metricDocLimit = 400
	if err := b.Resume(ctx, ev); err != nil {
		t.Fatal(err)
	}
	info := map[string]any{}
	if err := b.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: pts(25, 20)}}, Info: info}); err != nil {
		t.Fatal(err)
	}
	if ptrs, _ := info["metrics"].([]any); len(ptrs) != 1 {
		t.Errorf("info.metrics = %v, want the one pointer of loss", info["metrics"])
	}
	if err := b.Failed(ctx, &observer.FailedEvent{StopTime: base.Add(time.Minute), Trace: []string{"killed\n"}}); err != nil {
		t.Fatal(err)
	}

	cur, err := b.metrics.Find(ctx, bson.D{{Key: "run_id", Value: "my-run"}})
	must(t, err)
	var docs []struct {
		Part  int     `bson:"part"`
		Steps []int64 `bson:"steps"`
	}
	must(t, cur.All(ctx, &docs))
	parts := map[int]int{}
	for _, d := range docs {
		parts[d.Part]++
		if len(d.Steps) > 12 {
			t.Errorf("part %d holds %d points, more than the limit allows", d.Part, len(d.Steps))
		}
	}
	for p, n := range parts {
		if n != 1 {
			t.Errorf("%d documents of part %d, want 1", n, p)
		}
	}
	run, err := s.reader(t).Run(ctx, "my-run")
	must(t, err)
	if run.Status != observer.StatusFailed {
		t.Errorf("status %s, want FAILED", run.Status)
	}
	if len(run.Metrics) != 1 || len(run.Metrics[0].Points) != 45 {
		t.Fatalf("metrics = %+v, want 45 points of loss", run.Metrics)
	}
	for i, p := range run.Metrics[0].Points {
		if p.Step != int64(i) {
			t.Fatalf("point %d has step %d", i, p.Step)
		}
	}
}
