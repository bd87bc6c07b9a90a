package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/sqlstore"
)

// Regression tests of issue 8's SQL items, through the binary.

// A run that prints nothing: its beats read no output, and info and the
// heartbeat are stored (the beat used to fail with "read output: EOF",
// and --strict made `true` exit 1).
func TestHardening06SQLBeatWithoutOutput(t *testing.T) {
	for name, url := range sqlURLs(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			r := sacred(t, dir, nil, "run", "--strict", "-s", url, "--", "true")
			if r.code != 0 {
				t.Fatalf("run --strict -- true: exit %d: %s", r.code, r.stderr)
			}
			r = sacred(t, dir, []string{pathWithSacred()}, "run", "--strict", "-s", url, "--", "sh", "-c", `sacred log info phase '"quiet"'`)
			if r.code != 0 {
				t.Fatalf("silent run with info: exit %d: %s", r.code, r.stderr)
			}
			run := readSQLRun(t, url, "2")
			if run.Status != observer.StatusCompleted || run.Info["phase"] != "quiet" || run.Heartbeat.IsZero() || len(run.Output) != 0 {
				t.Errorf("run %s, info %v, heartbeat %v, output %q", run.Status, run.Info, run.Heartbeat, run.Output)
			}
		})
	}
}

// One metric name PostgreSQL cannot store must not keep every other point
// of the run out of the database. The child API may refuse the name (with
// a warning) or the store may store it cleaned; either way the others are
// stored.
func TestHardening08SQLMetricNameWithNUL(t *testing.T) {
	for name, url := range sqlURLs(t) {
		t.Run(name, func(t *testing.T) {
			lines := `{"kind":"metric","name":"x\u0000y","value":1}` + "\n" +
				`{"kind":"metric","name":"loss","value":0.5,"step":0}` + "\n" +
				`{"kind":"metric","name":"loss","value":0.25,"step":1}` + "\n"
			script := "printf '%s' '" + lines + "' | sacred log stream"
			r := sacred(t, t.TempDir(), []string{pathWithSacred()}, "run", "-s", url, "--", "sh", "-c", script)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			run := readSQLRun(t, url, "1")
			var loss []float64
			for _, s := range run.Metrics {
				if s.Name == "loss" {
					for _, p := range s.Points {
						loss = append(loss, p.Value)
					}
				}
			}
			if run.Status != observer.StatusCompleted || len(loss) != 2 || loss[1] != 0.25 {
				t.Errorf("run %s, metrics %+v; stderr %s", run.Status, run.Metrics, r.stderr)
			}
		})
	}
}

// Bytes that are not UTF-8 in argv, the working directory and the config
// used to stop PostgreSQL and MariaDB runs before the child started. They
// are recorded, byte for byte where the column is JSON.
func TestHardening12SQLNonUTF8(t *testing.T) {
	for name, url := range sqlURLs(t) {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d\xe9j\xe0-\xff")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Skipf("this file system refuses a non-UTF-8 name: %v", err)
			}
			marker := filepath.Join(t.TempDir(), "ran")
			r := sacred(t, dir, nil, "run", "-s", url, "with", "label=a\xffb", "--", "sh", "-c", `touch "$1"`, "arg-\xfe", marker)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if _, err := os.Stat(marker); err != nil {
				t.Fatal("the command did not run")
			}
			run := readSQLRun(t, url, "1")
			if run.Status != observer.StatusCompleted {
				t.Fatalf("status %s", run.Status)
			}
			if run.Meta.Cwd != dir || !strings.Contains(strings.Join(run.Meta.Argv, " "), "arg-\xfe") {
				t.Errorf("cwd %q, argv %q", run.Meta.Cwd, run.Meta.Argv)
			}
			if run.Config["label"] != "a\xffb" {
				t.Errorf("config %q", run.Config)
			}
			if !strings.Contains(run.Command, "arg-\uFFFD") {
				t.Errorf("command %q", run.Command)
			}
		})
	}
}

