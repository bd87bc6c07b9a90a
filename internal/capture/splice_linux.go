//go:build linux

package capture

import (
	"errors"
	"fmt"
	"os"
	"sync"

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

// stopper wakes the zero-copy loops, which wait in poll(2) rather than in
// the Go poller, when Drain or Close gives up.
type stopper struct {
	once sync.Once
	fd   int // eventfd; readable once stopped
}

func newStopper() (*stopper, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	return &stopper{fd: fd}, nil
}

func (s *stopper) stop() {
	s.once.Do(func() {
		unix.Write(s.fd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	})
}

func (s *stopper) close() {
	if s != nil && s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}

// wait blocks until fd has one of events or the stopper fired; false means
// stopped.
func (s *stopper) wait(fd int, events int16) bool {
	p := []unix.PollFd{{Fd: int32(fd), Events: events}, {Fd: int32(s.fd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(p, -1)
		if err == unix.EINTR {
			continue
		}
		if p[1].Revents != 0 {
			return false
		}
		return true
	}
}

// spliceCopy copies the stream without passing the bytes through user
// space, in two goroutines so that writing the spool (a copy into the page
// cache) overlaps with passing the bytes through:
//
//	child pipe --tee(2)--> private pipe --splice(2)--> spool   (spool goroutine)
//	     \--splice(2)--> wrapper's stream                       (this goroutine)
//
// The private pipe bounds what the spool may lag behind (pipeSize bytes of
// kernel memory). It reports false, having consumed nothing, when this path
// cannot be set up; copyLoop then runs instead.
func spliceCopy(s *stream) bool {
	sp := s.c.spool
	if sp.f == nil || !sp.usable() || s.out == nil || s.c.stopper == nil {
		return false
	}
	inFD, outFD := -1, -1
	if withFD(s.in, func(fd int) error { inFD = fd; return nil }) != nil {
		return false
	}
	if s.out.rc.Control(func(fd uintptr) { outFD = int(fd) }) != nil {
		return false
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return false
	}
	midR, midW := p[0], p[1]
	unix.FcntlInt(uintptr(midW), unix.F_SETPIPE_SZ, pipeSize)
	chunk, err := unix.FcntlInt(uintptr(midW), unix.F_GETPIPE_SZ, 0)
	if err != nil || chunk <= 0 {
		unix.Close(midR)
		unix.Close(midW)
		return false
	}

	var spoolDone sync.WaitGroup
	spoolDone.Add(1)
	go func() {
		defer spoolDone.Done()
		spoolFromPipe(s.c, midR, chunk)
	}()
	defer func() {
		// EOF for the spool goroutine, which then drains what is left.
		unix.Close(midW)
		spoolDone.Wait()
		unix.Close(midR)
	}()

	st := s.c.stopper
	var buf []byte // only when the wrapper's stream refuses splice
	var null = -1  // /dev/null, once the wrapper's stream failed
	outSplice := true
	waitedIn := false
	defer func() {
		if null >= 0 {
			unix.Close(null)
		}
	}()
	for {
		k, err := unix.Tee(inFD, midW, chunk, unix.SPLICE_F_NONBLOCK)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			// Either the child's pipe is empty or the private pipe is
			// full: wait for data first, then for room.
			if !waitedIn {
				waitedIn = true
				if !st.wait(inFD, unix.POLLIN) {
					return true
				}
			} else {
				waitedIn = false
				if !st.wait(midW, unix.POLLOUT) {
					return true
				}
			}
			continue
		case err != nil:
			s.c.noteReadErr(fmt.Errorf("capture: duplicate child output: %w", err))
			return true
		case k == 0:
			return true // every writer closed and the pipe is empty
		}
		waitedIn = false
		n := int(k)

		// The same n bytes, now consumed from the child's pipe, go to
		// the wrapper's stream (or /dev/null once that failed).
		for n > 0 {
			if !outSplice {
				if buf == nil {
					buf = make([]byte, bufSize)
				}
				r, err := unix.Read(inFD, buf[:min(n, len(buf))])
				if err == unix.EINTR {
					continue
				}
				if err != nil || r == 0 {
					s.c.noteReadErr(fmt.Errorf("capture: read child output: %w", err))
					return true
				}
				s.passThrough(buf[:r])
				n -= r
				continue
			}
			m, err := unix.Splice(inFD, nil, outFD, nil, n, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			switch {
			case err == nil && m > 0:
				n -= int(m)
			case err == unix.EINTR:
			case err == unix.EAGAIN:
				// A non-blocking wrapper stream is full.
				if !st.wait(outFD, unix.POLLOUT) {
					return true
				}
			case err == unix.EINVAL && null < 0:
				// A terminal or a file opened for append: no splice.
				outSplice = false
			default:
				if err == nil {
					err = errors.New("splice moved nothing")
				}
				s.c.notePassErr(fmt.Errorf("capture: write through to %s: %w (the rest of this stream goes to the record only)", s.out.name, err))
				if null < 0 {
					null, err = unix.Open(os.DevNull, unix.O_WRONLY|unix.O_CLOEXEC, 0)
					if err != nil {
						s.c.noteReadErr(fmt.Errorf("capture: open %s: %w", os.DevNull, err))
						return true
					}
				} else {
					return true
				}
				s.out = nil
				outFD, outSplice = null, true
			}
		}
	}
}

// spoolFromPipe moves everything arriving on the private pipe midR to the
// end of the spool until EOF. When the observer's file fails, the spool's
// target becomes its private file and splicing goes on there: splice(2)
// consumes only what it wrote, so no byte is lost at the switch. After the
// record failed it keeps reading and dropping, so the pass-through side
// never blocks on a full private pipe.
func spoolFromPipe(c *Capture, midR, chunk int) {
	sp := c.spool
	var cur *os.File // the spool's target whose descriptor is fd
	fd := -1
	splice := true
	var buf []byte
	for {
		p := []unix.PollFd{{Fd: int32(midR), Events: unix.POLLIN}}
		if _, err := unix.Poll(p, -1); err == unix.EINTR {
			continue
		}
		if splice && sp.usable() {
			sp.mu.Lock()
			off := sp.size.Load()
			w, base := sp.target()
			if w != cur {
				cur, fd = w, int(w.Fd())
			}
			woff := off - base
			k, err := unix.Splice(midR, nil, fd, &woff, chunk, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			switch {
			case err == nil && k == 0:
				sp.mu.Unlock()
				return
			case err == nil:
				sp.size.Store(off + k)
			case err == unix.EINTR || err == unix.EAGAIN:
			case err == unix.EINVAL && woff == 0:
				// The target is not a regular file: copy through a buffer.
				splice = false
			default:
				sp.writeFailed(off, &os.PathError{Op: "write", Path: w.Name(), Err: err})
			}
			sp.mu.Unlock()
			continue
		}
		if buf == nil {
			buf = make([]byte, bufSize)
		}
		k, err := unix.Read(midR, buf)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil || k == 0 {
			if err != nil {
				c.noteReadErr(fmt.Errorf("capture: read duplicated output: %w", err))
			}
			return
		}
		sp.write(buf[:k]) // a no-op once the record failed
	}
}
