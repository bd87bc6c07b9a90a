//go:build unix && !linux

package monitor

import (
	"os"
	"runtime"
	"syscall"
	"time"
)

// UsageOf turns the child's os.ProcessState into a Usage (wait4's rusage:
// the child and the descendants it waited for). ru_maxrss is in bytes on
// macOS and in KiB on the BSDs; the block counts are not bytes and are
// left out.
func UsageOf(ps *os.ProcessState) *Usage {
	if ps == nil {
		return nil
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return nil
	}
	maxRSS := uint64(ru.Maxrss)
	if runtime.GOOS != "darwin" && runtime.GOOS != "ios" {
		maxRSS <<= 10
	}
	return &Usage{
		CPU:    time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		MaxRSS: maxRSS,
	}
}
