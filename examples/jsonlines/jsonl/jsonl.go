// Package jsonl is a small sink observer, the example of
// docs/writing-an-observer.md: `--jsonl FILE` appends every event of a run
// to FILE as one JSON object per line, e.g.
//
//	{"event":"started","run_id":"7","time":"2026-01-02T03:04:05Z","command":"python3 train.py","config":{"lr":0.1,"seed":42}}
//	{"event":"metric","run_id":"7","name":"loss","step":0,"value":0.5,"time":"..."}
//	{"event":"completed","run_id":"7","time":"...","result":0.9}
//
// It is a sink: it cannot be read back (Kind.Open is nil) and it does not
// choose run ids, so the run id is the one another observer chose (-F,
// -m, -s), or empty when it is the only observer.
package jsonl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Kind declares the observer to sacred: `--jsonl FILE`, the sacred.yaml
// key `jsonl`, the variable SACRED_JSONL, its line in --help.
var Kind = observer.Kind{
	Option: "jsonl",
	Arg:    "FILE",
	Title:  "JSON lines",
	Usage:  "append every event of the run to FILE, one JSON object per line",
	Parse:  func(value string) (any, error) { return ParseConfig(value) },
	New: func(_ context.Context, cfg any, _ observer.Settings) (observer.Observer, error) {
		return New(cfg.(Config))
	},
}

// Config is a parsed --jsonl value.
type Config struct {
	// Path is the file, made absolute when the value was parsed.
	Path string
}

// ParseConfig checks a --jsonl value without touching the file: it must
// name a file, not a directory.
func ParseConfig(value string) (Config, error) {
	if strings.TrimSpace(value) == "" {
		return Config{}, errors.New("jsonl: the file name is empty (use --jsonl FILE)")
	}
	abs, err := filepath.Abs(value)
	if err != nil {
		return Config{}, fmt.Errorf("jsonl: %w", err)
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		return Config{}, fmt.Errorf("jsonl: %s is a directory; give a file", value)
	}
	return Config{Path: abs}, nil
}

// Observer writes the events of one run.
type Observer struct {
	observer.Base // no-op defaults and priority 0: the stores go first and choose the id

	// The runner calls an observer from one goroutine at a time: no lock.
	path string
	f    *os.File
	id   string
}

// New opens (creates) the file for appending.
func New(cfg Config) (*Observer, error) {
	f, err := os.OpenFile(cfg.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("jsonl: %w", err)
	}
	return &Observer{path: cfg.Path, f: f}, nil
}

// Name identifies the observer in messages.
func (o *Observer) Name() string { return "jsonl " + o.path }

// write appends one event as one line, in one write: with O_APPEND, lines
// of runs writing to the same file at once do not mix.
func (o *Observer) write(ctx context.Context, event string, fields map[string]any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	rec := map[string]any{"event": event, "run_id": o.id}
	for k, v := range fields {
		rec[k] = v
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("jsonl: %s event: %w", event, err)
	}
	if _, err := o.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("jsonl: %w", err)
	}
	return nil
}

func (o *Observer) start(ctx context.Context, event string, ev *observer.StartEvent) (string, error) {
	o.id = ev.ID // a sink keeps the id it was given, even an empty one
	return ev.ID, o.write(ctx, event, map[string]any{
		"time": ev.Time, "command": ev.Command, "experiment": ev.Experiment.Name, "config": ev.Config,
	})
}

// Queued and Started record the run's start.
func (o *Observer) Queued(ctx context.Context, ev *observer.StartEvent) (string, error) {
	return o.start(ctx, "queued", ev)
}
func (o *Observer) Started(ctx context.Context, ev *observer.StartEvent) (string, error) {
	return o.start(ctx, "started", ev)
}

// LogMetrics writes one line per point.
func (o *Observer) LogMetrics(ctx context.Context, ev *observer.MetricsEvent) error {
	for _, s := range ev.Metrics {
		for _, p := range s.Points {
			if err := o.write(ctx, "metric", map[string]any{"name": s.Name, "step": p.Step, "value": p.Value, "time": p.Time}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Heartbeat writes the output new since the last beat (the range
// [From, To) is trusted: see observer.Observer) and the info dict.
func (o *Observer) Heartbeat(ctx context.Context, ev *observer.HeartbeatEvent) error {
	out, err := io.ReadAll(ev.NewOutput())
	if err != nil {
		return fmt.Errorf("jsonl: read output: %w", err)
	}
	fields := map[string]any{"time": ev.BeatTime, "output": string(out), "info": ev.Info, "final": ev.Final}
	if ev.HasResult {
		fields["result"] = ev.Result
	}
	return o.write(ctx, "heartbeat", fields)
}

// Artifact and Resource name the files; a sink keeps no copy.
func (o *Observer) Artifact(ctx context.Context, ev *observer.ArtifactEvent) error {
	return o.write(ctx, "artifact", map[string]any{"name": ev.Name, "path": ev.OrigPath})
}
func (o *Observer) Resource(ctx context.Context, ev *observer.ResourceEvent) error {
	return o.write(ctx, "resource", map[string]any{"path": ev.Path, "md5": ev.MD5})
}

// Completed, Interrupted and Failed record the end.
func (o *Observer) Completed(ctx context.Context, ev *observer.CompletedEvent) error {
	fields := map[string]any{"time": ev.StopTime}
	if ev.HasResult {
		fields["result"] = ev.Result
	}
	return o.write(ctx, "completed", fields)
}
func (o *Observer) Interrupted(ctx context.Context, ev *observer.InterruptedEvent) error {
	return o.write(ctx, strings.ToLower(ev.Status), map[string]any{"time": ev.StopTime})
}
func (o *Observer) Failed(ctx context.Context, ev *observer.FailedEvent) error {
	return o.write(ctx, "failed", map[string]any{"time": ev.StopTime, "trace": strings.Join(ev.Trace, "")})
}

// Close closes the file.
func (o *Observer) Close(context.Context) error { return o.f.Close() }

var _ observer.Observer = (*Observer)(nil)
