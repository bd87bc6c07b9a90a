package mongo

import (
	"sync"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

func TestConformance(t *testing.T) {
	s := newStore(t)
	var (
		mu   sync.Mutex
		made []*Observer
	)
	store := observertest.Store{
		New: func(t *testing.T) observer.Observer {
			o := s.open(t, "", nil)
			mu.Lock()
			made = append(made, o)
			mu.Unlock()
			return o
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
		store.Break = func(t *testing.T) {
			s.srv.Stop()
			// The suite gives the final event two minutes; a server that
			// is gone for good need not be waited for that long here.
			mu.Lock()
			for _, o := range made {
				o.finalLimit = 3 * time.Second
			}
			mu.Unlock()
		}
	}
	observertest.Run(t, store)
}
