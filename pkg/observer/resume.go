package observer

import "context"

// Resumer is an optional interface of a store that can go on recording a
// run another process started there: a wrapper that was killed, whose
// journal `sacred sync` replays (pkg/observer/queue), or whose run `sacred
// reap` ends. Find it through decorators with As.
//
// Resume takes the place of Started on a fresh observer, for the existing
// run ev.ID (ev is the run's start event; a store may use no more than the
// id). The store loads what it needs to continue the record exactly where
// it stands (the output stored so far, the length of every metric series,
// the record's current fields), so that the Heartbeat, LogMetrics,
// Resource, Artifact and final events that follow extend the record as if
// the first observer had sent them. A run that is not in the store gives
// an error wrapping ErrNotFound.
//
// The output: the next Heartbeat's From is where the output this store
// acknowledged ends (the length it has stored; a journal notes it with
// each acknowledgement). A From before that rewrites bytes the store has,
// harmlessly, as for any call that comes again; Resume does not change it.
//
// Resume does not look at the run's status: the caller decides whether a
// run may be continued (sacred reap takes only RUNNING runs).
type Resumer interface {
	Resume(ctx context.Context, ev *StartEvent) error
}
