package tinydb

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	for _, bad := range []string{"", "  ", "a\x00b", file} {
		if _, err := ParseConfig(bad); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseConfig(%q) = %v, want one line of error", bad, err)
		}
	}
	c, err := ParseConfig(filepath.Join(dir, "new"))
	if err != nil || c.Abs != filepath.Join(dir, "new") {
		t.Errorf("ParseConfig of a new dir: %+v %v", c, err)
	}
	k, ok := observer.Lookup(Option)
	if !ok || k.Short != "t" || k.Arg != "DIR" || k.Title != "TinyDB" || k.Open == nil {
		t.Errorf("registered kind %+v", k)
	}
	if o, err := k.OpenObserver(context.Background(), dir, observer.Settings{}); err != nil || o.Priority() != 0 || o.Name() != "TinyDB "+dir {
		t.Errorf("OpenObserver: %v", err)
	}
}

// startRun starts one run into dir.
func startRun(t *testing.T, dir string) (*Observer, *observer.StartEvent) {
	t.Helper()
	o := newObserver(t, dir)
	ev := observertest.StartEvent()
	if _, err := o.Started(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	return o, ev
}

func readRun(t *testing.T, dir, id string) *observer.Run {
	t.Helper()
	run, err := openReader(t, dir).Run(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func docField(t *testing.T, dir, key string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, MetadataFile))
	if err != nil {
		t.Fatal(err)
	}
	docs, keys := docsOf(t, data)
	return field(t, docs[keys[len(keys)-1]], key)
}

// TestOutputCut: a long output leaves the head and tail in captured_out
// around a marker, and the whole output, byte for byte, in the file the
// document names, written beat by beat.
func TestOutputCut(t *testing.T) {
	dir := t.TempDir()
	o, ev := startRun(t, dir)
	o.outputHead, o.outputTail = 100, 200
	ctx := context.Background()
	b := observertest.NewBeats()
	for i := range 20 {
		b.Out.Append(bytes.Repeat([]byte{'a' + byte(i)}, 49))
		b.Out.Append([]byte("é")) // two bytes: cuts fall inside characters
		if err := o.Heartbeat(ctx, b.Next(ev.Time.Add(time.Duration(i)*time.Second), nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	o.Close(ctx)
	want := b.Out.Bytes()
	rel := OutputDir + "/" + o.id + ".txt"
	if got := docField(t, dir, "captured_out_file"); string(got) != `"`+rel+`"` {
		t.Errorf("captured_out_file = %s", got)
	}
	file, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil || !bytes.Equal(file, want) {
		t.Errorf("full output file: %v, %d bytes, want %d", err, len(file), len(want))
	}
	var co string
	if err := json.Unmarshal(docField(t, dir, "captured_out"), &co); err != nil {
		t.Fatal(err)
	}
	head, rest, ok := strings.Cut(co, "\n[sacred: ")
	if !ok || !strings.HasPrefix(string(want), head) || len(head) > 100 || len(head) < 97 {
		t.Fatalf("captured_out head %q", head)
	}
	marker, tail, _ := strings.Cut(rest, "]\n")
	if !strings.HasSuffix(string(want), tail) || len(tail) > 200 || len(tail) < 197 || !strings.Contains(marker, rel) {
		t.Errorf("captured_out marker %q tail %q", marker, tail)
	}
	if !strings.Contains(marker, "of output omitted here (1020 in all)") {
		t.Errorf("marker %q", marker)
	}
	if run := readRun(t, dir, o.id); !bytes.Equal(run.Output, want) {
		t.Errorf("reader output %d bytes, want %d", len(run.Output), len(want))
	}
}

// TestOutputNotUTF8Kept: a short output that is not valid UTF-8 is kept
// byte for byte beside captured_out (which has U+FFFD); a character split
// between two beats is not mistaken for invalid bytes.
func TestOutputNotUTF8Kept(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	o, ev := startRun(t, dir)
	b := observertest.NewBeats()
	b.Out.Append([]byte("ok \xf0\x9f"))
	if err := o.Heartbeat(ctx, b.Next(ev.Time, nil)); err != nil {
		t.Fatal(err)
	}
	b.Out.Append([]byte("\x98\x80 done\n"))
	if err := o.Heartbeat(ctx, b.Next(ev.Time, nil)); err != nil {
		t.Fatal(err)
	}
	if f := docField(t, dir, "captured_out_file"); f != nil {
		t.Errorf("valid output split in a character got a file: %s", f)
	}
	b.Out.Append([]byte("bad \xff\n"))
	final := b.Next(ev.Time, nil)
	final.Final = true
	if err := o.Heartbeat(ctx, final); err != nil {
		t.Fatal(err)
	}
	o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time})
	o.Close(ctx)
	run := readRun(t, dir, o.id)
	if !bytes.Equal(run.Output, b.Out.Bytes()) {
		t.Errorf("output %q, want %q", run.Output, b.Out.Bytes())
	}
	var co string
	json.Unmarshal(docField(t, dir, "captured_out"), &co)
	if co != "ok 😀 done\nbad \uFFFD\n" {
		t.Errorf("captured_out %q", co)
	}
}

// TestBeatWithoutOutput: beats before any output store info and the
// heartbeat (no "read output: EOF").
func TestBeatWithoutOutput(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	o, ev := startRun(t, dir)
	b := observertest.NewBeats()
	if err := o.Heartbeat(ctx, b.Next(ev.Time.Add(time.Second), map[string]any{"k": 1})); err != nil {
		t.Fatal(err)
	}
	run := readRun(t, dir, o.id)
	if run.Info["k"] != int64(1) || run.Heartbeat.IsZero() || len(run.Output) != 0 {
		t.Errorf("run after a silent beat: info %v heartbeat %v output %q", run.Info, run.Heartbeat, run.Output)
	}
}

// corruptions are metadata.json contents no store may be written over.
var corruptions = map[string]string{
	"truncated":        `{"runs": {"1": {"experiment": {"name": "train", "base_d`,
	"truncated number": `{"runs": {"1": {"result": 0.`,
	"garbage":          "this is not json",
	"list":             `[{"runs": {}}]`,
	"runs not object":  `{"runs": [1, 2]}`,
	"trailing data":    `{"runs": {}} {}`,
	"bad escape":       `{"runs": {"1": {"x": "\q"}}}`,
	"control char":     "{\"runs\": {\"1\": {\"x\": \"a\nb\"}}}",
	"only spaces":      "   \n",
	"missing comma":    `{"runs": {"1": {} "2": {}}}`,
	"leading zero":     `{"runs": {"1": {"x": 01}}}`,
	"nul bytes":        "\x00\x00\x00\x00",
}

// TestCorruptMetadataRefused: a corrupt or truncated metadata.json stops
// the run with one line that names the file and the place, and the file
// keeps its bytes; the reader says the same.
func TestCorruptMetadataRefused(t *testing.T) {
	ctx := context.Background()
	for name, content := range corruptions {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, MetadataFile)
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			o := newObserver(t, dir)
			_, err := o.Started(ctx, observertest.StartEvent())
			checkCorrupt(t, err, path, content)
			_, err = openReader(t, dir).Runs(ctx)
			checkCorrupt(t, err, path, content)
		})
	}
}

