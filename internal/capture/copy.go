package capture

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/term"
)

// stream copies one output stream of the child.
type stream struct {
	c    *Capture
	in   *os.File
	out  *rawOut // nil when the wrapper's stream is unusable
	tail *ring   // nil for stdout in pipe mode
	tap  io.Writer
	pty  bool // EIO on read means the child side closed
}

// copyLoop is the portable path: read a chunk, write it through, append it
// to the spool and the tail, with one buffer reused for every chunk.
func (s *stream) copyLoop() {
	buf := make([]byte, bufSize)
	for {
		n, err := s.in.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			// The terminal first: the user sees output as soon as it exists.
			s.passThrough(chunk)
			s.c.spool.write(chunk)
			s.tail.write(chunk)
			s.toTap(chunk)
		}
		if err != nil {
			s.readDone(err)
			return
		}
	}
}

// passThrough writes p to the wrapper's stream; after a failure that stream
// is skipped, so the child keeps running and the spool keeps filling.
func (s *stream) passThrough(p []byte) {
	if s.out == nil {
		return
	}
	if err := s.out.write(p); err != nil {
		s.c.notePassErr(fmt.Errorf("capture: write through to %s: %w (the rest of this stream goes to the record only)", s.out.name, err))
		s.out = nil
	}
}

// toTap hands a chunk to the tap, dropping the tap after its first error.
func (s *stream) toTap(p []byte) {
	if s.tap == nil {
		return
	}
	if _, err := s.tap.Write(p); err != nil {
		s.c.mu.Lock()
		s.c.tapErr = fmt.Errorf("capture: stdout tap: %w (no more output goes to it)", err)
		s.c.mu.Unlock()
		s.tap = nil
	}
}

// readDone classifies the error that ended a read loop.
func (s *stream) readDone(err error) {
	switch {
	case errors.Is(err, io.EOF):
	case s.pty && errors.Is(err, syscall.EIO):
		// Linux reports EIO on the master once every slave fd is closed.
	case errors.Is(err, os.ErrDeadlineExceeded):
		// Drain gave up waiting: stopping is what was asked.
	default:
		s.c.noteReadErr(fmt.Errorf("capture: read child output: %w", err))
	}
}

// fd runs f with the descriptor of file without switching it to blocking
// mode, as File.Fd would.
func withFD(file *os.File, f func(fd int) error) error {
	rc, err := file.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	is := false
	withFD(f, func(fd int) error {
		is = term.IsTerminal(fd)
		return nil
	})
	return is
}
