// Package runner drives one observed run: it orders the observers, fires
// the start event, spawns the child with its output captured, beats, turns
// signals and timeouts into the run's status, flushes the final event and
// returns the child's exit status.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sacred-go/sacred/internal/capture"
	"github.com/sacred-go/sacred/internal/childapi"
	"github.com/sacred-go/sacred/pkg/observer"
)

// maxBacklog is how many metric points may wait for one observer before
// the runner stops taking more from the child (about 40 bytes each in
// memory, and again as encoded JSON in an observer that buffers them).
const maxBacklog = 100_000

// Exit statuses of the wrapper itself, as a shell reports them.
const (
	ExitUsage       = 2
	ExitNotFound    = 127
	ExitNotExec     = 126
	ExitSetupFailed = 1
)

// Config is everything one run needs. The CLI fills it.
type Config struct {
	Argv      []string
	Observers []observer.Observer
	// Start is the start event without its id and time, which the runner
	// sets.
	Start *observer.StartEvent
	Seed  int64
	// Queue records a QUEUED run and does not start the command.
	Queue bool

	BeatInterval time.Duration // <= 0: no periodic beats (the final beat is still sent)
	Capture      capture.Mode
	Timeout      time.Duration // 0: none
	KillAfter    time.Duration // grace between the forwarded signal and SIGKILL
	StartTimeout time.Duration // per observer, for Started/Queued
	FlushTimeout time.Duration // for the final beat and event of all observers
	Strict       bool          // observer trouble changes the exit status to 1

	ResultFile    string
	MetricPattern string

	Stdout, Stderr *os.File
	Env            []string  // environment of the child before SACRED_* are added
	Messages       io.Writer // informational lines ("started run 3"); nil: none
}

// Run performs the run and returns the exit status for the wrapper.
func Run(cfg Config) int {
	r := &run{cfg: cfg, warn: cfg.Stderr}
	return r.do()
}

type run struct {
	cfg  Config
	warn io.Writer
	obs  []observer.Observer
	id   string
}

func (r *run) say(format string, args ...any) {
	fmt.Fprintf(r.warn, "sacred: "+format+"\n", args...)
}

// info prints a line that -l warning silences.
func (r *run) info(format string, args ...any) {
	if r.cfg.Messages != nil {
		fmt.Fprintf(r.cfg.Messages, "sacred: "+format+"\n", args...)
	}
}

func (r *run) do() int {
	r.obs = append([]observer.Observer(nil), r.cfg.Observers...)
	sort.SliceStable(r.obs, func(i, j int) bool { return r.obs[i].Priority() > r.obs[j].Priority() })
	defer r.closeAll()

	if r.cfg.Queue {
		return r.queue()
	}
	return r.start()
}

func (r *run) closeAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, o := range r.obs {
		if err := o.Close(ctx); err != nil {
			r.say("observer %s: close failed: %v", o.Name(), err)
		}
	}
}

func (r *run) queue() int {
	ev := *r.cfg.Start
	ev.Time = time.Now().UTC()
	ev.Host = nil
	qt := ev.Time
	ev.Meta.QueueTime = &qt
	for _, o := range r.obs {
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.StartTimeout)
		ev.ID = r.id
		id, err := o.Queued(ctx, &ev)
		cancel()
		if err != nil {
			r.say("observer %s could not queue the run: %v", o.Name(), err)
			return ExitSetupFailed
		}
		if r.id == "" {
			r.id = id
		}
	}
	if r.id != "" {
		r.info("queued run %s", r.id)
	}
	return 0
}

