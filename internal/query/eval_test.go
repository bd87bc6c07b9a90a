package query

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

var fixedNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func sampleRun() *observer.Run {
	prio := 3.0
	qt := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	return &observer.Run{
		ID:      "12",
		Status:  "COMPLETED",
		Command: "python3 train.py --epochs 3",
		Experiment: observer.Experiment{Name: "mnist_cnn", BaseDir: "/home/u/exp", MainFile: "train.py",
			Sources:      []observer.Source{{Name: "train.py", MD5: "abc"}},
			Dependencies: []string{"numpy==1.24.2"},
			Repositories: []observer.Repository{{URL: "https://x/y.git", Commit: "deadbeef", Dirty: true}}},
		Host: &observer.Host{Hostname: "gpu1", OS: [2]string{"Linux", "Linux-6.1"}, CPU: "AMD EPYC", CPUCount: 8,
			ENV: map[string]string{"CUDA": "12"}},
		Meta: observer.Meta{Command: "main", Comment: "first try", Priority: &prio, QueueTime: &qt,
			RerunOf:       &observer.RunRef{Kind: "file_storage", Store: "runs", ID: "12"},
			ConfigUpdates: map[string]any{"lr": 0.3}},
		Config: map[string]any{"lr": 0.3, "epochs": int64(3), "opt": "sgd", "debug": false,
			"layers": []any{map[string]any{"size": 64.0}, map[string]any{"size": 10.0}},
			"nested": map[string]any{"a": map[string]any{"b": "deep"}}, "none": nil, "five": "5",
			"learning-rate": 0.1, "tags": []any{"a", "b"}},
		Info:      map[string]any{"tag": "a", "n": 7},
		Result:    0.93,
		HasResult: true,
		QueueTime: qt,
		StartTime: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
		Heartbeat: time.Date(2026, 11, 27, 11, 0, 5, 0, time.UTC),
		StopTime:  time.Date(2026, 11, 27, 11, 0, 0, 500000000, time.UTC),
		FailTrace: nil,
		Metrics: []observer.MetricSeries{
			{Name: "loss", Points: []observer.MetricPoint{{Step: 0, Value: 1}, {Step: 1, Value: 0.1}, {Step: 2, Value: 0.15}}},
			{Name: "val.acc", Points: []observer.MetricPoint{{Value: math.NaN()}, {Value: 0.5}, {Value: 0.7}}},
		},
		Artifacts: []string{"model.pt"},
	}
}

