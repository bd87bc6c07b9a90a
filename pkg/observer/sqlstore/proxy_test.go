package sqlstore

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// proxy forwards TCP connections to a real database server, and can play
// a server that goes away (down: every connection is dropped and new ones
// are closed at once) or one that stops answering (hang: bytes are taken
// and never passed on), without touching the shared server itself.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  proxyMode
	conns map[net.Conn]bool
}

type proxyMode int

const (
	proxyUp proxyMode = iota
	proxyDown
	proxyHang
)

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.serve(&wg)
	}()
	t.Cleanup(func() {
		ln.Close()
		p.set(proxyDown)
		wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// set changes the mode; going down drops every open connection.
func (p *proxy) set(m proxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	if m == proxyDown {
		for c := range p.conns {
			c.Close()
			delete(p.conns, c)
		}
	}
}

func (p *proxy) current() proxyMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// track registers a connection unless the proxy is down.
func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == proxyDown {
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

func (p *proxy) serve(wg *sync.WaitGroup) {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.current() == proxyDown {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, s) {
			c.Close()
			s.Close()
			continue
		}
		wg.Add(2)
		go func() { defer wg.Done(); p.pipe(s, c) }()
		go func() { defer wg.Done(); p.pipe(c, s) }()
	}
}

// pipe copies src to dst until either closes, dropping what arrives while
// the proxy hangs.
func (p *proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && p.current() == proxyUp {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // closed, reset or EOF: the connection is over
		}
	}
}

// viaProxy returns url with its host and port replaced by a new proxy to
// them. Only server URLs (PostgreSQL, MySQL) can be proxied.
func viaProxy(t *testing.T, url string) (string, *proxy) {
	t.Helper()
	cfg, err := ParseConfig(url)
	must(t, err)
	port := cfg.Port
	if port == 0 {
		port = map[dialect]int{dialectPostgres: 5432, dialectMySQL: 3306}[cfg.dialect]
	}
	host := cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	p := newProxy(t, net.JoinHostPort(host, strconv.Itoa(port)))
	scheme, rest, _ := strings.Cut(url, "://")
	at := strings.LastIndex(rest, "@")
	slash := strings.Index(rest[at+1:], "/") + at + 1
	return scheme + "://" + rest[:at+1] + p.addr() + rest[slash:], p
}

// forEachServer runs f on the database servers only (SQLite has none to
// take away).
func forEachServer(t *testing.T, f func(t *testing.T, url string)) {
	for _, b := range backends() {
		if b.name == "sqlite" {
			continue
		}
		t.Run(b.name, func(t *testing.T) { f(t, b.url(t)) })
	}
}
