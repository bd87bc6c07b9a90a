//go:build !windows

// These tests drive Unix tools (sh, head, stty) and ptys; Windows has its
// own in capture_windows_test.go.

package capture

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// The child sees a terminal, and the bytes it writes arrive unchanged:
// \r stays, \n is not turned into \r\n.
func TestPTYExactBytes(t *testing.T) {
	stdout := tempFile(t, "out", 0)
	c := run(t, Options{Mode: ModePTY, Stdout: stdout, Stderr: tempFile(t, "err", 0), SpoolDir: t.TempDir()},
		"sh", "-c", `test -t 1 && printf 'tty\n'; test -t 2 && printf 'tty2\n' >&2; printf '10%%\r20%%\rdone\n\000\377'; stty size </dev/tty`)
	const want = "tty\ntty2\n10%\r20%\rdone\n\x00\xff24 80\n"
	if got := spoolBytes(t, c); string(got) != want {
		t.Errorf("spool = %q; want %q", got, want)
	}
	if got := fileBytes(t, stdout); string(got) != want {
		t.Errorf("passed-through = %q; want %q", got, want)
	}
	if got := c.StderrTail(); string(got) != want {
		t.Errorf("tail (merged stream) = %q; want %q", got, want)
	}
	if c.ReadErr() != nil || c.Err() != nil || c.PassErr() != nil {
		t.Errorf("errors: read %v, spool %v, pass %v", c.ReadErr(), c.Err(), c.PassErr())
	}
}

// The window size comes from the wrapper's terminal and follows it on
// SIGWINCH. The wrapper's terminal is itself a pty here.
func TestPTYWindowSize(t *testing.T) {
	outerM, outerS, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer outerM.Close()
	defer outerS.Close()
	setSize := func(rows, cols uint16) {
		if err := unix.IoctlSetWinsize(int(outerM.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
			t.Fatal(err)
		}
	}
	setSize(30, 100)
	// What the child writes reaches the outer terminal; read it as lines.
	lines := bufio.NewScanner(outerM)

	c, err := New(Options{Mode: ModePTY, Stdout: outerS, Stderr: outerS, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The trap answers the SIGWINCH the kernel sends when the size changes.
	cmd := exec.Command("sh", "-c", `trap 'stty size </dev/tty; exit 0' WINCH; stty size </dev/tty; while :; do sleep 0.02; done`)
	if err := c.Attach(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	c.Started()
	next := func() string {
		if !lines.Scan() {
			t.Fatalf("outer terminal closed: %v", lines.Err())
		}
		return strings.TrimRight(lines.Text(), "\r")
	}
	if got := next(); got != "30 100" {
		t.Fatalf("child saw size %q; want 30 100", got)
	}
	setSize(40, 120)
	// The outer pty signals its own foreground group, which is not us.
	syscall.Kill(os.Getpid(), syscall.SIGWINCH)
	if got := next(); got != "40 120" {
		t.Fatalf("after SIGWINCH child saw size %q; want 40 120", got)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
}
