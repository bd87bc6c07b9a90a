package runner

// What a run used and how to get its tree back: the process-tree monitor
// (--monitor-interval) and the git.diff artifact of a dirty repository.

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/sacred-go/sacred/internal/collect"
	"github.com/sacred-go/sacred/internal/monitor"
	"github.com/sacred-go/sacred/pkg/observer"
)

// gitDiffTimeout bounds the git commands that make git.diff. The end of
// the run waits for them (the artifact belongs to the record), so a
// repository too large to diff in this time goes without.
const gitDiffTimeout = 30 * time.Second

// startMonitor samples the child's process tree every
// Config.MonitorInterval; its points go to the observers' backlogs and
// leave with the next beat. nil when sampling is off.
func (r *run) startMonitor(pid int, fo *fanout) *monitor.Monitor {
	if r.cfg.MonitorInterval <= 0 || len(r.obs) == 0 {
		return nil // off, or nothing would record the samples (-u)
	}
	return monitor.Start(context.Background(), pid, monitor.Options{
		Interval: r.cfg.MonitorInterval,
		Sink:     fo.addMetrics,
	})
}

// stopMonitor ends the sampling once the child was reaped and puts what
// the run used into info.resources, in time for the final beat.
func (r *run) stopMonitor(m *monitor.Monitor, ps *os.ProcessState, mergeInfo func(map[string]any)) {
	if m == nil {
		return
	}
	sum := m.Stop(monitor.UsageOf(ps))
	mergeInfo(map[string]any{"resources": sum.Info()})
	if sum.GPUError != "" {
		r.info("GPU sampling: %s", sum.GPUError)
	}
}

// startGitDiff stores the diff of each dirty repository of the run as an
// artifact (git.diff), made in the background once the child runs. The
// returned function waits for it, at most gitDiffTimeout from the start.
func (r *run) startGitDiff(ex observer.Experiment, since time.Time, dir string, fo *fanout) (wait func()) {
	if r.cfg.GitDiffCap < 0 || len(r.obs) == 0 {
		return func() {}
	}
	ctx, cancel := context.WithTimeout(context.Background(), gitDiffTimeout)
	done := goDo(func() {
		defer cancel()
		files, err := collect.GitDiffs(ctx, ex, dir, r.cfg.GitDiffCap, since)
		for _, f := range files {
			fo.artifact(observer.ArtifactEvent{Name: f.Name, Path: f.Path, ContentType: "text/x-diff"})
		}
		switch {
		case errors.Is(err, collect.ErrNoGitCommand):
			r.say("%v", err)
		case ctx.Err() != nil:
			r.say("git.diff not recorded: git took longer than %s", gitDiffTimeout)
		case err != nil:
			r.say("git.diff not recorded: %v", err)
		}
	})
	return func() { <-done }
}
