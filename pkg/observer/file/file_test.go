package file

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
	"github.com/sacred-go/sacred/pkg/sacredjson"
)

var ctx = context.Background()

func newObserver(t testing.TB, dir string, s observer.Settings) *Observer {
	t.Helper()
	cfg, err := ParseConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	o, err := New(ctx, cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// openReader opens a reader over dir.
func openReader(t testing.TB, dir string) *Reader {
	t.Helper()
	cfg, err := ParseConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, cfg, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestConformance(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "runs")
	readDir := dir
	observertest.Run(t, observertest.Store{
		New:    func(t *testing.T) observer.Observer { return newObserver(t, dir, observer.Settings{}) },
		Reader: func(t *testing.T) observer.Reader { return openReader(t, readDir) },
		// Root ignores permissions, so break the store by moving it away
		// and putting a plain file in its place: every later write fails
		// with ENOTDIR. The reader follows the moved directory, where what
		// was written before must be intact.
		Break: func(t *testing.T) {
			moved := dir + ".moved"
			if err := os.Rename(dir, moved); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dir, []byte("not a directory"), 0o644); err != nil {
				t.Fatal(err)
			}
			readDir = moved
		},
	})
}

func TestRegistered(t *testing.T) {
	k, ok := observer.Lookup(Option)
	if !ok {
		t.Fatal("file_storage is not registered")
	}
	dir := t.TempDir()
	o, err := k.OpenObserver(ctx, dir, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Priority() != 20 || o.Name() != "file storage "+dir {
		t.Errorf("priority %d name %q", o.Priority(), o.Name())
	}
	if _, err := k.OpenObserver(ctx, "", observer.Settings{}); err == nil {
		t.Error("an empty -F value was accepted")
	}
	f := filepath.Join(dir, "file")
	os.WriteFile(f, nil, 0o644)
	if _, err := k.OpenObserver(ctx, f, observer.Settings{}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file as -F value: %v", err)
	}
	// A missing directory is fine: it is created at the start.
	if _, err := k.OpenObserver(ctx, filepath.Join(dir, "new", "deeper"), observer.Settings{}); err != nil {
		t.Error(err)
	}
}

func readJSONFile(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := sacredjson.Unmarshal(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v.(map[string]any)
}

func keys(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	slices.Sort(k)
	return k
}

func TestRunJSONLifecycle(t *testing.T) {
	base := t.TempDir()
	o := newObserver(t, base, observer.Settings{})
	ev := observertest.StartEvent()
	ev.Time = time.Date(2026, 11, 27, 3, 7, 12, 269319000, time.UTC)
	ev.Host.CPU = ""
	id, err := o.Started(ctx, ev)
	if err != nil || id != "1" {
		t.Fatalf("Started = %q, %v", id, err)
	}
	runDir := filepath.Join(base, "1")
	run := readJSONFile(t, filepath.Join(runDir, layout.RunFile))
	if got, want := keys(run), []string{"artifacts", "command", "experiment", "heartbeat", "host", "meta", "resources", "start_time", "status"}; !slices.Equal(got, want) {
		t.Errorf("run.json keys after start = %v, want %v", got, want)
	}
	if run["heartbeat"] != nil || run["status"] != "RUNNING" || run["start_time"] != "2026-11-27T03:07:12.269319" {
		t.Errorf("run.json after start: %v", run)
	}
	host := run["host"].(map[string]any)
	if got, want := keys(host), []string{"ENV", "cpu", "cpu_count", "hostname", "memory_total", "os"}; !slices.Equal(got, want) {
		t.Errorf("host keys = %v, want %v", got, want)
	}
	if host["cpu"] != nil {
		t.Errorf("an unknown cpu is %v, want null", host["cpu"])
	}
	meta := run["meta"].(map[string]any)
	if got, want := keys(meta), []string{"argv", "command", "comment", "config_updates", "cwd", "named_configs", "options", "priority"}; !slices.Equal(got, want) {
		t.Errorf("meta keys = %v, want %v", got, want)
	}
	raw, _ := os.ReadFile(filepath.Join(runDir, layout.RunFile))
	if !bytes.Contains(raw, []byte(`"priority": 5.0`)) {
		t.Error("meta.priority is not written as a float")
	}
	exp := run["experiment"].(map[string]any)
	srcs := exp["sources"].([]any)
	if len(srcs) != 2 {
		t.Fatalf("sources = %v", srcs)
	}
	for i, s := range srcs {
		pair := s.([]any)
		src := ev.Experiment.Sources[i]
		stem, ext := layout.SplitExt(filepath.Base(src.Name))
		if want := "_sources/" + stem + "_" + src.MD5 + ext; pair[0] != src.Name || pair[1] != want {
			t.Errorf("source %d = %v, want [%s %s]", i, pair, src.Name, want)
		}
		if _, err := os.Stat(filepath.Join(base, pair[1].(string))); err != nil {
			t.Error(err)
		}
	}
	if fi, err := os.Stat(filepath.Join(runDir, layout.CoutFile)); err != nil || fi.Size() != 0 {
		t.Errorf("cout.txt after start: %v %v", fi, err)
	}
	for _, f := range []string{layout.InfoFile, layout.MetricsFile} {
		if _, err := os.Stat(filepath.Join(runDir, f)); err == nil {
			t.Errorf("%s exists before the first beat", f)
		}
	}

	// A beat with empty info: metrics.json is {} and there is no info.json.
	b := observertest.NewBeats()
	if err := o.LogMetrics(ctx, &observer.MetricsEvent{}); err != nil {
		t.Fatal(err)
	}
	if err := o.Heartbeat(ctx, b.Next(ev.Time.Add(time.Second), map[string]any{})); err != nil {
		t.Fatal(err)
	}
	if m, _ := os.ReadFile(filepath.Join(runDir, layout.MetricsFile)); string(m) != "{}" {
		t.Errorf("metrics.json after an empty beat = %q, want {}", m)
	}
	if _, err := os.Stat(filepath.Join(runDir, layout.InfoFile)); err == nil {
		t.Error("info.json written for empty info")
	}
	run = readJSONFile(t, filepath.Join(runDir, layout.RunFile))
	if r, ok := run["result"]; !ok || r != nil {
		t.Errorf("result after the first beat = %v (present %v), want null", r, ok)
	}
	if err := o.Failed(ctx, &observer.FailedEvent{StopTime: ev.Time.Add(2 * time.Second), Trace: []string{"exit status 2\n"}}); err != nil {
		t.Fatal(err)
	}
	o.Close(ctx)
	run = readJSONFile(t, filepath.Join(runDir, layout.RunFile))
	if run["status"] != "FAILED" || run["stop_time"] != "2026-11-27T03:07:14.269319" || len(run["fail_trace"].([]any)) != 1 {
		t.Errorf("run.json after failure: %v", run)
	}
	assertNoTempFiles(t, base)
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".") && p != dir {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

func TestGPUsAndQueued(t *testing.T) {
	base := t.TempDir()
	o := newObserver(t, base, observer.Settings{})
	ev := observertest.StartEvent()
	ev.Host.GPUs = &observer.GPUInfo{DriverVersion: "535.1", GPUs: []observer.GPU{{Model: "A100", TotalMemory: 40960, PersistenceMode: true}}}
	ev.Meta.Comment, ev.Meta.Priority = "", nil
	if _, err := o.Started(ctx, ev); err != nil {
		t.Fatal(err)
	}
	run := readJSONFile(t, filepath.Join(base, "1", layout.RunFile))
	gpus := run["host"].(map[string]any)["gpus"].(map[string]any)
	if gpus["driver_version"] != "535.1" || len(gpus["gpus"].([]any)) != 1 {
		t.Errorf("gpus = %v", gpus)
	}
	meta := run["meta"].(map[string]any)
	if _, ok := meta["comment"]; ok {
		t.Error("comment written though not set")
	}
	if _, ok := meta["priority"]; ok {
		t.Error("priority written though not set")
	}
	o.Close(ctx)

	q := newObserver(t, base, observer.Settings{})
	ev = observertest.StartEvent()
	ev.Host = nil
	qt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ev.Meta.QueueTime = &qt
	id, err := q.Queued(ctx, ev)
	if err != nil || id != "2" {
		t.Fatalf("Queued = %q, %v", id, err)
	}
	q.Close(ctx)
	run = readJSONFile(t, filepath.Join(base, "2", layout.RunFile))
	if got, want := keys(run), []string{"command", "experiment", "meta", "status"}; !slices.Equal(got, want) {
		t.Errorf("queued run.json keys = %v, want %v", got, want)
	}
	if run["meta"].(map[string]any)["queue_time"] != "2026-01-02T03:04:05.000000" || run["status"] != "QUEUED" {
		t.Errorf("queued run.json = %v", run)
	}
	if _, err := os.Stat(filepath.Join(base, "2", layout.ConfigFile)); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(base, "2", layout.CoutFile)); err == nil {
		t.Error("a queued run has a cout.txt")
	}
}

func TestIDAllocation(t *testing.T) {
	base := t.TempDir()
	for _, d := range []string{"1", "7", "abc", "10x", "_sources"} {
		os.Mkdir(filepath.Join(base, d), 0o755)
	}
	os.WriteFile(filepath.Join(base, "12"), nil, 0o644) // a file, not a run
	os.Symlink(filepath.Join(base, "1"), filepath.Join(base, "9"))
	o := newObserver(t, base, observer.Settings{})
	id, err := o.Started(ctx, observertest.StartEvent())
	if err != nil || id != "10" {
		t.Errorf("Started = %q, %v; want 10 (after the symlinked dir 9)", id, err)
	}
	o.Close(ctx)
	for _, bad := range []string{"a/b", "..", ".", "x\x00"} {
		o := newObserver(t, base, observer.Settings{})
		ev := observertest.StartEvent()
		ev.ID = bad
		if _, err := o.Started(ctx, ev); err == nil {
			t.Errorf("id %q was accepted", bad)
		}
	}
	o = newObserver(t, base, observer.Settings{})
	ev := observertest.StartEvent()
	ev.ID = "abc"
	if _, err := o.Started(ctx, ev); !errors.Is(err, observer.ErrIDTaken) {
		t.Errorf("existing id: %v", err)
	}
}

func TestArtifactNames(t *testing.T) {
	base := t.TempDir()
	o := newObserver(t, base, observer.Settings{})
	ev := observertest.StartEvent()
	if _, err := o.Started(ctx, ev); err != nil {
		t.Fatal(err)
	}
	defer o.Close(ctx)
	src := filepath.Join(t.TempDir(), "a")
	os.WriteFile(src, []byte("content"), 0o644)
	for _, bad := range []string{"", ".", "..", "/etc/passwd", "../x", "a/../../x", "run.json", "config.json",
		"cout.txt", "info.json", "metrics.json", "Run.JSON", "report.html", "report", "report.txt", "./run.json"} {
		err := o.Artifact(ctx, &observer.ArtifactEvent{Name: bad, Path: src})
		if err == nil {
			t.Errorf("artifact name %q was accepted", bad)
		} else if !strings.Contains(err.Error(), "artifact name") {
			t.Errorf("artifact name %q: unclear error %v", bad, err)
		}
	}
	for _, good := range []string{"model.txt", "sub/dir/x.txt", "a/../b.txt", "sub/run.json", "reports.txt"} {
		if err := o.Artifact(ctx, &observer.ArtifactEvent{Name: good, Path: src}); err != nil {
			t.Errorf("artifact name %q: %v", good, err)
		}
	}
	run := readJSONFile(t, filepath.Join(base, "1", layout.RunFile))
	if got := run["artifacts"].([]any); len(got) != 5 || got[2] != "a/../b.txt" {
		t.Errorf("artifacts = %v", got)
	}
	if b, _ := os.ReadFile(filepath.Join(base, "1", "sub", "dir", "x.txt")); string(b) != "content" {
		t.Errorf("sub/dir/x.txt = %q", b)
	}
	if err := o.Artifact(ctx, &observer.ArtifactEvent{Name: "missing", Path: filepath.Join(base, "nope")}); err == nil ||
		!strings.Contains(err.Error(), "nope") {
		t.Errorf("missing artifact file: %v", err)
	}
}

func TestResourceStorePathRelative(t *testing.T) {
	t.Chdir(t.TempDir())
	o := newObserver(t, "./runs/", observer.Settings{})
	if _, err := o.Started(ctx, observertest.StartEvent()); err != nil {
		t.Fatal(err)
	}
	defer o.Close(ctx)
	res, _ := filepath.Abs("data.csv")
	os.WriteFile(res, []byte("1,2\n"), 0o644)
	for range 2 {
		if err := o.Resource(ctx, &observer.ResourceEvent{Path: res}); err != nil {
			t.Fatal(err)
		}
	}
	run := readJSONFile(t, filepath.Join("runs", "1", layout.RunFile))
	got := run["resources"].([]any)
	want := "runs/_resources/data_"
	if len(got) != 2 {
		t.Fatalf("resources = %v", got)
	}
	pair := got[0].([]any)
	if pair[0] != res || !strings.HasPrefix(pair[1].(string), want) || !strings.HasSuffix(pair[1].(string), ".csv") {
		t.Errorf("resource = %v, want [%s runs/_resources/data_<md5>.csv]", pair, res)
	}
	entries, _ := os.ReadDir(filepath.Join("runs", layout.ResourcesDir))
	if len(entries) != 1 {
		t.Errorf("_resources holds %d files, want 1", len(entries))
	}
}

// TestOutputExact checks that cout.txt is the raw bytes, and that a range
// sent again (after a beat that failed part way, the retry decorator
// repeats it from the same From) lands on itself: no byte lost or doubled.
func TestOutputExact(t *testing.T) {
	base := t.TempDir()
	o := newObserver(t, base, observer.Settings{})
	ev := observertest.StartEvent()
	if _, err := o.Started(ctx, ev); err != nil {
		t.Fatal(err)
	}
	out := observertest.NewOutput()
	out.Append([]byte("a\xff\xfe\r\n\x00"))
	beat := func(from int64) {
		t.Helper()
		if err := o.Heartbeat(ctx, &observer.HeartbeatEvent{Output: out, From: from, To: out.Size(), BeatTime: ev.Time}); err != nil {
			t.Fatal(err)
		}
	}
	beat(0)
	out.Append([]byte("é"))
	beat(0) // the same range again, and more
	beat(out.Size())
	o.Close(ctx)
	if got, _ := os.ReadFile(filepath.Join(base, "1", layout.CoutFile)); !bytes.Equal(got, out.Bytes()) {
		t.Errorf("cout.txt = %q, want %q", got, out.Bytes())
	}
}

func TestMetricsIncremental(t *testing.T) {
	base := t.TempDir()
	o := newObserver(t, base, observer.Settings{})
	ev := observertest.StartEvent()
	if _, err := o.Started(ctx, ev); err != nil {
		t.Fatal(err)
	}
	defer o.Close(ctx)
	path := filepath.Join(base, "1", layout.MetricsFile)
	want := map[string]map[string][]any{}
	t0 := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	names := []string{"loss", "acc", "b\xffad", "zeta", "é"}
	check := func(stage string) {
		t.Helper()
		wm := map[string]any{}
		for k, v := range want {
			wm[string([]rune(k))] = map[string]any{"steps": v["steps"], "timestamps": v["timestamps"], "values": v["values"]}
		}
		exp, _ := sacredjson.Marshal(wm)
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got, exp) {
			t.Fatalf("%s: metrics.json differs\n got: %s\nwant: %s", stage, got, exp)
		}
	}
	step := int64(0)
	for beat := range 12 {
		var series []observer.MetricSeries
		for i, n := range names {
			if (beat+i)%3 == 0 {
				continue
			}
			var pts []observer.MetricPoint
			for k := range beat % 4 {
				step++
				v := float64(step) / 7
				switch step % 11 {
				case 0:
					v = math.NaN()
				case 5:
					v = math.Inf(-1)
				case 7:
					v = 1e-7
				}
				p := observer.MetricPoint{Step: step, Value: v, Time: t0.Add(time.Duration(step*1000+int64(k)) * time.Microsecond)}
				pts = append(pts, p)
				m := want[n]
				if m == nil {
					m = map[string][]any{}
					want[n] = m
				}
				m["steps"] = append(m["steps"], p.Step)
				m["timestamps"] = append(m["timestamps"], sacredjson.FormatTime(p.Time))
				m["values"] = append(m["values"], p.Value)
			}
			series = append(series, observer.MetricSeries{Name: n, Points: pts})
		}
		if err := o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: series}); err != nil {
			t.Fatal(err)
		}
		check("beat")
		if beat == 6 {
			// Someone rewrites the file (same content, other layout): the
			// writer notices and reads it back instead of copying ranges.
			v := readJSONFile(t, path)
			b, _ := sacredjson.Marshal(v)
			os.WriteFile(path, append(b, '\n'), 0o644)
		}
	}
	// And read back through the reader.
	r := openReader(t, base)
	run, err := r.Run(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range run.Metrics {
		w := want[s.Name]
		if w == nil {
			w = want["b\xffad"]
		}
		if len(s.Points) != len(w["steps"]) {
			t.Errorf("series %q: %d points, want %d", s.Name, len(s.Points), len(w["steps"]))
		}
	}
}

func TestTemplates(t *testing.T) {
	base := t.TempDir()
	os.WriteFile(filepath.Join(base, layout.TemplateName), []byte(
		`<h1>{{.run.experiment.name}} {{.run.status}}</h1><pre>{{.cout}}</pre><p>{{.config.lr}} {{.info.foo}} {{.savedir}}</p>`), 0o644)
	o := newObserver(t, base, observer.Settings{})
	ev := observertest.StartEvent()
	if _, err := o.Started(ctx, ev); err != nil {
		t.Fatal(err)
	}
	b := observertest.NewBeats()
	b.Out.Append([]byte("<script>alert(1)</script>\n"))
	o.Heartbeat(ctx, b.Next(ev.Time, map[string]any{"foo": "bar"}))
	if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time, HasResult: true, Result: 1}); err != nil {
		t.Fatal(err)
	}
	o.Close(ctx)
	rep, err := os.ReadFile(filepath.Join(base, "1", "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	want := "<h1>train COMPLETED</h1><pre>&lt;script&gt;alert(1)&lt;/script&gt;\n</pre><p>0.01 bar " + filepath.Join(base, "1") + "</p>"
	if string(rep) != want {
		t.Errorf("report.html = %q\nwant %q", rep, want)
	}

	// A text template given with --template; a broken one warns once.
	txt := filepath.Join(t.TempDir(), "r.txt")
	os.WriteFile(txt, []byte("{{.run.status}} {{index .run.fail_trace 0}}"), 0o644)
	o = newObserver(t, base, observer.Settings{Flags: map[string]string{FlagTemplate: txt}})
	o.Started(ctx, observertest.StartEvent())
	o.Failed(ctx, &observer.FailedEvent{StopTime: ev.Time, Trace: []string{"<boom>\n"}})
	o.Close(ctx)
	if rep, _ := os.ReadFile(filepath.Join(base, "2", "report.txt")); string(rep) != "FAILED <boom>\n" {
		t.Errorf("report.txt = %q", rep)
	}
	bad := filepath.Join(t.TempDir(), "bad.md")
	os.WriteFile(bad, []byte("{{.run.status"), 0o644)
	var warn bytes.Buffer
	o = newObserver(t, base, observer.Settings{Flags: map[string]string{FlagTemplate: bad}, Warn: &warn})
	o.Started(ctx, observertest.StartEvent())
	if err := o.Interrupted(ctx, &observer.InterruptedEvent{StopTime: ev.Time, Status: "TIMEOUT"}); err != nil {
		t.Errorf("a broken template fails the event: %v", err)
	}
	o.Close(ctx)
	if strings.Count(warn.String(), "\n") != 1 || !strings.Contains(warn.String(), "bad.md") {
		t.Errorf("warning = %q, want one line naming the template", warn.String())
	}
	if run := readJSONFile(t, filepath.Join(base, "3", layout.RunFile)); run["status"] != "TIMEOUT" {
		t.Errorf("status = %v", run["status"])
	}
	if _, err := os.Stat(filepath.Join(base, "3", "report.md")); err == nil {
		t.Error("a report was written from a broken template")
	}
}

// TestWriteErrors checks that a failing write names the file and the
// operation.
func TestWriteErrors(t *testing.T) {
	base := t.TempDir()
	o := newObserver(t, base, observer.Settings{})
	ev := observertest.StartEvent()
	if _, err := o.Started(ctx, ev); err != nil {
		t.Fatal(err)
	}
	defer o.Close(ctx)
	runDir := filepath.Join(base, "1")
	os.Rename(runDir, runDir+".gone")
	os.WriteFile(runDir, nil, 0o644)
	b := observertest.NewBeats()
	b.Out.Append([]byte("x"))
	err := o.Heartbeat(ctx, b.Next(ev.Time, map[string]any{"a": 1}))
	if err == nil || !strings.Contains(err.Error(), "writing") || !strings.Contains(err.Error(), layout.RunFile) {
		t.Errorf("heartbeat error = %v, want one naming run.json and the write", err)
	}
	err = o.LogMetrics(ctx, &observer.MetricsEvent{})
	if err == nil || !strings.Contains(err.Error(), layout.MetricsFile) {
		t.Errorf("metrics error = %v", err)
	}
	err = o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time})
	if err == nil || !strings.Contains(err.Error(), layout.RunFile) {
		t.Errorf("completed error = %v", err)
	}
}

