package e2e

// Runner regressions that need a store that lags, stops answering or goes
// down: the real PostgreSQL behind a TCP proxy the test controls.

import (
	"bufio"
	"database/sql"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// freshPostgres creates an empty database for one test and returns its URL
// and a connection to it that bypasses any proxy. It skips outside CI when
// the server is absent.
func freshPostgres(t *testing.T) (string, *sql.DB) {
	t.Helper()
	pgURL, err := postgresDB(t, "sacred_runner_")
	if err != nil {
		t.Skip(err)
	}
	db, err := sql.Open("pgx", pgURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return pgURL, db
}

// tcpProxy forwards connections to a server. pause stops forwarding bytes
// (a server that stops answering), resume lets them flow again, cut closes
// the listener and every connection (a server that is down).
type tcpProxy struct {
	target string
	ln     net.Listener

	mu     sync.Mutex
	cond   *sync.Cond
	paused bool
	conns  map[net.Conn]bool
}

func newProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{target: target, ln: ln, conns: map[net.Conn]bool{}}
	p.cond = sync.NewCond(&p.mu)
	go p.accept(ln)
	t.Cleanup(func() { p.resume(); p.cut() })
	return p
}

func (p *tcpProxy) addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ln.Addr().String()
}

func (p *tcpProxy) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = true, true
		p.mu.Unlock()
		go p.pipe(c, s)
		go p.pipe(s, c)
	}
}

func (p *tcpProxy) pipe(from, to net.Conn) {
	defer from.Close()
	defer to.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		p.mu.Lock()
		for p.paused {
			p.cond.Wait()
		}
		p.mu.Unlock()
		if n > 0 {
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *tcpProxy) pause() { p.mu.Lock(); p.paused = true; p.mu.Unlock() }

func (p *tcpProxy) resume() {
	p.mu.Lock()
	p.paused = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// restore listens again on the same address after cut: the server is back.
func (p *tcpProxy) restore(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr())
	if err != nil {
		t.Fatalf("listen again on %s: %v", p.addr(), err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go p.accept(ln)
}

// proxiedURL is url with its host replaced by the proxy's address.
func proxiedURL(t *testing.T, raw string, p *tcpProxy) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.addr()
	return u.String()
}

// wrapper is a sacred run started in the background, whose stderr lines
// the test reads as they come.
type wrapper struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	mu     sync.Mutex
	stderr strings.Builder
	exited chan struct{}
}

func startWrapper(t *testing.T, dir string, args ...string) *wrapper {
	t.Helper()
	w := &wrapper{t: t, lines: make(chan string, 1024), exited: make(chan struct{})}
	w.cmd = exec.Command(bin, args...)
	w.cmd.Dir = dir
	w.cmd.Env = append(cleanEnv(), pathWithSacred())
	out, err := os.Create(dir + "/wrapper-stdout")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	w.cmd.Stdout = out
	if w.stdin, err = w.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	errPipe, err := w.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			w.mu.Lock()
			w.stderr.WriteString(sc.Text() + "\n")
			w.mu.Unlock()
			select {
			case w.lines <- sc.Text():
			default:
			}
		}
		close(w.lines)
	}()
	t.Cleanup(func() {
		select {
		case <-w.exited:
		default:
			w.cmd.Process.Kill()
		}
	})
	return w
}

// waitLine waits for a stderr line containing s and returns it.
func (w *wrapper) waitLine(s string) string {
	w.t.Helper()
	guard := time.After(hangGuard)
	for {
		select {
		case l, ok := <-w.lines:
			if !ok {
				w.t.Fatalf("sacred's stderr ended without a line containing %q:\n%s", s, w.errText())
			}
			if strings.Contains(l, s) {
				return l
			}
		case <-guard:
			w.t.Fatalf("no line containing %q on stderr after %s:\n%s", s, hangGuard, w.errText())
		}
	}
}

func (w *wrapper) errText() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stderr.String()
}

