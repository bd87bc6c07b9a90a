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
	cmd := exec.Command(py, "-c", script, dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
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
