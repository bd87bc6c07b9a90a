package sqlstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// backend is one database the tests run against.
type backend struct {
	name string
	// url returns the URL of a fresh, empty database for one test.
	url func(t *testing.T) string
}

func backends() []backend {
	return []backend{
		{"sqlite", sqliteURL},
		{"postgres", serverURL("SACRED_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")},
		{"mysql", serverURL("SACRED_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")},
	}
}

func sqliteURL(t *testing.T) string {
	return "sqlite:///" + filepath.Join(t.TempDir(), "runs.db")
}

func randomName() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "sacred_t_" + hex.EncodeToString(b[:])
}

// serverURL gives each test its own database on the server named by the
// environment variable, dropped at the end. Without the server the test
// is skipped, except in CI, where that is a failure.
func serverURL(env, def string) func(t *testing.T) string {
	return func(t *testing.T) string {
		t.Helper()
		admin := os.Getenv(env)
		if admin == "" {
			admin = def
		}
		cfg, err := ParseConfig(admin)
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		ctx := context.Background()
		db, err := open(ctx, cfg)
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s server unreachable in CI: %v", cfg.Dialect(), err)
			}
			t.Skipf("%s server unreachable (set %s): %v", cfg.Dialect(), env, err)
		}
		name := randomName()
		if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
			db.Close()
			t.Fatalf("create database %s: %v", name, err)
		}
		t.Cleanup(func() {
			drop := "DROP DATABASE IF EXISTS " + name
			if cfg.dialect == dialectPostgres {
				drop += " WITH (FORCE)"
			}
			if _, err := db.ExecContext(context.Background(), drop); err != nil {
				t.Errorf("drop database %s: %v", name, err)
			}
			db.Close()
		})
		i := strings.LastIndex(admin, "/")
		rest := admin[i+1:]
		q := ""
		if j := strings.Index(rest, "?"); j >= 0 {
			q = rest[j:]
		}
		return admin[:i+1] + name + q
	}
}

// forEach runs f as a subtest on every backend.
func forEach(t *testing.T, f func(t *testing.T, url string)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			f(t, b.url(t))
		})
	}
}

// memOutput is an in-memory observer.Output.
type memOutput struct {
	mu sync.Mutex
	b  []byte
}

func (m *memOutput) Append(p []byte) {
	m.mu.Lock()
	m.b = append(m.b, p...)
	m.mu.Unlock()
}

func (m *memOutput) Size() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.b))
}

func (m *memOutput) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// As the runner's spool: io.EOF at the end, whatever the length.
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

var t0 = time.Date(2026, 11, 27, 3, 8, 35, 925911000, time.UTC)

// startEvent is a complete start event whose source file exists.
func startEvent(t *testing.T) *observer.StartEvent {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "train.py")
	if err := os.WriteFile(src, []byte("print('hi')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	prio := 5.0
	return &observer.StartEvent{
		Command: "python3 train.py --lr 0.1",
		Experiment: observer.Experiment{
			Name: "train", BaseDir: dir, MainFile: "train.py",
			Sources:      []observer.Source{{Name: "train.py", Path: src, MD5: "d3b0a7bd51b5b9ea8f1e5cd3e1d0c8a1"}},
			Dependencies: []string{"numpy==1.24.2", "torch==2.1.0"},
			Repositories: []observer.Repository{{URL: "https://example.org/r.git", Commit: "5808470103c7e3d86b1ccf53e2a8ae9d63556b53", Dirty: true}},
		},
		Host: &observer.Host{Hostname: "box", OS: [2]string{"Linux", "Linux-6.1.0-x86_64"}, CPU: "Xeon",
			CPUCount: 2, MemoryTotal: 1 << 30, ENV: map[string]string{"A": "b"}},
		Time:   t0,
		Config: map[string]any{"lr": 0.1, "layers": []any{64.0, 32.0}, "opt": map[string]any{"type": "adam"}, "seed": 42.0},
		Meta: observer.Meta{Command: "python3", Argv: []string{"python3", "train.py"}, Cwd: dir,
			Comment: "a comment", Priority: &prio, Options: map[string]any{"--sql": "sqlite:///x.db"}},
	}
}

func newObs(t *testing.T, url string) *Observer {
	t.Helper()
	o, err := newURL(context.Background(), url)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { o.Close(context.Background()) })
	return o
}

func newReader(t *testing.T, url string) *Reader {
	t.Helper()
	r, err := openURL(context.Background(), url)
	if err != nil {
		t.Fatalf("OpenReader: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// scalar reads one value with a query written with "?" placeholders.
func scalar[T any](t *testing.T, o *Observer, q string, args ...any) T {
	t.Helper()
	var v T
	if err := o.db.QueryRow(o.q(q), args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	must(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

// newURL parses url and opens an observer, as the registry does.
func newURL(ctx context.Context, url string) (*Observer, error) {
	cfg, err := ParseConfig(url)
	if err != nil {
		return nil, err
	}
	return New(ctx, cfg, observer.Settings{})
}

// openURL parses url and opens a reader, as the registry does.
func openURL(ctx context.Context, url string) (*Reader, error) {
	cfg, err := ParseConfig(url)
	if err != nil {
		return nil, err
	}
	return Open(ctx, cfg, observer.Settings{})
}
