package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

var ctx = context.Background()

// TestLifecycle records a whole completed run and reads it back.
func TestLifecycle(t *testing.T) {
	forEach(t, func(t *testing.T, url string) {
		o := newObs(t, url)
		ev := startEvent(t)
		id, err := o.Started(ctx, ev)
		must(t, err)
		if id != "1" {
			t.Errorf("first id = %q, want \"1\"", id)
		}
		must(t, o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{
			{Name: "loss", Points: []observer.MetricPoint{{Step: 0, Value: 0.5, Time: t0}, {Step: 1, Value: 0.25, Time: t0.Add(time.Second)}}},
			{Name: "acc", Points: []observer.MetricPoint{{Step: 0, Value: 0.1, Time: t0}}},
		}}))
		out := &memOutput{}
		out.Append([]byte("hello\nbad \xff byte\n"))
		must(t, o.Heartbeat(ctx, &observer.HeartbeatEvent{Info: map[string]any{"foo": "bar"}, BeatTime: t0.Add(2 * time.Second),
			Output: out, From: 0, To: out.Size()}))
		must(t, o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{
			{Name: "loss", Points: []observer.MetricPoint{{Step: 2, Value: 0.125, Time: t0.Add(3 * time.Second)}}},
		}}))
		from := out.Size()
		out.Append([]byte("done\n"))
		must(t, o.Heartbeat(ctx, &observer.HeartbeatEvent{Info: map[string]any{"foo": "baz"}, BeatTime: t0.Add(4 * time.Second),
			Output: out, From: from, To: out.Size(), Final: true}))
		dir := t.TempDir()
		res := writeFile(t, dir, "input.txt", "a\nb\n")
		must(t, o.Resource(ctx, &observer.ResourceEvent{Path: res, MD5: "abc"}))
		art := writeFile(t, dir, "model.bin", "weights\x00\x01\x02")
		must(t, o.Artifact(ctx, &observer.ArtifactEvent{Name: "model.bin", Path: art, OrigPath: art}))
		must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: t0.Add(5 * time.Second), Result: 0.93, HasResult: true}))

		r := newReader(t, url)
		ids, err := r.Runs(ctx)
		must(t, err)
		if !reflect.DeepEqual(ids, []string{"1"}) {
			t.Fatalf("Runs = %v", ids)
		}
		run, err := r.Run(ctx, "1")
		must(t, err)
		if run.Status != observer.StatusCompleted || run.Command != ev.Command {
			t.Errorf("status %q command %q", run.Status, run.Command)
		}
		if !run.StartTime.Equal(t0) || !run.StopTime.Equal(t0.Add(5*time.Second)) || !run.Heartbeat.Equal(t0.Add(4*time.Second)) {
			t.Errorf("times: start %v stop %v beat %v", run.StartTime, run.StopTime, run.Heartbeat)
		}
		if !run.HasResult || run.Result != 0.93 {
			t.Errorf("result %v %v", run.Result, run.HasResult)
		}
		if got := string(run.Output); got != "hello\nbad \xff byte\ndone\n" {
			t.Errorf("output %q", got)
		}
		if co := scalar[string](t, o, "SELECT captured_out FROM run WHERE run_id = ?", "1"); co != "hello\nbad \uFFFD byte\ndone\n" {
			t.Errorf("captured_out %q", co)
		}
		if !reflect.DeepEqual(run.Info, map[string]any{"foo": "baz"}) {
			t.Errorf("info %v", run.Info)
		}
		if !reflect.DeepEqual(run.Config, ev.Config) {
			t.Errorf("config %v", run.Config)
		}
		if len(run.Metrics) != 2 || run.Metrics[0].Name != "loss" || len(run.Metrics[0].Points) != 3 ||
			run.Metrics[0].Points[2].Value != 0.125 || run.Metrics[0].Points[2].Step != 2 ||
			!run.Metrics[0].Points[1].Time.Equal(t0.Add(time.Second)) || run.Metrics[1].Name != "acc" {
			t.Errorf("metrics %+v", run.Metrics)
		}
		if !reflect.DeepEqual(run.Artifacts, []string{"model.bin"}) {
			t.Errorf("artifacts %v", run.Artifacts)
		}
		rc, err := r.Artifact(ctx, "1", "model.bin")
		must(t, err)
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != "weights\x00\x01\x02" {
			t.Errorf("artifact content %q", b)
		}
		if _, err := r.Artifact(ctx, "1", "nope"); !errors.Is(err, observer.ErrNotFound) {
			t.Errorf("missing artifact: %v", err)
		}
		if _, err := r.Run(ctx, "99"); !errors.Is(err, observer.ErrNotFound) {
			t.Errorf("missing run: %v", err)
		}
		if len(run.Resources) != 1 || run.Resources[0].Path != res || run.Resources[0].MD5 != "abc" {
			t.Errorf("resources %v", run.Resources)
		}
		if run.Host == nil || run.Host.Hostname != "box" || run.Host.CPUCount != 2 || run.Host.ENV["A"] != "b" {
			t.Errorf("host %+v", run.Host)
		}
		if !reflect.DeepEqual(run.Experiment, ev.Experiment) {
			want := ev.Experiment
			for i := range want.Sources {
				want.Sources[i].Path = "" // not stored
			}
			if !reflect.DeepEqual(run.Experiment, want) {
				t.Errorf("experiment\n got %+v\nwant %+v", run.Experiment, want)
			}
		}
		if run.Meta.Comment != "a comment" || run.Meta.Priority == nil || *run.Meta.Priority != 5 || run.Meta.Cwd != ev.Meta.Cwd {
			t.Errorf("meta %+v", run.Meta)
		}
		// Sacred's own columns, as Sacred's reader sees them.
		if v := scalar[float64](t, o, "SELECT result FROM run WHERE run_id = ?", "1"); v != 0.93 {
			t.Errorf("run.result %v", v)
		}
		if n := scalar[string](t, o, "SELECT s.content FROM source s JOIN experiments_sources es ON es.source_id = s.source_id"); n != "print('hi')\n" {
			t.Errorf("source content %q", n)
		}
		if n := scalar[int](t, o, "SELECT COUNT(*) FROM experiments_dependencies"); n != 2 {
			t.Errorf("dependencies linked: %d", n)
		}
		if v := scalar[string](t, o, "SELECT version FROM dependency WHERE name = ?", "torch"); v != "2.1.0" {
			t.Errorf("torch version %q", v)
		}
		if n := scalar[int](t, o, "SELECT COUNT(*) FROM host WHERE python_version IS NULL AND hostname = ?", "box"); n != 1 {
			t.Errorf("host rows %d", n)
		}
	})
}