func checkCorrupt(t *testing.T, err error, path, content string) {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a CorruptError", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, path) || !strings.Contains(msg, "at byte") || !strings.Contains(msg, "left unchanged") {
		t.Errorf("error is not one clear line: %q", msg)
	}
	if b, _ := os.ReadFile(path); string(b) != content {
		t.Errorf("the file changed: %q", b)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

// TestCorruptedDuringRun: a file damaged while a run records is not
// overwritten by the next beat, and the run's events fail honestly.
func TestCorruptedDuringRun(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	o, ev := startRun(t, dir)
	path := filepath.Join(dir, MetadataFile)
	data, _ := os.ReadFile(path)
	cut := string(data[:len(data)/2])
	os.WriteFile(path, []byte(cut), 0o644)
	b := observertest.NewBeats()
	b.Out.Append([]byte("x\n"))
	err := o.Heartbeat(ctx, b.Next(ev.Time, nil))
	checkCorrupt(t, err, path, cut)
	if !strings.Contains(err.Error(), "truncated") {
		t.Errorf("error does not say truncated: %v", err)
	}
	err = o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time})
	checkCorrupt(t, err, path, cut)
}

// TestMissingHashFile: an artifact whose hashfs file was deleted gives one
// clear error naming the missing file.
func TestMissingHashFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tiny")
	id := recordRun(t, dir)
	p := hashPath(dir, "b20fc9dce97109986dc569773110cf28") // "weights: 1 2 3\n"
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	_, err := openReader(t, dir).Artifact(context.Background(), id, "model.txt")
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "hashfs/b2/0f/c9/dce97109986dc569773110cf28 is missing") {
		t.Errorf("got %v", err)
	}
	if errors.Is(err, observer.ErrNotFound) {
		t.Errorf("a missing file is not an unknown artifact: %v", err)
	}
	if run := readRun(t, dir, id); run.Status != observer.StatusCompleted {
		t.Errorf("the run still reads: %+v", run)
	}
}