// started fires the start event in priority order. On failure the
// observers that did record the start get a failed event, so no store is
// left with a RUNNING run that never ran.
func (r *run) started(ev *observer.StartEvent) error {
	var ok []observer.Observer
	for _, o := range r.obs {
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.StartTimeout)
		ev.ID = r.id
		id, err := o.Started(ctx, ev)
		cancel()
		if err != nil {
			err = fmt.Errorf("observer %s could not record the start of the run: %w", o.Name(), err)
			r.failUnstarted(ok, "sacred: the command was not started: "+err.Error()+"\n")
			return err
		}
		if r.id == "" {
			r.id = id
		}
		ok = append(ok, o)
	}
	return nil
}

func (r *run) start() int {
	cfg := r.cfg
	ev := *cfg.Start
	ev.Time = time.Now().UTC()
	if err := r.started(&ev); err != nil {
		r.say("%v", err)
		return ExitSetupFailed
	}
	if len(r.obs) > 0 && r.id != "" {
		r.info("started run %s", r.id)
	}

	tmp, err := os.MkdirTemp("", "sacred-run-")
	if err != nil {
		return r.abortStart(fmt.Errorf("create private temp dir: %w", err), ExitSetupFailed)
	}
	defer os.RemoveAll(tmp)

	var api *childapi.Server
	fo := newFanout(r.obs, r.warn, func(added map[string]any) { api.MergeInfo(added) })
	api, err = childapi.Listen(childapi.Options{
		Dir:         tmp,
		Cwd:         ev.Meta.Cwd,
		ArtifactDir: filepath.Join(tmp, "artifacts"),
		Warn:        r.warn,
		OnArtifact:  func(a observer.ArtifactEvent) { fo.artifact(a) },
		OnResource:  func(res observer.ResourceEvent) { fo.resource(res) },
	})
	if err != nil {
		return r.abortStart(fmt.Errorf("start the child API: %w", err), ExitSetupFailed)
	}
	// The socket directory may be outside tmp (a TMPDIR too deep for a
	// socket path).
	defer api.Cleanup()

	capt, err := capture.New(capture.Options{
		Mode:      cfg.Capture,
		Stdout:    cfg.Stdout,
		Stderr:    cfg.Stderr,
		SpoolDir:  tmp,
		SpoolFile: r.outputFile(cfg.Capture),
	})
	if err != nil {
		api.Close()
		return r.abortStart(fmt.Errorf("set up output capture: %w", err), ExitSetupFailed)
	}
	defer capt.Close()
	var scraper io.Closer
	if cfg.MetricPattern != "" {
		sc, err := childapi.NewScraper(cfg.MetricPattern, api)
		if err != nil {
			api.Close()
			return r.abortStart(err, ExitUsage)
		}
		scraper = sc
		capt.TapStdout(sc)
	}

	cmd := exec.Command(cfg.Argv[0], cfg.Argv[1:]...)
	cmd.Env = r.childEnv(api.Path())
	cmd.Stdin = os.Stdin
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if err := capt.Attach(cmd); err != nil {
		api.Close()
		return r.abortStart(fmt.Errorf("set up output capture: %w", err), ExitSetupFailed)
	}
	fg := prepareChild(cmd)

	// Signals are caught before the start so that none is lost between
	// the start and the forwarding loop.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)

	if err := cmd.Start(); err != nil {
		capt.Abort()
		api.Close()
		code, line := startError(cfg.Argv[0], err)
		r.say("%s", line)
		r.end(fo, capt, api, 0, &observer.FailedEvent{Trace: []string{line + "\n"}})
		return code
	}
	if fg != nil {
		defer fg.restore()
	}
	if err := capt.Started(); err != nil {
		r.say("output capture failed: %v (output still reaches the terminal)", err)
	}

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var (
		ticker  <-chan time.Time
		timeout <-chan time.Time
		killAt  <-chan time.Time
		status  string // INTERRUPTED or TIMEOUT once we stopped the child
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
	// Metrics wait in the child API while an observer lags too far
	// behind; the API then stops reading the child's metric lines, so
	// memory stays bounded whatever the rate of points.
	held := false
	beat := func() {
		var metrics []observer.MetricSeries
		if held = fo.backlog() >= maxBacklog; !held {
			metrics = api.DrainMetrics()
		}
		fo.beat(metrics, r.heartbeat(api, capt, false))
	}

loop:
	for {
		select {
		case <-exited:
			break loop
		case <-ticker:
			beat()
		case <-api.Flush():
			beat()
		case <-fo.progress:
			if held && fo.backlog() < maxBacklog {
				beat()
			}
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

	drainCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if err := capt.Drain(drainCtx); err != nil {
		r.say("output of background processes still running after the command exited is not captured: %v", err)
	}
	cancel()
	if scraper != nil {
		scraper.Close() // its last line may lack a newline
	}
	api.Close()
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
	var final any
	switch {
	case status != "":
		final = &observer.InterruptedEvent{Status: status}
	case code == 0:
		res, has := api.Result()
		final = &observer.CompletedEvent{Result: res, HasResult: has}
	default:
		final = &observer.FailedEvent{Trace: failTrace(code, sigName, capt.StderrTail())}
	}
	if bad := r.end(fo, capt, api, code, final); bad && cfg.Strict && code == 0 {
		return 1
	}
	return code
}

// outputFile asks the first observer that keeps the output in a local file
// for it, so that the output is captured straight into it and written once.
func (r *run) outputFile(mode capture.Mode) *os.File {
	if mode == capture.ModeNo {
		return nil
	}
	for _, o := range r.obs {
		if owner, ok := o.(observer.OutputFileOwner); ok {
			f, err := owner.OutputFile()
			if err != nil {
				r.say("observer %s: %v (capturing to a private file instead)", o.Name(), err)
				continue
			}
			if f != nil {
				return f
			}
		}
	}
	return nil
}

// abortStart ends a run whose command could not be started.
func (r *run) abortStart(err error, code int) int {
	r.say("%v", err)
	r.failUnstarted(r.obs, "sacred: "+err.Error()+"\n")
	return code
}

// failUnstarted records a run whose command never started as FAILED in
// the given observers, with line as its whole trace. It calls them
// directly: the per-observer queues carry only events of a started child.
func (r *run) failUnstarted(obs []observer.Observer, line string) {
	for _, o := range obs {
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.FlushTimeout)
		_ = o.Failed(ctx, &observer.FailedEvent{StopTime: time.Now().UTC(), Trace: []string{line}})
		cancel()
	}
}

// end sends the final beat and event and waits for the observers. It
// reports whether any observer had trouble.
func (r *run) end(fo *fanout, capt *capture.Capture, api *childapi.Server, code int, final any) bool {
	fo.beat(api.DrainMetrics(), r.heartbeat(api, capt, true))
	now := time.Now().UTC()
	var op string
	var fn func(ctx context.Context, o observer.Observer) error
	switch ev := final.(type) {
	case *observer.CompletedEvent:
		ev.StopTime = now
		op, fn = "completed", func(ctx context.Context, o observer.Observer) error { return o.Completed(ctx, ev) }
	case *observer.InterruptedEvent:
		ev.StopTime = now
		op, fn = strings.ToLower(ev.Status), func(ctx context.Context, o observer.Observer) error { return o.Interrupted(ctx, ev) }
	case *observer.FailedEvent:
		ev.StopTime = now
		op, fn = "failed", func(ctx context.Context, o observer.Observer) error { return o.Failed(ctx, ev) }
	}
	late := fo.finish(time.Now().Add(r.cfg.FlushTimeout), op, fn)
	for _, o := range late {
		r.say("observer %s did not record the end of run %s within %s: its record may be incomplete", o.Name(), r.id, r.cfg.FlushTimeout)
	}
	err := fo.failures()
	if err != nil && len(late) == 0 {
		r.say("some events of run %s could not be recorded: %v", r.id, oneLine(err))
	}
	return err != nil
}

func (r *run) heartbeat(api *childapi.Server, capt *capture.Capture, final bool) observer.HeartbeatEvent {
	res, has := api.Result()
	out := capt.Output()
	return observer.HeartbeatEvent{
		Info:      api.Info(),
		BeatTime:  time.Now().UTC(),
		Result:    res,
		HasResult: has,
		Output:    out,
		To:        out.Size(),
		Final:     final,
	}
}

func (r *run) childEnv(socket string) []string {
	env := append([]string(nil), r.cfg.Env...)
	cfgJSON, _ := json.Marshal(r.cfg.Start.Config)
	env = setEnv(env, "SACRED_RUN_ID", r.id)
	env = setEnv(env, "SACRED_CONFIG", string(cfgJSON))
	env = setEnv(env, "SACRED_SEED", strconv.FormatInt(r.cfg.Seed, 10))
	env = setEnv(env, "SACRED_SOCKET", socket)
	if !hasEnv(env, "PYTHONUNBUFFERED") {
		env = append(env, "PYTHONUNBUFFERED=1")
	}
	// `sacred log` must work in the child even when sacred was started by
	// its full path: its directory goes last on PATH.
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		path := os.Getenv("PATH")
		for _, e := range env {
			if strings.HasPrefix(e, "PATH=") {
				path = e[len("PATH="):]
			}
		}
		if !containsPath(path, dir) {
			env = setEnv(env, "PATH", strings.TrimPrefix(path+string(os.PathListSeparator)+dir, string(os.PathListSeparator)))
		}
	}
	return env
}

func setEnv(env []string, k, v string) []string {
	prefix := k + "="
	out := env[:0]
	for _, e := range env {
		if !strings.HasPrefix(e, prefix) {
			out = append(out, e)
		}
	}
	return append(out, prefix+v)
}

func containsPath(list, dir string) bool {
	for _, p := range filepath.SplitList(list) {
		if p == dir {
			return true
		}
	}
	return false
}

func hasEnv(env []string, k string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, k+"=") {
			return true
		}
	}
	return false
}

