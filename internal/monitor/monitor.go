// Package monitor samples the resources of a child's whole process tree
// while it runs: CPU, resident memory, storage I/O, threads, open files
// and, where nvidia-smi answers, GPU utilisation and memory. Each sample
// becomes metric points under the reserved prefix "sys."; the peaks and
// totals of the run make a Summary, which the runner stores as
// info.resources.
//
// The tree is every process that descends from the child, also after it
// was orphaned (a daemon that double-forks stays counted as long as it
// lives). Time and I/O of a descendant that exited are never lost: on
// Linux a reaped process's counters pass to its parent's, which the tree
// still holds; an orphan reaped outside the tree counts with its last
// sample; the child itself counts with what wait4 reports of it
// (Stop's usage argument).
package monitor

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Prefix starts the name of every metric the monitor writes. The child
// API refuses user metrics under it, so that the series never mix.
const Prefix = "sys."

// DefaultInterval is the sampling interval when --monitor-interval is not
// given.
const DefaultInterval = 5 * time.Second

// Metric names (one point per sample each; a GPU's names carry its index:
// sys.gpu0.util).
const (
	MetricCPUPercent = Prefix + "cpu_percent" // % of one core, since the previous sample
	MetricRSS        = Prefix + "rss_bytes"   // sum of the tree's resident sets
	MetricRead       = Prefix + "read_bytes"  // storage reads of the tree since the start
	MetricWrite      = Prefix + "write_bytes" // storage writes of the tree since the start
	MetricThreads    = Prefix + "threads"
	MetricOpenFiles  = Prefix + "open_files" // file descriptors, sockets and pipes included
	MetricProcesses  = Prefix + "processes"
)

// GPU metric names for the GPU with the given index.
func gpuMetric(index int, what string) string {
	return Prefix + "gpu" + strconv.Itoa(index) + "." + what
}

// Usage is what wait4 reported of the child once it was reaped: its own
// counters and those of the descendants it waited for. The runner takes it
// from os.ProcessState (see UsageOf); the zero Usage means unknown.
type Usage struct {
	CPU        time.Duration // user + system
	MaxRSS     uint64        // bytes, of the largest single process
	ReadBytes  uint64
	WriteBytes uint64
}

// counters are the cumulative counters of a process: its own plus those
// of the children it reaped (Linux), so that they never go backwards.
type counters struct {
	cpu         time.Duration
	read, write uint64
}

func (c *counters) add(o counters) {
	c.cpu += o.cpu
	c.read += o.read
	c.write += o.write
}

// procStat is one process at one sample.
type procStat struct {
	ppid    int
	start   uint64 // start time in the kernel's units: with the pid, who it is
	c       counters
	rss     uint64 // bytes
	hwm     uint64 // peak resident set of the process so far, bytes; 0 unknown
	threads int
	fds     int
}

// procKey names one process across samples: pids are reused.
type procKey struct {
	pid   int
	start uint64
}

// prober reads processes; one per platform.
type prober interface {
	// begin starts a sample (a prober that lists every process does it
	// here).
	begin()
	// read fills st for pid; false when the process is gone or unreadable.
	read(pid int, st *procStat) bool
	// children appends the direct children of pid (st as read) to out.
	children(pid int, st *procStat, out []int) []int
	// folds reports whether a reaped process's counters pass to its
	// parent's (cutime, and the I/O of waited-for children).
	folds() bool
}

// Options configure a Monitor.
type Options struct {
	// Interval between samples; <= 0 means DefaultInterval.
	Interval time.Duration
	// Sink receives the points of each sample, one series per metric. It
	// is called from the monitor's goroutine, one call at a time, and must
	// not keep the slice.
	Sink func([]observer.MetricSeries)
	// NvidiaSMI is the nvidia-smi to query; "" looks it up on PATH, "-"
	// turns GPU sampling off.
	NvidiaSMI string
}

// Monitor samples one process tree until Stop.
type Monitor struct {
	opts   Options
	root   int
	cancel context.CancelFunc
	done   chan struct{}

	mu sync.Mutex // guards t between the sampling goroutine and Stop
	t  *tree
}

