//go:build !windows

package capture

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// errNoPTY is nil where pseudo-terminals exist; see pty_windows.go.
var errNoPTY error

// setControllingTTY makes the child a session leader whose controlling
// terminal is the pty: it then sees a real terminal (job control, isatty,
// SIGWINCH). Ctty is a descriptor number in the child: 1 is its stdout.
func setControllingTTY(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	cmd.SysProcAttr.Setctty = true
	cmd.SysProcAttr.Ctty = 1
}

// openPTY opens a pseudo-terminal for the child: output post-processing is
// off, so the spool gets exactly the bytes the child wrote (no \n → \r\n),
// and the window size is that of the wrapper's terminal, or 80x24.
func openPTY(stdout *os.File) (ptmx, tty *os.File, err error) {
	ptmx, tty, err = pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("capture: open a pseudo-terminal: %w (use capture mode pipe instead)", err)
	}
	err = withFD(tty, func(fd int) error {
		t, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
		if err != nil {
			return err
		}
		t.Oflag &^= unix.OPOST
		return unix.IoctlSetTermios(fd, ioctlSetTermios, t)
	})
	if err != nil {
		ptmx.Close()
		tty.Close()
		return nil, nil, fmt.Errorf("capture: turn off output processing of the pseudo-terminal: %w", err)
	}
	if !copyWinsize(stdout, ptmx) {
		// Not a terminal: a 0x0 size confuses progress bars more than a
		// conventional one.
		withFD(ptmx, func(fd int) error {
			return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80})
		})
	}
	return ptmx, tty, nil
}

// copyWinsize gives ptmx the window size of from; false when from is not a
// terminal.
func copyWinsize(from, ptmx *os.File) bool {
	var ws *unix.Winsize
	err := withFD(from, func(fd int) error {
		var err error
		ws, err = unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
		return err
	})
	if err != nil || ws.Row == 0 && ws.Col == 0 {
		return false
	}
	// Through Control, not pty.Setsize: File.Fd would make the ptmx
	// blocking and so break the read deadline Drain relies on.
	return withFD(ptmx, func(fd int) error {
		return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, ws)
	}) == nil
}

// watchWinsize keeps the pty's window size equal to the wrapper's terminal
// on SIGWINCH (the kernel then signals the child itself).
func (c *Capture) watchWinsize() {
	if !isTerminal(c.stdout) {
		return
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	c.winch = ch
	ptmx, stdout := c.readers[0], c.stdout
	go func() {
		for range ch {
			copyWinsize(stdout, ptmx)
		}
	}()
}

func stopWinsize(ch chan os.Signal) {
	signal.Stop(ch)
	close(ch)
}
