package query

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sacred-go/sacred/internal/testserver"
	"github.com/sacred-go/sacred/pkg/observer"
	_ "github.com/sacred-go/sacred/pkg/observer/file"
	_ "github.com/sacred-go/sacred/pkg/observer/mongo"
	_ "github.com/sacred-go/sacred/pkg/observer/sqlstore"

	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// storeNow is the moment every query of the cross-store test runs at.
var storeNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// spec is one run of the fixture. Every time is a whole millisecond, the
// precision of MongoDB, so that every store holds the same instants.
type spec struct {
	name, status, command string
	config, info          map[string]any
	result                any
	hasResult             bool
	queued                time.Time // a queued run: the queue time
	start, beat, stop     time.Time
	loss                  []float64
}

func day(d, h int, min ...int) time.Time {
	m := 0
	if len(min) > 0 {
		m = min[0]
	}
	return time.Date(2026, 11, d, h, m, 0, 0, time.UTC)
}

// fixture is ~30 varied runs: every status (DIED? too), names that differ
// in case and in non-ASCII letters, config values of every JSON type and
// the same key with different types ("5" against 5), missing keys,
// results of every type, metrics.
func fixture() []spec {
	ms := time.Millisecond
	return []spec{
		{name: "mnist_cnn", status: "COMPLETED", config: map[string]any{"lr": 0.01, "opt": "sgd", "epochs": 10, "debug": false, "five": 5},
			info: map[string]any{"tag": "a", "n": 1}, result: 0.91, hasResult: true, start: day(20, 10), beat: day(20, 11), stop: day(20, 11), loss: []float64{1, 0.5, 0.25}},
		{name: "mnist_cnn", status: "COMPLETED", config: map[string]any{"lr": 0.1, "opt": "adam", "epochs": 20, "debug": true, "five": "5"},
			info: map[string]any{"tag": "b"}, result: 0.95, hasResult: true, start: day(20, 12), beat: day(20, 14), stop: day(20, 14, 30), loss: []float64{0.9, 0.1}},
		{name: "mnist_mlp", status: "FAILED", config: map[string]any{"lr": 0.3, "opt": "Adam", "epochs": 5},
			result: nil, hasResult: true, start: day(21, 9), beat: day(21, 9, 5), stop: day(21, 9, 6)},
		{name: "Mnist_upper", status: "COMPLETED", config: map[string]any{"lr": 0.001, "opt": "sgd", "nested": map[string]any{"a": map[string]any{"b": "deep"}}},
			info: map[string]any{"tag": "c", "n": 3.5}, result: "good", hasResult: true, start: day(21, 10), beat: day(21, 12), stop: day(21, 12, 1)},
		{name: "cifar10_resnet", status: "INTERRUPTED", config: map[string]any{"lr": 0.05, "opt": "sgd", "layers": []any{64, 128}},
			result: 0.5, hasResult: true, start: day(22, 0), beat: day(22, 1), stop: day(22, 1, 1)},
		{name: "cifar10_vgg", status: "TIMEOUT", config: map[string]any{"lr": 0.05, "opt": "momentum", "tags": []any{"a", "b"}},
			info: map[string]any{"tag": []any{"a"}}, result: map[string]any{"score": 0.8, "ok": true}, hasResult: true,
			start: day(22, 2), beat: day(22, 3), stop: day(22, 3, 0).Add(123 * ms)},
		{name: "cifar10_vgg", status: "COMPLETED", config: map[string]any{"lr": 0.02, "opt": "sgd", "note": nil},
			result: []any{1, 2}, hasResult: true, start: day(22, 4), beat: day(22, 6), stop: day(22, 6)},
		{name: "ünïcode_exp", status: "COMPLETED", config: map[string]any{"lr": 0.2, "opt": "é", "learning-rate": 0.7},
			result: true, hasResult: true, start: day(23, 8), beat: day(23, 9), stop: day(23, 9)},
		{name: "zeta", status: "COMPLETED", config: map[string]any{"lr": 0.2, "opt": "z"},
			result: -1, hasResult: true, start: day(23, 10), beat: day(23, 10, 30), stop: day(23, 10, 30)},
		{name: "a_very_long_experiment_name_that_sql_cuts", status: "COMPLETED", config: map[string]any{"lr": 0.015, "opt": "sgd"},
			result: 0.93, hasResult: true, start: day(24, 1), beat: day(24, 2), stop: day(24, 2).Add(1 * ms)},
		{name: "mnist_cnn", status: "RUNNING", config: map[string]any{"lr": 0.01, "opt": "sgd"}, // heartbeat 30 s ago
			info: map[string]any{"tag": "a"}, result: 0.4, hasResult: true, start: storeNow.Add(-2 * time.Hour), beat: storeNow.Add(-30 * time.Second), loss: []float64{2, 1.5}},
		{name: "mnist_cnn", status: "RUNNING", config: map[string]any{"lr": 0.02, "opt": "sgd"}, // last beat an hour ago
			result: nil, hasResult: true, start: storeNow.Add(-3 * time.Hour), beat: storeNow.Add(-time.Hour), loss: []float64{3}},
		{name: "mnist_mlp", status: "RUNNING", config: map[string]any{"lr": 0.02, "opt": "adam"}, // never beat, started long ago
			start: storeNow.Add(-time.Hour)},
		{name: "mnist_mlp", status: "RUNNING", config: map[string]any{"lr": 0.03, "opt": "adam"}, // never beat, just started
			start: storeNow.Add(-10 * time.Second)},
		{name: "mnist_cnn", status: "QUEUED", config: map[string]any{"lr": 0.5, "opt": "sgd"}, queued: day(26, 0)},
		{name: "cifar10_resnet", status: "FAILED", config: map[string]any{"lr": 0.5, "opt": "sgd", "epochs": 1},
			result: 7, hasResult: true, start: day(24, 5), beat: day(24, 5, 2), stop: day(24, 5, 2).Add(999 * ms)},
		{name: "mnist_cnn", status: "COMPLETED", config: map[string]any{"lr": 0.01, "opt": "sgd", "epochs": 10, "five": 5.5},
			info: map[string]any{"tag": "b", "n": 10}, result: 0.91, hasResult: true, start: day(24, 6), beat: day(24, 8), stop: day(24, 8), loss: []float64{0.3, 0.2, 0.19}},
		{name: "mnist_cnn", status: "COMPLETED", config: map[string]any{"lr": 0.011, "opt": "sgd", "epochs": 12},
			info: map[string]any{}, result: 0.89, hasResult: true, start: day(24, 9), beat: day(24, 12), stop: day(24, 12)},
		{name: "cifar100", status: "COMPLETED", config: map[string]any{"lr": "0.1", "opt": "sgd"},
			result: 0.6, hasResult: true, start: day(25, 0), beat: day(25, 0, 10), stop: day(25, 0, 10)},
		{name: "cifar100", status: "COMPLETED", config: map[string]any{"opt": "sgd", "nested": map[string]any{"a": 1}},
			result: 0.61, hasResult: true, start: day(25, 1), beat: day(25, 3), stop: day(25, 3)},
		{name: "cifar100", status: "COMPLETED", config: map[string]any{"lr": 0.1, "opt": "SGD", "nested": map[string]any{"a": []any{map[string]any{"b": "deep"}}}},
			result: 0.62, hasResult: true, start: day(25, 4), beat: day(25, 5), stop: day(25, 5)},
		{name: "mnist_cnn", status: "FAILED", config: map[string]any{"lr": 0.9, "opt": "sgd"},
			start: day(25, 6), beat: day(25, 6, 1), stop: day(25, 6, 1), result: nil, hasResult: true},
		{name: "speed", status: "COMPLETED", config: map[string]any{"lr": 0.01, "opt": "sgd"}, command: "python3 speed.py --fast",
			result: 100, hasResult: true, start: day(26, 1), beat: day(26, 1), stop: day(26, 1).Add(500 * ms)},
		{name: "speed", status: "COMPLETED", config: map[string]any{"lr": 0.01, "opt": "sgd"}, command: "python3 speed.py --slow",
			result: 99.5, hasResult: true, start: day(26, 2), beat: day(26, 4), stop: day(26, 4)},
		{name: "mnist_cnn", status: "COMPLETED", config: map[string]any{"lr": 0.01, "opt": "sgd", "epochs": 10},
			info: map[string]any{"tag": "a", "n": -2}, result: 0.97, hasResult: true, start: day(26, 5), beat: day(26, 9), stop: day(26, 9), loss: []float64{0.5, 0.05}},
		{name: "mnist_cnn", status: "COMPLETED", config: map[string]any{"lr": 1e-5, "opt": "sgd", "epochs": 100},
			result: 0.5, hasResult: true, start: day(26, 10), beat: day(26, 11), stop: day(26, 11)},
		{name: "mnist_cnn", status: "INTERRUPTED", config: map[string]any{"lr": 0.01, "opt": "sgd"},
			start: day(26, 12), beat: day(26, 12, 1), stop: day(26, 12, 1), result: 0.3, hasResult: true},
		{name: "quoted\"name", status: "COMPLETED", config: map[string]any{"lr": 0.4, "opt": "50%_off"},
			result: 0.7, hasResult: true, start: day(26, 13), beat: day(26, 13, 5), stop: day(26, 13, 5)},
		{name: "mnist_cnn", status: "COMPLETED", config: map[string]any{"lr": 0.01, "opt": "sgd", "debug": true},
			info: map[string]any{"tag": "a"}, result: 0.9, hasResult: true, start: day(27, 1), beat: day(27, 2), stop: day(27, 2)},
		{name: "mnist_cnn", status: "QUEUED", config: map[string]any{"lr": 0.01, "opt": "sgd"}, queued: day(27, 3)},
		// A diverged run: NaN in the result and the config, which some
		// databases cannot read as JSON.
		{name: "mnist_nan", status: "COMPLETED", config: map[string]any{"lr": math.NaN(), "opt": "sgd", "clip": math.Inf(1)},
			info: map[string]any{"tag": "a"}, result: math.NaN(), hasResult: true, start: day(27, 4), beat: day(27, 5), stop: day(27, 5)},
	}
}

