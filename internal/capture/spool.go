package capture

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// spool is the append-only record of the captured output. Both streams
// append to it under mu; readers use ReadAt without locking, since size only
// grows after the bytes below it were written.
//
// The record starts in f: a private file, or an observer's own output file
// (file storage's cout.txt). That observer's disk must not decide what the
// others get, so when a write to its file fails the spool goes on in a
// private file (rest) and reads the output from both: [0, rest.base) from
// f and the remainder from rest.
type spool struct {
	f    *os.File
	size atomic.Int64
	// rest is set, before size passes rest.base, once the output goes on
	// in a private file after f failed.
	rest atomic.Pointer[segment]

	mu       sync.Mutex // serialises appends, the switch and the failures
	owned    bool       // f is an observer's file: switch on failure
	dir      string     // where the private file goes ("" = os.TempDir())
	lostFrom int64      // first byte f lacks, once lostErr is set
	lostErr  error      // why f stopped taking the output
	err      error      // first error of the record; no appends after it
	closed   bool
}

// segment is the private file holding the output from byte base on.
type segment struct {
	f    *os.File
	base int64
}

var _ io.ReaderAt = (*spool)(nil)

// newSpool returns a spool in a new private file in dir.
func newSpool(dir string) (*spool, error) {
	f, err := createPrivate(dir)
	if err != nil {
		return nil, fmt.Errorf("capture: create output spool: %w (set a writable directory for it)", err)
	}
	return &spool{f: f, dir: dir}, nil
}

// newOwnedSpool returns a spool that writes to an observer's file f and
// goes on in a private file in dir if f fails.
func newOwnedSpool(f *os.File, dir string) *spool {
	return &spool{f: f, owned: true, dir: dir}
}

// createPrivate creates a spool file in dir and unlinks it at once: the
// open descriptor keeps it readable, and nothing is left behind if the
// wrapper is killed.
func createPrivate(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, "sacred-output-*.spool")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
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
	// Loaded after size: a size past rest.base implies rest is visible.
	rest := s.rest.Load()
	n := 0
	if rest == nil || off < rest.base {
		head := p
		if rest != nil && off+int64(len(p)) > rest.base {
			head = p[:rest.base-off]
		}
		k, err := s.f.ReadAt(head, off)
		n = k
		if err != nil {
			return n, readErr(err)
		}
	}
	if n < len(p) {
		k, err := rest.f.ReadAt(p[n:], off+int64(n)-rest.base)
		n += k
		if err != nil {
			return n, readErr(err)
		}
	}
	if short {
		return n, io.EOF
	}
	return n, nil
}

func readErr(err error) error {
	if errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("capture: read output after the capture was closed: %w", err)
	}
	return fmt.Errorf("capture: read output spool: %w", err)
}

// write appends p. When the observer's file fails it goes on in a private
// file; after any other failure it drops everything: capture has stopped
// but pass-through goes on.
func (s *spool) write(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(p) > 0 && s.err == nil && !s.closed && s.f != nil {
		off := s.size.Load()
		w, base := s.target()
		n, err := w.WriteAt(p, off-base)
		if err != nil {
			n = written(w, off-base, n, len(p))
		}
		s.size.Store(off + int64(n))
		if err == nil {
			return
		}
		p = p[n:]
		s.writeFailed(off+int64(n), err)
	}
}

// written returns how many bytes of a failed WriteAt of size bytes at off
// reached f. os.File.WriteAt reports n without the bytes of a short write
// that ended in an error (a disk filling up part way through), though
// they are in the file: the size of a regular file tells.
func written(f *os.File, off int64, n, size int) int {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return n
	}
	if k := fi.Size() - off; k > int64(n) {
		return int(min(k, int64(size)))
	}
	return n
}

// target is the file appended to now and the offset in the output of its
// first byte. Called with mu held.
func (s *spool) target() (*os.File, int64) {
	if r := s.rest.Load(); r != nil {
		return r.f, r.base
	}
	return s.f, 0
}

// writeFailed handles a write that failed at byte at of the output, with
// mu held: a failing observer's file is replaced by a private one; any
// other failure ends the record at that byte.
func (s *spool) writeFailed(at int64, err error) {
	if !s.owned || s.rest.Load() != nil {
		s.fail(fmt.Errorf("capture: write output spool at byte %d: %w (output is still passed through, capture stopped)", at, err))
		return
	}
	s.lostFrom, s.lostErr = at, err
	f, cerr := createPrivate(s.dir)
	if cerr != nil {
		s.fail(fmt.Errorf("capture: write output spool at byte %d: %w, and no private spool could go on from there: %v (output is still passed through, capture stopped)", at, err, cerr))
		return
	}
	s.rest.Store(&segment{f: f, base: at})
}

// ownerLost reports the first byte the observer's file lacks and why, or
// (0, nil) while it holds the whole output.
func (s *spool) ownerLost() (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lostFrom, s.lostErr
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
	var errs []error
	if err := s.f.Close(); err != nil {
		errs = append(errs, err)
	}
	if r := s.rest.Load(); r != nil {
		if err := r.f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("capture: close output spool: %w", err)
	}
	return nil
}
