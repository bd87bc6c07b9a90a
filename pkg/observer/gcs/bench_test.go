package gcs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/sacred-go/sacred/internal/testserver"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// fileOutput is an observer.Output over a growing file, like the runner's
// spool.
type fileOutput struct{ f *os.File }

func (o fileOutput) Size() int64 {
	fi, err := o.f.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}
func (o fileOutput) ReadAt(p []byte, off int64) (int, error) { return o.f.ReadAt(p, off) }

// BenchmarkOutputBeat measures one heartbeat that brings 1 MiB of new
// output to a run that has already written SIZE: the bytes it uploads
// (bytes/beat, all requests of the beat: the new output, run.json and the
// requests' framing) stay those of the new output, however large the
// output is. The time per beat is mostly the test server composing the
// object in memory; Cloud Storage composes it on its side.
func BenchmarkOutputBeat(b *testing.B) {
	for _, size := range []int64{16 << 20, 256 << 20, 1 << 30} {
		b.Run(fmt.Sprintf("written=%dMiB", size>>20), func(b *testing.B) {
			srv := testserver.NewGCS(b)
			srv.CreateBucket("lab-runs")
			srv.SetEnv(b)
			ctx := context.Background()
			cfg, err := ParseConfig("gs://lab-runs/bench")
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
			f, err := os.Create(filepath.Join(b.TempDir(), "spool"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			out := fileOutput{f}
			if err := f.Truncate(size); err != nil {
				b.Fatal(err)
			}
			if err := o.Heartbeat(ctx, &observer.HeartbeatEvent{BeatTime: ev.Time, Output: out, To: size}); err != nil {
				b.Fatal(err)
			}
			from := size
			before := srv.Uploaded()
			b.ResetTimer()
			for range b.N {
				to := from + 1<<20
				if err := f.Truncate(to); err != nil {
					b.Fatal(err)
				}
				if err := o.Heartbeat(ctx, &observer.HeartbeatEvent{BeatTime: ev.Time, Output: out, From: from, To: to}); err != nil {
					b.Fatal(err)
				}
				from = to
			}
			b.StopTimer()
			b.ReportMetric(float64(srv.Uploaded()-before)/float64(b.N), "bytes/beat")
		})
	}
}
