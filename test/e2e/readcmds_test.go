package e2e

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sacred-go/sacred/internal/testserver"
)

// readTrainScript is the child of the read-back tests: it logs three
// points of a metric, an info key, a resource, an artifact and a result,
// prints a few lines, and exits with $EXIT.
const readTrainScript = `set -e
echo "epoch 1"
sacred log metric loss "$LOSS0" --step 0
sacred log metric loss 0.5 --step 1
sacred log metric loss "$LOSS2" --step 2
sacred log metric acc 0.75
sacred log info tag '"read-back"'
sacred log resource data.txt
printf 'weights of %s\n' "$LOSS2" > model.txt
sacred log artifact model.txt
sacred log result "$RESULT"
echo "done"
exit "${EXIT:-0}"
`

// recordedRun is one run the read-back tests record, and what they expect to
// read back.
type recordedRun struct {
	lr           float64
	loss0, loss2 float64
	result       float64
	exit         int
}

var recordedRuns = []recordedRun{
	{lr: 0.1, loss0: 2, loss2: 0.25, result: 0.9},
	{lr: 0.01, loss0: 3, loss2: 0.125, result: 0.95},
	{lr: 0.3, loss0: 1, loss2: 0.75, result: 0.5, exit: 3},
}

// readStores names, for each store, the flags that select a fresh store.
func readStores(t *testing.T, dir string) map[string][]string {
	t.Helper()
	stores := map[string][]string{
		"file":   {"-F", filepath.Join(dir, "runs")},
		"tinydb": {"-t", filepath.Join(dir, "tiny")},
	}
	for name, url := range sqlURLs(t) {
		stores["sql-"+name] = []string{"-s", url}
	}
	uri := testserver.MongoURI(t)
	base := strings.TrimSuffix(strings.SplitN(uri, "?", 2)[0], "/")
	sum := md5.Sum([]byte(dir))
	db := "readcmds_" + hex.EncodeToString(sum[:6])
	stores["mongo"] = []string{"-m", base + "/" + db}
	t.Cleanup(func() {
		c, err := mongodrv.Connect(options.Client().ApplyURI(base + "/"))
		if err != nil {
			return
		}
		defer c.Disconnect(context.Background())
		_ = c.Database(db).Drop(context.Background())
	})
	return stores
}

// recordReadRuns records recordedRuns into a store through the binary.
func recordReadRuns(t *testing.T, dir string, store []string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "train.sh"), []byte(readTrainScript), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data.txt"), []byte("the data set\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, rr := range recordedRuns {
		args := append([]string{"run", "-n", "reader"}, store...)
		args = append(args, "with", fmt.Sprintf("lr=%g", rr.lr), "opt=sgd", "--", "sh", "train.sh")
		env := []string{pathWithSacred(), fmt.Sprintf("LOSS0=%g", rr.loss0), fmt.Sprintf("LOSS2=%g", rr.loss2),
			fmt.Sprintf("RESULT=%g", rr.result), fmt.Sprintf("EXIT=%d", rr.exit)}
		r := sacred(t, dir, env, args...)
		if r.code != rr.exit {
			t.Fatalf("sacred %v: exit %d, want %d\nstderr: %s", args, r.code, rr.exit, r.stderr)
		}
	}
}

// parseJSONLines parses JSON lines from a string.
func parseJSONLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, l)
		}
		out = append(out, m)
	}
	return out
}

func oneLineError(t *testing.T, what string, r result) {
	t.Helper()
	if r.code != 1 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "sacred: ") {
		t.Errorf("%s: exit %d, want 1 and one line on stderr, nothing on stdout\nstdout: %q\nstderr: %q", what, r.code, r.stdout, r.stderr)
	}
}

