package capture

import (
	"errors"
	"os"
	"os/exec"
)

// errNoPTY makes ParseMode refuse pty and auto pick pipe: the Unix pty
// package has no Windows counterpart here (ConPTY is not wired up).
var errNoPTY = errors.New("pty capture is not available on Windows; use -C pipe")

func setControllingTTY(*exec.Cmd) {}

func openPTY(*os.File) (ptmx, tty *os.File, err error) {
	return nil, nil, errNoPTY
}

// watchWinsize has nothing to do: there is no pty to resize and no
// SIGWINCH.
func (c *Capture) watchWinsize() {}

func stopWinsize(chan os.Signal) {}
