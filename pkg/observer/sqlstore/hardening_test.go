package sqlstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Regression tests of issue 8's SQL items; the binary's side is in
// test/e2e/hardening_sql_test.go.

func beat(out *memOutput, from int64, info map[string]any) *observer.HeartbeatEvent {
	if info == nil {
		info = map[string]any{}
	}
	return &observer.HeartbeatEvent{Info: info, BeatTime: t0, Output: out, From: from, To: out.Size()}
}

func readRun(t *testing.T, url, id string) *observer.Run {
	t.Helper()
	run, err := newReader(t, url).Run(ctx, id)
	must(t, err)
	return run
}

// A beat before the child wrote anything reads no output: the spool says
// io.EOF for any read at its end, even of nothing.
func TestHardening06SQLBeatWithoutOutput(t *testing.T) {
	forEach(t, func(t *testing.T, url string) {
		o := newObs(t, url)
		id, err := o.Started(ctx, startEvent(t))
		must(t, err)
		out := &memOutput{}
		must(t, o.Heartbeat(ctx, beat(out, 0, map[string]any{"k": "v"})))
		must(t, o.Heartbeat(ctx, beat(out, 0, map[string]any{"k": "w"})))
		out.Append([]byte("late\n"))
		must(t, o.Heartbeat(ctx, beat(out, 0, map[string]any{"k": "x"})))
		must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: t0}))
		run := readRun(t, url, id)
		if run.Info["k"] != "x" || string(run.Output) != "late\n" || run.Heartbeat.IsZero() {
			t.Errorf("info %v, output %q, heartbeat %v", run.Info, run.Output, run.Heartbeat)
		}
	})
}

// A store that is down at the end of the run returns the error of the
// final status write, and the same calls sent again once it is back (as
// the retry decorator does: failed points first, the beat from the same
// From) record the run completely and exactly once.
func TestHardening07SQLFinalStatusAfterOutage(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		purl, p := viaProxy(t, url)
		o := newObs(t, purl)
		id, err := o.Started(ctx, startEvent(t))
		must(t, err)
		out := &memOutput{}
		out.Append([]byte("one\n"))
		pts := []observer.MetricSeries{{Name: "loss", Points: []observer.MetricPoint{{Step: 0, Value: 1, Time: t0}}}}
		must(t, o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: pts, Info: map[string]any{}}))
		must(t, o.Heartbeat(ctx, beat(out, 0, nil)))

		p.set(proxyDown)
		out.Append([]byte("two\n"))
		late := []observer.MetricSeries{{Name: "loss", Points: []observer.MetricPoint{{Step: 1, Value: 0.5, Time: t0}}}}
		if err := o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: late, Info: map[string]any{}}); err == nil {
			t.Fatal("metrics stored with the server down")
		}
		if err := o.Heartbeat(ctx, beat(out, 4, map[string]any{"final": true})); err == nil {
			t.Fatal("heartbeat stored with the server down")
		}
		err = o.Completed(ctx, &observer.CompletedEvent{StopTime: t0, Result: 3.0, HasResult: true})
		if err == nil || !strings.Contains(err.Error(), "completed") {
			t.Fatalf("completed with the server down: %v", err)
		}
		if run := readRun(t, url, id); run.Status != observer.StatusRunning {
			t.Fatalf("status %s while the final write failed", run.Status)
		}

		p.set(proxyUp)
		must(t, o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: late, Info: map[string]any{}}))
		must(t, o.Heartbeat(ctx, beat(out, 4, map[string]any{"final": true})))
		must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: t0, Result: 3.0, HasResult: true}))
		run := readRun(t, url, id)
		if run.Status != observer.StatusCompleted || string(run.Output) != "one\ntwo\n" || run.Result != 3.0 || run.Info["final"] != true {
			t.Errorf("after the outage: %s, output %q, result %v, info %v", run.Status, run.Output, run.Result, run.Info)
		}
		if len(run.Metrics) != 1 || len(run.Metrics[0].Points) != 2 {
			t.Errorf("metrics %+v, want 2 points of loss", run.Metrics)
		}
	})
}