// snapshot lists every file under dir with its size and modification
// time, to show that reading wrote nothing.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		m[p] = fmt.Sprintf("%d %s %v", fi.Size(), fi.ModTime(), fi.Mode())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestReadCommandsRoundTrip records runs through the binary into every
// store and reads them back with ls, show, files and compare: what run
// wrote must come back exactly.
func TestReadCommandsRoundTrip(t *testing.T) {
	top := t.TempDir()
	stores := readStores(t, top)
	names := make([]string, 0, len(stores))
	for n := range stores {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		store := stores[name]
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(top, name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			recordReadRuns(t, dir, store)
			var before map[string]string
			if name == "file" || name == "tinydb" {
				before = snapshot(t, store[1])
			}
			checkLs(t, dir, store)
			ids := lsIDs(t, dir, store)
			checkShow(t, dir, store, ids)
			checkFiles(t, dir, store, ids)
			checkCompare(t, dir, store, ids)
			checkBadInput(t, dir, store, ids)
			if before != nil && !reflect.DeepEqual(before, snapshot(t, store[1])) {
				t.Errorf("reading changed the store %s", store[1])
			}
		})
	}
}

func lsIDs(t *testing.T, dir string, store []string) []string {
	t.Helper()
	r := sacred(t, dir, nil, append([]string{"ls", "--json"}, store...)...)
	var ids []string
	for _, m := range parseJSONLines(t, r.stdout) {
		ids = append(ids, m["id"].(string))
	}
	if len(ids) != len(recordedRuns) {
		t.Fatalf("ls --json: %d runs, want %d:\n%s%s", len(ids), len(recordedRuns), r.stdout, r.stderr)
	}
	return ids
}

