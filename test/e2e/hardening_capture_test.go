//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sacred-go/sacred/pkg/observer"
)

// fullDiskRun is one `sacred run -F FULL -s sqlite://OTHER -- seq 1 N`,
// with FULL a 1 MiB tmpfs the output does not fit in, and what it left.
type fullDiskRun struct {
	res  result
	want string // the child's output
	cout string // what file storage's cout.txt holds
	sql  *observer.Run
}

// runOnFullDisk runs seq in capture mode mode with file storage on a
// full disk and SQLite on a roomy one. Making a small disk needs root: the
// test is skipped elsewhere, except in CI.
func runOnFullDisk(t *testing.T, mode string) fullDiskRun {
	t.Helper()
	full := t.TempDir()
	if err := unix.Mount("tmpfs", full, "tmpfs", 0, "size=1m"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a 1 MiB tmpfs as a full disk: %v", err)
		}
		t.Skipf("cannot mount a 1 MiB tmpfs as a full disk (%v; needs root)", err)
	}
	t.Cleanup(func() { unix.Unmount(full, unix.MNT_DETACH) })

	const n = 300000 // about 2 MB of output
	var want strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	// The wrapper's private spool goes to the default temp dir, another
	// disk than the full one.
	url := "sqlite:///" + filepath.Join(t.TempDir(), "runs.db")
	res := sacred(t, t.TempDir(), nil,
		"run", "-F", full, "-s", url, "-C", mode, "--", "seq", "1", fmt.Sprint(n))
	if res.code != 0 {
		t.Fatalf("exit %d, want the child's 0; stderr:\n%s", res.code, res.stderr)
	}
	if res.stdout != want.String() {
		t.Errorf("passed-through output has %d bytes; want the child's %d", len(res.stdout), want.Len())
	}
	ids := runDirs(t, full)
	if len(ids) != 1 {
		t.Fatalf("file storage holds runs %v; want one (stderr:\n%s)", ids, res.stderr)
	}
	return fullDiskRun{
		res:  res,
		want: want.String(),
		cout: readFile(t, filepath.Join(full, ids[0], "cout.txt")),
		sql:  readSQLRun(t, url, "1"),
	}
}

// TestHardening10DiskFullOtherStoresGetWholeOutput: file storage's disk
// fills up part way through the output. Its cout.txt keeps what fitted;
// SQLite, on another disk, records the whole output and the run's end.
func TestHardening10DiskFullOtherStoresGetWholeOutput(t *testing.T) {
	for _, mode := range []string{"pipe", "pty"} {
		t.Run(mode, func(t *testing.T) {
			r := runOnFullDisk(t, mode)
			if len(r.cout) == 0 || len(r.cout) >= len(r.want) || !strings.HasPrefix(r.want, r.cout) {
				t.Errorf("cout.txt holds %d bytes; want a part of the %d bytes of output, from its start", len(r.cout), len(r.want))
			}
			if r.sql.Status != observer.StatusCompleted {
				t.Errorf("SQLite status %s; want %s", r.sql.Status, observer.StatusCompleted)
			}
			if string(r.sql.Output) != r.want {
				t.Errorf("SQLite holds %d bytes of output; want the whole %d", len(r.sql.Output), len(r.want))
			}
			if strings.Contains(r.res.stderr, "output capture stopped") {
				t.Errorf("stderr says the capture stopped, though only file storage's disk is full:\n%s", r.res.stderr)
			}
		})
	}
}

// TestHardening10DiskFullFileStoreSaysWhatItLost: the run's stderr says
// from which byte file storage lacks the output, and why, in the one line
// where file storage sums up what its record lacks.
func TestHardening10DiskFullFileStoreSaysWhatItLost(t *testing.T) {
	r := runOnFullDisk(t, "pipe")
	line := ""
	for l := range strings.Lines(r.res.stderr) {
		if strings.Contains(l, fmt.Sprintf("without output bytes %d to ", len(r.cout))) {
			line = l
		}
	}
	if line == "" || !strings.Contains(line, "file storage") || !strings.Contains(line, "no space left on device") {
		t.Errorf("stderr does not say that file storage lacks the output from byte %d (no space left on device):\n%s", len(r.cout), r.res.stderr)
	}
}
