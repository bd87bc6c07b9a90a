package mongo

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/sacred-go/sacred/internal/testserver"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// fileOutput is an observer.Output over a growing file, like the runner's
// spool, so that big outputs do not sit in the test's memory.
type fileOutput struct{ f *os.File }

func (o fileOutput) Size() int64 {
	fi, err := o.f.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}

func (o fileOutput) ReadAt(p []byte, off int64) (int, error) { return o.f.ReadAt(p, off) }

// writeOutput appends n bytes of numbered lines (with some non-ASCII) to
// f and feeds them to the hash.
func writeOutput(t testing.TB, f *os.File, n int64, h io.Writer, seq *int) {
	t.Helper()
	var buf bytes.Buffer
	for int64(buf.Len()) < n {
		fmt.Fprintf(&buf, "line %09d: loss=%.6f é ✓\n", *seq, 1/float64(*seq+1))
		*seq++
	}
	b := buf.Bytes()[:n]
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	h.Write(b)
}

func hashReader(t testing.TB, r io.Reader) (string, int64) {
	t.Helper()
	h := md5.New()
	n, err := io.Copy(h, r)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// TestLargeOutput writes 200 MB of output in four beats: the runs document
// stays small, and the full output is in GridFS, read back byte for byte.
func TestLargeOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("200 MB of output: not in -short")
	}
	s := newStore(t)
	o := s.open(t, "", nil)
	ev := observertest.StartEvent()
	id, err := o.Started(ctx, ev)
	must(t, err)
	f, err := os.Create(filepath.Join(t.TempDir(), "spool"))
	must(t, err)
	defer f.Close()
	out := fileOutput{f}
	h := md5.New()
	seq := 0
	var last int64
	const total, beats = 200 << 20, 4
	for i := 0; i < beats; i++ {
		writeOutput(t, f, total/beats, h, &seq)
		to := out.Size()
		hb := &observer.HeartbeatEvent{BeatTime: ev.Time.Add(time.Duration(i+1) * time.Second), Output: out, From: last, To: to, Final: i == beats-1}
		last = to
		t0 := time.Now()
		must(t, o.Heartbeat(ctx, hb))
		t.Logf("beat %d: %d MB new output in %v", i, (total/beats)>>20, time.Since(t0).Round(time.Millisecond))
		raw := rawRun(t, o)
		// What we wrote: the document's own BSON size.
		if len(raw) > 2<<20 {
			t.Fatalf("beat %d: runs document is %d bytes, want at most 2 MiB", i, len(raw))
		}
	}
	must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time.Add(time.Minute)}))
	raw := rawRun(t, o)
	if len(raw) >= 16<<20 {
		t.Fatalf("runs document is %d bytes", len(raw))
	}
	co := str(raw.Lookup("captured_out"))
	if !strings.HasPrefix(co, "line 000000000: ") || !strings.Contains(co, "captured_out://runs/"+id) {
		t.Errorf("captured_out does not start with the output or lacks the marker: %.200q", co)
	}
	end := make([]byte, 100)
	_, err = f.ReadAt(end, total-100)
	must(t, err)
	wantEnd := strings.ToValidUTF8(string(end), "\uFFFD")
	if !strings.HasSuffix(co, wantEnd) || strings.Contains(strings.TrimSuffix(co, wantEnd), "\uFFFD") {
		t.Errorf("captured_out does not end with the output's last bytes, or has a broken character: ...%q", co[len(co)-120:])
	}
	want := hex.EncodeToString(h.Sum(nil))
	r := s.reader(t)
	run, err := r.Run(ctx, id)
	must(t, err)
	got, n := hashReader(t, bytes.NewReader(run.Output))
	if n != total || got != want {
		t.Fatalf("output read back: %d bytes md5 %s, want %d bytes md5 %s", n, got, int64(total), want)
	}
}