func TestMatchWhere(t *testing.T) {
	r := sampleRun()
	for _, tc := range []struct {
		where string
		want  bool
	}{
		{`config.lr > 0.01 && status == "COMPLETED"`, true},
		{`config.lr > 0.5`, false},
		{`name =~ "^mnist"`, true},
		{`name =~ "cnn"`, true}, // re.search: anywhere
		{`name =~ "^cnn"`, false},
		{`name !~ "^cnn"`, true},
		{`result >= 0.9 || info.tag in ["x","y"]`, true},
		{`info.tag in ["a","b"]`, true},
		{`info.tag not in ["a","b"]`, false},
		{`!(config.opt == "sgd")`, false},
		{`config.opt != "sgd"`, false},
		{`metrics.loss.last < 0.2`, true},
		{`metrics.loss.last == 0.15`, true},
		{`metrics.loss.min == 0.1`, true},
		{`metrics.loss.max == 1`, true},
		{`metrics["val.acc"].min == 0.5`, true}, // NaN ignored
		{`metrics.val.acc.max == 0.7`, true},    // dotted names without brackets
		{`metrics.loss.first == 1`, false},      // not a roll-up
		{`metrics.nope.last < 1`, false},
		{`duration > 3600`, true}, // 3600.5 s
		{`duration > 3601`, false},
		{`start_time >= "2026-11-01"`, true},
		{`start_time >= "2026-11-27T10:00:00.000001"`, false},
		{`start_time == "2026-11-27 10:00:00"`, true},
		{`start_time == "2026-11-27T11:00:00+01:00"`, true}, // offsets are honoured
		{`start_time < "not a time"`, false},
		{`start_time != "not a time"`, true},
		{`stop_time > start_time`, true}, // field against field
		{`id == 12`, true},
		{`id > 9`, true}, // numeric, not "12" < "9"
		{`id == "12"`, false},
		{`command =~ "--epochs 3$"`, true},
		{`config.epochs == 3`, true},
		{`config.epochs == 3.0`, true},
		{`config.five > 3`, false}, // a string "5" is not > 3
		{`config.five == "5"`, true},
		{`config.five == 5`, false},
		{`config.five != 5`, true}, // different types are not equal
		{`config.missing == 1`, false},
		{`config.missing != 1`, false}, // an absent field matches nothing
		{`!(config.missing == 1)`, true},
		{`exists(config.none)`, true},
		{`config.none == null`, true},
		{`config.missing == null`, false},
		{`exists(config.missing)`, false},
		{`config.debug`, false},
		{`!config.debug`, true},
		{`config.debug == false`, true},
		{`config.debug < true`, false}, // booleans have no order
		{`config.layers.0.size == 64`, true},
		{`config.layers.1.size == 10`, true},
		{`config.layers.2.size == 10`, false},
		{`config.layers.x == 10`, false},
		{`config.nested.a.b == "deep"`, true},
		{`config["learning-rate"] == 0.1`, true},
		{`config.tags == ["a", "b"]`, true},
		{`config.tags == "a"`, false}, // an array equals no scalar
		{`config.opt < "tz"`, true},
		{`config.opt > "Z"`, true}, // code points: lowercase after uppercase
		{`info.n == 7`, true},
		{`meta.comment == "first try"`, true},
		{`meta.priority == 3`, true},
		{`meta.rerun_of.id == "12" && meta.rerun_of.kind == "file_storage"`, true},
		{`meta.queue_time == "2026-11-27T09:00:00"`, true},
		{`queue_time == "2026-11-27T09:00:00"`, true},
		{`host.hostname == "gpu1"`, true},
		{`host.os.0 == "Linux"`, true},
		{`host.ENV.CUDA == "12"`, true},
		{`host.cpu_count == 8`, true},
		{`experiment.name == "mnist_cnn"`, true},
		{`experiment.mainfile == "train.py"`, true},
		{`experiment.repositories.0.dirty`, true},
		{`experiment.dependencies.0 =~ "^numpy=="`, true},
		{`artifacts.0 == "model.pt"`, true},
		{`exists(fail_trace)`, false},
		{`unknownfield == 1`, false},
		{`1 == 1`, true},
		{`"a" < "b"`, true},
		{`true`, true},
		{`false || null`, false},
		{`x in []`, false},
		{`(config.lr > 0.1) == true`, true},
	} {
		q, err := Compile(Options{Where: tc.where})
		if err != nil {
			t.Errorf("%s: %v", tc.where, err)
			continue
		}
		if got := q.Match(r, fixedNow); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.where, got, tc.want)
		}
	}
}

