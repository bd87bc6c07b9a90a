package mongo

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// TestHardening32GridFSFilesHaveMD5: every GridFS file of a source,
// resource or artifact has a top-level md5 of its content, as pymongo's
// GridFS writes it, so that Python Sacred's lookup of an existing source,
// fs.find_one({"filename": ..., "md5": ...}), finds ours.
func TestHardening32GridFSFilesHaveMD5(t *testing.T) {
	s := newStore(t)
	o := s.open(t, "", nil)
	ev := observertest.StartEvent()
	_, err := o.Started(ctx, ev)
	must(t, err)
	dir := t.TempDir()
	art := writeFile(t, dir, "model.bin", []byte("weights"))
	must(t, o.Artifact(ctx, &observer.ArtifactEvent{Name: "model.bin", Path: art}))
	resData := []byte("input\n")
	res := writeFile(t, dir, "input.txt", resData)
	must(t, o.Resource(ctx, &observer.ResourceEvent{Path: res, MD5: md5hex(resData)}))

	for _, src := range ev.Experiment.Sources {
		content, err := os.ReadFile(src.Path)
		must(t, err)
		// Python Sacred's query, word for word.
		var f bson.Raw
		err = o.files.FindOne(ctx, bson.D{{Key: "filename", Value: src.Path}, {Key: "md5", Value: md5hex(content)}}).Decode(&f)
		if err != nil {
			t.Errorf("source %s not found by filename and md5: %v", src.Name, err)
		}
	}
	cur, err := o.files.Find(ctx, bson.D{})
	must(t, err)
	files := 0
	for cur.Next(ctx) {
		files++
		name := str(cur.Current.Lookup("filename"))
		sum, ok := cur.Current.Lookup("md5").StringValueOK()
		if !ok {
			t.Errorf("GridFS file %s has no top-level md5", name)
			continue
		}
		id := cur.Current.Lookup("_id").ObjectID()
		rc, err := openChunks(ctx, o.files, o.chunks, id)
		must(t, err)
		h := md5.New()
		_, err = h.Write(readAll(t, rc))
		must(t, err)
		if got := hex.EncodeToString(h.Sum(nil)); got != sum {
			t.Errorf("GridFS file %s: md5 %s, content's %s", name, sum, got)
		}
	}
	if files != 4 {
		t.Errorf("%d GridFS files, want 4 (2 sources, 1 resource, 1 artifact)", files)
	}
}

// TestHardening13OmittedSource: a source larger than the size cap is
// recorded by name, md5 and size without its content, and its file is
// never read. A later run whose source is not omitted stores the content.
func TestHardening13OmittedSource(t *testing.T) {
	s := newStore(t)
	big := strings.Repeat("x = 1\n", 1000)
	sum := md5hex([]byte(big))
	dir := t.TempDir()
	path := filepath.Join(dir, "huge.py")
	ev := observertest.StartEvent()
	// The file does not exist: an omitted source must not be read.
	ev.Experiment.Sources = []observer.Source{{Name: "huge.py", Path: path, MD5: sum, Size: int64(len(big)), Omitted: true}}
	o := s.open(t, "", nil)
	id, err := o.Started(ctx, ev)
	must(t, err)

	run, err := s.reader(t).Run(ctx, id)
	must(t, err)
	if len(run.Experiment.Sources) != 1 {
		t.Fatalf("sources %+v", run.Experiment.Sources)
	}
	src := run.Experiment.Sources[0]
	if src.Name != "huge.py" || src.MD5 != sum || src.Size != int64(len(big)) || !src.Omitted {
		t.Errorf("source read back %+v, want name, md5 %s, size %d, omitted", src, sum, len(big))
	}
	// What Omniboard or Incense show: the placeholder's line.
	var f bson.Raw
	must(t, o.files.FindOne(ctx, bson.D{{Key: "filename", Value: path}}).Decode(&f))
	rc, err := openChunks(ctx, o.files, o.chunks, f.Lookup("_id").ObjectID())
	must(t, err)
	if text := string(readAll(t, rc)); !strings.Contains(text, "not recorded") || !strings.Contains(text, sum) {
		t.Errorf("placeholder content %q", text)
	}
	if str(f.Lookup("md5")) == sum {
		t.Error("the placeholder carries the source's md5 at the top level: Sacred would take it for the content")
	}

	// The cap raised: the same source is stored with its content.
	must(t, os.WriteFile(path, []byte(big), 0o644))
	ev2 := observertest.StartEvent()
	ev2.Experiment.Sources = []observer.Source{{Name: "huge.py", Path: path, MD5: sum, Size: int64(len(big))}}
	id2, err := s.open(t, "", nil).Started(ctx, ev2)
	must(t, err)
	run2, err := s.reader(t).Run(ctx, id2)
	must(t, err)
	if src := run2.Experiment.Sources[0]; src.Omitted || src.Size != int64(len(big)) {
		t.Errorf("source of the second run %+v, want its content", src)
	}
}

