// Package capture tees the output of a child process: every chunk the child
// writes reaches the wrapper's own stdout/stderr at once and unchanged, and is
// appended to a spool file that observers read through observer.Output. The
// output is never held in memory: only fixed buffers and a bounded tail of
// stderr (for the fail trace) are kept. The spool may be an observer's own
// file (Options.SpoolFile); when writing it fails, the spool goes on in a
// private file, so Output stays whole (see OwnerLost).
//
// Three modes exist. In pipe mode the child gets two pipes; in pty mode it
// gets a pseudo-terminal as stdout and stderr (one merged stream) so that
// colours and progress bars behave as on a terminal; in no mode it inherits
// the wrapper's streams and nothing is captured.
//
// Life cycle, as the runner drives it:
//
//	c, err := capture.New(opts)
//	err = c.Attach(cmd)     // before cmd.Start
//	err = cmd.Start()       // then c.Started(), or c.Abort() if Start failed
//	...                     // observers read c.Output() while the child runs
//	cmd.Wait()
//	err = c.Drain(ctx)      // ctx bounds the wait for grandchildren
//	c.Close()               // removes the spool
package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Mode selects how the child's output is captured.
type Mode string

const (
	ModePipe Mode = "pipe"
	ModePTY  Mode = "pty"
	ModeNo   Mode = "no"
)

// DefaultTailBytes is the stderr tail kept for the fail trace when
// Options.TailBytes is 0.
const DefaultTailBytes = 64 << 10

// bufSize is the copy buffer of each stream; it is allocated once per stream
// and reused for every chunk.
const bufSize = 256 << 10

// pipeSize is the kernel capacity asked for each capture pipe: a larger pipe
// means fewer wake-ups per byte. The request may be refused (pipe-max-size),
// which only costs speed.
const pipeSize = 1 << 20

// disableSplice selects the plain read/write path over the tee/splice one
// for stdout in pipe mode. Measured on Linux 6.18 (docs/performance.md), the
// zero-copy path costs more CPU (tee makes the child's pipe pages shared, so
// the kernel allocates fresh ones) and is no faster, because both are bound
// by writing the spool into the page cache; it stays tested behind this
// switch so it can be re-measured.
var disableSplice = true

// ParseMode parses the value of the capture-mode option. It accepts pipe,
// pty and no, plus Sacred's "fd" and "sys" as aliases of pipe. The empty
// string means auto: pty when stdout is a terminal, else pipe. Where there
// are no pseudo-terminals (Windows), pty is an error and auto is pipe.
func ParseMode(s string, stdout *os.File) (Mode, error) {
	switch s {
	case "pipe", "fd", "sys":
		return ModePipe, nil
	case "pty":
		if errNoPTY != nil {
			return "", errNoPTY
		}
		return ModePTY, nil
	case "no":
		return ModeNo, nil
	case "":
		if errNoPTY == nil && stdout != nil && isTerminal(stdout) {
			return ModePTY, nil
		}
		return ModePipe, nil
	}
	return "", fmt.Errorf("unknown capture mode %q: use one of pipe, pty, no (fd and sys mean pipe)", s)
}

// Options configures a Capture.
type Options struct {
	Mode Mode
	// Stdout and Stderr are the wrapper's own streams (os.Stdout and
	// os.Stderr when nil).
	Stdout, Stderr *os.File
	// SpoolDir is where the private spool file goes ("" = os.TempDir()).
	SpoolDir string
	// SpoolFile, when set, is an empty file opened for reading and
	// writing (not O_APPEND) that is used as the spool instead of a
	// private one (an observer's own output file). Close closes it; it is
	// not removed. When a write to it fails (a full disk), the output goes
	// on in a private spool in SpoolDir, so Output stays whole; OwnerLost
	// says from which byte the file lacks the output.
	SpoolFile *os.File
	// TailBytes is how many trailing bytes of stderr to keep (default
	// DefaultTailBytes).
	TailBytes int
}

// Capture is the tee of one child's output. Its methods may be called from
// several goroutines.
type Capture struct {
	mode   Mode
	stdout *os.File
	stderr *os.File
	spool  *spool
	tail   *ring

	// Pipe mode: the read ends stay in the parent, the write ends go to
	// the child. PTY mode: ptmx stays, tty goes to the child.
	readers []*os.File
	childFD []*os.File

	winch chan os.Signal // pty mode: SIGWINCH, nil when not watched
	// stopper wakes the zero-copy path (Linux), which waits outside the
	// Go poller; nil where that path does not exist.
	stopper *stopper
	tap     io.Writer // gets a copy of stdout; nil when none

	mu       sync.Mutex
	passErr  error // first error writing to the wrapper's streams
	readErr  error // first unexpected read error
	tapErr   error // why the stdout tap was dropped
	started  bool
	closed   bool
	wg       sync.WaitGroup
	done     chan struct{} // closed when every copier has returned
	stopOnce sync.Once
}

