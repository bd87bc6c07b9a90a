package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file"
	"github.com/sacred-go/sacred/pkg/observer/file/layout"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

func newObserver(t *testing.T, b Bucket, prefix string, warn io.Writer) *Observer {
	t.Helper()
	o, err := New(Config{Bucket: b, Prefix: prefix, Name: "test store", Title: "test", Warn: warn, TempDir: t.TempDir(), CheckConditional: true})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// dirBuckets opens buckets over one local directory; minAppend < 0 means
// without server-side appends.
func dirBuckets(root string, minAppend int64) func() Bucket {
	return func() Bucket {
		d := &dirBucket{root: root, minAppend: minAppend}
		if minAppend < 0 {
			return d
		}
		return appendingDir{d}
	}
}

// TestConformance runs the store tier of the suite over a local directory,
// with and without server-side appends.
func TestConformance(t *testing.T) {
	for _, minAppend := range []int64{-1, 0, 16} {
		t.Run(fmt.Sprintf("minAppend=%d", minAppend), func(t *testing.T) {
			root := t.TempDir()
			bucket := dirBuckets(root, minAppend)
			var last *dirBucket
			observertest.Run(t, observertest.Store{
				New: func(t *testing.T) observer.Observer {
					b := bucket()
					if a, ok := b.(appendingDir); ok {
						last = a.dirBucket
					} else {
						last = b.(*dirBucket)
					}
					return newObserver(t, b, "runs/", io.Discard)
				},
				Reader: func(t *testing.T) observer.Reader { return NewReader(bucket(), "runs/", "test") },
				Break:  func(t *testing.T) { last.broken.Store(true) },
			})
		})
	}
}

func start(t *testing.T, o observer.Observer, ev *observer.StartEvent) string {
	t.Helper()
	id, err := o.Started(context.Background(), ev)
	if err != nil {
		t.Fatalf("Started: %v", err)
	}
	return id
}

// beats starts a run on o and returns its output and a beat that sends
// [from, the output's size) with ctx, as the retry decorator does.
func beats(t *testing.T, o *Observer) (*observertest.Output, func(ctx context.Context, from int64) error) {
	t.Helper()
	ev := observertest.StartEvent()
	start(t, o, ev)
	out := observertest.NewOutput()
	return out, func(ctx context.Context, from int64) error {
		return o.Heartbeat(ctx, &observer.HeartbeatEvent{BeatTime: ev.Time, Output: out, From: from, To: out.Size()})
	}
}

// newChunked returns an observer over b whose parts of output are at most
// chunk bytes.
func newChunked(t *testing.T, b Bucket, chunk int64) *Observer {
	t.Helper()
	o, err := New(Config{Bucket: b, Name: "test store", Title: "test", TempDir: t.TempDir(), AppendChunk: chunk})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// drive sends the same run to an observer: sources, config, three beats
// with output, metrics and info, an artifact and a resource, then the end.
func drive(t *testing.T, o observer.Observer, ev *observer.StartEvent, dir string) string {
	t.Helper()
	ctx := context.Background()
	id := start(t, o, ev)
	b := observertest.NewBeats()
	t0 := ev.Time
	art := filepath.Join(dir, "model.bin")
	if err := os.WriteFile(art, []byte("weights\x00\x01"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		b.Out.Append([]byte(fmt.Sprintf("epoch %d ✓\r\x1b[1mdone\x1b[0m\n", i)))
		pts := []observer.MetricPoint{{Step: int64(i), Value: 1 / float64(i+1), Time: t0.Add(time.Duration(i) * time.Second)}}
		info := map[string]any{"epoch": i}
		if err := o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: pts}}, Info: info}); err != nil {
			t.Fatal(err)
		}
		hb := b.Next(t0.Add(time.Duration(i+1)*time.Second), info)
		hb.Result, hb.HasResult = i, true
		if err := o.Heartbeat(ctx, hb); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if err := o.Artifact(ctx, &observer.ArtifactEvent{Name: "model.bin", Path: art}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: t0.Add(5 * time.Second), Result: 0.93, HasResult: true}); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestSyncedBucketIsFileStore writes the same run with -F and with the
