package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout"
)

// maxJSON caps a JSON object read back (run.json, config.json, info.json,
// metrics.json): a bigger one is no record of ours, and reading it whole
// would take the reader's memory.
const maxJSON = 1 << 30

// Reader reads runs back from PREFIX in a Bucket: ours, or those of Python
// Sacred's S3 and GCS observers (whose sources and resources keys are
// wrong, see docs/observers/s3.md; the records read all the same).
type Reader struct {
	b      Bucket
	prefix string
	title  string
}

var _ observer.Reader = (*Reader)(nil)

// NewReader returns a reader over prefix (as CleanPrefix returns it);
// title starts error messages.
func NewReader(b Bucket, prefix, title string) *Reader {
	return &Reader{b: b, prefix: prefix, title: title}
}

// Close does nothing: the bucket belongs to the caller.
func (r *Reader) Close() error { return nil }

// Runs lists the run directories under the prefix with one listing by
// delimiter (no object is read): numeric ids in numeric order first, then
// other ids (given with -i) by name. _sources, _resources and names
// starting with "." are not runs.
func (r *Reader) Runs(ctx context.Context) ([]string, error) {
	dirs, err := r.b.Dirs(ctx, r.prefix)
	if err != nil {
		return nil, fmt.Errorf("%s: listing runs: %w", r.title, err)
	}
	ids := slices.DeleteFunc(dirs, func(d string) bool {
		return d == layout.SourcesDir || d == layout.ResourcesDir || strings.HasPrefix(d, ".") || layout.CheckID(d) != nil
	})
	slices.SortFunc(ids, layout.CompareIDs)
	return ids, nil
}

// Summary reads a run from its run.json alone: everything but Config,
// Info, Metrics and Output, which are other objects. It is what a listing
// of many runs needs.
func (r *Reader) Summary(ctx context.Context, id string) (*observer.Run, error) {
	doc, err := r.runDoc(ctx, id)
	if err != nil {
		return nil, err
	}
	return layout.ReadRun(id, doc), nil
}

func (r *Reader) runDoc(ctx context.Context, id string) (map[string]any, error) {
	if err := layout.CheckID(id); err != nil {
		return nil, fmt.Errorf("%s: run %q: %w", r.title, id, observer.ErrNotFound)
	}
	v, err := r.readJSON(ctx, r.prefix+id+"/"+layout.RunFile)
	if err != nil {
		return nil, fmt.Errorf("%s: run %s: %w", r.title, id, err)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			return nil, fmt.Errorf("%s: run %s: %w", r.title, id, observer.ErrNotFound)
		}
		return nil, fmt.Errorf("%s: run %s: run.json is not an object", r.title, id)
	}
	return doc, nil
}

// Run reads one run: run.json, and config.json, info.json, metrics.json
// and cout.txt when present.
func (r *Reader) Run(ctx context.Context, id string) (*observer.Run, error) {
	run, err := r.readRun(ctx, id, layout.AllParts)
	if err != nil {
		return nil, err
	}
	run.Output, err = r.readAll(ctx, r.prefix+id+"/"+layout.CoutFile, -1)
	if err != nil && !errors.Is(err, ErrNotExist) {
		return nil, fmt.Errorf("%s: run %s: %w", r.title, id, err)
	}
	if run.Output == nil {
		run.Output = []byte{}
	}
	return run, nil
}

// readRun reads run.json and the parts asked for; a run without run.json
// is an error wrapping observer.ErrNotFound.
func (r *Reader) readRun(ctx context.Context, id string, parts layout.Parts) (*observer.Run, error) {
	doc, err := r.runDoc(ctx, id)
	if err != nil {
		return nil, err
	}
	run := layout.ReadRun(id, doc)
	read := func(name string) (any, error) { return r.readJSON(ctx, r.prefix+id+"/"+name) }
	if err := layout.ReadParts(run, parts, read); err != nil {
		return nil, fmt.Errorf("%s: run %s: %w", r.title, id, err)
	}
	return run, nil
}

// Artifact opens an artifact listed in the run's run.json.
func (r *Reader) Artifact(ctx context.Context, id, name string) (io.ReadCloser, error) {
	doc, err := r.runDoc(ctx, id)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(layout.ReadRun(id, doc).Artifacts, name) {
		return nil, fmt.Errorf("%s: run %s has no artifact %q: %w", r.title, id, name, observer.ErrNotFound)
	}
	clean, err := layout.CheckArtifactName(name)
	if err != nil {
		return nil, fmt.Errorf("%s: run %s: %w", r.title, id, err)
	}
	rc, err := r.b.Get(ctx, r.prefix+id+"/"+clean)
	if errors.Is(err, ErrNotExist) {
		return nil, fmt.Errorf("%s: run %s: artifact %q: %w", r.title, id, name, observer.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: run %s: artifact %q: %w", r.title, id, name, err)
	}
	return rc, nil
}

// Open opens a stored file by the path run.json gives it: a source
// ("_sources/...", relative to the prefix) or a resource (its full key).
func (r *Reader) Open(ctx context.Context, path string) (io.ReadCloser, error) {
	key := path
	if !strings.HasPrefix(path, r.prefix) {
		key = r.prefix + path
	}
	if strings.Contains("/"+key+"/", "/../") {
		return nil, fmt.Errorf("%s: %q: %w", r.title, path, observer.ErrNotFound)
	}
	rc, err := r.b.Get(ctx, key)
	if errors.Is(err, ErrNotExist) {
		return nil, fmt.Errorf("%s: %s: %w", r.title, path, observer.ErrNotFound)
	}
	return rc, err
}

// readJSON reads and decodes a JSON object; a missing one gives nil, nil.
func (r *Reader) readJSON(ctx context.Context, key string) (any, error) {
	data, err := r.readAll(ctx, key, maxJSON)
	if errors.Is(err, ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := layout.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key[strings.LastIndexByte(key, '/')+1:], err)
	}
	return v, nil
}

// readAll reads an object whole, at most limit bytes (-1: no limit).
func (r *Reader) readAll(ctx context.Context, key string, limit int64) ([]byte, error) {
	return readObject(ctx, r.b, key, limit)
}

// readObject reads an object of b whole, at most limit bytes (-1: no
// limit); a missing one is an error wrapping ErrNotExist.
func readObject(ctx context.Context, b Bucket, key string, limit int64) ([]byte, error) {
	rc, err := b.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var src io.Reader = rc
	if limit >= 0 {
		src = io.LimitReader(rc, limit+1)
	}
	data, err := io.ReadAll(src)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	if limit >= 0 && int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", key, limit)
	}
	return data, nil
}