// TestReadGolden reads the runs Python Sacred wrote.
func TestReadGolden(t *testing.T) {
	root := observertest.Golden(t)
	wantStatus := map[string][]string{
		"fs":       {"COMPLETED", "FAILED", "INTERRUPTED"},
		"fs-extra": {"COMPLETED", "FAILED", "COMPLETED", "FAILED", "COMPLETED"},
	}
	for dir, statuses := range wantStatus {
		r := openReader(t, filepath.Join(root, dir))
		ids, err := r.Runs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != len(statuses) {
			t.Fatalf("%s: runs %v", dir, ids)
		}
		for i, id := range ids {
			runDir := filepath.Join(root, dir, id)
			run, err := r.Run(ctx, id)
			if err != nil {
				t.Fatalf("%s/%s: %v", dir, id, err)
			}
			if run.Status != statuses[i] {
				t.Errorf("%s/%s: status %q, want %q", dir, id, run.Status, statuses[i])
			}
			if !observertest.Equal(run.Config, readJSONFile(t, filepath.Join(runDir, layout.ConfigFile))) {
				t.Errorf("%s/%s: config differs", dir, id)
			}
			if run.Info["foo"] != "bar" {
				t.Errorf("%s/%s: info %v", dir, id, run.Info)
			}
			cout, _ := os.ReadFile(filepath.Join(runDir, layout.CoutFile))
			if !bytes.Equal(run.Output, cout) {
				t.Errorf("%s/%s: output differs", dir, id)
			}
			m := readJSONFile(t, filepath.Join(runDir, layout.MetricsFile))["loss"].(map[string]any)
			if len(run.Metrics) != 1 || run.Metrics[0].Name != "loss" || len(run.Metrics[0].Points) != len(m["values"].([]any)) {
				t.Fatalf("%s/%s: metrics %+v", dir, id, run.Metrics)
			}
			for j, p := range run.Metrics[0].Points {
				if p.Step != m["steps"].([]any)[j].(int64) || p.Value != m["values"].([]any)[j].(float64) ||
					sacredjson.FormatTime(p.Time) != m["timestamps"].([]any)[j] {
					t.Errorf("%s/%s: point %d = %+v", dir, id, j, p)
				}
			}
			if run.StartTime.IsZero() || run.StopTime.IsZero() || run.Heartbeat.IsZero() || run.StartTime.Location() != time.UTC {
				t.Errorf("%s/%s: times %v %v %v", dir, id, run.StartTime, run.Heartbeat, run.StopTime)
			}
			if run.Host == nil || run.Host.Hostname != "vm" || run.Host.CPU != "AMD EPYC" || run.Host.OS[0] != "Linux" {
				t.Errorf("%s/%s: host %+v", dir, id, run.Host)
			}
			if len(run.Experiment.Sources) != 2 || run.Experiment.Sources[1].MD5 != "269aebf57cb8bd15c7b204b9338bc3ff" {
				t.Errorf("%s/%s: sources %+v", dir, id, run.Experiment.Sources)
			}
			if len(run.Resources) != 1 || run.Resources[0].MD5 != "7e3d992e798c503452ac810cfdf3fa95" {
				t.Errorf("%s/%s: resources %+v", dir, id, run.Resources)
			}
			if run.Status == "FAILED" && (len(run.FailTrace) != 4 || !strings.HasPrefix(run.FailTrace[3], "ValueError")) {
				t.Errorf("%s/%s: fail trace %q", dir, id, run.FailTrace)
			}
			rc, err := r.Artifact(ctx, id, "model.txt")
			if err != nil {
				t.Fatalf("%s/%s: %v", dir, id, err)
			}
			art, _ := io.ReadAll(rc)
			rc.Close()
			if want, _ := os.ReadFile(filepath.Join(runDir, "model.txt")); !bytes.Equal(art, want) || len(art) == 0 {
				t.Errorf("%s/%s: artifact %q", dir, id, art)
			}
			if _, err := r.Artifact(ctx, id, "run.json"); !errors.Is(err, observer.ErrNotFound) {
				t.Errorf("%s/%s: run.json read as an artifact: %v", dir, id, err)
			}
		}
		extra, _ := r.Run(ctx, "5")
		if dir == "fs-extra" && (extra.Meta.Comment != "a comment" || extra.Meta.Priority == nil || *extra.Meta.Priority != 5 ||
			extra.Experiment.Name != "custom_name") {
			t.Errorf("fs-extra/5 meta: %+v name %q", extra.Meta, extra.Experiment.Name)
		}
	}
}

