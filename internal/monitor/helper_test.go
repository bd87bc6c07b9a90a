//go:build unix

package monitor

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the processes the monitor watches, so that
// what they use is known exactly: MONITOR_HELPER=burn:200ms burns that
// much CPU time of its own and exits (burnwait:200ms then says "burned"
// and waits for its stdin to close); alloc:200 touches 200 MiB, says
// "ready" and waits for its stdin to close.
func TestMain(m *testing.M) {
	if h := os.Getenv("MONITOR_HELPER"); h != "" {
		os.Exit(helper(h))
	}
	os.Exit(m.Run())
}

func helper(h string) int {
	mode, arg, _ := strings.Cut(h, ":")
	switch mode {
	case "burn", "burnwait":
		d, err := time.ParseDuration(arg)
		if err != nil {
			return 2
		}
		burn(d)
		if mode == "burnwait" {
			fmt.Println("burned")
			io.Copy(io.Discard, os.Stdin)
		}
		return 0
	case "alloc":
		mib, err := strconv.Atoi(arg)
		if err != nil {
			return 2
		}
		b := make([]byte, mib<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		b[len(b)-1] = 2 // keep b alive until here
		return 0
	}
	return 2
}

// burn spins until the process has used d of CPU time.
func burn(d time.Duration) {
	x := 0
	for {
		for i := 0; i < 1_000_000; i++ {
			x += i
		}
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return
		}
		if time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) >= d {
			_ = x
			return
		}
	}
}

// tick is the unit of /proc's CPU times. A process's user and system
// times are each truncated to it, so a tree's sum may fall short of what
// its processes burned by up to two ticks per process.
const tick = 10 * time.Millisecond

// helperCmd is a command line that runs the test binary as a helper, for
// use inside sh -c scripts.
func helperCmd(mode string) string {
	return "MONITOR_HELPER=" + mode + " " + strconv.Quote(os.Args[0])
}

// child is a process started by a test with a pipe to its stdin (closing
// it releases a script waiting on `read`) and its stdout as lines.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
}

func startScript(t testing.TB, script string) *child {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: in, lines: bufio.NewScanner(out)}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		in.Close()
		cmd.Wait()
	})
	return c
}

// waitLine reads lines until want.
func (c *child) waitLine(t testing.TB, want string) {
	t.Helper()
	for c.lines.Scan() {
		if c.lines.Text() == want {
			return
		}
	}
	t.Fatalf("the child ended before saying %q (%v)", want, c.lines.Err())
}

// end releases the child and waits for it.
func (c *child) end(t testing.TB) *os.ProcessState {
	t.Helper()
	c.stdin.Close()
	for c.lines.Scan() {
	}
	// `read` at the end of a script fails on EOF: the exit status says
	// nothing here.
	if err := c.cmd.Wait(); c.cmd.ProcessState == nil {
		t.Fatalf("child: %v", err)
	}
	return c.cmd.ProcessState
}
