package sqlstore

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
)

// sacredTables are the tables of Python Sacred's schema.
var sacredTables = []string{"source", "repository", "dependency", "resource", "host", "experiment",
	"experiments_sources", "experiments_repositories", "experiments_dependencies", "run", "artifact", "runs_resources"}

// goldenDDL returns the statements Sacred's SQLAlchemy models emit for a
// dialect, from testdata/create_tables_by_dialect.sql (a copy of
// shared/golden/sql).
func goldenDDL(t *testing.T, d dialect) []string {
	t.Helper()
	b, err := os.ReadFile("testdata/create_tables_by_dialect.sql")
	must(t, err)
	s := string(b)
	marker := "-- ===== dialect: " + d.String() + " ====="
	i := strings.Index(s, marker)
	if i < 0 {
		t.Fatalf("no section %s", marker)
	}
	s = s[i+len(marker):]
	if j := strings.Index(s, "-- ====="); j >= 0 {
		s = s[:j]
	}
	if j := strings.Index(s, "-- NOTE"); j >= 0 {
		s = s[:j]
	}
	var stmts []string
	if d == dialectPostgres {
		stmts = append(stmts, "CREATE TYPE status_enum AS ENUM ("+statusValues+")")
	}
	for _, st := range strings.Split(s, ";") {
		if st = strings.TrimSpace(st); st != "" {
			stmts = append(stmts, st)
		}
	}
	return stmts
}

// column is what we compare of a column.
type column struct {
	Name, Type string
	NotNull    bool
}

// tableShape is a table's columns and keys in a dialect-neutral form.
type tableShape struct {
	Columns []column
	PK      []string
	Unique  []string
	FKs     []string // "col->table.col"
}

func sqliteShape(t *testing.T, db *sql.DB, table string) tableShape {
	t.Helper()
	var s tableShape
	rows, err := db.Query("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?) ORDER BY cid", table)
	must(t, err)
	for rows.Next() {
		var c column
		var pk int
		must(t, rows.Scan(&c.Name, &c.Type, &c.NotNull, &pk))
		s.Columns = append(s.Columns, c)
		if pk > 0 {
			s.PK = append(s.PK, c.Name)
		}
	}
	rows.Close()
	rows, err = db.Query(`SELECT ii.name FROM pragma_index_list(?) il JOIN pragma_index_info(il.name) ii WHERE il."unique" = 1 AND il.origin = 'u'`, table)
	must(t, err)
	for rows.Next() {
		var n string
		must(t, rows.Scan(&n))
		s.Unique = append(s.Unique, n)
	}
	rows.Close()
	rows, err = db.Query(`SELECT "from", "table", "to" FROM pragma_foreign_key_list(?)`, table)
	must(t, err)
	for rows.Next() {
		var f, tb, to string
		must(t, rows.Scan(&f, &tb, &to))
		s.FKs = append(s.FKs, f+"->"+tb+"."+to)
	}
	rows.Close()
	sort.Strings(s.FKs)
	return s
}

// serverShape reads a table's shape from information_schema.
func serverShape(t *testing.T, db *sql.DB, d dialect, schema, table string) tableShape {
	t.Helper()
	var s tableShape
	typ := "data_type || COALESCE('(' || character_maximum_length || ')', '')"
	if d == dialectMySQL {
		typ = "column_type"
	}
	rows, err := db.Query(d.rebind(`SELECT column_name, `+typ+`, is_nullable FROM information_schema.columns
		WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position`), schema, table)
	must(t, err)
	for rows.Next() {
		var c column
		var null string
		must(t, rows.Scan(&c.Name, &c.Type, &null))
		c.NotNull = null == "NO"
		s.Columns = append(s.Columns, c)
	}
	rows.Close()
	rows, err = db.Query(d.rebind(`SELECT tc.constraint_type, kcu.column_name FROM information_schema.table_constraints tc
		JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema AND kcu.table_name = tc.table_name
		WHERE tc.table_schema = ? AND tc.table_name = ? ORDER BY kcu.ordinal_position`), schema, table)
	must(t, err)
	for rows.Next() {
		var ct, col string
		must(t, rows.Scan(&ct, &col))
		switch ct {
		case "PRIMARY KEY":
			s.PK = append(s.PK, col)
		case "UNIQUE":
			s.Unique = append(s.Unique, col)
		}
	}
	rows.Close()
	fkq := `SELECT kcu.column_name, ccu.table_name, ccu.column_name FROM information_schema.table_constraints tc
		JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema
		JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = tc.constraint_name AND ccu.table_schema = tc.table_schema
		WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = ? AND tc.table_name = ?`
	if d == dialectMySQL {
		fkq = `SELECT column_name, referenced_table_name, referenced_column_name FROM information_schema.key_column_usage
			WHERE referenced_table_name IS NOT NULL AND table_schema = ? AND table_name = ?`
	}
	rows, err = db.Query(d.rebind(fkq), schema, table)
	must(t, err)
	for rows.Next() {
		var f, tb, to string
		must(t, rows.Scan(&f, &tb, &to))
		s.FKs = append(s.FKs, f+"->"+tb+"."+to)
	}
	rows.Close()
	sort.Strings(s.FKs)
	return s
}