// Points are written at their position in the series: a batch sent again
// after an error that hid a commit that went through is not doubled, and
// neither is output written again from the same From.
func TestWritesSentAgainAreNotDoubled(t *testing.T) {
	forEach(t, func(t *testing.T, url string) {
		o := newObs(t, url)
		id, err := o.Started(ctx, startEvent(t))
		must(t, err)
		ev := &observer.MetricsEvent{Info: map[string]any{}, Metrics: []observer.MetricSeries{
			{Name: "loss", Points: []observer.MetricPoint{{Step: 0, Value: 1, Time: t0}, {Step: 1, Value: 0.5, Time: t0}}},
			{Name: "acc", Points: []observer.MetricPoint{{Step: 0, Value: 0.1, Time: t0}}},
		}}
		before := map[string]int64{}
		for k, v := range o.points {
			before[k] = v
		}
		must(t, o.LogMetrics(ctx, ev))
		// The commit went through but its answer was lost: the retry
		// decorator sends the same points again, then new ones.
		o.points = before
		must(t, o.LogMetrics(ctx, ev))
		must(t, o.LogMetrics(ctx, &observer.MetricsEvent{Info: map[string]any{}, Metrics: []observer.MetricSeries{
			{Name: "loss", Points: []observer.MetricPoint{{Step: 2, Value: 0.25, Time: t0}}}}}))

		out := &memOutput{}
		out.Append([]byte("abc"))
		must(t, o.Heartbeat(ctx, beat(out, 0, nil)))
		out.Append([]byte("def"))
		must(t, o.Heartbeat(ctx, beat(out, 0, nil))) // From stayed: the first answer was lost
		out.Append([]byte("gh"))
		must(t, o.Heartbeat(ctx, beat(out, 6, nil)))

		run := readRun(t, url, id)
		got := map[string][]float64{}
		for _, s := range run.Metrics {
			for _, p := range s.Points {
				got[s.Name] = append(got[s.Name], p.Value)
			}
		}
		if len(got["loss"]) != 3 || got["loss"][2] != 0.25 || len(got["acc"]) != 1 {
			t.Errorf("metrics %v", got)
		}
		if string(run.Output) != "abcdefgh" {
			t.Errorf("output %q", run.Output)
		}
	})
}

// One metric name PostgreSQL cannot hold (NUL, bytes that are not UTF-8)
// must not fail the batch, and with it every point of the run, at every
// beat.
func TestHardening08SQLMetricNameWithNUL(t *testing.T) {
	forEach(t, func(t *testing.T, url string) {
		var warn bytes.Buffer
		cfg, err := ParseConfig(url)
		must(t, err)
		o, err := New(ctx, cfg, observer.Settings{Warn: &warn})
		must(t, err)
		t.Cleanup(func() { o.Close(ctx) })
		id, err := o.Started(ctx, startEvent(t))
		must(t, err)
		p := []observer.MetricPoint{{Step: 0, Value: 1, Time: t0}}
		must(t, o.LogMetrics(ctx, &observer.MetricsEvent{Info: map[string]any{}, Metrics: []observer.MetricSeries{
			{Name: "x\x00y", Points: p}, {Name: "bad\xff", Points: p}, {Name: "loss", Points: p}}}))
		must(t, o.LogMetrics(ctx, &observer.MetricsEvent{Info: map[string]any{}, Metrics: []observer.MetricSeries{
			{Name: "x\x00y", Points: p}, {Name: "loss", Points: p}}}))
		run := readRun(t, url, id)
		got := map[string]int{}
		for _, s := range run.Metrics {
			got[s.Name] = len(s.Points)
		}
		want := map[string]int{"x\uFFFDy": 2, "bad\uFFFD": 1, "loss": 2}
		for k, n := range want {
			if got[k] != n {
				t.Errorf("metrics %v, want %v", got, want)
				break
			}
		}
		if strings.Count(warn.String(), "\n") != 2 || !strings.Contains(warn.String(), `"x\x00y"`) {
			t.Errorf("warnings %q, want one line per name changed", warn.String())
		}
	})
}