// TestSecondRunDedups starts two runs of the same experiment on the same
// host: one experiment, host, source, dependency and repository row.
func TestSecondRunDedups(t *testing.T) {
	forEach(t, func(t *testing.T, url string) {
		ev := startEvent(t)
		var ids []string
		for range 2 {
			o := newObs(t, url)
			id, err := o.Started(ctx, ev)
			must(t, err)
			ids = append(ids, id)
			must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: t0}))
		}
		if ids[0] == ids[1] {
			t.Fatalf("same id twice: %v", ids)
		}
		o := newObs(t, url)
		for _, tb := range []string{"experiment", "host", "source", "repository"} {
			if n := scalar[int](t, o, "SELECT COUNT(*) FROM "+tb); n != 1 {
				t.Errorf("%s rows = %d, want 1", tb, n)
			}
		}
		if n := scalar[int](t, o, "SELECT COUNT(*) FROM dependency"); n != 2 {
			t.Errorf("dependency rows = %d, want 2", n)
		}
		// A changed experiment is a new row.
		ev.Experiment.Dependencies = append(ev.Experiment.Dependencies, "scipy==1.0")
		_, err := o.Started(ctx, ev)
		must(t, err)
		if n := scalar[int](t, o, "SELECT COUNT(*) FROM experiment"); n != 2 {
			t.Errorf("experiment rows after a change = %d, want 2", n)
		}
		if n := scalar[int](t, o, "SELECT COUNT(*) FROM dependency"); n != 3 {
			t.Errorf("dependency rows = %d, want 3", n)
		}
	})
}

