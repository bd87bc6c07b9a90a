package runner

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sacred-go/sacred/internal/capture"
	"github.com/sacred-go/sacred/internal/childapi"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/retry"
)

// flushNotice is how long the final flush waits silently before it says
// what it is waiting for.
const flushNotice = 2 * time.Second

// end records the end of the run in every observer: the final beat; then,
// when an observer added keys to the info dict at that beat (Mongo's
// info.metrics), one more beat so that the other observers' final records
// have them too; then the final event (Completed, Interrupted or Failed).
// It waits for the observers until --flush-timeout, answering signals
// meanwhile, stops the drivers and says what happened to each record. It
// reports whether every observer recorded the run completely.
func (r *run) end(fo *fanout, capt *capture.Capture, api *childapi.Server, final any, sigs <-chan os.Signal, interrupted bool) bool {
	// The stop time is taken first and the final beat is not earlier, as
	// the stores' readers (and Python Sacred on COMPLETED) expect.
	stop := time.Now().UTC()
	r.stopTime = stop
	hb := r.heartbeat(api, capt, true)
	if hb.BeatTime.Before(stop) {
		hb.BeatTime = stop
	}
	changes := fo.infoChanges.Load()
	fo.beat(r.drainMetrics(api), hb)

	op, fn := finalCall(final, stop)
	began := time.Now()
	deadline := began.Add(r.cfg.FlushTimeout)
	// Waiting for the others after the final beat takes at most half of
	// the flush time: an observer stuck in its beat must not leave the
	// others no time for their final event.
	done, release := fo.finish(deadline, began.Add(r.cfg.FlushTimeout/2), changes,
		func() observer.HeartbeatEvent { return r.heartbeat(api, capt, true) }, op, fn)
	w := &flushWait{r: r, fo: fo, began: began, deadline: deadline, sigs: sigs, interrupted: interrupted}
	outcome := w.wait(done)
	if outcome == flushLate {
		// The final calls' contexts end at the same deadline: let the
		// observers return on their own, so that what they say is about
		// the deadline, not about being cut off.
		waitAtMost(callGrace, done)
	}
	if outcome == flushAbandoned {
		r.abandoned = true // the end ping is not waited for either
		r.quiet.Store(true)
		// The observers that are only waiting for their final event
		// still send it; the others are given up at once.
		fo.cutBehind()
		release()
		waitAtMost(callGrace, done)
	}
	// What the observers report from now on is about being cut off; the
	// summary below says what it means for their records.
	r.quiet.Store(true)
	busy := fo.stop(callGrace)
	r.mu.Lock()
	for _, o := range busy {
		r.busy[o] = true
	}
	r.mu.Unlock()
	return r.summarize(fo, outcome, op)
}

// finalCall returns the name and the call of the final event, with its
// stop time set.
func finalCall(final any, stop time.Time) (string, func(ctx context.Context, o observer.Observer) error) {
	switch ev := final.(type) {
	case *observer.CompletedEvent:
		ev.StopTime = stop
		return observer.StatusCompleted, func(ctx context.Context, o observer.Observer) error { return o.Completed(ctx, ev) }
	case *observer.InterruptedEvent:
		ev.StopTime = stop
		return ev.Status, func(ctx context.Context, o observer.Observer) error { return o.Interrupted(ctx, ev) }
	case *observer.FailedEvent:
		ev.StopTime = stop
		return observer.StatusFailed, func(ctx context.Context, o observer.Observer) error { return o.Failed(ctx, ev) }
	}
	panic(fmt.Sprintf("runner: unknown final event %T", final))
}

type flushOutcome int

const (
	flushDone      flushOutcome = iota // every observer got there
	flushLate                          // the deadline passed first
	flushAbandoned                     // the user interrupted the wait
)

