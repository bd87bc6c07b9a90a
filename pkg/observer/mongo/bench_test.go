package mongo

import (
	"crypto/md5"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// BenchmarkHeartbeat measures one beat (16 KiB of new output, a changed
// info) after runs that already wrote 0.5, 8 and 64 MiB: the cost must not
// grow with the output written before (Sacred $sets the whole output every
// beat). Compare ns/op across the sub-benchmarks.
func BenchmarkHeartbeat(b *testing.B) {
	for _, before := range []int64{512 << 10, 8 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("before=%dKiB", before>>10), func(b *testing.B) {
			s := newStore(b)
			o := s.open(b, "", nil)
			ev := observertest.StartEvent()
			_, err := o.Started(ctx, ev)
			must(b, err)
			f, err := os.Create(filepath.Join(b.TempDir(), "spool"))
			must(b, err)
			defer f.Close()
			out := fileOutput{f}
			h := md5.New()
			seq := 0
			writeOutput(b, f, before, h, &seq)
			from := out.Size()
			must(b, o.Heartbeat(ctx, &observer.HeartbeatEvent{BeatTime: time.Now(), Output: out, To: from}))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				writeOutput(b, f, 16<<10, h, &seq)
				info := map[string]any{"beat": i}
				// From is where the last beat ended, as the runner hands it.
				to := out.Size()
				must(b, o.Heartbeat(ctx, &observer.HeartbeatEvent{Info: info, BeatTime: time.Now(), Output: out, From: from, To: to}))
				from = to
			}
			b.StopTimer()
		})
	}
}
