package file

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// synthOutput is an output of any size that costs no memory: byte i is a
// printable character derived from i, with a newline every 64 bytes.
type synthOutput struct{ size int64 }

func (s *synthOutput) Size() int64 { return s.size }

func (s *synthOutput) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), s.size-off)
	for i := range n {
		j := off + i
		if j%64 == 63 {
			p[i] = '\n'
		} else {
			p[i] = byte('a' + j%26)
		}
	}
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// BenchmarkHeartbeat measures one beat (LogMetrics with 10 new points, then
// Heartbeat with 1 KiB of new output and an info dict) after a run has
// already produced a lot of output or metrics. The cost must not grow with
// the output already written; with the metrics already written it grows
// only by a sequential copy of metrics.json (no re-parsing or re-encoding).
func BenchmarkHeartbeat(b *testing.B) {
	cases := []struct {
		output int64
		points int
	}{
		{0, 0},
		{16 << 20, 0},
		{256 << 20, 0},
		{0, 10_000},
		{0, 100_000},
		{0, 1_000_000},
	}
	for _, tc := range cases {
		b.Run(fmt.Sprintf("output=%dMiB/points=%d", tc.output>>20, tc.points), func(b *testing.B) {
			benchHeartbeat(b, tc.output, tc.points)
		})
	}
}

func benchHeartbeat(b *testing.B, prefill int64, points int) {
	o := newObserver(b, b.TempDir(), observer.Settings{})
	ev := observertest.StartEvent()
	if _, err := o.Started(ctx, ev); err != nil {
		b.Fatal(err)
	}
	defer o.Close(ctx)
	out := &synthOutput{size: prefill}
	info := map[string]any{"epoch": 1, "lr": 0.01}
	t := ev.Time
	step := int64(0)
	metrics := func(n int) *observer.MetricsEvent {
		ev := &observer.MetricsEvent{Info: info}
		for _, name := range []string{"acc", "loss"} {
			var pts []observer.MetricPoint
			for range n / 2 {
				step++
				t = t.Add(time.Millisecond)
				pts = append(pts, observer.MetricPoint{Step: step, Value: 1 / float64(step), Time: t})
			}
			ev.Metrics = append(ev.Metrics, observer.MetricSeries{Name: name, Points: pts})
		}
		return ev
	}
	// The run so far, in one beat.
	if err := o.LogMetrics(ctx, metrics(points)); err != nil {
		b.Fatal(err)
	}
	if err := o.Heartbeat(ctx, &observer.HeartbeatEvent{Info: info, BeatTime: t, Output: out, From: 0, To: out.size}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := o.LogMetrics(ctx, metrics(10)); err != nil {
			b.Fatal(err)
		}
		from := out.size
		out.size += 1024
		t = t.Add(10 * time.Second)
		if err := o.Heartbeat(ctx, &observer.HeartbeatEvent{Info: info, BeatTime: t, Output: out, From: from, To: out.size}); err != nil {
			b.Fatal(err)
		}
	}
}
