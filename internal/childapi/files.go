package childapi

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// Files a child names (artifacts, resources, --result-file) are opened and
// read by the wrapper. None of that may hang it: a FIFO would block open(2)
// until a writer comes, a device or a pseudo-file may never end, and a file
// that keeps growing would keep a copy going. So a file is checked before it
// is opened, opened without blocking, checked again on the descriptor (the
// path may have been replaced in between), and read only up to the size it
// had when it was opened, in chunks between which the server can stop.

// copyChunk is how much is copied between two checks for a stop; a chunk
// still uses the kernel's file-to-file copy.
const copyChunk = 32 << 20

// errStopped is returned by a copy the server stopped at its end.
var errStopped = errors.New("stopped: the run ended before it finished")

// openRegular opens p for reading and refuses anything but a regular file
// (symbolic links are followed: the child may name its files through them).
// It returns the descriptor's FileInfo, whose size and mode are those of
// the file that is read.
func openRegular(p string) (*os.File, fs.FileInfo, error) {
	st, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, missingError(p)
		}
		return nil, nil, fmt.Errorf("stat %s: %w", p, err)
	}
	if !st.Mode().IsRegular() {
		return nil, nil, notRegular(p, st.Mode())
	}
	f, err := os.OpenFile(p, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", p, err)
	}
	st, err = f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat %s: %w", p, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, notRegular(p, st.Mode())
	}
	return f, st, nil
}

// missingError says that a path does not exist; errors.Is(err,
// fs.ErrNotExist) holds.
type missingError string

func (e missingError) Error() string { return string(e) + " does not exist" }
func (e missingError) Unwrap() error { return fs.ErrNotExist }

// notRegular names what p is, so that the warning says why it was refused.
func notRegular(p string, m fs.FileMode) error {
	what := "not a regular file"
	switch {
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO), not a regular file"
	case m.IsDir():
		what = "a directory, not a regular file"
	case m&fs.ModeSocket != 0:
		what = "a socket, not a regular file"
	case m&fs.ModeDevice != 0:
		what = "a device, not a regular file"
	}
	return fmt.Errorf("%s is %s", p, what)
}

// copyN copies up to n bytes from src to dst, in chunks, and gives up with
// errStopped once stop is closed. A file that shrank in the meantime ends
// the copy early without an error: the copy holds what was there.
func copyN(dst io.Writer, src io.Reader, n int64, stop <-chan struct{}) error {
	for n > 0 {
		select {
		case <-stop:
			return errStopped
		default:
		}
		c, err := io.CopyN(dst, src, min(n, copyChunk))
		n -= c
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// resultFileWait bounds reading --result-file, which happens on the
// wrapper's main path after the child exited.
const resultFileWait = 10 * time.Second
