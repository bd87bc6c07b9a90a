package ui

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// BenchmarkMetric1M is the answer for a 1,500-pixel chart over a series
// of 1,000,000 points (the run already read, as when a page zooms): the
// decimation and the JSON. It reports the answer's size.
func BenchmarkMetric1M(b *testing.B) {
	for _, axis := range []string{"step", "time"} {
		b.Run(axis, func(b *testing.B) {
			const n = 1_000_000
			pts := make([]observer.MetricPoint, n)
			for i := range pts {
				// A noisy signal with full float64 precision: the largest
				// numbers to write.
				pts[i] = observer.MetricPoint{Step: int64(i), Value: math.Sin(float64(i)/997) / 3 * (1 + float64(i%13)/1e7),
					Time: t0.Add(time.Duration(i) * 37 * time.Millisecond)}
			}
			f := &fullRun{run: &observer.Run{ID: "1", StartTime: t0, Metrics: []observer.MetricSeries{{Name: "loss", Points: pts}}}}
			var size int
			b.ResetTimer()
			for b.Loop() {
				// A fresh series each time: the columns are built from the
				// run's points on a page's first ask.
				f.series = nil
				body, err := metricJSON(f, f.metric("loss"), "loss", axis, "", "", 1500)
				if err != nil {
					b.Fatal(err)
				}
				size = len(body)
			}
			b.ReportMetric(float64(size), "bytes/answer")
		})
	}
}

// BenchmarkMetricZoom1M is a zoom into half of the same series, the
// columns already built: what every zoom after the first costs.
func BenchmarkMetricZoom1M(b *testing.B) {
	const n = 1_000_000
	pts := make([]observer.MetricPoint, n)
	for i := range pts {
		pts[i] = observer.MetricPoint{Step: int64(i), Value: math.Sin(float64(i) / 997)}
	}
	f := &fullRun{run: &observer.Run{ID: "1", Metrics: []observer.MetricSeries{{Name: "loss", Points: pts}}}}
	sr := f.metric("loss")
	var size int
	for b.Loop() {
		body, err := metricJSON(f, sr, "loss", "step", "250000", "750000", 1500)
		if err != nil {
			b.Fatal(err)
		}
		size = len(body)
	}
	b.ReportMetric(float64(size), "bytes/answer")
}

// fileStore10k writes one run through the file observer and copies it to
// 10,000 runs with config.lr varied, once per test binary.
func fileStore10k(b *testing.B) string {
	b.Helper()
	dir := filepath.Join(os.TempDir(), "sacred-ui-bench-10k")
	if _, err := os.Stat(filepath.Join(dir, "10000", "run.json")); err == nil {
		return dir
	}
	_ = os.RemoveAll(dir)
	cfg, err := file.ParseConfig(dir)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	o, err := file.New(ctx, cfg, observer.Settings{})
	if err != nil {
		b.Fatal(err)
	}
	ev := observertest.StartEvent()
	id, err := o.Started(ctx, ev)
	if err != nil {
		b.Fatal(err)
	}
	var ms []observer.MetricPoint
	for i := range 100 {
		ms = append(ms, observer.MetricPoint{Step: int64(i), Value: 1 / float64(i+1), Time: ev.Time})
	}
	if err := o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: ms}}, Info: map[string]any{}}); err != nil {
		b.Fatal(err)
	}
	beats := observertest.NewBeats()
	beats.Out.Append([]byte("epoch 1\n"))
	hb := beats.Next(ev.Time.Add(time.Second), map[string]any{"acc": 0.9})
	hb.Final = true
	if err := o.Heartbeat(ctx, hb); err != nil {
		b.Fatal(err)
	}
	if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time.Add(time.Minute), Result: 0.5, HasResult: true}); err != nil {
		b.Fatal(err)
	}
	_ = o.Close(ctx)
	src := filepath.Join(dir, id)
	files, err := os.ReadDir(src)
	if err != nil {
		b.Fatal(err)
	}
	contents := map[string][]byte{}
	for _, f := range files {
		if f.Type().IsRegular() {
			contents[f.Name()], _ = os.ReadFile(filepath.Join(src, f.Name()))
		}
	}
	for i := 2; i <= 10_000; i++ {
		d := filepath.Join(dir, fmt.Sprint(i))
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
		for name, body := range contents {
			if name == "config.json" {
				body = []byte(strings.Replace(string(body), `"lr": 0.01`, fmt.Sprintf(`"lr": %g`, float64(i)/10000), 1))
			}
			if err := os.WriteFile(filepath.Join(d, name), body, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	return dir
}

// BenchmarkRunsFirstPage10k serves the first page of the runs table over
// a file store of 10,000 runs, once the store was scanned at the start:
// newest first, and with a where over the config, a sort and two columns.
func BenchmarkRunsFirstPage10k(b *testing.B) {
	dir := fileStore10k(b)
	cfg, err := file.ParseConfig(dir)
	if err != nil {
		b.Fatal(err)
	}
	r, err := file.Open(context.Background(), cfg, observer.Settings{})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	s, err := New(Options{Stores: []Store{{Label: "runs", Reader: r}}, Refresh: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.stores[0].wait(context.Background()); err != nil {
		b.Fatal(err)
	}
	if runs, _ := s.stores[0].runs(); len(runs) != 10_000 {
		b.Fatalf("%d runs scanned", len(runs))
	}
	b.Logf("first scan of 10,000 runs: %v", time.Since(start).Round(time.Millisecond))
	for _, c := range []struct{ name, query string }{
		{"plain", "limit=50"},
		{"where-sort-cols", "limit=50&where=config.lr%20%3E%200.5&sort=-config.lr&cols=config.lr,metrics.loss.last"},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/api/runs?"+c.query, nil)
			var size int
			for b.Loop() {
				w := httptest.NewRecorder()
				s.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
				size = w.Body.Len()
			}
			b.ReportMetric(float64(size), "bytes/answer")
		})
	}
}
