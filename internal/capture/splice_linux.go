//go:build linux

package capture

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// growPipe asks for a larger kernel buffer on the pipe of r; refusal only
// costs speed.
func growPipe(r *os.File) {
	withFD(r, func(fd int) error {
		_, err := unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, pipeSize)
		return err
	})
}

// spliceCopy copies the stream without passing the bytes through user
// space: tee(2) duplicates what the child wrote into a private pipe, which
// is spliced to the wrapper's stream, then the original bytes are spliced
// into the spool. It reports false, having consumed nothing, when this path
// cannot be used; it falls back to copyLoop by itself after a failure of
// either side, or when the wrapper's stream refuses splice (a terminal, a
// file opened for append).
func spliceCopy(s *stream) bool {
	sp := s.c.spool
	if sp.f == nil || !sp.usable() || s.out == nil {
		return false
	}
	inRC, err := s.in.SyscallConn()
	if err != nil {
		return false
	}
	inFD := -1
	inRC.Control(func(fd uintptr) { inFD = int(fd) })
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return false
	}
	midR, midW := p[0], p[1]
	defer unix.Close(midR)
	defer unix.Close(midW)
	unix.FcntlInt(uintptr(midW), unix.F_SETPIPE_SZ, pipeSize)
	chunk, err := unix.FcntlInt(uintptr(midW), unix.F_GETPIPE_SZ, 0)
	if err != nil || chunk <= 0 {
		return false
	}

	outSplice := true
	first := true
	for {
		// Wait for data and duplicate it; SPLICE_F_NONBLOCK lets the
		// poller do the waiting, so a read deadline can stop us.
		var n int
		var terr error
		err := inRC.Read(func(uintptr) bool {
			var k int64
			k, terr = unix.Tee(inFD, midW, chunk, unix.SPLICE_F_NONBLOCK)
			n = int(k)
			return terr != unix.EAGAIN
		})
		if err != nil {
			s.readDone(err)
			return true
		}
		if terr == unix.EINTR {
			continue
		}
		if terr != nil {
			if first {
				return false // nothing consumed: the plain path takes over
			}
			s.readDone(terr)
			return true
		}
		first = false
		if n == 0 {
			return true // EOF: every writer closed and the pipe is empty
		}

		// The wrapper's stream first.
		if outSplice {
			moved, err := spliceOut(s.out, midR, n)
			if errors.Is(err, unix.EINVAL) && moved == 0 {
				outSplice = false // not spliceable: write the bytes instead
			} else if err != nil {
				s.c.notePassErr(fmt.Errorf("capture: write through to %s: %w (the rest of this stream goes to the record only)", s.out.name, err))
				s.out = nil
			}
			if err != nil {
				n2 := n - moved
				if !drainMid(s, midR, n2) {
					return true
				}
			}
		} else if !drainMid(s, midR, n) {
			return true
		}

		// Then the spool: the same n bytes, moved out of the child's pipe.
		left, ok := spliceSpool(sp, inFD, n)
		if left < 0 {
			// The spool refuses splice (not a regular file): write this
			// chunk the plain way and stay on the plain path.
			if readN(s, inFD, n, false, true) {
				s.copyLoop()
			}
			return true
		}
		if !ok {
			// Spool failed: the rest of this chunk, still in the child's
			// pipe, was already passed through, so it is dropped.
			if !discard(s, inFD, left) {
				return true
			}
			s.copyLoop()
			return true
		}
		if s.out == nil || !outSplice {
			// One side is gone or cannot splice: the plain loop is as
			// good from here on.
			s.copyLoop()
			return true
		}
	}
}

// spliceOut moves n bytes from the pipe midR to the wrapper's stream.
func spliceOut(o *rawOut, midR, n int) (int, error) {
	moved := 0
	for moved < n {
		var k int64
		var serr error
		err := o.rc.Write(func(fd uintptr) bool {
			k, serr = unix.Splice(midR, nil, int(fd), nil, n-moved, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			return serr != unix.EAGAIN
		})
		if err != nil {
			return moved, err
		}
		if serr == unix.EINTR {
			continue
		}
		if serr != nil {
			return moved, serr
		}
		if k == 0 {
			return moved, fmt.Errorf("splice moved nothing")
		}
		moved += int(k)
	}
	return moved, nil
}

// drainMid empties n bytes of the private pipe through a buffer, writing
// them to the wrapper's stream while it is usable. False means a read
// error, already noted.
func drainMid(s *stream, midR, n int) bool {
	return readN(s, midR, n, true, false)
}

// discard drops n bytes that are waiting in the child's pipe.
func discard(s *stream, inFD, n int) bool {
	return readN(s, inFD, n, false, false)
}

// readN reads n bytes that are known to be in the pipe fd, passing them
// through when pass is set and appending them to the spool when spool is
// set. It runs only on the rare switch away from the zero-copy path, so its
// buffer is not kept.
func readN(s *stream, fd, n int, pass, spool bool) bool {
	buf := make([]byte, min(n, bufSize))
	for n > 0 {
		k, err := unix.Read(fd, buf[:min(n, len(buf))])
		if err == unix.EINTR {
			continue
		}
		if err == nil && k == 0 {
			err = fmt.Errorf("unexpected end of pipe with %d bytes missing", n)
		}
		if err != nil {
			s.c.noteReadErr(fmt.Errorf("capture: read child output: %w", err))
			return false
		}
		if pass {
			s.passThrough(buf[:k])
		}
		if spool {
			s.c.spool.write(buf[:k])
		}
		n -= k
	}
	return true
}

// spliceSpool moves n bytes of the child's pipe to the end of the spool.
// On failure (recorded in the spool) it returns how many bytes were not
// moved; they stay in the pipe. It returns -1, having moved nothing and
// recorded nothing, when the spool does not support splice.
func spliceSpool(sp *spool, inFD, n int) (int, bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.err != nil || sp.closed {
		return n, false
	}
	off := sp.size.Load()
	total := n
	for n > 0 {
		k, err := unix.Splice(inFD, nil, int(sp.f.Fd()), &off, n, unix.SPLICE_F_MOVE)
		if err == unix.EINTR {
			continue
		}
		if err == nil && k == 0 {
			err = fmt.Errorf("splice moved nothing")
		}
		if err == unix.EINVAL && n == total {
			return -1, false
		}
		if err != nil {
			sp.fail(fmt.Errorf("capture: write output spool at byte %d: %w (output is still passed through, capture stopped)", off, err))
			return n, false
		}
		n -= int(k)
		sp.size.Store(off)
	}
	return 0, true
}
