// Package childapi is the channel through which a child program reports
// metrics, info, a result, artifacts and resources to the sacred wrapper.
//
// The wrapper listens on a Unix socket in a private directory (0700, socket
// 0600) and passes its path to the child in SACRED_SOCKET. Any process of the
// child's tree may connect, several at once, and writes one JSON object per
// line; see docs/child-api.md for the protocol. The same package holds the
// client used by `sacred log`.
package childapi

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Environment variables handed to the child.
const (
	EnvSocket = "SACRED_SOCKET"
	EnvRunID  = "SACRED_RUN_ID"
)

// Defaults of Options.
const (
	DefaultMaxPending = 100_000
	DefaultMaxLine    = 16 << 20
	DefaultCloseWait  = 2 * time.Second
	DefaultFileWait   = 5 * time.Second
	// maxWarnings caps the warnings written per run, so that a child that
	// sends millions of bad lines cannot flood the terminal.
	maxWarnings = 100
)

// Options configure a Server.
type Options struct {
	// Dir is the parent of the private socket directory ("" = os.TempDir()).
	Dir string
	// Cwd resolves relative artifact and resource paths sent over the
	// socket: the directory the child was started in. Clients that may
	// change directory (like `sacred log`) send absolute paths.
	Cwd string
	// ArtifactDir is where artifact copies are taken. "" = a directory
	// inside the private socket directory, removed by Cleanup.
	ArtifactDir string
	// Warn receives one-line warnings "sacred: child API: <problem>".
	// Nil discards them.
	Warn io.Writer
	// OnArtifact is called in report order, after the copy was taken
	// (ev.Path is the copy, ev.OrigPath the absolute original).
	OnArtifact func(observer.ArtifactEvent)
	// OnResource is called in report order with the md5 computed.
	OnResource func(observer.ResourceEvent)
	// MaxPending is the number of metric points held before Flush fires
	// (default DefaultMaxPending). At twice this number the readers stop
	// reading until DrainMetrics is called, so memory stays bounded.
	MaxPending int
	// MaxLine caps the length of one line (default DefaultMaxLine).
	MaxLine int
	// CloseWait bounds how long Close waits for connected clients to
	// finish (default DefaultCloseWait).
	CloseWait time.Duration
	// FileWait bounds how much longer Close waits for artifact copies and
	// resource checksums in progress (default DefaultFileWait); those not
	// done by then are abandoned and reported, never recorded later.
	FileWait time.Duration
}

// Server receives the messages of one run.
type Server struct {
	o       Options
	dir     string // private directory holding the socket
	path    string
	ln      *net.UnixListener
	flush   chan struct{}
	artDir  string
	artLock sync.Mutex // orders artifact and resource events
	artSeq  int
	stop    chan struct{} // closed when Close gives up on file operations
	// beforeCopy, when set by a test, runs before an artifact's bytes
	// are copied: it stands for a copy that takes long.
	beforeCopy func()

	// emitMu lets Close cut off artifact and resource events: once cut is
	// set, a file operation that finishes late reports nothing.
	emitMu sync.RWMutex
	cut    bool

	mu       sync.Mutex
	cond     *sync.Cond // signalled when pending shrinks or the server closes
	closing  bool
	conns    map[net.Conn]struct{}
	nextConn int
	pending  []observer.MetricSeries
	index    map[string]int   // name → position in pending
	counter  map[string]int64 // name → last step, for Sacred's step rule
	npending int
	info     map[string]any
	result   any
	hasRes   bool
	busyOps  map[int]*fileOp // connection → file operation in progress
	// tapDropped counts the scraped points dropped while the observers
	// were far behind (see addPoint).
	tapDropped int

	warnMu     sync.Mutex
	warnings   int
	suppressed int

	wg        sync.WaitGroup // connection readers
	acceptWG  sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Listen creates the private socket directory and starts accepting clients.
func Listen(o Options) (*Server, error) {
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.MaxLine <= 0 {
		o.MaxLine = DefaultMaxLine
	}
	if o.CloseWait <= 0 {
		o.CloseWait = DefaultCloseWait
	}
	if o.FileWait <= 0 {
		o.FileWait = DefaultFileWait
	}
	if o.Cwd == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("child API: working directory: %w", err)
		}
		o.Cwd = wd
	}
	dir, err := os.MkdirTemp(o.Dir, "sacred-")
	if err != nil {
		return nil, fmt.Errorf("child API: create socket directory: %w", err)
	}
	// MkdirTemp already uses 0700; Chmod makes it independent of that detail.
	if err := os.Chmod(dir, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("child API: protect socket directory: %w", err)
	}
	path := filepath.Join(dir, "api.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("child API: listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("child API: protect socket: %w", err)
	}
	artDir := o.ArtifactDir
	if artDir == "" {
		artDir = filepath.Join(dir, "artifacts")
	}
	if err := os.MkdirAll(artDir, 0o700); err != nil {
		ln.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("child API: create artifact directory: %w", err)
	}
	s := &Server{
		o:       o,
		dir:     dir,
		path:    path,
		ln:      ln,
		flush:   make(chan struct{}, 1),
		artDir:  artDir,
		stop:    make(chan struct{}),
		conns:   map[net.Conn]struct{}{},
		busyOps: map[int]*fileOp{},
		index:   map[string]int{},
		counter: map[string]int64{},
		info:    map[string]any{},
	}
	s.cond = sync.NewCond(&s.mu)
	s.acceptWG.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Path is the socket path, to be passed in SACRED_SOCKET.
