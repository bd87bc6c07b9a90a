package capture

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sacred-go/sacred/internal/testutil"
)

// The child writes seqOut (digits and newlines) to stdout and errBytes
// bytes of 'e' to stderr at the same time, so both copiers append around
// the moment the observer's file fills up; the two streams can be told
// apart in the record byte by byte.
const (
	seqN     = 300000
	errBytes = 1 << 20
)

var seqOut = func() string {
	var b strings.Builder
	for i := 1; i <= seqN; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return b.String()
}()

var twoStreams = fmt.Sprintf("seq 1 %d & head -c %d /dev/zero | tr '\\0' e >&2; wait", seqN, errBytes)

// stdoutOnly leaves the stdout copier alone to meet the full disk (in
// pipe mode with splice, the zero-copy path).
var stdoutOnly = fmt.Sprintf("seq 1 %d", seqN)

// ownerFile creates the observer's empty output file in dir.
func ownerFile(t *testing.T, dir string) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "cout.txt"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// ownedRun captures twoStreams in mode with owner as Options.SpoolFile
// and checks that the pass-through got everything.
func ownedRun(t *testing.T, mode Mode, owner *os.File, spoolDir string) *Capture {
	t.Helper()
	return ownedRunScript(t, mode, owner, spoolDir, twoStreams, errBytes)
}

// ownedRunScript is ownedRun with a child script writing seqOut to stdout
// and nerr bytes of 'e' to stderr.
func ownedRunScript(t *testing.T, mode Mode, owner *os.File, spoolDir, script string, nerr int) *Capture {
	t.Helper()
	stdout, stderr := tempFile(t, "out", 0), tempFile(t, "err", 0)
	c := run(t, Options{Mode: mode, Stdout: stdout, Stderr: stderr, SpoolDir: spoolDir, SpoolFile: owner}, "sh", "-c", script)
	if mode == ModePTY {
		checkStreams(t, "passed-through output", fileBytes(t, stdout), nerr, true)
	} else {
		if got := fileBytes(t, stdout); string(got) != seqOut {
			t.Errorf("passed-through stdout has %d bytes, not the child's %d", len(got), len(seqOut))
		}
		if got := fileBytes(t, stderr); len(got) != nerr || bytes.Count(got, []byte("e")) != nerr {
			t.Errorf("passed-through stderr has %d bytes, not the child's %d", len(got), nerr)
		}
	}
	if c.PassErr() != nil || c.ReadErr() != nil {
		t.Errorf("errors: pass %v, read %v", c.PassErr(), c.ReadErr())
	}
	return c
}

// checkStreams checks that b holds seqOut and wantErr bytes of stderr,
// each stream in order: whole, or a prefix of each when whole is false.
func checkStreams(t *testing.T, what string, b []byte, wantErr int, whole bool) {
	t.Helper()
	out := bytes.ReplaceAll(b, []byte("e"), nil)
	nerr := len(b) - len(out)
	if whole && (string(out) != seqOut || nerr != wantErr) {
		t.Errorf("%s has %d bytes of stdout and %d of stderr; want all %d and %d, in order", what, len(out), nerr, len(seqOut), wantErr)
	}
	if !whole && (!strings.HasPrefix(seqOut, string(out)) || nerr > wantErr) {
		t.Errorf("%s is not a prefix of each stream (%d bytes of stdout, %d of stderr)", what, len(out), nerr)
	}
}

// modes lists pipe mode with each copy path, and pty mode.
var modes = []struct {
	name   string
	mode   Mode
	splice bool
}{
	{"pipe", ModePipe, false},
	{"pipe-splice", ModePipe, true},
	{"pty", ModePTY, false},
}

// TestHardening10OwnerFileDiskFull: the observer's own output file is on a
// full disk. Its file keeps what fitted, the rest goes to a private spool,
// and the output observers read stays whole; OwnerLost says from which
// byte the file lacks it and why.
func TestHardening10OwnerFileDiskFull(t *testing.T) {
	for _, m := range modes {
		for _, streams := range []struct {
			name   string
			script string
			nerr   int
		}{{"both", twoStreams, errBytes}, {"stdout", stdoutOnly, 0}} {
			t.Run(m.name+"/"+streams.name, func(t *testing.T) {
				withSplice(t, m.splice)
				nerr := streams.nerr
				owner := ownerFile(t, testutil.Tmpfs(t, 256<<10))
				c := ownedRunScript(t, m.mode, owner, t.TempDir(), streams.script, nerr)
				if err := c.Err(); err != nil {
					t.Fatalf("Err() = %v; want nil (the private spool took over)", err)
				}
				total := int64(len(seqOut) + nerr)
				if n := c.Output().Size(); n != total {
					t.Fatalf("output size %d; want the whole %d", n, total)
				}
				rec := spoolBytes(t, c)
				checkStreams(t, "output", rec, nerr, true)

				from, err := c.OwnerLost()
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("OwnerLost() = %d, %v; want ENOSPC", from, err)
				}
				if !strings.Contains(err.Error(), owner.Name()) {
					t.Errorf("OwnerLost error %q does not name the file %s", err, owner.Name())
				}
				if from <= 0 || from >= total {
					t.Fatalf("OwnerLost from byte %d; want inside (0, %d)", from, total)
				}
				if kept := fileBytes(t, owner); int64(len(kept)) != from || !bytes.Equal(kept, rec[:from]) {
					t.Errorf("the owner's file holds %d bytes; want exactly the first %d of the output", len(kept), from)
				}
				// One read across the switch sees both files.
				buf := make([]byte, 100)
				if n, err := c.Output().ReadAt(buf, from-50); n != 100 || err != nil || !bytes.Equal(buf, rec[from-50:from+50]) {
					t.Errorf("ReadAt across byte %d = %d, %v, %q; want %q", from, n, err, buf[:n], rec[from-50:from+50])
				}
			})
		}
	}
}

