package capture

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// spool is the append-only file holding the captured output. Both streams
// append to it under mu; readers use ReadAt without locking, since size only
// grows after the bytes below it were written.
type spool struct {
	f    *os.File
	size atomic.Int64

	mu     sync.Mutex // serialises appends and the failure
	err    error      // first write error; no appends after it
	closed bool
}

var _ io.ReaderAt = (*spool)(nil)

// newSpool creates the spool file in dir and unlinks it at once: the open
// descriptor keeps it readable, and nothing is left behind if the wrapper is
// killed.
func newSpool(dir string) (*spool, error) {
	f, err := os.CreateTemp(dir, "sacred-output-*.spool")
	if err != nil {
		return nil, fmt.Errorf("capture: create output spool: %w (set a writable directory for it)", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("capture: unlink output spool: %w", err)
	}
	return &spool{f: f}, nil
}

// Size returns the number of bytes captured so far.
func (s *spool) Size() int64 { return s.size.Load() }

// ReadAt reads captured bytes; bytes at or past Size are not yet captured
// and read as io.EOF.
func (s *spool) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("capture: read output at negative offset %d", off)
	}
	size := s.size.Load()
	if off >= size {
		return 0, io.EOF
	}
	short := false
	if rest := size - off; int64(len(p)) > rest {
		p = p[:rest]
		short = true
	}
	if s.f == nil {
		return 0, io.EOF
	}
	n, err := s.f.ReadAt(p, off)
	if err != nil {
		if errors.Is(err, os.ErrClosed) {
			return n, fmt.Errorf("capture: read output after the capture was closed: %w", err)
		}
		return n, fmt.Errorf("capture: read output spool: %w", err)
	}
	if short {
		return n, io.EOF
	}
	return n, nil
}

// write appends p. After the first error it drops everything: capture has
// stopped but pass-through goes on.
func (s *spool) write(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.closed || s.f == nil {
		return
	}
	off := s.size.Load()
	n, err := s.f.WriteAt(p, off)
	s.size.Store(off + int64(n))
	if err != nil {
		s.err = fmt.Errorf("capture: write output spool at byte %d: %w (output is still passed through, capture stopped)", off+int64(n), err)
	}
}

// usable reports whether appends are still accepted.
func (s *spool) usable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err == nil && !s.closed && s.f != nil
}

func (s *spool) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// fail records err as the spool's first error.
func (s *spool) fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

func (s *spool) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.f == nil {
		s.closed = true
		return nil
	}
	s.closed = true
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("capture: close output spool: %w", err)
	}
	return nil
}
