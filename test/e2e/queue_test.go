package e2e

// The durable queue (sacred run --journal) and sacred sync, through the
// real binary, against the embedded FerretDB stopped and started by the
// test, and SQLite.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/sacred-go/sacred/internal/testserver"
	"github.com/sacred-go/sacred/pkg/observer"
	_ "github.com/sacred-go/sacred/pkg/observer/mongo"
)

// queueScript prints output over several beats, logs metrics and an
// artifact, and exits with the status given as $1.
const queueScript = `set -e
i=0
while [ $i -lt 40 ]; do
  echo "epoch $i: loss is $((100 - i)) and some text to make the output longer than a line"
  sacred log metric loss $((100 - i)) --step $i
  i=$((i + 1))
done
printf 'no newline at the end'
echo weights > model.txt
sacred log artifact model.txt
exit "$1"
`

// mongoSpec is a database of its own for the test on the server at uri.
func mongoSpec(t *testing.T, uri string) string {
	base := strings.TrimSuffix(strings.SplitN(uri, "?", 2)[0], "/")
	return base + "/e2e_" + strings.ReplaceAll(t.Name(), "/", "_")
}

// readRun reads run id back through the kind registered as option.
func readRun(t *testing.T, option, value, id string) *observer.Run {
	t.Helper()
	k, ok := observer.Lookup(option)
	if !ok {
		t.Fatalf("%s is not built in", option)
	}
	ctx := context.Background()
	r, err := k.OpenReader(ctx, value, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	run, err := r.Run(ctx, id)
	if err != nil {
		t.Fatalf("read run %s: %v", id, err)
	}
	return run
}

// runIDs lists the runs of a store.
func runIDs(t *testing.T, option, value string) []string {
	t.Helper()
	k, _ := observer.Lookup(option)
	ctx := context.Background()
	r, err := k.OpenReader(ctx, value, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ids, err := r.Runs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

var replayRE = regexp.MustCompile(`replay them with: sacred sync (\S+)`)

// replayCommand is the journal of the command the wrapper printed.
func replayCommand(t *testing.T, stderr string) string {
	t.Helper()
	m := replayRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("the wrapper printed no replay command:\n%s", stderr)
	}
	return m[1]
}

// checkQueueRun checks a run of queueScript: every point once and in
// order, the output byte for byte, the artifact.
func checkQueueRun(t *testing.T, run *observer.Run, stdout, status string) {
	t.Helper()
	if run.Status != status {
		t.Errorf("status %s, want %s", run.Status, status)
	}
	if !bytes.Equal(run.Output, []byte(stdout)) {
		t.Errorf("output differs from what the command printed: %d bytes, want %d\ngot:  %q\nwant: %q", len(run.Output), len(stdout), clipText(string(run.Output)), clipText(stdout))
	}
	var loss []observer.MetricPoint
	for _, s := range run.Metrics {
		if s.Name == "loss" {
			loss = s.Points
		}
	}
	if len(loss) != 40 {
		t.Errorf("%d loss points, want 40", len(loss))
	}
	for i, p := range loss {
		if p.Step != int64(i) || p.Value != float64(100-i) {
			t.Errorf("loss point %d: step %d value %v, want step %d value %d", i, p.Step, p.Value, i, 100-i)
			break
		}
	}
	if len(run.Artifacts) != 1 || run.Artifacts[0] != "model.txt" {
		t.Errorf("artifacts %v", run.Artifacts)
	}
}

func clipText(s string) string {
	if len(s) > 200 {
		return s[:100] + "..." + s[len(s)-100:]
	}
	return s
}

func writeScript(t *testing.T, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "train.sh"), []byte(queueScript), 0o644); err != nil {
		t.Fatal(err)
	}
}

func journalEnv(t *testing.T) []string {
	return []string{pathWithSacred(), "XDG_STATE_HOME=" + t.TempDir()}
}