// MariaDB: a main file and an artifact larger than max_allowed_packet used
// to reset the connection, and the command did not run. The run is
// recorded: the source by name, md5 and size, the artifact in chunks.
func TestHardening13SQLMaxAllowedPacket(t *testing.T) {
	url := mysqlURL(t)
	if url == "" {
		t.Skip("MariaDB is not reachable")
	}
	dir := t.TempDir()
	size := 17 << 20 // the server's max_allowed_packet is 16 MiB by default
	var script bytes.Buffer
	script.WriteString("sacred log artifact model.bin\n")
	for script.Len() < size {
		script.WriteString("# padding padding padding padding padding padding padding padding\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "big.sh"), script.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	model := make([]byte, size)
	rand.Read(model)
	if err := os.WriteFile(filepath.Join(dir, "model.bin"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	r := sacred(t, dir, []string{pathWithSacred()}, "run", "--strict", "-s", url, "--", "sh", "big.sh")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	run := readSQLRun(t, url, "1")
	if run.Status != observer.StatusCompleted {
		t.Fatalf("status %s", run.Status)
	}
	var src *observer.Source
	for i, s := range run.Experiment.Sources {
		if s.Name == "big.sh" {
			src = &run.Experiment.Sources[i]
		}
	}
	if src == nil || !src.Omitted || src.MD5 == "" {
		t.Errorf("sources %+v, want big.sh without content", run.Experiment.Sources)
	}
	cfg, err := sqlstore.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := sqlstore.Open(context.Background(), cfg, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	rc, err := rd.Artifact(context.Background(), "1", "model.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, model) {
		t.Errorf("artifact: %d bytes read back (%v), want the %d written", len(got), err, len(model))
	}
}

// A store that goes away across the end of the run and comes back: the
// run ends COMPLETED in the database, or stderr says plainly that it stays
// RUNNING there. The child's exit status is the wrapper's either way.
func TestHardening07SQLStoreDownAcrossEnd(t *testing.T) {
	urls := sqlURLs(t)
	url, ok := urls["postgres"]
	if !ok {
		t.Skip("PostgreSQL is not reachable")
	}
	purl, p := sqlProxy(t, url)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "go")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-s", purl, "--flush-timeout", "60s", "--", "sh", "-c", `echo started; read x < "$1"; echo after`, "sh", fifo)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || line != "started\n" {
		t.Fatalf("first line %q: %v", line, err)
	}
	go io.Copy(io.Discard, out)

	p.set(proxyDown)
	if err := os.WriteFile(fifo, []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The first line the wrapper prints about the store's trouble means
	// the end of the run was tried while the store was away.
	errs := bufio.NewReader(stderr)
	var said strings.Builder
	for {
		line, err := errs.ReadString('\n')
		said.WriteString(line)
		if err != nil || strings.Contains(line, "observer sql") {
			break
		}
	}
	p.set(proxyUp)
	rest, _ := io.ReadAll(errs)
	said.Write(rest)
	err = cmd.Wait()
	if err != nil {
		t.Fatalf("wrapper: %v; stderr: %s", err, said.String())
	}
	run := readSQLRun(t, url, "1")
	switch {
	case run.Status == observer.StatusCompleted:
		if !strings.Contains(string(run.Output), "after\n") {
			t.Errorf("COMPLETED, but the output of the final beat is missing (%q): it must be sent again once the store is back; stderr: %s", run.Output, said.String())
		}
	case run.Status == observer.StatusRunning && strings.Contains(said.String(), "RUNNING"):
		// Said plainly.
	default:
		t.Errorf("the run is %s in the database and stderr says: %s", run.Status, said.String())
	}
}

// sqlProxy puts a TCP proxy between the binary and the database server of
// url, which the test can take down and bring back without touching the
// shared server.
func sqlProxy(t *testing.T, url string) (string, *tcpProxy) {
	t.Helper()
	cfg, err := sqlstore.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	port := cfg.Port
	if port == 0 {
		port = map[string]int{"postgresql": 5432, "mysql": 3306}[cfg.Dialect()]
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: net.JoinHostPort(cfg.Host, strconv.Itoa(port)), conns: map[net.Conn]bool{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); p.serve(&wg) }()
	t.Cleanup(func() {
		ln.Close()
		p.set(proxyDown)
		wg.Wait()
	})
	scheme, rest, _ := strings.Cut(url, "://")
	at := strings.LastIndex(rest, "@")
	slash := strings.Index(rest[at+1:], "/") + at + 1
	return scheme + "://" + rest[:at+1] + ln.Addr().String() + rest[slash:], p
}

type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
}

const (
	proxyUp   = false
	proxyDown = true
)

// set takes the proxy down (every connection dropped, new ones closed at
// once) or brings it back.
func (p *tcpProxy) set(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
			delete(p.conns, c)
		}
	}
}

func (p *tcpProxy) serve(wg *sync.WaitGroup) {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		p.mu.Lock()
		if err != nil || p.down {
			p.mu.Unlock()
			c.Close()
			if s != nil {
				s.Close()
			}
			continue
		}
		p.conns[c], p.conns[s] = true, true
		p.mu.Unlock()
		wg.Add(2)
		go func() { defer wg.Done(); defer c.Close(); defer s.Close(); io.Copy(s, c) }()
		go func() { defer wg.Done(); defer c.Close(); defer s.Close(); io.Copy(c, s) }()
	}
}