// Start samples the tree rooted at pid every interval from now on, in a
// goroutine of its own, until Stop. The first sample comes one interval
// after the start.
func Start(ctx context.Context, pid int, opts Options) *Monitor {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	ctx, cancel := context.WithCancel(ctx)
	m := &Monitor{
		opts:   opts,
		root:   pid,
		cancel: cancel,
		done:   make(chan struct{}),
		t:      newTree(newProber(), pid, time.Now()),
	}
	m.t.sum.Interval = opts.Interval
	if gpu := newGPUProbe(opts.NvidiaSMI); gpu != nil {
		m.t.gpu = gpu
	}
	// The child's start time is read at once: a child that exits before
	// the first sample is still told from a later process with its pid.
	m.t.sample(ctx, time.Now(), false)
	go m.loop(ctx)
	return m
}

func (m *Monitor) loop(ctx context.Context) {
	defer close(m.done)
	tick := time.NewTicker(m.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			m.mu.Lock()
			series := m.t.sample(ctx, now, true)
			m.mu.Unlock()
			if series != nil && m.opts.Sink != nil {
				m.opts.Sink(series)
			}
		}
	}
}

// Stop ends the sampling and returns the summary of the run. usage is what
// wait4 reported of the child (nil when unknown, e.g. the child was never
// reaped): its CPU time, I/O and peak resident set make the totals exact
// also for what happened after the last sample. Descendants still alive
// are read one last time. Stop must be called once.
func (m *Monitor) Stop(usage *Usage) Summary {
	m.cancel()
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.t.finish(time.Now(), usage)
}

// Summary is what a run used, for info.resources.
type Summary struct {
	Interval time.Duration
	Samples  int
	// Wall is the time from Start to Stop.
	Wall time.Duration
	// CPU is the user + system time of the whole tree.
	CPU time.Duration
	// CPUPercentPeak is the highest CPU percent of one sample.
	CPUPercentPeak float64
	// RSSPeak is the largest sum of the tree's resident sets seen in a
	// sample, or the largest single process's peak if larger.
	RSSPeak    uint64
	ReadBytes  uint64
	WriteBytes uint64
	// ThreadsPeak, OpenFilesPeak and ProcessesPeak are the largest sums
	// seen in one sample; Processes counts the distinct processes seen.
	ThreadsPeak   int
	OpenFilesPeak int
	ProcessesPeak int
	Processes     int
	GPUs          []GPUSummary
	// GPUError says why GPU sampling stopped, if it did.
	GPUError string
}

// GPUSummary is what one GPU did during the run.
type GPUSummary struct {
	Index int
	Name  string
	// UtilPeak and UtilMean are in percent, over the samples.
	UtilPeak, UtilMean float64
	// MemoryPeak is the GPU's used memory (every process's); RunMemoryPeak
	// the part used by the run's processes. Bytes.
	MemoryPeak, RunMemoryPeak uint64
}

// Info is the summary as the info.resources value: plain JSON types,
// sizes in bytes, times in seconds, percents of one core.
func (s Summary) Info() map[string]any {
	m := map[string]any{
		"interval_seconds": s.Interval.Seconds(),
		"samples":          s.Samples,
		"wall_seconds":     round3(s.Wall.Seconds()),
		"cpu_seconds":      round3(s.CPU.Seconds()),
		"cpu_percent_peak": round3(s.CPUPercentPeak),
		"rss_peak_bytes":   s.RSSPeak,
		"read_bytes":       s.ReadBytes,
		"write_bytes":      s.WriteBytes,
		"threads_peak":     s.ThreadsPeak,
		"open_files_peak":  s.OpenFilesPeak,
		"processes_peak":   s.ProcessesPeak,
		"processes":        s.Processes,
	}
	if s.Wall > 0 {
		m["cpu_percent_mean"] = round3(100 * s.CPU.Seconds() / s.Wall.Seconds())
	}
	if len(s.GPUs) > 0 {
		gpus := make([]any, len(s.GPUs))
		for i, g := range s.GPUs {
			gpus[i] = map[string]any{
				"index":                 g.Index,
				"name":                  g.Name,
				"util_peak":             round3(g.UtilPeak),
				"util_mean":             round3(g.UtilMean),
				"memory_peak_bytes":     g.MemoryPeak,
				"run_memory_peak_bytes": g.RunMemoryPeak,
			}
		}
		m["gpus"] = gpus
	}
	if s.GPUError != "" {
		m["gpu_error"] = s.GPUError
	}
	return m
}

func round3(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 3, 64), 64)
	return v
}
