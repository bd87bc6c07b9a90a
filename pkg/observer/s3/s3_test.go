package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/internal/testserver"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// server starts the test server with a bucket and points the AWS SDK of
// this process at it.
func server(t *testing.T) *testserver.S3 {
	t.Helper()
	srv := testserver.NewS3(t)
	srv.CreateBucket("lab-runs")
	srv.SetEnv(t)
	return srv
}

// flags are the kind's flags as the CLI hands them over: an unset
// boolean comes as "false".
func flags(srv *testserver.S3) map[string]string {
	return map[string]string{FlagEndpoint: srv.URL(), FlagPathStyle: "false", FlagCreateBucket: "false"}
}

func open(t *testing.T, value string, fl map[string]string) (*Observer, error) {
	t.Helper()
	cfg, err := ParseConfig(value)
	if err != nil {
		t.Fatalf("ParseConfig(%q): %v", value, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return New(ctx, cfg, observer.Settings{Flags: fl})
}

// TestConformance runs the suite on the registered kind, through the AWS
// SDK over HTTP. Break makes the bucket refuse writes, as a bucket policy
// does (reads go on, so what was stored before is checked);
// TestEndpointBackMidRun stops the server itself.
func TestConformance(t *testing.T) {
	srv := server(t)
	// The value holds no secret (ParseConfig refuses one): the keys come
	// from the environment; TestBadInput checks that no message repeats
	// them.
	observertest.RunKind(t, Kind, "s3://lab-runs/team/runs",
		observertest.WithFlags(flags(srv)),
		observertest.WithBreak(func(t *testing.T) { srv.ReadOnly.Store(true) }),
		observertest.WithStall(func(t *testing.T) func() { return srv.Stall() }),
	)
}

// TestEndpointBackMidRun: calls fail while the endpoint is away, and
// after it comes back the run's record is complete.
func TestEndpointBackMidRun(t *testing.T) {
	srv := server(t)
	o, err := open(t, "s3://lab-runs/r", flags(srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ev := observertest.StartEvent()
	id, err := o.Started(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	b := observertest.NewBeats()
	b.Out.Append([]byte("before\n"))
	if err := o.Heartbeat(ctx, b.Next(ev.Time, nil)); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	b.Out.Append([]byte("while away\n"))
	lost := b.Next(ev.Time.Add(time.Second), nil)
	if err := o.Heartbeat(ctx, lost); err == nil {
		t.Fatal("a heartbeat to a stopped endpoint succeeded")
	} else if strings.Contains(err.Error(), srv.SecretKey) {
		t.Fatalf("the error holds the secret key: %v", err)
	}
	srv.Start()
	b.Out.Append([]byte("after\n"))
	// The retry decorator sends the range again from where the store
	// stopped.
	again := &observer.HeartbeatEvent{BeatTime: ev.Time.Add(2 * time.Second), Output: b.Out, From: lost.From, To: b.Out.Size(), Final: true}
	if err := o.Heartbeat(ctx, again); err != nil {
		t.Fatal(err)
	}
	if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time.Add(3 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, mustParse(t, "s3://lab-runs/r"), observer.Settings{Flags: flags(srv)})
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Run(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != observer.StatusCompleted || string(run.Output) != "before\nwhile away\nafter\n" {
		t.Fatalf("status %s, output %q", run.Status, run.Output)
	}
}

func mustParse(t *testing.T, v string) *Config {
	t.Helper()
	c, err := ParseConfig(v)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fileOutput is an observer.Output over a growing file, like the runner's
// spool.
type fileOutput struct{ f *os.File }

func (o fileOutput) Size() int64 {
	fi, err := o.f.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}
func (o fileOutput) ReadAt(p []byte, off int64) (int, error) { return o.f.ReadAt(p, off) }

// TestOutputAppendCost: past 5 MiB, a beat sends its new output only,
// copied parts stay on the server; cout.txt is the whole output.
func TestOutputAppendCost(t *testing.T) {
	srv := server(t)
	o, err := open(t, "s3://lab-runs/cost", flags(srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ev := observertest.StartEvent()
	id, err := o.Started(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "spool"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := fileOutput{f}
	key := "cost/" + id + "/cout.txt"
	h := md5.New()
	var from int64
	const beat = 3 << 20
	for i := range 6 {
		chunk := bytes.Repeat([]byte(fmt.Sprintf("beat %d line\n", i)), beat/12)
		f.Write(chunk)
		h.Write(chunk)
		before := srv.Written(key)
		to := out.Size()
		if err := o.Heartbeat(ctx, &observer.HeartbeatEvent{BeatTime: ev.Time, Output: out, From: from, To: to}); err != nil {
			t.Fatal(err)
		}
		sent := srv.Written(key) - before
		// Besides the new bytes, only the request that completes the
		// upload (a list of parts) is sent.
		if from >= minPart && (sent < to-from || sent > to-from+4096) {
			t.Errorf("beat %d: %d bytes sent for %d new bytes", i, sent, to-from)
		}
		if sent > minPart+(to-from) {
			t.Errorf("beat %d: %d bytes sent, more than 5 MiB + %d new", i, sent, to-from)
		}
		from = to
	}
	rc, err := srv.Open("lab-runs", key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	g := md5.New()
	n, _ := io.Copy(g, rc)
	if n != from || !bytes.Equal(g.Sum(nil), h.Sum(nil)) {
		t.Fatalf("cout.txt: %d bytes, want the %d bytes of the output", n, from)
	}
}

// TestWithoutPartCopy: a store without UploadPartCopy gets cout.txt
// rewritten whole, with one warning line.
func TestWithoutPartCopy(t *testing.T) {
	srv := server(t)
	srv.NoPartCopy.Store(true)
	var warn bytes.Buffer
	cfg := mustParse(t, "s3://lab-runs/nocopy")
	o, err := New(context.Background(), cfg, observer.Settings{Flags: flags(srv), Warn: &warn})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ev := observertest.StartEvent()
	id, err := o.Started(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	b := observertest.NewBeats()
	for i := range 3 {
		b.Out.Append(bytes.Repeat([]byte{'a' + byte(i)}, 3<<20))
		if err := o.Heartbeat(ctx, b.Next(ev.Time, nil)); err != nil {
			t.Fatal(err)
		}
	}
	rc, err := srv.Open("lab-runs", "nocopy/"+id+"/cout.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, b.Out.Bytes()) {
		t.Fatalf("cout.txt has %d bytes, want %d", len(got), b.Out.Size())
	}
	if strings.Count(warn.String(), "\n") != 1 || !strings.Contains(warn.String(), "cannot append") {
		t.Fatalf("want one warning, got %q", warn.String())
	}
}

// TestLargeArtifactInParts: an artifact over the part size goes up in
// parts, streamed from its file, and reads back identical.
func TestLargeArtifactInParts(t *testing.T) {
	srv := server(t)
	o, err := open(t, "s3://lab-runs/art", flags(srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ev := observertest.StartEvent()
	id, err := o.Started(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "model.bin")
	data := bytes.Repeat([]byte("0123456789abcdef"), (partSize*2+12345)/16)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := o.Artifact(ctx, &observer.ArtifactEvent{Name: "sub/model.bin", Path: p}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, mustParse(t, "s3://lab-runs/art"), observer.Settings{Flags: flags(srv)})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := r.Artifact(ctx, id, "sub/model.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("artifact: %d bytes back, want %d", len(got), len(data))
	}
}

func observertestStart() *observer.StartEvent { return observertest.StartEvent() }

// TestResume runs the Resume tier of the suite: a run started by one
// observer is continued by another (observer.Resumer, from package blob),
// opened through the kind as sacred sync and sacred reap open it.
func TestResume(t *testing.T) {
	srv := server(t)
	const value = "s3://lab-runs/resume"
	observertest.RunResume(t, observertest.Store{
		New: func(t *testing.T) observer.Observer {
			o, err := Kind.OpenObserver(context.Background(), value, observer.Settings{Flags: flags(srv)})
			if err != nil {
				t.Fatal(err)
			}
			return o
		},
		Reader: func(t *testing.T) observer.Reader {
			r, err := Open(context.Background(), mustParse(t, value), observer.Settings{Flags: flags(srv)})
			if err != nil {
				t.Fatal(err)
			}
			return r
		},
	})
}

// TestResumeAppends: past 5 MiB, the first beat after Resume appends the
// output after what cout.txt holds (UploadPartCopy of the object as it
// was found), though its range starts inside it: only the new bytes are
// sent, and cout.txt is the whole output once.
func TestResumeAppends(t *testing.T) {
	srv := server(t)
	ctx := context.Background()
	a, err := open(t, "s3://lab-runs/resumed", flags(srv))
	if err != nil {
		t.Fatal(err)
	}
	ev := observertest.StartEvent()
	id, err := a.Started(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	out := observertest.NewOutput()
	out.Append(bytes.Repeat([]byte("before the wrapper died\n"), (minPart+1<<20)/24))
	if err := a.Heartbeat(ctx, &observer.HeartbeatEvent{BeatTime: ev.Time, Output: out, To: out.Size()}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	o, err := open(t, "s3://lab-runs/resumed", flags(srv))
	if err != nil {
		t.Fatal(err)
	}
	ev.ID = id
	if err := o.Resume(ctx, ev); err != nil {
		t.Fatal(err)
	}
	stored := out.Size()
	out.Append(bytes.Repeat([]byte("after Resume\n"), 1<<20/13))
	key := "resumed/" + id + "/cout.txt"
	before := srv.Written(key)
	hb := &observer.HeartbeatEvent{BeatTime: ev.Time.Add(time.Second), Output: out, From: stored - 1<<20, To: out.Size()}
	if err := o.Heartbeat(ctx, hb); err != nil {
		t.Fatal(err)
	}
	if sent, news := srv.Written(key)-before, out.Size()-stored; sent < news || sent > news+4096 {
		t.Errorf("the beat after Resume sent %d bytes for %d new", sent, news)
	}
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rc, err := srv.Open("lab-runs", key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, _ := io.ReadAll(rc)
	if !bytes.Equal(got, out.Bytes()) {
		t.Fatalf("cout.txt: %d bytes, want the %d of the output", len(got), out.Size())
	}
}