func (s *Server) Path() string { return s.path }

// Env returns the environment entry that points a child at this server.
func (s *Server) Env() string { return EnvSocket + "=" + s.path }

// Flush receives when MaxPending points are waiting: the runner should then
// beat early (or at least call DrainMetrics).
func (s *Server) Flush() <-chan struct{} { return s.flush }

// Cleanup removes the private directory, including artifact copies taken
// there when Options.ArtifactDir was empty. Call it after the observers
// are done with the artifacts.
func (s *Server) Cleanup() error {
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("child API: remove %s: %w", s.dir, err)
	}
	return nil
}

func (s *Server) acceptLoop() {
	defer s.acceptWG.Done()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failures (EMFILE and the like): say so and go on;
			// the listener is only closed by Close.
			s.warnf("accept: %v", err)
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return
			}
			time.Sleep(10 * time.Millisecond) // back off, do not spin on EMFILE
			continue
		}
		s.serve(c)
	}
}

// serve registers a connection and starts its reader.
func (s *Server) serve(c net.Conn) {
	s.mu.Lock()
	s.nextConn++
	id := s.nextConn
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.readConn(c, id)
}

// readConn reads one client line by line until EOF.
func (s *Server) readConn(c net.Conn, id int) {
	defer s.wg.Done()
	var replies *replier // started at the first sync
	defer func() {
		if replies != nil {
			replies.finish()
		}
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	r := bufio.NewReaderSize(c, 64<<10)
	var long []byte // a line longer than the reader's buffer
	lineNo := 0
	names := interner{}
	for {
		chunk, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if len(long)+len(chunk) > s.o.MaxLine {
				lineNo++
				s.warnf("client %d line %d: longer than %d bytes; skipped", id, lineNo, s.o.MaxLine)
				long = long[:0]
				if !skipLine(r) {
					return
				}
				continue
			}
			long = append(long, chunk...)
			continue
		}
		if err != nil {
			if n := len(long) + len(chunk); n > 0 && len(bytes.TrimSpace(append(long, chunk...))) > 0 {
				lineNo++
				s.warnf("client %d line %d: client disconnected in the middle of a line (%d bytes without a newline); line dropped", id, lineNo, n)
			}
			if err != io.EOF && !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrDeadlineExceeded) {
				s.warnf("client %d: read: %v", id, err)
			}
			return
		}
		line := chunk
		if len(long) > 0 {
			if len(long)+len(chunk) > s.o.MaxLine {
				lineNo++
				s.warnf("client %d line %d: longer than %d bytes; skipped", id, lineNo, s.o.MaxLine)
				long = long[:0]
				continue
			}
			long = append(long, chunk...)
			line = long
		}
		lineNo++
		if s.handleLine(line, id, lineNo, &names) {
			if replies == nil {
				replies = newReplier(c, func(err error) {
					s.warnf("client %d: reply to sync: %v; the client stopped reading", id, err)
				})
			}
			replies.add()
		}
		long = long[:0]
		if cap(long) > 1<<20 {
			long = nil // do not keep a huge buffer for a client that sent one long line
		}
	}
}

// skipLine discards input up to and including the next newline. It returns
// false at the end of input.
func skipLine(r *bufio.Reader) bool {
	for {
		_, err := r.ReadSlice('\n')
		if err == nil {
			return true
		}
		if err != bufio.ErrBufferFull {
			return false
		}
	}
}

