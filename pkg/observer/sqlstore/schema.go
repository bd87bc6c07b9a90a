package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// statusValues are Sacred's status_enum, QUEUED included (added after 0.8.7).
const statusValues = "'RUNNING','COMPLETED','INTERRUPTED','TIMEOUT','FAILED','QUEUED'"

// types holds the column types of one dialect, as SQLAlchemy emits them for
// Sacred's models, except where noted in docs/observers/sql.md.
type types struct {
	pk       string // autoincrement integer primary key column
	text     string
	blob     string
	datetime string
	float    string
	boolean  string
	status   string
	commit   string // the quoted column name "commit"
	suffix   string // after the closing parenthesis of CREATE TABLE
}

func (d dialect) types() types {
	switch d {
	case dialectPostgres:
		return types{pk: "SERIAL NOT NULL", text: "TEXT", blob: "BYTEA",
			datetime: "TIMESTAMP WITHOUT TIME ZONE", float: "FLOAT", boolean: "BOOLEAN",
			status: "status_enum", commit: `"commit"`}
	case dialectMySQL:
		// MySQL's TEXT and BLOB hold 64 KiB and its FLOAT is single
		// precision, DATETIME whole seconds: too small for real runs.
		return types{pk: "INTEGER NOT NULL AUTO_INCREMENT", text: "LONGTEXT", blob: "LONGBLOB",
			datetime: "DATETIME(6)", float: "DOUBLE", boolean: "BOOL",
			status: "ENUM(" + statusValues + ")", commit: "`commit`",
			suffix: " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"}
	default:
		return types{pk: "INTEGER NOT NULL", text: "TEXT", blob: "BLOB",
			datetime: "DATETIME", float: "FLOAT", boolean: "BOOLEAN",
			status: "VARCHAR(11)", commit: `"commit"`}
	}
}

