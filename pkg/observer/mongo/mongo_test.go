package mongo

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sacred-go/sacred/internal/testserver"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// store is a database for one test: on the embedded FerretDB, or on the
// MongoDB SACRED_TEST_MONGO_URI names (a fresh database, dropped after).
type store struct {
	srv  *testserver.Mongo // nil on a real MongoDB
	base string            // URI without database
	db   string
}

func newStore(t testing.TB) *store {
	t.Helper()
	s := &store{db: "t" + randHex(6)}
	if uri := os.Getenv(testserver.EnvMongoURI); uri != "" {
		s.base = strings.TrimSuffix(strings.SplitN(uri, "?", 2)[0], "/") + "/"
		t.Cleanup(func() {
			c, err := mongo.Connect(options.Client().ApplyURI(uri))
			if err == nil {
				_ = c.Database(s.db).Drop(context.Background())
				_ = c.Disconnect(context.Background())
			}
		})
		return s
	}
	s.srv = testserver.FerretDB(t)
	s.base = s.srv.URI()
	return s
}

// spec is the -m value of the test's database; extra is a query.
func (s *store) spec(extra string) string {
	v := s.base + s.db + "?serverSelectionTimeoutMS=2000"
	if extra != "" {
		v += "&" + extra
	}
	return v
}

func (s *store) open(t testing.TB, extra string, warn io.Writer) *Observer {
	t.Helper()
	cfg, err := ParseConfig(s.spec(extra))
	if err != nil {
		t.Fatal(err)
	}
	o, err := New(context.Background(), cfg, observer.Settings{Warn: warn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close(context.Background()) })
	return o
}

