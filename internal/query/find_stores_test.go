package query

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sacred-go/sacred/internal/readback"
	"github.com/sacred-go/sacred/internal/testserver"
	"github.com/sacred-go/sacred/pkg/observer"
)

// findAll runs every query of the table through Query.Find on a store's
// reader, which must be a readback.Finder (so the push-down is what is
// tested), and compares with expect (nil: the fixture's answer).
func findAll(t *testing.T, store, kind, value string, n int, expect func(q *Query) string) {
	t.Helper()
	ctx := context.Background()
	k, _ := observer.Lookup(kind)
	r, err := k.OpenReader(ctx, value, observer.Settings{})
	if err != nil {
		t.Fatalf("%s: open reader: %v", store, err)
	}
	defer r.Close()
	if _, ok := r.(readback.Finder); !ok {
		t.Fatalf("%s: the reader is no readback.Finder", store)
	}
	for _, q := range compileAll(t) {
		got, err := q.Find(ctx, r, storeNow)
		if err != nil {
			t.Errorf("%s %+v: %v", store, q.opts, err)
			continue
		}
		var w string
		if expect != nil {
			w = expect(q)
		} else {
			w = want(t, q, n)
		}
		if ids(got) != w {
			t.Errorf("%s %+v: Find gives\n %s\nwant %s", store, q.opts, ids(got), w)
		}
	}
}

func TestFindFileStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "runs")
	write(t, "file_storage", dir, len(fixture()))
	findAll(t, "file", "file_storage", dir, len(fixture()), nil)
}

// TestFindTinyDB: TinyDB's reader evaluates in process; its ids are
// Sacred's random hex, so the reference is the fixture under those ids.
func TestFindTinyDB(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tiny")
	n := len(fixture())
	given := write(t, "tiny_db", dir, n)
	runs := fixtureRuns()[:n]
	for i, r := range runs {
		cp := *r
		cp.ID = given[i]
		runs[i] = &cp
	}
	findAll(t, "tinydb", "tiny_db", dir, n, func(q *Query) string {
		got, err := q.Select(runs, storeNow)
		if err != nil {
			t.Fatal(err)
		}
		return ids(got)
	})
}

func TestFindMongo(t *testing.T) {
	m := testserver.FerretDB(t)
	value := m.Addr() + ":sacred_find"
	n := len(fixture()) - 1 // see TestSameRunsMongo
	write(t, "mongo_db", value, n)
	findAll(t, "mongo", "mongo_db", value, n, nil)
}

func TestFindSQL(t *testing.T) {
	for _, d := range []Dialect{SQLite, PostgreSQL, MySQL} {
		t.Run(string(d), func(t *testing.T) {
			sacredURL, db := sqlDatabase(t, d)
			write(t, "sql", sacredURL, len(fixture()))
			findAll(t, string(d), "sql", sacredURL, len(fixture()), nil)
			// Sacred's tables only: the answer is the in-process one over
			// what the reader reads.
			for _, tb := range []string{"run_extra", "run_output", "metric"} {
				if _, err := db.Exec("DROP TABLE " + tb); err != nil {
					t.Fatal(err)
				}
			}
			all := readAll(t, "sql", sacredURL)
			findAll(t, string(d)+" (Sacred's tables only)", "sql", sacredURL, len(fixture()), func(q *Query) string {
				got, err := q.Select(all, storeNow)
				if err != nil {
					return err.Error()
				}
				return ids(got)
			})
		})
	}
}
