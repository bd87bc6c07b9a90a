package gcs

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/internal/testserver"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// server starts the test server with a bucket and points the Cloud
// Storage client of this process at it.
func server(t *testing.T) *testserver.GCS {
	t.Helper()
	srv := testserver.NewGCS(t)
	srv.CreateBucket("lab-runs")
	srv.SetEnv(t)
	return srv
}

func mustParse(t *testing.T, v string) *Config {
	t.Helper()
	c, err := ParseConfig(v)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func open(t *testing.T, value string) *Observer {
	t.Helper()
	o, err := New(context.Background(), mustParse(t, value), observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close(context.Background()) })
	return o
}

// TestConformance runs the suite on the registered kind through
// cloud.google.com/go/storage over HTTP. Break makes the bucket refuse
// writes (reads go on, so what was stored before is checked);
// TestEndpointBackMidRun stops the server itself.
func TestConformance(t *testing.T) {
	srv := server(t)
	observertest.RunKind(t, Kind, "gs://lab-runs/team/runs",
		observertest.WithBreak(func(t *testing.T) { srv.ReadOnly.Store(true) }),
		observertest.WithStall(func(t *testing.T) func() { return srv.Stall() }))
}

// TestEndpointBackMidRun: calls fail while the endpoint is away, and
// after it comes back the run's record is complete.
func TestEndpointBackMidRun(t *testing.T) {
	srv := server(t)
	o := open(t, "gs://lab-runs/r")
	ctx := context.Background()
	ev := observertest.StartEvent()
	id, err := o.Started(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	b := observertest.NewBeats()
	b.Out.Append(bytes.Repeat([]byte("before\n"), 100000)) // past MinAppendSize
	if err := o.Heartbeat(ctx, b.Next(ev.Time, nil)); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	b.Out.Append([]byte("while away\n"))
	lost := b.Next(ev.Time.Add(time.Second), nil)
	if err := o.Heartbeat(ctx, lost); err == nil {
		t.Fatal("a heartbeat to a stopped endpoint succeeded")
	}
	srv.Start()
	b.Out.Append([]byte("after\n"))
	again := &observer.HeartbeatEvent{BeatTime: ev.Time.Add(2 * time.Second), Output: b.Out, From: lost.From, To: b.Out.Size(), Final: true}
	if err := o.Heartbeat(ctx, again); err != nil {
		t.Fatal(err)
	}
	if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time.Add(3 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, mustParse(t, "gs://lab-runs/r"), observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	run, err := r.Run(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != observer.StatusCompleted || !bytes.Equal(run.Output, b.Out.Bytes()) {
		t.Fatalf("status %s, %d bytes of output, want %d", run.Status, len(run.Output), b.Out.Size())
	}
	keys, _ := srv.Keys("lab-runs", "r/"+id+"/")
	for _, k := range keys {
		if strings.Contains(k, ".append-") {
			t.Errorf("temporary object %s left behind", k)
		}
	}
}

// TestOutputAppendCost: past MinAppendSize a beat uploads its new output
// only (compose does the rest); cout.txt is the whole output.
func TestOutputAppendCost(t *testing.T) {
	srv := server(t)
	o := open(t, "gs://lab-runs/cost")
	ctx := context.Background()
	ev := observertest.StartEvent()
	id, err := o.Started(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	b := observertest.NewBeats()
	const beat = 1 << 20
	for i := range 5 {
		b.Out.Append(bytes.Repeat([]byte(fmt.Sprintf("beat %d line\n", i)), beat/12))
		hb := b.Next(ev.Time, nil)
		before := srv.Uploaded()
		if err := o.Heartbeat(ctx, hb); err != nil {
			t.Fatal(err)
		}
		// The new bytes, plus run.json and the requests' own framing.
		if sent, news := srv.Uploaded()-before, hb.To-hb.From; hb.From >= minAppend && sent > news+64<<10 {
			t.Errorf("beat %d uploaded %d bytes for %d new", i, sent, news)
		}
	}
	got, err := srv.Object("lab-runs", "cost/"+id+"/cout.txt")
	if err != nil || !bytes.Equal(got, b.Out.Bytes()) {
		t.Fatalf("cout.txt: %d bytes (%v), want %d", len(got), err, b.Out.Size())
	}
}

// TestLargeArtifact: an artifact larger than one request goes up as a
// resumable upload and reads back identical.
func TestLargeArtifact(t *testing.T) {
	server(t)
	o := open(t, "gs://lab-runs/art")
	ctx := context.Background()
	ev := observertest.StartEvent()
	id, err := o.Started(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "model.bin")
	data := bytes.Repeat([]byte("0123456789abcdef"), (singleShot+chunkSize+4321)/16)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := o.Artifact(ctx, &observer.ArtifactEvent{Name: "model.bin", Path: p}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, mustParse(t, "gs://lab-runs/art"), observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rc, err := r.Artifact(ctx, id, "model.bin")
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	got.ReadFrom(rc)
	rc.Close()
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("artifact: %d bytes back, want %d", got.Len(), len(data))
	}
}

// TestResume runs the Resume tier of the suite: a run started by one
// observer is continued by another (observer.Resumer, from package blob),
// opened through the kind as sacred sync and sacred reap open it. Its
// long output goes past MinAppendSize, so the first beat after Resume is
// composed onto cout.txt as found.
func TestResume(t *testing.T) {
	server(t)
	const value = "gs://lab-runs/resume"
	observertest.RunResume(t, observertest.Store{
		New: func(t *testing.T) observer.Observer {
			o, err := Kind.OpenObserver(context.Background(), value, observer.Settings{})
			if err != nil {
				t.Fatal(err)
			}
			return o
		},
		Reader: func(t *testing.T) observer.Reader {
			r, err := Open(context.Background(), mustParse(t, value), observer.Settings{})
			if err != nil {
				t.Fatal(err)
			}
			return r
		},
	})
}

// TestResumeAppends: the first beat after Resume uploads the output after
// what cout.txt holds, though its range starts inside it (compose appends
// to the object as it is, so a range sent twice would be there twice):
// only the new bytes go up, and cout.txt is the whole output once.
func TestResumeAppends(t *testing.T) {
	srv := server(t)
	ctx := context.Background()
	a := open(t, "gs://lab-runs/resumed")
	ev := observertest.StartEvent()
	id, err := a.Started(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	out := observertest.NewOutput()
	out.Append(bytes.Repeat([]byte("before the wrapper died\n"), 2*minAppend/24))
	if err := a.Heartbeat(ctx, &observer.HeartbeatEvent{BeatTime: ev.Time, Output: out, To: out.Size()}); err != nil {
		t.Fatal(err)
	}
	o := open(t, "gs://lab-runs/resumed")
	ev.ID = id
	if err := o.Resume(ctx, ev); err != nil {
		t.Fatal(err)
	}
	stored := out.Size()
	out.Append(bytes.Repeat([]byte("after Resume\n"), 1<<20/13))
	before := srv.Uploaded()
	hb := &observer.HeartbeatEvent{BeatTime: ev.Time.Add(time.Second), Output: out, From: stored - minAppend, To: out.Size()}
	if err := o.Heartbeat(ctx, hb); err != nil {
		t.Fatal(err)
	}
	// The new bytes, plus run.json and the requests' own framing.
	if sent, news := srv.Uploaded()-before, out.Size()-stored; sent < news || sent > news+64<<10 {
		t.Errorf("the beat after Resume uploaded %d bytes for %d new", sent, news)
	}
	got, err := srv.Object("lab-runs", "resumed/"+id+"/cout.txt")
	if err != nil || !bytes.Equal(got, out.Bytes()) {
		t.Fatalf("cout.txt: %d bytes (%v), want the %d of the output", len(got), err, out.Size())
	}
}

// TestAppendNeverLandsOnAChangedObject: an append given a size the object
// no longer has fails and leaves it alone, and a compose carried out late
// (after its caller gave up and the object moved on) is refused by its
// preconditions instead of appending its bytes a second time.
func TestAppendNeverLandsOnAChangedObject(t *testing.T) {
	srv := server(t)
	ctx := context.Background()
	b, err := connect(ctx, mustParse(t, "gs://lab-runs/late"), observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	const key = "late/1/cout.txt"
	out := []byte("0123456789abcdefghij")
	if err := b.Put(ctx, key, bytes.NewReader(out[:10]), 10, ""); err != nil {
		t.Fatal(err)
	}
	stale, err := b.a.attrs(ctx, b.name, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Append(ctx, key, 10, bytes.NewReader(out[10:15]), 5); err != nil {
		t.Fatal(err)
	}
	// The earlier call's size: refused before anything is sent.
	if err := b.Append(ctx, key, 10, bytes.NewReader(out[10:15]), 5); err == nil || !strings.Contains(err.Error(), "holds 15 bytes, not 10") {
		t.Errorf("append at a size the object no longer has: %v", err)
	}
	// The earlier call's compose, arriving late: the object and its
	// temporary part are no longer at the generations it names.
	tmp, err := b.put(ctx, key+".append-10", bytes.NewReader(out[10:15]), 5, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.a.compose(ctx, b.name, key, []composeSource{{key, stale.Generation}, {key + ".append-10", tmp.Generation}}, stale.Generation, "")
	if statusOf(err) != http.StatusPreconditionFailed {
		t.Errorf("late compose: %v, want HTTP 412", err)
	}
	if err := b.Append(ctx, key, 15, bytes.NewReader(out[15:]), 5); err != nil {
		t.Fatal(err)
	}
	if got, err := srv.Object("lab-runs", key); err != nil || !bytes.Equal(got, out) {
		t.Fatalf("cout.txt = %q (%v), want %q", got, err, out)
	}
}
