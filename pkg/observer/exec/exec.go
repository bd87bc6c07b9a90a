// Package exec is the observer that hands a run's events to a program in
// any language (`--observer-exec CMD`): a long-lived process started with
// the run reads each event as one JSON line (schema sacred.event/v1,
// package eventjson) on its stdin and answers each with one JSON line on
// its stdout: {"ok": true}, or {"ok": false, "error": "..."}; the answer
// to queued or started may carry "id" to choose the run's id.
//
// A process that dies, hangs or answers something else gives a clear
// error and never holds the run past the call's deadline; it is stopped
// at Close. See docs/observers/exec.md.
package exec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/eventjson"
)

// Option is Sacred-style option name: the flag is --observer-exec (also
// --observer_exec), the sacred.yaml key observer-exec, the variable
// SACRED_OBSERVER_EXEC.
const Option = "observer_exec"

// FlagPriority is the kind's flag: the observer's priority (default 0,
// as a custom observer of Sacred's); the first observer by priority that
// is handed no id chooses it.
const FlagPriority = "observer-exec-priority"

// callBound bounds a call whose context has no deadline, as the retry
// decorator's call timeout would: a process that hangs must not hold a
// run for ever.
const callBound = 30 * time.Second

// closeGrace bounds how long Close waits for the process to exit after
// its input is closed, when the context gives no deadline.
const closeGrace = 5 * time.Second

func init() {
	observer.Register(observer.Kind{
		Option: Option,
		Arg:    "CMD",
		Title:  "exec observer",
		Usage:  "hand every event to the long-lived command CMD (run by the shell) as a JSON line on its stdin; it answers each with a JSON line",
		Parse:  func(value string) (any, error) { return ParseConfig(value) },
		New: func(ctx context.Context, cfg any, s observer.Settings) (observer.Observer, error) {
			return New(ctx, cfg.(Config), s)
		},
		Flags: []observer.Flag{{
			Name:    FlagPriority,
			Arg:     "N",
			Usage:   "priority of the --observer-exec observer (higher goes first and may choose the run id)",
			Default: "0",
		}},
	})
}

// Config is a parsed --observer-exec value.
type Config struct {
	// Command is the command line, run by /bin/sh -c (cmd /C on
	// Windows).
	Command string
}

// ParseConfig checks a command line: not empty, no NUL byte.
func ParseConfig(value string) (Config, error) {
	if strings.TrimSpace(value) == "" {
		return Config{}, errors.New("observer-exec: the command is empty (use --observer-exec 'python3 my_observer.py')")
	}
	if strings.ContainsRune(value, 0) {
		return Config{}, errors.New("observer-exec: the command contains a NUL byte")
	}
	return Config{Command: value}, nil
}

// Observer hands the events of one run to its process.
type Observer struct {
	observer.Base
	cmdline  string
	priority int
	proc     *process
	seq      int64
	id       string
	now      func() time.Time
}

// New starts the process, so that a command that cannot start is
// reported before the run does.
func New(_ context.Context, cfg Config, s observer.Settings) (*Observer, error) {
	prio := 0
	if v := s.Flag(FlagPriority); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("observer-exec: --%s %q: want a whole number", FlagPriority, v)
		}
		prio = p
	}
	p, err := start(cfg.Command, s.Warner())
	if err != nil {
		return nil, err
	}
	return &Observer{cmdline: cfg.Command, priority: prio, proc: p, now: func() time.Time { return time.Now().UTC() }}, nil
}

// Name is "observer-exec" and the command's first word.
func (o *Observer) Name() string {
	f := strings.Fields(o.cmdline)
	if len(f) > 3 {
		f = append(f[:3], "…")
	}
	return "observer-exec " + strings.Join(f, " ")
}

// Priority is --observer-exec-priority, 0 by default.
func (o *Observer) Priority() int { return o.priority }

// answer is one line the process writes.
type answer struct {
	OK    *bool           `json:"ok"`
	Error string          `json:"error"`
	ID    json.RawMessage `json:"id"`
}