// TestHardening10OwnerAndSpoolDiskFull: the private spool that takes over
// fills up too. Pass-through goes on, and Err names the exact byte where
// the record stops.
func TestHardening10OwnerAndSpoolDiskFull(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			withSplice(t, m.splice)
			owner := ownerFile(t, testutil.Tmpfs(t, 256<<10))
			c := ownedRun(t, m.mode, owner, testutil.Tmpfs(t, 512<<10))
			from, lost := c.OwnerLost()
			if !errors.Is(lost, syscall.ENOSPC) {
				t.Fatalf("OwnerLost() = %d, %v; want ENOSPC", from, lost)
			}
			stop := c.Output().Size()
			err := c.Err()
			if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), fmt.Sprintf("at byte %d:", stop)) {
				t.Fatalf("Err() = %v; want ENOSPC at byte %d", err, stop)
			}
			if from <= 0 || stop <= from || stop >= int64(len(seqOut)+errBytes) {
				t.Errorf("owner's file stops at %d, record at %d; want 0 < owner < record < whole output", from, stop)
			}
			rec := spoolBytes(t, c)
			checkStreams(t, "output", rec, errBytes, false)
			if kept := fileBytes(t, owner); !bytes.Equal(kept, rec[:from]) {
				t.Errorf("the owner's file holds %d bytes; want exactly the first %d of the output", len(kept), from)
			}
		})
	}
}

// When no private spool can be created after the owner's file failed, the
// record stops where the file stopped, and Err says so.
func TestOwnerFileFullNoSpoolDir(t *testing.T) {
	withSplice(t, false)
	owner := ownerFile(t, testutil.Tmpfs(t, 256<<10))
	c := ownedRun(t, ModePipe, owner, filepath.Join(t.TempDir(), "missing"))
	from, lost := c.OwnerLost()
	if !errors.Is(lost, syscall.ENOSPC) {
		t.Fatalf("OwnerLost() = %d, %v; want ENOSPC", from, lost)
	}
	if n := c.Output().Size(); n != from {
		t.Errorf("record stops at %d; want where the owner's file stopped, %d", n, from)
	}
	err := c.Err()
	if !errors.Is(err, syscall.ENOSPC) ||
		!strings.Contains(err.Error(), fmt.Sprintf("at byte %d:", from)) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Err() = %v; want ENOSPC at byte %d and why no private spool", err, from)
	}
	checkStreams(t, "output", spoolBytes(t, c), errBytes, false)
}

// /dev/full as the owner's file fails its first write, without needing
// root: the whole output is in the private spool.
func TestOwnerFileDeviceFull(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			withSplice(t, m.splice)
			full, err := os.OpenFile("/dev/full", os.O_RDWR, 0)
			if err != nil {
				t.Skip(err)
			}
			c := ownedRun(t, m.mode, full, t.TempDir())
			if from, err := c.OwnerLost(); from != 0 || !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("OwnerLost() = %d, %v; want 0, ENOSPC", from, err)
			}
			if err := c.Err(); err != nil {
				t.Errorf("Err() = %v; want nil", err)
			}
			checkStreams(t, "output", spoolBytes(t, c), errBytes, true)
		})
	}
}

// An owner's file that takes everything: nothing lost, nothing reported.
func TestOwnerFileWhole(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			withSplice(t, m.splice)
			owner := ownerFile(t, t.TempDir())
			c := ownedRun(t, m.mode, owner, t.TempDir())
			if from, err := c.OwnerLost(); from != 0 || err != nil || c.Err() != nil {
				t.Errorf("OwnerLost() = %d, %v, Err() = %v; want nothing lost", from, err, c.Err())
			}
			rec := spoolBytes(t, c)
			checkStreams(t, "output", rec, errBytes, true)
			if kept := fileBytes(t, owner); !bytes.Equal(kept, rec) {
				t.Errorf("the owner's file holds %d bytes; want the whole %d", len(kept), len(rec))
			}
		})
	}
}