func TestReadQueuedSacredRun(t *testing.T) {
	base := t.TempDir()
	os.Mkdir(filepath.Join(base, "1"), 0o755)
	os.WriteFile(filepath.Join(base, "1", layout.RunFile), []byte(`{
  "command": "main",
  "experiment": {"name": "demo", "sources": [{"py/tuple": ["my_exp.py", "7c4207bd46f2406394bbb2556d8693fa"]}]},
  "host": {"hostname": "vm"},
  "meta": {"command": "main", "priority": 3.0, "queue_time": {"py/object": "datetime.datetime", "__reduce__": [{"py/type": "datetime.datetime"}, ["B+oLGwMHDAQcNw=="]]}},
  "status": "QUEUED"
}`), 0o644)
	r := openReader(t, base)
	run, err := r.Run(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 11, 27, 3, 7, 12, 269367000, time.UTC)
	if !run.QueueTime.Equal(want) || run.Status != "QUEUED" || run.Experiment.Sources[0].MD5 != "7c4207bd46f2406394bbb2556d8693fa" {
		t.Errorf("queued run: queue time %v (want %v) %+v", run.QueueTime, want, run.Experiment.Sources)
	}
	if _, err := r.Run(ctx, "2"); !errors.Is(err, observer.ErrNotFound) {
		t.Errorf("missing run: %v", err)
	}
	if _, err := r.Run(ctx, "../etc"); !errors.Is(err, observer.ErrNotFound) {
		t.Errorf("run id with a slash: %v", err)
	}
	if _, err := Open(ctx, Config{Abs: filepath.Join(base, "missing")}, observer.Settings{}); !errors.Is(err, observer.ErrNotFound) {
		t.Errorf("Open of a missing dir: %v", err)
	}
}

