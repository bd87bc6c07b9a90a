package runner

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// blockingWriter blocks every Write until release is closed.
type blockingWriter struct{ release chan struct{} }

func (b blockingWriter) Write(p []byte) (int, error) { <-b.release; return len(p), nil }

func TestMessagesNeverBlockTheCaller(t *testing.T) {
	m := newMessages()
	w := blockingWriter{release: make(chan struct{})}
	defer close(w.release)
	q := m.to(w)
	// One line is taken by the stuck writer, messageQueue wait; the rest
	// must be dropped, not block.
	for i := 0; i < messageQueue+10; i++ {
		fmt.Fprintf(q, "line %d\n", i)
	}
	if dropped := m.close(0); dropped < 9 {
		t.Errorf("dropped %d lines, want at least 9", dropped)
	}
}

type failingWriter struct{ calls int }

func (f *failingWriter) Write([]byte) (int, error) { f.calls++; return 0, errors.New("broken pipe") }

func TestMessagesKeepOrderAndSkipABrokenWriter(t *testing.T) {
	m := newMessages()
	var good bytes.Buffer
	bad := &failingWriter{}
	g, b := m.to(&good), m.to(bad)
	for i := 0; i < 5; i++ {
		fmt.Fprintf(g, "%d\n", i)
		fmt.Fprintf(b, "%d\n", i)
	}
	if m.close(messageWait) != 0 {
		t.Error("lines dropped")
	}
	if good.String() != "0\n1\n2\n3\n4\n" {
		t.Errorf("got %q", good.String())
	}
	if bad.calls != 1 {
		t.Errorf("a broken writer was written %d times, want once", bad.calls)
	}
	if m.to(nil) != nil {
		t.Error("to(nil) is not nil")
	}
}
