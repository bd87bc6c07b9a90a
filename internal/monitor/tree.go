package monitor

import (
	"context"
	"errors"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// tree tracks the processes of one run from sample to sample.
type tree struct {
	p    prober
	root int
	gpu  *gpuProbe

	began time.Time
	// known holds the processes seen at the last sample, with what they
	// had used by then.
	known map[procKey]procStat
	// rootKey is the child itself, once seen.
	rootKey  procKey
	rootSeen bool
	rootLast counters
	// gone sums the counters, at their last sample, of the processes
	// that left the tree without passing them to a parent in it.
	gone counters

	last     counters // the tree's total at the previous sample
	lastTime time.Time
	sum      Summary
	seen     int // distinct processes seen
	gpuAcc   map[int]*gpuAcc

	// scratch, reused between samples
	queue    []int
	visit    map[int]bool
	now      map[procKey]procStat
	nowPids  map[int]bool
	prevPids map[int]bool
}

type gpuAcc struct {
	GPUSummary
	utilSum float64
	n       int
}

func newTree(p prober, root int, start time.Time) *tree {
	return &tree{
		p:        p,
		root:     root,
		began:    start,
		lastTime: start,
		known:    map[procKey]procStat{},
		visit:    map[int]bool{},
		now:      map[procKey]procStat{},
		nowPids:  map[int]bool{},
		prevPids: map[int]bool{},
		gpuAcc:   map[int]*gpuAcc{},
	}
}

// walk reads every process of the tree now: the descendants of the root,
// and the processes of the last sample that still live (orphans included).
func (t *tree) walk() {
	t.p.begin()
	clear(t.visit)
	clear(t.now)
	clear(t.nowPids)
	t.queue = append(t.queue[:0], t.root)
	// Processes seen before are looked up by pid and kept only when it is
	// still the same process (same start time).
	for k := range t.known {
		t.queue = append(t.queue, k.pid)
	}
	var st procStat
	for i := 0; i < len(t.queue); i++ {
		pid := t.queue[i]
		if t.visit[pid] {
			continue
		}
		t.visit[pid] = true
		if !t.p.read(pid, &st) {
			continue
		}
		k := procKey{pid, st.start}
		_, wasKnown := t.known[k]
		switch {
		case pid == t.root && !t.rootSeen:
			t.rootKey, t.rootSeen = k, true
		case pid == t.root && k != t.rootKey:
			continue // the pid of a child that exited, reused
		case i > 0 && !wasKnown && !t.nowPids[st.ppid]:
			// A known pid now names another process, which is not
			// (or not yet seen as) a descendant: should it be a new
			// child of the tree, its parent's children list brings
			// it back.
			delete(t.visit, pid)
			continue
		}
		t.now[k] = st
		t.nowPids[pid] = true
		t.queue = t.p.children(pid, &st, t.queue)
	}
}

// account compares this walk with the last: processes gone pass their
// counters on, and it returns the tree's total.
//
// A process gone whose parent (as last read) was in the tree was reaped by
// that parent, whose counters now hold it, or will hold it in wait4's
// report of the child: also when the parent is gone too, as when a script
// waited for its last command and exited between two samples. A process
// orphaned earlier was read with its new parent (init, or a subreaper),
// outside the tree, and counts with its last sample.
func (t *tree) account() counters {
	clear(t.prevPids)
	for k := range t.known {
		t.prevPids[k.pid] = true
	}
	for k, st := range t.known {
		if _, ok := t.now[k]; ok {
			continue
		}
		if k == t.rootKey {
			t.rootLast = st.c
			continue // settled by finish, with wait4's report when there is one
		}
		if t.p.folds() && (t.nowPids[st.ppid] || t.prevPids[st.ppid]) {
			continue
		}
		t.gone.add(st.c)
	}
	var total counters
	total.add(t.gone)
	for k, st := range t.now {
		total.add(st.c)
		if _, before := t.known[k]; !before {
			// A process never comes back once gone: new here is
			// new to the run, so no set of every process is kept.
			t.seen++
		}
		if k == t.rootKey {
			t.rootLast = st.c
		}
	}
	if t.rootSeen {
		if _, alive := t.now[t.rootKey]; !alive {
			total.add(t.rootLast)
		}
	}
	t.known, t.now = t.now, t.known
	return total
}

// atLeast returns c, raised where it is below last: counters read at
// slightly different moments (a child reaped between reading its parent
// and itself) can make a sum dip, and what was reported never goes back.
func (c counters) atLeast(last counters) counters {
	return counters{cpu: max(c.cpu, last.cpu), read: max(c.read, last.read), write: max(c.write, last.write)}
}

// sample reads the tree and returns its metric points (nil unless emit).
func (t *tree) sample(ctx context.Context, now time.Time, emit bool) []observer.MetricSeries {
	t.walk()
	total := t.account().atLeast(t.last)

	var rss, hwm uint64
	var threads, fds int
	for _, st := range t.known {
		rss += st.rss
		hwm = max(hwm, st.hwm)
		threads += st.threads
		fds += st.fds
	}
	procs := len(t.known)
	s := &t.sum
	s.RSSPeak = max(s.RSSPeak, rss, hwm)
	s.ThreadsPeak = max(s.ThreadsPeak, threads)
	s.OpenFilesPeak = max(s.OpenFilesPeak, fds)
	s.ProcessesPeak = max(s.ProcessesPeak, procs)

	var cpuPct float64
	if dt := now.Sub(t.lastTime); dt > 0 {
		cpuPct = 100 * float64(total.cpu-t.last.cpu) / float64(dt)
	}
	t.last, t.lastTime = total, now
	if !emit {
		return nil
	}
	s.Samples++
	s.CPUPercentPeak = max(s.CPUPercentPeak, cpuPct)

	ts := now.UTC()
	step := int64(s.Samples - 1)
	point := func(name string, v float64) observer.MetricSeries {
		return observer.MetricSeries{Name: name, Points: []observer.MetricPoint{{Step: step, Value: v, Time: ts}}}
	}
	series := []observer.MetricSeries{
		point(MetricCPUPercent, round3(cpuPct)),
		point(MetricRSS, float64(rss)),
		point(MetricRead, float64(total.read)),
		point(MetricWrite, float64(total.write)),
		point(MetricThreads, float64(threads)),
		point(MetricOpenFiles, float64(fds)),
		point(MetricProcesses, float64(procs)),
	}
	if t.gpu != nil {
		series = t.sampleGPUs(ctx, series, point)
	}
	return series
}

func (t *tree) sampleGPUs(ctx context.Context, series []observer.MetricSeries, point func(string, float64) observer.MetricSeries) []observer.MetricSeries {
	pids := make(map[int]bool, len(t.known))
	for k := range t.known {
		pids[k.pid] = true
	}
	gpus, err := t.gpu.query(ctx, pids)
	if err != nil {
		if ctx.Err() != nil {
			return series // stopping: the call was cut short
		}
		t.sum.GPUError = err.Error()
		if errors.Is(err, errGPUOff) {
			// nvidia-smi is slow, and a broken one fails every time.
			t.gpu = nil
		}
		return series
	}
	t.sum.GPUError = ""
	for _, g := range gpus {
		a := t.gpuAcc[g.index]
		if a == nil {
			a = &gpuAcc{GPUSummary: GPUSummary{Index: g.index, Name: g.name}}
			t.gpuAcc[g.index] = a
		}
		if g.hasUtil {
			a.UtilPeak = max(a.UtilPeak, g.util)
			a.utilSum += g.util
			a.n++
			series = append(series, point(gpuMetric(g.index, "util"), g.util))
		}
		if g.hasMemory {
			a.MemoryPeak = max(a.MemoryPeak, g.memory)
			series = append(series, point(gpuMetric(g.index, "memory_bytes"), float64(g.memory)))
		}
		a.RunMemoryPeak = max(a.RunMemoryPeak, g.runMemory)
		series = append(series, point(gpuMetric(g.index, "run_memory_bytes"), float64(g.runMemory)))
	}
	return series
}

// finish reads what is still alive one last time and settles the child's
// own counters with wait4's report.
func (t *tree) finish(now time.Time, usage *Usage) Summary {
	t.walk()
	total := t.account()
	if _, alive := t.known[t.rootKey]; usage != nil && (!alive || !t.rootSeen) {
		// wait4's report covers the child and every descendant it
		// waited for, up to its exit, exactly: it replaces the child's
		// last sample (nothing when the child exited before it was ever
		// read).
		total.cpu += max(0, usage.CPU-t.rootLast.cpu)
		total.read += usage.ReadBytes - min(usage.ReadBytes, t.rootLast.read)
		total.write += usage.WriteBytes - min(usage.WriteBytes, t.rootLast.write)
	} else {
		total = total.atLeast(t.last)
	}
	if usage != nil {
		t.sum.RSSPeak = max(t.sum.RSSPeak, usage.MaxRSS)
	}
	for _, st := range t.known {
		t.sum.RSSPeak = max(t.sum.RSSPeak, st.hwm)
	}
	s := t.sum
	s.Wall = now.Sub(t.began)
	s.CPU = total.cpu
	s.ReadBytes = total.read
	s.WriteBytes = total.write
	s.Processes = t.seen
	for i := 0; len(s.GPUs) < len(t.gpuAcc); i++ {
		if a, ok := t.gpuAcc[i]; ok {
			g := a.GPUSummary
			if a.n > 0 {
				g.UtilMean = a.utilSum / float64(a.n)
			}
			s.GPUs = append(s.GPUs, g)
		}
	}
	return s
}
