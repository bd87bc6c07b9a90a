package runner

import (
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

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
