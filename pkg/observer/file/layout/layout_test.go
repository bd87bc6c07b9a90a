package layout

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/sacredjson"
)

func TestJoinPathAndSplitExt(t *testing.T) {
	for _, tc := range [][3]string{
		{"runs", "_resources/x.txt", "runs/_resources/x.txt"},
		{"runs/", "_resources/x.txt", "runs/_resources/x.txt"},
		{"./runs", "_resources/x.txt", "runs/_resources/x.txt"},
		{".", "_resources/x.txt", "_resources/x.txt"},
		{"/abs//dir/", "_resources/x.txt", "/abs/dir/_resources/x.txt"},
		{"../up", "_resources/x.txt", "../up/_resources/x.txt"},
	} {
		if got := JoinPath(tc[0], tc[1]); got != tc[2] {
			t.Errorf("JoinPath(%q, %q) = %q, want %q", tc[0], tc[1], got, tc[2])
		}
	}
	for _, tc := range [][3]string{
		{"train.py", "train", ".py"}, {"a.tar.gz", "a.tar", ".gz"}, {".bashrc", ".bashrc", ""},
		{"noext", "noext", ""}, {"trailing.", "trailing.", ""},
	} {
		if s, e := SplitExt(tc[0]); s != tc[1] || e != tc[2] {
			t.Errorf("SplitExt(%q) = %q %q", tc[0], s, e)
		}
	}
}

func TestSharedNames(t *testing.T) {
	const sum = "7c4207bd46f2406394bbb2556d8693fa"
	if got := SharedName("sub/my_exp.py", sum); got != "my_exp_"+sum+".py" {
		t.Errorf("SharedName = %q", got)
	}
	if got := MD5FromSharedName("_sources/my_exp_" + sum + ".py"); got != sum {
		t.Errorf("MD5FromSharedName = %q", got)
	}
	if got := MD5FromSharedName("_sources/plain.py"); got != "" {
		t.Errorf("MD5FromSharedName of a plain name = %q", got)
	}
}

func TestIDs(t *testing.T) {
	if got := NextID([]string{"1", "7", "abc", "10x", "_sources", "007"}); got != 8 {
		t.Errorf("NextID = %d, want 8", got)
	}
	if got := NextID(nil); got != 1 {
		t.Errorf("NextID of nothing = %d, want 1", got)
	}
	for _, bad := range []string{"", ".", "..", "a/b", `a\b`, "x\x00"} {
		if CheckID(bad) == nil {
			t.Errorf("CheckID(%q) accepted", bad)
		}
	}
	ids := []string{"b", "10", "a", "9", "010"}
	for i := range ids {
		for j := range ids {
			a, b := ids[i], ids[j]
			if (CompareIDs(a, b) < 0) != (CompareIDs(b, a) > 0) {
				t.Errorf("CompareIDs(%q, %q) is not antisymmetric", a, b)
			}
		}
	}
	if CompareIDs("9", "10") >= 0 || CompareIDs("10", "a") >= 0 {
		t.Error("numeric ids must come first, in numeric order")
	}
}

