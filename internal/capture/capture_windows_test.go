package capture

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The child of the pipe test is this test binary itself, so the test needs
// no tool that Windows may lack.
const helperEnv = "SACRED_CAPTURE_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		fmt.Fprint(os.Stdout, "out\r\nline\x00\xff")
		fmt.Fprint(os.Stderr, "err line\n")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestParseModeWindows(t *testing.T) {
	if _, err := ParseMode("pty", nil); err == nil || !strings.Contains(err.Error(), "-C pipe") {
		t.Errorf("ParseMode(pty) error = %v; want one pointing to -C pipe", err)
	}
	// Auto is pipe even on a console.
	for _, f := range []*os.File{nil, os.Stdout} {
		if got, err := ParseMode("", f); err != nil || got != ModePipe {
			t.Errorf("ParseMode(\"\", %v) = %q, %v; want pipe", f, got, err)
		}
	}
	for _, s := range []string{"pipe", "fd", "sys"} {
		if got, err := ParseMode(s, nil); err != nil || got != ModePipe {
			t.Errorf("ParseMode(%q) = %q, %v; want pipe", s, got, err)
		}
	}
	if got, err := ParseMode("no", nil); err != nil || got != ModeNo {
		t.Errorf("ParseMode(no) = %q, %v; want no", got, err)
	}
}

// Pipe mode passes the child's exact bytes through and spools them.
func TestPipeWindows(t *testing.T) {
	dir := t.TempDir()
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	c, err := New(Options{Mode: ModePipe, Stdout: stdout, Stderr: stderr, SpoolDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	if err := c.Attach(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.Abort()
		t.Fatal(err)
	}
	if err := c.Started(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper child: %v", err)
	}
	if err := c.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	const wantOut, wantErr = "out\r\nline\x00\xff", "err line\n"
	for _, tc := range []struct {
		name, want string
	}{{"stdout", wantOut}, {"stderr", wantErr}} {
		got, err := os.ReadFile(filepath.Join(dir, tc.name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("passed-through %s = %q; want %q", tc.name, got, tc.want)
		}
	}
	out := c.Output()
	buf := make([]byte, out.Size())
	if n, err := out.ReadAt(buf, 0); n != len(buf) {
		t.Fatalf("ReadAt spool: %d, %v", n, err)
	}
	// The two pipes are copied concurrently, so only the content of each
	// stream is fixed, not their interleaving.
	if len(buf) != len(wantOut)+len(wantErr) || !strings.Contains(string(buf), wantOut) || !strings.Contains(string(buf), wantErr) {
		t.Errorf("spool = %q; want both %q and %q", buf, wantOut, wantErr)
	}
	if got := string(c.StderrTail()); got != wantErr {
		t.Errorf("stderr tail = %q; want %q", got, wantErr)
	}
}