func resolve(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// startError maps a failed start to the shell's exit status and one line.
func startError(prog string, err error) (int, string) {
	switch {
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, os.ErrNotExist):
		return ExitNotFound, fmt.Sprintf("command not found: %s (check the name and your PATH)", prog)
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.ENOEXEC), errors.Is(err, syscall.EISDIR):
		return ExitNotExec, fmt.Sprintf("command cannot be executed: %s (%v; is it executable?)", prog, rootCause(err))
	default:
		return ExitNotExec, fmt.Sprintf("command could not be started: %s: %v", prog, rootCause(err))
	}
}

func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// exitStatus returns the shell's view of how the child ended, and the
// signal's name when a signal ended it.
func exitStatus(ps *os.ProcessState) (int, string) {
	if ps == nil {
		return 1, ""
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		sig := ws.Signal()
		return 128 + int(sig), signalName(sig)
	}
	return ps.ExitCode(), ""
}

func isInterruptSignal(ps *os.ProcessState) bool {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return false
	}
	switch ws.Signal() {
	case syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT:
		return true
	}
	return false
}

// failTrace is the run's fail_trace: a line with the exit status or
// signal, then the tail of stderr, each line ending in "\n" as Sacred's
// trace lines do.
func failTrace(code int, sig string, tail []byte) []string {
	var first string
	if sig != "" {
		first = fmt.Sprintf("command killed by %s (exit status %d)\n", sig, code)
	} else {
		first = fmt.Sprintf("command exited with status %d\n", code)
	}
	trace := []string{first}
	text := strings.ToValidUTF8(string(tail), "\uFFFD")
	if text == "" {
		return trace
	}
	lines := strings.SplitAfter(text, "\n")
	for _, l := range lines {
		if l == "" {
			continue
		}
		if !strings.HasSuffix(l, "\n") {
			l += "\n"
		}
		trace = append(trace, l)
	}
	return trace
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
