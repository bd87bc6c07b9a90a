//go:build unix

package childapi

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Regression tests for issue 8 (hardening) at the package level; the
// end-to-end ones through the binary are in test/e2e/hardening_childapi_test.go.

// Item 1: a FIFO (or any non-regular file) named over the socket must
// never block the server: it is refused with a warning naming it, and the
// connection goes on (the sync after it is answered).
func TestHardening01NonRegularFilesNeverBlock(t *testing.T) {
	f := newServer(t, nil)
	fifo := filepath.Join(f.cwd, "f")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(f.cwd, "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.Mkdir(filepath.Join(f.cwd, "d"), 0o700)
	cases := []struct{ line, want string }{
		{`{"kind":"resource","path":"f"}`, fifo + " is a named pipe (FIFO), not a regular file"},
		{`{"kind":"artifact","path":"f"}`, fifo + " is a named pipe (FIFO), not a regular file"},
		{`{"kind":"resource","path":"s.sock"}`, "s.sock is a socket, not a regular file"},
		{`{"kind":"artifact","path":"/dev/null"}`, "/dev/null is a device, not a regular file"},
		{`{"kind":"resource","path":"d"}`, "d is a directory, not a regular file"},
	}
	c, err := DialPath(f.s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range cases {
		c.WriteLine([]byte(tc.line))
		if err := c.Sync(); err != nil { // would never return if open blocked
			t.Fatalf("%s: sync: %v", tc.line, err)
		}
		if w := f.warn.String(); !strings.Contains(w, tc.want) {
			t.Errorf("%s: warnings %q, want one naming %q", tc.line, w, tc.want)
		}
	}
	if arts, res := f.ev.snapshot(); len(arts)+len(res) != 0 {
		t.Errorf("events for non-regular files: %+v %+v", arts, res)
	}
}

func TestHardening01ResultFileFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "result")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := ReadResultFile(fifo)
	if err == nil || !strings.Contains(err.Error(), fifo+" is a named pipe (FIFO), not a regular file") {
		t.Errorf("ReadResultFile(FIFO) = %v", err)
	}
	_, err = ReadResultFile(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "is a directory, not a regular file") {
		t.Errorf("ReadResultFile(dir) = %v", err)
	}
}

// Item 1: Close is bounded even when an artifact copy does not finish (a
// huge file, a hung file system): it gives up after CloseWait + FileWait,
// says which copy was abandoned, and that copy is never reported later.
func TestHardening01CloseAbandonsAStuckCopy(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	f := newServer(t, func(o *Options) {
		o.CloseWait = 10 * time.Millisecond
		o.FileWait = 10 * time.Millisecond
	})
	f.s.beforeCopy = func() {
		close(entered)
		<-release
	}
	os.WriteFile(filepath.Join(f.cwd, "big.bin"), []byte("data"), 0o644)
	c, err := DialPath(f.s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.conn.Close()
	c.WriteLine([]byte(`{"kind":"artifact","path":"big.bin"}`))
	c.w.Flush()
	<-entered
	if err := f.s.Close(); err != nil { // returns although the copy hangs
		t.Fatal(err)
	}
	want := fmt.Sprintf(`client 1: artifact "big.bin" (copy of %s): not finished`, filepath.Join(f.cwd, "big.bin"))
	if w := f.warn.String(); !strings.Contains(w, want) || !strings.Contains(w, "not recorded") {
		t.Errorf("warnings %q, want %q ... not recorded", w, want)
	}
	close(release)
	// The abandoned reader ends (its copy stops at the first chunk) and
	// reports nothing, not even a second warning.
	f.s.wg.Wait()
	if arts, _ := f.ev.snapshot(); len(arts) != 0 {
		t.Errorf("artifacts reported after Close gave up: %+v", arts)
	}
	if n := strings.Count(f.warn.String(), "big.bin\""); n != 1 {
		t.Errorf("%d warnings about big.bin: %q", n, f.warn.String())
	}
}

// Item 19: the artifact copy keeps the original's permission bits, also
// when the path is a symbolic link, so that stores never widen them.
func TestHardening19ArtifactCopyKeepsMode(t *testing.T) {
	f := newServer(t, nil)
	for name, mode := range map[string]os.FileMode{"key.pem": 0o600, "shared.txt": 0o640, "public.txt": 0o644, "run.sh": 0o750} {
		p := filepath.Join(f.cwd, name)
		os.WriteFile(p, []byte(name), 0o600)
		if err := os.Chmod(p, mode); err != nil { // independent of the umask
			t.Fatal(err)
		}
	}
	os.Symlink("key.pem", filepath.Join(f.cwd, "link.pem"))
	sendRaw(t, f.s.Path(), `{"kind":"artifact","path":"key.pem"}
{"kind":"artifact","path":"shared.txt"}
{"kind":"artifact","path":"public.txt"}
{"kind":"artifact","path":"run.sh"}
{"kind":"artifact","path":"link.pem"}
`)
	want := map[string]os.FileMode{"key.pem": 0o600, "shared.txt": 0o640, "public.txt": 0o644, "run.sh": 0o750, "link.pem": 0o600}
	arts, _ := f.ev.snapshot()
	if len(arts) != len(want) {
		t.Fatalf("artifacts %+v; warnings %q", arts, f.warn.String())
	}
	for _, a := range arts {
		st, err := os.Lstat(a.Path)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Mode().IsRegular() || st.Mode().Perm() != want[a.Name] {
			t.Errorf("copy of %s: mode %v, want a regular file with %v", a.Name, st.Mode(), want[a.Name])
		}
	}
}

// snapshot returns the events reported so far.
func (e *events) snapshot() ([]observer.ArtifactEvent, []observer.ResourceEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]observer.ArtifactEvent(nil), e.artifacts...), append([]observer.ResourceEvent(nil), e.resources...)
}