// TestMissingOutputFile: the full output file named by a run is missing.
func TestMissingOutputFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	o, ev := startRun(t, dir)
	b := observertest.NewBeats()
	b.Out.Append([]byte("\xff\n"))
	o.Heartbeat(ctx, b.Next(ev.Time, nil))
	o.Close(ctx)
	os.Remove(filepath.Join(dir, OutputDir, o.id+".txt"))
	_, err := openReader(t, dir).Run(ctx, o.id)
	if err == nil || !strings.Contains(err.Error(), "full output") || !strings.Contains(err.Error(), "is missing") {
		t.Errorf("got %v", err)
	}
}

// TestReadOnlyMetadataRefused: a metadata.json without write permission
// is not replaced.
func TestReadOnlyMetadataRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, MetadataFile)
	os.WriteFile(path, []byte(`{"runs": {}}`), 0o444)
	_, err := newObserver(t, dir).Started(context.Background(), observertest.StartEvent())
	if err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("got %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != `{"runs": {}}` {
		t.Errorf("file changed: %s", b)
	}
}

// TestOtherTablesKept: tables other than runs, and the user's own
// spacing, stay as they are.
func TestOtherTablesKept(t *testing.T) {
	for _, tc := range []struct{ name, before, prefix, suffix string }{
		{"empty file", "", `{"runs": {"1": {`, `}}}`},
		{"empty db", "{}", `{"runs": {"1": {`, `}}}`},
		{"default table", `{"_default": {"1": {"a": 1}}}`, `{"_default": {"1": {"a": 1}}, "runs": {"1": {`, `}}}`},
		{"empty runs", "{\n  \"runs\": {}\n}\n", "{\n  \"runs\": {\"1\": {", "}}\n}\n"},
		{"spaced", "{ \"runs\" : { \"7\" : { \"_id\" : \"x\" } } , \"t\": {} }", "{ \"runs\" : { \"7\" : { \"_id\" : \"x\" } , \"8\": {", "}} , \"t\": {} }"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, MetadataFile)
			os.WriteFile(path, []byte(tc.before), 0o640)
			o, ev := startRun(t, dir)
			if err := o.Completed(context.Background(), &observer.CompletedEvent{StopTime: ev.Time}); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			if !strings.HasPrefix(string(b), tc.prefix) || !strings.HasSuffix(string(b), tc.suffix) {
				t.Errorf("file\n%s\nwant prefix %q suffix %q", b, tc.prefix, tc.suffix)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
				t.Errorf("mode %v, want the user's 0640 kept", fi.Mode().Perm())
			}
			if run := readRun(t, dir, o.id); run.Status != observer.StatusCompleted {
				t.Errorf("status %s", run.Status)
			}
		})
	}
}

// TestStoredModesNeverWider: hashfs copies get HashFS's 0664 at most, and
// never a permission the original lacked: a 0600 key stays 0600, also
// when the runner's private copy is what is read (artifacts) or a
// symlink names it.
func TestStoredModesNeverWider(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "tiny")
	o, _ := startRun(t, dir)
	src := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(src, name)
		os.WriteFile(p, []byte(content), mode)
		os.Chmod(p, mode)
		return p
	}
	key := write("key.pem", "secret key\n", 0o600)
	link := filepath.Join(src, "link.pem")
	os.Symlink(write("key2.pem", "secret key 2\n", 0o600), link)
	public := write("data.csv", "a,b\n", 0o644)
	exe := write("run.sh", "#!/bin/sh\n", 0o755)
	private := write("copy", "artifact secret\n", 0o600) // the runner's copy
	origPublic := write("model.txt", "artifact secret\n", 0o644)
	origSecret := write("secret.bin", "other secret\n", 0o600)
	privateSecret := write("copy2", "other secret\n", 0o600)

	for _, p := range []string{key, link, public, exe} {
		if err := o.Resource(ctx, &observer.ResourceEvent{Path: p}); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Artifact(ctx, &observer.ArtifactEvent{Name: "model.txt", Path: private, OrigPath: origPublic}); err != nil {
		t.Fatal(err)
	}
	if err := o.Artifact(ctx, &observer.ArtifactEvent{Name: "secret.bin", Path: privateSecret, OrigPath: origSecret}); err != nil {
		t.Fatal(err)
	}
	umask := currentUmask(t, dir)
	for content, want := range map[string]os.FileMode{
		"secret key\n": 0o600, "secret key 2\n": 0o600, "a,b\n": 0o644, "#!/bin/sh\n": 0o644,
		"artifact secret\n": 0o644, "other secret\n": 0o600,
	} {
		fi, err := os.Stat(hashPath(dir, md5hex(content)))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want&^umask {
			t.Errorf("%q stored with mode %v, want %v", content, got, want&^umask)
		}
	}
}

