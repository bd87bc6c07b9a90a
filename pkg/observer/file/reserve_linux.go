package file

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// reserve keeps n bytes of disk allocated for f without changing its size
// (fallocate with FALLOC_FL_KEEP_SIZE), so that later writes up to n bytes
// in place need no new space. A file system without fallocate reserves
// nothing, which is no error; a full one is.
func reserve(f *os.File, n int64) error {
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
	}
	return nil
}
