//go:build !windows

package runner

import (
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// foreground hands the terminal to the child's process group when the
// wrapper owns it, so that a child reading the terminal is not stopped
// (SIGTTIN) and Ctrl-C reaches it directly; restore takes it back.
type foreground struct {
	once sync.Once
	fd   int
}

func (f *foreground) restore() {
	f.once.Do(func() {
		signal.Ignore(syscall.SIGTTOU)
		defer signal.Reset(syscall.SIGTTOU)
		_ = tcsetpgrp(f.fd, syscall.Getpgrp())
	})
}

// setForeground arranges for the child's new process group to become the
// terminal's foreground group when stdin is a terminal that the wrapper's
// group owns. It returns nil when the wrapper does not own a terminal
// (cron, CI, pipes) or the capture mode already gave the child a session of
// its own.
func setForeground(cmd *exec.Cmd) *foreground {
	if cmd.SysProcAttr.Setsid || cmd.Stdin != os.Stdin {
		return nil
	}
	fd := int(os.Stdin.Fd())
	pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil || pgrp != unix.Getpgrp() {
		return nil
	}
	cmd.SysProcAttr.Foreground = true
	cmd.SysProcAttr.Ctty = fd // in the child, stdin is fd 0 as well
	return &foreground{fd: fd}
}

func tcsetpgrp(fd, pgrp int) error {
	return unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, pgrp)
}