// TestResults stores a result of every JSON type: the FLOAT column holds
// the numbers, the run always ends COMPLETED, and the reader gives back
// the full value.
func TestResults(t *testing.T) {
	cases := []struct {
		name   string
		result any
		num    any // what run.result holds: float64 or nil
	}{
		{"float", 0.93, 0.93},
		{"int", 3, 3.0},
		{"null", nil, nil},
		{"bool", true, nil},
		{"string", "best", nil},
		{"list", []any{1.0, "a", nil}, nil},
		{"object", map[string]any{"acc": 0.9, "nested": map[string]any{"k": []any{true}}}, nil},
		{"nan", math.NaN(), "nan"},
		{"inf", math.Inf(1), "inf"},
	}
	forEach(t, func(t *testing.T, url string) {
		o0 := newObs(t, url)
		for _, c := range cases {
			o := newObs(t, url)
			id, err := o.Started(ctx, startEvent(t))
			must(t, err)
			must(t, o.Heartbeat(ctx, &observer.HeartbeatEvent{Info: map[string]any{}, BeatTime: t0, Result: c.result, HasResult: true}))
			must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: t0, Result: c.result, HasResult: true}))
			r := newReader(t, url)
			run, err := r.Run(ctx, id)
			must(t, err)
			if run.Status != observer.StatusCompleted {
				t.Errorf("%s: status %s", c.name, run.Status)
			}
			want := c.result
			if c.name == "int" {
				want = 3.0 // JSON numbers come back as float64
			}
			switch c.name {
			case "nan":
				if f, ok := run.Result.(float64); !ok || !math.IsNaN(f) {
					t.Errorf("nan: got %#v", run.Result)
				}
			default:
				if !run.HasResult || !reflect.DeepEqual(run.Result, want) {
					t.Errorf("%s: got %#v, want %#v", c.name, run.Result, want)
				}
			}
			var got *float64
			must(t, o0.db.QueryRow(o0.q("SELECT result FROM run WHERE run_id = ?"), id).Scan(&got))
			switch c.num {
			case nil:
				if got != nil {
					t.Errorf("%s: run.result = %v, want NULL", c.name, *got)
				}
			case "nan", "inf":
				// Stored where the dialect can hold it, NULL otherwise.
			default:
				if got == nil || *got != c.num.(float64) {
					t.Errorf("%s: run.result = %v, want %v", c.name, got, c.num)
				}
			}
		}
	})
}

// TestNonFiniteJSON keeps NaN and infinities in config and info, written
// as Python's json does.
func TestNonFiniteJSON(t *testing.T) {
	o := newObs(t, sqliteURL(t))
	ev := startEvent(t)
	ev.Config["nan"] = math.NaN()
	id, err := o.Started(ctx, ev)
	must(t, err)
	must(t, o.Heartbeat(ctx, &observer.HeartbeatEvent{Info: map[string]any{"v": []any{math.Inf(-1), "NaN"}}, BeatTime: t0}))
	if s := scalar[string](t, o, "SELECT info FROM run WHERE run_id = ?", id); s != `{"v":[-Infinity,"NaN"]}` {
		t.Errorf("info %s", s)
	}
	r := newReader(t, "sqlite:///"+o.cfg.Database)
	run, err := r.Run(ctx, id)
	must(t, err)
	if f, _ := run.Config["nan"].(float64); !math.IsNaN(f) {
		t.Errorf("config nan: %#v", run.Config["nan"])
	}
	if v := run.Info["v"].([]any); !math.IsInf(v[0].(float64), -1) || v[1] != "NaN" {
		t.Errorf("info %#v", v)
	}
}