// TestReplayGolden replays the golden runs through our observer and
// compares the files byte for byte: config.json, info.json, metrics.json,
// cout.txt exactly, and run.json exactly except host and meta, which hold
// facts of ours instead of Python's (checked key by key).
func TestReplayGolden(t *testing.T) {
	root := observertest.Golden(t)
	for _, rel := range []string{"fs/1", "fs/2", "fs/3", "fs-extra/3", "fs-extra/5"} {
		t.Run(rel, func(t *testing.T) { replay(t, filepath.Join(root, rel)) })
	}
}

func mustTime(t *testing.T, v any) time.Time {
	t.Helper()
	tm, err := sacredjson.ParseTime(v.(string))
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func replay(t *testing.T, gdir string) {
	gbase := filepath.Dir(gdir)
	id := filepath.Base(gdir)
	g := readJSONFile(t, filepath.Join(gdir, layout.RunFile))
	gexp := g["experiment"].(map[string]any)
	gmeta := g["meta"].(map[string]any)
	ghost := g["host"].(map[string]any)

	base := t.TempDir()
	// Sources and resources are stored under their recorded md5, which
	// does not match the rewritten golden files: put them in place so that
	// the observer finds them there, as Sacred would on a second run.
	for _, d := range []string{layout.SourcesDir, layout.ResourcesDir} {
		os.Mkdir(filepath.Join(base, d), 0o755)
		entries, _ := os.ReadDir(filepath.Join(gbase, d))
		for _, e := range entries {
			b, _ := os.ReadFile(filepath.Join(gbase, d, e.Name()))
			os.WriteFile(filepath.Join(base, d, e.Name()), b, 0o644)
		}
	}
	ev := &observer.StartEvent{
		ID:      id,
		Command: g["command"].(string),
		Experiment: observer.Experiment{
			Name:         gexp["name"].(string),
			BaseDir:      gexp["base_dir"].(string),
			MainFile:     gexp["mainfile"].(string),
			Dependencies: strs(gexp["dependencies"]),
		},
		Host: &observer.Host{Hostname: ghost["hostname"].(string), CPU: ghost["cpu"].(string),
			OS: [2]string{strs(ghost["os"])[0], strs(ghost["os"])[1]}},
		Time:   mustTime(t, g["start_time"]),
		Config: readJSONFile(t, filepath.Join(gdir, layout.ConfigFile)),
		Meta: observer.Meta{
			Command:       gmeta["command"].(string),
			Options:       gmeta["options"].(map[string]any),
			Comment:       str(gmeta["comment"]),
			ConfigUpdates: gmeta["config_updates"].(map[string]any),
			NamedConfigs:  strs(gmeta["named_configs"]),
		},
	}
	if p, ok := gmeta["priority"].(float64); ok {
		ev.Meta.Priority = &p
	}
	for _, r := range list(gexp["repositories"]) {
		m := r.(map[string]any)
		ev.Experiment.Repositories = append(ev.Experiment.Repositories, observer.Repository{URL: m["url"].(string), Commit: m["commit"].(string), Dirty: m["dirty"].(bool)})
	}
	for _, s := range list(gexp["sources"]) {
		pair := strs(s)
		ev.Experiment.Sources = append(ev.Experiment.Sources, observer.Source{
			Name: pair[0], Path: filepath.Join(ev.Experiment.BaseDir, pair[0]), MD5: layout.MD5FromSharedName(pair[1]),
		})
	}
	o := newObserver(t, base, observer.Settings{})
	if got, err := o.Started(ctx, ev); err != nil || got != id {
		t.Fatalf("Started = %q, %v", got, err)
	}
	defer o.Close(ctx)

	for _, res := range list(g["resources"]) {
		pair := strs(res)
		if err := o.Resource(ctx, &observer.ResourceEvent{Path: pair[0], MD5: layout.MD5FromSharedName(pair[1])}); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range strs(g["artifacts"]) {
		if err := o.Artifact(ctx, &observer.ArtifactEvent{Name: a, Path: filepath.Join(gdir, a)}); err != nil {
			t.Fatal(err)
		}
	}
	// Metrics in two beats, output in three pieces.
	gm := readJSONFile(t, filepath.Join(gdir, layout.MetricsFile))
	var first, second []observer.MetricSeries
	for name, sv := range gm {
		s := sv.(map[string]any)
		var pts []observer.MetricPoint
		for i := range s["steps"].([]any) {
			pts = append(pts, observer.MetricPoint{
				Step:  s["steps"].([]any)[i].(int64),
				Time:  mustTime(t, s["timestamps"].([]any)[i]),
				Value: s["values"].([]any)[i].(float64),
			})
		}
		half := len(pts) / 3
		first = append(first, observer.MetricSeries{Name: name, Points: pts[:half]})
		second = append(second, observer.MetricSeries{Name: name, Points: pts[half:]})
	}
	cout, _ := os.ReadFile(filepath.Join(gdir, layout.CoutFile))
	info := readJSONFile(t, filepath.Join(gdir, layout.InfoFile))
	b := observertest.NewBeats()
	hbTime := mustTime(t, g["heartbeat"])
	for i, part := range [][]byte{cout[:len(cout)/3], cout[len(cout)/3 : len(cout)/2], cout[len(cout)/2:]} {
		var ms []observer.MetricSeries
		switch i {
		case 0:
			ms = first
		case 1:
			ms = second
		}
		if err := o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: ms, Info: info}); err != nil {
			t.Fatal(err)
		}
		b.Out.Append(part)
		hb := b.Next(hbTime, info)
		hb.HasResult = true // Sacred sends the intermediate result, None here
		if err := o.Heartbeat(ctx, hb); err != nil {
			t.Fatal(err)
		}
	}
	stop := mustTime(t, g["stop_time"])
	var err error
	switch g["status"] {
	case "COMPLETED":
		err = o.Completed(ctx, &observer.CompletedEvent{StopTime: stop, Result: g["result"], HasResult: true})
	case "FAILED":
		err = o.Failed(ctx, &observer.FailedEvent{StopTime: stop, Trace: strs(g["fail_trace"])})
	default:
		err = o.Interrupted(ctx, &observer.InterruptedEvent{StopTime: stop, Status: g["status"].(string)})
	}
	if err != nil {
		t.Fatal(err)
	}

	runDir := filepath.Join(base, id)
	for _, f := range []string{layout.ConfigFile, layout.InfoFile, layout.MetricsFile, layout.CoutFile, "model.txt"} {
		want, _ := os.ReadFile(filepath.Join(gdir, f))
		got, err := os.ReadFile(filepath.Join(runDir, f))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs from Python's (%v)\n got: %.400s\nwant: %.400s", f, err, got, want)
		}
	}
	ours := readJSONFile(t, filepath.Join(runDir, layout.RunFile))
	// host: Python's keys minus python_version, plus ours.
	oh := ours["host"].(map[string]any)
	for k, v := range ghost {
		if k != "python_version" && !observertest.Equal(oh[k], v) {
			t.Errorf("host[%s] = %v, want %v", k, oh[k], v)
		}
	}
	om := ours["meta"].(map[string]any)
	for k, v := range gmeta {
		if !observertest.Equal(om[k], v) {
			t.Errorf("meta[%s] = %v, want %v", k, om[k], v)
		}
	}
	// Resources: Python recorded its BASEDIR, we record ours.
	for i, r := range list(ours["resources"]) {
		pair := r.([]any)
		gpair := strs(list(g["resources"])[i])
		if want := filepath.Join(base, layout.ResourcesDir, filepath.Base(gpair[1])); pair[1] != want {
			t.Errorf("resource store path = %v, want %v", pair[1], want)
		}
		pair[1] = gpair[1]
	}
	for _, m := range []map[string]any{ours, g} {
		delete(m, "host")
		delete(m, "meta")
	}
	gotRun, _ := sacredjson.Marshal(ours)
	wantRun, _ := sacredjson.Marshal(g)
	if !bytes.Equal(gotRun, wantRun) {
		t.Errorf("run.json (without host and meta) differs\n got: %s\nwant: %s", gotRun, wantRun)
	}
	// Also the bytes of the whole file match Python's where the keys are
	// the same: the layout of our file is sacredjson's.
	raw, _ := os.ReadFile(filepath.Join(runDir, layout.RunFile))
	if re, _ := sacredjson.Marshal(readJSONFile(t, filepath.Join(runDir, layout.RunFile))); !bytes.Equal(raw, re) {
		t.Error("run.json is not in Python's json.dump layout")
	}
}

