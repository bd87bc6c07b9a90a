package e2e

// sacred reap through the binary: a run whose wrapper and command were
// killed with SIGKILL stays RUNNING; reap marks it FAILED, in every store
// that can take a run up: file storage, TinyDB, SQL, MongoDB, S3 and GCS.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/sacred-go/sacred/internal/testserver"
	"github.com/sacred-go/sacred/pkg/observer"
	_ "github.com/sacred-go/sacred/pkg/observer/file"
	_ "github.com/sacred-go/sacred/pkg/observer/gcs"
	_ "github.com/sacred-go/sacred/pkg/observer/s3"
	_ "github.com/sacred-go/sacred/pkg/observer/tinydb"
)

// killedScript logs a point, says its pid in at and blocks until killed.
const killedScript = `echo "working on it"
sacred log metric loss 0.5 --step 0
echo $$ > at
read x < never
`

// killRun runs killedScript recorded with flag and value, waits until the
// store has its beat, and kills the wrapper, then the command's process
// group, with SIGKILL: nothing records the end of the run.
func killRun(t *testing.T, dir, flag, value, option string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "job.sh"), []byte(killedScript), 0o644); err != nil {
		t.Fatal(err)
	}
	mkfifo(t, filepath.Join(dir, "at"))
	mkfifo(t, filepath.Join(dir, "never"))
	cmd := exec.Command(bin, "run", "-b", "0.2", flag, value, "--", "sh", "job.sh")
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), pathWithSacred())
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child := 0
	killed := false
	t.Cleanup(func() { // leave nothing behind when the test stops early
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if child > 0 {
				_ = syscall.Kill(-child, syscall.SIGKILL)
			}
		}
	})
	b, err := os.ReadFile(filepath.Join(dir, "at"))
	if err != nil {
		t.Fatal(err)
	}
	if child, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil || child <= 1 {
		t.Fatalf("the command's pid: %q", b)
	}
	waitForStore(t, option, value, "the run's first beat", func(r *observer.Run) bool {
		return !r.Heartbeat.IsZero() && lossPoints(r) == 1 && string(r.Output) == "working on it\n"
	})
	// The wrapper first, so that it never sees its command end.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true
	if err := syscall.Kill(-child, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the command's process group %d: %v", child, err)
	}
}

func reapKilledRun(t *testing.T, flag, value, option string) {
	dir := t.TempDir()
	killRun(t, dir, flag, value, option)
	ids := runIDs(t, option, value)
	if len(ids) != 1 {
		t.Fatalf("runs %v, want one", ids)
	}
	id := ids[0]
	before := readRun(t, option, value, id)
	if before.Status != observer.StatusRunning {
		t.Fatalf("the killed run is %s, want RUNNING", before.Status)
	}
	what := "run " + id + " of "

	// Its last beat is recent: its wrapper may be alive, so it is left.
	r := sacred(t, dir, nil, "reap", flag, value, "--older", "1h")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "no run in") {
		t.Errorf("reap --older 1h: exit %d, stdout %q, stderr %q; want nothing done", r.code, r.stdout, r.stderr)
	}
	r = sacred(t, dir, nil, "reap", flag, value, "--older", "1ms", "--dry-run")
	if r.code != 0 || !strings.HasPrefix(r.stdout, what) || !strings.HasSuffix(r.stdout, "would be marked FAILED (--dry-run)\n") || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("reap --dry-run: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if s := readRun(t, option, value, id).Status; s != observer.StatusRunning {
		t.Fatalf("after --dry-run the run is %s", s)
	}

	r = sacred(t, dir, nil, "reap", flag, value, "--older", "1ms")
	if r.code != 0 || !strings.HasPrefix(r.stdout, what) || !strings.Contains(r.stdout, ": RUNNING, last heartbeat ") ||
		!strings.HasSuffix(r.stdout, ": marked FAILED\n") || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("reap: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	run := readRun(t, option, value, id)
	if run.Status != observer.StatusFailed {
		t.Errorf("status %s, want FAILED", run.Status)
	}
	trace := strings.Join(run.FailTrace, "\n")
	if !strings.Contains(trace, "sacred reap: the wrapper of this run stopped without recording its end") ||
		!strings.Contains(trace, "its last heartbeat was at "+before.Heartbeat.UTC().Format("2006-01-02T15:04:05Z")) {
		t.Errorf("fail trace %q", run.FailTrace)
	}
	if !run.StopTime.Equal(before.Heartbeat) {
		t.Errorf("stop time %v, want the last heartbeat %v", run.StopTime, before.Heartbeat)
	}
	if string(run.Output) != "working on it\n" || lossPoints(run) != 1 {
		t.Errorf("the record changed: output %q, %d loss points", run.Output, lossPoints(run))
	}
	if ids := runIDs(t, option, value); len(ids) != 1 {
		t.Errorf("runs %v after reap, want the one", ids)
	}
	r = sacred(t, dir, nil, "reap", flag, value, "--older", "1ms")
	if r.code != 0 || r.stdout != "" {
		t.Errorf("a second reap: exit %d, stdout %q; want nothing done", r.code, r.stdout)
	}
}

func TestReapKilledRun(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		reapKilledRun(t, "-F", filepath.Join(t.TempDir(), "runs"), "file_storage")
	})
	t.Run("tinydb", func(t *testing.T) {
		reapKilledRun(t, "-t", filepath.Join(t.TempDir(), "tiny"), "tiny_db")
	})
	for name, url := range sqlURLs(t) {
		t.Run(name, func(t *testing.T) { reapKilledRun(t, "-s", url, "sql") })
	}
	t.Run("mongo", func(t *testing.T) {
		m := testserver.FerretDB(t)
		reapKilledRun(t, "-m", mongoSpec(t, m.URI()), "mongo_db")
	})
	// The object stores take the run up through the blob layout's Resume.
	t.Run("s3", func(t *testing.T) {
		srv := testserver.NewS3(t)
		srv.CreateBucket(testBucket)
		srv.SetEnv(t) // for the binary and for the test's own reader
		t.Setenv("AWS_ENDPOINT_URL_S3", srv.URL())
		reapKilledRun(t, "-S", "s3://"+testBucket+"/reap", "s3")
	})
	t.Run("gcs", func(t *testing.T) {
		srv := testserver.NewGCS(t)
		srv.CreateBucket(testBucket)
		srv.SetEnv(t)
		reapKilledRun(t, "--gcs", "gs://"+testBucket+"/reap", "gcs")
	})
}