// TestBigOutput stores 20 MB of output complete: run_output has every
// byte, captured_out its head and tail around a marker.
func TestBigOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("20 MB per database")
	}
	forEach(t, func(t *testing.T, url string) {
		o := newObs(t, url)
		id, err := o.Started(ctx, startEvent(t))
		must(t, err)
		out := &memOutput{}
		line := []byte("0123456789 abcdefghijklmnopqrstuvwxyz héllo wörld €\n")
		var from int64
		for beat := range 4 {
			for out.Size() < int64(beat+1)*5<<20 {
				out.Append(line)
			}
			must(t, o.Heartbeat(ctx, &observer.HeartbeatEvent{Info: map[string]any{}, BeatTime: t0, Output: out, From: from, To: out.Size()}))
			from = out.Size()
		}
		out.Append([]byte("the end\n"))
		must(t, o.Heartbeat(ctx, &observer.HeartbeatEvent{Info: map[string]any{}, BeatTime: t0, Output: out, From: from, To: out.Size(), Final: true}))
		must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: t0}))
		run, err := newReader(t, url).Run(ctx, id)
		must(t, err)
		if !bytes.Equal(run.Output, out.b) {
			t.Errorf("output: got %d bytes, want %d", len(run.Output), len(out.b))
		}
		co := scalar[string](t, o, "SELECT captured_out FROM run WHERE run_id = ?", id)
		if len(co) > o.outCap || !strings.Contains(co, "bytes of output omitted here") ||
			!strings.HasSuffix(co, "the end\n") || !strings.HasPrefix(co, string(line)) {
			t.Errorf("captured_out: %d bytes (cap %d), head %q tail %q", len(co), o.outCap, co[:min(len(co), 60)], co[max(0, len(co)-60):])
		}
		if !strings.Contains(co, "€") || strings.Contains(co, "\uFFFD") {
			t.Errorf("captured_out split a character")
		}
	})
}

// TestArtifactsAndSharedResources: every artifact event is a row; the
// same resource in two runs is one row linked twice.
func TestArtifactsAndSharedResources(t *testing.T) {
	forEach(t, func(t *testing.T, url string) {
		dir := t.TempDir()
		res := writeFile(t, dir, "data.csv", "x,y\n1,2\n")
		var ids []string
		for i := range 2 {
			o := newObs(t, url)
			id, err := o.Started(ctx, startEvent(t))
			must(t, err)
			ids = append(ids, id)
			must(t, o.Resource(ctx, &observer.ResourceEvent{Path: res, MD5: "md5-of-data"}))
			must(t, o.Resource(ctx, &observer.ResourceEvent{Path: res, MD5: "md5-of-data"}))
			a := writeFile(t, dir, "a.txt", "v1 of run "+strconv.Itoa(i))
			must(t, o.Artifact(ctx, &observer.ArtifactEvent{Name: "a.txt", Path: a}))
			a = writeFile(t, dir, "a.txt", "v2 of run "+strconv.Itoa(i))
			must(t, o.Artifact(ctx, &observer.ArtifactEvent{Name: "a.txt", Path: a}))
			must(t, o.Artifact(ctx, &observer.ArtifactEvent{Name: "big.bin", Path: writeFile(t, dir, "big.bin", strings.Repeat("\x00\xff", 3<<20))}))
			must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: t0}))
		}
		o := newObs(t, url)
		if n := scalar[int](t, o, "SELECT COUNT(*) FROM resource"); n != 1 {
			t.Errorf("resource rows %d, want 1", n)
		}
		if n := scalar[int](t, o, "SELECT COUNT(*) FROM runs_resources"); n != 2 {
			t.Errorf("runs_resources rows %d, want 2", n)
		}
		if n := scalar[int](t, o, "SELECT COUNT(*) FROM artifact"); n != 6 {
			t.Errorf("artifact rows %d, want 6", n)
		}
		if b := scalar[[]byte](t, o, "SELECT content FROM resource"); string(b) != "x,y\n1,2\n" {
			t.Errorf("resource content %q", b)
		}
		r := newReader(t, url)
		for i, id := range ids {
			run, err := r.Run(ctx, id)
			must(t, err)
			if !reflect.DeepEqual(run.Artifacts, []string{"a.txt", "big.bin"}) || len(run.Resources) != 1 {
				t.Errorf("run %s: artifacts %v resources %v", id, run.Artifacts, run.Resources)
			}
			rc, err := r.Artifact(ctx, id, "a.txt")
			must(t, err)
			b, _ := io.ReadAll(rc)
			if string(b) != "v2 of run "+strconv.Itoa(i) {
				t.Errorf("run %s artifact: %q", id, b)
			}
			rc, err = r.Artifact(ctx, id, "big.bin")
			must(t, err)
			b, _ = io.ReadAll(rc)
			if len(b) != 6<<20 {
				t.Errorf("big artifact %d bytes", len(b))
			}
		}
	})
}