// TestMetricsWriteFailure checks the contract of observer.Observer: when
// LogMetrics fails, the runner sends the same points again, so the file
// must end up with every point exactly once.
func TestMetricsWriteFailure(t *testing.T) {
	base := t.TempDir()
	o := newObserver(t, base, observer.Settings{})
	ev := observertest.StartEvent()
	if _, err := o.Started(ctx, ev); err != nil {
		t.Fatal(err)
	}
	defer o.Close(ctx)
	path := filepath.Join(base, "1", layout.MetricsFile)
	t0 := ev.Time
	pts := func(from int64, n int) []observer.MetricPoint {
		var out []observer.MetricPoint
		for i := range n {
			s := from + int64(i)
			out = append(out, observer.MetricPoint{Step: s, Value: float64(s) / 2, Time: t0.Add(time.Duration(s) * time.Second)})
		}
		return out
	}
	log := func(series ...observer.MetricSeries) error {
		return o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: series})
	}
	if err := log(observer.MetricSeries{Name: "loss", Points: pts(0, 3)}); err != nil {
		t.Fatal(err)
	}
	// Make the replace fail: a non-empty directory where the file was.
	os.Rename(path, path+".saved")
	os.MkdirAll(filepath.Join(path, "x"), 0o755)
	failed := []observer.MetricSeries{{Name: "loss", Points: pts(3, 2)}, {Name: "acc", Points: pts(0, 1)}}
	if err := log(failed...); err == nil {
		t.Fatal("LogMetrics succeeded with a directory in the way")
	}
	os.RemoveAll(path)
	os.Rename(path+".saved", path)
	// The runner resends the failed points first, with the new ones.
	if err := log(observer.MetricSeries{Name: "loss", Points: pts(3, 4)}, observer.MetricSeries{Name: "acc", Points: pts(0, 2)}); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{}
	for name, ps := range map[string][]observer.MetricPoint{"loss": pts(0, 7), "acc": pts(0, 2)} {
		var steps, stamps, values []any
		for _, p := range ps {
			steps, stamps, values = append(steps, p.Step), append(stamps, sacredjson.FormatTime(p.Time)), append(values, p.Value)
		}
		want[name] = map[string]any{"steps": steps, "timestamps": stamps, "values": values}
	}
	exp, _ := sacredjson.Marshal(want)
	if got, _ := os.ReadFile(path); !bytes.Equal(got, exp) {
		t.Errorf("metrics.json after a failed write\n got: %s\nwant: %s", got, exp)
	}
}

