// Package testserver starts real servers for tests. It is imported only by
// _test.go files, so its heavy dependencies (FerretDB and its SQLite
// backend) never reach the product binary.
package testserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// EnvMongoURI names the variable that points the tests at a real MongoDB
// instead of the embedded FerretDB.
const EnvMongoURI = "SACRED_TEST_MONGO_URI"

// Mongo is an embedded FerretDB server (SQLite backend) that a test can
// stop and start again on the same port and data directory, to play a
// server lost mid-run.
type Mongo struct {
	t      testing.TB
	dir    string
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
}

// MongoURI returns the URI of a MongoDB-compatible server for this test:
// SACRED_TEST_MONGO_URI when set, otherwise an embedded FerretDB stopped at
// the end of the test.
func MongoURI(t testing.TB) string {
	t.Helper()
	if uri := os.Getenv(EnvMongoURI); uri != "" {
		return uri
	}
	return FerretDB(t).URI()
}

// FerretDB starts an embedded FerretDB on 127.0.0.1 with a port chosen by
// the OS and its SQLite files in t.TempDir(); it is stopped at t.Cleanup.
func FerretDB(t testing.TB) *Mongo {
	t.Helper()
	m := &Mongo{t: t, dir: t.TempDir(), addr: "127.0.0.1:0"}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

// URI is the mongodb:// URI of the server. It stays valid across Stop and
// Start because the port is kept.
func (m *Mongo) URI() string {
	return "mongodb://" + m.addr + "/"
}

// Addr is the host:port the server listens on.
func (m *Mongo) Addr() string { return m.addr }

// Running reports whether the server is started.
func (m *Mongo) Running() bool { return m.cancel != nil }

// Start starts the server, on the port it had before if it ran already.
func (m *Mongo) Start() {
	m.t.Helper()
	if m.cancel != nil {
		return
	}
	// Quiet: FerretDB logs every connection at info level.
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	// Run closes the listener before it returns, so a restart can bind
	// the same port at once.
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: m.addr},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + m.dir + "/",
	})
	if err != nil {
		m.t.Fatalf("testserver: start FerretDB on %s: %v", m.addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
	uri := f.MongoDBURI() // blocks until the listener is ready
	host, err := hostOf(uri)
	if err != nil {
		cancel()
		<-done
		m.t.Fatalf("testserver: %v", err)
	}
	m.addr, m.cancel, m.done = host, cancel, done
}

// Stop stops the server and closes every connection to it. The data
// directory is kept for a later Start.
func (m *Mongo) Stop() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	<-m.done
	m.cancel, m.done = nil, nil
}

func hostOf(uri string) (string, error) {
	const p = "mongodb://"
	if len(uri) < len(p) || uri[:len(p)] != p {
		return "", fmt.Errorf("unexpected FerretDB URI %q", uri)
	}
	rest := uri[len(p):]
	for i, c := range rest {
		if c == '/' || c == '?' {
			return rest[:i], nil
		}
	}
	return rest, nil
}