// MongoDB stopped for the whole run: the command runs, the wrapper exits
// with its status and prints the command that replays the journal; with
// the server back, that command completes the record: the output byte for
// byte, every metric point.
func TestQueueMongoDownForTheWholeRun(t *testing.T) {
	m := testserver.FerretDB(t)
	spec := mongoSpec(t, m.URI())
	m.Stop()
	dir := t.TempDir()
	writeScript(t, dir)
	env := journalEnv(t)
	r := sacred(t, dir, env, "run", "--journal", "--flush-timeout", "1s", "-b", "0.2", "-m", spec, "--", "sh", "train.sh", "3")
	if r.code != 3 {
		t.Fatalf("exit %d, want the command's 3\nstderr: %s", r.code, r.stderr)
	}
	journal := replayCommand(t, r.stderr)
	if !strings.Contains(r.stderr, "not yet recorded in MongoDB") {
		t.Errorf("stderr: %s", r.stderr)
	}
	if _, err := os.Stat(journal); err != nil {
		t.Fatalf("journal: %v", err)
	}

	m.Start()
	s := sacred(t, dir, env, "sync", journal)
	if s.code != 0 {
		t.Fatalf("sync: exit %d\nstdout: %s\nstderr: %s", s.code, s.stdout, s.stderr)
	}
	if !strings.Contains(s.stdout, "(run 1 there) is recorded in MongoDB") || !strings.Contains(s.stdout, "removed") {
		t.Errorf("sync said: %s%s", s.stdout, s.stderr)
	}
	if _, err := os.Stat(journal); !os.IsNotExist(err) {
		t.Errorf("the journal of a recorded run is still there: %v", err)
	}
	checkQueueRun(t, readRun(t, "mongo_db", spec, "1"), r.stdout, observer.StatusFailed)

	// Nothing is sent twice: a second sync finds nothing to do.
	s = sacred(t, dir, env, "sync")
	if s.code != 0 || !strings.Contains(s.stderr, "no journals to replay") {
		t.Errorf("second sync: exit %d %s%s", s.code, s.stdout, s.stderr)
	}
	if ids := runIDs(t, "mongo_db", spec); len(ids) != 1 {
		t.Errorf("runs %v, want one", ids)
	}
}

// mkfifo makes a FIFO, a gate between the test and the command.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