// currentUmask finds the process umask without changing it: the mode a new
// 0777 directory gets.
func currentUmask(t *testing.T, dir string) os.FileMode {
	t.Helper()
	p := filepath.Join(dir, "umask-probe")
	if err := os.Mkdir(p, 0o777); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(p)
	fi, _ := os.Stat(p)
	return 0o777 &^ fi.Mode().Perm()
}

func TestReaderMissingAndEmpty(t *testing.T) {
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "nope")
	if _, err := Open(ctx, Config{Dir: missing, Abs: missing}, observer.Settings{}); !errors.Is(err, observer.ErrNotFound) {
		t.Errorf("Open of a missing dir: %v", err)
	}
	empty := t.TempDir()
	r := openReader(t, empty)
	if ids, err := r.Runs(ctx); err != nil || len(ids) != 0 {
		t.Errorf("Runs of an empty store: %v %v", ids, err)
	}
	if _, err := r.Run(ctx, "x"); !errors.Is(err, observer.ErrNotFound) {
		t.Errorf("Run of an empty store: %v", err)
	}
	if _, err := os.Stat(filepath.Join(empty, MetadataFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the reader wrote to the store")
	}
}

// TestRemovedDocumentNotRewritten: when another program removed our run's
// document, a beat fails instead of writing it back or over another run.
func TestRemovedDocumentNotRewritten(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	o, ev := startRun(t, dir)
	path := filepath.Join(dir, MetadataFile)
	os.WriteFile(path, []byte(`{"runs": {"1": {"_id": "someone else"}}}`), 0o644)
	err := o.Heartbeat(ctx, observertest.NewBeats().Next(ev.Time, nil))
	if err == nil || !strings.Contains(err.Error(), "is no longer run") {
		t.Errorf("got %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != `{"runs": {"1": {"_id": "someone else"}}}` {
		t.Errorf("file changed: %s", b)
	}
}

// TestMetricsWrittenAtClose: points logged with no heartbeat after them
// are written by Close.
func TestMetricsWrittenAtClose(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	o, ev := startRun(t, dir)
	pts := []observer.MetricPoint{{Step: 3, Value: 1e-05, Time: ev.Time}}
	o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "lr", Points: pts}}})
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	run := readRun(t, dir, o.id)
	if len(run.Metrics) != 1 || run.Metrics[0].Points[0].Step != 3 || run.Metrics[0].Points[0].Value != 1e-05 {
		t.Errorf("metrics %+v", run.Metrics)
	}
}

func TestArtifactContent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tiny")
	id := recordRun(t, dir)
	rc, err := openReader(t, dir).Artifact(context.Background(), id, "model.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if b, _ := io.ReadAll(rc); string(b) != "weights: 1 2 3\n" {
		t.Errorf("artifact %q", b)
	}
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestStaleTempRemoved: a temporary file left by a writer killed before
// its rename is removed by the next writer, under the lock.
func TestStaleTempRemoved(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, tempPrefix+"0123456789abcdef"+tempSuffix)
	os.WriteFile(filepath.Join(dir, MetadataFile), []byte(`{"runs": {}}`), 0o644)
	os.WriteFile(stale, []byte(`{"runs": {"1": {}`), 0o644)
	startRun(t, dir)
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file still there: %v", err)
	}
}

// TestRepeatAfterFailedWrite: an artifact whose document write failed is
// written when the call comes again (as the retry decorator repeats it),
// not skipped as already known.
func TestRepeatAfterFailedWrite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	o, _ := startRun(t, dir)
	path := filepath.Join(dir, MetadataFile)
	good, _ := os.ReadFile(path)
	os.WriteFile(path, good[:len(good)-1], 0o644) // truncated: writes fail
	art := filepath.Join(t.TempDir(), "a")
	os.WriteFile(art, []byte("x"), 0o644)
	ev := &observer.ArtifactEvent{Name: "a.txt", Path: art}
	if err := o.Artifact(ctx, ev); err == nil {
		t.Fatal("the write into a truncated file did not fail")
	}
	os.WriteFile(path, good, 0o644) // repaired
	if err := o.Artifact(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if run := readRun(t, dir, o.id); len(run.Artifacts) != 1 || run.Artifacts[0] != "a.txt" {
		t.Errorf("artifacts after the repeat: %v", run.Artifacts)
	}
}
