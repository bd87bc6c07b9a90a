package runner

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sacred-go/sacred/internal/capture"
	"github.com/sacred-go/sacred/internal/childapi"
	"github.com/sacred-go/sacred/pkg/observer"
)

// drainWait bounds how long the output is still copied after the child
// exited (a background process may keep it open); drainGrace is how much
// longer the runner waits for the copiers to stop before it goes on
// without them.
const (
	drainWait  = 2 * time.Second
	drainGrace = 2 * time.Second
)

// start records the start, runs the child under watch and records its end.
func (r *run) start() int {
	cfg := r.cfg
	ev := *cfg.Start
	ev.Time = time.Now().UTC()
	r.startTime = ev.Time
	if err := r.started(&ev); err != nil {
		r.say("%v", err)
		r.endUnstarted(ExitSetupFailed, "sacred: "+err.Error())
		return ExitSetupFailed
	}
	if len(r.obs) > 0 && r.id != "" {
		r.info("started run %s", r.id)
	}

	tmp, err := makeTempDir()
	if err != nil {
		return r.abortStart(err, ExitSetupFailed)
	}
	defer os.RemoveAll(tmp)
	// Directories left by wrappers that were killed are removed while the
	// run goes on, once the child has started: on a machine of two cores
	// that work would otherwise delay the start.
	var stale chan struct{}
	removeStale := func() {
		stale = make(chan struct{})
		go func() {
			defer close(stale)
			removeStaleTempDirs(filepath.Dir(tmp), tmp)
		}()
	}
	defer func() {
		if stale != nil {
			waitAtMost(staleWait, stale)
		}
	}()

	var api *childapi.Server
	fo := newFanout(r.obs, tmp, r.warn, func(changed map[string]any) { api.MergeInfo(changed) })
	// Until the child runs, a failed set-up stops the drivers (they have
	// nothing queued) before the observers are told directly.
	abort := func(err error, code int) int {
		fo.stop(callGrace) // idle: they return at once
		return r.abortStart(err, code)
	}
	api, err = childapi.Listen(childapi.Options{
		Dir:         tmp,
		Cwd:         ev.Meta.Cwd,
		ArtifactDir: filepath.Join(tmp, "artifacts"),
		Warn:        r.warn,
		OnArtifact:  func(a observer.ArtifactEvent) { fo.artifact(a) },
		OnResource:  func(res observer.ResourceEvent) { fo.resource(res) },
	})
	if err != nil {
		return abort(fmt.Errorf("start the child API: %w", err), ExitSetupFailed)
	}
	// The socket directory may be outside tmp (a TMPDIR too deep for a
	// socket path).
	defer api.Cleanup()

	passOut, passErr := cfg.Stdout, cfg.Stderr
	if cfg.Quiet != nil {
		// The output is shown from the spool if the run fails.
		devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			api.Close()
			return abort(fmt.Errorf("--quiet-unless-fail: %w", err), ExitSetupFailed)
		}
		defer devNull.Close()
		passOut, passErr = devNull, devNull
	}
	capt, err := capture.New(capture.Options{
		Mode:      cfg.Capture,
		Stdout:    passOut,
		Stderr:    passErr,
		SpoolDir:  tmp,
		SpoolFile: r.outputFile(cfg.Capture),
	})
	if err != nil {
		api.Close()
		return abort(fmt.Errorf("set up output capture: %w", err), ExitSetupFailed)
	}
	// A copier stuck in a write to the wrapper's own stdout (a pipe
	// nobody reads) must not keep the wrapper from exiting.
	defer func() { waitAtMost(drainGrace, goDo(func() { capt.Close() })) }()
	var scraper io.Closer
	if cfg.MetricPattern != "" {
		sc, err := childapi.NewScraper(cfg.MetricPattern, api)
		if err != nil {
			capt.Abort()
			api.Close()
			return abort(err, ExitUsage)
		}
		scraper = sc
		capt.TapStdout(sc)
	}

	cmd := exec.Command(cfg.Argv[0], cfg.Argv[1:]...)
	cmd.Env, err = r.childEnv(tmp, api.Path())
	if err != nil {
		capt.Abort()
		api.Close()
		return abort(err, ExitSetupFailed)
	}
	cmd.Stdin = os.Stdin
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if err := capt.Attach(cmd); err != nil {
		capt.Abort()
		api.Close()
		return abort(fmt.Errorf("set up output capture: %w", err), ExitSetupFailed)
	}
	fg := prepareChild(cmd)

	// Signals are caught before the start so that none is lost between
	// the start and the forwarding loop; they stay caught until the
	// observers are done, so that an interrupt during the final flush is
	// answered.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)

	if err := cmd.Start(); err != nil {
		capt.Abort()
		api.Close()
		code, line := startError(cfg.Argv[0], err)
		r.say("%s", line)
		r.ended(observer.StatusFailed, code, nil, false, []byte("sacred: "+line+"\n"))
		complete := r.end(fo, capt, api, &observer.FailedEvent{Trace: []string{line + "\n"}}, sigs, false)
		r.reportEnd(code, complete, false, nil)
		return code
	}
	removeStale()
	if fg != nil {
		defer fg.restore()
	}
	if err := capt.Started(); err != nil {
		r.say("output capture failed: %v (output still reaches the terminal)", err)
	}
	if cfg.Quiet != nil {
		cfg.Quiet.commandStarted()
	}
	if r.ping != nil {
		r.ping.start()
	}
	mon := r.startMonitor(cmd.Process.Pid, fo)
	waitGitDiff := r.startGitDiff(ev.Experiment, ev.Time, tmp, fo)

	status := r.supervise(cmd, fo, api, capt, sigs)
	r.stopMonitor(mon, cmd.ProcessState, api.MergeInfo)
	if fg != nil {
		// The terminal's Ctrl-C must reach the wrapper again while it
		// waits for the observers.
		fg.restore()
	}

	r.drain(capt, api, fo)
	api.Close() // releases a scraper waiting to add a point
	if scraper != nil {
		scraper.Close() // its last line may lack a newline
	}
	if err := capt.Err(); err != nil {
		r.say("output capture stopped: %v (the output still reached the terminal; the record holds what came before)", err)
	}

	code, sigName := exitStatus(cmd.ProcessState)
	if cfg.ResultFile != "" {
		if v, err := childapi.ReadResultFile(resolve(ev.Meta.Cwd, cfg.ResultFile)); err != nil {
			r.say("--result-file: %v", err)
		} else {
			api.SetResult(v)
		}
	}
	if status == "" && sigName != "" && isInterruptSignal(cmd.ProcessState) {
		// The child got the terminal's interrupt directly (it was in
		// the foreground) or was stopped from outside.
		status = observer.StatusInterrupted
	}
	waitGitDiff()
	var final any
	res, has := api.Result()
	switch {
	case status != "":
		final = &observer.InterruptedEvent{Status: status}
	case code == 0:
		status = observer.StatusCompleted
		final = &observer.CompletedEvent{Result: res, HasResult: has}
	default:
		status = observer.StatusFailed
		final = &observer.FailedEvent{Trace: failTrace(code, sigName, capt.StderrTail())}
	}
	r.ended(status, code, res, has, outputTail(capt.Output()))
	complete := r.end(fo, capt, api, final, sigs, status == observer.StatusInterrupted)
	if !complete && cfg.Strict && code == 0 {
		code = 1
	}
	r.reportEnd(code, complete, capt.Err() != nil, capt.Output())
	return code
}