func (s *store) reader(t testing.TB) *Reader {
	t.Helper()
	cfg, err := ParseConfig(s.spec(""))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(context.Background(), cfg, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func rawRun(t testing.TB, o *Observer) bson.Raw {
	t.Helper()
	raw, err := o.runs.FindOne(context.Background(), bson.D{{Key: "_id", Value: o.id}}).Raw()
	if err != nil {
		t.Fatalf("read run %v: %v", o.id, err)
	}
	return raw
}

func keys(d bson.Raw) []string {
	els, _ := d.Elements()
	out := make([]string, len(els))
	for i, e := range els {
		out[i] = e.Key()
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	must(t, os.WriteFile(p, data, 0o644))
	return p
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

var ctx = context.Background()

// TestRunLifecycle records a complete run and reads every part back, raw
// and through the Reader.
func TestRunLifecycle(t *testing.T) {
	s := newStore(t)
	o := s.open(t, "", nil)
	ev := observertest.StartEvent()
	id, err := o.Started(ctx, ev)
	must(t, err)
	if id != "1" {
		t.Fatalf("first run id %q, want 1", id)
	}
	raw := rawRun(t, o)
	wantStart := []string{"_id", "experiment", "format", "command", "host", "start_time", "config", "meta", "status", "resources", "artifacts", "captured_out", "info", "heartbeat"}
	if got := keys(raw); strings.Join(got, ",") != strings.Join(wantStart, ",") {
		t.Fatalf("start keys %v, want %v", got, wantStart)
	}
	if v := raw.Lookup("_id"); v.Type != bson.TypeInt32 || v.Int32() != 1 {
		t.Fatalf("_id %v, want int32 1", v)
	}

	beats := observertest.NewBeats()
	t0 := ev.Time
	beats.Out.Append([]byte("epoch 1\rprogress 50%\n"))
	info := map[string]any{"foo": "bar"}
	mev := &observer.MetricsEvent{Info: info, Metrics: []observer.MetricSeries{
		{Name: "loss", Points: []observer.MetricPoint{{Step: 0, Value: 1, Time: t0}, {Step: 1, Value: 0.5, Time: t0.Add(time.Millisecond)}}},
		{Name: "acc", Points: []observer.MetricPoint{{Step: 0, Value: 0.1, Time: t0}}},
	}}
	must(t, o.LogMetrics(ctx, mev))
	if ms, ok := info["metrics"].([]any); !ok || len(ms) != 2 {
		t.Fatalf("info.metrics after LogMetrics = %#v, want two pointers", info["metrics"])
	}
	must(t, o.Heartbeat(ctx, beats.Next(t0.Add(time.Second), info)))

	dir := t.TempDir()
	art := writeFile(t, dir, "model.txt", []byte("weights: 1 2 3\n"))
	must(t, o.Artifact(ctx, &observer.ArtifactEvent{Name: "model.txt", Path: art, OrigPath: art, Metadata: map[string]any{"kind": "weights"}}))
	resData := []byte("input data\n")
	res := writeFile(t, dir, "input.txt", resData)
	rev := &observer.ResourceEvent{Path: res, MD5: md5hex(resData)}
	must(t, o.Resource(ctx, rev))
	must(t, o.Resource(ctx, rev)) // listed once

	beats.Out.Append([]byte("done\n"))
	must(t, o.LogMetrics(ctx, &observer.MetricsEvent{Info: info, Metrics: []observer.MetricSeries{
		{Name: "loss", Points: []observer.MetricPoint{{Step: 2, Value: 0.25, Time: t0.Add(2 * time.Millisecond)}}},
	}}))
	hb := beats.Next(t0.Add(2*time.Second), info)
	hb.Final, hb.Result, hb.HasResult = true, 0.5, true
	must(t, o.Heartbeat(ctx, hb))
	stop := t0.Add(3 * time.Second)
	must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: stop, Result: map[string]any{"score": 0.93}, HasResult: true}))

	raw = rawRun(t, o)
	wantEnd := append(wantStart, "result", "stop_time")
	if got := keys(raw); strings.Join(got, ",") != strings.Join(wantEnd, ",") {
		t.Fatalf("final keys %v, want %v", got, wantEnd)
	}
	if st := raw.Lookup("status").StringValue(); st != "COMPLETED" {
		t.Errorf("status %q", st)
	}
	if out := raw.Lookup("captured_out").StringValue(); out != "epoch 1\rprogress 50%\ndone\n" {
		t.Errorf("captured_out %q", out)
	}
	for _, k := range []string{"start_time", "heartbeat", "stop_time"} {
		if raw.Lookup(k).Type != bson.TypeDateTime {
			t.Errorf("%s has BSON type %s, want datetime", k, raw.Lookup(k).Type)
		}
	}
	if got := time.UnixMilli(raw.Lookup("stop_time").DateTime()).UTC(); !got.Equal(stop) {
		t.Errorf("stop_time %v, want %v", got, stop)
	}
	infoDoc := raw.Lookup("info").Document()
	if keys(infoDoc)[0] != "foo" {
		t.Errorf("info keys %v", keys(infoDoc))
	}
	ptrs := values(infoDoc.Lookup("metrics").Array())
	if len(ptrs) != 2 || str(ptrs[0].Document().Lookup("name")) != "loss" {
		t.Fatalf("info.metrics %v", infoDoc.Lookup("metrics"))
	}
	// The pointer is the metric document's _id as text, as Omniboard needs.
	oid, err := bson.ObjectIDFromHex(str(ptrs[0].Document().Lookup("id")))
	must(t, err)
	var m bson.Raw
	must(t, o.metrics.FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Decode(&m))
	if got := keys(m); strings.Join(got, ",") != "_id,run_id,name,steps,timestamps,values" && strings.Join(got, ",") != "_id,run_id,name,steps,values,timestamps" {
		t.Errorf("metric document keys %v", got)
	}
	if n := len(values(m.Lookup("steps").Array())); n != 3 {
		t.Errorf("loss has %d steps, want 3", n)
	}
	if m.Lookup("run_id").Type != bson.TypeInt32 {
		t.Errorf("metric run_id type %s", m.Lookup("run_id").Type)
	}

	arts := values(raw.Lookup("artifacts").Array())
	if len(arts) != 1 || str(arts[0].Document().Lookup("name")) != "model.txt" {
		t.Fatalf("artifacts %v", raw.Lookup("artifacts"))
	}
	var f bson.Raw
	must(t, o.files.FindOne(ctx, bson.D{{Key: "_id", Value: arts[0].Document().Lookup("file_id").ObjectID()}}).Decode(&f))
	if got := str(f.Lookup("filename")); got != "artifact://runs/1/model.txt" {
		t.Errorf("artifact filename %q", got)
	}
	if got := str(f.Lookup("contentType")); got != "text/plain" {
		t.Errorf("artifact contentType %q", got)
	}
	if got := str(f.Lookup("metadata", "kind")); got != "weights" {
		t.Errorf("artifact metadata %v", f.Lookup("metadata"))
	}
	if rs := values(raw.Lookup("resources").Array()); len(rs) != 1 {
		t.Errorf("resources %v, want one", raw.Lookup("resources"))
	}

	r := s.reader(t)
	ids, err := r.Runs(ctx)
	must(t, err)
	if len(ids) != 1 || ids[0] != "1" {
		t.Fatalf("Runs = %v", ids)
	}
	run, err := r.Run(ctx, "1")
	must(t, err)
	if !observertest.Equal(run.Config, ev.Config) {
		t.Errorf("config read back %v, want %v", run.Config, ev.Config)
	}
	if string(run.Output) != "epoch 1\rprogress 50%\ndone\n" {
		t.Errorf("output %q", run.Output)
	}
	if len(run.Metrics) != 2 || run.Metrics[1].Name != "loss" || len(run.Metrics[1].Points) != 3 {
		t.Errorf("metrics %+v", run.Metrics)
	}
	if len(run.Experiment.Sources) != 2 || run.Experiment.Sources[0].MD5 != ev.Experiment.Sources[0].MD5 {
		t.Errorf("sources %+v", run.Experiment.Sources)
	}
	if run.Host == nil || run.Host.CPUCount != 2 || run.Host.ENV["CUDA_VISIBLE_DEVICES"] != "0" {
		t.Errorf("host %+v", run.Host)
	}
	if run.Meta.Priority == nil || *run.Meta.Priority != 5 || run.Meta.Comment != "a comment" {
		t.Errorf("meta %+v", run.Meta)
	}
	if !run.HasResult || !observertest.Equal(run.Result, map[string]any{"score": 0.93}) {
		t.Errorf("result %v", run.Result)
	}
	if len(run.Resources) != 1 || run.Resources[0].MD5 != rev.MD5 {
		t.Errorf("resources %+v", run.Resources)
	}
	rc, err := r.Artifact(ctx, "1", "model.txt")
	must(t, err)
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "weights: 1 2 3\n" {
		t.Errorf("artifact content %q", b)
	}
	if _, err := r.Artifact(ctx, "1", "nope"); !errors.Is(err, observer.ErrNotFound) {
		t.Errorf("missing artifact: %v", err)
	}
	if _, err := r.Run(ctx, "99"); !errors.Is(err, observer.ErrNotFound) {
		t.Errorf("missing run: %v", err)
	}
}

// TestSourcesStoredOnce checks that a second run reuses the GridFS files of
// unchanged sources (Sacred re-uploads them with pymongo 4).
func TestSourcesStoredOnce(t *testing.T) {
	s := newStore(t)
	for i := 0; i < 2; i++ {
		o := s.open(t, "", nil)
		_, err := o.Started(ctx, observertest.StartEvent())
		must(t, err)
	}
	n, err := s.open(t, "", nil).files.CountDocuments(ctx, bson.D{})
	must(t, err)
	if n != 2 {
		t.Errorf("%d files in GridFS after two runs with two sources, want 2", n)
	}
}

func TestFailedKeepsSacredKeyOrder(t *testing.T) {
	s := newStore(t)
	o := s.open(t, "", nil)
	ev := observertest.StartEvent()
	_, err := o.Started(ctx, ev)
	must(t, err)
	beats := observertest.NewBeats()
	beats.Out.Append([]byte("before the crash\n"))
	hb := beats.Next(ev.Time.Add(time.Second), nil)
	hb.Final = true
	must(t, o.Heartbeat(ctx, hb))
	trace := []string{"exit status 1\n", "Traceback (most recent call last):\n", "ValueError: boom\n"}
	must(t, o.Failed(ctx, &observer.FailedEvent{StopTime: ev.Time.Add(2 * time.Second), Trace: trace}))
	raw := rawRun(t, o)
	got := strings.Join(keys(raw)[13:], ",")
	if got != "heartbeat,result,stop_time,fail_trace" {
		t.Errorf("final keys ...%s, want ...heartbeat,result,stop_time,fail_trace", got)
	}
	if raw.Lookup("result").Type != bson.TypeNull {
		t.Errorf("result %v, want null", raw.Lookup("result"))
	}
	ft := values(raw.Lookup("fail_trace").Array())
	if len(ft) != 3 || str(ft[2]) != "ValueError: boom\n" {
		t.Errorf("fail_trace %v", raw.Lookup("fail_trace"))
	}
	if str(raw.Lookup("captured_out")) != "before the crash\n" {
		t.Errorf("captured_out %q", str(raw.Lookup("captured_out")))
	}
}

func TestGivenAndOverwrittenIDs(t *testing.T) {
	s := newStore(t)
	ev := observertest.StartEvent()
	ev.ID = "5"
	o := s.open(t, "", nil)
	id, err := o.Started(ctx, ev)
	must(t, err)
	if id != "5" || rawRun(t, o).Lookup("_id").Type != bson.TypeInt32 {
		t.Fatalf("given id 5 stored as %v", rawRun(t, o).Lookup("_id"))
	}
	_, err = s.open(t, "", nil).Started(ctx, ev)
	if !errors.Is(err, observer.ErrIDTaken) {
		t.Fatalf("second run with id 5: %v, want ErrIDTaken", err)
	}
	ev.ID = "exp-a"
	o2 := s.open(t, "", nil)
	_, err = o2.Started(ctx, ev)
	must(t, err)
	if rawRun(t, o2).Lookup("_id").Type != bson.TypeString {
		t.Fatal("non-numeric id not stored as a string")
	}
	// A string id does not stop max+1 allocation.
	ev.ID = ""
	id, err = s.open(t, "", nil).Started(ctx, ev)
	must(t, err)
	if id != "6" {
		t.Errorf("id after 5 and exp-a = %q, want 6", id)
	}

	// Overwrite run 5: old fields not set again stay, as in Sacred.
	must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time, Result: 1.0, HasResult: true}))
	ow := s.open(t, "overwrite=5", nil)
	id, err = ow.Started(ctx, ev)
	must(t, err)
	raw := rawRun(t, ow)
	if id != "5" || str(raw.Lookup("status")) != "RUNNING" || raw.Lookup("stop_time").Type != bson.TypeDateTime {
		t.Errorf("overwritten run: id %s status %s stop_time %v", id, str(raw.Lookup("status")), raw.Lookup("stop_time"))
	}
	cfg, _ := ParseConfig(s.spec("overwrite=77"))
	o77, err := New(ctx, cfg, observer.Settings{})
	must(t, err)
	defer o77.Close(ctx)
	if _, err := o77.Started(ctx, ev); err == nil || !strings.Contains(err.Error(), "no run 77") {
		t.Errorf("overwrite of a missing run: %v", err)
	}
}

