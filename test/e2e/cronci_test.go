//go:build unix

package e2e

// Cron and CI through the binary: --lock, --quiet-unless-fail,
// --summary-json (with GitHub Actions' step summary) and --ping.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bgSacred is a `sacred` started in the background; its stderr lines can
// be waited for.
type bgSacred struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout bytes.Buffer
	lines  chan string
	mu     sync.Mutex
	stderr strings.Builder
	exited chan struct{}
	err    error
}

func startSacred(t *testing.T, dir string, env []string, args ...string) *bgSacred {
	t.Helper()
	b := &bgSacred{t: t, lines: make(chan string, 256), exited: make(chan struct{})}
	b.cmd = exec.Command(bin, args...)
	b.cmd.Dir = dir
	b.cmd.Env = append(append(cleanEnv(), pathWithSacred()), env...)
	b.cmd.Stdout = &b.stdout
	errPipe, err := b.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			b.mu.Lock()
			b.stderr.WriteString(sc.Text() + "\n")
			b.mu.Unlock()
			select {
			case b.lines <- sc.Text():
			default:
			}
		}
		close(b.lines)
	}()
	go func() {
		<-scanned // Wait closes the pipe: read it all first
		b.err = b.cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-b.exited:
		default:
			b.cmd.Process.Kill()
			<-b.exited
		}
	})
	return b
}

func (b *bgSacred) errText() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stderr.String()
}

// waitLine waits for a stderr line containing s.
func (b *bgSacred) waitLine(s string) string {
	b.t.Helper()
	guard := time.After(hangGuard)
	for {
		select {
		case l, ok := <-b.lines:
			if !ok {
				b.t.Fatalf("sacred's stderr ended without a line containing %q:\n%s", s, b.errText())
			}
			if strings.Contains(l, s) {
				return l
			}
		case <-guard:
			b.t.Fatalf("no line containing %q on stderr after %s:\n%s", s, hangGuard, b.errText())
		}
	}
}

// wait waits for sacred to exit and returns what it did.
func (b *bgSacred) wait() result {
	b.t.Helper()
	select {
	case <-b.exited:
	case <-time.After(hangGuard):
		b.t.Fatalf("sacred did not exit within %s:\n%s", hangGuard, b.errText())
	}
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(b.err, &ee):
		if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
			b.t.Fatalf("sacred was killed by %v:\n%s", ws.Signal(), b.errText())
		}
		code = ee.ExitCode()
	case b.err != nil:
		b.t.Fatal(b.err)
	}
	return result{code: code, stdout: b.stdout.String(), stderr: b.errText()}
}

// gate opens a FIFO the way the command on its other end needs (reading
// waits for the writer and the reverse), failing the test after hangGuard.
func gate(t *testing.T, path string, flag int, use func(f *os.File)) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(path, flag, 0)
		if err == nil {
			use(f)
			err = f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(hangGuard):
		t.Fatalf("nobody opened the other end of %s within %s", path, hangGuard)
	}
}

// readGate waits for the command to write a line into the FIFO and
// returns it.
func readGate(t *testing.T, path string) string {
	t.Helper()
	var line string
	gate(t, path, os.O_RDONLY, func(f *os.File) {
		b, _ := io.ReadAll(f)
		line = strings.TrimSpace(string(b))
	})
	return line
}

func openGate(t *testing.T, path string) {
	t.Helper()
	gate(t, path, os.O_WRONLY, func(f *os.File) { f.WriteString("go\n") })
}

// lockHolder starts a run that takes --lock job.lock and holds it until
// released: its command says "ready" (with its pid) once it runs, then
// waits for the release and leaves first-done behind.
type lockHolder struct {
	*bgSacred
	ready, release string
	pid            int
}