// New creates the spool and prepares a capture in mode o.Mode. Nothing is
// wired to a process until Attach.
func New(o Options) (*Capture, error) {
	switch o.Mode {
	case ModePipe, ModePTY, ModeNo:
	default:
		return nil, fmt.Errorf("capture: unknown mode %q: use one of pipe, pty, no", o.Mode)
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.TailBytes <= 0 {
		o.TailBytes = DefaultTailBytes
	}
	c := &Capture{
		mode:   o.Mode,
		stdout: o.Stdout,
		stderr: o.Stderr,
		tail:   newRing(o.TailBytes),
		done:   make(chan struct{}),
	}
	if o.Mode == ModeNo {
		// Nothing is captured; an empty spool keeps Output valid.
		if o.SpoolFile != nil {
			o.SpoolFile.Close()
		}
		c.spool = &spool{}
		return c, nil
	}
	if o.SpoolFile != nil {
		fi, err := o.SpoolFile.Stat()
		if err != nil || fi.Size() != 0 {
			o.SpoolFile.Close()
			return nil, fmt.Errorf("capture: output file %s is not an empty file (%v)", o.SpoolFile.Name(), err)
		}
		c.spool = newOwnedSpool(o.SpoolFile, o.SpoolDir)
		return c, nil
	}
	sp, err := newSpool(o.SpoolDir)
	if err != nil {
		return nil, err
	}
	c.spool = sp
	return c, nil
}

// Mode reports the mode the capture runs in.
func (c *Capture) Mode() Mode { return c.mode }

// Attach wires cmd.Stdout and cmd.Stderr and, in pty mode, sets Setsid,
// Setctty and Ctty in cmd.SysProcAttr (so the runner must not set Setpgid).
// cmd.Stdin is left alone. It must be called once, before cmd.Start.
func (c *Capture) Attach(cmd *exec.Cmd) error {
	if c.readers != nil || c.childFD != nil {
		return errors.New("capture: Attach called twice")
	}
	switch c.mode {
	case ModeNo:
		cmd.Stdout, cmd.Stderr = c.stdout, c.stderr
		return nil
	case ModePipe:
		if st, err := newStopper(); err == nil {
			c.stopper = st
		}
		for range 2 {
			r, w, err := os.Pipe()
			if err != nil {
				c.Abort()
				return fmt.Errorf("capture: create output pipe: %w", err)
			}
			growPipe(r)
			c.readers = append(c.readers, r)
			c.childFD = append(c.childFD, w)
		}
		cmd.Stdout, cmd.Stderr = c.childFD[0], c.childFD[1]
		return nil
	case ModePTY:
		ptmx, tty, err := openPTY(c.stdout)
		if err != nil {
			return err
		}
		c.readers = []*os.File{ptmx}
		c.childFD = []*os.File{tty}
		cmd.Stdout, cmd.Stderr = tty, tty
		setControllingTTY(cmd)
		return nil
	}
	return fmt.Errorf("capture: unknown mode %q", c.mode)
}

// TapStdout makes every chunk of the child's stdout (in pty mode, of the
// merged stream) also go to w, after it was passed through and spooled, for
// example to scrape metrics from it. w is called from one goroutine, must
// not block for long, and is dropped after its first error. It must be
// called before Started; in mode no it has no effect.
func (c *Capture) TapStdout(w io.Writer) {
	c.tap = w
}

// Started is called right after cmd.Start succeeded: it closes the child's
// ends in the parent and starts copying.
func (c *Capture) Started() error {
	c.mu.Lock()
	if c.started || c.closed {
		c.mu.Unlock()
		return errors.New("capture: Started called twice or after Close")
	}
	c.started = true
	c.mu.Unlock()

	// The parent must not hold the write ends, or EOF never comes.
	var errs []error
	for _, f := range c.childFD {
		if err := f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("capture: close child end: %w", err))
		}
	}
	c.childFD = nil

	switch c.mode {
	case ModePipe:
		c.startCopier(c.readers[0], c.stdout, nil, c.tap, true)
		c.startCopier(c.readers[1], c.stderr, c.tail, nil, false)
	case ModePTY:
		c.watchWinsize()
		c.startCopier(c.readers[0], c.stdout, c.tail, c.tap, false)
	}
	go func() {
		c.wg.Wait()
		close(c.done)
	}()
	return errors.Join(errs...)
}