// MongoDB stopped and started again while the run goes on: the record is
// complete at the end, nothing lost, order kept, no point twice.
func TestQueueMongoRestartedMidRun(t *testing.T) {
	m := testserver.FerretDB(t)
	spec := mongoSpec(t, m.URI())
	dir := t.TempDir()
	// The command stops at two gates (FIFOs it reads from) and says where
	// it is through two others; the test stops and starts the server
	// between them.
	for _, f := range []string{"at1", "go1", "at2", "go2"} {
		mkfifo(t, filepath.Join(dir, f))
	}
	script := `set -e
phase() {
  i=$1
  while [ $i -lt $2 ]; do
    echo "epoch $i"
    sacred log metric loss $((100 - i)) --step $i
    i=$((i + 1))
  done
}
phase 0 10
echo 1 > at1; read x < go1
phase 10 25
echo weights > model.txt
sacred log artifact model.txt
echo 2 > at2; read x < go2
phase 25 40
printf 'no newline at the end'
`
	if err := os.WriteFile(filepath.Join(dir, "train.sh"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--journal", "--flush-timeout", "60s", "-b", "0.2", "-m", spec, "--", "sh", "train.sh")
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), journalEnv(t)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	gate := func(at, goOn string, between func()) {
		b, err := os.ReadFile(filepath.Join(dir, at))
		if err != nil || len(b) == 0 {
			t.Fatalf("waiting for %s: %v", at, err)
		}
		between()
		if err := os.WriteFile(filepath.Join(dir, goOn), []byte("go\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gate("at1", "go1", m.Stop)
	gate("at2", "go2", m.Start)
	err := cmd.Wait()
	if err != nil {
		t.Fatalf("sacred run: %v\nstderr: %s", err, errb.String())
	}
	if strings.Contains(errb.String(), "sacred sync") {
		t.Errorf("the store came back before the end, yet events are left:\n%s", errb.String())
	}
	checkQueueRun(t, readRun(t, "mongo_db", spec, "1"), out.String(), observer.StatusCompleted)
	if ids := runIDs(t, "mongo_db", spec); len(ids) != 1 {
		t.Errorf("runs %v, want one", ids)
	}
}

// An event that can never succeed: the artifact's place in the run
// directory is taken by a directory, so file storage refuses it every
// time. With a deadline too short for the retries, the wrapper exits with
// the command's status within it and says what the journal keeps; with
// time enough, the event goes to the dead-letter file with one warning
// and the rest of the run is recorded.
func TestQueueEventThatNeverSucceeds(t *testing.T) {
	script := `mkdir -p runs/$SACRED_RUN_ID/model.txt
echo weights > model.txt
sacred log artifact model.txt
echo done
exit 5
`
	for _, c := range []struct {
		name, flush string
		dead        bool
	}{{"deadline", "1s", false}, {"dead-letter", "60s", true}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "never.sh"), []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			env := journalEnv(t)
			r := sacred(t, dir, env, "run", "--journal=file_storage", "--flush-timeout", c.flush, "-F", "runs", "--", "sh", "never.sh")
			if r.code != 5 {
				t.Fatalf("exit %d, want the command's 5\nstderr: %s", r.code, r.stderr)
			}
			run := readJSON(t, filepath.Join(dir, "runs", "1", "run.json"))
			if !c.dead {
				replayCommand(t, r.stderr)
				if !strings.Contains(r.stderr, "artifact model.txt") {
					t.Errorf("stderr does not name the event that fails: %s", r.stderr)
				}
				return
			}
			if n := strings.Count(r.stderr, "will never take artifact model.txt"); n != 1 {
				t.Errorf("%d warnings about the refused artifact, want 1:\n%s", n, r.stderr)
			}
			wantStatus(t, run, observer.StatusFailed)
			deads, _ := filepath.Glob(filepath.Join(strings.TrimPrefix(env[1], "XDG_STATE_HOME="), "sacred", "queue", "*.dead"))
			if len(deads) != 1 {
				t.Fatalf("dead-letter files %v", deads)
			}
			if b := readFile(t, deads[0]); !strings.Contains(b, `"event":"artifact model.txt"`) {
				t.Errorf("dead letters: %s", b)
			}
		})
	}
}

// A journal cut short by a crash: sync replays every whole record and
// says that the tail was torn.
func TestQueueTornJournal(t *testing.T) {
	m := testserver.FerretDB(t)
	spec := mongoSpec(t, m.URI())
	m.Stop()
	dir := t.TempDir()
	writeScript(t, dir)
	env := journalEnv(t)
	r := sacred(t, dir, env, "run", "--journal", "--flush-timeout", "1s", "-m", spec, "--", "sh", "train.sh", "0")
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
	}
	journal := replayCommand(t, r.stderr)
	fi, err := os.Stat(journal)
	if err != nil {
		t.Fatal(err)
	}
	// The final event is the last record: a crash while it was written
	// leaves part of it.
	if err := os.Truncate(journal, fi.Size()-3); err != nil {
		t.Fatal(err)
	}
	m.Start()
	s := sacred(t, dir, env, "sync", journal)
	if s.code != 0 {
		t.Fatalf("sync: exit %d\n%s%s", s.code, s.stdout, s.stderr)
	}
	if !strings.Contains(s.stderr, "are a record cut short") || !strings.Contains(s.stdout, "the journal has no end") {
		t.Errorf("sync said: %s%s", s.stdout, s.stderr)
	}
	run := readRun(t, "mongo_db", spec, "1")
	checkQueueRun(t, run, r.stdout, observer.StatusRunning)
}

