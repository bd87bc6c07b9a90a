package e2e

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// postgresDB creates an empty PostgreSQL database named prefix+random for
// one test, dropped at its end, on the server of SACRED_TEST_POSTGRES_URL
// (default postgresql://postgres@127.0.0.1:5432/test), and returns its URL
// in the form of that variable. An absent server fails the test in CI;
// elsewhere it is the error returned, for the caller to skip or go on
// without PostgreSQL.
func postgresDB(t *testing.T, prefix string) (string, error) {
	t.Helper()
	admin := os.Getenv("SACRED_TEST_POSTGRES_URL")
	if admin == "" {
		admin = "postgresql://postgres@127.0.0.1:5432/test"
	}
	// Sacred's SQLAlchemy form is for sacred; the driver takes the plain one.
	adb, err := sql.Open("pgx", strings.Replace(admin, "postgresql+psycopg2://", "postgresql://", 1))
	if err == nil {
		err = adb.Ping()
	}
	if err != nil {
		if adb != nil {
			adb.Close()
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL unreachable in CI: %v", err)
		}
		return "", fmt.Errorf("PostgreSQL unreachable: %w", err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	rand.Read(b[:])
	name := prefix + hex.EncodeToString(b[:])
	if _, err := adb.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := adb.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		adb.Close()
	})
	u.Path = "/" + name
	return u.String(), nil
}
