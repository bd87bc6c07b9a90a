package file

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sacred-go/sacred/internal/readback"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// benchFindStore records one run through the observer and copies it into
// n run directories.
func benchFindStore(b *testing.B, n int) string {
	b.Helper()
	dir := b.TempDir()
	ctx := context.Background()
	cfg, err := ParseConfig(dir)
	if err != nil {
		b.Fatal(err)
	}
	o, err := New(ctx, cfg, observer.Settings{})
	if err != nil {
		b.Fatal(err)
	}
	ev := observertest.StartEvent()
	if _, err := o.Started(ctx, ev); err != nil {
		b.Fatal(err)
	}
	pts := make([]observer.MetricPoint, 100)
	for i := range pts {
		pts[i] = observer.MetricPoint{Step: int64(i), Value: 1 / float64(i+1), Time: ev.Time}
	}
	if err := o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: pts}}}); err != nil {
		b.Fatal(err)
	}
	beats := observertest.NewBeats()
	beats.Out.Append([]byte(strings.Repeat("epoch 1/20 loss 0.3412 acc 0.8812\n", 60)))
	if err := o.Heartbeat(ctx, beats.Next(ev.Time, map[string]any{"foo": "bar"})); err != nil {
		b.Fatal(err)
	}
	if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time, Result: 0.5, HasResult: true}); err != nil {
		b.Fatal(err)
	}
	o.Close(ctx)
	ents, _ := os.ReadDir(filepath.Join(dir, "1"))
	files := map[string][]byte{}
	for _, e := range ents {
		files[e.Name()], _ = os.ReadFile(filepath.Join(dir, "1", e.Name()))
	}
	for i := 2; i <= n; i++ {
		d := filepath.Join(dir, fmt.Sprint(i))
		os.Mkdir(d, 0o755)
		for name, data := range files {
			os.WriteFile(filepath.Join(d, name), data, 0o644)
		}
	}
	return dir
}

// BenchmarkFind10k is the reading part of `sacred ls` over a file store
// of 10,000 runs: run.json alone, and with config.json and metrics.json.
func BenchmarkFind10k(b *testing.B) {
	dir := benchFindStore(b, 10_000)
	cfg, _ := ParseConfig(dir)
	r, err := Open(context.Background(), cfg, observer.Settings{})
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		reads map[string]bool
	}{{"run.json", nil}, {"config+metrics", map[string]bool{"config": true, "metrics": true}}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				runs, err := r.Find(context.Background(), &readback.Request{Reads: tc.reads})
				if err != nil || len(runs) != 10_000 {
					b.Fatalf("%d runs, %v", len(runs), err)
				}
			}
		})
	}
}
