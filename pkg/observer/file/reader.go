package file

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout"
)

// Reader reads runs from a file-storage directory, ours or one written by
// Python Sacred.
type Reader struct {
	dir string
}

var _ observer.Reader = (*Reader)(nil)

// Open returns a reader over the directory of a parsed -F value. A missing
// directory is an error wrapping observer.ErrNotFound.
func Open(_ context.Context, cfg Config, _ observer.Settings) (*Reader, error) {
	dir := cfg.Abs
	if dir == "" {
		return nil, fmt.Errorf("file storage: no directory (use ParseConfig)")
	}
	fi, err := os.Stat(dir)
	if isNotExist(err) {
		return nil, fmt.Errorf("file storage: %s: %w", dir, observer.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("file storage: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("file storage: %s is not a directory", dir)
	}
	return &Reader{dir: dir}, nil
}

// Close does nothing.
func (r *Reader) Close() error { return nil }

// Runs lists the directories that hold a run.json: numeric ids in numeric
// order first (Sacred's ids count up, so that is oldest first), then other
// ids (given with -i) by name.
func (r *Reader) Runs(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, fmt.Errorf("file storage: listing runs: %w", err)
	}
	var ids []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || name == layout.SourcesDir || name == layout.ResourcesDir {
			continue
		}
		if fi, err := os.Stat(filepath.Join(r.dir, name, layout.RunFile)); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		ids = append(ids, name)
	}
	slices.SortFunc(ids, layout.CompareIDs)
	return ids, ctx.Err()
}

// readJSON reads and decodes a JSON file; a missing file gives nil, nil.
func readJSON(path string) (any, error) {
	data, err := os.ReadFile(path)
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := layout.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// Run reads one run. Only run.json is required; config.json, info.json,
// metrics.json and cout.txt are read when present.
func (r *Reader) Run(ctx context.Context, id string) (*observer.Run, error) {
	run, err := r.mustReadRun(ctx, id, layout.AllParts)
	if err != nil {
		return nil, err
	}
	run.Output, err = os.ReadFile(filepath.Join(r.dir, id, layout.CoutFile))
	if err != nil && !isNotExist(err) {
		return nil, fmt.Errorf("file storage: run %s: %w", id, err)
	}
	if run.Output == nil {
		run.Output = []byte{}
	}
	return run, nil
}

// mustReadRun is readRun for a run that must exist.
func (r *Reader) mustReadRun(ctx context.Context, id string, parts layout.Parts) (*observer.Run, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	run, err := r.readRun(id, parts, nil)
	if err == nil && run == nil {
		err = fmt.Errorf("file storage: run %s: %w", id, observer.ErrNotFound)
	}
	return run, err
}

// Artifact opens an artifact listed in the run's run.json.
func (r *Reader) Artifact(ctx context.Context, id, name string) (io.ReadCloser, error) {
	run, err := r.mustReadRun(ctx, id, layout.Parts{})
	if err != nil {
		return nil, err
	}
	if !slices.Contains(run.Artifacts, name) {
		return nil, fmt.Errorf("file storage: run %s has no artifact %q: %w", id, name, observer.ErrNotFound)
	}
	path, err := artifactPath(filepath.Join(r.dir, id), name)
	if err != nil {
		return nil, fmt.Errorf("file storage: run %s: %w", id, err)
	}
	f, err := os.Open(path)
	if isNotExist(err) {
		return nil, fmt.Errorf("file storage: run %s: artifact %q: %w", id, name, observer.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("file storage: run %s: %w", id, err)
	}
	return f, nil
}
