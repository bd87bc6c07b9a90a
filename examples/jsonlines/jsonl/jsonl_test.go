package jsonl

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// A whole run through the kind, as `sacred run --jsonl FILE` opens it.
func TestRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	ctx := context.Background()
	o, err := Kind.OpenObserver(ctx, path, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	ev := observertest.StartEvent()
	ev.ID = "7"
	if id, err := o.Started(ctx, ev); err != nil || id != "7" {
		t.Fatalf("Started: %q, %v", id, err)
	}
	now := time.Now().UTC()
	must(t, o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: []observer.MetricPoint{{Step: 0, Value: 0.5, Time: now}, {Step: 1, Value: 0.25, Time: now}}}}}))
	out := observertest.NewOutput()
	out.Append([]byte("epoch 1\n"))
	must(t, o.Heartbeat(ctx, &observer.HeartbeatEvent{Info: map[string]any{"a": 1}, BeatTime: now, Output: out, From: 0, To: 8}))
	out.Append([]byte("done\n"))
	must(t, o.Heartbeat(ctx, &observer.HeartbeatEvent{BeatTime: now, Output: out, From: 8, To: 13, Final: true, Result: 0.9, HasResult: true}))
	must(t, o.Artifact(ctx, &observer.ArtifactEvent{Name: "model.pt", OrigPath: "/w/model.pt"}))
	must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: now, Result: 0.9, HasResult: true}))
	must(t, o.Close(ctx))

	lines := readLines(t, path)
	var events, outputs []string
	for _, l := range lines {
		if l["run_id"] != "7" {
			t.Errorf("line without the run id: %v", l)
		}
		events = append(events, l["event"].(string))
		if l["event"] == "heartbeat" {
			outputs = append(outputs, l["output"].(string))
		}
	}
	if got := strings.Join(events, " "); got != "started metric metric heartbeat heartbeat artifact completed" {
		t.Errorf("events: %s", got)
	}
	if got := strings.Join(outputs, ""); got != "epoch 1\ndone\n" {
		t.Errorf("output %q: each byte once, in order", got)
	}
	if lines[2]["value"] != 0.25 || lines[len(lines)-1]["result"] != 0.9 {
		t.Errorf("lines %v", lines)
	}
}

func TestParseConfig(t *testing.T) {
	for _, v := range []string{"", " ", t.TempDir()} {
		if _, err := Kind.Parse(v); err == nil {
			t.Errorf("Parse(%q): no error", v)
		}
	}
}

// A cancelled call returns at once with its context's error.
func TestCancelled(t *testing.T) {
	o, err := New(Config{Path: filepath.Join(t.TempDir(), "e.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := o.Started(ctx, observertest.StartEvent()); err != context.Canceled {
		t.Errorf("Started with a cancelled context: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}
