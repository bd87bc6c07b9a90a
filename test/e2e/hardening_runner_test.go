package e2e

// Regression tests of the runner's items of the hardening issue (8), each
// named after its item, run through the real binary.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sacred-go/sacred/internal/testserver"
)

// An id given with -i is the run's id in every store, and a taken id
// fails before the command starts.
func TestHardening16IDIsHonoured(t *testing.T) {
	store, work := t.TempDir(), t.TempDir()
	r := sacred(t, work, nil, "run", "-F", store, "-i", "42", "--", "true")
	if r.code != 0 {
		t.Fatalf("exit %d; stderr %s", r.code, r.stderr)
	}
	if ids := runDirs(t, store); len(ids) != 1 || ids[0] != "42" {
		t.Fatalf("run directories %v, want [42]", ids)
	}
	wantStatus(t, readJSON(t, filepath.Join(store, "42", "run.json")), "COMPLETED")

	r = sacred(t, work, nil, "run", "-F", store, "-i", "42", "--", "touch", "ran")
	if r.code != 1 {
		t.Fatalf("a taken id: exit %d, want 1; stderr %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "already exists") {
		t.Errorf("stderr does not say the id is taken: %s", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(work, "ran")); err == nil {
		t.Error("the command ran although its id was taken")
	}
	if ids := runDirs(t, store); len(ids) != 1 {
		t.Errorf("run directories %v, want only 42", ids)
	}
}

// The wrapper leaves the child's environment alone: no PYTHONUNBUFFERED
// unless asked for (it makes a print-heavy Python child several times
// slower).
func TestHardening37NoPythonUnbufferedByDefault(t *testing.T) {
	t.Setenv("PYTHONUNBUFFERED", "")
	os.Unsetenv("PYTHONUNBUFFERED") // t.Setenv restores it afterwards
	store := t.TempDir()
	r := sacred(t, t.TempDir(), nil, "run", "-F", store, "-C", "pipe", "--", "sh", "-c", `echo "[${PYTHONUNBUFFERED-unset}]"`)
	if r.code != 0 {
		t.Fatalf("exit %d; stderr %s", r.code, r.stderr)
	}
	if r.stdout != "[unset]\n" {
		t.Errorf("the child saw PYTHONUNBUFFERED: %q", r.stdout)
	}
	// --unbuffered asks for it, through the flag and SACRED_UNBUFFERED.
	r = sacred(t, t.TempDir(), nil, "run", "-F", store, "-C", "pipe", "--unbuffered", "--", "sh", "-c", `echo "[${PYTHONUNBUFFERED-unset}]"`)
	if r.code != 0 || r.stdout != "[1]\n" {
		t.Errorf("with --unbuffered: exit %d, the child saw %q, want [1]; stderr %s", r.code, r.stdout, r.stderr)
	}
	r = sacred(t, t.TempDir(), []string{"SACRED_UNBUFFERED=true"}, "run", "-F", store, "-C", "pipe", "--", "sh", "-c", `echo "[${PYTHONUNBUFFERED-unset}]"`)
	if r.code != 0 || r.stdout != "[1]\n" {
		t.Errorf("with SACRED_UNBUFFERED=true: exit %d, the child saw %q, want [1]; stderr %s", r.code, r.stdout, r.stderr)
	}
}

// A config too large for one environment string (Linux: 128 KiB) still
// runs: the child finds it in the file SACRED_CONFIG_FILE names, and
// SACRED_CONFIG is left out instead of failing the exec.
func TestHardening14LargeConfigGoesToAFile(t *testing.T) {
	work, store := t.TempDir(), t.TempDir()
	big := strings.Repeat("x", 200<<10)
	if err := os.WriteFile(filepath.Join(work, "big.json"), []byte(`{"blob": "`+big+`", "n": 3}`), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `test -z "${SACRED_CONFIG+set}" || { echo "SACRED_CONFIG is set"; exit 5; }; cat "$SACRED_CONFIG_FILE" > seen.json`
	r := sacred(t, work, nil, "run", "-F", store, "with", "big.json", "--", "sh", "-c", script)
	if r.code != 0 {
		t.Fatalf("exit %d; stdout %s; stderr %s", r.code, r.stdout, r.stderr)
	}
	seen := readJSON(t, filepath.Join(work, "seen.json"))
	if seen["blob"] != big || seen["n"] != float64(3) {
		t.Errorf("the child read a different config from SACRED_CONFIG_FILE (%d keys)", len(seen))
	}
	wantStatus(t, readJSON(t, filepath.Join(store, "1", "run.json")), "COMPLETED")

	// A small config is in both.
	r = sacred(t, work, nil, "run", "-F", store, "with", "a=1", "--", "sh", "-c", `test "$SACRED_CONFIG" = "$(cat "$SACRED_CONFIG_FILE")" && echo same`)
	if r.code != 0 || !strings.Contains(r.stdout, "same") {
		t.Fatalf("exit %d, stdout %q: SACRED_CONFIG and SACRED_CONFIG_FILE differ; stderr %s", r.code, r.stdout, r.stderr)
	}
}

// The final heartbeat is never earlier than stop_time, whatever the end.
func TestHardening35FinalBeatNotBeforeStopTime(t *testing.T) {
	store := t.TempDir()
	for i, script := range []string{"echo ok", "echo bad >&2; exit 3"} {
		r := sacred(t, t.TempDir(), nil, "run", "-F", store, "--", "sh", "-c", script)
		if r.code != []int{0, 3}[i] {
			t.Fatalf("%q: exit %d; stderr %s", script, r.code, r.stderr)
		}
		run := readJSON(t, filepath.Join(store, runDirs(t, store)[i], "run.json"))
		beat, err1 := time.Parse("2006-01-02T15:04:05.999999", fmt.Sprint(run["heartbeat"]))
		stop, err2 := time.Parse("2006-01-02T15:04:05.999999", fmt.Sprint(run["stop_time"]))
		if err1 != nil || err2 != nil {
			t.Fatalf("%q: heartbeat %v, stop_time %v: %v %v", script, run["heartbeat"], run["stop_time"], err1, err2)
		}
		if beat.Before(stop) {
			t.Errorf("%q: heartbeat %v is earlier than stop_time %v", script, run["heartbeat"], run["stop_time"])
		}
	}
}

// A reader of sacred's stderr that goes away (`... 2>&1 | grep -m1 ready`)
// must not kill the wrapper with SIGPIPE when it next writes a message: the
// run is recorded to its end and the child's exit status is returned.
func TestHardening05ClosedStderrDoesNotKillTheWrapper(t *testing.T) {
	store := t.TempDir()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// The child waits on stdin until the test closed the reading end of
	// sacred's stdout and stderr, then makes sacred warn (a bad line on
	// the child API) and write its output.
	script := `echo ready; read go; echo '{bad' | sacred log stream; echo after; echo after >&2; exit 7`
	cmd := exec.Command(bin, "run", "-F", store, "-C", "pipe", "--", "sh", "-c", script)
	cmd.Env = append(cleanEnv(), pathWithSacred())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, outW
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outW.Close()
	inR.Close()
	rd := bufio.NewReader(outR)
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("waiting for ready: %q %v", line, err)
		}
		if line == "ready\n" {
			break
		}
	}
	outR.Close()
	if _, err := inW.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
	inW.Close()
	err = cmd.Wait()
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signaled() {
		t.Fatalf("sacred was killed by %v", ws.Signal())
	}
	if code := cmd.ProcessState.ExitCode(); code != 7 {
		t.Fatalf("exit %d (%v), want the child's 7", code, err)
	}
	run := readJSON(t, filepath.Join(store, "1", "run.json"))
	wantStatus(t, run, "FAILED")
	if cout := readFile(t, filepath.Join(store, "1", "cout.txt")); strings.Count(cout, "after\n") != 2 {
		t.Errorf("cout.txt lacks the output written after stderr closed: %q", cout)
	}
}

// A wrapper killed with SIGKILL leaves its private directory behind; the
// next run removes it, and never the directory of a wrapper still running.
func TestHardening27StaleTempDirsAreRemoved(t *testing.T) {
	tmp, store := t.TempDir(), t.TempDir()
	env := append(cleanEnv(), "TMPDIR="+tmp)

	// A live wrapper: this test process stands for it.
	live := filepath.Join(tmp, "sacred-run-live")
	if err := os.Mkdir(live, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(live, "owner.pid"), []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o600); err != nil {
		t.Fatal(err)
	}

	killed := exec.Command(bin, "run", "-F", store, "-C", "pipe", "--", "sh", "-c", "echo $$; exec sleep 1000")
	killed.Env = env
	out, err := killed.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := killed.Start(); err != nil {
		t.Fatal(err)
	}
	var child int
	if _, err := fmt.Fscan(out, &child); err != nil {
		t.Fatalf("reading the child's pid: %v", err)
	}
	killed.Process.Kill()
	killed.Wait()
	syscall.Kill(-child, syscall.SIGKILL) // the orphaned child's group
	left, _ := filepath.Glob(filepath.Join(tmp, "sacred-run-*"))
	if len(left) != 2 {
		t.Fatalf("after SIGKILL want the killed wrapper's directory and the live one, got %v", left)
	}

	r := sacred(t, t.TempDir(), []string{"TMPDIR=" + tmp}, "run", "-F", store, "--", "true")
	if r.code != 0 {
		t.Fatalf("exit %d; stderr %s", r.code, r.stderr)
	}
	left, _ = filepath.Glob(filepath.Join(tmp, "sacred-run-*"))
	if len(left) != 1 || left[0] != live {
		t.Fatalf("after the next run: %v, want only the live wrapper's %s", left, live)
	}
}

// Keys an observer adds to info at the final beat (Mongo's info.metrics
// pointers) reach the other observers' final records: a run shorter than
// one beat has them in file storage's info.json too, as under Python
// Sacred.
func TestHardening34MongoInfoMetricsReachFileStorage(t *testing.T) {
	uri := testserver.MongoURI(t)
	base := strings.TrimSuffix(strings.SplitN(uri, "?", 2)[0], "/")
	dbName := "e2e_" + strings.ReplaceAll(t.Name(), "/", "_")
	store := t.TempDir()
	r := sacred(t, t.TempDir(), []string{pathWithSacred()}, "run", "-m", base+"/"+dbName, "-F", store,
		"--", "sh", "-c", "sacred log metric loss 0.5 && sacred log metric acc 0.9")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	t.Cleanup(func() {
		c, err := mongodrv.Connect(options.Client().ApplyURI(base + "/"))
		if err == nil {
			_ = c.Database(dbName).Drop(context.Background())
			_ = c.Disconnect(context.Background())
		}
	})
	info := readJSON(t, filepath.Join(store, "1", "info.json"))
	ms, ok := info["metrics"].([]any)
	if !ok || len(ms) != 2 {
		t.Fatalf("info.json of file storage lacks Mongo's two metrics pointers: %v", info)
	}
	for _, m := range ms {
		if p, _ := m.(map[string]any); p["name"] == nil || p["id"] == nil {
			t.Errorf("pointer %v lacks name or id", m)
		}
	}
}