// queries is the cross-store table: each runs on every store.
var queries = []Options{
	{},
	{Where: `config.lr > 0.01 && status == "COMPLETED"`},
	{Name: "^mnist"},
	{Name: "mnist"},
	{Name: "(?i)^mnist"},
	{Name: "cnn$", Status: []string{"completed"}},
	{Where: `name =~ "^cifar10_"`},
	{Where: `name !~ "mnist"`},
	{Where: `result >= 0.9 || info.tag in ["a","b"]`},
	{Where: `!(config.opt == "sgd")`},
	{Where: `config.opt != "sgd"`},
	{Where: `config.opt > "sgd"`},
	{Where: `config.opt < "Z"`},
	{Where: `config.opt == "é"`},
	{Where: `config.opt =~ "%_"`},
	{Where: `metrics.loss.last < 0.2`},
	{Where: `metrics.loss.min <= 0.25 && metrics.loss.max >= 1`},
	{Where: `duration > 3600`},
	{Where: `duration <= 60`},
	{Where: `start_time >= "2026-11-24"`},
	{Where: `start_time >= "2026-11-24T02:00:00.0005"`},
	{Where: `stop_time < "2026-11-24T02:00:00.0005"`},
	{Where: `stop_time > "2026-11-24T02:00:00.001"`},
	{Where: `stop_time == "2026-11-22T03:00:00.123"`},
	{Where: `stop_time == null`},
	{Where: `heartbeat != null && start_time < "2026-11-26"`},
	{Where: `queue_time >= "2026-11-26"`},
	{Where: `start_time < "garbage"`},
	{Status: []string{"DIED?"}},
	{Status: []string{"RUNNING"}},
	{Status: []string{"running", "queued"}},
	{Where: `status == "DIED?" || status == "TIMEOUT"`},
	{Where: `status != "RUNNING"`},
	{Where: `status in ["FAILED", "INTERRUPTED"]`},
	{Where: `status not in ["COMPLETED"]`},
	{Where: `result > 0.9`},
	{Where: `result < 0.5`},
	{Where: `result <= 0.5 || result >= 100`},
	{Where: `config.lr < 0.02`},
	{Where: `config.lr >= 0.3`},
	{Where: `config.clip > 1`},
	{Where: `!(config.lr < 0.02)`},
	{Where: `result == 0.91`},
	{Where: `result == 7`},
	{Where: `result == null`},
	{Where: `exists(result)`},
	{Where: `!exists(result)`},
	{Where: `result == "good"`},
	{Where: `result == true`},
	{Where: `result.score > 0.5`},
	{Where: `result.ok`},
	{Where: `result != 0.91`},
	{Where: `config.five > 3`},
	{Where: `config.five == "5"`},
	{Where: `config.five != 5`},
	{Where: `config.lr == "0.1"`},
	{Where: `config.lr == 0.1`},
	{Where: `config.lr < 1e-3`},
	{Where: `config.debug`},
	{Where: `!config.debug`},
	{Where: `config.debug == false`},
	{Where: `config.note == null`},
	{Where: `exists(config.note)`},
	{Where: `config.missing != 1`},
	{Where: `!(config.missing == 1)`},
	{Where: `config.epochs >= 10 && config.epochs < 100`},
	{Where: `config.nested.a.b == "deep"`},
	{Where: `exists(config.nested.a)`},
	{Where: `config.layers.0 == 64`},
	{Where: `config.tags == "a"`},
	{Where: `config["learning-rate"] > 0.5`},
	{Where: `info.tag == "a"`},
	{Where: `info.tag != "a"`},
	{Where: `info.n < 2`},
	{Where: `exists(info.n) && !(info.n > 0)`},
	{Where: `command =~ "--fast"`},
	{Where: `id > 25 || id <= 2`},
	{Where: `name == "mnist_cnn" && !(config.lr == 0.01 || config.opt != "sgd")`},
	{Where: `name == "a_very_long_experiment_name_that_sql_cuts"`},
	{Where: `name >= "m" && name < "n"`},
	{Where: `name == "quoted\"name"`},
	{Where: `experiment.name == "zeta"`},
	{Where: `config.lr > config.five`},
	{Where: `1 == 1 && status == "FAILED"`},
	{Where: `false`},
	{Sort: []string{"-result"}},
	{Sort: []string{"config.lr", "-id"}},
	{Sort: []string{"-start_time"}, Limit: 5},
	{Sort: []string{"name", "-stop_time"}, Limit: 7},
	{Sort: []string{"-heartbeat"}, Where: `status == "COMPLETED"`, Limit: 3},
	{Sort: []string{"command"}, Status: []string{"COMPLETED"}, Limit: 4},
	{Where: `config.opt == "sgd"`, Sort: []string{"-stop_time"}, Limit: 4},
	{Sort: []string{"metrics.loss.last"}, Limit: 3},
	{Limit: 4},
	{Last: 5},
	{Last: 5, Sort: []string{"-result"}},
	{Indices: []int{0, -1, 3}},
	{Where: `config.opt == "sgd"`, Indices: []int{-2}},
}