func TestConcurrentRunsGetDistinctIDs(t *testing.T) {
	s := newStore(t)
	const n = 20
	obs := make([]*Observer, n)
	for i := range obs {
		obs[i] = s.open(t, "", nil)
	}
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range obs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			ids[i], errs[i] = obs[i].Started(ctx, observertest.StartEvent())
		}(i)
	}
	close(start)
	wg.Wait()
	seen := map[string]bool{}
	for i := range ids {
		if errs[i] != nil {
			t.Fatalf("run %d: %v", i, errs[i])
		}
		if seen[ids[i]] {
			t.Fatalf("id %s given twice: %v", ids[i], ids)
		}
		seen[ids[i]] = true
	}
	for i := 1; i <= n; i++ {
		if !seen[fmt.Sprint(i)] {
			t.Errorf("ids %v: %d missing", ids, i)
		}
	}
}

func TestCollectionPrefix(t *testing.T) {
	s := newStore(t)
	o := s.open(t, "collection_prefix=exp", nil)
	ev := observertest.StartEvent()
	_, err := o.Started(ctx, ev)
	must(t, err)
	must(t, o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "m", Points: []observer.MetricPoint{{Value: 1, Time: ev.Time}}}}}))
	dir := t.TempDir()
	must(t, o.Artifact(ctx, &observer.ArtifactEvent{Name: "a.bin", Path: writeFile(t, dir, "a.bin", []byte{1, 2})}))
	names, err := o.db.ListCollectionNames(ctx, bson.D{})
	must(t, err)
	joined := "," + strings.Join(names, ",") + ","
	for _, want := range []string{",exp_runs,", ",exp_metrics,"} {
		if !strings.Contains(joined, want) {
			t.Errorf("collections %v lack %s", names, want)
		}
	}
	if strings.Contains(joined, ",runs,") || strings.Contains(joined, ",metrics,") {
		t.Errorf("collections %v: unprefixed collection written", names)
	}
	n, err := o.files.CountDocuments(ctx, bson.D{{Key: "filename", Value: "artifact://exp_runs/1/a.bin"}})
	must(t, err)
	if n != 1 {
		t.Errorf("artifact not named after the prefixed collection")
	}
}