// TestEndings: failed, interrupted, timeout and queued runs.
func TestEndings(t *testing.T) {
	forEach(t, func(t *testing.T, url string) {
		r := func() *Reader { return newReader(t, url) }

		o := newObs(t, url)
		id, err := o.Started(ctx, startEvent(t))
		must(t, err)
		trace := []string{"exit status 1\n", "Traceback (most recent call last):\n", "ValueError: boom\n"}
		must(t, o.Failed(ctx, &observer.FailedEvent{StopTime: t0, Trace: trace}))
		run, err := r().Run(ctx, id)
		must(t, err)
		if run.Status != observer.StatusFailed || !reflect.DeepEqual(run.FailTrace, trace) || run.StopTime.IsZero() {
			t.Errorf("failed: %s %q", run.Status, run.FailTrace)
		}
		if ft := scalar[string](t, o, "SELECT fail_trace FROM run WHERE run_id = ?", id); ft != strings.Join(trace, "\n") {
			t.Errorf("fail_trace column %q", ft)
		}

		for _, st := range []string{observer.StatusInterrupted, observer.StatusTimeout} {
			o := newObs(t, url)
			id, err := o.Started(ctx, startEvent(t))
			must(t, err)
			must(t, o.Interrupted(ctx, &observer.InterruptedEvent{StopTime: t0, Status: st}))
			run, err := r().Run(ctx, id)
			must(t, err)
			if run.Status != st || run.HasResult {
				t.Errorf("interrupted: %s %v", run.Status, run.HasResult)
			}
		}

		o = newObs(t, url)
		ev := startEvent(t)
		ev.Host = nil
		qt := t0.Add(time.Minute)
		ev.Meta.QueueTime = &qt
		id, err = o.Queued(ctx, ev)
		must(t, err)
		run, err = r().Run(ctx, id)
		must(t, err)
		if run.Status != observer.StatusQueued || !run.QueueTime.Equal(qt) || !run.StartTime.IsZero() || run.Host != nil {
			t.Errorf("queued: %s queue %v start %v host %v", run.Status, run.QueueTime, run.StartTime, run.Host)
		}
		if run.Meta.QueueTime == nil || !run.Meta.QueueTime.Equal(qt) {
			t.Errorf("meta.queue_time %v", run.Meta.QueueTime)
		}
	})
}

// TestGivenID uses an id chosen elsewhere and refuses one that exists.
func TestGivenID(t *testing.T) {
	forEach(t, func(t *testing.T, url string) {
		o := newObs(t, url)
		ev := startEvent(t)
		ev.ID = "7"
		id, err := o.Started(ctx, ev)
		must(t, err)
		if id != "7" {
			t.Errorf("id %q", id)
		}
		_, err = newObs(t, url).Started(ctx, ev)
		if !errors.Is(err, observer.ErrIDTaken) {
			t.Errorf("taken id: %v", err)
		}
		ev.ID = strings.Repeat("x", 25)
		if _, err := newObs(t, url).Started(ctx, ev); err == nil || !strings.Contains(err.Error(), "24") {
			t.Errorf("long id: %v", err)
		}
		// Our sequence moves past a run_id taken by -i.
		ev.ID = "2"
		_, err = newObs(t, url).Started(ctx, ev)
		must(t, err)
		ev.ID = ""
		var got []string
		for range 2 {
			id, err := newObs(t, url).Started(ctx, ev)
			must(t, err)
			got = append(got, id)
		}
		// Rows 1 ("7") and 2 ("2") exist; row 3 gets "3", row 4 gets "4".
		if !reflect.DeepEqual(got, []string{"3", "4"}) {
			t.Errorf("ids %v", got)
		}
		ids, err := newReader(t, url).Runs(ctx)
		must(t, err)
		if !reflect.DeepEqual(ids, []string{"7", "2", "3", "4"}) {
			t.Errorf("Runs %v", ids)
		}
	})
}

