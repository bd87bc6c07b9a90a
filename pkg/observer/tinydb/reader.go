package tinydb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// Reader reads runs from a TinyDB store, ours or one Python Sacred wrote.
// It never writes to the store and takes no lock: writers replace
// metadata.json atomically, so a read sees one whole version of it.
type Reader struct {
	cfg Config

	mu   sync.Mutex
	fi   os.FileInfo // the version of metadata.json data and ix describe
	data []byte
	ix   *index
}

var _ observer.Reader = (*Reader)(nil)

// Open returns a reader over the store cfg names. A missing directory is an
// error wrapping observer.ErrNotFound (Sacred's reader raises IOError); a
// directory without metadata.json is an empty store.
func Open(_ context.Context, cfg Config, _ observer.Settings) (*Reader, error) {
	fi, err := os.Stat(cfg.Abs)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tinydb: store %s does not exist: %w", cfg.Dir, observer.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("tinydb: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("tinydb: %s is not a directory", cfg.Dir)
	}
	return &Reader{cfg: cfg}, nil
}

// Close does nothing.
func (r *Reader) Close() error { return nil }

// load returns the current metadata.json and its index, read again only
// when the file changed.
func (r *Reader) load(ctx context.Context) ([]byte, *index, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	display := filepath.Join(r.cfg.Dir, MetadataFile)
	f, err := os.Open(filepath.Join(r.cfg.Abs, MetadataFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, &index{blank: true}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("tinydb: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("tinydb: %w", err)
	}
	if r.fi != nil && os.SameFile(r.fi, fi) && r.fi.Size() == fi.Size() && r.fi.ModTime().Equal(fi.ModTime()) {
		return r.data, r.ix, nil
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("tinydb: %s is not a regular file", display)
	}
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, nil, fmt.Errorf("tinydb: reading %s: %w", display, err)
	}
	ix, err := scanIndex(data)
	if err != nil {
		return nil, nil, fmt.Errorf("tinydb: %w", &CorruptError{Path: display, Err: err})
	}
	r.fi, r.data, r.ix = fi, data, ix
	return data, ix, nil
}

// runKey is how a document is named: its "_id", or its doc id when it
// has none.
func runKey(d *docEntry) string {
	if d.hasRunID {
		return d.runID
	}
	return d.key
}

// Runs lists the run ids in the order of the "runs" table (insertion
// order: oldest first).
func (r *Reader) Runs(ctx context.Context) ([]string, error) {
	_, ix, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	if ix.runs == nil {
		return nil, nil
	}
	ids := make([]string, len(ix.runs.docs))
	for i := range ix.runs.docs {
		ids[i] = runKey(&ix.runs.docs[i])
	}
	return ids, nil
}

// document decodes the document of run id.
func (r *Reader) document(ctx context.Context, id string) (map[string]any, error) {
	data, ix, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	if ix.runs != nil {
		for i := range ix.runs.docs {
			d := &ix.runs.docs[i]
			if runKey(d) != id {
				continue
			}
			v, err := sacredjson.Unmarshal(data[d.start:d.end])
			if err != nil {
				return nil, fmt.Errorf("tinydb: run %s: %w", id, err)
			}
			m, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("tinydb: run %s: document %s is not an object", id, d.key)
			}
			return m, nil
		}
	}
	return nil, fmt.Errorf("tinydb: no run %q in %s: %w", id, filepath.Join(r.cfg.Dir, MetadataFile), observer.ErrNotFound)
}

// Run reads one run. The output is captured_out, or the full output file
// when captured_out was cut or is not the output's exact bytes.
func (r *Reader) Run(ctx context.Context, id string) (*observer.Run, error) {
	d, err := r.document(ctx, id)
	if err != nil {
		return nil, err
	}
	run := runOf(id, d)
	if rel := str(d["captured_out_file"]); rel != "" {
		if run.Output, err = r.outputFile(id, rel); err != nil {
			return nil, err
		}
	} else {
		run.Output = []byte(str(d["captured_out"]))
	}
	return run, nil
}

// runOf reads a run's document, all of it but the output.
func runOf(id string, d map[string]any) *observer.Run {
	run := &observer.Run{
		ID:        id,
		Status:    str(d["status"]),
		Command:   str(d["command"]),
		FailTrace: strs(d["fail_trace"]),
		Config:    obj(d["config"]),
		Info:      obj(d["info"]),
	}
	run.Result, run.HasResult = d["result"]
	run.Experiment = readExperiment(obj(d["experiment"]))
	if h, ok := d["host"].(map[string]any); ok && len(h) > 0 {
		run.Host = readHost(h)
	}
	run.Meta = readMeta(obj(d["meta"]))
	if run.Meta.QueueTime != nil {
		run.QueueTime = *run.Meta.QueueTime
	}
	run.StartTime = timeOf(d["start_time"])
	run.Heartbeat = timeOf(d["heartbeat"])
	run.StopTime = timeOf(d["stop_time"])
	for _, e := range list(d["artifacts"]) {
		if a := list(e); len(a) > 0 {
			run.Artifacts = append(run.Artifacts, str(a[0]))
		}
	}
	for _, e := range list(d["resources"]) {
		a := list(e)
		if len(a) == 0 {
			continue
		}
		res := observer.ResourceEvent{Path: str(a[0])}
		if len(a) > 1 && isMD5(str(a[1])) {
			res.MD5 = str(a[1])
		}
		run.Resources = append(run.Resources, res)
	}
	run.Metrics = readMetrics(obj(d["metrics"]))
	return run
}

