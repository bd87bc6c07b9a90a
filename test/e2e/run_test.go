package e2e

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestCompletedRunRecordsEverything(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "train.sh")
	if err := os.WriteFile(script, []byte("echo \"out $SACRED_RUN_ID seed=$SACRED_SEED\"\necho err >&2\necho \"$SACRED_CONFIG\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := sacred(t, dir, nil, "run", "-F", "runs", "-c", "baseline", "with", "lr=0.1", "layers=[64,64]", "opt.name=adam", "--", "sh", "train.sh", "--epochs", "3")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "out 1 seed=") || !strings.Contains(r.stderr, "err\n") {
		t.Fatalf("output not passed through: stdout %q stderr %q", r.stdout, r.stderr)
	}
	run := readJSON(t, filepath.Join(dir, "runs", "1", "run.json"))
	wantStatus(t, run, "COMPLETED")
	for _, k := range []string{"start_time", "stop_time", "heartbeat", "host", "experiment", "meta", "artifacts", "resources", "command"} {
		if run[k] == nil {
			t.Errorf("run.json lacks %q", k)
		}
	}
	ex := run["experiment"].(map[string]any)
	if ex["name"] != "train" || ex["mainfile"] != "train.sh" {
		t.Errorf("experiment name/mainfile = %v/%v, want train/train.sh", ex["name"], ex["mainfile"])
	}
	srcs := ex["sources"].([]any)
	if len(srcs) != 1 || srcs[0].([]any)[0] != "train.sh" {
		t.Fatalf("sources = %v", srcs)
	}
	stored := filepath.Join(dir, "runs", srcs[0].([]any)[1].(string))
	if readFile(t, stored) != readFile(t, script) {
		t.Errorf("stored source %s differs from train.sh", stored)
	}
	meta := run["meta"].(map[string]any)
	if meta["comment"] != "baseline" {
		t.Errorf("meta.comment = %v", meta["comment"])
	}
	opts := meta["options"].(map[string]any)
	if opts["--file_storage"] != "runs" || opts["--comment"] != "baseline" || opts["--queue"] != false {
		t.Errorf("meta.options = %v", opts)
	}
	cfg := readJSON(t, filepath.Join(dir, "runs", "1", "config.json"))
	if cfg["lr"] != 0.1 || fmt.Sprint(cfg["layers"]) != "[64 64]" || cfg["opt"].(map[string]any)["name"] != "adam" {
		t.Errorf("config.json = %v", cfg)
	}
	seed, ok := cfg["seed"].(float64)
	if !ok || seed < 1 || seed >= 1e9 {
		t.Errorf("seed = %v, want an integer in [1, 1e9)", cfg["seed"])
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("seed=%d", int64(seed))) {
		t.Errorf("SACRED_SEED given to the child differs from config seed %v: %q", seed, r.stdout)
	}
	if !strings.Contains(r.stdout, `"lr":0.1`) {
		t.Errorf("SACRED_CONFIG not given to the child: %q", r.stdout)
	}
	cout := readFile(t, filepath.Join(dir, "runs", "1", "cout.txt"))
	for _, want := range []string{"out 1 seed=", "err\n"} {
		if !strings.Contains(cout, want) {
			t.Errorf("cout.txt lacks %q: %q", want, cout)
		}
	}
}

func TestExitStatusesAndFailedRuns(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name   string
		args   []string
		code   int
		status string
		trace  []string // substrings of the fail trace
	}{
		{"exit 1", []string{"sh", "-c", "echo bad thing >&2; exit 1"}, 1, "FAILED", []string{"status 1", "bad thing"}},
		{"exit 42", []string{"sh", "-c", "echo boom >&2; exit 42"}, 42, "FAILED", []string{"status 42", "boom"}},
		{"killed", []string{"sh", "-c", "kill -9 $$"}, 128 + 9, "FAILED", []string{"SIGKILL"}},
		{"not found", []string{"no-such-command-xyz"}, 127, "FAILED", []string{"not found"}},
		{"not executable", []string{"./plain.txt"}, 126, "FAILED", []string{"cannot be executed"}},
	}
	if err := os.WriteFile(filepath.Join(dir, "plain.txt"), []byte("just text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store := t.TempDir()
			r := sacred(t, dir, nil, append([]string{"run", "-F", store, "--"}, c.args...)...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d; stderr: %s", r.code, c.code, r.stderr)
			}
			run := readJSON(t, filepath.Join(store, "1", "run.json"))
			wantStatus(t, run, c.status)
			trace := fmt.Sprint(run["fail_trace"])
			for _, s := range c.trace {
				if !strings.Contains(trace, s) {
					t.Errorf("fail_trace %q lacks %q", trace, s)
				}
			}
			if c.code >= 126 && c.code <= 127 && strings.Count(strings.TrimSpace(r.stderr), "\n") > 2 {
				t.Errorf("want a short clear message, got stderr:\n%s", r.stderr)
			}
		})
	}
}

