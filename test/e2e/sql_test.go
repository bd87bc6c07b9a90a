package e2e

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/sqlstore"
)

// sqlURLs gives each SQL database a fresh URL for one test: an SQLite
// file, and new PostgreSQL and MySQL databases dropped at the end (left
// out when the server is absent, except in CI).
func sqlURLs(t *testing.T) map[string]string {
	t.Helper()
	urls := map[string]string{"sqlite": "sqlite:///" + filepath.Join(t.TempDir(), "runs.db")}
	pg, err := postgresDB(t, "sacred_e2e_")
	if err != nil {
		t.Logf("testing SQLite only: %v", err)
		return urls
	}
	urls["postgres"] = pg
	if u := mysqlURL(t); u != "" {
		urls["mysql"] = u
	}
	return urls
}

// mysqlURL creates a fresh MariaDB/MySQL database, or returns "" when the
// server is absent (outside CI).
func mysqlURL(t *testing.T) string {
	t.Helper()
	admin := os.Getenv("SACRED_TEST_MYSQL_URL")
	if admin == "" {
		admin = "mysql://root@127.0.0.1:3306/test"
	}
	c, err := sqlstore.ParseConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	mc := mysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.DBName = c.User, c.Password, "tcp", c.Database
	port := c.Port
	if port == 0 {
		port = 3306
	}
	mc.Addr = net.JoinHostPort(c.Host, strconv.Itoa(port))
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	if err := db.Ping(); err != nil {
		db.Close()
		if os.Getenv("CI") == "true" {
			t.Fatalf("MySQL unreachable in CI: %v", err)
		}
		t.Logf("MySQL unreachable, skipping it: %v", err)
		return ""
	}
	var b [6]byte
	rand.Read(b[:])
	name := "sacred_e2e_" + hex.EncodeToString(b[:])
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		db.Close()
	})
	i := strings.LastIndex(admin, "/")
	return admin[:i+1] + name
}

func readSQLRun(t *testing.T, url, id string) *observer.Run {
	t.Helper()
	cfg, err := sqlstore.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	r, err := sqlstore.Open(context.Background(), cfg, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	run, err := r.Run(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func TestSQLRuns(t *testing.T) {
	for name, url := range sqlURLs(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			// Completed, with metrics through the child API.
			r := sacred(t, dir, nil, "run", "-s", url, "--", "sh", "-c", "echo hello; echo oops >&2")
			if r.code != 0 {
				t.Fatalf("completed: exit %d: %s", r.code, r.stderr)
			}
			run := readSQLRun(t, url, "1")
			if run.Status != observer.StatusCompleted || run.StartTime.IsZero() || run.StopTime.IsZero() ||
				!strings.Contains(string(run.Output), "hello\n") || run.Host == nil || run.Command == "" {
				t.Errorf("completed run: %s, output %q", run.Status, run.Output)
			}

			// Failed.
			r = sacred(t, dir, nil, "run", "-s", url, "--", "sh", "-c", "echo first; echo last words >&2; exit 3")
			if r.code != 3 {
				t.Fatalf("failed: exit %d: %s", r.code, r.stderr)
			}
			run = readSQLRun(t, url, "2")
			if run.Status != observer.StatusFailed || !strings.Contains(strings.Join(run.FailTrace, ""), "last words") ||
				!strings.Contains(string(run.Output), "first\n") || !strings.Contains(string(run.Output), "last words\n") {
				t.Errorf("failed run: %s %q output %q", run.Status, run.FailTrace, run.Output)
			}

			// Queued: the command does not run.
			marker := filepath.Join(t.TempDir(), "ran")
			r = sacred(t, dir, nil, "run", "-s", url, "-q", "--", "touch", marker)
			if r.code != 0 {
				t.Fatalf("queued: exit %d: %s", r.code, r.stderr)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Error("a queued run ran its command")
			}
			run = readSQLRun(t, url, "3")
			if run.Status != observer.StatusQueued || run.QueueTime.IsZero() || !run.StartTime.IsZero() {
				t.Errorf("queued run: %s queue %v start %v", run.Status, run.QueueTime, run.StartTime)
			}

			// Interrupted by SIGINT.
			cmd, rd, errb := startWrapped(t, t.TempDir(), "-s", url)
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			io.ReadAll(rd)
			err := cmd.Wait()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
				t.Fatalf("interrupted: %v; stderr %s", err, errb.String())
			}
			run = readSQLRun(t, url, "4")
			if run.Status != observer.StatusInterrupted || !strings.Contains(string(run.Output), "child got INT") {
				t.Errorf("interrupted run: %s output %q", run.Status, run.Output)
			}
		})
	}
}

func TestSQLBadURLs(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	for _, url := range []string{
		"postgresql://u:Sup3rSecret@127.0.0.1:1/db",
		"oracle://u:Sup3rSecret@h/db",
		"sqlite://",
	} {
		r := sacred(t, t.TempDir(), nil, "run", "-s", url, "--", "touch", marker)
		if r.code != 1 {
			t.Errorf("%s: exit %d, want 1", sqlstore.Redact(url), r.code)
		}
		if strings.Contains(r.stderr, "Sup3rSecret") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 1 {
			t.Errorf("%s: stderr %q", sqlstore.Redact(url), r.stderr)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("%s: the command ran", sqlstore.Redact(url))
		}
	}
}
