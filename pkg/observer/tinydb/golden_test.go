package tinydb

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// copyGolden copies the golden TinyDB store (written by Python Sacred
// 0.8.7) into a writable temp dir.
func copyGolden(t *testing.T) string {
	t.Helper()
	src := filepath.Join(observertest.Golden(t), "tiny")
	dst := filepath.Join(t.TempDir(), "tiny")
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func openReader(t *testing.T, dir string) *Reader {
	t.Helper()
	r, err := Open(context.Background(), Config{Dir: dir, Abs: dir}, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newObserver(t *testing.T, dir string) *Observer {
	t.Helper()
	cfg, err := ParseConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	o, err := New(context.Background(), cfg, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestReadGolden reads the store Python Sacred wrote.
func TestReadGolden(t *testing.T) {
	dir := filepath.Join(observertest.Golden(t), "tiny")
	r := openReader(t, dir)
	ctx := context.Background()
	ids, err := r.Runs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"0091b4fed36b4749a432ceb27a6de7c5", "fcca1be6ea714a0f92bcfad83c4a2a4a", "419cce63cd4f404b8c6327b421d0c595"}
	if !slices.Equal(ids, want) {
		t.Fatalf("runs %v, want %v", ids, want)
	}
	statuses := []string{observer.StatusCompleted, observer.StatusFailed, observer.StatusInterrupted}
	for i, id := range ids {
		run, err := r.Run(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if run.Status != statuses[i] || run.ID != id || run.Command != "main" {
			t.Errorf("run %d: status %q id %q command %q", i, run.Status, run.ID, run.Command)
		}
		if run.Experiment.Name != "train" || len(run.Experiment.Sources) != 2 || run.Experiment.Sources[0].Name != "helpers.py" ||
			run.Experiment.Sources[0].MD5 != "594fc52b5ec775f4bd965193e8e3a9ac" || run.Experiment.MainFile != "train.py" ||
			len(run.Experiment.Repositories) != 2 || !run.Experiment.Repositories[0].Dirty {
			t.Errorf("run %d experiment %+v", i, run.Experiment)
		}
		if run.Host == nil || run.Host.Hostname != "vm" || run.Host.OS[0] != "Linux" || run.Host.CPU != "AMD EPYC" {
			t.Errorf("run %d host %+v", i, run.Host)
		}
		if run.Config["lr"] != 0.01 || run.Config["epochs"] != int64(20) || run.Info["foo"] != "bar" {
			t.Errorf("run %d config %v info %v", i, run.Config, run.Info)
		}
		if run.StartTime.IsZero() || run.StopTime.IsZero() || run.Heartbeat.IsZero() || run.StopTime.Before(run.StartTime) {
			t.Errorf("run %d times %v %v %v", i, run.StartTime, run.Heartbeat, run.StopTime)
		}
		if !slices.Equal(run.Artifacts, []string{"model.txt"}) || len(run.Resources) != 1 ||
			run.Resources[0].Path != "/home/user/pysacred/exp/data/input.txt" || run.Resources[0].MD5 != "7e3d992e798c503452ac810cfdf3fa95" {
			t.Errorf("run %d artifacts %v resources %v", i, run.Artifacts, run.Resources)
		}
		if tiny := run.Meta.Options["--tiny_db"]; tiny != "/home/user/pysacred/out/tiny" {
			t.Errorf("run %d meta options --tiny_db = %v", i, tiny)
		}
		if !run.HasResult {
			t.Errorf("run %d has no result key", i)
		}
		rc, err := r.Artifact(ctx, id, "model.txt")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != "weights: 1 2 3\n" {
			t.Errorf("run %d model.txt = %q", i, b)
		}
	}
	run, _ := r.Run(ctx, want[0])
	if run.Result != 0.93 || !strings.Contains(string(run.Output), "Starting training baseline lr=0.01 optimizer=adam\n\rprogress   0%") {
		t.Errorf("completed run: result %v output %q", run.Result, run.Output)
	}
	if got := run.StartTime; !got.Equal(time.Date(2026, 11, 27, 3, 16, 19, 830572000, time.UTC)) {
		t.Errorf("start time %v", got)
	}
	run, _ = r.Run(ctx, want[1])
	if len(run.FailTrace) != 4 || run.FailTrace[3] != "ValueError: simulated failure in main\n" || run.Result != nil {
		t.Errorf("failed run: trace %q result %v", run.FailTrace, run.Result)
	}
}

// docsOf returns the raw bytes of every document of the runs table, by
// doc id, and the ids in file order.
func docsOf(t testing.TB, data []byte) (map[string][]byte, []string) {
	t.Helper()
	ix, err := scanIndex(data)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	var keys []string
	for _, d := range ix.runs.docs {
		out[d.key] = data[d.start:d.end]
		keys = append(keys, d.key)
	}
	return out, keys
}

// TestAppendToGoldenKeepsRecords appends a run to a copy of the store
// Python Sacred wrote: every earlier record keeps its bytes, and so does
// the file around them; the new run gets doc id 4.
func TestAppendToGoldenKeepsRecords(t *testing.T) {
	dir := copyGolden(t)
	before, err := os.ReadFile(filepath.Join(dir, MetadataFile))
	if err != nil {
		t.Fatal(err)
	}
	id := recordRun(t, dir)
	after, err := os.ReadFile(filepath.Join(dir, MetadataFile))
	if err != nil {
		t.Fatal(err)
	}
	oldDocs, oldKeys := docsOf(t, before)
	newDocs, newKeys := docsOf(t, after)
	if !slices.Equal(newKeys, append(oldKeys, "4")) {
		t.Fatalf("doc ids %v, want %v + 4", newKeys, oldKeys)
	}
	for k, b := range oldDocs {
		if !bytes.Equal(newDocs[k], b) {
			t.Errorf("document %s changed", k)
		}
	}
	// Everything before the new document is the old file up to its last
	// document; after it, the closing braces.
	cut := len(before) - len("}}")
	if !bytes.Equal(after[:cut], before[:cut]) || !bytes.HasSuffix(after, []byte("}}")) {
		t.Errorf("the bytes around the documents changed")
	}
	if !bytes.HasPrefix(after[cut:], []byte(`, "4": {"experiment": `)) {
		t.Errorf("new document starts %q", after[cut:min(len(after), cut+40)])
	}
	run, err := openReader(t, dir).Run(context.Background(), id)
	if err != nil || run.Status != observer.StatusCompleted {
		t.Fatalf("appended run: %v %+v", err, run)
	}
}

// recordRun writes one complete run (sources, metrics, output, a
// resource, an artifact, result) and returns its id.
func recordRun(t *testing.T, dir string) string {
	t.Helper()
	ctx := context.Background()
	o := newObserver(t, dir)
	ev := observertest.StartEvent()
	id, err := o.Started(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(t.TempDir(), "input.txt")
	os.WriteFile(res, []byte("a,b\n"), 0o644)
	if err := o.Resource(ctx, &observer.ResourceEvent{Path: res, MD5: "e63ad8e1a9bfb5c2a1fa4d3e0d52d2ff"}); err != nil {
		t.Fatal(err)
	}
	art := filepath.Join(t.TempDir(), "copy")
	os.WriteFile(art, []byte("weights: 1 2 3\n"), 0o600)
	if err := o.Artifact(ctx, &observer.ArtifactEvent{Name: "model.txt", Path: art, OrigPath: "/home/user/exp/model.txt"}); err != nil {
		t.Fatal(err)
	}
	b := observertest.NewBeats()
	b.Out.Append([]byte("Starting training\n"))
	pts := []observer.MetricPoint{{Step: 0, Value: 0.5, Time: ev.Time}, {Step: 1, Value: 0.25, Time: ev.Time.Add(time.Millisecond)}}
	if err := o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: pts}}}); err != nil {
		t.Fatal(err)
	}
	hb := b.Next(ev.Time.Add(time.Second), map[string]any{"foo": "bar"})
	hb.Final = true
	if err := o.Heartbeat(ctx, hb); err != nil {
		t.Fatal(err)
	}
	if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time.Add(2 * time.Second), Result: 0.93, HasResult: true}); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return id
}