// Bytes that are not UTF-8 in argv, the working directory, the command and
// the config are stored without refusing the run: kept byte for byte in
// the JSON columns (\udcXX), replaced by U+FFFD in text columns.
func TestHardening12SQLNonUTF8(t *testing.T) {
	forEach(t, func(t *testing.T, url string) {
		o := newObs(t, url)
		ev := startEvent(t)
		ev.Command = "echo \xff\xfe done"
		ev.Meta.Argv = []string{"echo", "\xff\xfe", "done\x00?"}
		ev.Meta.Cwd = "/tmp/d\xe9j\xe0"
		ev.Meta.Comment = "c\xff"
		ev.Experiment.BaseDir = ev.Meta.Cwd
		ev.Experiment.Name = "n\xff"
		ev.Config = map[string]any{"path": "a\xffb", "k\xfe": []any{"\xc3", 1.0}, "ok": "é"}
		ev.Host.ENV = map[string]string{"V": "\xff"}
		id, err := o.Started(ctx, ev)
		must(t, err)
		must(t, o.Heartbeat(ctx, beat(&memOutput{}, 0, map[string]any{"i": "\xf0\x28"})))
		must(t, o.Failed(ctx, &observer.FailedEvent{StopTime: t0, Trace: []string{"exit 1\n", "bad \xff\n"}}))

		run := readRun(t, url, id)
		if strings.Join(run.Meta.Argv, "|") != "echo|\xff\xfe|done\x00?" || run.Meta.Cwd != ev.Meta.Cwd || run.Meta.Comment != "c\xff" {
			t.Errorf("meta argv %q cwd %q comment %q", run.Meta.Argv, run.Meta.Cwd, run.Meta.Comment)
		}
		if run.Config["path"] != "a\xffb" || run.Config["ok"] != "é" {
			t.Errorf("config %q", run.Config)
		}
		if l, _ := run.Config["k\xfe"].([]any); len(l) != 2 || l[0] != "\xc3" {
			t.Errorf("config %q", run.Config)
		}
		if run.Experiment.BaseDir != ev.Meta.Cwd || run.Experiment.Name != "n\xff" || run.Host.ENV["V"] != "\xff" || run.Info["i"] != "\xf0\x28" {
			t.Errorf("experiment %q %q, env %q, info %q", run.Experiment.BaseDir, run.Experiment.Name, run.Host.ENV, run.Info)
		}
		if run.Command != "echo \uFFFD\uFFFD done" || strings.Join(run.FailTrace, "") != "exit 1\nbad \xff\n" {
			t.Errorf("command %q, trace %q", run.Command, run.FailTrace)
		}
		// What Python's json.loads reads as surrogate-escaped text.
		js := scalar[string](t, o, "SELECT config FROM run WHERE run_id = ?", id)
		if !strings.Contains(js, `"a\udcffb"`) || !strings.Contains(js, `"k\udcfe"`) {
			t.Errorf("config JSON %s", js)
		}
		if c := scalar[string](t, o, "SELECT command FROM run WHERE run_id = ?", id); c != "echo \uFFFD\uFFFD done" {
			t.Errorf("run.command %q", c)
		}
	})
}

func TestJSONRoundTrip(t *testing.T) {
	for _, v := range []any{
		"plain", "a\xffb", "\\udcff is text", `\u0000sacred:bff\u0000`, "x\x00y",
		map[string]any{"a\x80": []any{math.Inf(1), "b\xc0", map[string]any{"\xfe": math.NaN()}}, "n": -0.5},
	} {
		js, err := marshal(v)
		must(t, err)
		var got any
		must(t, unmarshal(js, &got))
		want, _ := marshal(v)
		if again, _ := marshal(got); again != want {
			t.Errorf("%q: JSON %s, read back as %q", v, js, got)
		}
	}
	// Python's own forms read as ours.
	var got map[string]any
	must(t, unmarshal(`{"a": "\udcff\uDCFE", "b": NaN, "c": "\\udcff", "d": "\ud83d\ude00"}`, &got))
	if got["a"] != "\xff\xfe" || !math.IsNaN(got["b"].(float64)) || got["c"] != `\udcff` || got["d"] != "😀" {
		t.Errorf("%q", got)
	}
}

