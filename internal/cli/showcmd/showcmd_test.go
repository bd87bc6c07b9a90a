package showcmd

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/cli/storeflags"
	"github.com/sacred-go/sacred/internal/readback/readbacktest"
	"github.com/sacred-go/sacred/pkg/observer"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func failedRun() *observer.Run {
	start := time.Date(2016, 11, 12, 1, 18, 0, 197311000, time.UTC)
	var out strings.Builder
	for i := 1; i <= 25; i++ {
		fmt.Fprintf(&out, "line %d\n", i)
	}
	return &observer.Run{
		ID: "68b71b5c", Status: "FAILED", Command: "python3 exp.py",
		Experiment: observer.Experiment{Name: "iris_rbf_svm", Dependencies: []string{"numpy==1.11.2"},
			Sources:      []observer.Source{{Name: "test_exp.py", MD5: "x"}},
			Repositories: []observer.Repository{{URL: "https://example.org/r.git", Commit: "abc123", Dirty: true}}},
		Host:      &observer.Host{Hostname: "vm", OS: [2]string{"Linux", "Linux-6.1"}},
		Config:    map[string]any{"gamma": 0.7, "C": 1.0, "seed": int64(816200523), "nested": map[string]any{"a": "b"}},
		Result:    0.9666666666666667,
		HasResult: true,
		StartTime: start, StopTime: start.Add(140208 * time.Microsecond), Heartbeat: start,
		FailTrace: []string{"exit status 3\n", "Traceback: boom\n"},
		Metrics:   []observer.MetricSeries{{Name: "loss", Points: []observer.MetricPoint{{Step: 0, Value: 2}, {Step: 1, Value: 0.5}}}},
		Artifacts: []string{"model.pt"},
		Output:    []byte(out.String()),
	}
}

func TestReportLayout(t *testing.T) {
	got := string(Report(failedRun(), "FAILED", false))
	want := `
-------------------------------------------------
Experiment: iris_rbf_svm
-------------------------------------------------
ID: 68b71b5c
Date: Sat 12 Nov 2016    Duration: 00:00:00.1
Status: FAILED
Command: python3 exp.py
Host: vm (Linux-6.1)
Git: https://example.org/r.git abc123 (dirty)

Parameters:
    C: 1
    gamma: 0.7
    nested: {"a":"b"}
    seed: 816200523

Result:
    0.9666666666666667

Dependencies:
    numpy==1.11.2

Resources:
    None

Source Files:
    test_exp.py

Outputs:
    model.pt

Metrics:
    loss: 0.5 (step 1; min 0.5, max 2; 2 points)

Fail Trace:
    exit status 3
    Traceback: boom

Output (last 20 of 25 lines; --output for all):
`
	for i := 6; i <= 25; i++ {
		want += fmt.Sprintf("    line %d\n", i)
	}
	if got != want {
		t.Errorf("report:\n%s\nwant:\n%s", got, want)
	}
	if all := string(Report(failedRun(), "FAILED", true)); !strings.Contains(all, "\nOutput:\n    line 1\n") || !strings.HasSuffix(all, "    line 25\n") {
		t.Errorf("--output:\n%s", all)
	}
}

func TestShowRunningAndJSON(t *testing.T) {
	run := failedRun()
	run.Status, run.StopTime, run.FailTrace = "RUNNING", time.Time{}, nil
	run.Heartbeat = run.StartTime.Add(61 * time.Second)
	ios, _, out, _ := cmdutil.Test()
	o := &ShowOptions{IO: ios, Runs: []string{"-1"}, Now: func() time.Time { return now },
		Stores: []storeflags.Store{{Label: "mem", Reader: &readbacktest.Memory{RunList: []*observer.Run{run}}}}}
	if err := Show(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Duration: 00:01:01.0 (until the last heartbeat; died?)\nStatus: DIED?\n") {
		t.Errorf("report of a dead-looking run:\n%s", out)
	}
	out.Reset()
	o.JSON = true
	if err := Show(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(out.Bytes(), &rec); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if rec["status"] != "DIED?" || rec["stored_status"] != "RUNNING" || rec["result"] != 0.9666666666666667 ||
		!strings.HasPrefix(rec["captured_out"].(string), "line 1\n") || rec["start_time"] != "2016-11-12T01:18:00.197311Z" {
		t.Errorf("record %v", rec)
	}
}