func holdLock(t *testing.T, dir string, extra ...string) *lockHolder {
	t.Helper()
	gates := t.TempDir()
	h := &lockHolder{ready: filepath.Join(gates, "ready"), release: filepath.Join(gates, "release")}
	mkfifo(t, h.ready)
	mkfifo(t, h.release)
	args := append([]string{"run", "-F", "runs-first", "--lock", "job.lock"}, extra...)
	args = append(args, "--", "sh", "-c", `echo $$ > "$READY"; cat "$RELEASE" > /dev/null; touch first-done`)
	h.bgSacred = startSacred(t, dir, []string{"READY=" + h.ready, "RELEASE=" + h.release}, args...)
	var err error
	if h.pid, err = strconv.Atoi(readGate(t, h.ready)); err != nil {
		t.Fatalf("ready: %v", err)
	}
	t.Cleanup(func() { syscall.Kill(-h.pid, syscall.SIGKILL) })
	return h
}

func (h *lockHolder) finish(t *testing.T) {
	t.Helper()
	openGate(t, h.release)
	if r := h.wait(); r.code != 0 {
		t.Fatalf("the run holding the lock: exit %d\n%s", r.code, r.stderr)
	}
}

// The lock is taken before the command starts, so once the holder's
// command runs, a second run with the same lock and no wait exits 75 at
// once with one line, records nothing and runs nothing; with a short
// --lock-wait it gives up the same way; after the holder ends, the lock
// is free.
func TestCronLockHeldExitsTempfail(t *testing.T) {
	dir := t.TempDir()
	h := holdLock(t, dir)
	lock := filepath.Join(dir, "job.lock")

	r := sacred(t, dir, nil, "run", "-F", "runs-second", "--lock", "job.lock", "--", "touch", "second-ran")
	want := fmt.Sprintf("sacred: --lock %s is held by another run: not started, nothing recorded (exit status 75; --lock-wait 5m would wait for it)\n", lock)
	if r.code != 75 || r.stderr != want || r.stdout != "" {
		t.Errorf("second run: exit %d, stdout %q, stderr %q; want 75 and %q", r.code, r.stdout, r.stderr, want)
	}
	for _, p := range []string{"runs-second", "second-ran"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s exists (%v): a run refused by the lock must record and run nothing", p, err)
		}
	}

	// Waiting a little gives up too; quiet mode shows why, as it failed.
	r = sacred(t, dir, nil, "run", "-F", "runs-second", "--lock", lock, "--lock-wait", "100ms", "--quiet-unless-fail", "--", "touch", "second-ran")
	want = fmt.Sprintf("sacred: waiting up to 100ms for the lock %s, which another run holds\n"+
		"sacred: --lock %s is still held by another run after 100ms: not started, nothing recorded (exit status 75)\n", lock, lock)
	if r.code != 75 || r.stderr != want {
		t.Errorf("run with --lock-wait 100ms: exit %d, stderr %q; want 75 and %q", r.code, r.stderr, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "runs-second")); !os.IsNotExist(err) {
		t.Errorf("runs-second exists (%v)", err)
	}

	h.finish(t)
	r = sacred(t, dir, nil, "run", "-F", "runs-second", "--lock", "job.lock", "--", "touch", "second-ran")
	if r.code != 0 {
		t.Fatalf("run after the holder ended: exit %d\n%s", r.code, r.stderr)
	}
	wantStatus(t, readJSON(t, filepath.Join(dir, "runs-second", "1", "run.json")), "COMPLETED")
}

// With --lock-wait the second run waits and runs once the holder is done:
// its command sees what the holder's command left behind.
func TestCronLockWaitRunsAfterHolder(t *testing.T) {
	dir := t.TempDir()
	h := holdLock(t, dir)
	second := startSacred(t, dir, nil, "run", "-F", "runs-second", "--lock", "job.lock", "--lock-wait", "10m", "--", "test", "-f", "first-done")
	second.waitLine("waiting up to 10m0s for the lock")
	if _, err := os.Stat(filepath.Join(dir, "runs-second")); !os.IsNotExist(err) {
		t.Errorf("runs-second exists while the run waits for the lock (%v)", err)
	}
	h.finish(t)
	r := second.wait()
	if r.code != 0 {
		t.Fatalf("waiting run: exit %d (its command ran before the holder ended?)\n%s", r.code, r.stderr)
	}
	wantStatus(t, readJSON(t, filepath.Join(dir, "runs-second", "1", "run.json")), "COMPLETED")
}

