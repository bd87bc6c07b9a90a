package childapi

import (
	"net"
	"os"
	"syscall"
)

// drainBacklog accepts, without blocking, every connection the kernel has
// already queued on the listener, so that a client which connected and
// wrote just before the child exited is not lost when the listener closes.
func drainBacklog(s *Server) {
	rc, err := s.ln.SyscallConn()
	if err != nil {
		return
	}
	var fds []int
	rc.Control(func(fd uintptr) {
		for {
			nfd, _, err := syscall.Accept4(int(fd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				return // EAGAIN: the queue is empty
			}
			fds = append(fds, nfd)
		}
	})
	for _, fd := range fds {
		f := os.NewFile(uintptr(fd), "sacred-child-api")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			s.warnf("accept: %v", err)
			continue
		}
		s.serve(c)
	}
}
