//go:build linux

package monitor

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"
)

// procfs reads /proc directly. gopsutil's Linux Children reads the stat
// file of every process of the machine for each parent, which for a tree
// of 100 processes is some 100 × (processes on the machine) reads per
// sample; here a sample costs a few reads per process of the tree (see
// docs/performance.md).
type procfs struct {
	root     string // "/proc"
	pageSize uint64
	buf      []byte
	path     []byte
	names    []string
}

// clockTick is the unit of the times in /proc/PID/stat: USER_HZ, which is
// 100 on every Linux architecture Go supports.
const clockTick = time.Second / 100

func newProber() prober {
	return &procfs{root: "/proc", pageSize: uint64(os.Getpagesize()), buf: make([]byte, 4096)}
}

func (p *procfs) begin()      {}
func (p *procfs) folds() bool { return true }

// file builds /proc/PID/name in a reused buffer.
func (p *procfs) file(pid int, name string) string {
	p.path = append(p.path[:0], p.root...)
	p.path = append(p.path, '/')
	p.path = strconv.AppendInt(p.path, int64(pid), 10)
	if name != "" {
		p.path = append(p.path, '/')
		p.path = append(p.path, name...)
	}
	return string(p.path)
}

// readFile reads a small /proc file into the reused buffer.
func (p *procfs) readFile(path string) ([]byte, bool) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	defer syscall.Close(fd)
	n := 0
	for {
		if n == len(p.buf) {
			p.buf = append(p.buf, make([]byte, len(p.buf))...)
		}
		m, err := syscall.Read(fd, p.buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, false
		}
		if m == 0 {
			return p.buf[:n], true
		}
		n += m
	}
}

func (p *procfs) read(pid int, st *procStat) bool {
	*st = procStat{}
	data, ok := p.readFile(p.file(pid, "stat"))
	if !ok || !parseStat(data, st, p.pageSize) {
		return false
	}
	if data, ok := p.readFile(p.file(pid, "status")); ok {
		st.hwm = statusKiB(data, "VmHWM:") << 10
	}
	// io needs ptrace access: a setuid descendant keeps its I/O to itself.
	if data, ok := p.readFile(p.file(pid, "io")); ok {
		st.c.read = ioField(data, "read_bytes:")
		st.c.write = ioField(data, "write_bytes:")
	}
	st.fds = p.countFDs(pid)
	return true
}

// countFDs counts the open descriptors: Linux 6.2+ gives the count as the
// size of /proc/PID/fd, older kernels need the directory read.
func (p *procfs) countFDs(pid int) int {
	dir := p.file(pid, "fd")
	var s syscall.Stat_t
	if err := syscall.Stat(dir, &s); err != nil {
		return 0
	}
	if s.Size > 0 {
		return int(s.Size)
	}
	f, err := os.Open(dir)
	if err != nil {
		return 0
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	return len(names)
}

// children reads /proc/PID/task/TID/children of each thread: a child
// belongs to the thread that forked it.
func (p *procfs) children(pid int, st *procStat, out []int) []int {
	if st.threads <= 1 {
		return p.threadChildren(pid, pid, out)
	}
	f, err := os.Open(p.file(pid, "task"))
	if err != nil {
		return out
	}
	p.names, _ = f.Readdirnames(-1)
	f.Close()
	for _, name := range p.names {
		if tid, err := strconv.Atoi(name); err == nil {
			out = p.threadChildren(pid, tid, out)
		}
	}
	return out
}

func (p *procfs) threadChildren(pid, tid int, out []int) []int {
	name := "task/" + strconv.Itoa(tid) + "/children"
	data, ok := p.readFile(p.file(pid, name))
	if !ok {
		return out
	}
	for _, f := range bytes.Fields(data) {
		if c, err := strconv.Atoi(string(f)); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// parseStat reads /proc/PID/stat (proc(5)): the name in parentheses may
// hold spaces and parentheses, so fields are counted from the last ')'.
func parseStat(data []byte, st *procStat, pageSize uint64) bool {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 > len(data) {
		return false
	}
	// fields[0] is field 3 (state).
	var fields [22][]byte
	n := 0
	rest := data[i+2:]
	for n < len(fields) {
		rest = bytes.TrimLeft(rest, " ")
		if len(rest) == 0 {
			break
		}
		j := bytes.IndexAny(rest, " \n")
		if j < 0 {
			j = len(rest)
		}
		fields[n] = rest[:j]
		n++
		rest = rest[j:]
	}
	if n < len(fields) {
		return false
	}
	num := func(field int) uint64 {
		v, _ := strconv.ParseUint(string(fields[field-3]), 10, 64)
		return v
	}
	st.ppid = int(num(4))
	ticks := num(14) + num(15) + num(16) + num(17) // utime stime cutime cstime
	st.c.cpu = time.Duration(ticks) * clockTick
	st.threads = int(num(20))
	st.start = num(22)
	st.rss = num(24) * pageSize
	return true
}

// statusKiB returns the value of a "Key:   123 kB" line of
// /proc/PID/status.
func statusKiB(data []byte, key string) uint64 {
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		return 0
	}
	line := data[i+len(key):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	line = bytes.TrimSuffix(bytes.TrimSpace(line), []byte(" kB"))
	v, _ := strconv.ParseUint(string(bytes.TrimSpace(line)), 10, 64)
	return v
}

// ioField returns the value of a "key: 123" line of /proc/PID/io.
func ioField(data []byte, key string) uint64 {
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		return 0
	}
	line := data[i+len(key):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	v, _ := strconv.ParseUint(string(bytes.TrimSpace(line)), 10, 64)
	return v
}

// UsageOf turns the child's os.ProcessState into a Usage: wait4's rusage
// counts the child and the descendants it waited for. ru_maxrss is in KiB
// and the block counts in 512-byte units (the same storage I/O as
// /proc/PID/io).
func UsageOf(ps *os.ProcessState) *Usage {
	if ps == nil {
		return nil
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return nil
	}
	return &Usage{
		CPU:        time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		MaxRSS:     uint64(ru.Maxrss) << 10,
		ReadBytes:  uint64(ru.Inblock) * 512,
		WriteBytes: uint64(ru.Oublock) * 512,
	}
}
