package retry

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// TestConformanceThroughTheDecorator registers a store that fails the
// first two calls of every kind the decorator retries (file storage behind
// a flaky layer), wraps it in the decorator, and runs the store tier of
// the conformance suite through the registry: every run must read back
// complete, byte for byte, as if the store had never failed.
func TestConformanceThroughTheDecorator(t *testing.T) {
	fileKind, ok := observer.Lookup(file.Option)
	if !ok {
		t.Fatal("file storage is not registered")
	}
	for _, c := range []struct {
		option string
		step   time.Duration // how far the clock moves at every look
	}{
		// Still: once a call failed, everything waits for the final
		// flush.
		{"flaky_file_storage_still", 0},
		// Moving: retries also happen during the run.
		{"flaky_file_storage_moving", 700 * time.Millisecond},
	} {
		t.Run(c.option, func(t *testing.T) {
			k := fileKind
			k.Option, k.Short, k.Title, k.Flags = c.option, "", "flaky file storage", nil
			k.New = func(ctx context.Context, cfg any, s observer.Settings) (observer.Observer, error) {
				o, err := fileKind.New(ctx, cfg, s)
				if err != nil {
					return nil, err
				}
				clock := newFakeClock()
				opt := Options{}
				opt.now = func() time.Time { clock.advance(c.step); return clock.now() }
				opt.sleep = clock.sleep
				return Wrap(newFlaky(o, 2), opt), nil
			}
			if _, done := observer.Lookup(c.option); !done { // -count=N runs this again
				observer.Register(k)
			}
			registered, ok := observer.Lookup(c.option)
			if !ok {
				t.Fatal("the flaky kind is not registered")
			}
			observertest.RunKind(t, registered, filepath.Join(t.TempDir(), "runs"))
		})
	}
}
