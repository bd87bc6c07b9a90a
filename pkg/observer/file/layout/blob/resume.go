package blob

import (
	"context"
	"errors"
	"fmt"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout"
)

var _ observer.Resumer = (*Observer)(nil)

// Resume takes up run ev.ID under the prefix (observer.Resumer), as file
// storage takes up a run directory: run.json is read back as the record
// to go on with, info.json as last stored, metrics.json is read from the
// bucket again before its next write, and the size of cout.txt is the
// output stored so far. The next beat sends the output from that size on
// (appended on the server side where the store can): a range the object
// holds already is not sent again, and lands at its place. A queued run
// has no output yet, as after Queued.
//
// Resume writes nothing; when it fails, nothing is kept and it may be
// called again.
func (o *Observer) Resume(ctx context.Context, ev *observer.StartEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.run != nil {
		return fmt.Errorf("%s: run %s was already started", o.cfg.Title, o.id)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", o.cfg.Title, err)
	}
	id := ev.ID
	if err := layout.CheckID(id); err != nil {
		return fmt.Errorf("%s: run %q: %w", o.cfg.Title, id, observer.ErrNotFound)
	}
	runPrefix := o.cfg.Prefix + id + "/"
	r := NewReader(o.cfg.Bucket, o.cfg.Prefix, o.cfg.Title)
	v, err := r.readJSON(ctx, runPrefix+layout.RunFile)
	if err != nil {
		return fmt.Errorf("%s: run %s: %w", o.cfg.Title, id, err)
	}
	if v == nil {
		return fmt.Errorf("%s: no run %s in %s: %w", o.cfg.Title, id, o.cfg.Name, observer.ErrNotFound)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: run %s: %s is not a JSON object", o.cfg.Title, id, layout.RunFile)
	}
	info, err := readObject(ctx, o.cfg.Bucket, runPrefix+layout.InfoFile, maxJSON)
	if errors.Is(err, ErrNotExist) {
		info, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("%s: run %s: %w", o.cfg.Title, id, err)
	}
	run := layout.Run(doc)
	queued := run.Status() == observer.StatusQueued
	var cout int64
	if !queued {
		cout, err = o.cfg.Bucket.Size(ctx, runPrefix+layout.CoutFile)
		if errors.Is(err, ErrNotExist) {
			cout, err = 0, nil // lost between run.json and cout.txt
		}
		if err != nil {
			return fmt.Errorf("%s: run %s: %w", o.cfg.Title, id, err) // the bucket's errors name the key
		}
	}
	o.id, o.runPrefix, o.run, o.infoJSON = id, runPrefix, run, info
	o.metrics = &metricsBlob{key: runPrefix + layout.MetricsFile, m: layout.NewMetrics(), tempDir: o.cfg.TempDir, inBucket: true}
	o.metrics.m.Abort() // its layout is unknown: read it before the next write
	o.coutResumed, o.coutSize = !queued, cout
	return nil
}