// Item 2: a client that sends many syncs and reads the replies only at the
// end must not deadlock with the server: reading never waits for writing,
// and every sync still gets its reply.
func TestHardening02SyncsWithoutReadingReplies(t *testing.T) {
	f := newServer(t, nil)
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: f.s.Path(), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A hang guard, not a timing assertion: the old server blocked here
	// for ever once both directions of the socket were full.
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	const syncs = 30_000
	lines := strings.Repeat(`{"kind":"sync"}`+"\n", syncs) + `{"kind":"metric","name":"after","value":1}` + "\n"
	if _, err := c.Write([]byte(lines)); err != nil {
		t.Fatalf("write (the server stopped reading): %v", err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	replies, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read replies: %v", err)
	}
	if n := bytes.Count(replies, syncReply); n != syncs || len(replies) != syncs*len(syncReply) {
		t.Errorf("%d replies (%d bytes), want %d", n, len(replies), syncs)
	}
	if ms := f.s.DrainMetrics(); len(ms) != 1 || ms[0].Name != "after" {
		t.Errorf("metrics %+v, want the point sent after the syncs", ms)
	}
	if w := f.warn.String(); w != "" {
		t.Errorf("warnings %q", w)
	}
}

// Item 3: the output tap (--metric-pattern) never blocks, also when the
// observers are so far behind that clients are held back; past its bound
// it drops points, counts them and says so once, and at the end.
func TestHardening03ScraperNeverBlocks(t *testing.T) {
	const maxPending = 10
	f := newServer(t, func(o *Options) { o.MaxPending = maxPending })
	sc, err := NewScraper(`^(?P<name>\w+) (?P<value>\S+)$`, f.s)
	if err != nil {
		t.Fatal(err)
	}
	// Nobody drains: as with an observer that lags, pending fills up to
	// the bound at which clients wait, and beyond.
	const lines = 10 * maxPending
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for i := range lines {
			sc.Write(fmt.Appendf(nil, "loss %d\n", i))
		}
		sc.Close()
	}()
	select {
	case <-wrote:
	case <-time.After(2 * time.Minute): // a hang guard, not a timing assertion
		t.Fatal("Scraper.Write blocked while metrics were pending")
	}
	limit := f.s.tapLimit()
	if n := f.s.Pending(); n != limit {
		t.Errorf("%d points pending, want the tap's bound %d", n, limit)
	}
	if w := f.warn.String(); strings.Count(w, "scraped points are dropped") != 1 {
		t.Errorf("warnings %q, want one about dropped points", w)
	}
	ms := f.s.DrainMetrics()
	if got := steps(ms, "loss"); len(got) != limit || got[limit-1] != int64(limit-1) {
		t.Errorf("steps %v, want 0..%d", got, limit-1)
	}
	f.s.Close()
	want := fmt.Sprintf("%d scraped metric point(s) were not recorded", lines-limit)
	if w := f.warn.String(); !strings.Contains(w, want) {
		t.Errorf("warnings %q, want %q", w, want)
	}
}

