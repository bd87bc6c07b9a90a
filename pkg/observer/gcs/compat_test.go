package gcs

// The observer speaks the Cloud Storage JSON API itself (see api.go). These
// tests check it against Google's own client, cloud.google.com/go/storage,
// both ways: the client reads back what the observer wrote, and the reader
// reads a store the client wrote. The client is imported here only, in a
// test: `go list -deps ./cmd/sacred` must not list it.

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/sacred-go/sacred/internal/readback"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// TestBinaryLeavesOutGoogleClient: the product binary links neither
// cloud.google.com/go/storage nor gRPC (the reason api.go exists); only
// these tests use the client.
func TestBinaryLeavesOutGoogleClient(t *testing.T) {
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the binary's packages")
	}
	out, err := exec.Command(gotool, "list", "-deps", "github.com/sacred-go/sacred/cmd/sacred").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "cloud.google.com/go/storage") || strings.HasPrefix(pkg, "google.golang.org/grpc") {
			t.Errorf("the sacred binary links %s", pkg)
		}
	}
}

// officialClient is Google's client, pointed at the test server by
// STORAGE_EMULATOR_HOST (set by server).
func officialClient(t *testing.T) *storage.BucketHandle {
	t.Helper()
	c, err := storage.NewClient(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.Bucket("lab-runs")
}

// recordRun sends one whole run to o: sources, config, output over three
// beats (the last ones past minAppend, so cout.txt is composed), metrics,
// info, a resource, a small artifact with a content type and a large one
// (a resumable upload), a result. It returns the output and the large
// artifact's content.
func recordRun(t *testing.T, o observer.Observer) (id string, output, big []byte) {
	t.Helper()
	ctx := context.Background()
	ev := observertest.StartEvent()
	id, err := o.Started(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b := observertest.NewBeats()
	for i := range 3 {
		b.Out.Append(bytes.Repeat([]byte(fmt.Sprintf("beat %d: a line of output ✓\n", i)), (minAppend+1000)/28))
		pts := []observer.MetricPoint{{Step: int64(i), Value: 1 / float64(i+1), Time: ev.Time.Add(time.Duration(i) * time.Second)}}
		if err := o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: pts}}, Info: map[string]any{}}); err != nil {
			t.Fatal(err)
		}
		if err := o.Heartbeat(ctx, b.Next(ev.Time.Add(time.Duration(i+1)*time.Second), map[string]any{"epoch": i})); err != nil {
			t.Fatal(err)
		}
	}
	res := filepath.Join(dir, "data.csv")
	small := filepath.Join(dir, "plot.svg")
	bigPath := filepath.Join(dir, "model.bin")
	big = bytes.Repeat([]byte("0123456789abcdef"), (singleShot+4321)/16)
	for p, data := range map[string][]byte{res: []byte("a,b\n1,2\n"), small: []byte("<svg/>"), bigPath: big} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Resource(ctx, &observer.ResourceEvent{Path: res}); err != nil {
		t.Fatal(err)
	}
	if err := o.Artifact(ctx, &observer.ArtifactEvent{Name: "plots/plot.svg", Path: small, ContentType: "image/svg+xml"}); err != nil {
		t.Fatal(err)
	}
	if err := o.Artifact(ctx, &observer.ArtifactEvent{Name: "model.bin", Path: bigPath}); err != nil {
		t.Fatal(err)
	}
	if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time.Add(5 * time.Second), Result: 0.93, HasResult: true}); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return id, b.Out.Bytes(), big
}