func checkLs(t *testing.T, dir string, store []string) {
	r := sacred(t, dir, nil, append([]string{"ls", "--json", "--columns", "config.lr,metrics.loss.last,metrics.loss.min,info.tag"}, store...)...)
	if r.code != 0 {
		t.Fatalf("ls: exit %d: %s", r.code, r.stderr)
	}
	lines := parseJSONLines(t, r.stdout)
	if len(lines) != len(recordedRuns) {
		t.Fatalf("ls: %d lines, want %d:\n%s", len(lines), len(recordedRuns), r.stdout)
	}
	for i, m := range lines {
		rr := recordedRuns[i]
		status := "COMPLETED"
		if rr.exit != 0 {
			status = "FAILED"
		}
		want := map[string]any{"name": "reader", "status": status, "result": rr.result, "config.lr": rr.lr,
			"metrics.loss.last": rr.loss2, "metrics.loss.min": min(rr.loss0, 0.5, rr.loss2), "info.tag": "read-back"}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("ls run %d: %s = %v, want %v\n%v", i, k, m[k], v, m)
			}
		}
		if d, ok := m["duration"].(float64); !ok || d < 0 {
			t.Errorf("ls run %d: duration %v", i, m["duration"])
		}
	}

	// Pushed-down selections: where, status, sort, last.
	for _, tc := range []struct {
		args []string
		want []float64 // lr of the runs, in order
	}{
		{[]string{"--where", "config.lr > 0.05"}, []float64{0.1, 0.3}},
		{[]string{"--where", `config.opt == "sgd" && result >= 0.9`}, []float64{0.1, 0.01}},
		{[]string{"--status", "failed"}, []float64{0.3}},
		{[]string{"--sort", "-result"}, []float64{0.01, 0.1, 0.3}},
		{[]string{"--sort", "metrics.loss.last", "--last", "2"}, []float64{0.01, 0.3}},
		{[]string{"--index", "0,-1"}, []float64{0.1, 0.3}},
		{[]string{"--name", "^read"}, []float64{0.1, 0.01, 0.3}},
		{[]string{"--where", "config.no_such_key > 1"}, nil},
		{[]string{"--where", "confg.lr > 1"}, nil},
	} {
		args := append(append([]string{"ls", "--json", "--columns", "config.lr"}, tc.args...), store...)
		r := sacred(t, dir, nil, args...)
		if r.code != 0 {
			t.Errorf("ls %v: exit %d: %s", tc.args, r.code, r.stderr)
			continue
		}
		var got []float64
		for _, m := range parseJSONLines(t, r.stdout) {
			got = append(got, m["config.lr"].(float64))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ls %v: lr %v, want %v", tc.args, got, tc.want)
		}
	}

	// Piped: tab-separated with a header; CSV.
	r = sacred(t, dir, nil, append([]string{"ls", "--columns", "config.lr"}, store...)...)
	lines2 := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines2) != 4 || lines2[0] != "id\tname\tstatus\tstart\tduration\tresult\tconfig.lr" {
		t.Errorf("ls piped: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	} else if f := strings.Split(lines2[3], "\t"); len(f) != 7 || f[1] != "reader" || f[2] != "FAILED" || f[5] != "0.5" || f[6] != "0.3" {
		t.Errorf("ls piped: last line %q", lines2[3])
	}
	r = sacred(t, dir, nil, append([]string{"ls", "--csv"}, store...)...)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "id,name,status,start,duration,result\n") || strings.Count(r.stdout, "\n") != 4 {
		t.Errorf("ls --csv: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func checkShow(t *testing.T, dir string, store []string, ids []string) {
	for i, id := range ids {
		rr := recordedRuns[i]
		r := sacred(t, dir, nil, append([]string{"show", id, "--json"}, store...)...)
		if r.code != 0 {
			t.Fatalf("show %s --json: exit %d: %s", id, r.code, r.stderr)
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil {
			t.Fatalf("show --json: %v\n%s", err, r.stdout)
		}
		cfg, _ := rec["config"].(map[string]any)
		if cfg["lr"] != rr.lr || cfg["opt"] != "sgd" {
			t.Errorf("show %s: config %v", id, cfg)
		}
		if rec["result"] != rr.result || rec["id"] != id {
			t.Errorf("show %s: result %v id %v", id, rec["result"], rec["id"])
		}
		loss := rec["metrics"].(map[string]any)["loss"].(map[string]any)
		if !reflect.DeepEqual(loss["values"], []any{rr.loss0, 0.5, rr.loss2}) || !reflect.DeepEqual(loss["steps"], []any{0.0, 1.0, 2.0}) {
			t.Errorf("show %s: loss %v", id, loss)
		}
		if arts := rec["artifacts"]; !reflect.DeepEqual(arts, []any{"model.txt"}) {
			t.Errorf("show %s: artifacts %v", id, arts)
		}
		res, _ := rec["resources"].([]any)
		if len(res) != 1 || res[0].(map[string]any)["path"] != filepath.Join(dir, "data.txt") {
			t.Errorf("show %s: resources %v", id, res)
		}
		srcs, _ := rec["experiment"].(map[string]any)["sources"].([]any)
		if len(srcs) != 1 || srcs[0].(map[string]any)["name"] != "train.sh" {
			t.Errorf("show %s: sources %v", id, srcs)
		}
		if out, _ := rec["captured_out"].(string); !strings.HasPrefix(out, "epoch 1\n") || !strings.Contains(out, "done\n") {
			t.Errorf("show %s: captured_out %q", id, out)
		}
		if info, _ := rec["info"].(map[string]any); info["tag"] != "read-back" {
			t.Errorf("show %s: info %v", id, rec["info"])
		}
	}

	// The report: the seed's layout, plus status, trace and output.
	r := sacred(t, dir, nil, append([]string{"show", "-1"}, store...)...)
	for _, want := range []string{
		"\n-------------------------------------------------\nExperiment: reader\n-------------------------------------------------\nID: " + ids[2] + "\nDate: ",
		"Status: FAILED\n", "\nParameters:\n    lr: 0.3\n    opt: sgd\n", "\nResult:\n    0.5\n",
		"\nResources:\n    " + filepath.Join(dir, "data.txt") + "\n", "\nSource Files:\n    train.sh\n",
		"\nOutputs:\n    model.txt\n", "    loss: 0.75 (step 2; min 0.5, max 1; 3 points)\n", "\nFail Trace:\n",
		"\nOutput:\n    epoch 1\n    done\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show -1: no %q in\n%s", want, r.stdout)
		}
	}
}