// commands records the commands an observer sends.
type commands struct {
	mu   sync.Mutex
	sent []bson.Raw
}

func (c *commands) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		c.mu.Lock()
		c.sent = append(c.sent, append(bson.Raw(nil), e.Command...))
		c.mu.Unlock()
	}}
}

// sets lists, for each update of the runs collection sent since the last
// call, the fields it $sets, comma-separated.
func (c *commands) sets(runs string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, cmd := range c.sent {
		if str(cmd.Lookup("update")) != runs {
			continue
		}
		for _, u := range values(cmd.Lookup("updates").Array()) {
			set, ok := u.Document().Lookup("u", "$set").DocumentOK()
			if ok {
				out = append(out, strings.Join(keys(set), ","))
			}
		}
	}
	c.sent = nil
	return out
}

// openMonitored opens an observer whose commands are recorded.
func (s *store) openMonitored(t testing.TB, extra string, warn io.Writer) (*Observer, *commands) {
	t.Helper()
	cfg, err := ParseConfig(s.spec(extra))
	must(t, err)
	c := &commands{}
	cfg.monitor = c.monitor()
	o, err := New(ctx, cfg, observer.Settings{Warn: warn})
	must(t, err)
	t.Cleanup(func() { _ = o.Close(context.Background()) })
	return o, c
}