func TestFailedRunKeepsItsLastOutput(t *testing.T) {
	// Sacred loses everything after the last heartbeat of a failed run.
	store := t.TempDir()
	r := sacred(t, t.TempDir(), nil, "run", "-F", store, "-b", "60", "--", "sh", "-c", "echo first; echo last words >&2; exit 3")
	if r.code != 3 {
		t.Fatalf("exit %d", r.code)
	}
	// The two streams are separate pipes: their relative order is the
	// order of arrival, so only each line's presence is certain.
	cout := readFile(t, filepath.Join(store, "1", "cout.txt"))
	if len(cout) != len("first\nlast words\n") || !strings.Contains(cout, "first\n") || !strings.Contains(cout, "last words\n") {
		t.Fatalf("cout.txt = %q", cout)
	}
}

// startWrapped starts sacred with the child printing "ready" once it has
// set its traps, and waits for that line.
func startWrapped(t *testing.T, store string, extra ...string) (*exec.Cmd, *bufio.Reader, *bytes.Buffer) {
	t.Helper()
	script := `trap 'echo child got INT; exit 3' INT; trap 'echo child got TERM; exit 4' TERM; echo ready; while :; do sleep 0.05; done`
	args := append([]string{"run", "-F", store, "-C", "pipe"}, extra...)
	args = append(args, "--", "sh", "-c", script)
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(out)
	line, err := rd.ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("waiting for ready: %q %v; stderr %s", line, err, errb.String())
	}
	return cmd, rd, &errb
}

func TestSignalsInterruptTheRun(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			store := t.TempDir()
			cmd, rd, errb := startWrapped(t, store)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			rest, _ := io.ReadAll(rd)
			err := cmd.Wait()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			want := map[syscall.Signal]int{syscall.SIGINT: 3, syscall.SIGTERM: 4}[sig]
			if code != want {
				t.Fatalf("exit %d, want the child's %d; stderr %s", code, want, errb.String())
			}
			wantLine := map[syscall.Signal]string{syscall.SIGINT: "child got INT", syscall.SIGTERM: "child got TERM"}[sig]
			if !strings.Contains(string(rest), wantLine) {
				t.Errorf("child did not get the signal: %q", rest)
			}
			run := readJSON(t, filepath.Join(store, "1", "run.json"))
			wantStatus(t, run, "INTERRUPTED")
			if cout := readFile(t, filepath.Join(store, "1", "cout.txt")); !strings.Contains(cout, wantLine) {
				t.Errorf("cout.txt lacks the child's last words: %q", cout)
			}
		})
	}
}

