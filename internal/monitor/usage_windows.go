//go:build windows

package monitor

import (
	"os"
	"syscall"
	"time"
)

// UsageOf turns the child's os.ProcessState into a Usage: on Windows only
// the child's own CPU time is known.
func UsageOf(ps *os.ProcessState) *Usage {
	if ps == nil {
		return nil
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return nil
	}
	ft := func(f syscall.Filetime) time.Duration {
		return time.Duration(uint64(f.HighDateTime)<<32|uint64(f.LowDateTime)) * 100
	}
	return &Usage{CPU: ft(ru.UserTime) + ft(ru.KernelTime)}
}
