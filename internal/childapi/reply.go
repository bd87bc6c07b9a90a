package childapi

import (
	"bytes"
	"net"
	"sync"
)

// syncBatch is many sync replies in a row, written at once when a client
// owes us many; made on first use (`sacred log`, the client, never needs it).
var syncBatch = sync.OnceValue(func() []byte { return bytes.Repeat(syncReply, 256) })

// replier answers a connection's sync requests from its own goroutine, so
// that reading never waits for writing. A client that sends many syncs and
// reads the replies only at the end (`yes '{"kind":"sync"}' | sacred log
// stream`) would otherwise fill the socket both ways and deadlock with the
// reader. Every reply is the same line, so what is owed is a count: memory
// stays constant however many replies wait, and none is dropped; they are
// written as fast as the client reads them.
type replier struct {
	c    net.Conn
	fail func(error) // told once when a reply cannot be written

	mu   sync.Mutex
	owed int
	last bool // the reader is done: write what is owed, then stop
	wake chan struct{}
	done chan struct{}
}

func newReplier(c net.Conn, fail func(error)) *replier {
	r := &replier{c: c, fail: fail, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go r.loop()
	return r
}

// add owes the client one reply; it never blocks.
func (r *replier) add() {
	r.mu.Lock()
	r.owed++
	r.mu.Unlock()
	r.signal()
}

// finish writes what is still owed and returns when the writer is done.
// A client that never reads is cut off by the connection's deadline, which
// Close sets.
func (r *replier) finish() {
	r.mu.Lock()
	r.last = true
	r.mu.Unlock()
	r.signal()
	<-r.done
}

func (r *replier) signal() {
	select {
	case r.wake <- struct{}{}:
	default: // already woken
	}
}

func (r *replier) loop() {
	defer close(r.done)
	failed := false
	for {
		r.mu.Lock()
		n, last := r.owed, r.last
		r.owed = 0
		r.mu.Unlock()
		if n == 0 {
			if last {
				return
			}
			<-r.wake
			continue
		}
		for n > 0 && !failed {
			batch := syncBatch()
			k := min(n, len(batch)/len(syncReply))
			if _, err := r.c.Write(batch[:k*len(syncReply)]); err != nil {
				// The client went away or stopped reading past Close's
				// deadline: it will not read the rest either.
				failed = true
				r.fail(err)
			}
			n -= k
		}
	}
}
