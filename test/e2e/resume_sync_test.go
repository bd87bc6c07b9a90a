package e2e

// sacred sync finishes a run whose start reached the store before the
// store went away (observer.Resumer): MongoDB stopped, SQLite locked by
// another process, from a moment after the start until the wrapper exited.

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sacred-go/sacred/internal/testserver"
	"github.com/sacred-go/sacred/pkg/observer"
)

// resumeScript is queueScript with a gate after the first ten epochs: it
// says so in at1 and waits for go1.
const resumeScript = `set -e
phase() {
  i=$1
  while [ $i -lt $2 ]; do
    echo "epoch $i: loss is $((100 - i)) and some text to make the output longer than a line"
    sacred log metric loss $((100 - i)) --step $i
    i=$((i + 1))
  done
}
phase 0 10
echo 1 > at1; read x < go1
phase 10 40
printf 'no newline at the end'
echo weights > model.txt
sacred log artifact model.txt
exit 3
`

var replayAnyRE = regexp.MustCompile(`replay (?:them|it) with: sacred sync (\S+)`)

// waitForStore polls the store until cond holds of its only run: the
// store's own state is what the test waits for, not a time.
func waitForStore(t *testing.T, option, value, what string, cond func(*observer.Run) bool) {
	t.Helper()
	k, ok := observer.Lookup(option)
	if !ok {
		t.Fatalf("%s is not built into the test", option)
	}
	deadline := time.Now().Add(2 * time.Minute)
	var last any = "nothing"
	for {
		ctx := context.Background()
		r, err := k.OpenReader(ctx, value, observer.Settings{})
		if err == nil {
			var ids []string
			ids, err = r.Runs(ctx)
			if err == nil && len(ids) == 1 {
				var run *observer.Run
				run, err = r.Run(ctx, ids[0])
				if err == nil && cond(run) {
					r.Close()
					return
				}
				if err == nil {
					last = fmt.Sprintf("status %s, heartbeat %v, %d loss points, output %q", run.Status, run.Heartbeat, lossPoints(run), clipText(string(run.Output)))
				}
			} else if err == nil {
				last = fmt.Sprintf("runs %v", ids)
			}
			r.Close()
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store never had %s; last seen: %v", what, last)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a synchronisation
	}
}

func lossPoints(run *observer.Run) int {
	for _, s := range run.Metrics {
		if s.Name == "loss" {
			return len(s.Points)
		}
	}
	return 0
}

// syncResumed runs the script through the journal into the store given by
// flag and value; once the store has the start and the first ten epochs,
// down() takes it away until the wrapper has exited, then up() brings it
// back and sacred sync must complete the record in place.
func syncResumed(t *testing.T, flag, option, value string, down, up func()) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "train.sh"), []byte(resumeScript), 0o644); err != nil {
		t.Fatal(err)
	}
	mkfifo(t, filepath.Join(dir, "at1"))
	mkfifo(t, filepath.Join(dir, "go1"))
	env := journalEnv(t)
	cmd := exec.Command(bin, "run", "--journal", "--flush-timeout", "1s", "-b", "0.2", flag, value, "--", "sh", "train.sh")
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // a test stopped early: the wrapper stops its command
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
	})
	if b, err := os.ReadFile(filepath.Join(dir, "at1")); err != nil || len(b) == 0 {
		t.Fatalf("waiting for the command: %v", err)
	}
	waitForStore(t, option, value, "the first ten epochs", func(r *observer.Run) bool {
		return lossPoints(r) == 10 && bytes.Contains(r.Output, []byte("epoch 9:"))
	})
	down()
	if err := os.WriteFile(filepath.Join(dir, "go1"), []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("sacred run: %v, want the command's exit status 3\nstderr: %s", err, errb.String())
	}
	m := replayAnyRE.FindStringSubmatch(errb.String())
	if m == nil {
		t.Fatalf("the wrapper printed no replay command:\n%s", errb.String())
	}
	journal := m[1]
	up()
	ids := runIDs(t, option, value)
	if len(ids) != 1 {
		t.Fatalf("runs %v, want one", ids)
	}
	if run := readRun(t, option, value, ids[0]); run.Status != observer.StatusRunning {
		t.Fatalf("before sync the run is %s, want it RUNNING (the store was away for the rest of the run)", run.Status)
	}

	s := sacred(t, dir, env, "sync", journal)
	if s.code != 0 {
		t.Fatalf("sync: exit %d\nstdout: %s\nstderr: %s", s.code, s.stdout, s.stderr)
	}
	if !strings.Contains(s.stdout, "is recorded in") || !strings.Contains(s.stdout, "removed") {
		t.Errorf("sync said: %s%s", s.stdout, s.stderr)
	}
	if _, err := os.Stat(journal); !os.IsNotExist(err) {
		t.Errorf("the journal of a recorded run is still there: %v", err)
	}
	if ids := runIDs(t, option, value); len(ids) != 1 {
		t.Errorf("runs %v after sync, want the one run, continued", ids)
	}
	checkQueueRun(t, readRun(t, option, value, ids[0]), out.String(), observer.StatusFailed)
}

// MongoDB stopped after it recorded the start and ten epochs, until the
// wrapper exited: sync takes the run up where the store has it and
// completes it, the output byte for byte and every metric point once.
func TestSyncResumesMongoRun(t *testing.T) {
	m := testserver.FerretDB(t)
	spec := mongoSpec(t, m.URI())
	syncResumed(t, "-m", "mongo_db", spec, m.Stop, m.Start)
}

// The same with SQLite, taken away by another process holding it locked
// (a backup, say) for the rest of the run.
func TestSyncResumesSQLiteRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.db")
	url := "sqlite:///" + path
	var tx *sql.Tx
	var db *sql.DB
	down := func() {
		var err error
		db, err = sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		tx, err = db.Begin()
		if err == nil {
			// A write takes the lock and holds it until the transaction
			// ends.
			_, err = tx.Exec("CREATE TABLE IF NOT EXISTS lock_holder (x INTEGER)")
		}
		if err != nil {
			t.Fatalf("lock the database: %v", err)
		}
	}
	up := func() {
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	syncResumed(t, "-s", "sql", url, down, up)
}
