package runner

import (
	"sync"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/retry"
)

// maxTroubleLines is how many times one observer's failures are announced
// (each time it starts failing after it had recovered); a store that keeps
// flapping is then only summed up at the end.
const maxTroubleLines = 3

// health is what the user was told about one observer's failures.
type health struct {
	mu        sync.Mutex
	failing   bool
	announced int  // failure lines printed
	troubled  bool // it failed at least once during the run
}

// wrap puts every observer in the retry decorator: a store that fails
// keeps its data there and gets it again with backoff, every call is
// bounded by the call timeout, and the decorator's reports become the
// user's messages. The observers' order is kept.
func (r *run) wrap(obs []observer.Observer) []observer.Observer {
	out := make([]observer.Observer, len(obs))
	for i, o := range obs {
		h := &health{}
		w := retry.Wrap(o, retry.Options{
			CallTimeout: r.cfg.CallTimeout,
			Report:      func(ev retry.Event) { r.reportStore(h, ev) },
		})
		r.health[w] = h
		out[i] = w
	}
	return out
}

// reportStore turns a failure or a recovery of one store into a message:
// the first failure after a healthy spell, and the recovery. Every other
// failure is a debug line (-d).
func (r *run) reportStore(h *health, ev retry.Event) {
	if r.quiet.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case ev.Err != nil && h.failing:
		r.debugf("observer %s: could not record %s of run %s again: %s", ev.Observer, opWords(ev.Op), r.id, oneLine(ev.Err))
	case ev.Err != nil:
		h.failing, h.troubled = true, true
		h.announced++
		if h.announced > maxTroubleLines {
			r.debugf("observer %s: could not record %s of run %s: %s", ev.Observer, opWords(ev.Op), r.id, oneLine(ev.Err))
			return
		}
		more := ""
		if h.announced == maxTroubleLines {
			more = "; further failures of this observer are only summed up at the end"
		}
		r.say("observer %s: could not record %s of run %s: %s; kept to be sent again (the run goes on%s)",
			ev.Observer, opWords(ev.Op), r.id, oneLine(ev.Err), more)
	case ev.Err == nil && h.failing:
		h.failing = false
		if h.announced <= maxTroubleLines {
			r.say("observer %s: recording again; run %s has caught up there", ev.Observer, r.id)
		}
	}
}

// troubled tells whether o (as wrapped) failed at some point of the run.
func (r *run) troubled(o observer.Observer) bool {
	h := r.health[o]
	if h == nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.troubled
}

// opWords names a call of the retry decorator's reports in words.
func opWords(op string) string {
	switch op {
	case "log_metrics":
		return "metric points"
	case "heartbeat":
		return "the heartbeat (info, result, output)"
	case "completed", "interrupted", "failed":
		return "the final status"
	}
	return op // "artifact NAME", "resource PATH"
}
