package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/sacred-go/sacred/internal/readback"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout"
)

var _ readback.FileOpener = (*Reader)(nil)

// OpenSource implements readback.FileOpener: the copy in PREFIX/_sources
// that run.json names (or, for a queued run of Python Sacred, the copy in
// the run directory).
func (r *Reader) OpenSource(ctx context.Context, id, name string) (io.ReadCloser, error) {
	run, err := r.readRun(ctx, id, layout.Parts{})
	if err != nil {
		return nil, err
	}
	for _, s := range run.Experiment.Sources {
		if s.Name != name {
			continue
		}
		if s.Omitted {
			return nil, fmt.Errorf("%s: run %s: source %s: %w", r.title, id, name, readback.ErrNotStored)
		}
		if s.Path == "" { // a queued run: the copy is in the run directory
			return r.openStored(ctx, id, "source "+name, r.prefix+id+"/"+path.Base(name))
		}
		return r.openStored(ctx, id, "source "+name, r.prefix+s.Path)
	}
	return nil, fmt.Errorf("%s: run %s has no source %q: %w", r.title, id, name, observer.ErrNotFound)
}

// OpenResource implements readback.FileOpener: the copy in
// PREFIX/_resources, found by its content-addressed name.
func (r *Reader) OpenResource(ctx context.Context, id, file string) (io.ReadCloser, error) {
	run, err := r.readRun(ctx, id, layout.Parts{})
	if err != nil {
		return nil, err
	}
	for _, res := range run.Resources {
		if res.Path != file {
			continue
		}
		if res.MD5 == "" {
			return nil, fmt.Errorf("%s: run %s: resource %s: %w", r.title, id, file, readback.ErrNotStored)
		}
		key := r.prefix + layout.ResourcesDir + "/" + layout.SharedName(file, res.MD5)
		return r.openStored(ctx, id, "resource "+file, key)
	}
	return nil, fmt.Errorf("%s: run %s has no resource %q: %w", r.title, id, file, observer.ErrNotFound)
}

// openStored opens the stored copy of a source or resource. Python
// Sacred's S3 observer records the right key but uploads the copy under
// the run, the whole key again (PREFIX/<id>/PREFIX/_sources/...): that is
// where a copy missing from its key is looked for next.
func (r *Reader) openStored(ctx context.Context, id, what, key string) (io.ReadCloser, error) {
	if checkKey(key) != nil {
		return nil, fmt.Errorf("%s: run %s: %s: %q: %w", r.title, id, what, key, observer.ErrNotFound)
	}
	rc, err := r.b.Get(ctx, key)
	if errors.Is(err, ErrNotExist) {
		rc, err = r.b.Get(ctx, r.prefix+id+"/"+key)
		if errors.Is(err, ErrNotExist) {
			return nil, fmt.Errorf("%s: run %s: %s: the stored copy %s is missing: %w", r.title, id, what, key, observer.ErrNotFound)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: run %s: %s: %w", r.title, id, what, err)
	}
	return rc, nil
}

// checkKey refuses a key that climbs out of its directory: run.json is
// data, and a path in it must not lead the reader elsewhere in the bucket.
func checkKey(key string) error {
	if path.Clean("/"+key) != "/"+key {
		return errors.New("not a clean key")
	}
	return nil
}
