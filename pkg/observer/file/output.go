package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout"
	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// openCout creates the empty cout.txt and keeps it open for writing at
// offsets (not O_APPEND: a heartbeat writes its range where it belongs, so
// a range sent again after a failure lands on itself).
func (o *Observer) openCout() error {
	path := filepath.Join(o.runDir, layout.CoutFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("file storage: run %s: %w", o.id, err)
	}
	o.cout = f
	return nil
}

// OutputFile hands the runner a descriptor of the still empty cout.txt to
// capture into (observer.OutputFileOwner); from then on beats only check
// that the output reached it.
func (o *Observer) OutputFile() (*os.File, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.run == nil || o.cout == nil || o.coutOwned || o.lost.outWant != 0 {
		return nil, nil
	}
	f, err := os.OpenFile(o.cout.Name(), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("file storage: run %s: %w", o.id, err)
	}
	o.coutOwned = true
	return f, nil
}

// LogMetrics adds the new points to metrics.json, which exists (maybe as
// {}) from the first beat on.
func (o *Observer) LogMetrics(_ context.Context, ev *observer.MetricsEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready("log_metrics"); err != nil {
		return err
	}
	points := 0
	for _, s := range ev.Metrics {
		points += len(s.Points)
	}
	o.metrics.add(ev)
	if err := o.metrics.flush(); err != nil {
		o.lost.points = points
		return o.lost.note(fmt.Errorf("file storage: run %s: %d metric points not stored: %w", o.id, points, err))
	}
	o.lost.points = 0
	return nil
}

// Heartbeat writes the beat's output range to cout.txt, rewrites run.json
// (heartbeat, result) and writes info.json when info is not empty.
func (o *Observer) Heartbeat(_ context.Context, ev *observer.HeartbeatEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready("heartbeat"); err != nil {
		return err
	}
	errOut := o.writeOutput(ev)
	o.run.Beat(ev)
	errRun := o.writeRun(false)
	var errInfo error
	if len(ev.Info) > 0 {
		errInfo = o.writeInfo(ev.Info)
	}
	return o.lost.note(errors.Join(errOut, errRun, errInfo))
}

// writeOutput stores the beat's range [From, To) at its place in cout.txt:
// From is where the last successful beat ended (the contract), so a range
// sent again after a failure overwrites what part of it was written. When
// the runner captures into cout.txt itself, the bytes are normally there
// already; if the capture could not write them (a full disk), they are
// written here from the beat's output, or reported as missing.
func (o *Observer) writeOutput(ev *observer.HeartbeatEvent) error {
	if ev.Output == nil || o.cout == nil {
		return nil
	}
	o.lost.outWant = max(o.lost.outWant, ev.To)
	from := ev.From
	if o.coutOwned {
		fi, err := o.cout.Stat()
		if err != nil {
			return fmt.Errorf("file storage: run %s: checking %s: %w", o.id, layout.CoutFile, err)
		}
		if fi.Size() >= ev.To {
			o.lost.outStored = max(o.lost.outStored, ev.To)
			return nil
		}
		// The capture stopped writing at the file's end.
		from = fi.Size()
	}
	if ev.To <= from {
		o.lost.outStored = max(o.lost.outStored, ev.To)
		return nil
	}
	n, err := io.Copy(&offsetWriter{f: o.cout, off: from}, io.NewSectionReader(ev.Output, from, ev.To-from))
	if err != nil {
		o.lost.outStored = from + n
		return fmt.Errorf("file storage: run %s: output bytes %d to %d not stored in %s: %w",
			o.id, from+n, ev.To, layout.CoutFile, err)
	}
	o.lost.outStored = ev.To
	return nil
}

// offsetWriter writes sequentially from off with WriteAt.
type offsetWriter struct {
	f   *os.File
	off int64
}

func (w *offsetWriter) Write(p []byte) (int, error) {
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	return n, err
}

// writeInfo writes info.json when it changed.
func (o *Observer) writeInfo(info map[string]any) error {
	data, err := sacredjson.Marshal(info)
	if err != nil {
		o.lost.info = true
		return fmt.Errorf("file storage: run %s: encoding %s: %w", o.id, layout.InfoFile, err)
	}
	if string(data) == string(o.infoJSON) {
		return nil
	}
	path := filepath.Join(o.runDir, layout.InfoFile)
	if err := writeFileAtomic(path, data); err != nil {
		o.lost.info = true
		return fmt.Errorf("file storage: run %s: writing %s: %w", o.id, path, err)
	}
	o.infoJSON = data
	o.lost.info = false
	return nil
}
