package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sacred-go/sacred/internal/testserver"
)

// mongoDB is a fresh database on the test's MongoDB-compatible server: the
// -m value naming it and a handle to read what the binary wrote.
type mongoDB struct {
	spec string
	db   *mongodrv.Database
}

func newMongoDB(t *testing.T) *mongoDB {
	t.Helper()
	uri := testserver.MongoURI(t)
	base := strings.TrimSuffix(strings.SplitN(uri, "?", 2)[0], "/")
	name := "e2e_" + strings.NewReplacer("/", "_", ".", "_").Replace(t.Name())
	if len(name) > 60 {
		name = name[:60]
	}
	c, err := mongodrv.Connect(options.Client().ApplyURI(base + "/"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Database(name).Drop(context.Background())
		_ = c.Disconnect(context.Background())
	})
	return &mongoDB{spec: base + "/" + name, db: c.Database(name)}
}

// runs returns every runs document, by _id.
func (m *mongoDB) runs(t *testing.T) map[string]bson.Raw {
	t.Helper()
	cur, err := m.db.Collection("runs").Find(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bson.Raw{}
	for cur.Next(context.Background()) {
		out[cur.Current.Lookup("_id").String()] = append(bson.Raw(nil), cur.Current...)
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// one returns the only runs document.
func (m *mongoDB) one(t *testing.T) bson.Raw {
	t.Helper()
	runs := m.runs(t)
	if len(runs) != 1 {
		t.Fatalf("%d runs stored, want 1", len(runs))
	}
	for _, r := range runs {
		return r
	}
	return nil
}

// TestHardening15MongoConcurrentStarts starts 100 runs, 50 at a time, into
// one new database: every run gets its own id, exits 0 and is COMPLETED,
// and no run is left RUNNING. (The issue saw it with 200 runs. The test
// server, FerretDB on SQLite, scans the whole runs collection for every
// operation on an integer _id, so on a busy 2-core machine 200 runs can
// pass the 30 s start bound in the server itself; 100 runs failed a
// quarter of the time before the fix.)
func TestHardening15MongoConcurrentStarts(t *testing.T) {
	if testing.Short() {
		t.Skip("200 runs: not in -short")
	}
	m := newMongoDB(t)
	dir := t.TempDir()
	const total, parallel = 100, 50
	results := make([]result, total)
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for i := range total {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = sacred(t, dir, nil, "run", "-m", m.spec, "--", "sh", "-c", fmt.Sprintf("echo run %d", i))
		}(i)
	}
	wg.Wait()
	failed := 0
	for i, r := range results {
		if r.code != 0 {
			failed++
			if failed <= 5 {
				t.Errorf("run %d: exit %d: %s", i, r.code, r.stderr)
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d runs failed", failed, total)
	}
	runs := m.runs(t)
	if len(runs) != total {
		t.Errorf("%d runs stored, want %d", len(runs), total)
	}
	outputs := map[string]bool{}
	for id, r := range runs {
		if st := r.Lookup("status").StringValue(); st != "COMPLETED" {
			t.Errorf("run %s: status %s, want COMPLETED", id, st)
		}
		outputs[r.Lookup("captured_out").StringValue()] = true
	}
	if len(outputs) != len(runs) {
		t.Errorf("%d distinct outputs among %d runs: runs were mixed up", len(outputs), len(runs))
	}
}

// writeScript writes an executable shell script into dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
