package file

import (
	"context"
	"encoding/base64"
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
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// Reader reads runs from a file-storage directory, ours or one written by
// Python Sacred.
type Reader struct {
	dir string
}

var _ observer.Reader = (*Reader)(nil)

// Open returns a reader over BASEDIR dir. A missing directory is an error
// wrapping observer.ErrNotFound.
func Open(dir string) (*Reader, error) {
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
		if strings.HasPrefix(name, ".") || name == SourcesDir || name == ResourcesDir {
			continue
		}
		if fi, err := os.Stat(filepath.Join(r.dir, name, RunFile)); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		ids = append(ids, name)
	}
	slices.SortFunc(ids, compareIDs)
	return ids, ctx.Err()
}

func compareIDs(a, b string) int {
	an, bn := isDigits(a), isDigits(b)
	switch {
	case an && bn:
		a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
		if len(a) != len(b) {
			return len(a) - len(b)
		}
	case an:
		return -1
	case bn:
		return 1
	}
	return strings.Compare(a, b)
}

func (r *Reader) runDir(id string) (string, error) {
	if err := checkID(id); err != nil {
		return "", fmt.Errorf("file storage: run %q: %w", id, observer.ErrNotFound)
	}
	return filepath.Join(r.dir, id), nil
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
	v, err := sacredjson.Unmarshal(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// Run reads one run. Only run.json is required; config.json, info.json,
// metrics.json and cout.txt are read when present.
func (r *Reader) Run(ctx context.Context, id string) (*observer.Run, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir, err := r.runDir(id)
	if err != nil {
		return nil, err
	}
	v, err := readJSON(filepath.Join(dir, RunFile))
	if err != nil {
		return nil, fmt.Errorf("file storage: run %s: %w", id, err)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			return nil, fmt.Errorf("file storage: run %s: %w", id, observer.ErrNotFound)
		}
		return nil, fmt.Errorf("file storage: run %s: run.json is not an object", id)
	}
	run := &observer.Run{
		ID:        id,
		Status:    str(doc["status"]),
		Command:   str(doc["command"]),
		FailTrace: strs(doc["fail_trace"]),
		Artifacts: strs(doc["artifacts"]),
	}
	run.Result, run.HasResult = doc["result"]
	run.Experiment = readExperiment(dir, obj(doc["experiment"]))
	if h, ok := doc["host"].(map[string]any); ok {
		run.Host = readHost(h)
	}
	run.Meta = readMeta(obj(doc["meta"]))
	if run.Meta.QueueTime != nil {
		run.QueueTime = *run.Meta.QueueTime
	}
	run.StartTime = timeOf(doc["start_time"])
	run.Heartbeat = timeOf(doc["heartbeat"])
	run.StopTime = timeOf(doc["stop_time"])
	for _, item := range list(doc["resources"]) {
		pair := list(item)
		if len(pair) == 0 {
			continue
		}
		res := observer.ResourceEvent{Path: str(pair[0])}
		if len(pair) > 1 {
			res.MD5 = md5FromStoreName(str(pair[1]))
		}
		run.Resources = append(run.Resources, res)
	}

	for _, f := range []struct {
		name string
		dst  *map[string]any
	}{{ConfigFile, &run.Config}, {InfoFile, &run.Info}} {
		v, err := readJSON(filepath.Join(dir, f.name))
		if err != nil {
			return nil, fmt.Errorf("file storage: run %s: %w", id, err)
		}
		*f.dst = obj(v)
	}
	mv, err := readJSON(filepath.Join(dir, MetricsFile))
	if err != nil {
		return nil, fmt.Errorf("file storage: run %s: %w", id, err)
	}
	run.Metrics = readMetrics(obj(mv))
	run.Output, err = os.ReadFile(filepath.Join(dir, CoutFile))
	if err != nil && !isNotExist(err) {
		return nil, fmt.Errorf("file storage: run %s: %w", id, err)
	}
	if run.Output == nil {
		run.Output = []byte{}
	}
	return run, nil
}

// Artifact opens an artifact listed in the run's run.json.
func (r *Reader) Artifact(ctx context.Context, id, name string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir, err := r.runDir(id)
	if err != nil {
		return nil, err
	}
	v, err := readJSON(filepath.Join(dir, RunFile))
	if err != nil {
		return nil, fmt.Errorf("file storage: run %s: %w", id, err)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("file storage: run %s: %w", id, observer.ErrNotFound)
	}
	if !slices.Contains(strs(doc["artifacts"]), name) {
		return nil, fmt.Errorf("file storage: run %s has no artifact %q: %w", id, name, observer.ErrNotFound)
	}
	path, err := artifactPath(dir, name)
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

func readExperiment(dir string, e map[string]any) observer.Experiment {
	ex := observer.Experiment{
		Name:         str(e["name"]),
		BaseDir:      str(e["base_dir"]),
		MainFile:     str(e["mainfile"]),
		Dependencies: strs(e["dependencies"]),
	}
	for _, s := range list(e["sources"]) {
		var pair []any
		if t, ok := s.(map[string]any); ok { // queued Sacred runs: jsonpickle tuples
			pair = list(t["py/tuple"])
		} else {
			pair = list(s)
		}
		if len(pair) < 2 {
			continue
		}
		src := observer.Source{Name: str(pair[0])}
		second := str(pair[1])
		if isMD5(second) {
			src.MD5 = second
		} else {
			src.MD5 = md5FromStoreName(second)
			src.Path = second
			if !filepath.IsAbs(second) {
				src.Path = filepath.Join(filepath.Dir(dir), second)
			}
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
	if os := strs(h["os"]); len(os) > 0 {
		host.OS[0] = os[0]
		if len(os) > 1 {
			host.OS[1] = os[1]
		}
	}
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

// timeOf reads an isoformat string, or the jsonpickle datetime that Sacred
// writes for meta.queue_time of queued runs; anything else is zero.
func timeOf(v any) time.Time {
	switch x := v.(type) {
	case string:
		t, err := sacredjson.ParseTime(x)
		if err == nil {
			return t
		}
	case map[string]any:
		if t, err := jsonpickleTime(x); err == nil {
			return t
		}
	}
	return time.Time{}
}

// jsonpickleTime decodes
//
//	{"py/object": "datetime.datetime", "__reduce__": [{"py/type": "datetime.datetime"}, ["<base64>"]]}
//
// whose 10 bytes are year (2, big-endian), month, day, hour, minute,
// second and microseconds (3, big-endian).
func jsonpickleTime(m map[string]any) (time.Time, error) {
	red := list(m["__reduce__"])
	if len(red) < 2 {
		return time.Time{}, errors.New("no __reduce__")
	}
	args := list(red[1])
	if len(args) < 1 {
		return time.Time{}, errors.New("no state")
	}
	b, err := base64.StdEncoding.DecodeString(str(args[0]))
	if err != nil || len(b) < 10 {
		return time.Time{}, errors.New("bad state")
	}
	us := int(b[7])<<16 | int(b[8])<<8 | int(b[9])
	return time.Date(int(b[0])<<8|int(b[1]), time.Month(b[2]), int(b[3]),
		int(b[4]), int(b[5]), int(b[6]), us*1000, time.UTC), nil
}

// md5FromStoreName takes the md5 out of "<dir>/<stem>_<md5><ext>".
func md5FromStoreName(p string) string {
	stem, _ := splitExt(filepath.Base(p))
	if i := strings.LastIndexByte(stem, '_'); i >= 0 && isMD5(stem[i+1:]) {
		return stem[i+1:]
	}
	return ""
}

func isMD5(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
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
		if u, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			return int64(u)
		}
	}
	return 0
}
