//go:build !windows

// These tests drive Unix tools (sh, head, stty) and ptys; Windows has its
// own in capture_windows_test.go.

package capture

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// run starts argv with a capture of o, waits for the child and drains.
func run(t *testing.T, o Options, argv ...string) *Capture {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cmd := exec.Command(argv[0], argv[1:]...)
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
		t.Fatalf("child %v: %v", argv, err)
	}
	if err := c.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

func spoolBytes(t *testing.T, c *Capture) []byte {
	t.Helper()
	out := c.Output()
	b, err := io.ReadAll(io.NewSectionReader(out, 0, out.Size()))
	if err != nil {
		t.Fatalf("read spool: %v", err)
	}
	return b
}

func tempFile(t *testing.T, name string, flag int) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(t.TempDir(), name), os.O_RDWR|os.O_CREATE|flag, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func fileBytes(t *testing.T, f *os.File) []byte {
	t.Helper()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pipeSink is a wrapper stream that is a pipe; everything written to it is
// collected until the write end is closed.
type pipeSink struct {
	w    *os.File
	done chan []byte
}

func newPipeSink(t *testing.T) *pipeSink {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &pipeSink{w: w, done: make(chan []byte, 1)}
	go func() {
		b, _ := io.ReadAll(r)
		r.Close()
		s.done <- b
	}()
	t.Cleanup(func() { w.Close() })
	return s
}

func (s *pipeSink) bytes() []byte {
	s.w.Close()
	return <-s.done
}

func withSplice(t *testing.T, on bool) {
	old := disableSplice
	disableSplice = !on
	t.Cleanup(func() { disableSplice = old })
}

func TestParseMode(t *testing.T) {
	file := tempFile(t, "out", 0)
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	for _, tc := range []struct {
		in     string
		stdout *os.File
		want   Mode
	}{
		{"pipe", file, ModePipe},
		{"fd", file, ModePipe},
		{"sys", file, ModePipe},
		{"pty", file, ModePTY},
		{"no", file, ModeNo},
		{"", file, ModePipe},
		{"", tty, ModePTY},
		{"", nil, ModePipe},
	} {
		got, err := ParseMode(tc.in, tc.stdout)
		if err != nil || got != tc.want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	_, err = ParseMode("tee", file)
	if err == nil || !strings.Contains(err.Error(), `"tee"`) || !strings.Contains(err.Error(), "pipe, pty, no") {
		t.Errorf("ParseMode(tee) error = %v; want one naming the value and the valid ones", err)
	}
	if _, err := New(Options{Mode: "bogus"}); err == nil {
		t.Error("New accepted an unknown mode")
	}
}

// The exact bytes, including NUL, invalid UTF-8 and \r, reach both the
// wrapper's streams and the spool, over each kind of wrapper stdout: a
// regular file and a pipe (zero-copy path), a file opened for append (which
// refuses splice), and with the zero-copy path off.
func TestPipeExactBytes(t *testing.T) {
	const outWant = "a\x00b\xff\xfe\r\nline2\n\x1b[31mred\x1b[0m"
	const errWant = "e\x01\xc3(\n"
	script := `printf 'a\000b\377\376\r\nline2\n\033[31mred\033[0m'; printf 'e\001\303(\n' >&2`
	for _, tc := range []struct {
		name   string
		splice bool
		stdout string // file, append, pipe
	}{
		{"file-splice", true, "file"},
		{"pipe-splice", true, "pipe"},
		{"append-splice", true, "append"},
		{"file-plain", false, "file"},
		{"pipe-plain", false, "pipe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withSplice(t, tc.splice)
			stderr := tempFile(t, "err", 0)
			var stdout *os.File
			var sink *pipeSink
			switch tc.stdout {
			case "file":
				stdout = tempFile(t, "out", 0)
			case "append":
				stdout = tempFile(t, "out", os.O_APPEND)
			case "pipe":
				sink = newPipeSink(t)
				stdout = sink.w
			}
			c := run(t, Options{Mode: ModePipe, Stdout: stdout, Stderr: stderr, SpoolDir: t.TempDir()}, "sh", "-c", script)
			var gotOut []byte
			if sink != nil {
				gotOut = sink.bytes()
			} else {
				gotOut = fileBytes(t, stdout)
			}
			if string(gotOut) != outWant {
				t.Errorf("passed-through stdout = %q; want %q", gotOut, outWant)
			}
			if got := fileBytes(t, stderr); string(got) != errWant {
				t.Errorf("passed-through stderr = %q; want %q", got, errWant)
			}
			// Each write is one chunk; which stream reaches the spool first
			// is a race between the two copiers.
			if got := spoolBytes(t, c); string(got) != outWant+errWant && string(got) != errWant+outWant {
				t.Errorf("spool = %q; want %q and %q in either order", got, outWant, errWant)
			}
			if got := c.StderrTail(); string(got) != errWant {
				t.Errorf("stderr tail = %q; want %q", got, errWant)
			}
			if c.Err() != nil || c.PassErr() != nil || c.ReadErr() != nil {
				t.Errorf("errors: spool %v, pass %v, read %v", c.Err(), c.PassErr(), c.ReadErr())
			}
		})
	}
}

// Each stream keeps its order in the spool however the chunks of the two
// interleave. The streams use disjoint byte alphabets, so each stream can be
// recovered from the spool byte by byte whatever the chunk boundaries.
func TestPipePerStreamOrder(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	script := `
import os
o = str.maketrans("0123456789\n", "abcdefghijk")
e = str.maketrans("0123456789\n", "nopqrstuvwx")
for i in range(20000):
    os.write(1, (str(i) + "\n").translate(o).encode())
    os.write(2, (str(i) + "\n").translate(e).encode())
`
	for _, splice := range []bool{true, false} {
		t.Run(fmt.Sprint("splice=", splice), func(t *testing.T) {
			withSplice(t, splice)
			stdout, stderr := tempFile(t, "out", 0), tempFile(t, "err", 0)
			c := run(t, Options{Mode: ModePipe, Stdout: stdout, Stderr: stderr, SpoolDir: t.TempDir()}, py, "-c", script)
			var wantOut, wantErr strings.Builder
			for i := range 20000 {
				wantOut.WriteString(strings.Map(func(r rune) rune { return r - '0' + 'a' }, fmt.Sprint(i)) + "k")
				wantErr.WriteString(strings.Map(func(r rune) rune { return r - '0' + 'n' }, fmt.Sprint(i)) + "x")
			}
			if got := fileBytes(t, stdout); string(got) != wantOut.String() {
				t.Errorf("passed-through stdout differs (%d bytes, want %d)", len(got), wantOut.Len())
			}
			if got := fileBytes(t, stderr); string(got) != wantErr.String() {
				t.Errorf("passed-through stderr differs (%d bytes, want %d)", len(got), wantErr.Len())
			}
			sp := spoolBytes(t, c)
			var so, se []byte
			for _, b := range sp {
				if b <= 'k' {
					so = append(so, b)
				} else {
					se = append(se, b)
				}
			}
			if string(so) != wantOut.String() || string(se) != wantErr.String() {
				t.Errorf("spool does not keep per-stream order (%d bytes)", len(sp))
			}
		})
	}
}

// 200 MB of random bytes go through unchanged, with memory not growing with
// the output: the copy allocates nothing per chunk.
func TestPipeLargeOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("large output")
	}
	const size = 200 << 20
	src := filepath.Join(t.TempDir(), "random")
	if out, err := exec.Command("sh", "-c", fmt.Sprintf("head -c %d /dev/urandom > %s", size, src)).CombinedOutput(); err != nil {
		t.Fatalf("make input: %v: %s", err, out)
	}
	want := md5File(t, src)
	for _, tc := range []struct {
		name   string
		splice bool
		pipe   bool
	}{{"file-splice", true, false}, {"pipe-splice", true, true}, {"file-plain", false, false}} {
		t.Run(tc.name, func(t *testing.T) {
			withSplice(t, tc.splice)
			var stdout *os.File
			hashDone := make(chan string, 1)
			if tc.pipe {
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				stdout = w
				go func() {
					h := md5.New()
					io.Copy(h, r)
					hashDone <- fmt.Sprintf("%x", h.Sum(nil))
				}()
			} else {
				stdout = tempFile(t, "out", 0)
			}
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			c := run(t, Options{Mode: ModePipe, Stdout: stdout, Stderr: tempFile(t, "err", 0), SpoolDir: t.TempDir()}, "cat", src)
			runtime.ReadMemStats(&after)
			var got string
			if tc.pipe {
				stdout.Close()
				got = <-hashDone
			} else {
				got = md5File(t, stdout.Name())
			}
			if got != want {
				t.Errorf("passed-through md5 %s; want %s", got, want)
			}
			if c.Output().Size() != size {
				t.Fatalf("spool size %d; want %d", c.Output().Size(), size)
			}
			h := md5.New()
			io.Copy(h, io.NewSectionReader(c.Output(), 0, size))
			if got := fmt.Sprintf("%x", h.Sum(nil)); got != want {
				t.Errorf("spool md5 %s; want %s", got, want)
			}
			// Buffers are allocated once per stream; 200 MB held anywhere
			// would show here. The pipe reader's io.Copy buffer counts too.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
				t.Errorf("capturing %d bytes allocated %d bytes; want it bounded (< 8 MiB)", size, alloc)
			}
		})
	}
}

