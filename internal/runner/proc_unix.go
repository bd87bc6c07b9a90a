//go:build !windows

package runner

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
)

// prepareChild puts the child in a process group of its own, so that a
// forwarded signal reaches its whole tree, unless pty capture already made
// it a session leader; and hands it the terminal when the wrapper owns it.
func prepareChild(cmd *exec.Cmd) *foreground {
	fg := setForeground(cmd)
	if !cmd.SysProcAttr.Setsid {
		cmd.SysProcAttr.Setpgid = true
	}
	return fg
}

// signalChild forwards sig to the child's process group (its id is the
// child's pid). It returns false: the group gets the grace period to stop
// before killChild.
func signalChild(p *os.Process, sig syscall.Signal) (killed bool) {
	_ = syscall.Kill(-p.Pid, sig)
	return false
}

// killChild kills the child's whole process group.
func killChild(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
}

func signalName(sig syscall.Signal) string {
	names := map[syscall.Signal]string{
		syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
		syscall.SIGILL: "SIGILL", syscall.SIGABRT: "SIGABRT", syscall.SIGBUS: "SIGBUS",
		syscall.SIGFPE: "SIGFPE", syscall.SIGKILL: "SIGKILL", syscall.SIGSEGV: "SIGSEGV",
		syscall.SIGPIPE: "SIGPIPE", syscall.SIGALRM: "SIGALRM", syscall.SIGTERM: "SIGTERM",
		syscall.SIGUSR1: "SIGUSR1", syscall.SIGUSR2: "SIGUSR2", syscall.SIGXCPU: "SIGXCPU",
	}
	if n, ok := names[sig]; ok {
		return n
	}
	return "signal " + strconv.Itoa(int(sig))
}

var sigpipeOnce sync.Once

// catchSIGPIPE makes a write to a closed pipe fail with EPIPE instead of
// killing the wrapper (Go's default for stdout and stderr), so that a
// reader of sacred's stderr that goes away cannot leave the run RUNNING
// and the child orphaned. It catches rather than ignores the signal: a
// caught signal is reset to its default on exec, so the child still gets
// SIGPIPE as usual. The signals are never read; they only need a channel.
func catchSIGPIPE() {
	sigpipeOnce.Do(func() {
		signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	})
}

// processAlive tells whether a process with this pid exists (a process of
// another user counts: signal 0 then fails with EPERM).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