// Item 17: an implicit step after the largest step there is would wrap to
// a negative step: it is refused with a warning, and the metric goes on
// with the next explicit step.
func TestHardening17StepOverflow(t *testing.T) {
	f := newServer(t, nil)
	sendRaw(t, f.s.Path(), `{"kind":"metric","name":"m","value":1,"step":9223372036854775807}
{"kind":"metric","name":"m","value":2}
{"kind":"metric","name":"m","value":3,"step":5}
{"kind":"metric","name":"m","value":4}
`)
	if got, want := steps(f.s.DrainMetrics(), "m"), []int64{math.MaxInt64, 5, 6}; !reflect.DeepEqual(got, want) {
		t.Errorf("steps %v, want %v", got, want)
	}
	want := `client 1 line 2: metric "m": the last step is 9223372036854775807, the largest there is, so the next one cannot be counted; give an explicit step; point dropped`
	if w := f.warn.String(); !strings.Contains(w, want) || strings.Count(w, "\n") != 1 {
		t.Errorf("warnings %q, want %q", w, want)
	}

	// The scraper of --metric-pattern follows the same rule.
	sc, err := NewScraper(`^(?P<name>\w+) (?P<value>\S+)(?: (?P<step>\d+))?$`, f.s)
	if err != nil {
		t.Fatal(err)
	}
	sc.Write([]byte("s 1 9223372036854775807\ns 2\n"))
	sc.Close()
	if got, want := steps(f.s.DrainMetrics(), "s"), []int64{math.MaxInt64}; !reflect.DeepEqual(got, want) {
		t.Errorf("scraped steps %v, want %v", got, want)
	}
	if w := f.warn.String(); !strings.Contains(w, `--metric-pattern: metric "s": the last step is 9223372036854775807`) {
		t.Errorf("warnings %q", w)
	}
}

// Item 8: names no store can keep are refused per point, each with one
// warning, and the good points around them are kept; info, result and
// metadata keys with a NUL byte are refused, a NUL in a string is kept.
func TestHardening08NamesNoStoreCanKeep(t *testing.T) {
	f := newServer(t, nil)
	sendRaw(t, f.s.Path(), `{"kind":"metric","name":"ok","value":1}
{"kind":"metric","name":"x\u0000y","value":2}
{"kind":"metric","name":"ok","value":3}
{"kind":"info","key":"a\u0000.b","value":1}
{"kind":"info","key":"n","value":{"k\u0000":1}}
{"kind":"info","key":"s","value":"a\u0000b"}
{"kind":"result","value":{"r\u0000":1}}
`)
	if got := steps(f.s.DrainMetrics(), "ok"); !reflect.DeepEqual(got, []int64{0, 1}) {
		t.Errorf("ok steps %v, want [0 1]", got)
	}
	if info := f.s.Info(); !reflect.DeepEqual(info, map[string]any{"s": "a\x00b"}) {
		t.Errorf("info %q", info)
	}
	if _, ok := f.s.Result(); ok {
		t.Error("a result with a NUL key was taken")
	}
	for _, want := range []string{
		`line 2: metric name "x\x00y" contains a NUL byte, which no store can keep; point dropped`,
		`line 4: info key "a\x00.b" contains a NUL byte, which no store can keep; ignored`,
		`line 5: info "n": key "k\x00" contains a NUL byte, which no store can keep; ignored`,
		`line 7: result: key "r\x00" contains a NUL byte, which no store can keep; ignored`,
	} {
		if w := f.warn.String(); strings.Count(w, want) != 1 {
			t.Errorf("warnings %q, want one %q", w, want)
		}
	}

	// The scraper reads raw bytes: a name that is not UTF-8 is refused.
	f = newServer(t, nil)
	sc, err := NewScraper(`^(?P<name>\S*) (?P<value>\S+)$`, f.s)
	if err != nil {
		t.Fatal(err)
	}
	sc.Write([]byte("lo\xffss 1\n 2\nloss 3\n"))
	sc.Close()
	if ms := f.s.DrainMetrics(); len(ms) != 1 || ms[0].Name != "loss" || len(ms[0].Points) != 1 {
		t.Errorf("metrics %+v, want loss's one point", ms)
	}
	w := f.warn.String()
	if !strings.Contains(w, `--metric-pattern: metric name "lo\xffss" is not valid UTF-8; point dropped`) ||
		!strings.Contains(w, `--metric-pattern: metric name is empty; point dropped`) {
		t.Errorf("warnings %q", w)
	}
}