// wait waits for the wrapper to exit and returns its exit status.
func (w *wrapper) wait() int {
	w.t.Helper()
	res := make(chan error, 1)
	go func() { res <- w.cmd.Wait() }()
	select {
	case err := <-res:
		close(w.exited)
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			w.t.Fatal(err)
		}
		if ws := w.cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signaled() {
			w.t.Fatalf("sacred was killed by %v:\n%s", ws.Signal(), w.errText())
		}
		return w.cmd.ProcessState.ExitCode()
	case <-time.After(hangGuard):
		w.t.Fatalf("sacred did not exit within %s:\n%s", hangGuard, w.errText())
		return -1
	}
}

func (w *wrapper) send(line string) {
	w.t.Helper()
	if _, err := io.WriteString(w.stdin, line+"\n"); err != nil {
		w.t.Fatal(err)
	}
}

func sqlStatus(t *testing.T, db *sql.DB, id string) string {
	t.Helper()
	var status string
	if err := db.QueryRow("SELECT status FROM run WHERE run_id = $1", id).Scan(&status); err != nil {
		t.Fatalf("status of run %s: %v", id, err)
	}
	return status
}

// sqlSteps returns the steps of one metric of a run, in the order stored.
func sqlSteps(t *testing.T, db *sql.DB, id, name string) []int64 {
	t.Helper()
	rows, err := db.Query("SELECT step FROM metric WHERE run_id = $1 AND name = $2 ORDER BY metric_id", id, name)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var steps []int64
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, s)
	}
	return steps
}

// During the final flush the wrapper answers signals: it says what is
// pending after 2 s and at the first interrupt, and a second interrupt
// abandons the flush for the observer that is stuck, while the healthy
// one still records the end. The exit status stays the child's.
func TestHardening04InterruptDuringTheFlush(t *testing.T) {
	pgURL, db := freshPostgres(t)
	p := newProxy(t, mustHost(t, pgURL))
	work, store := t.TempDir(), t.TempDir()
	w := startWrapper(t, work, "run", "-F", store, "-s", proxiedURL(t, pgURL, p), "--flush-timeout", "10m", "-C", "pipe",
		"--", "sh", "-c", "read go; exit 0")
	w.waitLine("started run 1")
	p.pause() // the database stops answering
	w.send("go")

	w.waitLine("waiting up to")
	// One line per observer that has not finished follows.
	if l := w.waitLine("busy with"); !strings.Contains(l, "sql") {
		t.Errorf("the notice does not say what the stuck observer is busy with: %s", l)
	}
	w.cmd.Process.Signal(syscall.SIGINT)
	w.waitLine("interrupt again")
	w.cmd.Process.Signal(syscall.SIGINT)
	w.waitLine("no longer waiting")
	if code := w.wait(); code != 0 {
		t.Fatalf("exit %d, want the child's 0:\n%s", code, w.errText())
	}
	stderr := w.errText()
	if !strings.Contains(stderr, "stays RUNNING there") {
		t.Errorf("stderr does not say the stuck store keeps the run RUNNING:\n%s", stderr)
	}
	wantStatus(t, readJSON(t, store+"/1/run.json"), "COMPLETED")
	p.resume()
	if got := sqlStatus(t, db, "1"); got != "RUNNING" {
		t.Errorf("SQL status %s, want RUNNING (its end was abandoned)", got)
	}
}

