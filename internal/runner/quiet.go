package runner

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// quietMessageCap bounds the messages --quiet-unless-fail holds back;
// lines past it are counted and left out.
const quietMessageCap = 256 << 10

// replayStall is how long showing a failed quiet run may make no progress
// (a terminal or pipe nobody reads) before the wrapper gives up on it.
const replayStall = 10 * time.Second

// Quiet is --quiet-unless-fail, chronic's behaviour for cron mail: the
// command's output and sacred's own messages stay off the terminal, and
// appear there only when the run failed. The output is captured and
// recorded as always and, for a failed run, streamed back from the
// capture's spool (interleaved as recorded, on stdout); the messages wait
// in a bounded buffer (on stderr, in order, before and after the output as
// they came). Writes never block.
type Quiet struct {
	stdout, stderr *os.File

	mu      sync.Mutex
	buf     []byte
	mark    int  // len(buf) when the command started; -1 before
	dropped int  // message lines left out: the buffer was full
	shown   int  // bytes of buf already on stderr
	loud    bool // the run failed: what is held is shown
	stuck   bool // the terminal stopped taking what was shown
}

// NewQuiet returns the quiet mode of a run whose terminal is stdout and
// stderr.
func NewQuiet(stdout, stderr *os.File) *Quiet {
	return &Quiet{stdout: stdout, stderr: stderr, mark: -1}
}

// Write holds one message line.
func (q *Quiet) Write(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.buf)+len(p) > quietMessageCap {
		q.dropped++
		return len(p), nil
	}
	q.buf = append(q.buf, p...)
	return len(p), nil
}

// commandStarted marks where the command's output goes among the
// messages.
func (q *Quiet) commandStarted() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.mark = len(q.buf)
}

// show puts a failed run on the terminal: the messages held so far and the
// command's whole output, streamed from out (nil: none) in its place among
// them. Later messages wait for End.
func (q *Quiet) show(out observer.Output) {
	q.mu.Lock()
	if q.loud {
		q.mu.Unlock()
		return
	}
	q.loud = true
	n := len(q.buf)
	held := q.buf[:n:n]
	mark := q.mark
	if mark < 0 {
		mark = n
	}
	q.shown = n
	q.mu.Unlock()

	q.write(func(w func(f *os.File, r io.Reader)) {
		w(q.stderr, sectionOf(held[:mark]))
		if out != nil {
			w(q.stdout, io.NewSectionReader(out, 0, out.Size()))
		}
		w(q.stderr, sectionOf(held[mark:]))
	})
}

// End shows the messages still held when the run failed (failed: the exit
// status is not 0) or was shown already; otherwise they are dropped, as
// the run went well.
func (q *Quiet) End(failed bool) {
	q.mu.Lock()
	if !q.loud && !failed || q.stuck {
		q.mu.Unlock()
		return
	}
	q.loud = true
	rest := q.buf[q.shown:len(q.buf):len(q.buf)]
	q.shown = len(q.buf)
	if q.dropped > 0 {
		rest = append(rest, fmt.Sprintf("sacred: %d more lines of sacred's messages were left out (--quiet-unless-fail holds %d KiB of them)\n", q.dropped, quietMessageCap>>10)...)
		q.dropped = 0
	}
	q.mu.Unlock()
	q.write(func(w func(f *os.File, r io.Reader)) { w(q.stderr, sectionOf(rest)) })
}

// write runs the writes of f in order, and stops waiting for them when
// they make no progress for replayStall: a terminal that is not read must
// not keep the wrapper from exiting with the command's status.
func (q *Quiet) write(f func(w func(*os.File, io.Reader))) {
	var progress atomic.Int64
	done := goDo(func() {
		f(func(dst *os.File, r io.Reader) {
			// A write error (a closed pipe) drops the rest of r.
			_, _ = io.Copy(progressWriter{dst, &progress}, r)
		})
	})
	t := time.NewTicker(replayStall)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if n := progress.Load(); n != last {
				last = n
				continue
			}
			q.mu.Lock()
			q.stuck = true
			q.mu.Unlock()
			return
		}
	}
}

func sectionOf(b []byte) io.Reader { return bytes.NewReader(b) }

type progressWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (p progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n.Add(int64(n))
	return n, err
}
