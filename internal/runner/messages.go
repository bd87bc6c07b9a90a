package runner

import (
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// messageQueue is how many message lines may wait for a slow stderr before
// new ones are dropped (and counted).
const messageQueue = 1024

// messages writes the runner's lines for the user (warnings, "started run
// 3", the child API's warnings) from one goroutine of its own, so that
// writing a message can neither block the run (a stderr pipe nobody reads)
// nor kill it (a closed pipe: SIGPIPE is caught while the run lasts, so the
// write fails with EPIPE, and later lines to that writer are dropped).
type messages struct {
	lines   chan message
	done    chan struct{}
	dropped atomic.Int64

	mu     sync.Mutex
	closed bool
}

type message struct {
	w    io.Writer
	line []byte
}

func newMessages() *messages {
	m := &messages{lines: make(chan message, messageQueue), done: make(chan struct{})}
	go m.loop()
	return m
}

func (m *messages) loop() {
	defer close(m.done)
	broken := map[io.Writer]bool{}
	for msg := range m.lines {
		if broken[msg.w] {
			continue
		}
		if _, err := msg.w.Write(msg.line); err != nil {
			broken[msg.w] = true
		}
	}
}

// to returns a writer whose writes are queued for w; nil for a nil w.
// Each Write should be one whole line, as fmt.Fprintf of a line is.
func (m *messages) to(w io.Writer) io.Writer {
	if w == nil {
		return nil
	}
	return queuedWriter{m: m, w: w}
}

type queuedWriter struct {
	m *messages
	w io.Writer
}

// Write never blocks and never fails: a line that finds the queue full is
// dropped and counted.
func (q queuedWriter) Write(p []byte) (int, error) {
	q.m.mu.Lock()
	defer q.m.mu.Unlock()
	if q.m.closed {
		q.m.dropped.Add(1)
		return len(p), nil
	}
	select {
	case q.m.lines <- message{w: q.w, line: append([]byte(nil), p...)}:
	default:
		q.m.dropped.Add(1)
	}
	return len(p), nil
}

// close writes what is queued, waiting at most wait for a slow stderr, and
// returns how many lines were dropped (those still queued after wait
// included).
func (m *messages) close(wait time.Duration) int64 {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.lines)
	}
	m.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-m.done:
	case <-t.C:
		m.dropped.Add(int64(len(m.lines)))
	}
	return m.dropped.Load()
}
