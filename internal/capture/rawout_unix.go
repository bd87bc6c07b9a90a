//go:build !windows

package capture

import (
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// rawOut writes to one of the wrapper's streams with plain write(2) calls.
// os.File.Write is avoided on purpose: on fd 1 and 2 it turns EPIPE into the
// wrapper's death by SIGPIPE, and the wrapper must outlive a closed reader to
// record the run.
type rawOut struct {
	name string
	rc   syscall.RawConn
}

func newRawOut(f *os.File) *rawOut {
	if f == nil {
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	return &rawOut{name: f.Name(), rc: rc}
}

func (o *rawOut) write(p []byte) error {
	for len(p) > 0 {
		var n int
		var werr error
		err := o.rc.Write(func(fd uintptr) bool {
			n, werr = unix.Write(int(fd), p)
			// EAGAIN: a non-blocking stream is full; the poller waits.
			return werr != unix.EAGAIN
		})
		if err != nil {
			return err
		}
		if werr == unix.EINTR {
			continue
		}
		if werr != nil {
			return werr
		}
		if n <= 0 {
			return io.ErrShortWrite
		}
		p = p[n:]
	}
	return nil
}