func TestStatusDied(t *testing.T) {
	start := fixedNow.Add(-time.Hour)
	for _, tc := range []struct {
		name       string
		status     string
		start, hb  time.Time
		deadAfter  time.Duration
		wantStatus string
	}{
		{"fresh heartbeat", "RUNNING", start, fixedNow.Add(-119 * time.Second), 0, "RUNNING"},
		{"stale heartbeat", "RUNNING", start, fixedNow.Add(-121 * time.Second), 0, StatusDied},
		{"exactly the threshold", "RUNNING", start, fixedNow.Add(-120 * time.Second), 0, "RUNNING"},
		{"no beat, old start", "RUNNING", start, time.Time{}, 0, StatusDied},
		{"no beat, recent start", "RUNNING", fixedNow.Add(-time.Second), time.Time{}, 0, "RUNNING"},
		{"no times at all", "RUNNING", time.Time{}, time.Time{}, 0, "RUNNING"},
		{"completed long ago", "COMPLETED", start, start, 0, "COMPLETED"},
		{"custom threshold", "RUNNING", start, fixedNow.Add(-10 * time.Second), 5 * time.Second, StatusDied},
	} {
		r := &observer.Run{ID: "1", Status: tc.status, StartTime: tc.start, Heartbeat: tc.hb}
		q, err := Compile(Options{DeadAfter: tc.deadAfter})
		if err != nil {
			t.Fatal(err)
		}
		if got := q.Status(r, fixedNow); got != tc.wantStatus {
			t.Errorf("%s: status %s, want %s", tc.name, got, tc.wantStatus)
		}
		for _, s := range []string{"RUNNING", "died?"} {
			q, _ := Compile(Options{Status: []string{s}, DeadAfter: tc.deadAfter})
			want := strings.EqualFold(s, tc.wantStatus)
			if got := q.Match(r, fixedNow); got != want {
				t.Errorf("%s: --status %s matched %v", tc.name, s, got)
			}
			q, _ = Compile(Options{Where: `status == "` + strings.ToUpper(s) + `"`, DeadAfter: tc.deadAfter})
			if got := q.Match(r, fixedNow); got != want {
				t.Errorf("%s: status == %s matched %v", tc.name, s, got)
			}
		}
	}
}

func runsWithIDs(n int) []*observer.Run {
	var rs []*observer.Run
	for i := 1; i <= n; i++ {
		rs = append(rs, &observer.Run{ID: strconv.Itoa(i), Status: "COMPLETED", Experiment: observer.Experiment{Name: "e"}})
	}
	return rs
}

func ids(rs []*observer.Run) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.ID)
	}
	return strings.Join(s, ",")
}

func TestSelectIndices(t *testing.T) {
	rs := runsWithIDs(5)
	for _, tc := range []struct {
		idx  []int
		want string
		err  string
	}{
		{[]int{0}, "1", ""},
		{[]int{-1}, "5", ""},
		{[]int{-1, 0, 2}, "5,1,3", ""},
		{[]int{4}, "5", ""},
		{[]int{-5}, "1", ""},
		{[]int{5}, "", "index 5 must be less than the number of runs (5): use 0 to 4, or -1 to -5"},
		{[]int{-6}, "", "index -6 reaches before the first of the 5 runs: use -1 to -5, or 0 to 4"},
	} {
		q, err := Compile(Options{Indices: tc.idx})
		if err != nil {
			t.Fatal(err)
		}
		got, err := q.Select(rs, fixedNow)
		if tc.err != "" {
			var ie *IndexError
			if !errors.As(err, &ie) || err.Error() != tc.err {
				t.Errorf("%v: error %v, want %s", tc.idx, err, tc.err)
			}
			continue
		}
		if err != nil || ids(got) != tc.want {
			t.Errorf("%v: got %s %v, want %s", tc.idx, ids(got), err, tc.want)
		}
	}
	q, _ := Compile(Options{Indices: []int{0}})
	if _, err := q.Select(nil, fixedNow); err == nil || err.Error() != "index 0: there are no runs to pick from" {
		t.Errorf("empty store: %v", err)
	}
}

