package exec

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxAnswer bounds one answer line.
const maxAnswer = 1 << 20

// process is the observer's long-lived process: events go to its stdin,
// answers come from its stdout one line each, its stderr goes to the
// user's with a prefix.
type process struct {
	cmd     *osexec.Cmd
	stdin   *os.File
	answers chan line     // closed when stdout ends
	exited  chan struct{} // closed when the process is gone
	waitErr error         // valid once exited is closed
	stderr  *stderrTail

	// late counts answers owed for calls that gave up waiting: they are
	// read and dropped before the next call's answer, so that answers
	// stay matched with their events.
	late int
	// broken is set when the process cannot be talked to any more.
	broken error
	killed bool
}

// line is one line of stdout, without its "\n".
type line struct {
	b       []byte
	tooLong bool
}

func start(cmdline string, warn io.Writer) (*process, error) {
	cmd := shellCommand(cmdline)
	cmd.Env = envWithoutSacred(os.Environ())
	setProcessGroup(cmd)
	// Our own pipes, not StdinPipe: *os.File pipes take write deadlines.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("observer-exec: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("observer-exec: %w", err)
	}
	p := &process{cmd: cmd, stdin: inW, answers: make(chan line, 16), exited: make(chan struct{}), stderr: newStderrTail(warn)}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, p.stderr
	// Bounds the copying of stderr once the process is gone, when a
	// child of it keeps the pipe open.
	cmd.WaitDelay = 500 * time.Millisecond
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("observer-exec: starting %s: %w", quoteCut(cmdline, 200), err)
	}
	go p.read(outR)
	go func() {
		p.waitErr = cmd.Wait()
		p.stderr.flush()
		close(p.exited)
	}()
	return p, nil
}

// read sends stdout's lines to answers.
func (p *process) read(r io.ReadCloser) {
	defer close(p.answers)
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		var buf []byte
		tooLong := false
		for {
			chunk, err := br.ReadSlice('\n')
			if len(buf)+len(chunk) > maxAnswer {
				tooLong = true
			} else {
				buf = append(buf, chunk...)
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				if len(buf) > 0 {
					p.answers <- line{b: buf, tooLong: tooLong}
				}
				return
			}
			break
		}
		p.answers <- line{b: bytes.TrimRight(buf, "\r\n"), tooLong: tooLong}
	}
}

// exchange writes one event line and returns the answer line.
func (p *process) exchange(ctx context.Context, event string, msg []byte) ([]byte, error) {
	if p.broken != nil {
		return nil, p.broken
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("observer-exec: the %s event was not sent: %w", event, err)
	}
	for p.late > 0 {
		select {
		case _, ok := <-p.answers:
			if !ok {
				return nil, p.gone(ctx, event)
			}
			p.late--
		case <-ctx.Done():
			return nil, fmt.Errorf("observer-exec: the %s event was not sent: the observer process has still not answered an earlier event: %w", event, ctx.Err())
		}
	}
	if err := p.write(ctx, msg); err != nil {
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, fmt.Errorf("observer-exec: the observer process did not read the %s event in time: %w", event, ctxErr(ctx))
		case errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrClosed):
			return nil, p.gone(ctx, event)
		}
		return nil, fmt.Errorf("observer-exec: writing the %s event: %w", event, err)
	}
	select {
	case l, ok := <-p.answers:
		if !ok {
			return nil, p.gone(ctx, event)
		}
		if l.tooLong {
			return nil, fmt.Errorf("observer-exec: the observer process answered the %s event with a line longer than %d bytes", event, maxAnswer)
		}
		return l.b, nil
	case <-ctx.Done():
		p.late++
		return nil, fmt.Errorf("observer-exec: the observer process did not answer the %s event in time: %w", event, ctx.Err())
	}
}

func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return context.DeadlineExceeded
}

// write writes msg whole, within ctx. Half a line would garble every later
// event, so a write cut short stops the process.
func (p *process) write(ctx context.Context, msg []byte) error {
	deadline, _ := ctx.Deadline() // zero: none
	if err := p.stdin.SetWriteDeadline(deadline); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { p.stdin.SetWriteDeadline(time.Unix(1, 0)) })
	n, err := p.stdin.Write(msg)
	stop()
	if err != nil && n > 0 {
		p.kill()
		p.broken = fmt.Errorf("observer-exec: the observer process was stopped: it stopped reading in the middle of an event")
	}
	return err
}

// gone is the error of a process whose stdout ended: it exited, or closed
// it. It waits for the exit status within ctx.
func (p *process) gone(ctx context.Context, event string) error {
	select {
	case <-p.exited:
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
	status := "closed its output"
	select {
	case <-p.exited:
		status = "exited"
		if p.waitErr != nil {
			status = "exited (" + p.waitErr.Error() + ")"
		} else {
			status = "exited (status 0)"
		}
	default:
	}
	p.broken = fmt.Errorf("observer-exec: the observer process %s before answering the %s event%s", status, event, p.stderr.lastWords())
	return p.broken
}

// kill stops the process and everything it started.
func (p *process) kill() {
	p.killed = true
	killProcessGroup(p.cmd)
}

// stop closes stdin and waits for the exit within ctx (closeGrace without
// a deadline), then kills.
func (p *process) stop(ctx context.Context) error {
	p.stdin.Close()
	wait := closeGrace
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
	case <-ctx.Done():
	}
	select {
	case <-p.exited:
		if p.waitErr != nil && !p.killed && p.broken == nil {
			return fmt.Errorf("observer-exec: the observer process exited with %v%s", p.waitErr, p.stderr.lastWords())
		}
		return nil
	default:
	}
	p.kill()
	<-p.exited // SIGKILL, and WaitDelay bounds the rest
	if p.broken != nil {
		return nil // already reported
	}
	return fmt.Errorf("observer-exec: the observer process did not exit after its input was closed; it was killed%s", p.stderr.lastWords())
}

// stderrTail writes the process's stderr to the user's, each line
// prefixed, and keeps the last lines for error messages.
type stderrTail struct {
	mu    sync.Mutex
	w     io.Writer
	part  []byte
	lines []string
}

const keepLines = 5

func newStderrTail(w io.Writer) *stderrTail { return &stderrTail{w: w} }

func (s *stderrTail) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.part = append(s.part, b...)
	for {
		i := bytes.IndexByte(s.part, '\n')
		if i < 0 {
			break
		}
		s.emit(string(s.part[:i]))
		s.part = s.part[i+1:]
	}
	if len(s.part) > 64<<10 { // a very long line: show it in pieces
		s.emit(string(s.part))
		s.part = nil
	}
	return len(b), nil
}

func (s *stderrTail) emit(l string) {
	l = strings.TrimRight(l, "\r")
	fmt.Fprintf(s.w, "observer-exec: %s\n", l)
	s.lines = append(s.lines, cut(l, 300))
	if len(s.lines) > keepLines {
		s.lines = s.lines[1:]
	}
}

func (s *stderrTail) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.part) > 0 {
		s.emit(string(s.part))
		s.part = nil
	}
}

// lastWords is "; its last lines on stderr: ..." or "".
func (s *stderrTail) lastWords() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lines) == 0 {
		return ""
	}
	return "; its last lines on stderr: " + strings.Join(s.lines, " | ")
}