// schema returns the DDL of Sacred's tables and of our extension tables, in
// dependency order, every statement idempotent.
func (d dialect) schema() []string {
	t := d.types()
	tables := []struct{ name, body string }{
		{"dependency", `dependency_id {pk}, name VARCHAR(32), version VARCHAR(16), PRIMARY KEY (dependency_id)`},
		{"experiment", `experiment_id {pk}, name VARCHAR(32), md5sum VARCHAR(32), base_dir VARCHAR(64), PRIMARY KEY (experiment_id)`},
		{"host", `host_id {pk}, cpu VARCHAR(64), hostname VARCHAR(64), os VARCHAR(16), os_info VARCHAR(64), python_version VARCHAR(16), PRIMARY KEY (host_id)`},
		{"repository", `repository_id {pk}, url VARCHAR(2048), {commit} VARCHAR(40), dirty {bool}, PRIMARY KEY (repository_id)`},
		{"resource", `resource_id {pk}, filename VARCHAR(256), md5sum VARCHAR(32), content {blob}, PRIMARY KEY (resource_id)`},
		{"source", `source_id {pk}, filename VARCHAR(256), md5sum VARCHAR(32), content {text}, PRIMARY KEY (source_id)`},
		{"experiments_dependencies", `experiment_id INTEGER, dependency_id INTEGER, FOREIGN KEY(experiment_id) REFERENCES experiment (experiment_id), FOREIGN KEY(dependency_id) REFERENCES dependency (dependency_id)`},
		{"experiments_repositories", `experiment_id INTEGER, repository_id INTEGER, FOREIGN KEY(experiment_id) REFERENCES experiment (experiment_id), FOREIGN KEY(repository_id) REFERENCES repository (repository_id)`},
		{"experiments_sources", `experiment_id INTEGER, source_id INTEGER, FOREIGN KEY(experiment_id) REFERENCES experiment (experiment_id), FOREIGN KEY(source_id) REFERENCES source (source_id)`},
		{"run", `id {pk}, run_id VARCHAR(24), command VARCHAR(64), start_time {datetime}, heartbeat {datetime}, stop_time {datetime}, queue_time {datetime}, priority {float}, comment {text}, fail_trace {text}, captured_out {text}, config {text}, info {text}, status {status}, host_id INTEGER, experiment_id INTEGER, result {float}, PRIMARY KEY (id), UNIQUE (run_id), FOREIGN KEY(host_id) REFERENCES host (host_id), FOREIGN KEY(experiment_id) REFERENCES experiment (experiment_id)`},
		{"artifact", `artifact_id {pk}, filename VARCHAR(64), content {blob}, run_id VARCHAR(24), PRIMARY KEY (artifact_id), FOREIGN KEY(run_id) REFERENCES run (run_id)`},
		{"runs_resources", `run_id VARCHAR(24), resource_id INTEGER, FOREIGN KEY(run_id) REFERENCES run (run_id), FOREIGN KEY(resource_id) REFERENCES resource (resource_id)`},
		// Our extensions, documented in docs/observers/sql.md.
		{"run_extra", `run_id VARCHAR(24) NOT NULL, command {text}, experiment {text}, host {text}, meta {text}, result {text}, fail_trace {text}, PRIMARY KEY (run_id){runfk}`},
		{"run_output", `run_id VARCHAR(24) NOT NULL, pos BIGINT NOT NULL, content {blob}, PRIMARY KEY (run_id, pos){runfk}`},
		{"metric", `metric_id {pk}, run_id VARCHAR(24) NOT NULL, name VARCHAR(256) NOT NULL, seq BIGINT NOT NULL, step BIGINT, value {float}, timestamp {datetime}, PRIMARY KEY (metric_id), UNIQUE (run_id, name, seq){runfk}`},
		{"file_chunk", `kind VARCHAR(8) NOT NULL, file_id INTEGER NOT NULL, pos BIGINT NOT NULL, content {blob}, PRIMARY KEY (kind, file_id, pos)`},
	}
	r := strings.NewReplacer("{pk}", t.pk, "{text}", t.text, "{blob}", t.blob,
		"{datetime}", t.datetime, "{float}", t.float, "{bool}", t.boolean,
		"{status}", t.status, "{commit}", t.commit)
	var stmts []string
	if d == dialectPostgres {
		// CREATE TYPE has no IF NOT EXISTS.
		stmts = append(stmts, `DO $$ BEGIN CREATE TYPE status_enum AS ENUM (`+statusValues+`); EXCEPTION WHEN duplicate_object THEN NULL; END $$`)
	}
	for _, tb := range tables {
		body := r.Replace(tb.body)
		if d == dialectMySQL {
			// A foreign key needs the same character set on both sides,
			// and a run table made by SQLAlchemy may have another one.
			body = strings.ReplaceAll(body, "{runfk}", "")
		} else {
			body = strings.ReplaceAll(body, "{runfk}", ", FOREIGN KEY(run_id) REFERENCES run (run_id)")
		}
		stmts = append(stmts, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (%s)%s", tb.name, body, t.suffix))
	}
	return stmts
}

// ensureSchema creates what is missing, never dropping or altering
// anything, and serialises concurrent creators of the same database.
func ensureSchema(ctx context.Context, db *sql.DB, d dialect) error {
	stmts := d.schema()
	switch d {
	case dialectMySQL:
		// DDL commits implicitly in MySQL, so a named lock on one
		// connection serialises the creators instead of a transaction.
		conn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("create tables: %w", err)
		}
		defer conn.Close()
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK('sacred_schema', 30)").Scan(&got); err != nil {
			return fmt.Errorf("create tables: lock: %w", err)
		}
		if got.Int64 != 1 {
			return fmt.Errorf("create tables: another process holds the lock sacred_schema for more than 30 s")
		}
		defer releaseLock(ctx, conn, "sacred_schema")
		for _, s := range stmts {
			if _, err := conn.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("create tables: %s: %w", firstWords(s), err)
			}
		}
		return nil
	default:
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("create tables: %w", err)
		}
		defer tx.Rollback() //nolint:errcheck // no-op after commit
		if d == dialectPostgres {
			// Concurrent CREATE TABLE IF NOT EXISTS can still collide
			// in the catalogue; the lock makes creators take turns.
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(7305042)"); err != nil {
				return fmt.Errorf("create tables: lock: %w", err)
			}
		}
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("create tables: %s: %w", firstWords(s), err)
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("create tables: commit: %w", err)
		}
		return nil
	}
}

// checkLayout makes sure our extension tables have the columns this
// version writes: a database written by a development build before
// metrics and output were keyed by position has them without.
func checkLayout(ctx context.Context, db *sql.DB) error {
	for _, c := range []struct{ table, column string }{{"run_output", "pos"}, {"metric", "seq"}} {
		var n int
		err := db.QueryRowContext(ctx, "SELECT COUNT("+c.column+") FROM "+c.table+" WHERE 1 = 0").Scan(&n)
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("table %s has no column %s: it was made by a development build of sacred; rename it (ALTER TABLE %s RENAME TO %s_old) so that a new one is created", c.table, c.column, c.table, c.table)
		}
		if err != nil {
			return fmt.Errorf("check table %s: %w", c.table, err)
		}
	}
	return nil
}

// firstWords shortens a statement for an error message.
func firstWords(s string) string {
	if i := strings.Index(s, "("); i > 0 {
		return strings.TrimSpace(s[:i])
	}
	if len(s) > 40 {
		return s[:40]
	}
	return s
}