// When the runner captures straight into cout.txt, beats must not append
// the output a second time.
func TestOutputFileOwnedByCapture(t *testing.T) {
	base := t.TempDir()
	o := newObserver(t, base, observer.Settings{})
	ev := observertest.StartEvent()
	if _, err := o.Started(ctx, ev); err != nil {
		t.Fatal(err)
	}
	f, err := o.OutputFile()
	if err != nil || f == nil {
		t.Fatalf("OutputFile() = %v, %v", f, err)
	}
	if again, _ := o.OutputFile(); again != nil {
		t.Fatal("cout.txt handed out twice")
	}
	want := []byte("captured\r\x00 directly\n")
	if _, err := f.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	out := observertest.NewOutput()
	out.Append(want)
	for i := 0; i < 2; i++ {
		if err := o.Heartbeat(ctx, &observer.HeartbeatEvent{Output: out, To: out.Size(), BeatTime: ev.Time}); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	o.Close(ctx)
	if got, _ := os.ReadFile(filepath.Join(base, "1", layout.CoutFile)); !bytes.Equal(got, want) {
		t.Errorf("cout.txt = %q, want %q", got, want)
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func strs(v any) []string {
	var out []string
	for _, x := range list(v) {
		out = append(out, str(x))
	}
	return out
}

// A stored copy never has more permissions than the original; a shared
// copy made from a public file is narrowed when the same content arrives
// from a private one.
func TestStoredModes(t *testing.T) {
	base := t.TempDir()
	o := newObserver(t, base, observer.Settings{})
	if _, err := o.Started(ctx, observertest.StartEvent()); err != nil {
		t.Fatal(err)
	}
	defer o.Close(ctx)
	src := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(src, name)
		os.WriteFile(p, []byte("same content\n"), mode)
		os.Chmod(p, mode)
		return p
	}
	pub, priv := write("pub.txt", 0o644), write("priv.txt", 0o600)
	for _, p := range []string{pub, priv} {
		if err := o.Resource(ctx, &observer.ResourceEvent{Path: p}); err != nil {
			t.Fatal(err)
		}
	}
	// Different names, one content: two shared copies, each its own mode.
	for name, want := range map[string]os.FileMode{"pub": 0o644, "priv": 0o600} {
		m, _ := filepath.Glob(filepath.Join(base, layout.ResourcesDir, name+"_*.txt"))
		if len(m) != 1 {
			t.Fatalf("%s: %v", name, m)
		}
		if fi, _ := os.Stat(m[0]); fi.Mode().Perm() != want {
			t.Errorf("%s stored %04o, want %04o", m[0], fi.Mode().Perm(), want)
		}
	}
	// The same name and content again from a private file: narrowed.
	os.Chmod(pub, 0o600)
	if err := o.Resource(ctx, &observer.ResourceEvent{Path: pub}); err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(base, layout.ResourcesDir, "pub_*.txt"))
	if fi, _ := os.Stat(m[0]); fi.Mode().Perm() != 0o600 {
		t.Errorf("the public copy of now private content is %04o", fi.Mode().Perm())
	}
	// An artifact whose original is gone: the private copy's mode.
	cp := write("copy.bin", 0o600)
	if err := o.Artifact(ctx, &observer.ArtifactEvent{Name: "a.bin", Path: cp, OrigPath: filepath.Join(src, "gone")}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(base, "1", "a.bin")); fi.Mode().Perm() != 0o600 {
		t.Errorf("artifact stored %04o", fi.Mode().Perm())
	}
}