// mustHost is the host:port of a URL.
func mustHost(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// One store that stops answering holds back neither the child's socket
// writes nor the other store: the child logs 350,000 points (more than the
// child API and the old shared backlog could hold) while PostgreSQL is
// stalled, goes on, and once the database answers again every point
// reaches both stores, in order.
func TestHardening30StalledStoreHoldsBackOnlyItself(t *testing.T) {
	const n = 350_000
	pgURL, db := freshPostgres(t)
	p := newProxy(t, mustHost(t, pgURL))
	work, store := t.TempDir(), t.TempDir()
	script := `read go
awk 'BEGIN { for (i = 0; i < ` + strconv.Itoa(n) + `; i++) printf "{\"kind\":\"metric\",\"name\":\"m\",\"value\":%d}\n", i }' | sacred log stream
echo sent >&2
read go`
	w := startWrapper(t, work, "run", "-F", store, "-s", proxiedURL(t, pgURL, p), "--flush-timeout", "10m", "-C", "pipe",
		"--", "sh", "-c", script)
	w.waitLine("started run 1")
	p.pause()
	w.send("go")
	w.waitLine("sent") // the child was never blocked by the stalled store
	p.resume()
	w.send("go")
	if code := w.wait(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, w.errText())
	}
	metrics := readJSON(t, store+"/1/metrics.json")
	m, _ := metrics["m"].(map[string]any)
	steps, _ := m["steps"].([]any)
	if len(steps) != n {
		t.Fatalf("file storage has %d points, want %d", len(steps), n)
	}
	for i, s := range steps {
		if s != float64(i) {
			t.Fatalf("file storage: point %d has step %v", i, s)
		}
	}
	got := sqlSteps(t, db, "1", "m")
	if len(got) != n {
		t.Fatalf("SQL has %d points, want %d:\n%s", len(got), n, w.errText())
	}
	for i, s := range got {
		if s != int64(i) {
			t.Fatalf("SQL: point %d has step %d: order lost", i, s)
		}
	}
	if status := sqlStatus(t, db, "1"); status != "COMPLETED" {
		t.Errorf("SQL status %s, want COMPLETED:\n%s", status, w.errText())
	}
}

// With --metric-pattern and a store that stops answering, the wrapper
// still ends when the child is stopped: the output tap never waits for the
// observers, and the wait for the output copier after the child's exit is
// bounded.
func TestHardening03MetricPatternWithAStalledStoreEnds(t *testing.T) {
	const n = 400_000
	pgURL, _ := freshPostgres(t)
	p := newProxy(t, mustHost(t, pgURL))
	work, store := t.TempDir(), t.TempDir()
	script := `read go
awk 'BEGIN { for (i = 0; i < ` + strconv.Itoa(n) + `; i++) printf "m %d\n", i }'
echo printed >&2
exec sleep 1000`
	w := startWrapper(t, work, "run", "-F", store, "-s", proxiedURL(t, pgURL, p), "--flush-timeout", "10s", "-C", "pipe",
		"--metric-pattern", `^(?P<name>m) (?P<value>\d+)$`, "--", "sh", "-c", script)
	w.waitLine("started run 1")
	p.pause()
	w.send("go")
	w.waitLine("printed") // every line went through the scraper
	// The store goes down for good: its calls now fail at once, so the
	// healthy store's end is not held up by it.
	p.cut()
	w.cmd.Process.Signal(syscall.SIGTERM)
	if code := w.wait(); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("exit %d, want the child's %d:\n%s", code, 128+int(syscall.SIGTERM), w.errText())
	}
	if !strings.Contains(w.errText(), "stays RUNNING there") {
		t.Errorf("stderr does not say the stalled store keeps the run RUNNING:\n%s", w.errText())
	}
	wantStatus(t, readJSON(t, store+"/1/run.json"), "INTERRUPTED")
	m, _ := readJSON(t, store+"/1/metrics.json")["m"].(map[string]any)
	if steps, _ := m["steps"].([]any); len(steps) != n {
		t.Errorf("file storage has %d scraped points, want %d", len(steps), n)
	}
}

