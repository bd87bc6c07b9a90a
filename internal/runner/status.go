package runner

// How the child ended, as the shell and the run record see it: start
// errors, exit status and the fail trace.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// startError maps a failed start to the shell's exit status and one line.
func startError(prog string, err error) (int, string) {
	switch {
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, os.ErrNotExist):
		return ExitNotFound, fmt.Sprintf("command not found: %s (check the name and your PATH)", prog)
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.ENOEXEC), errors.Is(err, syscall.EISDIR):
		return ExitNotExec, fmt.Sprintf("command cannot be executed: %s (%v; is it executable?)", prog, rootCause(err))
	default:
		return ExitNotExec, fmt.Sprintf("command could not be started: %s: %v", prog, rootCause(err))
	}
}

func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// exitStatus returns the shell's view of how the child ended, and the
// signal's name when a signal ended it.
func exitStatus(ps *os.ProcessState) (int, string) {
	if ps == nil {
		return 1, ""
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		sig := ws.Signal()
		return 128 + int(sig), signalName(sig)
	}
	return ps.ExitCode(), ""
}

func isInterruptSignal(ps *os.ProcessState) bool {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return false
	}
	switch ws.Signal() {
	case syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT:
		return true
	}
	return false
}

// failTrace is the run's fail_trace: a line with the exit status or
// signal, then the tail of stderr, each line ending in "\n" as Sacred's
// trace lines do.
func failTrace(code int, sig string, tail []byte) []string {
	var first string
	if sig != "" {
		first = fmt.Sprintf("command killed by %s (exit status %d)\n", sig, code)
	} else {
		first = fmt.Sprintf("command exited with status %d\n", code)
	}
	trace := []string{first}
	text := strings.ToValidUTF8(string(tail), "\uFFFD")
	if text == "" {
		return trace
	}
	lines := strings.SplitAfter(text, "\n")
	for _, l := range lines {
		if l == "" {
			continue
		}
		if !strings.HasSuffix(l, "\n") {
			l += "\n"
		}
		trace = append(trace, l)
	}
	return trace
}
