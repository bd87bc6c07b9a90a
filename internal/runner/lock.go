package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gofrs/flock"
)

// ExitLocked is the exit status of a run that did not start because
// another run holds its --lock: EX_TEMPFAIL of sysexits.h, "try again
// later", which no other outcome of sacred run uses.
const ExitLocked = 75

// ErrLocked says that another process holds the lock.
var ErrLocked = errors.New("held by another run")

// lockPoll is how often a waiting run tries the lock again. flock(2)
// cannot be waited for with a deadline, so the wait polls.
const lockPoll = 50 * time.Millisecond

// Lock is an exclusive flock(2) on a file (--lock). The kernel releases it
// when its descriptor is closed, so it also ends with a wrapper that is
// killed; the descriptor is close-on-exec, so the command never holds it.
type Lock struct {
	fl *flock.Flock
}

// TakeLock takes the lock on path, creating the file when it is missing
// (it is never written nor removed, so any file may serve, as with
// flock(1)). When another process holds it, TakeLock waits up to wait
// (0: not at all), calling waiting once first, and then returns an error
// that wraps ErrLocked.
func TakeLock(path string, wait time.Duration, waiting func()) (*Lock, error) {
	fl := flock.New(path, flock.SetPermissions(0o666))
	ok, err := fl.TryLock()
	if err != nil {
		return nil, err
	}
	if ok {
		return &Lock{fl: fl}, nil
	}
	if wait <= 0 {
		return nil, ErrLocked
	}
	if waiting != nil {
		waiting()
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ok, err = fl.TryLockContext(ctx, lockPoll)
	switch {
	case ok:
		return &Lock{fl: fl}, nil
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("still %w after %s", ErrLocked, wait)
	default:
		return nil, err
	}
}

// Release releases the lock.
func (l *Lock) Release() {
	_ = l.fl.Unlock()
}
