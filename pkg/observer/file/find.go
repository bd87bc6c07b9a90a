package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/sacred-go/sacred/internal/readback"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout"
)

var (
	_ readback.Finder     = (*Reader)(nil)
	_ readback.FileOpener = (*Reader)(nil)
)

// Find implements readback.Finder. The selection is evaluated in process,
// so every run is returned; what costs is reading, so each run directory's
// run.json is the only file opened unless the selection reads the config,
// the info or the metrics. A run.json that cannot be read or parsed is an
// error naming it: a store that lost a file is not listed as if whole.
func (r *Reader) Find(ctx context.Context, req *readback.Request) ([]*observer.Run, error) {
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
		if !e.IsDir() && e.Type()&os.ModeSymlink == 0 {
			continue
		}
		ids = append(ids, name)
	}
	slices.SortFunc(ids, layout.CompareIDs)

	parts := runParts{config: req.Needs("config"), info: req.Needs("info"), metrics: req.Needs("metrics")}
	runs := make([]*observer.Run, len(ids))
	errs := make([]error, len(ids))
	// A few readers at once: the files are small and mostly in the page
	// cache, so this is about overlapping system calls with decoding.
	workers := min(4, max(1, runtime.GOMAXPROCS(0)), len(ids))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte // reused: the decoder copies what it keeps
			for i := range next {
				runs[i], errs[i] = r.readRun(ids[i], parts, &buf)
			}
		}()
	}
	for i := range ids {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := runs[:0]
	for i, run := range runs {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if run != nil {
			out = append(out, run)
		}
	}
	return out, nil
}

// runParts are the files of a run directory to read besides run.json.
type runParts struct{ config, info, metrics bool }

// readRun reads run.json and the parts asked for; a directory without
// run.json is no run (nil, nil). buf is a buffer to reuse, or nil.
func (r *Reader) readRun(id string, parts runParts, buf *[]byte) (*observer.Run, error) {
	if layout.CheckID(id) != nil {
		return nil, nil
	}
	dir := filepath.Join(r.dir, id)
	v, err := readJSONInto(filepath.Join(dir, layout.RunFile), buf)
	if errors.Is(err, syscall.ENOTDIR) { // a symbolic link to a file
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("file storage: run %s: %w", id, err)
	}
	if v == nil {
		return nil, nil
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("file storage: run %s: %s is not a JSON object", id, filepath.Join(dir, layout.RunFile))
	}
	run := layout.ReadRun(id, doc)
	for i := range run.Experiment.Sources {
		src := &run.Experiment.Sources[i]
		if src.Path != "" && !filepath.IsAbs(src.Path) {
			src.Path = filepath.Join(r.dir, filepath.FromSlash(src.Path))
		}
	}
	read := func(name string) (map[string]any, error) {
		v, err := readJSONInto(filepath.Join(dir, name), buf)
		if err != nil {
			return nil, fmt.Errorf("file storage: run %s: %w", id, err)
		}
		return obj(v), nil
	}
	if parts.config {
		if run.Config, err = read(layout.ConfigFile); err != nil {
			return nil, err
		}
	}
	if parts.info {
		if run.Info, err = read(layout.InfoFile); err != nil {
			return nil, err
		}
	}
	if parts.metrics {
		m, err := read(layout.MetricsFile)
		if err != nil {
			return nil, err
		}
		run.Metrics = layout.ReadMetrics(m)
	}
	return run, nil
}

// OpenSource implements readback.FileOpener: the copy in _sources (or, for
// a queued run, in the run directory).
func (r *Reader) OpenSource(ctx context.Context, id, name string) (io.ReadCloser, error) {
	run, err := r.readRun(id, runParts{}, nil)
	if err == nil && run == nil {
		err = fmt.Errorf("file storage: run %s: %w", id, observer.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	for _, s := range run.Experiment.Sources {
		if s.Name != name {
			continue
		}
		if s.Omitted {
			return nil, fmt.Errorf("file storage: run %s: source %s: %w", id, name, readback.ErrNotStored)
		}
		path := s.Path
		if path == "" { // a queued run: the copy is in the run directory
			path = filepath.Join(r.dir, id, filepath.Base(filepath.FromSlash(name)))
		}
		return openStored(id, "source "+name, path)
	}
	return nil, fmt.Errorf("file storage: run %s has no source %q: %w", id, name, observer.ErrNotFound)
}

// OpenResource implements readback.FileOpener: the copy in _resources,
// found by its content-addressed name.
func (r *Reader) OpenResource(ctx context.Context, id, path string) (io.ReadCloser, error) {
	run, err := r.readRun(id, runParts{}, nil)
	if err == nil && run == nil {
		err = fmt.Errorf("file storage: run %s: %w", id, observer.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	for _, res := range run.Resources {
		if res.Path != path {
			continue
		}
		if res.MD5 == "" {
			return nil, fmt.Errorf("file storage: run %s: resource %s: %w", id, path, readback.ErrNotStored)
		}
		return openStored(id, "resource "+path, filepath.Join(r.dir, layout.ResourcesDir, layout.SharedName(path, res.MD5)))
	}
	return nil, fmt.Errorf("file storage: run %s has no resource %q: %w", id, path, observer.ErrNotFound)
}

func openStored(id, what, path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if isNotExist(err) {
		return nil, fmt.Errorf("file storage: run %s: %s: the stored copy %s is missing: %w", id, what, path, observer.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("file storage: run %s: %s: %w", id, what, err)
	}
	return f, nil
}

// readJSONInto is readJSON with fewer system calls and a reusable
// buffer: open, stat, one read of the whole file, close. With thousands of
// small run.json files the system calls are most of the cost.
func readJSONInto(path string, buf *[]byte) (any, error) {
	if buf == nil {
		buf = new([]byte)
	}
	f, err := os.Open(path)
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	n := int(fi.Size())
	if cap(*buf) < n {
		*buf = make([]byte, n+n/4)
	}
	data := (*buf)[:n]
	if _, err := io.ReadFull(f, data); err != nil {
		// Changed while being read (not how stores write: they replace
		// files whole): read it the plain way.
		return readJSON(path)
	}
	v, err := layout.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}