// blob layout over a directory (what a bucket synced to disk is): every
// file of the run directory and the shared sources are byte for byte the
// same, and file storage's reader reads the blob run.
func TestSyncedBucketIsFileStore(t *testing.T) {
	fileDir := filepath.Join(t.TempDir(), "runs")
	blobRoot := t.TempDir()
	cfg, err := file.ParseConfig(fileDir)
	if err != nil {
		t.Fatal(err)
	}
	fo, err := file.New(context.Background(), cfg, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	ev := observertest.StartEvent()
	fid := drive(t, fo, ev, t.TempDir())
	ev2 := *ev
	bid := drive(t, newObserver(t, appendingDir{&dirBucket{root: blobRoot, minAppend: 8}}, "runs/", io.Discard), &ev2, t.TempDir())
	if fid != "1" || bid != "1" {
		t.Fatalf("ids %q and %q, want 1 and 1", fid, bid)
	}
	blobDir := filepath.Join(blobRoot, "runs")
	for _, name := range []string{"1/run.json", "1/config.json", "1/cout.txt", "1/info.json", "1/metrics.json", "1/model.bin"} {
		want, err := os.ReadFile(filepath.Join(fileDir, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(blobDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from -F's:\n got %q\nwant %q", name, got, want)
		}
	}
	for _, s := range ev.Experiment.Sources {
		p := filepath.Join(blobDir, filepath.FromSlash(layout.SourcePath(s)))
		if _, err := os.Stat(p); err != nil {
			t.Errorf("source %s not where run.json says: %v", s.Name, err)
		}
	}
	// sacred ls -F over the synced bucket.
	bcfg, err := file.ParseConfig(blobDir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := file.Open(context.Background(), bcfg, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := r.Runs(context.Background())
	if err != nil || len(ids) != 1 || ids[0] != "1" {
		t.Fatalf("file reader over the synced bucket: runs %v, %v", ids, err)
	}
	run, err := r.Run(context.Background(), "1")
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != observer.StatusCompleted || len(run.Metrics) != 1 || len(run.Metrics[0].Points) != 3 || !strings.Contains(string(run.Output), "epoch 2") {
		t.Errorf("file reader over the synced bucket: %+v", run)
	}
}

// TestOutputSendsOnlyNewBytes: once cout.txt is past MinAppendSize, a beat
// sends its new bytes only; below it the object is rewritten whole.
func TestOutputSendsOnlyNewBytes(t *testing.T) {
	const minAppend, beat, beats = 4 << 10, 1 << 10, 64
	d := &dirBucket{root: t.TempDir(), minAppend: minAppend}
	o := newObserver(t, appendingDir{d}, "", io.Discard)
	ev := observertest.StartEvent()
	start(t, o, ev)
	b := observertest.NewBeats()
	line := bytes.Repeat([]byte("x"), beat-1)
	for i := range beats {
		b.Out.Append(append(line, '\n'))
		before := d.putBytes.Load()
		if err := o.Heartbeat(context.Background(), b.Next(ev.Time.Add(time.Duration(i)*time.Second), nil)); err != nil {
			t.Fatal(err)
		}
		sent := d.putBytes.Load() - before
		// run.json is a few KiB; cout.txt costs the new KiB once the
		// object is past MinAppendSize, the whole output below it.
		runJSON, _ := os.Stat(filepath.Join(d.root, "1", "run.json"))
		coutCost := sent - runJSON.Size()
		if want := int64(beat); b.Out.Size()-beat >= minAppend && coutCost != want {
			t.Fatalf("beat %d sent %d bytes of output, want %d", i, coutCost, want)
		}
		if coutCost > minAppend+beat {
			t.Fatalf("beat %d sent %d bytes of output, more than %d", i, coutCost, minAppend+beat)
		}
	}
	got, _ := os.ReadFile(filepath.Join(d.root, "1", "cout.txt"))
	if !bytes.Equal(got, b.Out.Bytes()) {
		t.Fatalf("cout.txt has %d bytes, want the %d of the output", len(got), b.Out.Size())
	}
	if d.appends.Load() == 0 {
		t.Fatal("no server-side append")
	}
}

// landedBucket carries out a write of cout.txt and then reports a failure,
// as a request does whose answer is lost.
type landedBucket struct {
	appendingDir
	failCout bool
}

func (l *landedBucket) Append(ctx context.Context, key string, size int64, src io.ReaderAt, n int64) error {
	err := l.appendingDir.Append(ctx, key, size, src, n)
	if l.failCout && err == nil {
		l.failCout = false
		return errors.New("connection reset after the write")
	}
	return err
}

func (l *landedBucket) Put(ctx context.Context, key string, src io.ReaderAt, size int64, ct string) error {
	err := l.appendingDir.Put(ctx, key, src, size, ct)
	if l.failCout && err == nil && strings.HasSuffix(key, layout.CoutFile) {
		l.failCout = false
		return errors.New("connection reset after the write")
	}
	return err
}

// TestOutputRepeatAfterLostAnswer: a beat whose write landed but reported
// an error comes again with the same From (the retry decorator's way);
// the output is not doubled, whether it was appended or rewritten.
func TestOutputRepeatAfterLostAnswer(t *testing.T) {
	for _, minAppend := range []int64{1, 1 << 20} {
		t.Run(fmt.Sprint(minAppend), func(t *testing.T) {
			lb := &landedBucket{appendingDir: appendingDir{&dirBucket{root: t.TempDir(), minAppend: minAppend}}}
			out, beatCtx := beats(t, newObserver(t, lb, "", io.Discard))
			beat := func(from int64) error { return beatCtx(context.Background(), from) }
			out.Append([]byte("one\n"))
			if err := beat(0); err != nil {
				t.Fatal(err)
			}
			out.Append([]byte("two\n"))
			lb.failCout = true
			if err := beat(4); err == nil {
				t.Fatal("the lost answer was not reported")
			}
			out.Append([]byte("three\n"))
			before := lb.putBytes.Load()
			if err := beat(4); err != nil { // same From: the decorator's repeat
				t.Fatal(err)
			}
			got, _ := os.ReadFile(filepath.Join(lb.root, "1", "cout.txt"))
			if string(got) != "one\ntwo\nthree\n" {
				t.Fatalf("cout.txt = %q", got)
			}
			// The object held "one\ntwo\n" already: an append sends
			// only "three\n", not the output again from the start.
			runJSON, _ := os.Stat(filepath.Join(lb.root, "1", "run.json"))
			if sent := lb.putBytes.Load() - before - runJSON.Size(); minAppend == 1 && sent != int64(len("three\n")) {
				t.Errorf("the repeat sent %d bytes of output, want %d", sent, len("three\n"))
			}
		})
	}
}

// partsBucket records the size of each write of cout.txt and fails the
// append numbered failAt (1-based), as a call does whose deadline passes
// during that request.
type partsBucket struct {
	appendingDir
	sizes  []int64
	failAt int
	n      int
}

func (p *partsBucket) Put(ctx context.Context, key string, src io.ReaderAt, size int64, ct string) error {
	if strings.HasSuffix(key, layout.CoutFile) {
		p.sizes = append(p.sizes, size)
	}
	return p.appendingDir.Put(ctx, key, src, size, ct)
}

func (p *partsBucket) Append(ctx context.Context, key string, size int64, src io.ReaderAt, n int64) error {
	p.n++
	if p.n == p.failAt {
		return context.DeadlineExceeded
	}
	p.sizes = append(p.sizes, n)
	return p.appendingDir.Append(ctx, key, size, src, n)
}

// TestOutputInParts: a beat's output larger than AppendChunk goes in
// requests of at most that size; when one fails, the parts before it stay
// stored, the error names only the range from the failed part on, and the
// beat sent again sends that range only.
func TestOutputInParts(t *testing.T) {
	const minAppend, chunk = 1 << 10, 4 << 10
	pb := &partsBucket{appendingDir: appendingDir{&dirBucket{root: t.TempDir(), minAppend: minAppend}}, failAt: 2}
	out, beatCtx := beats(t, newChunked(t, pb, chunk))
	for i := 0; out.Size() < 6*chunk+100; i++ {
		out.Append([]byte(fmt.Sprintf("line %d of a burst of output\n", i)))
	}
	beat := func() error { return beatCtx(context.Background(), 0) }
	// Rewrite [0, 4K), append [4K, 8K), append [8K, 12K) fails.
	err := beat()
	if err == nil {
		t.Fatal("the failed part was not reported")
	}
	if want := fmt.Sprintf("output bytes %d to %d not stored", 2*chunk, out.Size()); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q, want it to name %q", err, want)
	}
	var stored *observer.OutputStored
	if !errors.As(err, &stored) || stored.Stored != 2*chunk {
		t.Fatalf("error %q does not say the output is stored up to %d (*observer.OutputStored: %+v)", err, 2*chunk, stored)
	}
	if got, _ := os.ReadFile(filepath.Join(pb.root, "1", "cout.txt")); !bytes.Equal(got, out.Bytes()[:2*chunk]) {
		t.Fatalf("after the failure cout.txt holds %d bytes, want the parts before it (%d)", len(got), 2*chunk)
	}
	if err := beat(); err != nil { // the decorator's repeat, same From
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(pb.root, "1", "cout.txt")); !bytes.Equal(got, out.Bytes()) {
		t.Fatalf("cout.txt holds %d bytes, want the output's %d", len(got), out.Size())
	}
	var sent int64
	for i, n := range pb.sizes {
		if n > chunk {
			t.Errorf("request %d sent %d bytes, more than the %d of a part", i, n, chunk)
		}
		sent += n
	}
	if sent != out.Size() {
		t.Errorf("%d bytes sent in %d requests for %d of output: the repeat sent stored parts again", sent, len(pb.sizes), out.Size())
	}
}

// slowLink is a store behind a link that cannot carry more than limit
// bytes in one call: a larger request runs into the call's deadline.
type slowLink struct {
	appendingDir
	limit int64
	tries int
}

func (l *slowLink) Put(ctx context.Context, key string, src io.ReaderAt, size int64, ct string) error {
	if strings.HasSuffix(key, layout.CoutFile) && size > l.limit {
		l.tries++
		return fmt.Errorf("writing %s: %w", key, context.DeadlineExceeded)
	}
	return l.appendingDir.Put(ctx, key, src, size, ct)
}

func (l *slowLink) Append(ctx context.Context, key string, size int64, src io.ReaderAt, n int64) error {
	if n > l.limit {
		l.tries++
		return fmt.Errorf("appending to %s: %w", key, context.DeadlineExceeded)
	}
	return l.appendingDir.Append(ctx, key, size, src, n)
}

// TestPartsShrinkOnASlowLink: when a part cannot be sent within a call,
// the next parts are smaller, so the output lands after a few calls
// instead of never; every call sent again starts where the store says the
// output got to, as the retry decorator does.
func TestPartsShrinkOnASlowLink(t *testing.T) {
	const chunk, limit = 64 << 10, 10 << 10
	l := &slowLink{appendingDir: appendingDir{&dirBucket{root: t.TempDir(), minAppend: 1}}, limit: limit}
	o := newChunked(t, l, chunk)
	out, beat := beats(t, o)
	for i := 0; out.Size() < 3*chunk; i++ {
		out.Append([]byte(fmt.Sprintf("line %d of output on a slow link\n", i)))
	}
	var from int64
	calls := 0
	for ; calls < 10; calls++ {
		err := beat(context.Background(), from)
		if err == nil {
			break
		}
		var stored *observer.OutputStored
		if !errors.As(err, &stored) {
			t.Fatalf("call %d: %v, without how far the output got", calls, err)
		}
		from = stored.Stored
	}
	if got, _ := os.ReadFile(filepath.Join(l.root, "1", "cout.txt")); !bytes.Equal(got, out.Bytes()) {
		t.Fatalf("after %d calls cout.txt holds %d bytes, want the output's %d", calls, len(got), out.Size())
	}
	// 64 KiB, 32 KiB and 16 KiB parts run out of time; 8 KiB parts fit.
	if l.tries != 3 {
		t.Errorf("%d requests ran out of time, want 3 (64, 32 and 16 KiB)", l.tries)
	}
	// The link is fast again: parts sent well within their call's time
	// grow back to AppendChunk.
	l.limit = 1 << 30
	stored := out.Size()
	for out.Size() < 6*chunk {
		out.Append([]byte("more output on a fast link\n"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if err := beat(ctx, stored); err != nil {
		t.Fatal(err)
	}
	if o.part != chunk {
		t.Errorf("the part is %d bytes after fast sends, want it back at %d", o.part, chunk)
	}
	if got, _ := os.ReadFile(filepath.Join(l.root, "1", "cout.txt")); !bytes.Equal(got, out.Bytes()) {
		t.Fatalf("cout.txt holds %d bytes, want the output's %d", len(got), out.Size())
	}
}

// misplacingBucket spoils cout.txt once, as an append that landed on an
// object changed by a late request does, and says so.
type misplacingBucket struct {
	appendingDir
	spoil bool
}

func (m *misplacingBucket) Append(ctx context.Context, key string, size int64, src io.ReaderAt, n int64) error {
	if m.spoil {
		m.spoil = false
		os.WriteFile(m.path(key), []byte("spoiled by a late request"), 0o644)
		return fmt.Errorf("the result holds 25 bytes, not %d: %w", size+n, ErrAppendMisplaced)
	}
	return m.appendingDir.Append(ctx, key, size, src, n)
}

// TestMisplacedAppendRewritesFromTheStart: after an append that landed on
// a changed object, the error says nothing of the output is known to be
// stored, and the beat sent again writes cout.txt from the start.
func TestMisplacedAppendRewritesFromTheStart(t *testing.T) {
	mb := &misplacingBucket{appendingDir: appendingDir{&dirBucket{root: t.TempDir(), minAppend: 1}}}
	var warn bytes.Buffer
	out, beatCtx := beats(t, newObserver(t, mb, "", &warn))
	beat := func(from int64) error { return beatCtx(context.Background(), from) }
	out.Append([]byte("one\n"))
	if err := beat(0); err != nil {
		t.Fatal(err)
	}
	out.Append([]byte("two\n"))
	mb.spoil = true
	err := beat(4)
	var stored *observer.OutputStored
	if !errors.As(err, &stored) || stored.Stored != 0 {
		t.Fatalf("error %v, want one that says the output is stored up to 0", err)
	}
	out.Append([]byte("three\n"))
	if err := beat(0); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(mb.root, "1", "cout.txt")); string(got) != "one\ntwo\nthree\n" {
		t.Fatalf("cout.txt = %q", got)
	}
	if !strings.Contains(warn.String(), "written again from the start") {
		t.Errorf("no warning: %q", warn.String())
	}
}

// noAppendBucket is a store that refuses server-side appends.
type noAppendBucket struct{ *dirBucket }

func (noAppendBucket) MinAppendSize() int64 { return 0 }
func (noAppendBucket) Append(context.Context, string, int64, io.ReaderAt, int64) error {
	return fmt.Errorf("UploadPartCopy: NotImplemented: %w", ErrAppendUnsupported)
}

// TestAppendUnsupported: the output is rewritten whole instead, and the
// user hears of it once.
func TestAppendUnsupported(t *testing.T) {
	d := &dirBucket{root: t.TempDir()}
	var warn bytes.Buffer
	o := newObserver(t, noAppendBucket{d}, "p/", &warn)
	ev := observertest.StartEvent()
	start(t, o, ev)
	b := observertest.NewBeats()
	for i := range 5 {
		b.Out.Append([]byte(fmt.Sprintf("line %d\n", i)))
		if err := o.Heartbeat(context.Background(), b.Next(ev.Time, nil)); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := os.ReadFile(filepath.Join(d.root, "p", "1", "cout.txt"))
	if !bytes.Equal(got, b.Out.Bytes()) {
		t.Fatalf("cout.txt = %q, want %q", got, b.Out.Bytes())
	}
	if n := strings.Count(warn.String(), "\n"); n != 1 || !strings.Contains(warn.String(), "rewritten whole") {
		t.Fatalf("want one warning line, got %q", warn.String())
	}
}

// carelessBucket ignores Create's condition, as some S3-compatible
// stores ignore If-None-Match.
type carelessBucket struct{ *dirBucket }

func (c carelessBucket) Create(ctx context.Context, key string, data []byte, ct string) error {
	return c.Put(ctx, key, bytesReaderAt(data), int64(len(data)), ct)
}

func TestIgnoredConditionIsReported(t *testing.T) {
	var warn bytes.Buffer
	o := newObserver(t, carelessBucket{&dirBucket{root: t.TempDir()}}, "", &warn)
	start(t, o, observertest.StartEvent())
	if !strings.Contains(warn.String(), "ignores conditional writes") || strings.Count(warn.String(), "\n") != 1 {
		t.Fatalf("want one warning line, got %q", warn.String())
	}
	var quiet bytes.Buffer
	o = newObserver(t, &dirBucket{root: t.TempDir()}, "", &quiet)
	start(t, o, observertest.StartEvent())
	if quiet.Len() != 0 {
		t.Fatalf("a store that honours conditions got a warning: %q", quiet.String())
	}
}

func TestCleanPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "/": "", "runs": "runs/", "/a//b/./c/": "a/b/c/", "a/b": "a/b/",
	} {
		got, err := CleanPrefix(in)
		if err != nil || got != want {
			t.Errorf("CleanPrefix(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"a/../b", "..", "a\x00b"} {
		if _, err := CleanPrefix(bad); err == nil {
			t.Errorf("CleanPrefix(%q) accepted", bad)
		}
	}
}

// TestFitPart: a part that ran out of time shrinks the next ones only if
// it had most of the call's time; a quick one grows them back.
func TestFitPart(t *testing.T) {
	o, err := New(Config{Bucket: &dirBucket{root: t.TempDir()}, AppendChunk: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(-time.Millisecond)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	const budget = 30 * time.Second
	late := fmt.Errorf("appending: %w", context.DeadlineExceeded)
	o.fitPart(ctx, budget, deadline.Add(-5*time.Second), late)
	if o.part != 64<<20 {
		t.Errorf("a part begun 5 s before the end of a 30 s call shrank the parts to %d", o.part)
	}
	o.fitPart(ctx, budget, deadline.Add(-20*time.Second), late)
	if o.part != 32<<20 {
		t.Errorf("a part begun 20 s before the end of a 30 s call left the parts at %d, want 32 MiB", o.part)
	}
	for range 10 {
		o.fitPart(ctx, budget, deadline.Add(-budget), late)
	}
	if o.part != 1<<20 {
		t.Errorf("parts at %d after many parts out of time, want the floor 1 MiB", o.part)
	}
	live, cancel2 := context.WithTimeout(context.Background(), time.Hour)
	defer cancel2()
	o.fitPart(live, time.Hour, time.Now(), nil)
	if o.part != 2<<20 {
		t.Errorf("a quick part left the parts at %d, want 2 MiB", o.part)
	}
}
