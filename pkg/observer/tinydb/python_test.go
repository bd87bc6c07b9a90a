package tinydb

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/internal/testutil"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// tricky writes runs whose documents exercise the encoder: unicode,
// control characters, floats Python writes in exponent form, NaN, big
// integers, an output that is cut (head, marker, tail), one that is not
// UTF-8, a queued run and a failed one.
func tricky(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	recordRun(t, dir)

	o := newObserver(t, dir)
	o.outputHead, o.outputTail = 64, 128
	ev := observertest.StartEvent()
	ev.Config["floats"] = []any{1e-05, 1e16, math.Copysign(0, -1), 1.5e300, 100.0}
	ev.Config["big"] = json.Number("123456789012345678901234567890")
	ev.Config["ctl"] = "\x00\x1f\x7f\u2028 é 😀"
	if _, err := o.Started(ctx, ev); err != nil {
		t.Fatal(err)
	}
	b := observertest.NewBeats()
	b.Out.Append(bytes.Repeat([]byte("0123456789 é\n"), 50))
	b.Out.Append([]byte("\xff raw \xfe\n"))
	hb := b.Next(ev.Time.Add(time.Second), map[string]any{"nan": math.NaN(), "nested": map[string]any{"x": []any{1, 2.5, nil, true}}})
	hb.Final = true
	if err := o.Heartbeat(ctx, hb); err != nil {
		t.Fatal(err)
	}
	if err := o.Failed(ctx, &observer.FailedEvent{StopTime: ev.Time.Add(2 * time.Second), Trace: []string{"exit status 1\n", "boom ✗\n"}}); err != nil {
		t.Fatal(err)
	}
	o.Close(ctx)

	q := newObserver(t, dir)
	qev := observertest.StartEvent()
	qev.Host = nil
	qt := qev.Time
	qev.Meta.QueueTime = &qt
	if _, err := q.Queued(ctx, qev); err != nil {
		t.Fatal(err)
	}
	q.Close(ctx)
}

// TestPythonJSONDumpsIdentical checks the bytes against Python itself:
// json.dumps(json.loads(file)) gives the file back, as it does for a file
// TinyDB wrote. Needs python3 (standard library only).
func TestPythonJSONDumpsIdentical(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	dir := filepath.Join(t.TempDir(), "tiny")
	tricky(t, dir)
	script := `import json, sys
raw = open(sys.argv[1], encoding="utf-8").read()
again = json.dumps(json.loads(raw))
if again != raw:
    i = next(i for i in range(min(len(raw), len(again))) if raw[i] != again[i])
    print("differs at", i, repr(raw[i-40:i+40]), repr(again[i-40:i+40]))
    sys.exit(1)
`
	out, err := exec.Command(py, "-c", script, filepath.Join(dir, MetadataFile)).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

// TestPythonSacredInterop runs Python Sacred's own TinyDbReader and
// TinyDbObserver on a store we wrote: the reader opens it (reports, files,
// metadata, our metrics as datetimes) and the observer appends a run that
// keeps our documents' bytes and that our reader reads. It needs a Python
// that imports sacred, tinydb 4, tinydb-serialization and hashfs:
// SACRED_TEST_PYSACRED names that interpreter (or a wrapper script).
func TestPythonSacredInterop(t *testing.T) {
	py := os.Getenv("SACRED_TEST_PYSACRED")
	if py == "" {
		t.Skip("set SACRED_TEST_PYSACRED to a Python that imports sacred.observers.tinydb_hashfs")
	}
	dir := filepath.Join(t.TempDir(), "tiny")
	tricky(t, dir)
	before, err := os.ReadFile(filepath.Join(dir, MetadataFile))
	if err != nil {
		t.Fatal(err)
	}
	script := `import datetime, json, sys
from sacred.observers.tinydb_hashfs import TinyDbReader, TinyDbObserver
r = TinyDbReader(sys.argv[1])
out = {"n": len(r.runs)}
out["report"] = r.fetch_report(indices=0)[0]
files = r.fetch_files(indices=[0, 1, 2])
out["artifact"] = files[0]["artifacts"]["model.txt"].read().decode()
out["sources"] = sorted(files[0]["sources"])
out["dates"] = [str(f["date"]) for f in files]
m = r.fetch_metadata(indices=[0, 1, 2])
out["metric_ts"] = type(m[0]["metrics"]["loss"]["timestamps"][0]).__name__
out["status"] = [e["status"] for e in m]
out["queue_time"] = type(m[2]["meta"]["queue_time"]).__name__
out["by_name"] = len(r.fetch_metadata(exp_name="^tra"))
o = TinyDbObserver(sys.argv[1])
t = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901)
ex = {"name": "py", "base_dir": sys.argv[1], "sources": [], "dependencies": [], "repositories": [], "mainfile": None}
out["py_id"] = o.started_event(ex, "main", {"hostname": "h"}, t, {"a": 1}, {"command": "main"}, None)
o.heartbeat_event({"k": 1}, "python output\n", t, None)
o.completed_event(t, 2)
print(json.dumps(out))
`
	stdout := runPython(t, py, script, dir)
	var got struct {
		N         int      `json:"n"`
		Report    string   `json:"report"`
		Artifact  string   `json:"artifact"`
		Sources   []string `json:"sources"`
		Dates     []string `json:"dates"`
		MetricTS  string   `json:"metric_ts"`
		Status    []string `json:"status"`
		QueueTime string   `json:"queue_time"`
		ByName    int      `json:"by_name"`
		PyID      string   `json:"py_id"`
	}
	if err := json.Unmarshal(stdout, &got); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if got.N != 3 || got.Artifact != "weights: 1 2 3\n" || strings.Join(got.Sources, ",") != "helpers/util.py,train.py" ||
		got.MetricTS != "datetime" || strings.Join(got.Status, ",") != "COMPLETED,FAILED,QUEUED" || got.QueueTime != "datetime" ||
		got.ByName != 3 || got.Dates[2] != "None" {
		t.Errorf("python read: %+v", got)
	}
	if !strings.Contains(got.Report, "Experiment: train") || !strings.Contains(got.Report, "Duration: 00:00:02.0") || !strings.Contains(got.Report, "model.txt") {
		t.Errorf("report:\n%s", got.Report)
	}
	after, err := os.ReadFile(filepath.Join(dir, MetadataFile))
	if err != nil {
		t.Fatal(err)
	}
	oldDocs, _ := docsOf(t, before)
	newDocs, keys := docsOf(t, after)
	if len(keys) != 4 || keys[3] != "4" {
		t.Fatalf("doc ids after python's run: %v", keys)
	}
	for k, b := range oldDocs {
		if !bytes.Equal(newDocs[k], b) {
			t.Errorf("python rewrote our document %s differently:\n%s\n%s", k, b, newDocs[k])
		}
	}
	run, err := openReader(t, dir).Run(context.Background(), got.PyID)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != observer.StatusCompleted || string(run.Output) != "python output\n" || run.Result != int64(2) ||
		!run.StartTime.Equal(time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC)) {
		t.Errorf("python's run read back: %+v", run)
	}
	// And we append after Python wrote.
	recordRun(t, dir)
	ids, _ := openReader(t, dir).Runs(context.Background())
	if len(ids) != 5 {
		t.Errorf("runs after appending again: %v", ids)
	}
}

