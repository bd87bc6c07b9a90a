package s3

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

// BenchmarkOutputBeat measures one heartbeat that brings 1 MiB of new
// output to a run that has already written SIZE: the bytes it sends
// (bytes/beat, the number docs/performance.md quotes) stay those of the new
// output, however large the output is. The time per beat is mostly the
// test server copying the object in memory; S3 copies it on its side.
func BenchmarkOutputBeat(b *testing.B) {
	for _, size := range []int64{16 << 20, 256 << 20, 1 << 30} {
		b.Run(fmt.Sprintf("written=%dMiB", size>>20), func(b *testing.B) {
			srv := testserver.NewS3(b)
			srv.CreateBucket("lab-runs")
			srv.SetEnv(b)
			ctx := context.Background()
			cfg, err := ParseConfig("s3://lab-runs/bench")
			if err != nil {
				b.Fatal(err)
			}
			o, err := New(ctx, cfg, observer.Settings{Flags: map[string]string{FlagEndpoint: srv.URL()}})
			if err != nil {
				b.Fatal(err)
			}
			ev := observertest.StartEvent()
			id, err := o.Started(ctx, ev)
			if err != nil {
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
			key := "bench/" + id + "/cout.txt"
			from := size
			before := srv.Written(key)
			b.ResetTimer()
			for range b.N {
				if err := f.Truncate(from + 1<<20); err != nil {
					b.Fatal(err)
				}
				to := from + 1<<20
				if err := o.Heartbeat(ctx, &observer.HeartbeatEvent{BeatTime: ev.Time, Output: out, From: from, To: to}); err != nil {
					b.Fatal(err)
				}
				from = to
			}
			b.StopTimer()
			b.ReportMetric(float64(srv.Written(key)-before)/float64(b.N), "bytes/beat")
		})
	}
}