// TestManyMetricPoints logs 100,000 points of one metric over four beats.
func TestManyMetricPoints(t *testing.T) {
	s := newStore(t)
	o := s.open(t, "", nil)
	ev := observertest.StartEvent()
	id, err := o.Started(ctx, ev)
	must(t, err)
	const total, beats = 100000, 4
	info := map[string]any{}
	step := int64(0)
	for b := 0; b < beats; b++ {
		pts := make([]observer.MetricPoint, total/beats)
		for i := range pts {
			pts[i] = observer.MetricPoint{Step: step, Value: float64(step) / 7, Time: ev.Time.Add(time.Duration(step) * time.Millisecond)}
			step++
		}
		must(t, o.LogMetrics(ctx, &observer.MetricsEvent{Info: info, Metrics: []observer.MetricSeries{{Name: "loss", Points: pts}, {Name: "lr", Points: pts[:1]}}}))
		must(t, o.Heartbeat(ctx, &observer.HeartbeatEvent{Info: info, BeatTime: ev.Time}))
	}
	var m bson.Raw
	must(t, o.metrics.FindOne(ctx, bson.D{{Key: "run_id", Value: o.id}, {Key: "name", Value: "loss"}}).Decode(&m))
	if len(m) >= 16<<20 {
		t.Fatalf("metric document is %d bytes", len(m))
	}
	if n := len(values(m.Lookup("values").Array())); n != total {
		t.Fatalf("loss document holds %d values, want %d", n, total)
	}
	run, err := s.reader(t).Run(ctx, id)
	must(t, err)
	if len(run.Metrics) != 2 || len(run.Metrics[0].Points) != total {
		t.Fatalf("read back %d series", len(run.Metrics))
	}
	for i, p := range run.Metrics[0].Points {
		if p.Step != int64(i) || p.Value != float64(i)/7 {
			t.Fatalf("point %d read back as %+v", i, p)
		}
	}
	if ms := run.Info["metrics"].([]any); len(ms) != 2 {
		t.Errorf("info.metrics %v", ms)
	}
}

// TestMetricRollover makes a series outgrow a (small) document limit: it
// continues in documents with part 1, 2, ..., each within the limit, and
// reads back whole.
func TestMetricRollover(t *testing.T) {
	s := newStore(t)
	o := s.open(t, "", nil)
	o.metricDocLimit = 4096
	ev := observertest.StartEvent()
	id, err := o.Started(ctx, ev)
	must(t, err)
	const total = 1000
	for b := 0; b < 4; b++ {
		pts := make([]observer.MetricPoint, total/4)
		for i := range pts {
			st := int64(b*total/4 + i)
			pts[i] = observer.MetricPoint{Step: st, Value: float64(st), Time: ev.Time}
		}
		must(t, o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: pts}}}))
	}
	cur, err := o.metrics.Find(ctx, bson.D{{Key: "run_id", Value: o.id}})
	must(t, err)
	docs := 0
	for cur.Next(ctx) {
		docs++
		if len(cur.Current) > 4096 {
			t.Errorf("metric document part %d is %d bytes, limit 4096", intOf(cur.Current.Lookup("part")), len(cur.Current))
		}
	}
	if docs < 10 {
		t.Errorf("%d documents, want the series split in many", docs)
	}
	if len(o.pointers) != 1 {
		t.Errorf("info.metrics has %d pointers, want 1 (the first part)", len(o.pointers))
	}
	run, err := s.reader(t).Run(ctx, id)
	must(t, err)
	if len(run.Metrics) != 1 || len(run.Metrics[0].Points) != total {
		t.Fatalf("read back %+v", run.Metrics)
	}
	for i, p := range run.Metrics[0].Points {
		if p.Step != int64(i) {
			t.Fatalf("point %d has step %d", i, p.Step)
		}
	}
}

// TestLargeArtifact stores a 50 MB artifact and reads it back.
func TestLargeArtifact(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MB artifact: not in -short")
	}
	s := newStore(t)
	o := s.open(t, "", nil)
	id, err := o.Started(ctx, observertest.StartEvent())
	must(t, err)
	p := filepath.Join(t.TempDir(), "model.bin")
	f, err := os.Create(p)
	must(t, err)
	h := md5.New()
	seq := 0
	writeOutput(t, f, 50<<20, h, &seq)
	must(t, f.Close())
	must(t, o.Artifact(ctx, &observer.ArtifactEvent{Name: "model.bin", Path: p, OrigPath: p}))
	rc, err := s.reader(t).Artifact(ctx, id, "model.bin")
	must(t, err)
	defer rc.Close()
	got, n := hashReader(t, rc)
	if want := hex.EncodeToString(h.Sum(nil)); n != 50<<20 || got != want {
		t.Fatalf("artifact read back: %d bytes md5 %s, want %d bytes md5 %s", n, got, 50<<20, want)
	}
}