// MySQL: no value larger than the server's max_allowed_packet is sent
// (it resets the connection, and the command never ran): large artifacts
// and resources are split into file_chunk rows, a source marked Omitted
// (or too large) is stored by name, md5 and size, and a config too large
// is left out with a warning naming the setting.
func TestHardening13SQLMaxAllowedPacket(t *testing.T) {
	for _, b := range backends() {
		if b.name != "mysql" {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			url := b.url(t)
			var warn bytes.Buffer
			cfg, err := ParseConfig(url)
			must(t, err)
			o, err := New(ctx, cfg, observer.Settings{Warn: &warn})
			must(t, err)
			t.Cleanup(func() { o.Close(ctx) })
			if o.packet <= 0 || o.maxValue >= o.packet {
				t.Fatalf("packet %d, max value %d", o.packet, o.maxValue)
			}
			big := int(o.packet) + 1<<20
			dir := t.TempDir()
			ev := startEvent(t)
			ev.Config = map[string]any{"blob": strings.Repeat("x", big)}
			huge := writeFile(t, dir, "huge.py", strings.Repeat("y", big))
			ev.Experiment.Sources = append(ev.Experiment.Sources,
				observer.Source{Name: "capped.py", Path: filepath.Join(dir, "absent"), MD5: "0123456789abcdef0123456789abcdef", Size: 11 << 20, Omitted: true},
				observer.Source{Name: "huge.py", Path: huge, MD5: "fedcba9876543210fedcba9876543210", Size: int64(big)})
			id, err := o.Started(ctx, ev)
			must(t, err)
			if !strings.Contains(warn.String(), "config not stored") || !strings.Contains(warn.String(), "max_allowed_packet") ||
				!strings.Contains(warn.String(), "huge.py") || strings.Contains(warn.String(), "capped.py") {
				t.Errorf("warnings %q", warn.String())
			}

			content := make([]byte, big)
			rand.Read(content)
			art := filepath.Join(dir, "model.bin")
			must(t, os.WriteFile(art, content, 0o600))
			must(t, o.Artifact(ctx, &observer.ArtifactEvent{Name: "model.bin", Path: art}))
			must(t, o.Resource(ctx, &observer.ResourceEvent{Path: art, MD5: "00112233445566778899aabbccddeeff"}))
			out := &memOutput{}
			out.Append([]byte("still connected\n"))
			must(t, o.Heartbeat(ctx, beat(out, 0, nil)))
			must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: t0}))

			r := newReader(t, url)
			run, err := r.Run(ctx, id)
			must(t, err)
			if run.Status != observer.StatusCompleted || run.Config != nil || string(run.Output) != "still connected\n" {
				t.Errorf("run %s, config has %d keys, output %q", run.Status, len(run.Config), run.Output)
			}
			srcs := map[string]observer.Source{}
			for _, s := range run.Experiment.Sources {
				srcs[s.Name] = s
			}
			if s := srcs["capped.py"]; !s.Omitted || s.Size != 11<<20 || s.MD5 != "0123456789abcdef0123456789abcdef" {
				t.Errorf("capped source %+v", s)
			}
			if s := srcs["huge.py"]; !s.Omitted || s.Size != int64(big) {
				t.Errorf("huge source %+v", s)
			}
			if n := scalar[int](t, o, "SELECT COUNT(*) FROM source WHERE filename IN ('capped.py', 'huge.py') AND content IS NULL"); n != 2 {
				t.Errorf("%d sources without content, want 2", n)
			}
			rc, err := r.Artifact(ctx, id, "model.bin")
			must(t, err)
			got, err := io.ReadAll(rc)
			must(t, err)
			if !bytes.Equal(got, content) {
				t.Errorf("artifact read back: %d bytes, equal %v", len(got), bytes.Equal(got, content))
			}
			if n := scalar[int64](t, o, "SELECT SUM(LENGTH(content)) FROM file_chunk WHERE kind = 'resource'"); n != int64(big) {
				t.Errorf("resource chunks hold %d bytes, want %d", n, big)
			}
		})
	}
}

