package runner

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// foreground has nothing to hand over on Windows: there is no terminal
// process group. The child shares the wrapper's console, so a Ctrl-C
// reaches it (and its own children) directly.
type foreground struct{}

func (*foreground) restore() {}

// prepareChild changes nothing on Windows: no process group is created, so
// the console's Ctrl-C keeps reaching the child as on a Unix terminal.
func prepareChild(*exec.Cmd) *foreground { return nil }

// signalChild cannot forward sig: Windows has no signals to send to another
// process. The run's status is already set by the caller, so the child is
// killed at once (only the child itself: its own children, if any, are not
// tracked).
func signalChild(p *os.Process, _ syscall.Signal) (killed bool) {
	_ = p.Kill()
	return true
}

func killChild(p *os.Process) {
	_ = p.Kill()
}

// signalName is only reached for a child ended by a signal, which Windows
// never reports; it exists so the shared code compiles.
func signalName(sig syscall.Signal) string {
	return "signal " + strconv.Itoa(int(sig))
}

// catchSIGPIPE has nothing to do on Windows: a write to a closed pipe
// fails with an error there.
func catchSIGPIPE() {}

// processAlive tells whether a process with this pid exists.
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}