// Close stops accepting, waits (at most Options.CloseWait) for connected
// clients to send what they have, then returns. DrainMetrics, Info and
// Result keep working after Close.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		// Connections already queued by the kernel were made by the child
		// before it exited: take them before closing the listener.
		drainBacklog(s)
		s.mu.Lock()
		s.closing = true
		s.cond.Broadcast() // readers waiting for a drain go on
		s.mu.Unlock()
		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.closeErr = fmt.Errorf("child API: close listener: %w", err)
		}
		s.acceptWG.Wait()
		os.Remove(s.path)

		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		t := time.NewTimer(s.o.CloseWait)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			s.stopReading(done)
		}
		s.mu.Lock()
		dropped := s.tapDropped
		s.mu.Unlock()
		s.warnMu.Lock()
		if dropped > 0 && s.o.Warn != nil {
			fmt.Fprintf(s.o.Warn, "sacred: child API: --metric-pattern: %d scraped metric point(s) were not recorded: the observers were too far behind (their lines are in the captured output)\n", dropped)
		}
		if s.suppressed > 0 && s.o.Warn != nil {
			fmt.Fprintf(s.o.Warn, "sacred: child API: %d more warning(s) suppressed\n", s.suppressed)
		}
		s.warnMu.Unlock()
	})
	return s.closeErr
}

// stopReading is Close's second stage, once CloseWait has passed: it stops
// reading the clients still connected (lines they completed are handled),
// waits at most FileWait for file operations in progress, and abandons
// those still running, so that Close always returns.
func (s *Server) stopReading(done <-chan struct{}) {
	s.mu.Lock()
	n := len(s.conns) - len(s.busyOps)
	for c := range s.conns {
		c.SetDeadline(time.Now()) // also ends a sync reply nobody reads
	}
	s.mu.Unlock()
	if n > 0 {
		s.warnf("%d client(s) still connected after %v; stopped reading them", n, s.o.CloseWait)
	}
	t := time.NewTimer(s.o.FileWait)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	s.emitMu.Lock()
	s.cut = true
	s.emitMu.Unlock()
	close(s.stop)
	s.mu.Lock()
	ops := make([]string, 0, len(s.busyOps))
	for id, op := range s.busyOps {
		op.reported = true
		ops = append(ops, fmt.Sprintf("client %d: %s", id, op.what))
	}
	s.mu.Unlock()
	slices.Sort(ops)
	for _, op := range ops {
		s.warnf("%s: not finished %v after the command ended; not recorded", op, s.o.CloseWait+s.o.FileWait)
	}
}

// fileOp is an artifact copy or resource checksum in progress (or waiting
// for the one before it, to keep the order of events).
type fileOp struct {
	what     string
	reported bool // Close said it was abandoned
}

// busy marks a file operation of connection conn as in progress, for
// Close's report; pass it to s.done when it is over.
func (s *Server) busy(conn int, what string) *fileOp {
	op := &fileOp{what: what}
	s.mu.Lock()
	s.busyOps[conn] = op
	s.mu.Unlock()
	return op
}

// done ends op and returns the error to report for it: none when Close
// stopped it and already said so.
func (s *Server) done(conn int, op *fileOp, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.busyOps, conn)
	if errors.Is(err, errStopped) && op.reported {
		return nil
	}
	return err
}

// emit calls report unless Close has given up on file operations: an
// event that comes after that would reach observers after the run's end.
func (s *Server) emit(report func()) error {
	s.emitMu.RLock()
	defer s.emitMu.RUnlock()
	if s.cut {
		return errStopped
	}
	report()
	return nil
}

// warnf writes one warning line, up to maxWarnings per server.
func (s *Server) warnf(format string, args ...any) {
	s.warnMu.Lock()
	defer s.warnMu.Unlock()
	if s.o.Warn == nil {
		return
	}
	s.warnings++
	if s.warnings > maxWarnings {
		s.suppressed++
		return
	}
	msg := fmt.Sprintf(format, args...)
	msg = string(bytes.ReplaceAll([]byte(msg), []byte("\n"), []byte(" ")))
	fmt.Fprintf(s.o.Warn, "sacred: child API: %s\n", msg)
	if s.warnings == maxWarnings {
		fmt.Fprintf(s.o.Warn, "sacred: child API: too many warnings; further ones are counted and reported at the end\n")
	}
}