// call sends doc and reads its answer.
func (o *Observer) call(ctx context.Context, doc *eventjson.Document) (*answer, error) {
	line, err := eventjson.Encode(doc)
	if err != nil {
		return nil, fmt.Errorf("observer-exec: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, callBound)
		defer cancel()
	}
	raw, err := o.proc.exchange(ctx, doc.Event, line)
	if err != nil {
		return nil, err
	}
	var a answer
	if json.Unmarshal(raw, &a) != nil || a.OK == nil {
		return nil, fmt.Errorf(`observer-exec: the observer process answered the %s event with %s, which is neither {"ok": true} nor {"ok": false, "error": "..."} (it must print exactly one JSON line per event on stdout; use stderr for messages)`, doc.Event, quoteCut(string(raw), 200))
	}
	if !*a.OK {
		msg := a.Error
		if msg == "" {
			msg = "no reason given"
		}
		return nil, fmt.Errorf("observer-exec: the observer process refused the %s event: %s", doc.Event, cut(msg, 500))
	}
	return &a, nil
}

// start sends queued or started and takes the id the answer chooses.
func (o *Observer) start(ctx context.Context, event string, ev *observer.StartEvent) (string, error) {
	o.id = ev.ID
	o.seq++
	a, err := o.call(ctx, eventjson.Start(event, o.seq, ev))
	if err != nil {
		return "", err
	}
	id, err := answerID(a.ID)
	if err != nil {
		return "", fmt.Errorf("observer-exec: the answer to the %s event: %w", event, err)
	}
	switch {
	case id == "":
	case ev.ID == "":
		o.id = id
	case id != ev.ID:
		return "", fmt.Errorf("observer-exec: the observer process chose run id %q, but the run already has id %q (from -i or an observer of higher priority): answer without \"id\", or with the run_id it was given", id, ev.ID)
	}
	return o.id, nil
}

// answerID reads "id": absent or null, a text, or a whole number.
func answerID(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if strings.TrimSpace(s) == "" || strings.ContainsAny(s, "/\\\x00\n") {
			return "", fmt.Errorf("id %q is not usable as a run id (empty, or with / \\ or a line break)", s)
		}
		return s, nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		if i, err := n.Int64(); err == nil && i >= 0 {
			return strconv.FormatInt(i, 10), nil
		}
	}
	return "", fmt.Errorf("id must be a text or a whole number, not %s", quoteCut(string(raw), 100))
}

// Queued hands over the queued event; the answer may choose the id.
func (o *Observer) Queued(ctx context.Context, ev *observer.StartEvent) (string, error) {
	return o.start(ctx, eventjson.Queued, ev)
}

// Started hands over the started event; the answer may choose the id.
func (o *Observer) Started(ctx context.Context, ev *observer.StartEvent) (string, error) {
	return o.start(ctx, eventjson.Started, ev)
}

// LogMetrics hands over the new metric points.
func (o *Observer) LogMetrics(ctx context.Context, ev *observer.MetricsEvent) error {
	o.seq++
	_, err := o.call(ctx, eventjson.Metrics(o.seq, o.id, ev, o.now()))
	return err
}

// Heartbeat hands over the beat with the output new since the last one.
func (o *Observer) Heartbeat(ctx context.Context, ev *observer.HeartbeatEvent) error {
	text, err := io.ReadAll(ev.NewOutput())
	if err != nil {
		return fmt.Errorf("observer-exec: reading the run's output: %w", err)
	}
	o.seq++
	_, err = o.call(ctx, eventjson.Beat(o.seq, o.id, ev, text))
	return err
}

// Resource hands over a resource.
func (o *Observer) Resource(ctx context.Context, ev *observer.ResourceEvent) error {
	o.seq++
	_, err := o.call(ctx, eventjson.ResourceDoc(o.seq, o.id, ev, o.now()))
	return err
}

// Artifact hands over an artifact; its path is readable until the run
// ends.
func (o *Observer) Artifact(ctx context.Context, ev *observer.ArtifactEvent) error {
	o.seq++
	_, err := o.call(ctx, eventjson.ArtifactDoc(o.seq, o.id, ev, o.now()))
	return err
}

// Completed hands over the completed event.
func (o *Observer) Completed(ctx context.Context, ev *observer.CompletedEvent) error {
	o.seq++
	_, err := o.call(ctx, eventjson.CompletedDoc(o.seq, o.id, ev))
	return err
}

// Interrupted hands over the interrupted (or timeout) event.
func (o *Observer) Interrupted(ctx context.Context, ev *observer.InterruptedEvent) error {
	o.seq++
	_, err := o.call(ctx, eventjson.InterruptedDoc(o.seq, o.id, ev))
	return err
}

// Failed hands over the failed event.
func (o *Observer) Failed(ctx context.Context, ev *observer.FailedEvent) error {
	o.seq++
	_, err := o.call(ctx, eventjson.FailedDoc(o.seq, o.id, ev))
	return err
}

// Close closes the process's stdin, which tells it the run is over, and
// waits for it to exit: until ctx's deadline (5s without one), then it is
// killed.
func (o *Observer) Close(ctx context.Context) error {
	return o.proc.stop(ctx)
}

// quoteCut quotes s, cut to max bytes.
func quoteCut(s string, max int) string {
	return strconv.Quote(cut(s, max))
}

func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i] + "…"
}

// envWithoutSacred is the environment without SACRED_* variables: they
// are the wrapper's settings and may hold secrets.
func envWithoutSacred(env []string) []string {
	out := make([]string, 0, len(env))
	for _, e := range env {
		if !strings.HasPrefix(e, "SACRED_") {
			out = append(out, e)
		}
	}
	return out
}
