//go:build linux

package monitor

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// newTestTree samples the tree of c by hand, so that a test decides when
// samples happen.
func newTestTree(c *child) *tree {
	t := newTree(newProber(), c.cmd.Process.Pid, time.Now())
	t.sample(context.Background(), time.Now(), false)
	return t
}

func value(series []observer.MetricSeries, name string) (float64, bool) {
	for _, s := range series {
		if s.Name == name && len(s.Points) > 0 {
			return s.Points[len(s.Points)-1].Value, true
		}
	}
	return 0, false
}

// Children that start and end between two samples still count: their CPU
// time passes to the parent that reaped them.
func TestChildrenBetweenSamplesCount(t *testing.T) {
	c := startScript(t, helperCmd("burn:300ms")+"; "+helperCmd("burn:200ms")+" & wait; echo done; read x")
	tr := newTestTree(c)
	c.waitLine(t, "done")
	tr.sample(context.Background(), time.Now(), true)
	if got := tr.last.cpu; got < 500*time.Millisecond-4*tick {
		t.Errorf("tree CPU after two children burned 500ms and exited = %v, want >= 500ms (less 4 ticks)", got)
	}
	ps := c.end(t)
	sum := tr.finish(time.Now(), UsageOf(ps))
	if sum.CPU < 500*time.Millisecond-4*tick {
		t.Errorf("summary CPU = %v, want >= 500ms (less 4 ticks)", sum.CPU)
	}
	if u := UsageOf(ps).CPU; sum.CPU < u {
		t.Errorf("summary CPU %v is less than wait4's report of the child %v", sum.CPU, u)
	}
}

// A child reaped by a parent that exits before the next sample is counted
// once: in wait4's report of the script, not also from its last sample.
func TestReapedChildCountsOnce(t *testing.T) {
	c := startScript(t, helperCmd("burn:300ms")+"; "+helperCmd("burnwait:300ms"))
	tr := newTestTree(c)
	c.waitLine(t, "burned")
	tr.sample(context.Background(), time.Now(), true) // the second burner is alive
	if got := tr.last.cpu; got < 600*time.Millisecond-4*tick {
		t.Errorf("tree CPU with the second burner alive = %v, want >= 600ms (less 4 ticks)", got)
	}
	usage := UsageOf(c.end(t)) // the burner exits, the script waits for it and exits
	sum := tr.finish(time.Now(), usage)
	if sum.CPU != usage.CPU {
		t.Errorf("summary CPU = %v, want wait4's %v exactly (nothing orphaned)", sum.CPU, usage.CPU)
	}
}