// TestOfficialClientReadsOurRun: every object the observer wrote is read
// by cloud.google.com/go/storage with the content type it should have and
// with a size and checksums that match its content; cout.txt (composed on
// the server) is the whole output, the large artifact (a resumable upload)
// its file; and a listing by delimiter shows the file-storage layout.
func TestOfficialClientReadsOurRun(t *testing.T) {
	server(t)
	id, output, big := recordRun(t, open(t, "gs://lab-runs/ours"))
	if id != "1" {
		t.Fatalf("id %s", id)
	}
	bkt := officialClient(t)
	ctx := context.Background()

	contents := map[string][]byte{}
	it := bkt.Objects(ctx, &storage.Query{Prefix: "ours/"})
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rd, err := bkt.Object(attrs.Name).NewReader(ctx)
		if err != nil {
			t.Fatalf("%s: %v", attrs.Name, err)
		}
		data, err := io.ReadAll(rd)
		rd.Close()
		if err != nil {
			t.Fatalf("%s: %v", attrs.Name, err)
		}
		contents[attrs.Name] = data
		if attrs.Size != int64(len(data)) {
			t.Errorf("%s: size %d in its metadata, %d bytes read", attrs.Name, attrs.Size, len(data))
		}
		if sum := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)); attrs.CRC32C != sum {
			t.Errorf("%s: crc32c %x in its metadata, %x of its content", attrs.Name, attrs.CRC32C, sum)
		}
		if sum := md5.Sum(data); attrs.MD5 != nil && !bytes.Equal(attrs.MD5, sum[:]) {
			t.Errorf("%s: md5 %x in its metadata, %x of its content", attrs.Name, attrs.MD5, sum)
		}
		want := "application/octet-stream"
		switch {
		case strings.HasSuffix(attrs.Name, ".json"):
			want = "application/json"
		case strings.HasSuffix(attrs.Name, "cout.txt"):
			want = "text/plain; charset=utf-8"
		case strings.HasSuffix(attrs.Name, ".svg"):
			want = "image/svg+xml"
		}
		if attrs.ContentType != want {
			t.Errorf("%s: content type %q, want %q", attrs.Name, attrs.ContentType, want)
		}
	}

	var names []string
	for k := range contents {
		if !strings.HasPrefix(k, "ours/_") {
			names = append(names, strings.TrimPrefix(k, "ours/1/"))
		}
	}
	slices.Sort(names)
	if want := []string{"config.json", "cout.txt", "info.json", "metrics.json", "model.bin", "plots/plot.svg", "run.json"}; !slices.Equal(names, want) {
		t.Errorf("run objects %v, want %v (no temporary object left)", names, want)
	}
	if !bytes.Equal(contents["ours/1/cout.txt"], output) {
		t.Errorf("cout.txt: %d bytes, want the %d of the output", len(contents["ours/1/cout.txt"]), len(output))
	}
	if !bytes.Equal(contents["ours/1/model.bin"], big) {
		t.Errorf("model.bin: %d bytes, want the %d of its file", len(contents["ours/1/model.bin"]), len(big))
	}
	var run map[string]any
	if err := json.Unmarshal(contents["ours/1/run.json"], &run); err != nil {
		t.Fatal(err)
	}
	if run["status"] != "COMPLETED" || run["result"] != 0.93 || !reflect.DeepEqual(run["artifacts"], []any{"plots/plot.svg", "model.bin"}) {
		t.Errorf("run.json: status %v, result %v, artifacts %v", run["status"], run["result"], run["artifacts"])
	}
	// Every source and resource is at the key run.json gives it.
	for _, s := range run["experiment"].(map[string]any)["sources"].([]any) {
		if key := "ours/" + s.([]any)[1].(string); contents[key] == nil {
			t.Errorf("source %v: no object %s", s, key)
		}
	}
	for _, r := range run["resources"].([]any) {
		if key := r.([]any)[1].(string); string(contents[key]) != "a,b\n1,2\n" {
			t.Errorf("resource %v: object %s holds %q", r, key, contents[key])
		}
	}

	// The listing by delimiter that readers (ours, gcloud, Sacred's) use.
	var dirs []string
	it = bkt.Objects(ctx, &storage.Query{Prefix: "ours/", Delimiter: "/"})
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, attrs.Prefix+attrs.Name)
	}
	slices.Sort(dirs)
	if want := []string{"ours/1/", "ours/_resources/", "ours/_sources/"}; !slices.Equal(dirs, want) {
		t.Errorf("listing by delimiter: %v, want %v", dirs, want)
	}
}

// TestReaderReadsOfficialClientStore: a file-storage directory uploaded
// with cloud.google.com/go/storage (as `gcloud storage rsync` would, large
// files as resumable uploads in chunks) is read by the reader exactly as
// file storage's reader reads the directory.
func TestReaderReadsOfficialClientStore(t *testing.T) {
	server(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "runs")
	cfg, err := file.ParseConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	fo, err := file.New(ctx, cfg, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	id, _, big := recordRun(t, fo)

	bkt := officialClient(t)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		w := bkt.Object("synced/" + filepath.ToSlash(rel)).NewWriter(ctx)
		w.ChunkSize = 256 << 10 // the large artifact goes up in many chunks
		if _, err := w.Write(data); err != nil {
			return err
		}
		return w.Close()
	})
	if err != nil {
		t.Fatal(err)
	}

	fr, err := file.Open(ctx, cfg, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := fr.Run(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	gr, err := Open(ctx, mustParse(t, "gs://lab-runs/synced"), observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer gr.Close()
	got, err := gr.Run(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// Source paths differ by design: file storage's reader makes them
	// absolute, an object store's are keys under the prefix.
	for i := range want.Experiment.Sources {
		rel, _ := filepath.Rel(dir, want.Experiment.Sources[i].Path)
		want.Experiment.Sources[i].Path = filepath.ToSlash(rel)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the GCS reader gives\n%+v\nfile storage's reader gives\n%+v", got, want)
	}

	found, err := gr.Find(ctx, &readback.Request{Reads: map[string]bool{"config": true, "info": true, "metrics": true}})
	if err != nil {
		t.Fatal(err)
	}
	want.Output = nil
	if len(found) != 1 || !reflect.DeepEqual(found[0], want) {
		t.Errorf("Find gives %+v", found)
	}
	read := func(rc io.ReadCloser, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read(gr.Artifact(ctx, id, "model.bin")); got != string(big) {
		t.Errorf("model.bin: %d bytes, want %d", len(got), len(big))
	}
	src := want.Experiment.Sources[0]
	if got, want := read(gr.OpenSource(ctx, id, src.Name)), read(fr.OpenSource(ctx, id, src.Name)); got != want {
		t.Errorf("source %s: %q, want %q", src.Name, got, want)
	}
	res := want.Resources[0].Path
	if got := read(gr.OpenResource(ctx, id, res)); got != "a,b\n1,2\n" {
		t.Errorf("resource %s: %q", res, got)
	}
}