// TestConcurrentRuns starts 30 runs at once, each with its own
// connection: 30 distinct ids, 30 rows.
func TestConcurrentRuns(t *testing.T) {
	forEach(t, func(t *testing.T, url string) {
		newObs(t, url) // the tables exist before the race, as in real use
		ev := startEvent(t)
		const n = 30
		ids := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o, err := newURL(ctx, url)
				if err != nil {
					errs[i] = err
					return
				}
				defer o.Close(ctx)
				ids[i], errs[i] = o.Started(ctx, ev)
				if errs[i] == nil {
					errs[i] = o.Completed(ctx, &observer.CompletedEvent{StopTime: t0, Result: float64(i), HasResult: true})
				}
			}()
		}
		wg.Wait()
		seen := map[string]bool{}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("run %d: %v", i, err)
			}
			if seen[ids[i]] {
				t.Errorf("id %s twice", ids[i])
			}
			seen[ids[i]] = true
		}
		o := newObs(t, url)
		if c := scalar[int](t, o, "SELECT COUNT(*) FROM run WHERE status = 'COMPLETED'"); c != n {
			t.Errorf("%d completed rows, want %d", c, n)
		}
		if c := scalar[int](t, o, "SELECT COUNT(*) FROM experiment"); c != 1 {
			t.Errorf("%d experiment rows, want 1", c)
		}
	})
}

// TestConcurrentSchema creates the tables from many connections at once.
func TestConcurrentSchema(t *testing.T) {
	forEach(t, func(t *testing.T, url string) {
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o, err := newURL(ctx, url)
				if err == nil {
					o.Close(ctx)
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})
}

// TestFailedBeatCatchesUp: output of a beat that failed is stored by the
// next one, once.
func TestFailedBeatCatchesUp(t *testing.T) {
	o := newObs(t, sqliteURL(t))
	id, err := o.Started(ctx, startEvent(t))
	must(t, err)
	out := &memOutput{}
	out.Append([]byte("one\n"))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := o.Heartbeat(cctx, &observer.HeartbeatEvent{Info: map[string]any{}, BeatTime: t0, Output: out, From: 0, To: out.Size()}); err == nil {
		t.Fatal("heartbeat with a cancelled context succeeded")
	}
	out.Append([]byte("two\n"))
	must(t, o.Heartbeat(ctx, &observer.HeartbeatEvent{Info: map[string]any{}, BeatTime: t0, Output: out, From: 0, To: out.Size()}))
	run, err := newReader(t, "sqlite:///"+o.cfg.Database).Run(ctx, id)
	must(t, err)
	if string(run.Output) != "one\ntwo\n" {
		t.Errorf("output %q", run.Output)
	}
}

// BenchmarkHeartbeat measures one beat on SQLite with 64 KiB of new
// output, info and a metric point: the per-beat cost of the observer.
func BenchmarkHeartbeat(b *testing.B) {
	url := "sqlite:///" + b.TempDir() + "/bench.db"
	o, err := newURL(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close(ctx)
	ev := &observer.StartEvent{Command: "bench", Time: t0, Config: map[string]any{}}
	if _, err := o.Started(ctx, ev); err != nil {
		b.Fatal(err)
	}
	out := &memOutput{}
	chunk := bytes.Repeat([]byte("a line of output from the child\n"), 2048)
	b.SetBytes(int64(len(chunk)))
	var from int64
	for i := 0; b.Loop(); i++ {
		out.Append(chunk)
		if err := o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: []observer.MetricPoint{{Step: int64(i), Value: 1, Time: t0}}}}}); err != nil {
			b.Fatal(err)
		}
		if err := o.Heartbeat(ctx, &observer.HeartbeatEvent{Info: map[string]any{"i": i}, BeatTime: t0, Output: out, From: from, To: out.Size()}); err != nil {
			b.Fatal(err)
		}
		from = out.Size()
	}
}