// TestHeartbeatSetsOnlyChangedFields watches the update commands sent: a
// beat $sets only what changed, the run's own fields apart from the user's
// values.
func TestHeartbeatSetsOnlyChangedFields(t *testing.T) {
	s := newStore(t)
	o, cmds := s.openMonitored(t, "", nil)
	_, err := o.Started(ctx, observertest.StartEvent())
	must(t, err)
	beats := observertest.NewBeats()
	info := map[string]any{"k": 1}
	beats.Out.Append([]byte("x"))
	must(t, o.Heartbeat(ctx, beats.Next(time.Now(), info)))
	if got := strings.Join(cmds.sets("runs"), " "); got != "captured_out,heartbeat info,result" {
		t.Errorf("first beat sets %q, want %q", got, "captured_out,heartbeat info,result")
	}
	// Same info, no new output: only the heartbeat time changes.
	must(t, o.Heartbeat(ctx, beats.Next(time.Now().Add(time.Second), info)))
	if got := strings.Join(cmds.sets("runs"), " "); got != "heartbeat" {
		t.Errorf("second beat sets %q, want only heartbeat", got)
	}
	info["k"] = 2
	beats.Out.Append([]byte("y"))
	must(t, o.Heartbeat(ctx, beats.Next(time.Now().Add(2*time.Second), info)))
	if got := strings.Join(cmds.sets("runs"), " "); got != "captured_out,heartbeat info" {
		t.Errorf("third beat sets %q, want %q", got, "captured_out,heartbeat info")
	}
}

func TestQueued(t *testing.T) {
	s := newStore(t)
	o := s.open(t, "", nil)
	ev := observertest.StartEvent()
	ev.Host = nil
	id, err := o.Queued(ctx, ev)
	must(t, err)
	raw := rawRun(t, o)
	if got := strings.Join(keys(raw), ","); got != "_id,experiment,command,host,config,meta,status" {
		t.Errorf("queued keys %s", got)
	}
	if str(raw.Lookup("status")) != "QUEUED" || raw.Lookup("meta", "queue_time").Type != bson.TypeDateTime {
		t.Errorf("queued run %s: %v", id, raw)
	}
}
