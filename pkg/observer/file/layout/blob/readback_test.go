package blob

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sacred-go/sacred/internal/readback"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// readCounter is a Bucket that counts the objects read, by name within
// the run directory (run.json, cout.txt, ...).
type readCounter struct {
	Bucket
	mu    sync.Mutex
	reads map[string]int
}

func (c *readCounter) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	c.mu.Lock()
	c.reads[key[strings.LastIndexByte(key, '/')+1:]]++
	c.mu.Unlock()
	return c.Bucket.Get(ctx, key)
}

func (c *readCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.reads
	c.reads = map[string]int{}
	return m
}

// TestFindReadsRunJSONOnly: a selection that reads only what every run
// carries opens each run's run.json and nothing else; one that reads the
// config or the metrics opens those too, never cout.txt; what Find gives
// is what Run reads.
func TestFindReadsRunJSONOnly(t *testing.T) {
	root := t.TempDir()
	for range 3 {
		drive(t, newObserver(t, &dirBucket{root: root, minAppend: -1}, "runs/", io.Discard), observertest.StartEvent(), t.TempDir())
	}
	// A directory without run.json is no run.
	if err := os.MkdirAll(filepath.Join(root, "runs", "4", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := &readCounter{Bucket: &dirBucket{root: root, minAppend: -1}, reads: map[string]int{}}
	r := NewReader(c, "runs/", "test")
	ctx := context.Background()

	runs, err := r.Find(ctx, &readback.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.take(); !reflect.DeepEqual(got, map[string]int{"run.json": 4}) {
		t.Errorf("Find without columns read %v, want run.json of each of the 4 directories", got)
	}
	var ids []string
	for _, run := range runs {
		ids = append(ids, run.ID)
		if run.Config != nil || run.Metrics != nil || run.Output != nil || run.Status != observer.StatusCompleted {
			t.Errorf("run %s: %+v", run.ID, run)
		}
	}
	if !slices.Equal(ids, []string{"1", "2", "3"}) {
		t.Fatalf("Find: runs %v, want 1 2 3", ids)
	}

	runs, err = r.Find(ctx, &readback.Request{Reads: map[string]bool{"config": true, "metrics": true}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.take(); !reflect.DeepEqual(got, map[string]int{"run.json": 4, "config.json": 3, "metrics.json": 3}) {
		t.Errorf("Find of config and metrics read %v", got)
	}
	whole, err := r.Run(ctx, "2")
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 || !reflect.DeepEqual(runs[1].Config, whole.Config) || !reflect.DeepEqual(runs[1].Metrics, whole.Metrics) || len(whole.Metrics) == 0 {
		t.Errorf("Find gives %+v\nRun gives %+v", runs[1], whole)
	}

	// A run.json that is no JSON is an error naming it, not a run left out.
	if err := os.WriteFile(filepath.Join(root, "runs", "2", "run.json"), []byte(`{"status": "COMPL`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Find(ctx, &readback.Request{}); err == nil || !strings.Contains(err.Error(), "run 2") || !strings.Contains(err.Error(), "run.json") {
		t.Errorf("Find over a corrupt run.json: %v", err)
	}
}

// TestOpenFiles: sources and resources come back from where run.json
// says, or, for Python Sacred's S3 runs, from where it put them (nested
// under the run); a source whose content was not recorded says so; a key
// in run.json that climbs out of its directory is not followed.
func TestOpenFiles(t *testing.T) {
	root := t.TempDir()
	put := func(key, content string) {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const md5a, md5b, md5c, md5d = "0cc175b9c0f1b6a831c399e269772661", "92eb5ffee6ae2fec3ad71c777531578f", "4a8a08f09d37b73795649038408b5f33", "8277e0910d750195b448797616e091ad"
	// As Python Sacred's S3Observer("lab", "exp") writes a run.
	put("exp/1/run.json", `{"status": "COMPLETED",
	  "experiment": {"name": "e", "sources": [["train.py", "_sources/train_`+md5a+`.py"], ["evil.py", "../secret_`+md5a+`.py"]]},
	  "resources": [["/data/set.txt", "exp/_resources/set_`+md5b+`.txt"]]}`)
	put("exp/1/exp/_sources/train_"+md5a+".py", "print('train')\n")
	put("exp/1/exp/_resources/set_"+md5b+".txt", "the data\n")
	put("secret_"+md5a+".py", "secret\n")
	// Ours: where run.json says.
	put("exp/2/run.json", `{"status": "COMPLETED",
	  "experiment": {"name": "e", "sources": [["train.py", "_sources/train_`+md5c+`.py"], ["big.bin", "`+md5d+`"]], "omitted_sources": [{"name": "big.bin", "md5": "`+md5d+`", "size": 99}]},
	  "resources": [["/data/set.txt", "exp/_resources/set_`+md5c+`.txt"]]}`)
	put("exp/_sources/train_"+md5c+".py", "print('ours')\n")
	put("exp/_resources/set_"+md5c+".txt", "our data\n")

	r := NewReader(&dirBucket{root: root, minAppend: -1}, "exp/", "test")
	ctx := context.Background()
	read := func(rc io.ReadCloser, err error) string {
		t.Helper()
		if err != nil {
			return "error: " + err.Error()
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct{ id, kind, name, want string }{
		{"1", "source", "train.py", "print('train')\n"},
		{"1", "resource", "/data/set.txt", "the data\n"},
		{"2", "source", "train.py", "print('ours')\n"},
		{"2", "resource", "/data/set.txt", "our data\n"},
	} {
		var got string
		if tc.kind == "source" {
			got = read(r.OpenSource(ctx, tc.id, tc.name))
		} else {
			got = read(r.OpenResource(ctx, tc.id, tc.name))
		}
		if got != tc.want {
			t.Errorf("run %s: %s %s = %q, want %q", tc.id, tc.kind, tc.name, got, tc.want)
		}
	}
	if _, err := r.OpenSource(ctx, "2", "big.bin"); !errors.Is(err, readback.ErrNotStored) {
		t.Errorf("a source recorded without content: %v, want ErrNotStored", err)
	}
	if _, err := r.OpenSource(ctx, "1", "evil.py"); !errors.Is(err, observer.ErrNotFound) {
		t.Errorf("a source key out of the prefix: %v, want ErrNotFound", err)
	}
	for _, err := range []error{
		func() error { _, err := r.OpenSource(ctx, "2", "nope.py"); return err }(),
		func() error { _, err := r.OpenResource(ctx, "2", "/nope"); return err }(),
		func() error { _, err := r.OpenSource(ctx, "9", "train.py"); return err }(),
	} {
		if !errors.Is(err, observer.ErrNotFound) {
			t.Errorf("%v, want ErrNotFound", err)
		}
	}
}