// orderedKeys returns the keys of a JSON object in file order.
func orderedKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %.40q", raw)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// field returns the raw value of key in a JSON object.
func field(t *testing.T, raw []byte, key string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m[key]
}

// kind names a JSON value's type.
func kind(raw json.RawMessage) string {
	switch c := bytes.TrimSpace(raw); {
	case len(c) == 0:
		return "absent"
	case c[0] == '{':
		return "object"
	case c[0] == '[':
		return "array"
	case c[0] == '"':
		return "string"
	case string(c) == "null":
		return "null"
	case string(c) == "true" || string(c) == "false":
		return "bool"
	}
	return "number"
}

var (
	tinyDateRE = regexp.MustCompile(`^"\{TinyDate\}:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}"$`)
	tinyFileRE = regexp.MustCompile(`^"\{TinyFile\}:\\"[0-9a-f]{32}\\""$`)
)

// TestShapeMatchesGolden compares a document we write with the completed
// run Python Sacred wrote, key by key: the same keys in the same order
// (ours adds metrics at the end), the same JSON types, the same tags, and
// the file's own format (json.dumps separators, no newline).
func TestShapeMatchesGolden(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join(observertest.Golden(t), "tiny", MetadataFile))
	if err != nil {
		t.Fatal(err)
	}
	gdocs, _ := docsOf(t, golden)
	dir := filepath.Join(t.TempDir(), "tiny")
	recordRun(t, dir)
	ours, err := os.ReadFile(filepath.Join(dir, MetadataFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(ours, []byte(`{"runs": {"1": {"experiment": {"name": "train", "base_dir": `)) || ours[len(ours)-1] != '}' {
		t.Errorf("file starts %.60q, ends %q", ours, ours[len(ours)-1:])
	}
	odocs, _ := docsOf(t, ours)
	g, o := gdocs["1"], odocs["1"]

	gk, ok := orderedKeys(t, g), orderedKeys(t, o)
	if want := append(slices.Clone(gk), "metrics"); !slices.Equal(ok, want) {
		t.Errorf("document keys\n got %v\nwant %v", ok, want)
	}
	for _, k := range gk {
		gv, ov := field(t, g, k), field(t, o, k)
		if kind(gv) != kind(ov) {
			t.Errorf("%s: %s, golden has %s", k, kind(ov), kind(gv))
		}
	}
	for _, k := range []string{"start_time", "heartbeat", "stop_time"} {
		if v := field(t, o, k); !tinyDateRE.Match(v) {
			t.Errorf("%s = %s, want a TinyDate", k, v)
		}
	}
	if v := field(t, o, "format"); string(v) != `"TinyDbObserver-0.8.7"` {
		t.Errorf("format = %s", v)
	}
	ge, oe := field(t, g, "experiment"), field(t, o, "experiment")
	if a, b := orderedKeys(t, oe), orderedKeys(t, ge); !slices.Equal(a, b) {
		t.Errorf("experiment keys %v, golden %v", a, b)
	}
	checkEntries := func(name string, raw json.RawMessage, n int) {
		t.Helper()
		var entries [][]json.RawMessage
		if err := json.Unmarshal(raw, &entries); err != nil || len(entries) == 0 {
			t.Fatalf("%s: %v %s", name, err, raw)
		}
		for _, e := range entries {
			if len(e) != n {
				t.Errorf("%s entry %s has %d elements, want %d", name, e, len(e), n)
				continue
			}
			for _, s := range e[:n-1] {
				if kind(s) != "string" {
					t.Errorf("%s entry %s: %s is not a string", name, e, s)
				}
			}
			if !tinyFileRE.Match(e[n-1]) {
				t.Errorf("%s entry %s does not end in a TinyFile", name, e)
			}
			md5 := strings.Trim(string(e[n-2]), `"`)
			if !strings.Contains(string(e[n-1]), md5) {
				t.Errorf("%s entry %s: the TinyFile is not the md5", name, e)
			}
			if _, err := os.Stat(hashPath(dir, md5)); err != nil {
				t.Errorf("%s entry %s: %v", name, e, err)
			}
		}
	}
	checkEntries("experiment.sources", field(t, oe, "sources"), 3)
	checkEntries("resources", field(t, o, "resources"), 3)
	checkEntries("artifacts", field(t, o, "artifacts"), 4)
	var m map[string]map[string][]json.RawMessage
	if err := json.Unmarshal(field(t, o, "metrics"), &m); err != nil {
		t.Fatal(err)
	}
	if l := m["loss"]; len(l["steps"]) != 2 || len(l["values"]) != 2 || !tinyDateRE.Match(l["timestamps"][1]) {
		t.Errorf("metrics %v", m)
	}
	if bytes.Contains(ours, []byte("\n")) || bytes.Contains(ours, []byte(`":"`)) || bytes.Contains(ours, []byte(`","`)) {
		t.Errorf("not json.dumps' default separators")
	}
}