// TestServerLostMidRun stops the server during a run and starts it again
// on the same port and data. While it is away every call returns an
// error, within its deadline; sent again afterwards (as the retry
// decorator does: the failed points first, the same output range, the
// same artifact), everything is stored once and the record is complete.
func TestServerLostMidRun(t *testing.T) {
	if os.Getenv(testserver.EnvMongoURI) != "" {
		t.Skip("needs the embedded server, which the test can stop")
	}
	s := newStore(t)
	o := s.open(t, "serverSelectionTimeoutMS=300", nil)
	ev := observertest.StartEvent()
	id, err := o.Started(ctx, ev)
	must(t, err)
	out := observertest.NewOutput()
	point := func(i int) observer.MetricPoint {
		return observer.MetricPoint{Step: int64(i), Value: 1 / float64(i+1), Time: ev.Time.Add(time.Duration(i) * time.Millisecond)}
	}
	series := func(pts ...observer.MetricPoint) []observer.MetricSeries {
		return []observer.MetricSeries{{Name: "loss", Points: pts}}
	}
	beat := func(from int64, info map[string]any) *observer.HeartbeatEvent {
		return &observer.HeartbeatEvent{Info: info, BeatTime: time.Now(), Output: out, From: from, To: out.Size()}
	}
	out.Append([]byte("epoch 1\n"))
	must(t, o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: series(point(0))}))
	must(t, o.Heartbeat(ctx, beat(0, map[string]any{"epoch": 1})))
	acked := out.Size()

	s.srv.Stop()
	dir := t.TempDir()
	art := writeFile(t, dir, "model.txt", []byte("weights\n"))
	out.Append([]byte("epoch 2\n"))
	failing := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s with the server gone: no error", what)
		}
	}
	failing("LogMetrics", o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: series(point(1))}))
	failing("Heartbeat", o.Heartbeat(ctx, beat(acked, map[string]any{"epoch": 2})))
	failing("Artifact", o.Artifact(ctx, &observer.ArtifactEvent{Name: "model.txt", Path: art}))

	s.srv.Start()
	waitServer(t, o)
	out.Append([]byte("epoch 3\n"))
	info := map[string]any{"epoch": 3}
	must(t, o.LogMetrics(ctx, &observer.MetricsEvent{Info: info, Metrics: series(point(1), point(2))}))
	must(t, o.Artifact(ctx, &observer.ArtifactEvent{Name: "model.txt", Path: art}))
	hb := beat(acked, info)
	hb.Final = true
	must(t, o.Heartbeat(ctx, hb))
	must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time.Add(5 * time.Second), Result: 42, HasResult: true}))

	run, err := s.reader(t).Run(ctx, id)
	must(t, err)
	if run.Status != "COMPLETED" || !observertest.Equal(run.Result, 42) {
		t.Errorf("status %s result %v", run.Status, run.Result)
	}
	if string(run.Output) != "epoch 1\nepoch 2\nepoch 3\n" {
		t.Errorf("output %q", run.Output)
	}
	if len(run.Metrics) != 1 || len(run.Metrics[0].Points) != 3 {
		t.Fatalf("metrics %+v, want 3 points", run.Metrics)
	}
	for i, p := range run.Metrics[0].Points {
		if p.Step != int64(i) {
			t.Errorf("point %d has step %d", i, p.Step)
		}
	}
	if !observertest.Equal(run.Info["epoch"], 3) {
		t.Errorf("info %v", run.Info)
	}
	if len(run.Artifacts) != 1 {
		t.Errorf("artifacts %v, want one", run.Artifacts)
	}
}

// TestFinalStateLostIsAnError: with the server gone, the final event
// returns an error within its deadline that names the status not written.
func TestFinalStateLostIsAnError(t *testing.T) {
	if os.Getenv(testserver.EnvMongoURI) != "" {
		t.Skip("needs the embedded server, which the test can stop")
	}
	s := newStore(t)
	o := s.open(t, "serverSelectionTimeoutMS=200", nil)
	ev := observertest.StartEvent()
	_, err := o.Started(ctx, ev)
	must(t, err)
	s.srv.Stop()
	fctx, cancel := contextWithTimeout(30 * time.Second)
	defer cancel()
	err = o.Completed(fctx, &observer.CompletedEvent{StopTime: ev.Time})
	if err == nil {
		t.Fatal("Completed succeeded with the server gone")
	}
	if fctx.Err() != nil {
		t.Errorf("Completed ran until its deadline instead of returning the server's error")
	}
	if !strings.Contains(err.Error(), "COMPLETED") && !strings.Contains(err.Error(), "result") {
		t.Errorf("error %q does not say what was not written", err)
	}
}