// SIGKILL of the wrapper releases the lock (the kernel closes its
// descriptor), and the command it leaves running never held it.
func TestCronLockReleasedWhenWrapperKilled(t *testing.T) {
	dir := t.TempDir()
	h := holdLock(t, dir)
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-h.exited
	if err := syscall.Kill(h.pid, 0); err != nil {
		t.Fatalf("the orphaned command is gone (%v): the test needs it alive", err)
	}
	r := sacred(t, dir, nil, "run", "-u", "--lock", "job.lock", "--", "true")
	if r.code != 0 {
		t.Fatalf("run after the holder was killed: exit %d\n%s", r.code, r.stderr)
	}
}

// A successful quiet run shows nothing at all, sacred's own lines
// included, and records its whole output.
func TestCronQuietSuccessShowsNothing(t *testing.T) {
	dir := t.TempDir()
	r := sacred(t, dir, []string{pathWithSacred()}, "run", "--quiet-unless-fail", "--", "sh", "-c", "echo out; echo err >&2; sacred log metric m 1")
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("quiet success: exit %d, stdout %q, stderr %q; want 0 and nothing", r.code, r.stdout, r.stderr)
	}
	cout := readFile(t, filepath.Join(dir, "runs", "1", "cout.txt"))
	if len(cout) != len("out\nerr\n") || !strings.Contains(cout, "out\n") || !strings.Contains(cout, "err\n") {
		t.Errorf("cout.txt = %q, want out and err", cout)
	}
	wantStatus(t, readJSON(t, filepath.Join(dir, "runs", "1", "run.json")), "COMPLETED")
}

// A failed quiet run shows the output as recorded, exactly, on stdout and
// sacred's lines on stderr, in the order they came: on one stream (as cron
// mails them) the output sits between the start and the end messages.
func TestCronQuietFailureShowsEverything(t *testing.T) {
	dir := t.TempDir()
	script := `exec 2>&1; echo one; echo two >&2; printf 'no newline'; exit 3`
	r := sacred(t, dir, nil, "run", "-F", "runs", "--quiet-unless-fail", "--", "sh", "-c", script)
	if r.code != 3 || r.stdout != "one\ntwo\nno newline" || r.stderr != "sacred: started run 1\n" {
		t.Errorf("quiet failure: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if cout := readFile(t, filepath.Join(dir, "runs", "1", "cout.txt")); cout != "one\ntwo\nno newline" {
		t.Errorf("cout.txt = %q", cout)
	}

	// Both streams into one pipe: the order of everything shown.
	cmd := exec.Command(bin, "run", "-F", "runs", "--quiet-unless-fail", "--result-file", "missing.json", "--", "sh", "-c", script)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	var both bytes.Buffer
	cmd.Stdout, cmd.Stderr = &both, &both
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("exit: %v", err)
	}
	if got := both.String(); !strings.HasPrefix(got, "sacred: started run 2\none\ntwo\nno newlinesacred: --result-file: ") ||
		strings.Count(got, "\n") != 4 || !strings.HasSuffix(got, "\n") {
		t.Errorf("combined output in this order: the start line, the output, the late warning; got %q", both.String())
	}
}

// The whole output of a failed quiet run comes back from the spool, byte
// for byte, however large, also with -u.
func TestCronQuietFailureLargeOutput(t *testing.T) {
	dir := t.TempDir()
	var want strings.Builder
	for i := 1; i <= 300000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	r := sacred(t, dir, nil, "run", "-u", "--quiet-unless-fail", "--", "sh", "-c", "seq 1 300000; exit 1")
	if r.code != 1 || r.stderr != "" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if r.stdout != want.String() {
		t.Errorf("stdout: %d bytes, want the %d bytes of the output", len(r.stdout), want.Len())
	}
}