// A descendant orphaned by its parent stays in the tree while it lives,
// and what it used still counts after it is gone (from its last sample:
// the process that reaps it is not in the tree).
func TestOrphanStaysInTree(t *testing.T) {
	dir := t.TempDir()
	fifo := func(name string) string {
		p := filepath.Join(dir, name)
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	exitMiddle, burnNow, exitOrphan, orphanDone := fifo("exit-middle"), fifo("burn"), fifo("exit-orphan"), fifo("done")
	release := func(p string) {
		t.Helper()
		if err := os.WriteFile(p, []byte("go\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// orphanDone reaches EOF when the orphan, its only writer, exits.
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		if f, err := os.Open(orphanDone); err == nil {
			io.Copy(io.Discard, f)
			f.Close()
		}
	}()
	orphan := fmt.Sprintf(`( exec 3>%s; read z < %s; %s; echo burned; read z < %s )`, orphanDone, burnNow, helperCmd("burn:300ms"), exitOrphan)
	c := startScript(t, fmt.Sprintf(`sh -c '%s & echo forked; read y < %s'; echo middle-exited; read x`, orphan, exitMiddle))
	c.waitLine(t, "forked")
	tr := newTestTree(c) // sees the script, the middle shell and the orphan-to-be
	release(exitMiddle)
	c.waitLine(t, "middle-exited")
	release(burnNow)
	c.waitLine(t, "burned")
	series := tr.sample(context.Background(), time.Now(), true)
	if n, _ := value(series, MetricProcesses); n != 2 {
		t.Errorf("%s = %v, want 2 (the script and the orphan)", MetricProcesses, n)
	}
	if got := tr.last.cpu; got < 300*time.Millisecond-2*tick {
		t.Errorf("tree CPU after the orphan's child burned 300ms = %v, want >= 300ms (less 2 ticks)", got)
	}
	release(exitOrphan)
	<-gone
	tr.sample(context.Background(), time.Now(), true)
	if got := tr.last.cpu; got < 300*time.Millisecond-2*tick {
		t.Errorf("tree CPU after the orphan exited = %v, want >= 300ms (less 2 ticks)", got)
	}
	sum := tr.finish(time.Now(), UsageOf(c.end(t)))
	// The burner started and ended between two samples: its time counts
	// (through the orphan that reaped it), but no sample saw it.
	if sum.Processes != 3 {
		t.Errorf("processes seen = %d, want 3 (script, middle shell, orphan)", sum.Processes)
	}
	if sum.CPU < 300*time.Millisecond-2*tick {
		t.Errorf("summary CPU = %v, want >= 300ms (less 2 ticks)", sum.CPU)
	}
}

// A process outside the tree is not counted, even when busy.
func TestOtherProcessesAreNotCounted(t *testing.T) {
	other := startScript(t, helperCmd("burn:400ms")+"; echo done; read x")
	c := startScript(t, "echo started; read x")
	c.waitLine(t, "started")
	tr := newTestTree(c)
	other.waitLine(t, "done")
	series := tr.sample(context.Background(), time.Now(), true)
	if got := tr.last.cpu; got >= 100*time.Millisecond {
		t.Errorf("tree CPU = %v, but only the other process burned", got)
	}
	if n, _ := value(series, MetricProcesses); n != 1 {
		t.Errorf("%s = %v, want 1", MetricProcesses, n)
	}
	other.end(t)
	c.end(t)
}

// The peak resident set of a child that allocates 200 MiB is seen, from
// a sample while it holds the memory and from wait4 when no sample saw it.
func TestPeakRSS(t *testing.T) {
	const mib = 200
	t.Run("sampled", func(t *testing.T) {
		c := startScript(t, helperCmd(fmt.Sprintf("alloc:%d", mib)))
		tr := newTestTree(c)
		c.waitLine(t, "ready")
		series := tr.sample(context.Background(), time.Now(), true)
		if rss, _ := value(series, MetricRSS); rss < mib<<20 {
			t.Errorf("%s = %v, want >= %d MiB", MetricRSS, rss, mib)
		}
		sum := tr.finish(time.Now(), nil)
		c.end(t)
		if sum.RSSPeak < mib<<20 {
			t.Errorf("peak RSS = %d, want >= %d MiB", sum.RSSPeak, mib)
		}
	})
	t.Run("wait4", func(t *testing.T) {
		c := startScript(t, "echo started; read x; "+helperCmd(fmt.Sprintf("alloc:%d", mib))+" </dev/null")
		c.waitLine(t, "started")
		tr := newTestTree(c)
		c.stdin.Close()
		c.waitLine(t, "ready")
		ps := c.end(t)
		sum := tr.finish(time.Now(), UsageOf(ps))
		if sum.RSSPeak < mib<<20 {
			t.Errorf("peak RSS = %d, want >= %d MiB (from wait4)", sum.RSSPeak, mib)
		}
	})
}

// Start and Stop: samples reach the sink under the reserved prefix with
// one step per sample, and Stop ends the sampling.
func TestStartStop(t *testing.T) {
	c := startScript(t, "sleep 600 >/dev/null & sleep 600 >/dev/null & echo started; read x")
	c.waitLine(t, "started")
	var mu sync.Mutex
	var got [][]observer.MetricSeries
	seen := make(chan struct{})
	m := Start(context.Background(), c.cmd.Process.Pid, Options{
		Interval:  10 * time.Millisecond,
		NvidiaSMI: "-",
		Sink: func(s []observer.MetricSeries) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, s)
			if len(got) == 3 {
				close(seen)
			}
		},
	})
	<-seen
	sum := m.Stop(nil)
	mu.Lock()
	n := len(got)
	mu.Unlock()
	if sum.Samples != n {
		t.Errorf("summary counts %d samples, the sink got %d", sum.Samples, n)
	}
	for i, s := range got {
		for _, series := range s {
			if !strings.HasPrefix(series.Name, Prefix) {
				t.Errorf("metric %q is not under %q", series.Name, Prefix)
			}
			if len(series.Points) != 1 || series.Points[0].Step != int64(i) {
				t.Errorf("sample %d: %s points %v, want one at step %d", i, series.Name, series.Points, i)
			}
		}
		if p, _ := value(s, MetricProcesses); p != 3 {
			t.Errorf("sample %d: %s = %v, want 3", i, MetricProcesses, p)
		}
	}
	if sum.ProcessesPeak != 3 || sum.Processes != 3 {
		t.Errorf("processes peak %d, seen %d; want 3 and 3", sum.ProcessesPeak, sum.Processes)
	}
	if sum.ThreadsPeak < 3 || sum.OpenFilesPeak < 3 {
		t.Errorf("threads peak %d, open files peak %d; want at least one thread and one file per process", sum.ThreadsPeak, sum.OpenFilesPeak)
	}
	info := sum.Info()
	if info["interval_seconds"] != 0.01 {
		t.Errorf("interval_seconds = %v, want 0.01", info["interval_seconds"])
	}
	for _, k := range []string{"cpu_seconds", "rss_peak_bytes", "read_bytes", "write_bytes", "samples", "processes"} {
		if _, ok := info[k]; !ok {
			t.Errorf("info.resources has no %q: %v", k, info)
		}
	}
	if _, ok := info["gpus"]; ok {
		t.Errorf("info.resources has gpus without nvidia-smi: %v", info)
	}
	c.end(t)
}

// Storage writes of the tree are counted (what /proc/PID/io calls
// write_bytes, as wait4's oublock).
func TestWriteBytes(t *testing.T) {
	dir := t.TempDir()
	c := startScript(t, fmt.Sprintf("dd if=/dev/zero of=%s/f bs=1M count=8 conv=fsync 2>/dev/null; echo done; read x", dir))
	tr := newTestTree(c)
	c.waitLine(t, "done")
	series := tr.sample(context.Background(), time.Now(), true)
	w, _ := value(series, MetricWrite)
	if w == 0 {
		// Some file systems (tmpfs) do no block I/O at all.
		t.Skipf("no storage writes counted for %s (tmpfs?)", dir)
	}
	if w < 8<<20 {
		t.Errorf("%s = %v, want >= 8 MiB", MetricWrite, w)
	}
	c.end(t)
}

func TestParseStat(t *testing.T) {
	line := "4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 100 0 0 0 150 50 20 30 20 0 3 0 98765 1000000 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	var st procStat
	if !parseStat([]byte(line), &st, 4096) {
		t.Fatal("parseStat refused a valid line")
	}
	want := procStat{ppid: 17, start: 98765, threads: 3, rss: 250 * 4096, c: counters{cpu: 250 * clockTick}}
	if st != want {
		t.Errorf("parseStat = %+v, want %+v", st, want)
	}
	if parseStat([]byte("4242 (trunc) S 1 2"), &st, 4096) {
		t.Error("parseStat took a truncated line")
	}
}

func TestInfoOfGPUs(t *testing.T) {
	s := Summary{Interval: time.Second, GPUs: []GPUSummary{{Index: 0, Name: "X", UtilPeak: 90, UtilMean: 45.12345, MemoryPeak: 1 << 30}}}
	gpus, ok := s.Info()["gpus"].([]any)
	if !ok || len(gpus) != 1 {
		t.Fatalf("gpus = %v", s.Info()["gpus"])
	}
	g := gpus[0].(map[string]any)
	if g["util_mean"] != 45.123 || g["memory_peak_bytes"] != uint64(1<<30) {
		t.Errorf("gpu info = %v", g)
	}
}