func TestQueriesInProcess(t *testing.T) {
	// Every query of the table compiles and runs over the fixture.
	runs := fixtureRuns()
	for _, o := range queries {
		q, err := Compile(o)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		if _, err := q.Select(runs, storeNow); err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
	}
}

// fixtureRuns is the fixture as observer.Run values, ids 1..n.
func fixtureRuns() []*observer.Run {
	var out []*observer.Run
	for i, s := range fixture() {
		r := &observer.Run{ID: strconv.Itoa(i + 1), Status: s.status, Command: command(s),
			Experiment: observer.Experiment{Name: s.name}, Config: plainJSON(s.config).(map[string]any),
			StartTime: s.start, Heartbeat: s.beat, StopTime: s.stop, QueueTime: s.queued}
		if s.info != nil {
			r.Info = plainJSON(s.info).(map[string]any)
		}
		if s.hasResult {
			r.Result, r.HasResult = plainJSON(s.result), true
		}
		if s.loss != nil {
			ser := observer.MetricSeries{Name: "loss"}
			for j, v := range s.loss {
				ser.Points = append(ser.Points, observer.MetricPoint{Step: int64(j), Value: v, Time: s.start})
			}
			r.Metrics = []observer.MetricSeries{ser}
		}
		out = append(out, r)
	}
	return out
}

