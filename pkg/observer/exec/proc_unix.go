//go:build unix

package exec

import (
	osexec "os/exec"
	"syscall"
)

// shellCommand runs cmdline with /bin/sh, as a crontab line is run.
func shellCommand(cmdline string) *osexec.Cmd {
	return osexec.Command("/bin/sh", "-c", cmdline)
}

// setProcessGroup puts the process in a group of its own: the terminal's
// Ctrl-C then reaches the run's command but not its observer, which still
// has the interrupted event to record; and kill stops the shell's
// children with it.
func setProcessGroup(cmd *osexec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func killProcessGroup(cmd *osexec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
