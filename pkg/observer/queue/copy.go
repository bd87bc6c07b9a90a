package queue

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// bytesOutput is a finished run's whole output as an observer.Output.
type bytesOutput struct{ *bytes.Reader }

func (b bytesOutput) Size() int64 { return b.Reader.Size() }

// CopyRun records run id of the store r reads into dst as a new run, with
// its start, config, host, metrics, output (one final heartbeat), info,
// result, resources, artifacts (their bytes read through r) and final
// status; dst chooses the id, which CopyRun returns. Sources keep their
// content when the file the run read still has its md5, else only name
// and md5 (warned about on warn). A RUNNING run is copied without an end.
// Every call into dst is bounded by callTimeout.
func CopyRun(ctx context.Context, r observer.Reader, id string, dst observer.Observer, callTimeout time.Duration, warn io.Writer) (string, error) {
	if callTimeout <= 0 {
		callTimeout = DefaultCallTimeout
	}
	call := func(op string, f func(context.Context) error) error {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		if err := f(cctx); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return nil
	}
	run, err := r.Run(ctx, id)
	if err != nil {
		return "", fmt.Errorf("read run %s: %w", id, err)
	}
	ev := &observer.StartEvent{
		Command: run.Command, Experiment: run.Experiment, Host: run.Host, Time: run.StartTime,
		Config: run.Config, Meta: run.Meta,
	}
	ev.Experiment.Sources = append([]observer.Source(nil), run.Experiment.Sources...)
	var lost []string
	for i := range ev.Experiment.Sources {
		s := &ev.Experiment.Sources[i]
		if s.Omitted {
			continue
		}
		if s.Path == "" || !sameMD5(s.Path, s.MD5) {
			s.Omitted = true
			lost = append(lost, s.Name)
		}
	}
	if len(lost) > 0 {
		fmt.Fprintf(warn, "sacred: run %s: the content of %d sources is not readable here with its md5 (%s): the copy records their names and md5 only\n", id, len(lost), lost[0])
	}
	if run.Status == observer.StatusQueued {
		qt := run.QueueTime
		ev.Meta.QueueTime = &qt
		ev.Time = qt
		var newID string
		err := call("queued", func(ctx context.Context) (err error) { newID, err = dst.Queued(ctx, ev); return err })
		return newID, err
	}
	var newID string
	if err := call("start", func(ctx context.Context) (err error) { newID, err = dst.Started(ctx, ev); return err }); err != nil {
		return "", err
	}
	info := observer.CloneMap(run.Info)
	if err := call("metrics", func(ctx context.Context) error {
		return dst.LogMetrics(ctx, &observer.MetricsEvent{Metrics: run.Metrics, Info: info})
	}); err != nil {
		return newID, err
	}
	beat := run.Heartbeat
	if beat.IsZero() {
		beat = run.StartTime
	}
	out := bytesOutput{bytes.NewReader(run.Output)}
	hb := &observer.HeartbeatEvent{Info: info, BeatTime: beat, Result: run.Result, HasResult: run.HasResult, Output: out, To: out.Size(), Final: run.Status != observer.StatusRunning}
	if err := call("heartbeat", func(ctx context.Context) error { return dst.Heartbeat(ctx, hb) }); err != nil {
		return newID, err
	}
	for i := range run.Resources {
		res := run.Resources[i]
		if _, err := os.Stat(res.Path); err != nil {
			fmt.Fprintf(warn, "sacred: run %s: resource %s is not here to copy: the copy records it without it\n", id, res.Path)
			continue
		}
		if err := call("resource "+res.Path, func(ctx context.Context) error { return dst.Resource(ctx, &res) }); err != nil {
			return newID, err
		}
	}
	if len(run.Artifacts) > 0 {
		dir, err := os.MkdirTemp("", "sacred-copy-")
		if err != nil {
			return newID, err
		}
		defer os.RemoveAll(dir)
		for i, name := range run.Artifacts {
			path, err := fetchArtifact(ctx, r, id, name, dir, i)
			if err != nil {
				return newID, err
			}
			if err := call("artifact "+name, func(ctx context.Context) error {
				return dst.Artifact(ctx, &observer.ArtifactEvent{Name: name, Path: path, OrigPath: name})
			}); err != nil {
				return newID, err
			}
		}
	}
	switch run.Status {
	case observer.StatusCompleted:
		err = call("the end", func(ctx context.Context) error {
			return dst.Completed(ctx, &observer.CompletedEvent{StopTime: run.StopTime, Result: run.Result, HasResult: run.HasResult})
		})
	case observer.StatusFailed:
		err = call("the end", func(ctx context.Context) error {
			return dst.Failed(ctx, &observer.FailedEvent{StopTime: run.StopTime, Trace: run.FailTrace})
		})
	case observer.StatusInterrupted, observer.StatusTimeout:
		err = call("the end", func(ctx context.Context) error {
			return dst.Interrupted(ctx, &observer.InterruptedEvent{StopTime: run.StopTime, Status: run.Status})
		})
	default:
		fmt.Fprintf(warn, "sacred: run %s is %s in its store: the copy has no end either\n", id, run.Status)
	}
	return newID, err
}

func fetchArtifact(ctx context.Context, r observer.Reader, id, name, dir string, i int) (string, error) {
	rc, err := r.Artifact(ctx, id, name)
	if err != nil {
		return "", fmt.Errorf("read artifact %s of run %s: %w", name, id, err)
	}
	defer rc.Close()
	path := fmt.Sprintf("%s%cartifact-%d", dir, os.PathSeparator, i)
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("read artifact %s of run %s: %w", name, id, err)
	}
	return path, nil
}

// sameMD5 tells whether the file at path has the md5 sum.
func sameMD5(path, sum string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	return sameContent(path, fi.Size(), sum)
}
