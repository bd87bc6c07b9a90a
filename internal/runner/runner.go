// Package runner drives one observed run: it orders the observers, fires
// the start event, spawns the child with its output captured, beats, turns
// signals and timeouts into the run's status, flushes the final event and
// returns the child's exit status.
package runner

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sacred-go/sacred/internal/capture"
	"github.com/sacred-go/sacred/internal/childapi"
	"github.com/sacred-go/sacred/pkg/observer"
)

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
	// CallTimeout bounds every other call to an observer (a beat, an
	// artifact, Close); 0 means the retry decorator's default (30s). A
	// call that times out is kept and tried again, like a failed one.
	CallTimeout time.Duration
	// Strict makes the exit status 1 when the child succeeded but some
	// observer's record of the run is incomplete at the end (the same
	// rule for every store); a failing child's status is kept.
	Strict bool

	ResultFile    string
	MetricPattern string

	// MonitorInterval is how often the child's process tree is sampled
	// (--monitor-interval); 0 turns the sampling off.
	MonitorInterval time.Duration
	// GitDiffCap bounds the git.diff artifact stored when a repository of
	// the run is dirty; 0 means collect.DefaultGitDiffCap, < 0 stores
	// none.
	GitDiffCap int64

	// Unbuffered sets PYTHONUNBUFFERED=1 in the child's environment, so that
	// a Python child writes its output line by line into a pipe (at a cost
	// in speed). Off, the environment is left as it is (in pty mode Python
	// line-buffers by itself).
	Unbuffered bool

	Stdout, Stderr *os.File
	Env            []string  // environment of the child before SACRED_* are added
	Messages       io.Writer // informational lines ("started run 3"); nil: none
	// Debug receives debug lines (-d): every failure of an observer, not
	// only the first of a spell that stderr is told of; nil: none.
	Debug io.Writer

	// Cron and CI (summary.go). Quiet keeps the output and the messages
	// off the terminal unless the run fails (--quiet-unless-fail; the
	// caller routes its own messages and Messages into it too). Ping is
	// the --ping URL. SummaryJSON is the --summary-json file, StepSummary
	// GitHub Actions' step summary file; "" for none.
	Quiet       *Quiet
	Ping        string
	SummaryJSON string
	StepSummary string
}

// Run performs the run and returns the exit status for the wrapper.
func Run(cfg Config) int {
	catchSIGPIPE()
	msgs := newMessages()
	r := &run{
		cfg:    cfg,
		msgs:   msgs,
		warn:   msgs.to(cfg.Stderr),
		note:   msgs.to(cfg.Messages),
		debug:  msgs.to(cfg.Debug),
		busy:   map[observer.Observer]bool{},
		health: map[observer.Observer]*health{},
	}
	if cfg.Quiet != nil {
		// The quiet buffer never blocks: lines go to it directly, in
		// the order they are said.
		r.warn, r.note, r.debug = cfg.Quiet, cfg.Messages, cfg.Debug
	}
	code := r.do()
	msgs.close(messageWait)
	return code
}

// Bounds of the runner's own waits.
const (
	// messageWait bounds how long the end of a run waits for its last
	// messages to be written to a stderr that is not read.
	messageWait = 2 * time.Second
	// closeTimeout bounds each observer's Close.
	closeTimeout = 5 * time.Second
	// callGrace is how long the runner waits for a call past its
	// context's deadline before it stops waiting: an observer that
	// ignores its context is then left alone (never called nor closed
	// again), so the wrapper always ends.
	callGrace = 2 * time.Second
)

type run struct {
	cfg   Config
	msgs  *messages
	warn  io.Writer // the user's stderr, through the message queue
	note  io.Writer // Config.Messages, through the message queue; may be nil
	debug io.Writer // Config.Debug, through the message queue; may be nil
	obs   []observer.Observer
	id    string

	// For the end of a run in cron and CI (summary.go).
	startTime, stopTime time.Time
	last                lastMetrics
	fin                 ending
	ping                *pinger // nil without --ping
	abandoned           bool    // the user stopped the wait for the observers

	health map[observer.Observer]*health // per wrapped observer; written before the run starts
	quiet  atomic.Bool                   // the flush is over: failures are no longer reported one by one

	mu   sync.Mutex
	busy map[observer.Observer]bool // still inside a call: never call or close it again
}

func (r *run) say(format string, args ...any) {
	fmt.Fprintf(r.warn, "sacred: "+format+"\n", args...)
}