// mysqlWider are the column types we deliberately widen in MySQL (see
// docs/observers/sql.md): SQLAlchemy's give 64 KiB texts, single-precision
// floats and whole-second times.
var mysqlWider = map[string]string{"text": "longtext", "blob": "longblob", "datetime": "datetime(6)", "float": "double"}

// TestSchemaMatchesGolden creates Sacred's tables from the golden DDL in
// one database and ours in another, and compares them by introspection.
func TestSchemaMatchesGolden(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			goldURL, oursURL := b.url(t), b.url(t)
			gold, err := ParseConfig(goldURL)
			must(t, err)
			gdb, err := open(ctx, gold)
			must(t, err)
			defer gdb.Close()
			for _, st := range goldenDDL(t, gold.dialect) {
				if _, err := gdb.Exec(st); err != nil {
					t.Fatalf("golden DDL: %v\n%s", err, st)
				}
			}
			o := newObs(t, oursURL)
			// Idempotent: a second observer changes nothing.
			newObs(t, oursURL)
			for _, table := range sacredTables {
				var want, got tableShape
				switch o.d {
				case dialectSQLite:
					want, got = sqliteShape(t, gdb, table), sqliteShape(t, o.db, table)
				case dialectPostgres:
					want, got = serverShape(t, gdb, o.d, "public", table), serverShape(t, o.db, o.d, "public", table)
				case dialectMySQL:
					want, got = serverShape(t, gdb, o.d, gold.Database, table), serverShape(t, o.db, o.d, o.cfg.Database, table)
					for i, c := range want.Columns {
						if w, ok := mysqlWider[c.Type]; ok && i < len(got.Columns) && got.Columns[i].Type == w {
							want.Columns[i].Type = w
						}
					}
				}
				if len(want.Columns) < 2 || len(want.FKs)+len(want.PK) == 0 {
					t.Fatalf("table %s: introspection found nothing: %+v", table, want)
				}
				if !reflect.DeepEqual(want, got) {
					t.Errorf("table %s differs\n got %+v\nwant %+v", table, got, want)
				}
			}
		})
	}
}

