package mongo

import (
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

func TestConformance(t *testing.T) {
	s := newStore(t)
	store := observertest.Store{
		New: func(t *testing.T) observer.Observer {
			return s.open(t, "", nil)
		},
		Reader: func(t *testing.T) observer.Reader {
			if s.srv != nil && !s.srv.Running() {
				// After Break: what was kept is on the server's disk.
				s.srv.Start()
			}
			return s.reader(t)
		},
	}
	if s.srv != nil {
		store.Break = func(t *testing.T) { s.srv.Stop() }
	}
	observertest.Run(t, store)
}