// The summary names the run, its status, exit status, duration, result,
// the last point of each metric and the observers (without passwords);
// the file is replaced by a rename (a hard link to the old file keeps the
// old content), and nothing is left beside it.
func TestCronSummaryJSON(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	summary := filepath.Join(out, "summary.json")
	if err := os.WriteFile(summary, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(summary, filepath.Join(out, "old-link")); err != nil {
		t.Fatal(err)
	}
	script := `sacred log metric loss 0.5; sacred log metric loss 0.25 --step 7; sacred log metric acc 0.9; sacred log result '{"score": 3}'`
	r := sacred(t, dir, []string{pathWithSacred()}, "run", "-F", "runs", "--summary-json", "out/summary.json", "--", "sh", "-c", script)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	s := readJSON(t, summary)
	run := readJSON(t, filepath.Join(dir, "runs", "1", "run.json"))
	want := map[string]any{
		"id": "1", "experiment": "sh", "status": "COMPLETED", "exit_code": 0.0,
		"result":    map[string]any{"score": 3.0},
		"metrics":   map[string]any{"loss": map[string]any{"value": 0.25, "step": 7.0}, "acc": map[string]any{"value": 0.9, "step": 0.0}},
		"observers": []any{"file storage runs"},
		"complete":  true,
	}
	for k, v := range want {
		if got, _ := json.Marshal(s[k]); string(got) != mustJSON(t, v) {
			t.Errorf("summary %s = %s, want %s", k, got, mustJSON(t, v))
		}
	}
	start, stop := parseTime(t, s["start_time"].(string)), parseTime(t, s["stop_time"].(string))
	if d := s["duration_seconds"].(float64); stop.Before(start) || d != stop.Sub(start).Seconds() {
		t.Errorf("start %v, stop %v, duration %v", start, stop, d)
	}
	if rs := parseTime(t, run["start_time"].(string)); !start.Equal(rs) {
		t.Errorf("summary start %v, record start %v", start, rs)
	}
	if old := readFile(t, filepath.Join(out, "old-link")); old != "old\n" {
		t.Errorf("the old file was written in place, not replaced: %q", old)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 2 {
		t.Errorf("files beside the summary: %v", ents)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A failed, a timed-out and an unobserved run, and a FILE in a missing
// directory.
func TestCronSummaryJSONFailures(t *testing.T) {
	dir := t.TempDir()
	r := sacred(t, dir, nil, "run", "-F", "runs", "--summary-json", "s.json", "--", "sh", "-c", "exit 3")
	s := readJSON(t, filepath.Join(dir, "s.json"))
	if r.code != 3 || s["status"] != "FAILED" || s["exit_code"] != 3.0 || s["id"] != "1" || s["result"] != nil {
		t.Errorf("failed run: exit %d, summary %v", r.code, s)
	}

	r = sacred(t, dir, nil, "run", "-F", "runs", "--summary-json", "s.json", "--timeout", "1s", "--", "sleep", "600")
	s = readJSON(t, filepath.Join(dir, "s.json"))
	if r.code != 143 || s["status"] != "TIMEOUT" || s["exit_code"] != 143.0 || s["id"] != "2" {
		t.Errorf("timed-out run: exit %d, summary %v", r.code, s)
	}

	r = sacred(t, dir, nil, "run", "-u", "--summary-json", "s.json", "--", "true")
	s = readJSON(t, filepath.Join(dir, "s.json"))
	if r.code != 0 || s["status"] != "COMPLETED" || s["id"] != nil || len(s["observers"].([]any)) != 0 {
		t.Errorf("unobserved run: exit %d, summary %v", r.code, s)
	}

	r = sacred(t, dir, nil, "run", "-F", "runs", "--summary-json", "nowhere/s.json", "--", "true")
	if r.code != 2 || !strings.HasPrefix(r.stderr, "sacred: --summary-json "+filepath.Join(dir, "nowhere", "s.json")+": the directory ") {
		t.Errorf("missing directory: exit %d, stderr %q", r.code, r.stderr)
	}
	if ids := runDirs(t, filepath.Join(dir, "runs")); len(ids) != 2 {
		t.Errorf("runs %v: the refused run must record nothing", ids)
	}
}

// On GitHub Actions a run with --summary-json appends its markdown summary
// to the step summary file and names the run in a notice on stdout; in
// quiet mode a run that succeeds only writes the file.
func TestCronGitHubStepSummary(t *testing.T) {
	dir := t.TempDir()
	md := filepath.Join(dir, "step-summary.md")
	if err := os.WriteFile(md, []byte("earlier step\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{pathWithSacred(), "GITHUB_STEP_SUMMARY=" + md}
	r := sacred(t, dir, env, "run", "-F", "runs", "--summary-json", "s.json", "--", "sh", "-c", "echo hi; sacred log metric 'a|b' 0.25 --step 7")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	notice := "::notice title=sacred::run 1 COMPLETED (exit status 0), recorded in file storage runs\n"
	if r.stdout != "hi\n"+notice {
		t.Errorf("stdout %q, want the output then %q", r.stdout, notice)
	}
	got := readFile(t, md)
	for _, want := range []string{"earlier step\n### sacred: run 1 COMPLETED (exit status 0)\n", "| sh | COMPLETED | 0 | ", "| a\\|b | 0.25 | 7 |\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("step summary lacks %q:\n%s", want, got)
		}
	}

	r = sacred(t, dir, env, "run", "-F", "runs", "--quiet-unless-fail", "--summary-json", "s.json", "--", "echo", "hi")
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("quiet success: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if got := readFile(t, md); !strings.Contains(got, "### sacred: run 2 COMPLETED") {
		t.Errorf("quiet run not in the step summary:\n%s", got)
	}

	// Without --summary-json nothing is written for GitHub.
	before := readFile(t, md)
	r = sacred(t, dir, env, "run", "-F", "runs", "--", "echo", "hi")
	if r.code != 0 || r.stdout != "hi\n" || readFile(t, md) != before {
		t.Errorf("run without --summary-json: exit %d, stdout %q; step summary changed: %v", r.code, r.stdout, readFile(t, md) != before)
	}
}

// pingServer stands in for healthchecks.io: it records every request and
// answers with what answer says.
type pingServer struct {
	*httptest.Server
	mu     sync.Mutex
	pings  []ping
	answer func(n int, p ping) int // the status for the n-th request (from 0)
	hang   chan struct{}           // when set, requests wait until it is closed
	gone   chan string             // paths of requests whose client gave up
}

type ping struct {
	method, path, rid, body string
}

// newPingServer starts the server; answer may be nil (always 200), and
// hang makes every request wait until the test ends.
func newPingServer(t *testing.T, answer func(n int, p ping) int, hang bool) *pingServer {
	s := &pingServer{gone: make(chan string, 16), answer: answer}
	if hang {
		s.hang = make(chan struct{})
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		p := ping{req.Method, req.URL.Path, req.URL.Query().Get("rid"), string(body)}
		s.mu.Lock()
		n := len(s.pings)
		s.pings = append(s.pings, p)
		s.mu.Unlock()
		if s.hang != nil {
			select {
			case <-s.hang:
			case <-req.Context().Done():
				s.gone <- p.path
			}
			return
		}
		status := http.StatusOK
		if s.answer != nil {
			status = s.answer(n, p)
		}
		w.WriteHeader(status)
		io.WriteString(w, "OK")
	}))
	t.Cleanup(func() {
		if s.hang != nil {
			close(s.hang)
		}
		s.Close()
	})
	return s
}

func (s *pingServer) all() []ping {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ping(nil), s.pings...)
}

const checkSecret = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// checkPings compares the paths and bodies of the pings with want and
// checks that they share one run id.
func checkPings(t *testing.T, got []ping, want ...ping) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("pings %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].method != "POST" || got[i].path != want[i].path || got[i].body != want[i].body {
			t.Errorf("ping %d: %s %s %q, want POST %s %q", i, got[i].method, got[i].path, got[i].body, want[i].path, want[i].body)
		}
		if !uuidRE.MatchString(got[i].rid) || got[i].rid != got[0].rid {
			t.Errorf("ping %d: rid %q, want the run's UUID %q", i, got[i].rid, got[0].rid)
		}
	}
}