// supervise beats, forwards signals and enforces the timeout until the
// child exits. It returns INTERRUPTED or TIMEOUT when the wrapper stopped
// the child, else "".
func (r *run) supervise(cmd *exec.Cmd, fo *fanout, api *childapi.Server, capt *capture.Capture, sigs <-chan os.Signal) string {
	cfg := r.cfg
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var (
		ticker  <-chan time.Time
		timeout <-chan time.Time
		killAt  <-chan time.Time
		status  string
	)
	if cfg.BeatInterval > 0 {
		t := time.NewTicker(cfg.BeatInterval)
		defer t.Stop()
		ticker = t.C
	}
	if cfg.Timeout > 0 {
		t := time.NewTimer(cfg.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	stop := func(sig syscall.Signal, st string) {
		if status == "" {
			status = st
		}
		if signalChild(cmd.Process, sig) {
			return // killed outright (Windows): no grace to wait out
		}
		if killAt == nil {
			killAt = time.After(cfg.KillAfter)
		}
	}
	// Every beat takes all the points the child API holds: each observer
	// keeps its own backlog (spilled to disk while it lags), so the
	// child's socket writes never wait for an observer.
	beat := func() { fo.beat(r.drainMetrics(api), r.heartbeat(api, capt, false)) }
	for {
		select {
		case <-exited:
			return status
		case <-ticker:
			beat()
		case <-api.Flush():
			beat()
		case <-timeout:
			r.say("timeout after %s: stopping the command", cfg.Timeout)
			stop(syscall.SIGTERM, observer.StatusTimeout)
		case <-killAt:
			r.say("the command did not stop within %s: killing it", cfg.KillAfter)
			killChild(cmd.Process)
		case s := <-sigs:
			sig := s.(syscall.Signal)
			if status != "" && sig == syscall.SIGINT {
				r.say("second interrupt: killing the command")
				killChild(cmd.Process)
				continue
			}
			stop(sig, observer.StatusInterrupted)
		}
	}
}

// drain waits for the output copiers to finish after the child exited,
// never for ever: a background process that keeps the output open stops
// the copying after drainWait, and copiers that still do not stop are left
// behind after drainGrace. Meanwhile metric points scraped from the last
// output keep flowing to the observers' backlogs, so the scraper never
// waits for the runner.
func (r *run) drain(capt *capture.Capture, api *childapi.Server, fo *fanout) {
	ctx, cancel := context.WithTimeout(context.Background(), drainWait)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- capt.Drain(ctx) }()
	hard := time.NewTimer(drainWait + drainGrace)
	defer hard.Stop()
	for {
		select {
		case err := <-res:
			if err != nil {
				r.say("output of background processes still running after the command exited is not captured: %v", err)
			}
			return
		case <-api.Flush():
			fo.addMetrics(r.drainMetrics(api))
		case <-hard.C:
			r.say("the output copier did not stop within %s after the command exited: the record holds the output up to now", drainWait+drainGrace)
			return
		}
	}
}

// goDo runs f in a goroutine and returns a channel closed when it returns.
func goDo(f func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	return done
}

// waitAtMost waits for done, at most d.
func waitAtMost(d time.Duration, done <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