func command(s spec) string {
	if s.command != "" {
		return s.command
	}
	return "python3 " + s.name + ".py"
}

// plainJSON gives numbers as float64, as a JSON reader does.
func plainJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := map[string]any{}
		for k, e := range x {
			m[k] = plainJSON(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = plainJSON(e)
		}
		return l
	}
	return norm(v)
}

// write records the fixture through an observer kind's real observer.
// write records the first n runs of the fixture with the kind's observer
// and returns the ids the store gave them: 1, 2, 3... except in TinyDB,
// whose ids are Sacred's random hex.
func write(t *testing.T, kind, value string, n int) []string {
	t.Helper()
	var given []string
	ctx := context.Background()
	k, ok := observer.Lookup(kind)
	if !ok {
		t.Fatalf("no observer kind %s", kind)
	}
	for i, s := range fixture()[:n] {
		o, err := k.OpenObserver(ctx, value, observer.Settings{})
		if err != nil {
			t.Fatalf("%s: open: %v", kind, err)
		}
		ev := &observer.StartEvent{Command: command(s),
			Experiment: observer.Experiment{Name: s.name, BaseDir: "/home/u/exp", MainFile: s.name + ".py"},
			Config:     s.config, Meta: observer.Meta{Command: "main"}}
		var id string
		if !s.queued.IsZero() {
			ev.Time = s.queued
			qt := s.queued
			ev.Meta.QueueTime = &qt
			id, err = o.Queued(ctx, ev)
		} else {
			ev.Time = s.start
			ev.Host = &observer.Host{Hostname: "h", OS: [2]string{"Linux", "Linux-6"}, CPU: "cpu"}
			id, err = o.Started(ctx, ev)
		}
		if err != nil {
			t.Fatalf("%s: run %d: start: %v", kind, i+1, err)
		}
		if id != strconv.Itoa(i+1) && kind != "tiny_db" {
			t.Fatalf("%s: run %d got id %s", kind, i+1, id)
		}
		given = append(given, id)
		if s.loss != nil {
			ser := observer.MetricSeries{Name: "loss"}
			for j, v := range s.loss {
				ser.Points = append(ser.Points, observer.MetricPoint{Step: int64(j), Value: v, Time: s.start})
			}
			info := map[string]any{}
			for k, v := range s.info {
				info[k] = v
			}
			must(t, o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{ser}, Info: info}))
		}
		if !s.beat.IsZero() {
			beats := observertest.NewBeats()
			beats.Out.Append([]byte("epoch 1\n"))
			hb := beats.Next(s.beat, s.info)
			hb.Result, hb.HasResult = s.result, s.hasResult
			must(t, o.Heartbeat(ctx, hb))
		}
		switch s.status {
		case "COMPLETED":
			must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: s.stop, Result: s.result, HasResult: s.hasResult}))
		case "FAILED":
			must(t, o.Failed(ctx, &observer.FailedEvent{StopTime: s.stop, Trace: []string{"exit status 1\n"}}))
		case "INTERRUPTED", "TIMEOUT":
			must(t, o.Interrupted(ctx, &observer.InterruptedEvent{StopTime: s.stop, Status: s.status}))
		}
		must(t, o.Close(ctx))
	}
	return given
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// readAll reads every run back through the kind's reader, in store order.
func readAll(t *testing.T, kind, value string) []*observer.Run {
	t.Helper()
	ctx := context.Background()
	k, _ := observer.Lookup(kind)
	r, err := k.OpenReader(ctx, value, observer.Settings{})
	if err != nil {
		t.Fatalf("%s: open reader: %v", kind, err)
	}
	defer r.Close()
	ids, err := r.Runs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*observer.Run
	for _, id := range ids {
		run, err := r.Run(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, run)
	}
	return out
}