// startCopier runs one stream's copy loop in its own goroutine. fast allows
// the zero-copy path (stdout, whose bytes neither the tail nor a tap needs).
func (c *Capture) startCopier(in, out *os.File, tail *ring, tap io.Writer, fast bool) {
	s := &stream{
		c:    c,
		in:   in,
		out:  newRawOut(out),
		tail: tail,
		tap:  tap,
		pty:  c.mode == ModePTY,
	}
	fast = fast && tap == nil
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if fast && !disableSplice && s.out != nil && spliceCopy(s) {
			return
		}
		s.copyLoop()
	}()
}

// Abort is called instead of Started when cmd.Start failed: it releases
// pipes, the pty and the spool. Close after Abort is a no-op.
func (c *Capture) Abort() {
	for _, f := range c.childFD {
		f.Close()
	}
	c.childFD = nil
	for _, f := range c.readers {
		f.Close()
	}
	c.readers = nil
	c.stopper.close()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.spool.close()
}

// Drain waits until all output was copied after the child exited. When a
// grandchild keeps the output open, it stops copying once ctx is done and
// returns an error wrapping ctx.Err(). The read ends are closed on return.
func (c *Capture) Drain(ctx context.Context) error {
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if !started {
		return nil
	}
	var err error
	select {
	case <-c.done:
	case <-ctx.Done():
		c.stop()
		<-c.done
		err = fmt.Errorf("capture: output still open after the child exited (a background process keeps it), stopped copying: %w", ctx.Err())
	}
	c.release()
	return err
}

// stop makes every blocked read return, so the copiers exit.
func (c *Capture) stop() {
	c.stopOnce.Do(func() {
		past := time.Unix(1, 0)
		for _, f := range c.readers {
			// Pipes and the ptmx are in the poller, so a deadline in the
			// past wakes a blocked read at once.
			f.SetReadDeadline(past)
		}
		if c.stopper != nil {
			c.stopper.stop()
		}
	})
}

// release closes the read ends and stops watching the window size.
func (c *Capture) release() {
	if c.winch != nil {
		stopWinsize(c.winch)
		c.winch = nil
	}
	for _, f := range c.readers {
		f.Close()
	}
	c.readers = nil
	c.stopper.close()
}

// Output returns the spool; it is valid until Close.
func (c *Capture) Output() observer.Output { return c.spool }

// StderrTail returns a copy of the last TailBytes of stderr (in pty mode of
// the merged stream).
func (c *Capture) StderrTail() []byte { return c.tail.bytes() }

// Err returns the error that ended the record (Output) early, for example
// a full disk under the private spool, or nil. After it the output was still
// passed through, but capture stopped: Output().Size() is the byte where the
// record stops. A failing Options.SpoolFile alone is not such an error: see
// OwnerLost.
func (c *Capture) Err() error { return c.spool.failure() }

// OwnerLost reports whether Options.SpoolFile, the observer's own output
// file, stopped taking the output: it then holds exactly bytes [0, from)
// of it, and err (wrapping the system error, such as ENOSPC) says why.
// The rest went to a private spool, so Output is still whole (unless Err
// says otherwise) and the other observers lose nothing; the observer
// that owns the file should say what it lost. It is (0, nil) while the
// file holds the whole output, and when there is no such file.
func (c *Capture) OwnerLost() (from int64, err error) { return c.spool.ownerLost() }

// PassErr returns the first error writing to the wrapper's own streams (for
// example EPIPE when the reader of `sacred run ... | head -1` went away), or
// nil. After such an error that stream went to the spool only, so the child
// never blocked.
func (c *Capture) PassErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.passErr
}

// TapErr returns the error that made the stdout tap be dropped, or nil.
func (c *Capture) TapErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tapErr
}

// ReadErr returns the first unexpected error reading the child's output, or
// nil. EOF, EIO of a pty at child exit and the stop of Drain are expected.
func (c *Capture) ReadErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr
}

// Close stops copying if Drain was not called, then removes the spool.
func (c *Capture) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	started := c.started
	c.mu.Unlock()
	if started {
		c.stop()
		<-c.done
	}
	for _, f := range c.childFD {
		f.Close()
	}
	c.childFD = nil
	c.release()
	return c.spool.close()
}

func (c *Capture) notePassErr(err error) {
	c.mu.Lock()
	if c.passErr == nil {
		c.passErr = err
	}
	c.mu.Unlock()
}

func (c *Capture) noteReadErr(err error) {
	c.mu.Lock()
	if c.readErr == nil {
		c.readErr = err
	}
	c.mu.Unlock()
}
