package blob

import (
	"context"
	"errors"

	"github.com/sacred-go/sacred/internal/readback"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout"
)

var _ readback.Finder = (*Reader)(nil)

// findWorkers is how many runs Find reads at once: each read is a round
// trip to the store, so many overlap; enough for a listing of thousands of
// runs to be bound by the store, few enough not to look like a flood.
const findWorkers = 32

// Find implements readback.Finder. The selection is evaluated in process,
// so every run is returned; what costs is the round trips, so the runs are
// found with one listing by delimiter and each run's run.json is the only
// object read, unless the selection reads the config, the info or the
// metrics. A run directory without run.json (an allocation that lost its
// race, artifacts alone) is no run; a run.json that cannot be read or
// parsed is an error naming it.
func (r *Reader) Find(ctx context.Context, req *readback.Request) ([]*observer.Run, error) {
	ids, err := r.Runs(ctx)
	if err != nil {
		return nil, err
	}
	parts := layout.PartsFor(req.Needs)
	return layout.ReadRuns(ctx, ids, findWorkers, func() func(string) (*observer.Run, error) {
		return func(id string) (*observer.Run, error) {
			run, err := r.readRun(ctx, id, parts)
			if errors.Is(err, observer.ErrNotFound) {
				return nil, nil
			}
			return run, err
		}
	})
}