func TestServerDownAtStart(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	start := time.Now()
	_, err = openValue("mongodb://alice:Hunter22@" + addr + "/lab?serverSelectionTimeoutMS=300")
	if err == nil {
		t.Fatal("Open succeeded with no server")
	}
	if strings.Contains(err.Error(), "Hunter22") {
		t.Errorf("error leaks the password: %v", err)
	}
	if !strings.Contains(err.Error(), "cannot reach MongoDB") || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q", err)
	}
	if d := time.Since(start); d > connectTimeout {
		t.Errorf("took %v", d)
	}
	// Sacred's ambiguous form gets a hint.
	_, err = openValue("mydb.mycoll:1")
	if err == nil || !strings.Contains(err.Error(), "read as HOST:PORT") {
		t.Errorf("ambiguous form: %v", err)
	}
}

// TestCredentialsNeverStored runs with a password in the URI (the runner
// records -m redacted in meta.options) and scans every stored document.
func TestCredentialsNeverStored(t *testing.T) {
	s := newStore(t)
	const pw = "Pa55wordSecret"
	spec := strings.Replace(s.spec(""), "mongodb://", "mongodb://sacred:"+pw+"@", 1)
	cfg, err := ParseConfig(spec)
	must(t, err)
	if s.srv != nil {
		// The embedded FerretDB has no users: connect without them, but
		// keep the configuration (and its redaction) of the URI with them.
		plain, err := ParseConfig(s.spec(""))
		must(t, err)
		cfg.URI = plain.URI
	}
	var warn bytes.Buffer
	o, err := New(ctx, cfg, observer.Settings{Warn: &warn})
	must(t, err)
	defer o.Close(ctx)
	if strings.Contains(o.Name(), pw) {
		t.Fatalf("Name() leaks the password: %s", o.Name())
	}
	ev := observertest.StartEvent()
	ev.Meta.Options["--mongo_db"] = observer.RedactValue("mongo_db", spec)
	_, err = o.Started(ctx, ev)
	must(t, err)
	beats := observertest.NewBeats()
	beats.Out.Append([]byte("hello\n"))
	hb := beats.Next(time.Now(), map[string]any{"k": "v"})
	hb.Final = true
	must(t, o.Heartbeat(ctx, hb))
	must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: time.Now()}))
	if strings.Contains(warn.String(), pw) {
		t.Errorf("warnings leak the password")
	}
	names, err := o.db.ListCollectionNames(ctx, bson.D{})
	must(t, err)
	docs := 0
	for _, n := range names {
		cur, err := o.db.Collection(n).Find(ctx, bson.D{})
		must(t, err)
		for cur.Next(ctx) {
			docs++
			if bytes.Contains(cur.Current, []byte(pw)) {
				t.Errorf("collection %s holds the password: %v", n, cur.Current)
			}
		}
	}
	if docs < 3 {
		t.Errorf("scanned only %d documents", docs)
	}
	raw := rawRun(t, o)
	if got := str(raw.Lookup("meta", "options", "--mongo_db")); !strings.Contains(got, "sacred:xxxxx@") {
		t.Errorf("meta.options --mongo_db = %q", got)
	}
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// openValue opens an observer from an -m value through the registered
// kind, as the command line does.
func openValue(value string) (observer.Observer, error) {
	k, ok := observer.Lookup("mongo_db")
	if !ok {
		return nil, errors.New("mongo_db is not registered")
	}
	return k.OpenObserver(ctx, value, observer.Settings{})
}

// waitServer returns once o's client sees the server again (its monitor
// checks at most every 500 ms), or fails the test after 30 s.
func waitServer(t *testing.T, o *Observer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := o.client.Ping(ctx, nil)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not back: %v", err)
		}
	}
}