func TestSecondInterruptKills(t *testing.T) {
	store := t.TempDir()
	script := `trap 'echo ignoring INT' INT; echo ready; while :; do sleep 0.05; done`
	cmd := exec.Command(bin, "run", "-F", store, "-C", "pipe", "--kill-after", "1h", "--", "sh", "-c", script)
	cmd.Env = cleanEnv()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(out)
	if line, _ := rd.ReadString('\n'); line != "ready\n" {
		t.Fatalf("got %q", line)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	if line, _ := rd.ReadString('\n'); line != "ignoring INT\n" {
		t.Fatalf("got %q", line)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	_, _ = io.ReadAll(rd)
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 128+9 {
		t.Fatalf("want exit 137 after the second interrupt, got %v", err)
	}
	wantStatus(t, readJSON(t, filepath.Join(store, "1", "run.json")), "INTERRUPTED")
}

func TestTimeout(t *testing.T) {
	store := t.TempDir()
	r := sacred(t, t.TempDir(), nil, "run", "-F", store, "--timeout", "300ms", "--", "sh", "-c", "echo started; exec sleep 60")
	if r.code != 128+15 {
		t.Fatalf("exit %d, want 143 (child stopped by SIGTERM); stderr %s", r.code, r.stderr)
	}
	wantStatus(t, readJSON(t, filepath.Join(store, "1", "run.json")), "TIMEOUT")
	if !strings.Contains(r.stderr, "timeout") {
		t.Errorf("stderr does not say why: %s", r.stderr)
	}
}

func TestConcurrentRunsGetDistinctIDs(t *testing.T) {
	store := t.TempDir()
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := sacred(t, store, nil, "run", "-F", store, "--", "echo", fmt.Sprint("run ", i))
			if r.code != 0 {
				errs <- fmt.Sprintf("run %d: exit %d: %s", i, r.code, r.stderr)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	ids := runDirs(t, store)
	if len(ids) != n {
		t.Fatalf("%d run dirs, want %d", len(ids), n)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		run := readJSON(t, filepath.Join(store, id, "run.json"))
		wantStatus(t, run, "COMPLETED")
		out := readFile(t, filepath.Join(store, id, "cout.txt"))
		if seen[out] {
			t.Errorf("two runs recorded the same output %q", out)
		}
		seen[out] = true
	}
}

func TestLargeOutputIsCapturedExactly(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB of output: skipped with -short")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data.bin")
	f, err := os.Create(data)
	if err != nil {
		t.Fatal(err)
	}
	h := md5.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, 100<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want := hex.EncodeToString(h.Sum(nil))

	store := filepath.Join(dir, "runs")
	cmd := exec.Command(bin, "run", "-F", store, "-C", "pipe", "--", "cat", data)
	cmd.Env = cleanEnv()
	passed := md5.New()
	cmd.Stdout = passed
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	if got := hex.EncodeToString(passed.Sum(nil)); got != want {
		t.Errorf("passed-through output md5 %s, want %s", got, want)
	}
	cf, err := os.Open(filepath.Join(store, "1", "cout.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	ch := md5.New()
	if _, err := io.Copy(ch, cf); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(ch.Sum(nil)); got != want {
		t.Errorf("cout.txt md5 %s, want %s", got, want)
	}
}

func TestPTYKeepsProgressBytes(t *testing.T) {
	store := t.TempDir()
	r := sacred(t, t.TempDir(), nil, "run", "-F", store, "-C", "pty", "--", "sh", "-c", `test -t 1 && printf 'progress  0%%\rprogress 50%%\rprogress 100%%\ndone\n'`)
	if r.code != 0 {
		t.Fatalf("exit %d (is stdout a terminal for the child?): %s", r.code, r.stderr)
	}
	want := "progress  0%\rprogress 50%\rprogress 100%\ndone\n"
	if got := readFile(t, filepath.Join(store, "1", "cout.txt")); got != want {
		t.Fatalf("cout.txt = %q, want %q", got, want)
	}
	if r.stdout != want {
		t.Errorf("passed through %q, want %q", r.stdout, want)
	}
}

func TestQueuedRun(t *testing.T) {
	store := t.TempDir()
	marker := filepath.Join(t.TempDir(), "ran")
	r := sacred(t, t.TempDir(), nil, "run", "-F", store, "-q", "-P", "3", "--", "touch", marker)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a queued run must not run the command")
	}
	run := readJSON(t, filepath.Join(store, "1", "run.json"))
	wantStatus(t, run, "QUEUED")
	meta := run["meta"].(map[string]any)
	if meta["queue_time"] == nil || meta["priority"] != 3.0 {
		t.Errorf("meta = %v", meta)
	}
	if run["start_time"] != nil {
		t.Errorf("queued run has a start_time")
	}
}

func TestDefaultObserverAndConfigSources(t *testing.T) {
	dir := t.TempDir()
	r := sacred(t, dir, nil, "run", "echo", "hi")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if strings.Count(r.stderr, "./runs") != 1 {
		t.Errorf("want one note about ./runs on stderr, got %q", r.stderr)
	}
	wantStatus(t, readJSON(t, filepath.Join(dir, "runs", "1", "run.json")), "COMPLETED")

	// sacred.yaml sets the default; SACRED_* overrides it; a flag wins.
	if err := os.WriteFile(filepath.Join(dir, "sacred.yaml"), []byte("file_storage: fromyaml\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sacred(t, dir, nil, "run", "true")
	sacred(t, dir, []string{"SACRED_FILE_STORAGE=fromenv"}, "run", "true")
	sacred(t, dir, []string{"SACRED_FILE_STORAGE=fromenv"}, "run", "-F", "fromflag", "true")
	for _, d := range []string{"fromyaml", "fromenv", "fromflag"} {
		if ids := runDirs(t, filepath.Join(dir, d)); len(ids) != 1 {
			t.Errorf("%s: %d runs, want 1", d, len(ids))
		}
	}
}

func TestUnobservedRecordsNothing(t *testing.T) {
	dir := t.TempDir()
	r := sacred(t, dir, nil, "run", "-u", "sh", "-c", "exit 5")
	if r.code != 5 {
		t.Fatalf("exit %d", r.code)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("-u wrote %v", ents)
	}
}

func TestBadInvocations(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"run", "-F", "runs"}, 2, "no command given"},
		{[]string{"run", "-t", "/dev/null", "--", "true"}, 1, "not a directory"},
		{[]string{"run", "-C", "bogus", "--", "true"}, 2, "capture"},
		{[]string{"run", "--bogus", "true"}, 2, "unknown flag"},
		{[]string{"run", "-P", "high", "true"}, 2, "priority"},
		{[]string{"run", "-e", "-F", "runs", "--", "true"}, 1, "git"},
	}
	for _, c := range cases {
		r := sacred(t, dir, nil, c.args...)
		if r.code != c.code || !strings.Contains(strings.ToLower(r.stderr), c.msg) {
			t.Errorf("sacred %v: exit %d, stderr %q; want exit %d and %q", c.args, r.code, r.stderr, c.code, c.msg)
		}
		if lines := strings.Count(strings.TrimSpace(r.stderr), "\n") + 1; lines > 2 {
			t.Errorf("sacred %v: want one clear line, got %d:\n%s", c.args, lines, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "runs")); err == nil {
		ids := runDirs(t, filepath.Join(dir, "runs"))
		if len(ids) != 0 {
			t.Errorf("a refused run left records: %v", ids)
		}
	}
}

func TestRecordsMatchGoldenShape(t *testing.T) {
	golden := filepath.Join("..", "..", "..", "shared", "golden", "fs", "1", "run.json")
	if _, err := os.Stat(golden); err != nil {
		t.Skipf("golden records not found at %s", golden)
	}
	want := readJSON(t, golden)
	store := t.TempDir()
	r := sacred(t, t.TempDir(), nil, "run", "-F", store, "--", "sh", "-c", "echo hi")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	got := readJSON(t, filepath.Join(store, "1", "run.json"))
	compareShape(t, "run.json", want, got)
}

// compareShape checks that every key of want is in got with a value of the
// same JSON type, recursively into objects. Extra keys in got are ours.
func compareShape(t *testing.T, path string, want, got any) {
	t.Helper()
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			t.Errorf("%s: got %T, want an object", path, got)
			return
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			// Python-only facts and values that differ per run kind.
			if k == "python_version" || k == "dependencies" || k == "repositories" || k == "resources" || k == "artifacts" || k == "result" || k == "sources" {
				continue
			}
			gv, ok := g[k]
			if !ok {
				t.Errorf("%s.%s: missing", path, k)
				continue
			}
			compareShape(t, path+"."+k, w[k], gv)
		}
	case []any:
		if _, ok := got.([]any); !ok {
			t.Errorf("%s: got %T, want a list", path, got)
		}
	case nil:
	default:
		if fmt.Sprintf("%T", want) != fmt.Sprintf("%T", got) && got != nil {
			t.Errorf("%s: got %T, want %T", path, got, want)
		}
	}
}

func TestPythonScript(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	dir := t.TempDir()
	script := `import json, os, sys
cfg = json.loads(os.environ["SACRED_CONFIG"])
print("lr", cfg["lr"], "layers", cfg.get("layers"), "args", sys.argv[1:])
print("progress 50%\rprogress 100%")
print("warning", file=sys.stderr)
sys.exit(0 if cfg["lr"] < 1 else 2)
`
	if err := os.WriteFile(filepath.Join(dir, "train.py"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	r := sacred(t, dir, nil, "run", "-F", "runs/", "-c", "baseline", "with", "lr=0.1", "layers=[64,64]", "--", py, "train.py", "--epochs", "3")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := "lr 0.1 layers [64, 64] args ['--epochs', '3']\n"
	if !strings.HasPrefix(r.stdout, want) {
		t.Errorf("stdout %q, want it to start with %q", r.stdout, want)
	}
	run := readJSON(t, filepath.Join(dir, "runs", "1", "run.json"))
	wantStatus(t, run, "COMPLETED")
	if ex := run["experiment"].(map[string]any); ex["name"] != "train" || ex["mainfile"] != "train.py" {
		t.Errorf("experiment = %v", ex)
	}
	// Unbuffered Python writes each word of a print separately, so the
	// stderr line may land inside a stdout line: both streams are in
	// cout.txt, each in its own order.
	cout := readFile(t, filepath.Join(dir, "runs", "1", "cout.txt"))
	stdoutPart := strings.Replace(cout, "warning\n", "", 1)
	if len(stdoutPart) != len(cout)-len("warning\n") || stdoutPart != r.stdout {
		t.Errorf("cout.txt = %q, want the stdout %q plus \"warning\\n\"", cout, r.stdout)
	}
	if !strings.Contains(stdoutPart, "progress 50%\rprogress 100%\n") {
		t.Errorf("cout.txt lost the progress bytes: %q", cout)
	}
	r = sacred(t, dir, nil, "run", "-F", "runs/", "with", "lr=2", "--", py, "train.py")
	if r.code != 2 {
		t.Fatalf("exit %d, want 2", r.code)
	}
	wantStatus(t, readJSON(t, filepath.Join(dir, "runs", "2", "run.json")), "FAILED")
}
