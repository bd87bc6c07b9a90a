//go:build linux

package monitor

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v4/process"
)

// startTree starts a shell with 99 sleeping children: a tree of 100
// processes.
func startTree(b *testing.B) *child {
	c := startScript(b, "for i in $(seq 99); do sleep 600 >/dev/null & done; echo started; read x")
	c.waitLine(b, "started")
	return c
}

// cpuTime is the user + system time this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per sample and what it makes at one
// sample a second, in percent of one core.
func reportCPU(b *testing.B, start time.Duration) {
	per := (cpuTime(b) - start) / time.Duration(b.N)
	b.ReportMetric(float64(per)/1e6, "cpu-ms/sample")
	b.ReportMetric(100*float64(per)/float64(time.Second), "%core@1s")
}

// BenchmarkSampleTree100 is one sample of a tree of 100 processes with
// the /proc prober: the overhead of --monitor-interval 1 is %core@1s.
func BenchmarkSampleTree100(b *testing.B) {
	c := startTree(b)
	tr := newTree(newProber(), c.cmd.Process.Pid, time.Now())
	tr.sample(context.Background(), time.Now(), false)
	if len(tr.known) != 100 {
		b.Fatalf("tree has %d processes, want 100", len(tr.known))
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime(b)
	for i := 0; i < b.N; i++ {
		tr.sample(context.Background(), time.Now(), true)
	}
	reportCPU(b, start)
}

// BenchmarkGopsutilTree100 reads the same facts through gopsutil, for
// comparison: its Linux Children reads every process's stat file of the
// machine for each parent.
func BenchmarkGopsutilTree100(b *testing.B) {
	c := startTree(b)
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime(b)
	for i := 0; i < b.N; i++ {
		n := 0
		queue := []*process.Process{{Pid: int32(c.cmd.Process.Pid)}}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			n++
			p.Times()
			p.MemoryInfo()
			p.IOCounters()
			p.NumThreads()
			p.NumFDs()
			kids, _ := p.Children()
			queue = append(queue, kids...)
		}
		if n != 100 {
			b.Fatalf("walked %d processes, want 100", n)
		}
	}
	reportCPU(b, start)
}