func TestCheckArtifactName(t *testing.T) {
	for _, bad := range []string{"", ".", "..", "/etc/passwd", `\x`, "../x", "a/../../x", "run.json", "config.json",
		"cout.txt", "info.json", "metrics.json", "Run.JSON", "report.html", "report", "./run.json"} {
		if _, err := CheckArtifactName(bad); err == nil {
			t.Errorf("artifact name %q was accepted", bad)
		}
	}
	for name, want := range map[string]string{"model.txt": "model.txt", "sub/dir/x.txt": "sub/dir/x.txt",
		"a/../b.txt": "b.txt", "sub/run.json": "sub/run.json", "reports.txt": "reports.txt", "c:d": "c:d"} {
		if got, err := CheckArtifactName(name); err != nil || got != want {
			t.Errorf("CheckArtifactName(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
}

func TestRunRecord(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 3, 7, 12, 269319000, time.UTC)
	opts := map[string]any{"--id": nil}
	ev := &observer.StartEvent{
		Command: "python3 train.py",
		Experiment: observer.Experiment{Name: "train", BaseDir: "/exp", MainFile: "train.py", Sources: []observer.Source{
			{Name: "big.bin", MD5: strings.Repeat("a", 32), Size: 11 << 20, Omitted: true},
			{Name: "train.py", MD5: strings.Repeat("b", 32), Size: 10},
		}},
		Host: &observer.Host{Hostname: "h", OS: [2]string{"Linux", "Linux-6"}},
		Time: t0,
		Meta: observer.Meta{Command: "python3 train.py", Options: opts},
	}
	var sources []any
	for _, s := range ev.Experiment.Sources {
		sources = append(sources, SourceEntry(s, SourcePath(s)))
	}
	r := NewRun(ev, sources, false)
	opts["--id"] = "changed" // the record shares nothing with the event
	r.Beat(&observer.HeartbeatEvent{BeatTime: t0.Add(time.Second), Result: 0.5, HasResult: true})
	r.AddArtifact("model.pt")
	r.Fail(&observer.FailedEvent{StopTime: t0.Add(2 * time.Second), Trace: []string{"command exited with status 2\n"}})
	got, err := sacredjson.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"status": "FAILED"`, `"start_time": "2026-11-27T03:07:12.269319"`, `"heartbeat": "2026-11-27T03:07:13.269319"`,
		`"stop_time": "2026-11-27T03:07:14.269319"`, `"result": 0.5`, `"--id": null`,
		// An omitted source is [name, md5], with its size in omitted_sources.
		"\"big.bin\",\n        \"" + strings.Repeat("a", 32) + "\"",
		"\"train.py\",\n        \"_sources/train_" + strings.Repeat("b", 32) + ".py\"",
		`"size": 11534336`,
	} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("run.json lacks %s:\n%s", want, got)
		}
	}
	// And back.
	v, _ := Decode(got)
	run := ReadRun("3", v.(map[string]any))
	if run.Status != observer.StatusFailed || !run.StartTime.Equal(t0) || len(run.Artifacts) != 1 || run.Result != 0.5 {
		t.Errorf("read back: %+v", run)
	}
	src := run.Experiment.Sources
	if len(src) != 2 || !src[0].Omitted || src[0].Size != 11<<20 || src[0].MD5 != strings.Repeat("a", 32) || src[0].Path != "" ||
		src[1].Omitted || src[1].MD5 != strings.Repeat("b", 32) {
		t.Errorf("sources read back: %+v", src)
	}
}

// TestMetricsEncode drives the writer as a blob store would: each new
// content is encoded from the previous one held in memory.
func TestMetricsEncode(t *testing.T) {
	m := NewMetrics()
	var cur []byte
	write := func() {
		t.Helper()
		if !m.Dirty() {
			return
		}
		var buf bytes.Buffer
		if _, err := m.Encode(&buf, bytes.NewReader(cur)); err != nil {
			t.Fatal(err)
		}
		m.Commit()
		cur = buf.Bytes()
	}
	write()
	if string(cur) != "{}" {
		t.Fatalf("first content = %q, want {}", cur)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	want := map[string]map[string][]any{}
	for beat := range 5 {
		ev := &observer.MetricsEvent{}
		for _, name := range []string{"loss", "acc"} {
			var pts []observer.MetricPoint
			for k := range beat {
				p := observer.MetricPoint{Step: int64(beat*10 + k), Value: float64(k) / 3, Time: t0.Add(time.Duration(beat) * time.Second)}
				if k == 2 {
					p.Value = math.Inf(1)
				}
				pts = append(pts, p)
				w := want[name]
				if w == nil {
					w = map[string][]any{}
					want[name] = w
				}
				w["steps"] = append(w["steps"], p.Step)
				w["timestamps"] = append(w["timestamps"], FormatTime(p.Time))
				w["values"] = append(w["values"], p.Value)
			}
			ev.Metrics = append(ev.Metrics, observer.MetricSeries{Name: name, Points: pts})
		}
		m.Add(ev)
		if beat == 3 {
			// A failed write: the points are dropped, the caller sends them
			// again, and the writer starts from the current content.
			var buf bytes.Buffer
			m.Encode(&buf, bytes.NewReader(cur))
			m.Abort()
			if !m.Unknown() {
				t.Fatal("Abort left the layout known")
			}
			if err := m.Load(cur); err != nil {
				t.Fatal(err)
			}
			m.Add(ev)
		}
		write()
	}
	wm := map[string]any{}
	for k, v := range want {
		wm[k] = map[string]any{"steps": v["steps"], "timestamps": v["timestamps"], "values": v["values"]}
	}
	exp, _ := sacredjson.Marshal(wm)
	if !bytes.Equal(cur, exp) {
		t.Errorf("metrics.json\n got: %s\nwant: %s", cur, exp)
	}
	v, _ := Decode(cur)
	series := ReadMetrics(v.(map[string]any))
	if len(series) != 2 || series[0].Name != "acc" || len(series[1].Points) != 10 || !math.IsInf(series[1].Points[5].Value, 1) {
		t.Errorf("ReadMetrics = %+v", series)
	}
}
