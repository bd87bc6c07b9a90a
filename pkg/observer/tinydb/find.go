package tinydb

import (
	"context"
	"fmt"
	"io"

	"github.com/sacred-go/sacred/internal/readback"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/sacredjson"
)

var (
	_ readback.Finder     = (*Reader)(nil)
	_ readback.FileOpener = (*Reader)(nil)
)

// Find implements readback.Finder: metadata.json is read once and every
// document decoded from it; the selection is evaluated in process. The
// full-output files are not read.
func (r *Reader) Find(ctx context.Context, _ *readback.Request) ([]*observer.Run, error) {
	data, ix, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	if ix.runs == nil {
		return nil, nil
	}
	runs := make([]*observer.Run, 0, len(ix.runs.docs))
	for i := range ix.runs.docs {
		if i%256 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		d := &ix.runs.docs[i]
		id := runKey(d)
		v, err := sacredjson.Unmarshal(data[d.start:d.end])
		if err != nil {
			return nil, fmt.Errorf("tinydb: run %s: %w", id, err)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("tinydb: run %s: document %s is not an object", id, d.key)
		}
		runs = append(runs, runOf(id, m))
	}
	return runs, nil
}

// OpenSource implements readback.FileOpener: the hashfs file of the
// source's md5.
func (r *Reader) OpenSource(ctx context.Context, id, name string) (io.ReadCloser, error) {
	d, err := r.document(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, s := range list(obj(d["experiment"])["sources"]) {
		a := list(s)
		if len(a) < 2 || str(a[0]) != name {
			continue
		}
		if len(a) > 2 && a[2] == nil {
			return nil, fmt.Errorf("tinydb: run %s: source %s: %w", id, name, readback.ErrNotStored)
		}
		return r.openHash(id, "source "+name, a[1:])
	}
	return nil, fmt.Errorf("tinydb: run %s has no source %q: %w", id, name, observer.ErrNotFound)
}

// OpenResource implements readback.FileOpener.
func (r *Reader) OpenResource(ctx context.Context, id, path string) (io.ReadCloser, error) {
	d, err := r.document(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, e := range list(d["resources"]) {
		a := list(e)
		if len(a) < 2 || str(a[0]) != path {
			continue
		}
		return r.openHash(id, "resource "+path, a[1:])
	}
	return nil, fmt.Errorf("tinydb: run %s has no resource %q: %w", id, path, observer.ErrNotFound)
}

// openHash opens the hashfs file of an entry's [md5, "{TinyFile}:..."].
func (r *Reader) openHash(id, what string, rest []any) (io.ReadCloser, error) {
	hash := ""
	if len(rest) > 1 {
		hash = fileID(str(rest[1]))
	}
	if hash == "" {
		hash = str(rest[0])
	}
	f, err := openHashFile(r.cfg.Abs, r.cfg.Dir, hash)
	if err != nil {
		return nil, fmt.Errorf("tinydb: run %s: %s: %w", id, what, err)
	}
	return f, nil
}
