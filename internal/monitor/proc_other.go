//go:build !linux

package monitor

import (
	"time"

	"github.com/shirou/gopsutil/v4/process"
)

// gopsutilProber reads processes through gopsutil where there is no
// /proc. A sample lists every process of the machine once to learn the
// parents; a reaped process's counters do not pass to its parent here, so
// a descendant that exits counts with its last sample.
type gopsutilProber struct {
	kids map[int][]int
}

func newProber() prober { return &gopsutilProber{} }

func (g *gopsutilProber) folds() bool { return false }

func (g *gopsutilProber) begin() {
	g.kids = map[int][]int{}
	pids, err := process.Pids()
	if err != nil {
		return
	}
	for _, pid := range pids {
		p := &process.Process{Pid: pid}
		if ppid, err := p.Ppid(); err == nil {
			g.kids[int(ppid)] = append(g.kids[int(ppid)], int(pid))
		}
	}
}

func (g *gopsutilProber) children(pid int, _ *procStat, out []int) []int {
	return append(out, g.kids[pid]...)
}

func (g *gopsutilProber) read(pid int, st *procStat) bool {
	*st = procStat{}
	p, err := process.NewProcess(int32(pid))
	if err != nil {
		return false
	}
	ct, err := p.CreateTime()
	if err != nil {
		return false
	}
	st.start = uint64(ct)
	if ppid, err := p.Ppid(); err == nil {
		st.ppid = int(ppid)
	}
	if t, err := p.Times(); err == nil {
		st.c.cpu = time.Duration((t.User + t.System) * float64(time.Second))
	}
	if m, err := p.MemoryInfo(); err == nil {
		st.rss = m.RSS
	}
	if io, err := p.IOCounters(); err == nil {
		st.c.read, st.c.write = io.ReadBytes, io.WriteBytes
	}
	if n, err := p.NumThreads(); err == nil {
		st.threads = int(n)
	}
	if n, err := p.NumFDs(); err == nil {
		st.fds = int(n)
	}
	return true
}