// Success: /start, then the check's URL with the output as the body.
func TestCronPingSuccess(t *testing.T) {
	srv := newPingServer(t, nil, false)
	dir := t.TempDir()
	r := sacred(t, dir, nil, "run", "-F", "runs", "--ping", srv.URL+"/"+checkSecret, "--", "sh", "-c", "echo hello; echo world")
	if r.code != 0 || r.stderr != "sacred: started run 1\n" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	checkPings(t, srv.all(), ping{path: "/" + checkSecret + "/start"}, ping{path: "/" + checkSecret, body: "hello\nworld\n"})
}

// Failure: URL/<exit status> with the tail of the output (at most 10000
// bytes, from a line's start); a command that cannot start: URL/127 with
// the reason; a server that fails twice gets the same ping again.
func TestCronPingFailure(t *testing.T) {
	srv := newPingServer(t, nil, false)
	dir := t.TempDir()
	base := "/" + checkSecret
	r := sacred(t, dir, nil, "run", "-F", "runs", "--ping", srv.URL+base, "--", "sh", "-c", "seq 1 20000; exit 3")
	if r.code != 3 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	pings := srv.all()
	if len(pings) != 2 {
		t.Fatalf("pings %+v", pings)
	}
	var out strings.Builder
	for i := 1; i <= 20000; i++ {
		fmt.Fprintf(&out, "%d\n", i)
	}
	body := pings[1].body
	if len(body) > 10000 || len(body) < 9000 || !strings.HasSuffix(out.String(), "\n"+body) {
		t.Errorf("body of %d bytes, want at most 10000, whole lines from the end of the output: %q...", len(body), body[:min(40, len(body))])
	}
	checkPings(t, pings, ping{path: base + "/start"}, ping{path: base + "/3", body: body})

	srv2 := newPingServer(t, nil, false)
	r = sacred(t, dir, nil, "run", "-F", "runs", "--ping", srv2.URL+base, "--", "./no-such-command")
	if r.code != 127 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	checkPings(t, srv2.all(), ping{path: base + "/127", body: "sacred: command not found: ./no-such-command (check the name and your PATH)\n"})

	srv3 := newPingServer(t, func(n int, p ping) int {
		if p.path == base && n <= 2 {
			return http.StatusServiceUnavailable // the first two end pings
		}
		return http.StatusOK
	}, false)
	r = sacred(t, dir, nil, "run", "-F", "runs", "--ping", srv3.URL+base, "--", "echo", "again")
	if r.code != 0 || strings.Contains(r.stderr, "ping") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	end := ping{path: base, body: "again\n"}
	checkPings(t, srv3.all(), ping{path: base + "/start"}, end, end, end)
}