func checkFiles(t *testing.T, dir string, store []string, ids []string) {
	id := ids[1]
	r := sacred(t, dir, nil, append([]string{"files", id}, store...)...)
	sum := func(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
	script := readFile(t, filepath.Join(dir, "train.sh"))
	for _, want := range []string{"kind\tname\tmd5\n", "source\ttrain.sh\t" + sum(script) + "\n",
		"resource\t" + filepath.Join(dir, "data.txt") + "\t" + sum("the data set\n") + "\n", "artifact\tmodel.txt\t\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("files %s: no %q in\n%s%s", id, want, r.stdout, r.stderr)
		}
	}
	r = sacred(t, dir, nil, append([]string{"files", id, "model.txt"}, store...)...)
	if r.code != 0 || r.stdout != "weights of 0.125\n" {
		t.Errorf("files %s model.txt: exit %d %q %s", id, r.code, r.stdout, r.stderr)
	}
	out := filepath.Join(dir, "restored")
	r = sacred(t, dir, nil, append([]string{"files", id, "--out", out}, store...)...)
	if r.code != 0 {
		t.Fatalf("files --out: exit %d: %s", r.code, r.stderr)
	}
	for name, want := range map[string]string{"train.sh": script, "data.txt": "the data set\n", "model.txt": "weights of 0.125\n"} {
		if got := readFile(t, filepath.Join(out, name)); got != want {
			t.Errorf("files --out: %s = %q, want %q", name, got, want)
		}
	}
	// Never overwritten silently; nothing written when one is refused.
	os.WriteFile(filepath.Join(out, "model.txt"), []byte("mine"), 0o644)
	os.Remove(filepath.Join(out, "train.sh"))
	r = sacred(t, dir, nil, append([]string{"files", id, "--out", out}, store...)...)
	oneLineError(t, "files --out over an existing file", r)
	if readFile(t, filepath.Join(out, "model.txt")) != "mine" {
		t.Error("files --out replaced an existing file")
	}
	if _, err := os.Stat(filepath.Join(out, "train.sh")); err == nil {
		t.Error("files --out wrote a file although another was refused")
	}
	r = sacred(t, dir, nil, append([]string{"files", id, "model.txt", "--out", out, "--force"}, store...)...)
	if r.code != 0 || readFile(t, filepath.Join(out, "model.txt")) != "weights of 0.125\n" {
		t.Errorf("files --force: exit %d %s", r.code, r.stderr)
	}
}

func checkCompare(t *testing.T, dir string, store []string, ids []string) {
	r := sacred(t, dir, nil, append([]string{"compare", ids[0], "-1", "--json"}, store...)...)
	if r.code != 0 {
		t.Fatalf("compare: exit %d: %s", r.code, r.stderr)
	}
	var c map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
		t.Fatalf("compare --json: %v\n%s", err, r.stdout)
	}
	cfg := c["config"].(map[string]any)
	if !reflect.DeepEqual(cfg["lr"], []any{0.1, 0.3}) || cfg["opt"] != nil {
		t.Errorf("compare config %v (opt is equal and must be left out)", cfg)
	}
	loss := c["metrics"].(map[string]any)["loss"].(map[string]any)
	if !reflect.DeepEqual(loss["last"], []any{0.25, 0.75}) || !reflect.DeepEqual(loss["min"], []any{0.25, 0.5}) || !reflect.DeepEqual(loss["max"], []any{2.0, 1.0}) {
		t.Errorf("compare loss %v", loss)
	}
	runs := c["runs"].([]any)
	if runs[0].(map[string]any)["result"] != 0.9 || runs[1].(map[string]any)["status"] != "FAILED" {
		t.Errorf("compare runs %v", runs)
	}
	r = sacred(t, dir, nil, append([]string{"compare", "-3", "-2"}, store...)...)
	if !strings.Contains(r.stdout, "\nconfig.lr\t0.1\t0.01\n") || !strings.Contains(r.stdout, "\nmetrics.loss.last\t0.25\t0.125\n") {
		t.Errorf("compare piped:\n%s%s", r.stdout, r.stderr)
	}
}