func readAll(t *testing.T, rc *chunkReader) []byte {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	must(t, err)
	return b
}

// TestHardening29MongoCallsHonourDeadline: with a server that takes the
// commands and never answers, every call returns an error once its
// context's deadline passes, instead of hanging.
func TestHardening29MongoCallsHonourDeadline(t *testing.T) {
	s := newStore(t)
	proxy, o := openBehindDropper(t, s)
	ev := observertest.StartEvent()
	_, err := o.Started(ctx, ev)
	must(t, err)
	dir := t.TempDir()
	art := writeFile(t, dir, "a.txt", []byte("a"))
	out := observertest.NewOutput()
	out.Append([]byte("hello\n"))
	proxy.holdReplies(true)
	defer proxy.holdReplies(false)
	calls := []struct {
		name string
		call func(context.Context) error
	}{
		{"LogMetrics", func(c context.Context) error {
			return o.LogMetrics(c, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "m", Points: []observer.MetricPoint{{Value: 1, Time: ev.Time}}}}})
		}},
		{"Heartbeat", func(c context.Context) error {
			return o.Heartbeat(c, &observer.HeartbeatEvent{BeatTime: ev.Time, Output: out, To: out.Size()})
		}},
		{"Artifact", func(c context.Context) error { return o.Artifact(c, &observer.ArtifactEvent{Name: "a.txt", Path: art}) }},
		{"Resource", func(c context.Context) error {
			return o.Resource(c, &observer.ResourceEvent{Path: art, MD5: md5hex([]byte("a"))})
		}},
		{"Completed", func(c context.Context) error { return o.Completed(c, &observer.CompletedEvent{StopTime: ev.Time}) }},
		{"Started", func(c context.Context) error {
			_, err := s.openBehind(t, proxy).Started(c, observertest.StartEvent())
			return err
		}},
	}
	for _, c := range calls {
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- c.call(cctx) }()
		select {
		case err := <-done:
			t.Logf("%s returned after %v: %v", c.name, time.Since(start).Round(time.Millisecond), err)
			if err == nil {
				t.Errorf("%s succeeded with a server that does not answer", c.name)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s still running a minute after its 500 ms deadline", c.name)
		}
		cancel()
	}
}

// TestHardening09RefusedConfig: a config value the server refuses (FerretDB
// refuses nested arrays) does not stop the start: it is stored as its JSON
// text, and the rest of the config as it is.
func TestHardening09RefusedConfig(t *testing.T) {
	s := newStore(t)
	var warn strings.Builder
	o := s.open(t, "", &warn)
	if !o.IsFerretDB() {
		t.Skip("the server takes nested arrays")
	}
	ev := observertest.StartEvent()
	ev.Config = map[string]any{"grid": []any{[]any{1, 2}, []any{3, 4}}, "lr": 0.1}
	ev.Meta.ConfigUpdates = map[string]any{"grid": []any{[]any{1, 2}, []any{3, 4}}}
	_, err := o.Started(ctx, ev)
	must(t, err)
	raw := rawRun(t, o)
	if got := str(raw.Lookup("config", "grid")); got != "[[1,2],[3,4]]" {
		t.Errorf("config.grid = %v, want its JSON text", raw.Lookup("config", "grid"))
	}
	if lr, _ := raw.Lookup("config", "lr").DoubleOK(); lr != 0.1 {
		t.Errorf("config.lr = %v", raw.Lookup("config", "lr"))
	}
	if got := str(raw.Lookup("meta", "config_updates", "grid")); got != "[[1,2],[3,4]]" {
		t.Errorf("meta.config_updates.grid = %v, want its JSON text", raw.Lookup("meta", "config_updates", "grid"))
	}
	if got := strings.Join(keys(raw), ","); !strings.HasPrefix(got, "_id,experiment,format,command,host,start_time,config,meta,status") {
		t.Errorf("keys %s: not Sacred's order", got)
	}
	if !strings.Contains(warn.String(), "config.grid") || strings.Contains(warn.String(), "[[") {
		t.Errorf("warnings %q: want config.grid named, the value not repeated", warn.String())
	}
}

// TestHardening09ErrorsDoNotRepeatValues: the text of an error keeps out
// the value a server quotes, and is bounded.
func TestHardening09ErrorsDoNotRepeatValues(t *testing.T) {
	value := `{ "cm": [ [ 1, 2 ], [ 3, 4 ] ] }`
	err := bounded(fmt.Errorf("update: %w", errors.New("write exception: write errors: [invalid value: "+value+" (nested arrays are not supported)]")))
	if strings.Contains(err.Error(), "[ 1") || !strings.Contains(err.Error(), "nested arrays are not supported") {
		t.Errorf("error %q", err)
	}
	long := bounded(errors.New(strings.Repeat("é", 10000)))
	if n := len(long.Error()); n > maxErrorLen+3 {
		t.Errorf("error of %d bytes", n)
	}
	if !utf8.ValidString(long.Error()) {
		t.Error("cut inside a character")
	}
}
