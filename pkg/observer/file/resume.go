package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout"
)

var _ observer.Resumer = (*Observer)(nil)

// Resume takes up run ev.ID of the directory (observer.Resumer): run.json
// is read back as the record to go on with, config.json and info.json as
// last written, metrics.json is read again before its next write, and
// cout.txt is opened for the next beats to write their ranges at their
// offsets (its size is the output stored so far).
func (o *Observer) Resume(ctx context.Context, ev *observer.StartEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.runDir != "" {
		return fmt.Errorf("file storage: run %s was already started", o.id)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file storage: %w", err)
	}
	if err := layout.CheckID(ev.ID); err != nil {
		return fmt.Errorf("file storage: run %q: %w", ev.ID, observer.ErrNotFound)
	}
	dir := filepath.Join(o.cfg.Abs, ev.ID)
	v, err := readJSON(filepath.Join(dir, layout.RunFile))
	if err != nil {
		return fmt.Errorf("file storage: run %s: %w", ev.ID, err)
	}
	if v == nil {
		return fmt.Errorf("file storage: no run %s in %s: %w", ev.ID, o.cfg.BaseDir, observer.ErrNotFound)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("file storage: run %s: %s is not a JSON object", ev.ID, layout.RunFile)
	}
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("file storage: run %s: %w", ev.ID, err)
		}
		return b, nil
	}
	if o.configJSON, err = read(layout.ConfigFile); err != nil {
		return err
	}
	if o.infoJSON, err = read(layout.InfoFile); err != nil {
		return err
	}
	o.id, o.runDir, o.run = ev.ID, dir, layout.Run(doc)
	o.metrics = newMetricsFile(filepath.Join(dir, layout.MetricsFile))
	o.metrics.m.Abort() // its layout is unknown: read it before the next write
	if o.run.Status() == observer.StatusQueued {
		return nil // no output yet, as after Queued
	}
	if err := o.openCout(); err != nil {
		o.runDir, o.run = "", nil
		return err
	}
	fi, err := o.cout.Stat()
	if err != nil {
		o.cout.Close()
		o.cout, o.runDir, o.run = nil, "", nil
		return fmt.Errorf("file storage: run %s: %w", ev.ID, err)
	}
	// The output stored so far counts as stored; it also keeps the runner
	// from capturing into a file that is not empty (OutputFile).
	o.lost.outStored, o.lost.outWant = fi.Size(), fi.Size()
	return nil
}