// flushWait is the wait for the observers at the end of the run. It says
// what it waits for after flushNotice; an interrupt is answered at once
// with what is pending, and a second interrupt (or the first, when the run
// was interrupted already) abandons the flush. The child's exit status is
// returned whatever happens here.
type flushWait struct {
	r           *run
	fo          *fanout
	began       time.Time
	deadline    time.Time
	sigs        <-chan os.Signal
	interrupted bool
	noticed     bool
	abandoned   bool
}

func (w *flushWait) wait(done <-chan struct{}) flushOutcome {
	if w.abandoned {
		return flushAbandoned
	}
	late := time.NewTimer(time.Until(w.deadline))
	defer late.Stop()
	var notice <-chan time.Time
	if !w.noticed {
		t := time.NewTimer(time.Until(w.began.Add(flushNotice)))
		defer t.Stop()
		notice = t.C
	}
	for {
		select {
		case <-done:
			return flushDone
		case <-late.C:
			return flushLate
		case <-notice:
			w.noticed = true
			w.r.say("waiting up to %s for the observers to record the end of run %s (interrupt to stop waiting); pending:%s",
				time.Until(w.deadline).Round(time.Second), w.r.id, w.pending())
		case s := <-w.sigs:
			if w.interrupted {
				w.abandoned = true
				w.r.say("%s: no longer waiting for the observers", signalLabel(s))
				return flushAbandoned
			}
			w.interrupted = true
			w.r.say("%s: still waiting up to %s for the observers to record the end of run %s; interrupt again to stop waiting (what is pending is then not recorded); pending:%s",
				signalLabel(s), time.Until(w.deadline).Round(time.Second), w.r.id, w.pending())
		}
	}
}

// pending lists what each unfinished observer still has to record, one
// observer per line.
func (w *flushWait) pending() string {
	p := w.fo.pending()
	if len(p) == 0 {
		return " nothing"
	}
	return "\nsacred:   " + strings.Join(p, "\nsacred:   ")
}

func signalLabel(s os.Signal) string {
	return strings.ToUpper(s.String()[:1]) + s.String()[1:]
}

// summarize says, per observer, what happened to its record when that is
// not simply "complete", and reports whether every record is complete.
func (r *run) summarize(fo *fanout, outcome flushOutcome, status string) bool {
	complete := true
	for _, d := range fo.drivers {
		name := d.obs.Name()
		select {
		case <-d.done:
		default:
			// Still inside a call that ignores its context: nothing of
			// its state may be read.
			complete = false
			r.say("observer %s: run %s stays RUNNING there: its end was not recorded (the observer was still busy after %s)",
				name, r.id, r.waited(outcome))
			continue
		}
		var held retry.Pending
		if d.store != nil {
			held = d.store.Pending()
		}
		switch {
		case d.finalOK && d.failed == nil:
			if r.troubled(d.obs) {
				r.say("observer %s: run %s is recorded completely there, after errors", name, r.id)
			}
			continue
		case d.finalOK:
			// Only an observer without the retry decorator gets here.
			complete = false
			r.say("observer %s: run %s was recorded as %s there, but parts are missing: %v", name, r.id, status, oneLine(d.failed))
		case d.finalErr != nil && d.store != nil && !held.Final:
			complete = false
			r.say("observer %s: run %s was recorded as %s there, but is incomplete: %v", name, r.id, status, oneLine(d.finalErr))
		case d.finalErr != nil:
			complete = false
			r.say("observer %s: run %s stays RUNNING there: %v", name, r.id, oneLine(d.finalErr))
		default:
			// Abandoned before its final event.
			complete = false
			what := held
			what.Points += d.dropped.Points
			what.Files += d.dropped.Files
			what.Beat = what.Beat || d.dropped.Beat
			what.Final = true
			r.say("observer %s: run %s stays RUNNING there: not recorded (%s): %s", name, r.id, r.waited(outcome), what)
		}
	}
	return complete
}

// waited says why the flush stopped waiting.
func (r *run) waited(outcome flushOutcome) string {
	if outcome == flushAbandoned {
		return "the wait was interrupted"
	}
	return fmt.Sprintf("--flush-timeout %s", r.cfg.FlushTimeout)
}