// Files larger than one value are split in every dialect (the limit is
// lowered here to see it on PostgreSQL and SQLite).
func TestLargeFilesInChunks(t *testing.T) {
	forEach(t, func(t *testing.T, url string) {
		o := newObs(t, url)
		o.maxValue = 1000
		id, err := o.Started(ctx, startEvent(t))
		must(t, err)
		content := make([]byte, 2500)
		rand.Read(content)
		small := []byte("small")
		dir := t.TempDir()
		must(t, os.WriteFile(filepath.Join(dir, "big"), content, 0o600))
		must(t, os.WriteFile(filepath.Join(dir, "small"), small, 0o600))
		must(t, o.Artifact(ctx, &observer.ArtifactEvent{Name: "big", Path: filepath.Join(dir, "big")}))
		must(t, o.Artifact(ctx, &observer.ArtifactEvent{Name: "small", Path: filepath.Join(dir, "small")}))
		r := newReader(t, url)
		for name, want := range map[string][]byte{"big": content, "small": small} {
			rc, err := r.Artifact(ctx, id, name)
			must(t, err)
			got, _ := io.ReadAll(rc)
			if !bytes.Equal(got, want) {
				t.Errorf("%s: %d bytes read back, want %d", name, len(got), len(want))
			}
		}
		if n := scalar[int](t, o, "SELECT COUNT(*) FROM file_chunk WHERE kind = 'artifact'"); n != 3 {
			t.Errorf("%d chunks, want 3", n)
		}
		var content2 sql.NullString
		must(t, o.db.QueryRow(o.q("SELECT content FROM artifact WHERE filename = ?"), "small").Scan(&content2))
		if content2.String != "small" {
			t.Errorf("small artifact stored as %q", content2.String)
		}
	})
}

// A server that stops answering cannot freeze the observer: every
// operation ends by its context's deadline, or by the observer's own
// timeout when the context has none.
func TestHardening29SQLOperationsBounded(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		purl, p := viaProxy(t, url)
		o := newObs(t, purl)
		o.opTimeout = 500 * time.Millisecond
		id, err := o.Started(ctx, startEvent(t))
		must(t, err)
		queued := newObs(t, purl)
		queued.opTimeout = o.opTimeout
		art := writeFile(t, t.TempDir(), "a.txt", "artifact")
		p.set(proxyHang)

		out := &memOutput{}
		out.Append([]byte("x"))
		calls := map[string]func(context.Context) error{
			"started": func(ctx context.Context) error { _, err := queued.Started(ctx, startEvent(t)); return err },
			"metrics": func(ctx context.Context) error {
				return o.LogMetrics(ctx, &observer.MetricsEvent{Info: map[string]any{}, Metrics: []observer.MetricSeries{
					{Name: "m", Points: []observer.MetricPoint{{Time: t0}}}}})
			},
			"heartbeat": func(ctx context.Context) error { return o.Heartbeat(ctx, beat(out, 0, nil)) },
			"artifact":  func(ctx context.Context) error { return o.Artifact(ctx, &observer.ArtifactEvent{Name: "a", Path: art}) },
			"resource":  func(ctx context.Context) error { return o.Resource(ctx, &observer.ResourceEvent{Path: art, MD5: "x"}) },
			"completed": func(ctx context.Context) error { return o.Completed(ctx, &observer.CompletedEvent{StopTime: t0}) },
			"read run": func(ctx context.Context) error {
				r, err := openURL(ctx, purl)
				if err != nil {
					return err
				}
				defer r.Close()
				_, err = r.Run(ctx, id)
				return err
			},
		}
		for name, call := range calls {
			// No deadline: the observer's own bound applies.
			if err := call(context.Background()); err == nil {
				t.Errorf("%s succeeded against a server that does not answer", name)
			}
			// The caller's deadline.
			dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			if err := call(dctx); err == nil {
				t.Errorf("%s with a deadline succeeded against a server that does not answer", name)
			}
			cancel()
		}
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		o.Close(cctx) // returns, whatever the driver does with its connections
	})
}

// A database whose extension tables were made by a development build
// before positions is refused with a line that says what to do, instead
// of failing at every beat.
func TestOldLayoutRefused(t *testing.T) {
	url := sqliteURL(t)
	cfg, err := ParseConfig(url)
	must(t, err)
	db, err := open(ctx, cfg)
	must(t, err)
	_, err = db.Exec("CREATE TABLE run_output (run_id VARCHAR(24) NOT NULL, seq INTEGER NOT NULL, content BLOB, PRIMARY KEY (run_id, seq))")
	must(t, err)
	db.Close()
	_, err = New(ctx, cfg, observer.Settings{})
	if err == nil || !strings.Contains(err.Error(), "ALTER TABLE run_output RENAME TO run_output_old") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("New on an old layout: %v", err)
	}
}