// want is the in-process answer over the fixture itself, the reference
// every store must give.
func want(t *testing.T, q *Query, n int) string {
	got, err := q.Select(fixtureRuns()[:n], storeNow)
	if err != nil {
		t.Fatal(err)
	}
	return ids(got)
}

// pushedCheck runs one query the way a reader does: the candidates the
// store returns for the pushed-down condition (ids, in the store's order
// when ordered is set), then Select over them in store order. It checks
// the candidates hold every run that matches, exactly those when the plan
// says nothing is left to do in process, and the end result.
func pushedCheck(t *testing.T, store string, q *Query, all []*observer.Run, candidates []string, residual, ordered bool) {
	t.Helper()
	o := q.opts
	in := map[string]bool{}
	for _, id := range candidates {
		in[id] = true
	}
	var sub, matched []*observer.Run
	for _, r := range all {
		if in[r.ID] {
			sub = append(sub, r)
		}
		if q.Match(r, storeNow) {
			matched = append(matched, r)
			if !ordered && !in[r.ID] {
				t.Errorf("%s %+v: run %s matches but the store did not return it", store, o, r.ID)
			}
		}
	}
	if !residual && !ordered && ids(sub) != ids(matched) {
		t.Errorf("%s %+v: the plan claims exactness, but the store returned %s where %s match", store, o, ids(sub), ids(matched))
	}
	got, err := q.Select(sub, storeNow)
	if err != nil {
		t.Fatalf("%s %+v: %v", store, o, err)
	}
	w := want(t, q, len(all))
	if ids(got) != w {
		t.Errorf("%s %+v:\n got %s\nwant %s", store, o, ids(got), w)
	}
	if ordered && strings.Join(candidates, ",") != w {
		t.Errorf("%s %+v: the database's order %s is not the query's %s", store, o, strings.Join(candidates, ","), w)
	}
}

