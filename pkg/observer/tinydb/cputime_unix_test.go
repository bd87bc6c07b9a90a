//go:build unix

package tinydb

import (
	"syscall"
	"time"
)

// cpuTime is the process's user and system CPU time so far: what a
// benchmark costs, apart from waiting, on a machine shared with others.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