func checkBadInput(t *testing.T, dir string, store []string, ids []string) {
	for _, tc := range []struct {
		args    []string
		mention string
	}{
		{[]string{"show", "no-such-run"}, `no run "no-such-run"`},
		{[]string{"show", "-4"}, "index -4 reaches before the first of the 3 runs"},
		{[]string{"ls", "--index", "3"}, "index 3 must be less than the number of runs (3)"},
		{[]string{"ls", "--where", "config.lr >> 1"}, "--where: line 1, column 12:"},
		{[]string{"files", ids[0], "nothing.txt"}, `has no file "nothing.txt"`},
		{[]string{"compare", ids[0], "999999"}, `no run "999999"`},
	} {
		r := sacred(t, dir, nil, append(tc.args, store...)...)
		oneLineError(t, strings.Join(tc.args, " "), r)
		if !strings.Contains(r.stderr, tc.mention) {
			t.Errorf("%v: %q does not mention %q", tc.args, r.stderr, tc.mention)
		}
	}
}

// TestReadCommandsCorruptStore: a store whose records cannot be read is
// one clear line and exit 1, and reading it writes nothing.
func TestReadCommandsCorruptStore(t *testing.T) {
	dir := t.TempDir()
	recordReadRuns(t, dir, []string{"-F", "runs", "-t", "tiny"})
	os.WriteFile(filepath.Join(dir, "runs", "2", "run.json"), []byte(`{"status": "COMPL`), 0o644)
	meta := filepath.Join(dir, "tiny", "metadata.json")
	b, _ := os.ReadFile(meta)
	os.WriteFile(meta, b[:len(b)/2], 0o644)
	before := snapshot(t, dir)
	for _, args := range [][]string{{"ls"}, {"ls", "-t", "tiny"}, {"show", "-1", "-t", "tiny"}, {"show", "2"}, {"compare", "1", "2"}} {
		r := sacred(t, dir, nil, args...)
		oneLineError(t, strings.Join(args, " "), r)
	}
	if !reflect.DeepEqual(before, snapshot(t, dir)) {
		t.Error("reading a corrupt store changed it")
	}
	// Runs still readable are shown.
	if r := sacred(t, dir, nil, "show", "3"); r.code != 0 || !strings.Contains(r.stdout, "ID: 3\n") {
		t.Errorf("show 3: exit %d %s", r.code, r.stderr)
	}
}

// TestReadCommandsStores: several stores at once get a store column;
// without a flag ./runs is read, or the store sacred.yaml names; a
// missing default store is one clear line.
func TestReadCommandsStores(t *testing.T) {
	dir := t.TempDir()
	if r := sacred(t, dir, nil, "ls"); r.code != 1 || !strings.Contains(r.stderr, "./runs does not exist") {
		t.Errorf("ls without a store: exit %d %q", r.code, r.stderr)
	}
	recordReadRuns(t, dir, []string{"-F", "runs", "-t", "tiny"})
	r := sacred(t, dir, nil, "ls", "--json")
	if len(parseJSONLines(t, r.stdout)) != 3 {
		t.Errorf("ls (./runs): %s%s", r.stdout, r.stderr)
	}
	r = sacred(t, dir, nil, "ls", "-F", "runs", "-t", "tiny", "--where", "config.lr > 0.05")
	want := "store\tid\tname\tstatus\tstart\tduration\tresult\n"
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if !strings.HasPrefix(r.stdout, want) || len(lines) != 5 || !strings.HasPrefix(lines[1], "runs\t1\t") || !strings.HasPrefix(lines[3], "tiny\t1\t") {
		t.Errorf("ls two stores:\n%s%s", r.stdout, r.stderr)
	}
	os.WriteFile(filepath.Join(dir, "sacred.yaml"), []byte("tiny_db: tiny\nbeat_interval: 5\n"), 0o644)
	r = sacred(t, dir, nil, "ls")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 4 || strings.Contains(r.stdout, "store\t") {
		t.Errorf("ls (sacred.yaml): exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = sacred(t, dir, []string{"SACRED_FILE_STORAGE=runs"}, "ls", "--json")
	if r.code != 0 || len(parseJSONLines(t, r.stdout)) != 6 {
		t.Errorf("ls (sacred.yaml and SACRED_FILE_STORAGE): exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