// TestPythonTinyDBReadsStore opens a store we wrote with TinyDB itself
// (the Python package Sacred's TinyDbReader is built on): the runs table
// has our documents under their ids, every {TinyDate}: value decodes as
// tinydb-serialization's DateTimeSerializer decodes it, and every
// {TinyFile}: value names a hashfs file (depth 3, width 2) whose md5 is
// its id, as Sacred's FileSerializer and hashfs find them.
func TestPythonTinyDBReadsStore(t *testing.T) {
	py := testutil.PythonWith(t, "import tinydb", "python3-tinydb")
	dir := filepath.Join(t.TempDir(), "tiny")
	tricky(t, dir)
	script := `import datetime, hashlib, json, os, sys
from tinydb import TinyDB
root = sys.argv[1]
db = TinyDB(os.path.join(root, "metadata.json"))
docs = {d.doc_id: d for d in db.table("runs").all()}
out = {"ids": sorted(docs), "status": [docs[i]["status"] for i in sorted(docs)], "dates": 0, "files": {}}
def walk(v):
    if isinstance(v, dict):
        for x in v.values(): walk(x)
    elif isinstance(v, list):
        for x in v: walk(x)
    elif isinstance(v, str) and v.startswith("{TinyDate}:"):
        datetime.datetime.strptime(v[len("{TinyDate}:"):], "%Y-%m-%dT%H:%M:%S.%f")
        out["dates"] += 1
    elif isinstance(v, str) and v.startswith("{TinyFile}:"):
        h = json.loads(v[len("{TinyFile}:"):])
        p = os.path.join(root, "hashfs", h[0:2], h[2:4], h[4:6], h[6:])
        data = open(p, "rb").read()
        assert hashlib.md5(data).hexdigest() == h, (p, h)
        out["files"][h] = data.decode("utf-8", "replace")
for d in docs.values(): walk(d)
first = docs[1]
out["artifacts"] = [a[0] for a in first["artifacts"]]
out["sources"] = sorted(s[0] for s in first["experiment"]["sources"])
out["artifact"] = out["files"].get(first["artifacts"][0][2], "") if first["artifacts"] else ""
print(json.dumps(out))
`
	stdout := runPython(t, py, script, dir)
	var got struct {
		IDs       []int             `json:"ids"`
		Status    []string          `json:"status"`
		Dates     int               `json:"dates"`
		Files     map[string]string `json:"files"`
		Artifacts []string          `json:"artifacts"`
		Sources   []string          `json:"sources"`
		Artifact  string            `json:"artifact"`
	}
	if err := json.Unmarshal(stdout, &got); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if len(got.IDs) != 3 || got.IDs[0] != 1 || got.IDs[2] != 3 || strings.Join(got.Status, ",") != "COMPLETED,FAILED,QUEUED" {
		t.Errorf("runs table as TinyDB reads it: ids %v, statuses %v", got.IDs, got.Status)
	}
	t.Logf("%d {TinyDate}: values, %d {TinyFile}: files", got.Dates, len(got.Files))
	// start, heartbeat and stop of two runs, the queued run's queue time,
	// and each metric point's timestamp at least.
	if got.Dates < 7 || len(got.Files) < 3 {
		t.Errorf("%d {TinyDate}: values and %d {TinyFile}: files decoded", got.Dates, len(got.Files))
	}
	if strings.Join(got.Artifacts, ",") != "model.txt" || got.Artifact != "weights: 1 2 3\n" ||
		strings.Join(got.Sources, ",") != "helpers/util.py,train.py" {
		t.Errorf("run 1 as TinyDB reads it: artifacts %v (%q), sources %v", got.Artifacts, got.Artifact, got.Sources)
	}
}

// runPython runs a Python script with args and returns what it printed;
// a failure shows its stderr.
func runPython(t *testing.T, py, script string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(py, append([]string{"-c", script}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	return stdout
}
