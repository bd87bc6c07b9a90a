// Package notifytest is a local HTTP server that stands in for Slack's
// webhooks, Telegram's Bot API and webhook receivers in tests: it records
// every request, and can answer with an error, break or stall.
package notifytest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Request is one recorded request.
type Request struct {
	Method string
	Path   string // the escaped path
	Query  string
	Header http.Header
	Body   []byte
	// Proxied is true when the request came through a proxy (its
	// request line held the absolute URL).
	Proxied bool
}

// Server records requests and answers them.
type Server struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []Request
	broken bool
	stall  chan struct{}
	answer func(r Request) (status int, body string)
}

// New starts a server on 127.0.0.1 that answers 200 "ok" until told
// otherwise; it is closed when the test ends.
func New(t testing.TB) *Server {
	s := &Server{}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := Request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body, Proxied: r.URL.IsAbs()}
	s.mu.Lock()
	stall, broken, answer := s.stall, s.broken, s.answer
	s.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-r.Context().Done():
			return
		}
	}
	if broken {
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	s.mu.Unlock()
	status, text := http.StatusOK, "ok"
	if answer != nil {
		status, text = answer(req)
	}
	w.WriteHeader(status)
	io.WriteString(w, text)
}

// Answer sets how requests are answered from now on.
func (s *Server) Answer(f func(r Request) (status int, body string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer = f
}

// Requests returns the requests answered so far, in order (not those
// refused while broken).
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Break makes the server answer 503 from now on.
func (s *Server) Break(*testing.T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.broken = true
}

// Stall makes requests hang until resume is called (or the client gives
// up).
func (s *Server) Stall(*testing.T) (resume func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.stall = ch
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.stall = nil
			s.mu.Unlock()
			close(ch)
		})
	}
}