// A ping server that never answers delays the exit only until
// --flush-timeout: the wrapper gives the end ping up at the deadline
// (the server sees the client go away), says so without the URL's
// secret, and exits with the command's status.
func TestCronPingHangingServer(t *testing.T) {
	srv := newPingServer(t, nil, true)
	dir := t.TempDir()
	base := "/" + checkSecret
	r := sacredNoHang(t, dir, nil, "run", "-F", "runs", "--flush-timeout", "3s", "--ping", srv.URL+base, "--", "sh", "-c", "exit 5")
	if r.code != 5 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	want := "sacred: --ping: the end ping to " + host + " was not delivered within --flush-timeout 3s: "
	if !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, checkSecret) {
		t.Errorf("stderr %q, want %q and no secret", r.stderr, want)
	}
	abandoned := map[string]bool{}
	for len(abandoned) < 2 {
		select {
		case p := <-srv.gone:
			abandoned[p] = true
		case <-time.After(hangGuard):
			t.Fatalf("requests given up: %v, want the start and the end ping", abandoned)
		}
	}
	if !abandoned[base+"/start"] || !abandoned[base+"/5"] {
		t.Errorf("requests given up: %v", abandoned)
	}
	wantStatus(t, readJSON(t, filepath.Join(dir, "runs", "1", "run.json")), "FAILED")
}

