package tinydb

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// benchStore writes a store of n completed runs, each a realistic
// document (about 4 KB: the suite's start event, a few KB of output, 100
// metric points), and returns its directory.
func benchStore(b *testing.B, n int) string {
	b.Helper()
	dir := b.TempDir()
	ctx := context.Background()
	o, err := New(ctx, Config{Dir: dir, Abs: dir}, observer.Settings{})
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
	o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: pts}}})
	beats := observertest.NewBeats()
	beats.Out.Append(bytes.Repeat([]byte("epoch 1/20 loss 0.3412 acc 0.8812\n"), 60))
	if err := o.Heartbeat(ctx, beats.Next(ev.Time, map[string]any{"foo": "bar"})); err != nil {
		b.Fatal(err)
	}
	if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time, Result: 0.93, HasResult: true}); err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, MetadataFile))
	if err != nil {
		b.Fatal(err)
	}
	docs, _ := docsOf(b, data)
	one := docs["1"]
	var buf bytes.Buffer
	buf.WriteString(`{"runs": {`)
	for i := 1; i <= n; i++ {
		if i > 1 {
			buf.WriteString(", ")
		}
		fmt.Fprintf(&buf, `"%d": `, i)
		buf.Write(bytes.Replace(one, []byte(o.id), []byte(fmt.Sprintf("%032x", i)), 1))
	}
	buf.WriteString("}}")
	if err := os.WriteFile(filepath.Join(dir, MetadataFile), buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkHeartbeat measures one heartbeat of one run (a line of new
// output, info, the beat time) in a store that already holds n runs:
//
//   - unchanged: metadata.json is the file this process wrote last (one
//     run recording alone): the other runs are copied file to file;
//   - changed: another process wrote in between (concurrent runs): the
//     file is read and checked again first;
//   - nosync: as unchanged, without the fsync before the rename.
//
// cpu-ms/op is the CPU time (user and system) of the process per beat,
// which a busy machine disturbs less than the wall time.
func BenchmarkHeartbeat(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		for _, mode := range []string{"unchanged", "changed", "nosync"} {
			b.Run(fmt.Sprintf("runs=%d/%s", n, mode), func(b *testing.B) {
				dir := benchStore(b, n)
				ctx := context.Background()
				o, err := New(ctx, Config{Dir: dir, Abs: dir}, observer.Settings{})
				if err != nil {
					b.Fatal(err)
				}
				o.st.syncEach = mode != "nosync"
				ev := observertest.StartEvent()
				if _, err := o.Started(ctx, ev); err != nil {
					b.Fatal(err)
				}
				other, _ := New(ctx, Config{Dir: dir, Abs: dir}, observer.Settings{})
				if _, err := other.Started(ctx, observertest.StartEvent()); err != nil {
					b.Fatal(err)
				}
				beats := observertest.NewBeats()
				info := map[string]any{"epoch": 1}
				var cpu time.Duration
				b.ResetTimer()
				for i := range b.N {
					if mode == "changed" {
						b.StopTimer()
						if err := other.Heartbeat(ctx, observertest.NewBeats().Next(ev.Time, nil)); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
					c0 := cpuTime()
					beats.Out.Append([]byte("epoch " + strconv.Itoa(i) + " loss 0.25\n"))
					if err := o.Heartbeat(ctx, beats.Next(ev.Time.Add(time.Duration(i)*time.Second), info)); err != nil {
						b.Fatal(err)
					}
					cpu += cpuTime() - c0
				}
				b.StopTimer()
				b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
				fi, _ := os.Stat(filepath.Join(dir, MetadataFile))
				b.ReportMetric(float64(fi.Size())/(1<<20), "MiB")
			})
		}
	}
}

// BenchmarkRewriteWhole is the cost TinyDB itself pays per save, for
// comparison: decode the whole file and encode it again (here with our
// decoder and encoder; Python's are slower).
func BenchmarkRewriteWhole(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) {
			dir := benchStore(b, n)
			path := filepath.Join(dir, MetadataFile)
			for b.Loop() {
				data, err := os.ReadFile(path)
				if err != nil {
					b.Fatal(err)
				}
				v, err := sacredjson.Unmarshal(data)
				if err != nil {
					b.Fatal(err)
				}
				out, err := appendJSON(nil, v)
				if err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(path+".new", out, 0o644); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScan is the check of a whole file that a writer does when
// another process changed it, and a reader does on each new version.
func BenchmarkScan(b *testing.B) {
	dir := benchStore(b, 1000)
	data, err := os.ReadFile(filepath.Join(dir, MetadataFile))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := scanIndex(data); err != nil {
			b.Fatal(err)
		}
	}
}