func compileAll(t *testing.T) []*Query {
	var qs []*Query
	for _, o := range queries {
		q, err := Compile(o)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		qs = append(qs, q)
	}
	return qs
}

func TestSameRunsFileStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "runs")
	write(t, "file_storage", dir, len(fixture()))
	all := readAll(t, "file_storage", dir)
	for _, q := range compileAll(t) {
		// The file store is evaluated in process over what the reader
		// gives.
		got, err := q.Select(all, storeNow)
		if err != nil {
			t.Fatal(err)
		}
		if w := want(t, q, len(all)); ids(got) != w {
			t.Errorf("file %+v:\n got %s\nwant %s", q.opts, ids(got), w)
		}
	}
}

func TestSameRunsMongo(t *testing.T) {
	m := testserver.FerretDB(t)
	db := "sacred_query"
	// FerretDB 1.24 drops the connection on the last run's NaN and
	// Infinity: MongoDB gets the others.
	write(t, "mongo_db", m.Addr()+":"+db, len(fixture())-1)
	all := readAll(t, "mongo_db", m.Addr()+":"+db)
	ctx := context.Background()
	client, err := mongo.Connect(options.Client().ApplyURI(m.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	coll := client.Database(db).Collection("runs")
	for _, q := range compileAll(t) {
		plan := q.Mongo(storeNow)
		cur, err := coll.Find(ctx, plan.Filter, plan.FindOptions())
		if err != nil {
			t.Errorf("mongo %+v: find %v: %v", q.opts, plan.Filter, err)
			continue
		}
		var cand []string
		for cur.Next(ctx) {
			id := cur.Current.Lookup("_id")
			cand = append(cand, fmt.Sprint(id.AsInt64()))
			if _, err := cur.Current.LookupErr("captured_out"); err == nil {
				t.Errorf("the projection kept captured_out")
			}
		}
		if err := cur.Err(); err != nil {
			t.Errorf("mongo %+v: %v", q.opts, err)
		}
		cur.Close(ctx)
		pushedCheck(t, "mongo", q, all, cand, plan.Residual, false)
	}
	// The filter really narrows: the selective queries return few documents.
	q, _ := Compile(Options{Where: `config.opt == "é"`})
	n, err := coll.CountDocuments(ctx, q.Mongo(storeNow).Filter)
	if err != nil || n != 1 {
		t.Errorf("count of a pushed-down filter: %d %v", n, err)
	}
}

// sqlDatabase gives each test a database of its own on the server named by
// the environment variable (CREATE DATABASE sacred_query_<random>, dropped
// at the end). Without a server the test is skipped, except in CI.
func sqlDatabase(t *testing.T, d Dialect) (sacredURL string, db *sql.DB) {
	t.Helper()
	ctx := context.Background()
	if d == SQLite {
		path := filepath.Join(t.TempDir(), "runs.db")
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return "sqlite:///" + path, db
	}
	env, def := "SACRED_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
	if d == MySQL {
		env, def = "SACRED_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"
	}
	admin := os.Getenv(env)
	if admin == "" {
		admin = def
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("%s: %v", env, err)
	}
	dsn := func(dbName string) (string, string) {
		if d == PostgreSQL {
			v := *u
			v.Scheme, v.Path = "postgres", "/"+dbName
			return "pgx", v.String()
		}
		pw, _ := u.User.Password()
		cred := u.User.Username()
		if pw != "" {
			cred += ":" + pw
		}
		return "mysql", cred + "@tcp(" + u.Host + ")/" + dbName + "?parseTime=true&loc=UTC"
	}
	driver, adminDSN := dsn(strings.TrimPrefix(u.Path, "/"))
	adminDB, err := sql.Open(driver, adminDSN)
	if err == nil {
		err = adminDB.PingContext(ctx)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s unreachable in CI: %v", d, err)
		}
		t.Skipf("%s unreachable (set %s): %v", d, env, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "sacred_query_" + hex.EncodeToString(b[:])
	if _, err := adminDB.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	driver, dbDSN := dsn(name)
	db, err = sql.Open(driver, dbDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		drop := "DROP DATABASE IF EXISTS " + name
		if d == PostgreSQL {
			drop += " WITH (FORCE)"
		}
		if _, err := adminDB.ExecContext(context.Background(), drop); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		adminDB.Close()
	})
	v := *u
	v.Path = "/" + name
	return v.String(), db
}

func TestSameRunsSQL(t *testing.T) {
	for _, d := range []Dialect{SQLite, PostgreSQL, MySQL} {
		t.Run(string(d), func(t *testing.T) {
			sacredURL, db := sqlDatabase(t, d)
			write(t, "sql", sacredURL, len(fixture()))
			all := readAll(t, "sql", sacredURL)
			checkSQL(t, string(d), d, db, all, true, true)

			// A database Python Sacred wrote has none of our tables: the
			// plan then reads Sacred's columns only (a float result, a
			// name cut to 32 characters), as the reader does.
			for _, tb := range []string{"run_extra", "run_output", "metric"} {
				if _, err := db.Exec("DROP TABLE " + tb); err != nil {
					t.Fatal(err)
				}
			}
			all = readAll(t, "sql", sacredURL)
			checkSQL(t, string(d)+" (Sacred's tables only)", d, db, all, false, false)
		})
	}
}

// checkSQL runs every query's plan on db. With sameAsFixture the result
// must be the fixture's; otherwise (a store that lost data) it must be
// the in-process result over what the reader gives.
func checkSQL(t *testing.T, store string, d Dialect, db *sql.DB, all []*observer.Run, extended, sameAsFixture bool) {
	for _, q := range compileAll(t) {
		plan := q.SQL(d, extended, storeNow)
		rows, err := db.Query(plan.IDQuery(), plan.Args...)
		if err != nil {
			t.Errorf("%s %+v: %v\n%s %v", store, q.opts, err, plan.IDQuery(), plan.Args)
			continue
		}
		var cand []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			cand = append(cand, id)
		}
		if err := rows.Err(); err != nil {
			t.Errorf("%s %+v: %v", store, q.opts, err)
		}
		rows.Close()
		ordered := plan.Limit > 0
		if sameAsFixture {
			pushedCheck(t, store, q, all, cand, plan.Residual, ordered)
			continue
		}
		in := map[string]bool{}
		for _, id := range cand {
			in[id] = true
		}
		var sub []*observer.Run
		for _, r := range all {
			if in[r.ID] {
				sub = append(sub, r)
			} else if !ordered && q.Match(r, storeNow) {
				t.Errorf("%s %+v: run %s matches but the database did not return it", store, q.opts, r.ID)
			}
		}
		got, err := q.Select(sub, storeNow)
		if err != nil {
			t.Fatal(err)
		}
		w, err := q.Select(all, storeNow)
		if err != nil {
			t.Fatal(err)
		}
		if ids(got) != ids(w) {
			t.Errorf("%s %+v:\n got %s\nwant %s", store, q.opts, ids(got), ids(w))
		}
	}
}
