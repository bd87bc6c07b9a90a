package sqlstore

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// TestConformance runs the observer suite on every database. Break makes
// the store fail for real: PostgreSQL turns the database read-only and
// drops the observer's sessions, so it reconnects into a store that
// refuses writes yet can still be read; SQLite and MySQL lose the
// observer's connection.
func TestConformance(t *testing.T) {
	forEach(t, func(t *testing.T, url string) {
		var mu sync.Mutex
		var last []*Observer
		observertest.Run(t, observertest.Store{
			New: func(t *testing.T) observer.Observer {
				o, err := newURL(context.Background(), url)
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				mu.Lock()
				last = append(last, o)
				mu.Unlock()
				return o
			},
			Reader: func(t *testing.T) observer.Reader {
				r, err := openURL(context.Background(), url)
				if err != nil {
					t.Fatalf("OpenReader: %v", err)
				}
				return r
			},
			Break: func(t *testing.T) {
				mu.Lock()
				o := last[len(last)-1]
				mu.Unlock()
				if o.d != dialectPostgres {
					o.db.Close()
					return
				}
				admin, err := newURL(context.Background(), url)
				must(t, err)
				defer admin.Close(context.Background())
				db := o.cfg.Database
				if strings.ContainsAny(db, `"'`) {
					t.Fatalf("unexpected database name %q", db)
				}
				_, err = admin.db.Exec(`ALTER DATABASE "` + db + `" SET default_transaction_read_only = on`)
				must(t, err)
				_, err = admin.db.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, db)
				must(t, err)
			},
		})
	})
}