// outputFile reads the full output of a run, a path relative to the store
// that must stay inside OutputDir.
func (r *Reader) outputFile(id, rel string) ([]byte, error) {
	clean := filepath.Clean(filepath.FromSlash(rel))
	if filepath.IsAbs(clean) || filepath.Dir(clean) != OutputDir {
		return nil, fmt.Errorf("tinydb: run %s: captured_out_file %q is not a file in %s/", id, rel, OutputDir)
	}
	b, err := os.ReadFile(filepath.Join(r.cfg.Abs, clean))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tinydb: run %s: the full output %s is missing from the store: %w", id, filepath.Join(r.cfg.Dir, clean), err)
	}
	if err != nil {
		return nil, fmt.Errorf("tinydb: run %s: %w", id, err)
	}
	return b, nil
}

// Artifact opens the hashfs file of the artifact name of run id (the
// last one of that name, when it was stored more than once).
func (r *Reader) Artifact(ctx context.Context, id, name string) (io.ReadCloser, error) {
	d, err := r.document(ctx, id)
	if err != nil {
		return nil, err
	}
	arts := list(d["artifacts"])
	for i := len(arts) - 1; i >= 0; i-- {
		a := list(arts[i])
		if len(a) == 0 || str(a[0]) != name {
			continue
		}
		var hash string
		if len(a) > 3 {
			hash = fileID(str(a[3]))
		}
		if hash == "" && len(a) > 2 {
			hash = str(a[2])
		}
		f, err := openHashFile(r.cfg.Abs, r.cfg.Dir, hash)
		if err != nil {
			return nil, fmt.Errorf("tinydb: run %s: artifact %q: %w", id, name, err)
		}
		return f, nil
	}
	return nil, fmt.Errorf("tinydb: run %s has no artifact %q: %w", id, name, observer.ErrNotFound)
}

func readExperiment(e map[string]any) observer.Experiment {
	ex := observer.Experiment{
		Name:         str(e["name"]),
		BaseDir:      str(e["base_dir"]),
		MainFile:     str(e["mainfile"]),
		Dependencies: strs(e["dependencies"]),
	}
	for _, s := range list(e["sources"]) {
		a := list(s)
		if len(a) < 2 {
			continue
		}
		src := observer.Source{Name: str(a[0]), MD5: str(a[1])}
		if len(a) > 2 && a[2] == nil {
			src.Omitted = true
		}
		ex.Sources = append(ex.Sources, src)
	}
	for _, rv := range list(e["repositories"]) {
		m := obj(rv)
		ex.Repositories = append(ex.Repositories, observer.Repository{
			URL: str(m["url"]), Commit: str(m["commit"]), Dirty: m["dirty"] == true,
		})
	}
	return ex
}

func readHost(h map[string]any) *observer.Host {
	host := &observer.Host{
		Hostname:    str(h["hostname"]),
		CPU:         str(h["cpu"]),
		CPUCount:    int(intOf(h["cpu_count"])),
		MemoryTotal: uint64(intOf(h["memory_total"])),
		ENV:         map[string]string{},
	}
	copy(host.OS[:], strs(h["os"]))
	for k, v := range obj(h["ENV"]) {
		host.ENV[k] = str(v)
	}
	if g, ok := h["gpus"].(map[string]any); ok {
		info := &observer.GPUInfo{DriverVersion: str(g["driver_version"])}
		for _, gv := range list(g["gpus"]) {
			m := obj(gv)
			info.GPUs = append(info.GPUs, observer.GPU{
				Model: str(m["model"]), TotalMemory: int(intOf(m["total_memory"])),
				PersistenceMode: m["persistence_mode"] == true,
			})
		}
		host.GPUs = info
	}
	return host
}

func readMeta(m map[string]any) observer.Meta {
	meta := observer.Meta{
		Command:      str(m["command"]),
		Argv:         strs(m["argv"]),
		Cwd:          str(m["cwd"]),
		Comment:      str(m["comment"]),
		NamedConfigs: strs(m["named_configs"]),
	}
	if o, ok := m["options"].(map[string]any); ok {
		meta.Options = o
	}
	if c, ok := m["config_updates"].(map[string]any); ok {
		meta.ConfigUpdates = c
	}
	if p, ok := numberOf(m["priority"]); ok {
		meta.Priority = &p
	}
	if t := timeOf(m["queue_time"]); !t.IsZero() {
		meta.QueueTime = &t
	}
	return meta
}

// readMetrics reads our "metrics" field; series come sorted by name.
func readMetrics(m map[string]any) []observer.MetricSeries {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	var out []observer.MetricSeries
	for _, name := range names {
		s := obj(m[name])
		steps, stamps, values := list(s["steps"]), list(s["timestamps"]), list(s["values"])
		n := max(len(steps), len(stamps), len(values))
		ms := observer.MetricSeries{Name: name, Points: make([]observer.MetricPoint, n)}
		for i := range n {
			p := &ms.Points[i]
			if i < len(steps) {
				p.Step = intOf(steps[i])
			}
			if i < len(stamps) {
				p.Time = timeOf(stamps[i])
			}
			p.Value = math.NaN()
			if i < len(values) {
				if f, ok := numberOf(values[i]); ok {
					p.Value = f
				}
			}
		}
		out = append(out, ms)
	}
	return out
}

// timeOf reads a TinyDate (or isoformat) string; anything else is zero.
func timeOf(v any) time.Time {
	if s, ok := v.(string); ok {
		if t, ok := parseDate(s); ok {
			return t
		}
	}
	return time.Time{}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func strs(v any) []string {
	l, ok := v.([]any)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, str(x))
	}
	return out
}

func numberOf(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

func intOf(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case float64:
		return int64(x)
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return n
		}
		if u, err := strconv.ParseUint(strings.TrimSpace(string(x)), 10, 64); err == nil {
			return int64(u)
		}
	}
	return 0
}
