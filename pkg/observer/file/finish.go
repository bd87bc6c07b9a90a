package file

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout"
)

// Completed records status COMPLETED, stop_time and the result.
func (o *Observer) Completed(_ context.Context, ev *observer.CompletedEvent) error {
	return o.finish("completed", func() { o.run.Complete(ev) })
}

// Interrupted records the status (INTERRUPTED, TIMEOUT or a custom one)
// and stop_time.
func (o *Observer) Interrupted(_ context.Context, ev *observer.InterruptedEvent) error {
	return o.finish("interrupted", func() { o.run.Interrupt(ev) })
}

// Failed records status FAILED, stop_time and fail_trace.
func (o *Observer) Failed(_ context.Context, ev *observer.FailedEvent) error {
	return o.finish("failed", func() { o.run.Fail(ev) })
}

// finish makes the run's files durable, writes the final run.json and
// renders the report. The final status is written even on a full disk
// (run.json keeps space for it, see writeRunJSON); if it still cannot be,
// the error says that the run stays RUNNING. What the record lacks (output,
// metric points, info, artifacts, resources that could not be stored) is
// said in one warning line: the run's end was recorded, so it is no error
// of this call.
func (o *Observer) finish(event string, update func()) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready(event); err != nil {
		return err
	}
	// Earlier writes were atomic but not synced; make the run durable
	// once, at its end.
	var errSync error
	if o.cout != nil {
		if err := o.cout.Sync(); err != nil {
			errSync = fmt.Errorf("file storage: run %s: syncing %s: %w", o.id, layout.CoutFile, err)
		}
	}
	for _, name := range []string{layout.MetricsFile, layout.InfoFile, layout.ConfigFile} {
		if err := syncPath(filepath.Join(o.runDir, name)); err != nil {
			errSync = errors.Join(errSync, fmt.Errorf("file storage: run %s: syncing %s: %w", o.id, name, err))
		}
	}
	update()
	err := o.writeRun(true)
	if trace, _ := o.run["fail_trace"].([]string); err != nil && len(trace) > 1 {
		// No room for the stderr tail: keep the exit status.
		o.run["fail_trace"] = []string{trace[0], fmt.Sprintf("(%d more lines of stderr not stored: %s)\n", len(trace)-1, rootCause(err))}
		if err = o.writeRun(true); err == nil {
			o.lost.trace = true
		}
	}
	if err != nil {
		return fmt.Errorf("file storage: run %s stays %s in %s, its end could not be recorded: %w",
			o.id, o.recordedStatus(), filepath.Join(o.runDir, layout.RunFile), err)
	}
	o.renderReport()
	if lost := o.lost.summary(); lost != "" {
		fmt.Fprintf(o.settings.Warner(), "sacred: %s: run %s is recorded %s, but without %s\n",
			o.Name(), o.id, o.run.Status(), lost)
	}
	return errSync
}

// recordedStatus is the status in run.json on disk, as far as this
// observer knows: the last one it wrote (RUNNING or QUEUED).
func (o *Observer) recordedStatus() string {
	if o.run["start_time"] == nil {
		return observer.StatusQueued
	}
	return observer.StatusRunning
}

// Close closes cout.txt.
func (o *Observer) Close(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cout == nil {
		return nil
	}
	err := o.cout.Close()
	o.cout = nil
	if err != nil {
		return fmt.Errorf("file storage: run %s: closing %s: %w", o.id, layout.CoutFile, err)
	}
	return nil
}