// debugf prints a line that only -d shows.
func (r *run) debugf(format string, args ...any) {
	if r.debug != nil {
		fmt.Fprintf(r.debug, "sacred: debug: "+format+"\n", args...)
	}
}

// info prints a line that -l warning silences.
func (r *run) info(format string, args ...any) {
	if r.note != nil {
		fmt.Fprintf(r.note, "sacred: "+format+"\n", args...)
	}
}

func (r *run) do() int {
	// An id given with -i is the id every observer must create.
	r.id = r.cfg.Start.ID
	r.obs = r.wrap(r.cfg.Observers)
	sort.SliceStable(r.obs, func(i, j int) bool { return r.obs[i].Priority() > r.obs[j].Priority() })
	defer r.closeAll()

	if r.cfg.Queue {
		return r.queue()
	}
	if r.cfg.Ping != "" {
		p, err := newPinger(r.cfg.Ping, r.say)
		if err != nil {
			r.say("--ping: %v", err)
			return ExitUsage
		}
		r.ping = p
	}
	return r.start()
}

// call runs one synchronous call of o with a context that ends after
// timeout. A call that has not returned callGrace after that is given up:
// o is marked busy and an error says so.
func (r *run) call(o observer.Observer, timeout time.Duration, f func(ctx context.Context) error) error {
	if r.isBusy(o) {
		return fmt.Errorf("still busy with an earlier call")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	t := time.NewTimer(timeout + callGrace)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		r.mu.Lock()
		r.busy[o] = true
		r.mu.Unlock()
		return fmt.Errorf("no answer within %s", timeout)
	}
}

func (r *run) isBusy(o observer.Observer) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.busy[o]
}

// closeAll closes every observer that is not inside a call (the contract:
// Close never runs concurrently with another call), each bounded by
// closeTimeout, all at once.
func (r *run) closeAll() {
	var wg sync.WaitGroup
	for _, o := range r.obs {
		if r.isBusy(o) {
			r.say("observer %s is still inside a call that ignores its deadline: not closed", o.Name())
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.call(o, closeTimeout, o.Close); err != nil {
				r.say("observer %s: close failed: %v", o.Name(), oneLine(err))
			}
		}()
	}
	wg.Wait()
}

func (r *run) queue() int {
	ev := *r.cfg.Start
	ev.Time = time.Now().UTC()
	ev.Host = nil
	qt := ev.Time
	ev.Meta.QueueTime = &qt
	for _, o := range r.obs {
		ev.ID = r.id
		var id string
		err := r.call(o, r.cfg.StartTimeout, func(ctx context.Context) (err error) {
			id, err = o.Queued(ctx, &ev)
			return err
		})
		if err != nil {
			r.say("observer %s could not queue the run: %v", o.Name(), oneLine(err))
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
		ev.ID = r.id
		var id string
		err := r.call(o, r.cfg.StartTimeout, func(ctx context.Context) (err error) {
			id, err = o.Started(ctx, ev)
			return err
		})
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

// outputFile asks the first observer that keeps the output in a local file
// for it, so that the output is captured straight into it and written once.
// The observer may be wrapped in decorators.
func (r *run) outputFile(mode capture.Mode) *os.File {
	if mode == capture.ModeNo {
		return nil
	}
	for _, o := range r.obs {
		owner, ok := observer.As[observer.OutputFileOwner](o)
		if !ok {
			continue
		}
		f, err := owner.OutputFile()
		if err != nil {
			r.say("observer %s: %v (capturing to a private file instead)", o.Name(), err)
			continue
		}
		if f != nil {
			return f
		}
	}
	return nil
}

// abortStart ends a run whose command could not be started.
func (r *run) abortStart(err error, code int) int {
	r.say("%v", err)
	r.failUnstarted(r.obs, "sacred: "+err.Error()+"\n")
	r.endUnstarted(code, "sacred: "+err.Error())
	return code
}

// failUnstarted records a run whose command never started as FAILED in
// the given observers, with line as its whole trace. It calls them
// directly: the per-observer drivers carry only events of a started child.
func (r *run) failUnstarted(obs []observer.Observer, line string) {
	ev := &observer.FailedEvent{StopTime: time.Now().UTC(), Trace: []string{line}}
	for _, o := range obs {
		if err := r.call(o, r.cfg.FlushTimeout, func(ctx context.Context) error { return o.Failed(ctx, ev) }); err != nil {
			r.say("observer %s: the failed start was not recorded (%v): run %s stays RUNNING there", o.Name(), oneLine(err), r.id)
		}
	}
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

func resolve(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