// Two syncs of one journal at once: the run is recorded once, every point
// once.
func TestQueueTwoSyncsAtOnce(t *testing.T) {
	m := testserver.FerretDB(t)
	spec := mongoSpec(t, m.URI())
	m.Stop()
	dir := t.TempDir()
	writeScript(t, dir)
	env := journalEnv(t)
	r := sacred(t, dir, env, "run", "--journal", "--flush-timeout", "1s", "-m", spec, "--", "sh", "train.sh", "0")
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
	}
	journal := replayCommand(t, r.stderr)
	m.Start()
	var wg sync.WaitGroup
	res := make([]result, 2)
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = sacred(t, dir, env, "sync", journal)
		}()
	}
	wg.Wait()
	recorded := 0
	for _, s := range res {
		if s.code != 0 {
			t.Errorf("sync: exit %d\n%s%s", s.code, s.stdout, s.stderr)
		}
		if strings.Contains(s.stdout, "is recorded in MongoDB") {
			recorded++
		} else if !strings.Contains(s.stderr, "in use by another sacred") && !strings.Contains(s.stderr, "already replayed") {
			t.Errorf("sync said neither recorded nor busy: %s%s", s.stdout, s.stderr)
		}
	}
	if recorded != 1 {
		t.Errorf("%d syncs recorded the run, want 1", recorded)
	}
	if ids := runIDs(t, "mongo_db", spec); len(ids) != 1 {
		t.Fatalf("runs %v, want one", ids)
	}
	checkQueueRun(t, readRun(t, "mongo_db", spec, "1"), r.stdout, observer.StatusCompleted)
}

// SQLite through the queue: the run is recorded as without it, and the
// journal is gone.
func TestQueueSQLite(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, dir)
	url := "sqlite:///" + filepath.Join(t.TempDir(), "runs.db")
	env := journalEnv(t)
	r := sacred(t, dir, env, "run", "--journal", "-b", "0.2", "-s", url, "--", "sh", "train.sh", "0")
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "sacred sync") {
		t.Errorf("stderr: %s", r.stderr)
	}
	ids := runIDs(t, "sql", url)
	if len(ids) != 1 {
		t.Fatalf("runs %v", ids)
	}
	checkQueueRun(t, readRun(t, "sql", url, ids[0]), r.stdout, observer.StatusCompleted)
	left, _ := filepath.Glob(filepath.Join(strings.TrimPrefix(env[1], "XDG_STATE_HOME="), "sacred", "queue", "*.journal"))
	if len(left) != 0 {
		t.Errorf("journals left: %v", left)
	}
}

// sacred sync -F runs ID -s URL copies a finished run into another store.
func TestSyncCopiesARunBetweenStores(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, dir)
	r := sacred(t, dir, []string{pathWithSacred()}, "run", "-F", "runs", "--", "sh", "train.sh", "0")
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
	}
	url := "sqlite:///" + filepath.Join(t.TempDir(), "copy.db")
	s := sacred(t, dir, nil, "sync", "-F", "runs", "1", "-s", url)
	if s.code != 0 || !strings.Contains(s.stdout, "copied run 1 of file storage runs into SQL") {
		t.Fatalf("sync: exit %d\n%s%s", s.code, s.stdout, s.stderr)
	}
	ids := runIDs(t, "sql", url)
	if len(ids) != 1 {
		t.Fatalf("runs %v", ids)
	}
	checkQueueRun(t, readRun(t, "sql", url, ids[0]), r.stdout, observer.StatusCompleted)
	s = sacred(t, dir, nil, "sync", "-F", "runs", "9", "-s", url)
	if s.code != 1 || !strings.Contains(s.stderr, "run 9 is not in file storage runs") {
		t.Errorf("copy of a run that does not exist: exit %d %s", s.code, s.stderr)
	}
}

// Bad sync invocations get one clear line and exit 2.
func TestSyncBadInvocations(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sync", "-F", "runs", "1"}, "no store to copy run 1 into"},
		{[]string{"sync", "-F", "a", "-F", "b", "1", "-s", "sqlite:///x.db"}, "copy from one store at a time"},
		{[]string{"sync", "x.journal", "-F", "runs", "extra"}, `"extra" after the flags`},
		{[]string{"sync", "--bogus"}, "unknown flag: --bogus"},
	} {
		r := sacred(t, dir, nil, c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
	r := sacred(t, dir, nil, "run", "--journal=bogus", "--", "true")
	if r.code != 2 || !strings.Contains(r.stderr, `"bogus" is no observer`) {
		t.Errorf("--journal=bogus: exit %d %s", r.code, r.stderr)
	}
}