func md5File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// The same with /dev/full as the spool, which fails every write with
// ENOSPC; it needs no privilege.
func TestSpoolDeviceFull(t *testing.T) {
	for _, splice := range []bool{true, false} {
		t.Run(fmt.Sprint("splice=", splice), func(t *testing.T) {
			withSplice(t, splice)
			checkSpoolFull(t, Options{SpoolDir: t.TempDir()}, func(c *Capture) {
				full, err := os.OpenFile("/dev/full", os.O_RDWR, 0)
				if err != nil {
					t.Skip(err)
				}
				c.spool.f.Close()
				c.spool.f = full
			})
		})
	}
}

func checkSpoolFull(t *testing.T, o Options, prepare func(*Capture)) {
	const size = 3 << 20
	stdout, stderr := tempFile(t, "out", 0), tempFile(t, "err", 0)
	o.Mode, o.Stdout, o.Stderr = ModePipe, stdout, stderr
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if prepare != nil {
		prepare(c)
	}
	cmd := exec.Command("sh", "-c", fmt.Sprintf("head -c %d /dev/zero | tr '\\0' x; echo end >&2", size))
	c.Attach(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.Started()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if err := c.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := fileBytes(t, stdout); len(got) != size || bytes.Count(got, []byte("x")) != size {
		t.Errorf("passed-through stdout has %d bytes; want %d x", len(got), size)
	}
	if got := fileBytes(t, stderr); string(got) != "end\n" {
		t.Errorf("passed-through stderr = %q", got)
	}
	if err := c.Err(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Err() = %v; want ENOSPC", err)
	}
	n := c.Output().Size()
	if n >= size {
		t.Errorf("spool size %d; want less than %d", n, size)
	}
	if sp := spoolBytes(t, c); int64(len(sp)) != n || bytes.Count(sp, []byte("x")) != len(sp) {
		t.Errorf("spool holds %d bytes, not the first %d bytes of the output", len(sp), n)
	}
}

// A closed reader of the wrapper's stdout neither stops the child nor the
// capture: the rest goes to the spool and PassErr says why.
func TestPassThroughEPIPE(t *testing.T) {
	const size = 2 << 20
	for _, splice := range []bool{true, false} {
		t.Run(fmt.Sprint("splice=", splice), func(t *testing.T) {
			withSplice(t, splice)
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			defer w.Close()
			c := run(t, Options{Mode: ModePipe, Stdout: w, Stderr: tempFile(t, "err", 0), SpoolDir: t.TempDir()},
				"sh", "-c", fmt.Sprintf("head -c %d /dev/zero", size))
			if err := c.PassErr(); !errors.Is(err, syscall.EPIPE) {
				t.Errorf("PassErr() = %v; want EPIPE", err)
			}
			if n := c.Output().Size(); n != size {
				t.Errorf("spool size %d; want %d", n, size)
			}
			if c.Err() != nil {
				t.Errorf("spool error: %v", c.Err())
			}
		})
	}
}

// The wrapper's real fd 1 on a broken pipe: os.File.Write would kill the
// process with SIGPIPE there. A helper process runs the capture with its
// stdout broken and reports on stderr.
func TestPassThroughEPIPEOnFD1(t *testing.T) {
	if os.Getenv("CAPTURE_HELPER") == "epipe" {
		c, err := New(Options{Mode: ModePipe})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		cmd := exec.Command("head", "-c", "1000000", "/dev/zero")
		c.Attach(cmd)
		cmd.Start()
		c.Started()
		cmd.Wait()
		c.Drain(context.Background())
		fmt.Fprintf(os.Stderr, "size=%d epipe=%v\n", c.Output().Size(), errors.Is(c.PassErr(), syscall.EPIPE))
		os.Exit(0)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPassThroughEPIPEOnFD1$")
	cmd.Env = append(os.Environ(), "CAPTURE_HELPER=epipe")
	cmd.Stdout = w
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper: %v; stderr: %s", err, stderr.String())
	}
	if got := stderr.String(); !strings.Contains(got, "size=1000000 epipe=true") {
		t.Errorf("helper reported %q; want size=1000000 epipe=true", got)
	}
}

func TestModeNo(t *testing.T) {
	stdout, stderr := tempFile(t, "out", 0), tempFile(t, "err", 0)
	c := run(t, Options{Mode: ModeNo, Stdout: stdout, Stderr: stderr}, "sh", "-c", "printf out; printf err >&2")
	if got := fileBytes(t, stdout); string(got) != "out" {
		t.Errorf("stdout = %q", got)
	}
	if got := fileBytes(t, stderr); string(got) != "err" {
		t.Errorf("stderr = %q", got)
	}
	if c.Output().Size() != 0 {
		t.Errorf("spool size %d; want 0", c.Output().Size())
	}
	if n, err := c.Output().ReadAt(make([]byte, 1), 0); n != 0 || err != io.EOF {
		t.Errorf("ReadAt on empty spool = %d, %v; want 0, EOF", n, err)
	}
}

func TestAbort(t *testing.T) {
	c, err := New(Options{Mode: ModePipe, Stdout: tempFile(t, "out", 0), SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(t.TempDir(), "no-such-program"))
	if err := c.Attach(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err == nil {
		t.Fatal("start of a missing program succeeded")
	}
	c.Abort()
	if err := c.Close(); err != nil {
		t.Errorf("Close after Abort: %v", err)
	}
	if err := c.Drain(context.Background()); err != nil {
		t.Errorf("Drain after Abort: %v", err)
	}
}

func TestSpoolRemovedAndReadAtBounds(t *testing.T) {
	dir := t.TempDir()
	c := run(t, Options{Mode: ModePipe, Stdout: tempFile(t, "out", 0), SpoolDir: dir}, "printf", "hello")
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("spool dir holds %d entries; want none (the spool is unlinked)", len(ents))
	}
	out := c.Output()
	buf := make([]byte, 10)
	n, err := out.ReadAt(buf, 2)
	if n != 3 || err != io.EOF || string(buf[:n]) != "llo" {
		t.Errorf("ReadAt(10 bytes at 2) = %d %q, %v; want 3 \"llo\", EOF", n, buf[:n], err)
	}
	if _, err := out.ReadAt(buf, -1); err == nil {
		t.Error("ReadAt at a negative offset succeeded")
	}
	c.Close()
	if _, err := out.ReadAt(buf[:1], 0); !errors.Is(err, os.ErrClosed) {
		t.Errorf("ReadAt after Close = %v; want ErrClosed", err)
	}
}

// Observers read the spool while the child writes: every ReadAt below Size
// succeeds and sees the final bytes.
func TestReadWhileWriting(t *testing.T) {
	stdout := tempFile(t, "out", 0)
	c, err := New(Options{Mode: ModePipe, Stdout: stdout, Stderr: tempFile(t, "err", 0), SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd := exec.Command("sh", "-c", "head -c 30000000 /dev/zero | tr '\\0' y")
	c.Attach(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.Started()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	buf := make([]byte, 4096)
	reads := 0
	for done := false; !done; {
		select {
		case err := <-waited:
			if err != nil {
				t.Fatal(err)
			}
			done = true
		default:
		}
		n := c.Output().Size()
		if n == 0 {
			continue
		}
		off := max(0, n-int64(len(buf)))
		k, err := c.Output().ReadAt(buf[:n-off], off)
		if err != nil || int64(k) != n-off || bytes.Count(buf[:k], []byte("y")) != k {
			t.Fatalf("ReadAt below Size(%d) = %d, %v", n, k, err)
		}
		reads++
	}
	if err := c.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.Output().Size() != 30000000 {
		t.Errorf("spool size %d", c.Output().Size())
	}
	t.Logf("%d reads while writing", reads)
}

// A background grandchild holding the output open does not keep Drain
// past its context. In pty mode the exit of the session leader hangs the
// terminal up, so Drain ends at once there.
func TestDrainGrandchild(t *testing.T) {
	for _, mode := range []Mode{ModePipe, ModePTY} {
		t.Run(string(mode), func(t *testing.T) {
			stdout := tempFile(t, "out", 0)
			c, err := New(Options{Mode: mode, Stdout: stdout, Stderr: tempFile(t, "err", 0), SpoolDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if mode == ModePTY && signal.Ignored(syscall.SIGHUP) {
				// Started under nohup: the sleep would inherit the ignored
				// SIGHUP and outlive the hangup. A handler here gives the
				// children the default action again (handlers are reset
				// at exec, ignored signals are not).
				signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP)
				defer signal.Reset(syscall.SIGHUP)
			}
			cmd := exec.Command("sh", "-c", "sleep 60 & echo started")
			if err := c.Attach(cmd); err != nil {
				t.Fatal(err)
			}
			if mode == ModePipe {
				cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The group (pty: the session) holds the sleep; kill it at the end.
			defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			c.Started()
			if err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			err = c.Drain(ctx)
			if mode == ModePipe && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Drain = %v; want DeadlineExceeded", err)
			}
			if mode == ModePTY && err != nil {
				t.Fatalf("Drain = %v; want nil (hangup at session leader exit)", err)
			}
			if got := spoolBytes(t, c); string(got) != "started\n" {
				t.Errorf("spool = %q", got)
			}
			if c.ReadErr() != nil {
				t.Errorf("read error: %v", c.ReadErr())
			}
		})
	}
}

func TestTailBounded(t *testing.T) {
	c := run(t, Options{Mode: ModePipe, Stdout: tempFile(t, "out", 0), Stderr: tempFile(t, "err", 0), SpoolDir: t.TempDir(), TailBytes: 10},
		"sh", "-c", "printf 'stdout stays out'; printf '0123456789abcdefXYZ' >&2")
	if got := string(c.StderrTail()); got != "abcdefXYZ"[0:9] && got != "9abcdefXYZ" {
		t.Errorf("tail = %q; want the last 10 bytes of stderr", got)
	}
}

func TestRing(t *testing.T) {
	r := newRing(5)
	for _, tc := range []struct{ write, want string }{
		{"", ""},
		{"ab", "ab"},
		{"cd", "abcd"},
		{"e", "abcde"},
		{"f", "bcdef"},
		{"ghi", "efghi"},
		{"0123456789", "56789"},
		{"xy", "789xy"},
	} {
		r.write([]byte(tc.write))
		if got := string(r.bytes()); got != tc.want {
			t.Errorf("after %q: %q; want %q", tc.write, got, tc.want)
		}
	}
}

func TestFoldCR(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain\ntext\n", "plain\ntext\n"},
		{"progress 10%\rprogress 20%\rdone", "doneress 20%"},
		{"progress 10%\r…\rdone\nafter\n", "doneress 10%\nafter\n"},
		{"abc\b\bX", "aXc"},
		{"\b\bab", "ab"},
		{"abc\rX\n", "Xbc\n"},
		{"ab\r", "ab\r"},
		{"abc\b\r", "abc\r"},
		{"a\r\nb", "a\nb"},
		{"50%\r", "50%\r"},
		{"x\r\r", "x\r"},
		{"héllo\rH", "Héllo"},
		{"", ""},
	} {
		if got := FoldCR(tc.in); got != tc.want {
			t.Errorf("FoldCR(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

// lineTap records what it gets; it fails after failAfter writes when set.
type lineTap struct {
	got       bytes.Buffer
	writes    int
	failAfter int
}

func (l *lineTap) Write(p []byte) (int, error) {
	l.writes++
	if l.failAfter > 0 && l.writes > l.failAfter {
		return 0, errors.New("tap broken")
	}
	return l.got.Write(p)
}

// The tap sees stdout exactly (not stderr), in both pipe paths and pty mode.
func TestTapStdout(t *testing.T) {
	script := `printf 'loss=1\n'; printf 'noise\n' >&2; printf 'loss=\0002\r\n'`
	for _, tc := range []struct {
		name   string
		mode   Mode
		splice bool
		want   string
	}{
		{"pipe", ModePipe, false, "loss=1\nloss=\x002\r\n"},
		{"pipe-splice-allowed", ModePipe, true, "loss=1\nloss=\x002\r\n"},
		{"pty", ModePTY, false, "loss=1\nnoise\nloss=\x002\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withSplice(t, tc.splice)
			stdout := tempFile(t, "out", 0)
			c, err := New(Options{Mode: tc.mode, Stdout: stdout, Stderr: tempFile(t, "err", 0), SpoolDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tap := &lineTap{}
			c.TapStdout(tap)
			cmd := exec.Command("sh", "-c", script)
			c.Attach(cmd)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			c.Started()
			if err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
			if err := c.Drain(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := tap.got.String(); got != tc.want {
				t.Errorf("tap got %q; want %q", got, tc.want)
			}
			if c.TapErr() != nil {
				t.Errorf("TapErr = %v", c.TapErr())
			}
		})
	}
}

// A failing tap is dropped; output and capture go on.
func TestTapFailure(t *testing.T) {
	stdout := tempFile(t, "out", 0)
	c, err := New(Options{Mode: ModePipe, Stdout: stdout, Stderr: tempFile(t, "err", 0), SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tap := &lineTap{failAfter: 1}
	c.TapStdout(tap)
	// More than one copy buffer, so more than one chunk.
	const size = 4 * bufSize
	cmd := exec.Command("sh", "-c", fmt.Sprintf("head -c %d /dev/zero | tr '\\0' a", size))
	c.Attach(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.Started()
	cmd.Wait()
	c.Drain(context.Background())
	if got := fileBytes(t, stdout); len(got) != size || bytes.Count(got, []byte("a")) != size {
		t.Errorf("passed through %d bytes; want %d", len(got), size)
	}
	if got := spoolBytes(t, c); len(got) != size || bytes.Count(got, []byte("a")) != size {
		t.Errorf("spool has %d bytes; want %d", len(got), size)
	}
	if c.TapErr() == nil || tap.writes != 2 {
		t.Errorf("TapErr = %v after %d writes; want an error after 2", c.TapErr(), tap.writes)
	}
}