// A store that is down across the end of the run cannot record the final
// status: the wrapper says so plainly (the run stays RUNNING there), the
// other store records the end, and the exit status is the child's.
func TestHardening07RunnerSaysTheRunStaysRunning(t *testing.T) {
	pgURL, db := freshPostgres(t)
	p := newProxy(t, mustHost(t, pgURL))
	work, store := t.TempDir(), t.TempDir()
	w := startWrapper(t, work, "run", "-F", store, "-s", proxiedURL(t, pgURL, p), "--flush-timeout", "3s", "-C", "pipe",
		"--", "sh", "-c", "read go; echo done; exit 3")
	w.waitLine("started run 1")
	p.cut()
	w.send("go")
	if code := w.wait(); code != 3 {
		t.Fatalf("exit %d, want the child's 3:\n%s", code, w.errText())
	}
	var line string
	for _, l := range strings.Split(w.errText(), "\n") {
		if strings.Contains(l, "stays RUNNING there") {
			line = l
		}
	}
	if !strings.Contains(line, "sql") || !strings.Contains(line, "run 1") {
		t.Errorf("no line says the SQL store keeps run 1 RUNNING:\n%s", w.errText())
	}
	if strings.Contains(w.errText(), "file storage") {
		t.Errorf("the healthy store is named in a complaint:\n%s", w.errText())
	}
	wantStatus(t, readJSON(t, store+"/1/run.json"), "FAILED")
	if got := sqlStatus(t, db, "1"); got != "RUNNING" {
		t.Errorf("SQL status %s, want RUNNING", got)
	}
}

// A store that fails during the run and comes back gets everything, and
// the messages say so: no "could not be recorded" after a full recovery,
// no "completed failed". --strict then keeps the exit status 0.
func TestHardening26MessagesSayWhatHappenedToTheRecord(t *testing.T) {
	pgURL, db := freshPostgres(t)
	p := newProxy(t, mustHost(t, pgURL))
	work, store := t.TempDir(), t.TempDir()
	w := startWrapper(t, work, "run", "-F", store, "-s", proxiedURL(t, pgURL, p), "-b", "0.2", "--flush-timeout", "60s", "--strict", "-C", "pipe",
		"--", "sh", "-c", "read go; sacred log metric loss 0.5; sacred log metric loss 0.25; echo out; read go; exit 0")
	w.waitLine("started run 1")
	p.cut()
	w.send("go")
	w.waitLine("could not record") // a beat failed while the database was down
	p.restore(t)
	w.send("go")
	if code := w.wait(); code != 0 {
		t.Fatalf("exit %d, want 0 (--strict, but the record is complete):\n%s", code, w.errText())
	}
	stderr := w.errText()
	for _, bad := range []string{"could not be recorded", "completed failed", "stays RUNNING", "incomplete", "not recorded"} {
		if strings.Contains(stderr, bad) {
			t.Errorf("stderr says %q after a full recovery:\n%s", bad, stderr)
		}
	}
	if !strings.Contains(stderr, "recorded completely there, after errors") {
		t.Errorf("stderr does not say the record is complete after the errors:\n%s", stderr)
	}
	if got := sqlStatus(t, db, "1"); got != "COMPLETED" {
		t.Errorf("SQL status %s, want COMPLETED", got)
	}
	if steps := sqlSteps(t, db, "1", "loss"); len(steps) != 2 {
		t.Errorf("SQL has %d points of loss, want 2", len(steps))
	}
	wantStatus(t, readJSON(t, store+"/1/run.json"), "COMPLETED")
}

// --strict: exit 1 when the child succeeded but a store's record is
// incomplete at the end; a failing child's status is kept.
func TestStrictExitsOneWhenARecordIsIncomplete(t *testing.T) {
	pgURL, _ := freshPostgres(t)
	for _, child := range []int{0, 3} {
		p := newProxy(t, mustHost(t, pgURL))
		w := startWrapper(t, t.TempDir(), "run", "-F", t.TempDir(), "-s", proxiedURL(t, pgURL, p), "--flush-timeout", "1s", "--strict", "-C", "pipe",
			"--", "sh", "-c", "read go; exit "+strconv.Itoa(child))
		w.waitLine("started run")
		p.cut()
		w.send("go")
		want := map[int]int{0: 1, 3: 3}[child]
		if code := w.wait(); code != want {
			t.Errorf("child exit %d: sacred exit %d, want %d:\n%s", child, code, want, w.errText())
		}
	}
}
