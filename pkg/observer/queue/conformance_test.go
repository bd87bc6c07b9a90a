package queue_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
	"github.com/sacred-go/sacred/pkg/observer/queue"

	_ "github.com/sacred-go/sacred/pkg/observer/file"
	_ "github.com/sacred-go/sacred/pkg/observer/sqlstore"
)

// storeThroughQueue is the store tier for a registered kind wrapped in the
// queue: every observer is a fresh journal in front of a fresh observer of
// the kind, and the reader reads the store itself.
func storeThroughQueue(t *testing.T, option, value string) observertest.Store {
	k, ok := observer.Lookup(option)
	if !ok {
		t.Fatalf("%s is not registered", option)
	}
	journals := t.TempDir()
	return observertest.Store{
		New: func(t *testing.T) observer.Observer {
			q, err := queue.New(func(ctx context.Context) (observer.Observer, error) {
				return k.OpenObserver(ctx, value, observer.Settings{})
			}, queue.Options{Dir: journals, Option: option, Title: k.Title, Value: k.RedactValue(value), StartWait: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			return q
		},
		Reader: func(t *testing.T) observer.Reader {
			r, err := k.OpenReader(context.Background(), value, observer.Settings{})
			if err != nil {
				t.Fatal(err)
			}
			return r
		},
	}
}

// TestConformanceFileStorage: the queue in front of file storage passes
// the store tier (what is read back equals what was sent).
func TestConformanceFileStorage(t *testing.T) {
	observertest.Run(t, storeThroughQueue(t, "file_storage", filepath.Join(t.TempDir(), "runs")))
}

// TestConformanceSQLite: the same in front of the SQL store on SQLite.
func TestConformanceSQLite(t *testing.T) {
	observertest.Run(t, storeThroughQueue(t, "sql", "sqlite:///"+filepath.Join(t.TempDir(), "runs.db")))
}