// The check's URL is a secret: it is not in messages, in the record, in
// the summary, nor in the command's environment.
func TestCronPingSecretKept(t *testing.T) {
	srv := newPingServer(t, func(int, ping) int { return http.StatusNotFound }, false)
	dir := t.TempDir()
	url := srv.URL + "/" + checkSecret
	r := sacred(t, dir, nil, "run", "-F", "runs", "--summary-json", "s.json", "--ping", url, "--", "sh", "-c", "env > env.txt")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "answered HTTP 404 Not Found (check the URL)") {
		t.Errorf("stderr %q, want the 404 reported", r.stderr)
	}
	run := readJSON(t, filepath.Join(dir, "runs", "1", "run.json"))
	if got := run["meta"].(map[string]any)["options"].(map[string]any)["--ping"]; got != srv.URL+"/***" {
		t.Errorf("meta.options --ping = %v, want %s/***", got, srv.URL)
	}
	r2 := sacred(t, dir, []string{"SACRED_PING=" + url}, "run", "-F", "runs", "--", "sh", "-c", "env > env2.txt")
	r3 := sacred(t, dir, nil, "run", "-F", "runs", "--ping", "localhost/"+checkSecret, "--", "true")
	if r3.code != 2 {
		t.Errorf("bad --ping: exit %d, stderr %q", r3.code, r3.stderr)
	}
	for name, text := range map[string]string{
		"stderr": r.stderr + r2.stderr + r3.stderr, "run.json": readFile(t, filepath.Join(dir, "runs", "1", "run.json")),
		"summary": readFile(t, filepath.Join(dir, "s.json")), "env": readFile(t, filepath.Join(dir, "env.txt")),
		"env from SACRED_PING": readFile(t, filepath.Join(dir, "env2.txt")),
	} {
		if strings.Contains(text, checkSecret) {
			t.Errorf("%s holds the check's secret:\n%s", name, text)
		}
	}
	if len(srv.all()) != 4 {
		t.Errorf("pings %+v, want start and end of two runs", srv.all())
	}
}

// Every cron and CI flag may come from sacred.yaml or SACRED_*.
func TestCronSettingsFromConfig(t *testing.T) {
	srv := newPingServer(t, nil, false)
	dir := t.TempDir()
	yaml := "quiet-unless-fail: true\nsummary-json: s.json\nlock: job.lock\nlock-wait: 1m\n"
	if err := os.WriteFile(filepath.Join(dir, "sacred.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	r := sacred(t, dir, []string{"SACRED_PING=" + srv.URL + "/" + checkSecret, "SACRED_FILE_STORAGE=runs"}, "run", "--", "sh", "-c", "echo failing; exit 2")
	if r.code != 2 || r.stdout != "failing\n" || r.stderr != "sacred: started run 1\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if s := readJSON(t, filepath.Join(dir, "s.json")); s["status"] != "FAILED" {
		t.Errorf("summary %v", s)
	}
	if _, err := os.Stat(filepath.Join(dir, "job.lock")); err != nil {
		t.Errorf("lock file: %v", err)
	}
	checkPings(t, srv.all(), ping{path: "/" + checkSecret + "/start"}, ping{path: "/" + checkSecret + "/2", body: "failing\n"})

	r = sacred(t, dir, []string{"SACRED_LOCK_WAIT=soon"}, "run", "--", "true")
	if r.code != 2 || !strings.HasPrefix(r.stderr, `sacred: SACRED_LOCK_WAIT="soon": want a duration`) {
		t.Errorf("bad SACRED_LOCK_WAIT: exit %d, stderr %q", r.code, r.stderr)
	}
}