// TestWriteIntoSacredDatabase loads the SQLite database Python Sacred
// wrote (testdata/dump.sql), adds a run of ours and reads both back.
func TestWriteIntoSacredDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sacred.db")
	url := "sqlite:///" + path
	cfg, err := ParseConfig(url)
	must(t, err)
	db, err := open(ctx, cfg)
	must(t, err)
	dump, err := os.ReadFile("testdata/dump.sql")
	must(t, err)
	if _, err := db.Exec(string(dump)); err != nil {
		t.Fatalf("load dump: %v", err)
	}
	db.Close()

	o := newObs(t, url)
	ev := startEvent(t)
	id, err := o.Started(ctx, ev)
	must(t, err)
	// Rows 1..3 hold run_ids "0", "2", "3": ours is row 4.
	if id != "4" {
		t.Errorf("id %q, want \"4\"", id)
	}
	must(t, o.Resource(ctx, &observer.ResourceEvent{Path: "/home/user/pysacred/exp/data/input.txt", MD5: scalar[string](t, o, "SELECT md5sum FROM resource")}))
	must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: t0, Result: 1.5, HasResult: true}))
	if n := scalar[int](t, o, "SELECT COUNT(*) FROM resource"); n != 1 {
		t.Errorf("resource rows %d: Sacred's row was not reused", n)
	}

	// Our rows use the storage classes and text forms SQLAlchemy wrote.
	for _, col := range []string{"start_time", "stop_time", "priority", "comment", "config", "status", "result", "host_id", "experiment_id"} {
		q := "SELECT typeof(" + col + ") FROM run WHERE run_id = ?"
		if py, ours := scalar[string](t, o, q, "0"), scalar[string](t, o, q, id); py != ours {
			t.Errorf("run.%s: Sacred stored %s, we stored %s", col, py, ours)
		}
	}
	if py, ours := len(scalar[string](t, o, "SELECT start_time FROM run WHERE run_id = ?", "0")), len(scalar[string](t, o, "SELECT start_time FROM run WHERE run_id = ?", id)); py != ours {
		t.Errorf("start_time text: Sacred's has %d characters, ours %d", py, ours)
	}
	if ty := scalar[string](t, o, "SELECT typeof(dirty) FROM repository ORDER BY repository_id DESC LIMIT 1"); ty != "integer" {
		t.Errorf("repository.dirty stored as %s", ty)
	}

	r := newReader(t, url)
	ids, err := r.Runs(ctx)
	must(t, err)
	if fmt.Sprint(ids) != "[0 2 3 4]" {
		t.Errorf("Runs %v", ids)
	}
	py, err := r.Run(ctx, "0")
	must(t, err)
	if py.Status != observer.StatusCompleted || !py.HasResult || py.Result != 0.93 || py.Experiment.Name != "train" ||
		len(py.Experiment.Sources) != 2 || py.Host == nil || py.Host.CPU != "AMD EPYC" || py.Config["lr"] != 0.01 ||
		!strings.Contains(string(py.Output), "Starting training") || len(py.Artifacts) != 1 || len(py.Resources) != 1 {
		t.Errorf("Sacred's run 0 read back as %+v", py)
	}
	failed, err := r.Run(ctx, "2")
	must(t, err)
	if failed.Status != observer.StatusFailed || len(failed.FailTrace) < 2 || !strings.HasSuffix(failed.FailTrace[len(failed.FailTrace)-1], "\n") {
		t.Errorf("Sacred's failed run: %s %q", failed.Status, failed.FailTrace)
	}
	ours, err := r.Run(ctx, "4")
	must(t, err)
	if ours.Status != observer.StatusCompleted || ours.Result != 1.5 || len(ours.Resources) != 1 {
		t.Errorf("our run: %+v", ours)
	}
}

// TestWriteIntoGoldenSchema writes a run with 200 KB of output into
// tables made by the golden DDL of each dialect: in MySQL, Sacred's TEXT
// column holds 64 KiB, so captured_out is cut to fit while run_output
// keeps everything.
func TestWriteIntoGoldenSchema(t *testing.T) {
	forEach(t, func(t *testing.T, url string) {
		cfg, err := ParseConfig(url)
		must(t, err)
		db, err := open(ctx, cfg)
		must(t, err)
		for _, st := range goldenDDL(t, cfg.dialect) {
			if _, err := db.Exec(st); err != nil {
				t.Fatalf("golden DDL: %v", err)
			}
		}
		db.Close()
		o := newObs(t, url)
		id, err := o.Started(ctx, startEvent(t))
		must(t, err)
		out := &memOutput{}
		for out.Size() < 200<<10 {
			out.Append([]byte("a line of output\n"))
		}
		must(t, o.Heartbeat(ctx, &observer.HeartbeatEvent{Info: map[string]any{"k": "v"}, BeatTime: t0, Output: out, To: out.Size()}))
		must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: t0, Result: "not a number", HasResult: true}))
		run, err := newReader(t, url).Run(ctx, id)
		must(t, err)
		if run.Status != observer.StatusCompleted || run.Result != "not a number" || len(run.Output) != len(out.b) {
			t.Errorf("run: %s %v, %d bytes of output", run.Status, run.Result, len(run.Output))
		}
		co := scalar[string](t, o, "SELECT captured_out FROM run WHERE run_id = ?", id)
		if cfg.dialect == dialectMySQL {
			if len(co) > 65535 || !strings.Contains(co, "omitted") {
				t.Errorf("captured_out: %d bytes", len(co))
			}
		} else if co != string(out.b) {
			t.Errorf("captured_out: %d bytes, want %d", len(co), len(out.b))
		}
	})
}
