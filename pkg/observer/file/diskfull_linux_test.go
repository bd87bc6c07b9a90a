package file

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sacred-go/sacred/internal/testutil"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// fill takes the rest of the disk.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			return
		}
	}
}

// On a full disk the final status still reaches run.json (it kept room
// for it), and one warning says what the record lacks: output the capture
// could not write into cout.txt and the file store could not add either,
// metric points, info, an artifact.
func TestDiskFullEnd(t *testing.T) {
	disk := testutil.Tmpfs(t, 512<<10)
	var warn bytes.Buffer
	o := newObserver(t, disk, observer.Settings{Warn: &warn})
	ev := observertest.StartEvent()
	if _, err := o.Started(ctx, ev); err != nil {
		t.Fatal(err)
	}
	defer o.Close(ctx)
	f, err := o.OutputFile()
	if err != nil || f == nil {
		t.Fatalf("OutputFile = %v, %v", f, err)
	}
	defer f.Close()
	out := observertest.NewOutput()
	out.Append([]byte("captured\n"))
	f.WriteAt(out.Bytes(), 0)
	b := observertest.NewBeats()
	b.Out = out
	if err := o.Heartbeat(ctx, b.Next(ev.Time, map[string]any{"a": 1})); err != nil {
		t.Fatal(err)
	}
	fill(t, disk)
	// The capture could not write this into cout.txt: it is only in the
	// output the beat hands over.
	out.Append(bytes.Repeat([]byte("y"), 64<<10))
	if err := o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: []observer.MetricPoint{{Value: 1, Time: ev.Time}, {Value: 2, Time: ev.Time}}}}}); err == nil {
		t.Error("LogMetrics on a full disk succeeded")
	}
	if err := o.Heartbeat(ctx, b.Next(ev.Time, map[string]any{"a": 2})); err == nil || !strings.Contains(err.Error(), "output bytes 9 to 65545") {
		t.Errorf("heartbeat on a full disk: %v", err)
	}
	src := filepath.Join(t.TempDir(), "model.bin")
	os.WriteFile(src, bytes.Repeat([]byte("m"), 8192), 0o644)
	if err := o.Artifact(ctx, &observer.ArtifactEvent{Name: "model.bin", Path: src}); err == nil {
		t.Error("artifact on a full disk succeeded")
	}
	// A stderr tail larger than the room kept: the exit status stays.
	trace := []string{"command exited with status 1\n"}
	for range 3000 {
		trace = append(trace, strings.Repeat("e", 79)+"\n")
	}
	if err := o.Failed(ctx, &observer.FailedEvent{StopTime: ev.Time, Trace: trace}); err != nil {
		t.Fatalf("the end on a full disk: %v", err)
	}
	run := readJSONFile(t, filepath.Join(disk, "1", layout.RunFile))
	got, _ := run["fail_trace"].([]any)
	if run["status"] != observer.StatusFailed || len(got) != 2 || got[0] != trace[0] ||
		got[1] != "(3000 more lines of stderr not stored: no space left on device)\n" {
		t.Errorf("run.json on a full disk: %v", run)
	}
	want := `sacred: file storage ` + disk + `: run 1 is recorded FAILED, but without output bytes 9 to 65545 (64.0 KiB) of cout.txt, 2 metric points, the latest info, artifact "model.bin", most of fail_trace (no space left on device)` + "\n"
	if warn.String() != want {
		t.Errorf("warning\n got: %q\nwant: %q", warn.String(), want)
	}
}

// When the disk frees up, the repeated calls (the retry decorator's) store
// everything and nothing is reported lost.
func TestDiskFullRecovers(t *testing.T) {
	disk := testutil.Tmpfs(t, 512<<10)
	var warn bytes.Buffer
	o := newObserver(t, disk, observer.Settings{Warn: &warn})
	ev := observertest.StartEvent()
	if _, err := o.Started(ctx, ev); err != nil {
		t.Fatal(err)
	}
	defer o.Close(ctx)
	fill(t, disk)
	out := observertest.NewOutput()
	out.Append(bytes.Repeat([]byte("z"), 100<<10))
	hb := &observer.HeartbeatEvent{Output: out, From: 0, To: out.Size(), BeatTime: ev.Time, Info: map[string]any{"k": "v"}}
	if err := o.Heartbeat(ctx, hb); err == nil {
		t.Fatal("heartbeat on a full disk succeeded")
	}
	os.Remove(filepath.Join(disk, "filler"))
	if err := o.Heartbeat(ctx, hb); err != nil { // the same range again
		t.Fatal(err)
	}
	if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(disk, "1", layout.CoutFile)); !bytes.Equal(got, out.Bytes()) {
		t.Errorf("cout.txt has %d bytes, want %d", len(got), out.Size())
	}
	if warn.Len() != 0 {
		t.Errorf("warned after a full recovery: %s", warn.String())
	}
	run := readJSONFile(t, filepath.Join(disk, "1", layout.RunFile))
	if run["status"] != observer.StatusCompleted {
		t.Errorf("status %v", run["status"])
	}
	// The finished run.json keeps no reserved space.
	var st unix.Stat_t
	unix.Stat(filepath.Join(disk, "1", layout.RunFile), &st)
	if st.Blocks*512 > 16<<10 {
		t.Errorf("the finished run.json holds %d bytes of disk", st.Blocks*512)
	}
}