func TestSelectSortLastLimit(t *testing.T) {
	rs := runsWithIDs(6)
	results := []any{0.5, nil, "x", 0.9, 0.5, nil}
	for i, r := range rs {
		if i != 5 { // run 6 has no result at all
			r.Result, r.HasResult = results[i], true
		}
	}
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{}, "1,2,3,4,5,6"},
		{Options{Sort: []string{"result"}}, "2,6,1,5,4,3"},    // null/missing first, numbers, strings; ties in store order
		{Options{Sort: []string{"-result"}}, "3,4,1,5,2,6"},   // reversed, ties still in store order
		{Options{Sort: []string{"-result"}, Limit: 2}, "3,4"}, // limit after sort
		{Options{Last: 3}, "4,5,6"},
		{Options{Last: 3, Sort: []string{"-result"}}, "4,5,6"}, // last N, then sorted
		{Options{Last: 10}, "1,2,3,4,5,6"},
		{Options{Sort: []string{"-id"}}, "6,5,4,3,2,1"},
		{Options{Where: "result > 0.1", Sort: []string{"-result", "id"}}, "4,1,5"},
		{Options{Where: "result > 0.1", Indices: []int{-1}}, "5"}, // indices among the matches
	} {
		q, err := Compile(tc.o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := q.Select(rs, fixedNow)
		if err != nil || ids(got) != tc.want {
			t.Errorf("%+v: got %s %v, want %s", tc.o, ids(got), err, tc.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Name: "(x"}, `--name: invalid regular expression "(x": missing closing ): ` + "`(x`"},
		{Options{Sort: []string{"-"}}, `--sort "-": line 1, column 1: expected a field such as config.lr or result, found end of expression`},
		{Options{Columns: []string{"config lr"}}, `--columns "config lr": line 1, column 8: unexpected "lr" after the field`},
		{Options{Status: []string{""}}, "--status: empty status; use one of QUEUED, RUNNING, COMPLETED, FAILED, INTERRUPTED, TIMEOUT, DIED?"},
		{Options{Last: -1}, "--last: -1 is negative; give a number of runs"},
	} {
		_, err := Compile(tc.o)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%+v:\n got %v\nwant %s", tc.o, err, tc.want)
		}
	}
}

func TestNeeds(t *testing.T) {
	for _, tc := range []struct {
		o                     Options
		config, info, metrics bool
	}{
		{Options{Where: `status == "COMPLETED" && result > 1`, Sort: []string{"-start_time"}}, false, false, false},
		{Options{Where: `config.lr > 1`}, true, false, false},
		{Options{Sort: []string{"info.x"}}, false, true, false},
		{Options{Columns: []string{"metrics.loss.last"}}, false, false, true},
		{Options{Where: `exists(config.x) || !(info.y == 1)`}, true, true, false},
	} {
		q, err := Compile(tc.o)
		if err != nil {
			t.Fatal(err)
		}
		if q.NeedsConfig() != tc.config || q.NeedsInfo() != tc.info || q.NeedsMetrics() != tc.metrics {
			t.Errorf("%+v: needs config %v info %v metrics %v", tc.o, q.NeedsConfig(), q.NeedsInfo(), q.NeedsMetrics())
		}
	}
	q, _ := Compile(Options{Where: `confg.lr > 1 && config.lr > 1`})
	if u := q.UnknownFields(); len(u) != 1 || u[0] != "confg.lr" {
		t.Errorf("unknown fields %v", u)
	}
}

func TestColumns(t *testing.T) {
	q, err := Compile(Options{Columns: []string{"config.lr", "metrics.loss.last", "status", "nope"}})
	if err != nil {
		t.Fatal(err)
	}
	r := sampleRun()
	want := []any{0.3, 0.15, "COMPLETED", nil}
	for i, w := range want {
		v, ok := q.Column(r, i, fixedNow)
		if ok != (w != nil) || (ok && v != w) {
			t.Errorf("column %s: %v %v, want %v", q.Columns()[i], v, ok, w)
		}
	}
}

func TestRequiredLiteral(t *testing.T) {
	for _, tc := range []struct{ re, want string }{
		{"^mnist", "mnist"},
		{"mnist_(cnn|mlp)$", "mnist_"},
		{"a.*bcd", "bcd"},
		{"(?i)mnist", ""},
		{"a|b", ""},
		{"^x", "x"},
		{".*", ""},
	} {
		q, err := Compile(Options{Name: tc.re})
		if err != nil {
			t.Fatal(err)
		}
		if got := requiredLiteral(q.name); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.re, got, tc.want)
		}
	}
}
